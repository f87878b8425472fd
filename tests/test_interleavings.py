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
from tcpserver.lifecycle import State
from tcpserver.testing import MemoryConnection, SocketConnection, memory_server

ALPHABET = [b"\r", b"\n", b"\r\n", b"ab", b"c", b"|", b"||", b"\x00", b"xyz"]
CHUNKS = st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=12).map(b"".join)
FRAMED_MODES: list[dict[str, Any]] = [
    {"eol": b"\n"},
    {"eol": b"||"},
    {"eol": b"\r\n"},
    {"single_line_mode": True},
    {"record_length": 3},
    {"record_length": 7},
]
MODES = st.sampled_from([*FRAMED_MODES, {}])  # {}: raw, each read as it came


def actions_with(modes: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.lists(
        st.one_of(
            st.tuples(st.just("mode"), modes),
            st.tuples(st.just("pause")),
            st.tuples(st.just("send"), st.integers(1, 600)),
            st.tuples(st.just("async")),
            st.tuples(st.just("none")),
        ),
        max_size=8,
    )


ACTIONS = actions_with(MODES)
# Over a socket the kernel decides how reads are cut: raw mode (one data_in
# per read) is the one mode whose frames depend on that, so it is left out.
FRAMED_ACTIONS = actions_with(st.sampled_from(FRAMED_MODES))


def operations(send_sizes: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    return st.lists(
        st.one_of(
            st.tuples(st.just("feed"), CHUNKS),
            st.tuples(st.just("process")),
            st.tuples(st.just("full")),
            st.tuples(st.just("drained")),
            st.tuples(st.just("send"), send_sizes),
            st.tuples(st.just("fire")),
        ),
        max_size=40,
    )


OPERATIONS = operations(st.integers(1, 900))
# Over a socket, some sends are larger than the kernel's buffers take at once
# (the rest goes through Twisted's buffer, which then pushes back).
SOCKET_OPERATIONS = operations(st.integers(1, 900) | st.integers(5_000, 40_000))


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
                # only once the client has closed: nothing can be sent then
                assert cid not in server.connections or not server.connections[cid].connected
                return
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

    def __init__(self, actions: list[tuple[Any, ...]], eol: bytes = b"") -> None:
        self.framer = ModelFramer(eol=eol, max_line_length=256)
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


def run_plan(ops, actions, connect, *, tell: bool = False, over_socket: bool = False) -> Any:
    """
    Apply ``ops`` (with ``actions`` in the data_in listener) to a fresh
    server reached through ``connect(server)``; check the framing model,
    the bytes sent and the connection's invariants after every step.

    Over a socket, lines start framed (raw mode is left out), and a paused
    connection is resumed before the client closes: a connection that
    does not read does not see its peer's FIN either.  With ``tell``, a
    ``disconnected`` listener must hear the end once, after the last
    ``data_in``.
    """
    eol = b"\n" if over_socket else b""
    server = memory_server(default_max_line_length=256, default_eol=eol)
    server.config("SendQueueHighWater=1024")
    server.config("SendQueueLowWater=256")
    server.config("SendQueueLimit=2048")
    if over_socket:
        server.config("TcpNoDelay=True")
    model = ModelDriver(actions, eol)
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
    told: list[tuple[int, int]] = []
    if tell:
        server.on("disconnected", lambda e: told.append((len(frames), e.status_code)))
    client = connect(server)
    protocol = client.protocol
    cid = client.connection_id
    received = b""

    def settle() -> None:
        client.pump()
        protocol.check_invariants()

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
        settle()
        if over_socket:
            # (flow control may hold reading back: the kernel keeps the rest)
            assert model.frames[: len(frames)] == frames
        else:
            assert frames == model.frames
        received += client.written()
        assert sent.accepted.startswith(received)
    # every accepted byte reaches the client once the kernel takes it
    client.transport_drained()
    settle()
    received += client.written()
    assert received == sent.accepted

    def unblock() -> None:
        """Finish every async listener and undo every pause, until none is left."""
        for _ in range(1000):
            if pending:
                model.busy = False
                pending.pop(0).callback(None)
            elif cid in server.connections and not server.connections[cid].accept_data:
                server.process_data(cid)
                model.paused = False
            else:
                return
            model.pull()
            settle()

    if over_socket:
        unblock()
    # the client closes: everything buffered is delivered, paused or not
    client.close()
    model.closing = True
    model.pull()
    if over_socket:
        unblock()
    while pending:
        model.busy = False
        pending.pop(0).callback(None)
        model.pull()
    rest = model.framer.flush()
    if rest:
        model.frames.append((rest, False))
    settle()
    server.reactor.advance(0)
    settle()
    assert frames == model.frames
    assert protocol.state is State.CLOSED
    assert not server.connections
    assert server.factory.table.open_sockets == 0
    if tell:
        assert len(told) == 1
        after, status = told[0]
        assert after == len(frames)
        assert status == 0 or (over_socket and status in (10053, 10054))
    assert server.stats()["bytes_received"] == sum(len(op[1]) for op in ops if op[0] == "feed")
    return protocol


@settings(
    max_examples=3000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)
@given(ops=OPERATIONS, actions=ACTIONS, tell=st.booleans())
def test_bytes_delivered_and_sent_exactly_once_in_order(ops, actions, tell):
    run_plan(ops, actions, MemoryConnection, tell=tell)


class SocketClient(SocketConnection):
    """A SocketConnection with the MemoryConnection names the plan uses."""

    def transport_full(self) -> None:
        self.stop_reading()

    def transport_drained(self) -> None:
        self.start_reading()


@settings(
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)
@given(ops=SOCKET_OPERATIONS, actions=FRAMED_ACTIONS, tell=st.booleans())
def test_the_same_over_a_real_socket(ops, actions, tell):
    """
    The same plan through a real ``tcp.Server`` on loopback, with small
    kernel buffers: the one-step open, answers sent straight on the socket
    (and what the kernel does not take going through Twisted's buffer), and
    the one-step close.
    """
    clients: list[SocketClient] = []

    def connect(server: Any) -> SocketClient:
        clients.append(SocketClient(server, 4096))
        return clients[-1]

    try:
        run_plan(ops, actions, connect, tell=tell, over_socket=True)
    finally:
        for client in clients:
            client.dispose()
