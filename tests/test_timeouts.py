"""Timeouts with their own status codes, escalating from a clean close to an abort.

ReadIdleTimeout (903), WriteIdleTimeout (904), CloseGracePeriod (905) and
ProxyHeaderTimeout (906), in memory on a clock (tcpserver.testing) and
through real sockets.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import pytest_twisted
from helpers import advance, in_memory, in_thread, listen, read_until
from twisted.internet.task import Clock

from tcpserver import TCPServerError
from tcpserver.clocks import OpeningWatch
from tcpserver.testing import MemoryConnection, memory_server

#: in_memory(**ECHO): an echo server on a clock
ECHO: dict[str, Any] = {"default_eol": b"\n", "echo": True}


def _status(recorder) -> int:
    (event,) = recorder.of("disconnected")
    code: int = event.status_code
    return code


def test_read_idle_closes_with_903_and_data_keeps_it_open():
    server, recorder = in_memory(**ECHO, ReadIdleTimeout=10)
    client = MemoryConnection(server)
    for _ in range(5):  # a byte every 8 s keeps it alive
        advance(server, 8)
        client.feed(b"x\n")
    assert not client.closed
    advance(server, 13)  # ten idle seconds (checked every quarter)
    assert client.closed
    server.reactor.advance(0)
    assert _status(recorder) == 903
    assert not client.transport.aborted  # a clean close first


def test_read_idle_is_not_reset_by_what_the_server_sends():
    server, _ = in_memory(**ECHO, ReadIdleTimeout=4)
    client = MemoryConnection(server)
    cid = client.connection_id
    for _ in range(3):
        advance(server, 1)
        server.send(cid, b"tick\n")
    advance(server, 2)
    assert client.closed


def test_write_idle_closes_with_904_and_sending_keeps_it_open():
    server, recorder = in_memory(**ECHO, WriteIdleTimeout=6)
    client = MemoryConnection(server)
    cid = client.connection_id
    for _ in range(4):
        advance(server, 5)
        client.feed(b"in\n")  # the echo is a send
    assert not client.closed
    for _ in range(3):  # receiving alone does not count
        advance(server, 2.5)
        client.transport.protocol.dataReceived(b"")
    assert client.closed
    server.reactor.advance(0)
    assert _status(recorder) == 904
    assert cid not in server.connections


def test_write_idle_with_output_stuck_resets_at_once():
    server, recorder = in_memory(**ECHO, WriteIdleTimeout=3)
    client = MemoryConnection(server)
    client.transport_full()  # the peer stopped reading
    server.send(client.connection_id, b"x" * 100)  # queued: nothing handed on
    advance(server, 4)
    assert client.transport.aborted  # waiting longer would not help
    server.reactor.advance(0)
    assert _status(recorder) == 904


def test_a_timeout_escalates_to_an_abort_keeping_its_status():
    # (CloseGracePeriod=0: the timeout's own period is the grace)
    server, recorder = in_memory(**ECHO, ReadIdleTimeout=2, CloseGracePeriod=0)
    client = MemoryConnection(server)
    client.hold_close()  # the peer never completes the close
    advance(server, 3)
    assert client.closed
    assert not client.transport.aborted
    advance(server, 2.5)  # the timeout's own period as grace
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 903


def test_close_grace_period_resets_a_lingering_disconnect_with_905():
    server, recorder = in_memory(**ECHO, CloseGracePeriod=5)
    client = MemoryConnection(server)
    client.hold_close()
    server.disconnect(client.connection_id)
    advance(server, 4.9)
    assert not client.transport.aborted
    advance(server, 0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 905


def test_close_grace_period_also_bounds_a_timeouts_close():
    server, recorder = in_memory(**ECHO, DefaultIdleTimeout=60, CloseGracePeriod=1)
    client = MemoryConnection(server)
    client.hold_close()
    advance(server, 60.5)  # the idle timeout closed it
    assert client.closed
    assert not client.transport.aborted
    advance(server, 1)  # CloseGracePeriod, not the 60 s idle period
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 10060


def test_a_close_that_completes_in_time_is_not_reset():
    server, recorder = in_memory(**ECHO, CloseGracePeriod=5)
    client = MemoryConnection(server)
    server.disconnect(client.connection_id)
    server.reactor.advance(0)
    advance(server, 10)
    assert not client.transport.aborted
    assert _status(recorder) == 0


def test_proxy_header_timeout_closes_with_906():
    server, recorder = in_memory(**ECHO, ProxyProtocol=True, ProxyHeaderTimeout=3)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(b"PROXY TCP4 198.51.")  # a header that never completes
    advance(server, 2.9)
    assert not client.closed
    advance(server, 0.2)
    assert client.closed
    (error,) = recorder.of("error")
    assert error.error_code == 906
    assert "3" in error.description
    assert server.stats()["refused"]["proxy"] == 1
    assert recorder.of("connection_request") == []


def test_proxy_header_in_time_cancels_the_timer():
    server, recorder = in_memory(**ECHO, ProxyProtocol=True, ProxyHeaderTimeout=3)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 9000\r\nhi\n")
    assert client.written() == b"hi\n"
    advance(server, 10)
    assert not client.closed
    assert recorder.of("error") == []
    assert server.reactor.getDelayedCalls() == []


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_bad_timeout_values_are_10022(value):
    server = memory_server()
    for name in ("ReadIdleTimeout", "WriteIdleTimeout", "CloseGracePeriod", "ProxyHeaderTimeout"):
        with pytest.raises(TCPServerError) as caught:
            server.config(f"{name}={value}")
        assert caught.value.code == 10022
        assert value in str(caught.value)


# -- real sockets -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_read_idle_through_a_real_socket(server, recorder):
    server.default_eol = b"\n"
    server.config("ReadIdleTimeout=0.3")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)

    def talk() -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"hello\n")
            answer = read_until(sock, 6)
            started = time.monotonic()
            rest = read_until(sock, 1, 5)  # EOF when the server closes
            return answer + rest, time.monotonic() - started

    answer, waited = await in_thread(talk)
    assert answer == b"hello\n"
    assert 0.2 <= waited < 2
    await recorder.wait("disconnected")
    assert recorder.of("disconnected")[0].status_code == 903


@pytest_twisted.ensureDeferred
async def test_write_idle_resets_a_peer_that_stopped_reading(server, recorder):
    server.config("WriteIdleTimeout=0.5")
    server.config("OutBufferSize=4096")

    def flood(event):
        cid = event.connection_id
        while server.connections[cid].ready_to_send:
            server.send(cid, b"z" * 65536)

    server.on("connected", flood)
    port = listen(server)

    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        # never read: the server's output is stuck until WriteIdleTimeout resets it
        await recorder.wait("disconnected")

        def read_all() -> bytes:
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
            except ConnectionResetError:
                return b"reset"
            return got

        result = await in_thread(read_all)
    assert recorder.of("disconnected")[0].status_code == 904
    assert result == b"reset" or len(result) < 64 * 65536


def test_close_grace_period_counts_queued_output_too():
    server, recorder = in_memory(**ECHO, CloseGracePeriod=2)
    client = MemoryConnection(server)
    client.transport_full()  # the peer stopped reading
    server.send(client.connection_id, b"x" * 1000)
    server.disconnect(client.connection_id)
    advance(server, 1.9)
    assert not client.transport.aborted
    advance(server, 0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 905


class _MovingClock(Clock):
    """A clock that moves a little at every reading, as the reactor's does."""

    def seconds(self) -> float:
        self.rightNow += 1e-6
        return self.rightNow


def test_the_opening_watch_keeps_its_timer_while_its_due_time_stays():
    # A TLS handshake sets the opening's inactivity limit twice (0: none);
    # with the deadline unchanged no timer may be cancelled and made again.
    clock = _MovingClock()
    expired: list[bool] = []
    watch = OpeningWatch(clock, 10, expired.append)
    (call,) = clock.getDelayedCalls()
    watch.watch_idle(0)
    watch.progress()
    watch.watch_idle(0)
    assert clock.getDelayedCalls() == [call]
    watch.watch_idle(2)  # an earlier due time: a new call
    (earlier,) = clock.getDelayedCalls()
    assert earlier is not call
    assert earlier.getTime() < call.getTime()
    clock.advance(2.5)
    assert expired == [False]  # the peer was silent for 2 s
