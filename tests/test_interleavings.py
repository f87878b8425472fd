"""Hypothesis: random interleavings of reads, listener actions, pauses and sends.

The server runs in memory; a plan of operations (bytes arriving, pause /
resume, the transport filling and draining, sends from outside) and a plan of
listener actions (switch framing mode, pause, send, go async) are applied to
it and to a plain model.  Invariants:

* every received byte is delivered exactly once, in order, framed exactly as
  the model frames it (``helpers.ModelFramer``);
* every byte a send accepted (``bytes_sent`` after a 135) reaches the client,
  in order, and nothing else does.

``--hypothesis-profile=long`` runs many more examples than CI.
"""

from __future__ import annotations

from typing import Any

from helpers import ModelFramer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred

from tcpserver import TCPServerError
from tcpserver.testing import MemoryConnection, memory_server

ALPHABET = [b"\r", b"\n", b"\r\n", b"ab", b"c", b"|", b"||", b"\x00", b"xyz"]
CHUNKS = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=12).map(b"".join)
MODES = st.sampled_from(
    [
        {"eol": b"\n"},
        {"eol": b"||"},
        {"eol": b"\r\n"},
        {"single_line_mode": True},
        {"record_length": 3},
        {"record_length": 7},
        {},  # raw
    ]
)
ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("mode"), MODES),
        st.tuples(st.just("pause")),
        st.tuples(st.just("send"), st.integers(1, 600)),
        st.tuples(st.just("async")),
        st.tuples(st.just("none")),
    ),
    max_size=8,
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("feed"), CHUNKS),
        st.tuples(st.just("process")),
        st.tuples(st.just("full")),
        st.tuples(st.just("drained")),
        st.tuples(st.just("send"), st.integers(1, 900)),
        st.tuples(st.just("fire")),
    ),
    max_size=40,
)


class Sent:
    """Unique, checkable payloads and the record of what was accepted."""

    def __init__(self) -> None:
        self.counter = 0
        self.accepted = b""

    def payload(self, size: int) -> bytes:
        self.counter += 1
        stamp = f"<{self.counter}:".encode()
        return (stamp * (size // len(stamp) + 1))[:size]

    def send(self, server: Any, cid: str, size: int) -> None:
        data = self.payload(size)
        try:
            server.send(cid, data)
        except TCPServerError as exc:
            if exc.code == 126:
                return  # the client already closed: nothing can be sent
            code = exc.code
        else:
            code = 0
        assert code in (0, 135)
        self.accepted += data[: server.connections[cid].bytes_sent]


def apply_mode(target: Any, mode: dict[str, Any]) -> None:
    target.eol = mode.get("eol", b"")
    target.single_line_mode = mode.get("single_line_mode", False)
    target.record_length = mode.get("record_length", 0)


class ModelDriver:
    """What the server should deliver, driven the way the protocol drives it."""

    def __init__(self, actions: list[tuple[Any, ...]]) -> None:
        self.framer = ModelFramer(max_line_length=256)
        self.actions = actions
        self.frames: list[tuple[bytes, bool]] = []
        self.paused = False
        self.busy = False
        self.closing = False

    def pull(self) -> None:
        while not self.busy and (not self.paused or self.closing):
            frame = self.framer.next_frame()
            if frame is None:
                return
            self.deliver(frame)

    def deliver(self, frame: tuple[bytes, bool]) -> None:
        index = len(self.frames)
        self.frames.append(frame)
        if not self.actions:
            return
        action = self.actions[index % len(self.actions)]
        if action[0] == "mode":
            apply_mode(self.framer, action[1])
        elif action[0] == "pause":
            self.paused = True
        elif action[0] == "async":
            self.busy = True


@settings(
    max_examples=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)
@given(ops=OPERATIONS, actions=ACTIONS)
def test_bytes_delivered_and_sent_exactly_once_in_order(ops, actions):
    server = memory_server(default_max_line_length=256)
    server.config("SendQueueHighWater=1024")
    server.config("SendQueueLowWater=256")
    server.config("SendQueueLimit=2048")
    model = ModelDriver(actions)
    sent = Sent()
    frames: list[tuple[bytes, bool]] = []
    pending: list[Deferred[None]] = []

    def listener(event: Any) -> Deferred[None] | None:
        index = len(frames)
        frames.append((event.text, event.eol))
        if not actions:
            return None
        action = actions[index % len(actions)]
        cid = event.connection_id
        conn = server.connections[cid]
        if action[0] == "mode":
            conn.eol = action[1].get("eol", b"")
            conn.single_line_mode = action[1].get("single_line_mode", False)
            server.change_record_length(cid, action[1].get("record_length", 0))
        elif action[0] == "pause":
            server.pause_data(cid)
        elif action[0] == "send":
            sent.send(server, cid, action[1])
        elif action[0] == "async":
            waiting: Deferred[None] = Deferred()
            pending.append(waiting)
            return waiting
        return None

    server.on("data_in", listener)
    client = MemoryConnection(server)
    cid = client.connection_id
    received = b""
    for op in ops:
        kind = op[0]
        if kind == "feed":
            client.feed(op[1])
            model.framer.receive(op[1])
            model.pull()
        elif kind == "process":
            server.process_data(cid)
            model.paused = False
            model.pull()
        elif kind == "full":
            client.transport_full()
        elif kind == "drained":
            client.transport_drained()
        elif kind == "send":
            sent.send(server, cid, op[1])
        elif kind == "fire" and pending:
            model.busy = False
            pending.pop(0).callback(None)
            model.pull()
        assert frames == model.frames
        received += client.written()
        assert sent.accepted.startswith(received)
    # every accepted byte reaches the client once the kernel takes it
    client.transport_drained()
    received += client.written()
    assert received == sent.accepted
    # the client closes: everything buffered is delivered, paused or not
    client.close()
    model.closing = True
    model.pull()
    while pending:
        model.busy = False
        pending.pop(0).callback(None)
        model.pull()
    rest = model.framer.flush()
    if rest:
        model.frames.append((rest, False))
    assert frames == model.frames
