"""The sans-IO Outbound: cork, queue, timed sends, water marks, hold - without a transport.

A fake owner records what is handed on and what flow control says; a
``task.Clock`` runs the send timer.  Hypothesis drives random interleavings
of sends (plain and timed), read batches (cork/uncork), the transport
pushing back and draining, TLS holding and releasing, the clock and the
connection closing, and checks after every step that the counters agree
and at the end that exactly the accepted bytes went out, in order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tcpserver import TCPServerError
from tcpserver.delegates import send_by_id
from tcpserver.outbound import CORK_LIMIT, Outbound, Writer


@dataclass(frozen=True)
class Limits:
    high_water: int = 1024
    low_water: int = 256
    queue_limit: int = 2048
    send_timeout: float = 0


class Owner:
    """The connection, as an Outbound sees it."""

    connection_id = "7"

    def __init__(self) -> None:
        self.written = bytearray()
        self.flow_paused = False
        self.drains = 0
        self.holds_reached = 0
        self.out: Outbound | None = None

    def writer(self) -> Writer:
        return lambda owner, data: owner.write_out(data)  # (a test may replace write_out)

    def write_out(self, data: bytes) -> None:
        self.written += data

    def flow(self, paused: bool) -> None:
        assert paused != self.flow_paused, "flow told twice the same"
        self.flow_paused = paused

    def drained(self) -> None:
        self.drains += 1
        out = self.out
        assert out is not None
        if out.taking_sends and not out.ready:
            out.ready = True  # (the protocol does this for an open connection)

    def hold_reached(self) -> None:
        self.holds_reached += 1


class Table:
    """A factory, as send_by_id sees it: one connection, id "7"."""

    def __init__(self, out: Outbound) -> None:
        self.outbound: Outbound | None = out
        self.by_id = {"7": self}

    def out(self) -> Outbound:
        assert self.outbound is not None
        return self.outbound


def make(limits: Limits | None = None) -> tuple[Outbound, Owner, Clock]:
    owner = Owner()
    clock = Clock()
    out = Outbound(owner, clock, limits or Limits())
    owner.out = out
    out.accept_sends()
    out.open()
    return out, owner, clock


# -- examples --------------------------------------------------------------------------


def test_an_idle_connection_sends_at_once():
    out, owner, _ = make()
    assert out.send(b"hello") is None
    assert owner.written == b"hello"
    assert out.bytes_sent == 5
    assert out.handed == out.accepted == 5
    assert out.ready


def test_send_by_id_is_the_same_send_in_one_call():
    out, owner, _ = make()
    table = Table(out)
    assert send_by_id(table, "7", b"hello") is None
    assert owner.written == b"hello"
    out.corked = True
    send_by_id(table, "7", b"a")
    send_by_id(table, "7", bytearray(b"b"))  # (not bytes: the general path, in order)
    out.uncork()
    assert owner.written == b"helloab"
    with pytest.raises(TCPServerError) as caught:
        send_by_id(table, "8", b"x")
    assert caught.value.code == 126
    assert "'8'" in caught.value.description


def test_a_read_batch_is_one_write():
    out, owner, _ = make()
    writes: list[bytes] = []
    owner.write_out = writes.append  # type: ignore[assignment]
    out.corked = True
    for line in (b"a\n", b"b\n", b"c\n"):
        out.send(line)
    assert writes == []
    assert out.queued == 6
    out.uncork()
    assert writes == [b"a\nb\nc\n"]
    assert out.queued == 0


def test_the_cork_is_written_once_it_reaches_its_limit():
    out, owner, _ = make(Limits(high_water=1 << 20, low_water=1 << 19, queue_limit=1 << 21))
    out.corked = True
    out.send(b"x" * (CORK_LIMIT - 1))
    assert owner.written == b""
    out.send(b"y")
    assert len(owner.written) == CORK_LIMIT


def test_above_the_high_water_mark_reading_stops_until_the_low_one():
    out, owner, _ = make()
    out.pause()  # the transport pushes back
    out.send(b"x" * 1000)
    assert not owner.flow_paused
    assert out.ready
    out.send(b"x" * 100)  # 1100 >= 1024
    assert owner.flow_paused
    assert not out.ready
    out.resume()
    assert not owner.flow_paused
    assert out.ready
    assert owner.drains == 1
    assert len(owner.written) == 1100


def test_a_full_queue_raises_135_after_taking_what_fits():
    out, owner, _ = make()
    out.pause()
    out.send(b"a" * 2000)
    with pytest.raises(TCPServerError) as caught:
        out.send(b"b" * 100)
    assert caught.value.code == 135
    assert out.bytes_sent == 48
    assert out.queued == 2048
    out.resume()
    assert owner.written == b"a" * 2000 + b"b" * 48


def test_a_timed_send_parks_until_there_is_room_and_fails_after_its_timeout():
    out, owner, clock = make()
    out.timeout = 5
    out.pause()
    first = out.send(b"a" * 2000)
    parked = out.send(b"b" * 100)  # no room: parked, not queued
    assert isinstance(first, Deferred)
    assert isinstance(parked, Deferred)
    assert out.bytes_sent == 0
    failures: list[Failure] = []
    parked.addErrback(failures.append)
    first.addErrback(lambda f: None)
    clock.advance(5)
    assert "100 bytes were not sent" in failures[0].getErrorMessage()
    out.resume()
    assert owner.written == b"a" * 2000  # the parked bytes never go out


def test_a_timed_send_fires_once_its_bytes_are_handed_on():
    out, owner, _ = make()
    out.timeout = 5
    out.corked = True
    done = out.send(b"line\n")
    assert isinstance(done, Deferred)
    assert not done.called
    out.uncork()
    assert done.called
    assert owner.written == b"line\n"


def test_held_output_waits_for_release_and_the_plaintext_goes_first():
    out, owner, _ = make()
    out.pause()
    out.send(b"plain")
    out.hold()  # TLS starts: only "plain" may go out in plaintext
    out.send(b"secret")
    out.resume()
    assert owner.written == b"plain"
    assert out.boundary_reached
    assert owner.holds_reached == 1
    out.release()
    assert owner.written == b"plainsecret"


def test_sends_after_closing_raise_126_and_losing_the_transport_fails_waiters():
    out, _, _ = make()
    out.timeout = 5
    out.pause()
    waiting = out.send(b"x")
    assert isinstance(waiting, Deferred)
    out.refuse_sends()
    with pytest.raises(TCPServerError) as caught:
        out.send(b"y")
    assert caught.value.code == 126
    failures: list[Failure] = []
    waiting.addErrback(failures.append)
    out.gone(10054, "reset")
    assert failures[0].check(TCPServerError)
    assert failures[0].value.code == 10054  # type: ignore[union-attr]
    assert out.is_gone
    assert not out.taking_sends
    assert out.queued == 0


def test_bytes_that_are_not_bytes_are_refused_with_the_value_shown():
    out, _, _ = make()
    with pytest.raises(TCPServerError, match="send takes bytes, not str: 'text'"):
        out.send("text")


# -- the property -----------------------------------------------------------------------

OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 900), st.booleans(), st.booleans()),
        st.tuples(st.just("cork")),
        st.tuples(st.just("uncork")),
        st.tuples(st.just("pause")),
        st.tuples(st.just("resume")),
        st.tuples(st.just("hold")),
        st.tuples(st.just("release")),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 2.0, 6.0])),
        st.tuples(st.just("close")),
    ),
    max_size=40,
)


class Sends:
    """Every send, with unique payloads, and what became of it."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def payload(self, size: int) -> bytes:
        stamp = f"<{len(self.items)}:".encode()
        return (stamp * (size // len(stamp) + 1))[:size]

    def expected(self) -> bytes:
        """The bytes that must go out, in send order."""
        out = []
        for item in self.items:
            if item["dropped"]:
                continue
            out.append(item["data"][: item["taken"]])
        return b"".join(out)


def check(out: Outbound, owner: Owner) -> None:
    assert len(owner.written) == out.handed
    assert out.accepted - out.handed == out.queued
    if owner.flow_paused:
        # (held output is released, and reading resumes, when TLS is up)
        assert out.queued > Limits.low_water or out.stuck or out.holding


@settings(
    max_examples=int(os.environ.get("OUTBOUND_EXAMPLES", "1500")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    deadline=None,
)
@given(ops=OPERATIONS)
def test_exactly_the_accepted_bytes_go_out_in_order(ops):
    out, owner, clock = make()
    table = Table(out)
    sends = Sends()
    corked = paused = holding = closed = False
    for op in ops:
        kind = op[0]
        if kind == "send":
            data = sends.payload(op[1])
            item: dict[str, Any] = {"data": data, "taken": 0, "dropped": False}
            sends.items.append(item)
            out.timeout = 5 if op[2] else 0
            try:
                # by id (the fast path) or on the Outbound (the general path)
                result = send_by_id(table, "7", data) if op[3] else out.send(data)
            except TCPServerError as exc:
                code = exc.code
                item["taken"] = out.bytes_sent if not closed else 0
                assert code == (126 if closed else 135)
            else:
                assert not closed
                item["taken"] = len(data)
                if isinstance(result, Deferred):

                    def outcome(value: object, item: dict[str, Any] = item) -> None:
                        if isinstance(value, Failure):
                            message = value.getErrorMessage()
                            if "were not sent" in message or "closed" in message:
                                item["dropped"] = True
                            return
                        # it fired: its bytes have been handed on
                        item["fired_early"] = item["data"] not in owner.written

                    result.addBoth(outcome)
        elif kind == "cork" and not corked:
            corked = True
            out.corked = True
        elif kind == "uncork" and corked:
            corked = False
            out.uncork()
        elif kind == "pause" and not paused:
            paused = True
            out.pause()
        elif kind == "resume" and paused:
            paused = False
            out.resume()
        elif kind == "hold" and not holding:
            holding = True
            out.hold()
        elif kind == "release" and holding:
            holding = False
            out.release()
        elif kind == "advance":
            clock.advance(op[1])
        elif kind == "close" and not closed:
            closed = True
            out.refuse_sends()
        check(out, owner)
        if not (corked or paused or holding):
            assert out.queued == 0  # nothing waits without a reason
        assert sends.expected().startswith(bytes(owner.written))
    # everything that may go out does, once nothing holds it back
    if corked:
        out.uncork()
    if holding:
        out.release()
    if paused:
        out.resume()
    check(out, owner)
    assert bytes(owner.written) == sends.expected()
    assert not [item for item in sends.items if item.get("fired_early")]
    out.gone(0, "OK")
    assert out.idle


def test_bytes_sent_is_always_zero_in_the_synchronous_mode():
    """The manual: BytesSent "will always return 0" when the timeout is positive."""
    out, owner, _ = make()
    out.send(b"abc")
    assert out.bytes_sent == 3  # (asynchronous mode: what was taken)
    out.timeout = 5
    out.send(b"written at once")
    assert out.bytes_sent == 0
    out.pause()
    out.send(b"queued")
    assert out.bytes_sent == 0
    assert owner.written.endswith(b"written at once")
