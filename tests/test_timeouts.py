"""Timeouts with their own status codes, escalating from a clean close to an abort.

ReadIdleTimeout (903), WriteIdleTimeout (904), CloseGracePeriod (905) and
ProxyHeaderTimeout (906), in memory on a clock (tcpserver.testing) and
through real sockets.
"""

from __future__ import annotations

import socket
import time

import pytest
import pytest_twisted
from helpers import Recorder, in_thread, read_until

from tcpserver import TCPServerError
from tcpserver.testing import MemoryConnection, memory_server


def _server(**settings: object):
    server = memory_server(default_eol=b"\n")
    for name, value in settings.items():
        server.config(f"{name}={value}")
    recorder = Recorder(server)
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    return server, recorder


def _run(server, seconds: float) -> None:
    """Let ``seconds`` pass as a real clock would (idle checks run every quarter)."""
    steps = round(seconds / 0.1)
    server.reactor.pump([0.1] * steps)


def _status(recorder) -> int:
    (event,) = recorder.of("disconnected")
    code: int = event.status_code
    return code


def test_read_idle_closes_with_903_and_data_keeps_it_open():
    server, recorder = _server(ReadIdleTimeout=10)
    client = MemoryConnection(server)
    for _ in range(5):  # a byte every 8 s keeps it alive
        _run(server, 8)
        client.feed(b"x\n")
    assert not client.closed
    _run(server, 13)  # ten idle seconds (checked every quarter)
    assert client.closed
    server.reactor.advance(0)
    assert _status(recorder) == 903
    assert not client.transport.aborted  # a clean close first


def test_read_idle_is_not_reset_by_what_the_server_sends():
    server, _ = _server(ReadIdleTimeout=4)
    client = MemoryConnection(server)
    cid = client.connection_id
    for _ in range(3):
        _run(server, 1)
        server.send(cid, b"tick\n")
    _run(server, 2)
    assert client.closed


def test_write_idle_closes_with_904_and_sending_keeps_it_open():
    server, recorder = _server(WriteIdleTimeout=6)
    client = MemoryConnection(server)
    cid = client.connection_id
    for _ in range(4):
        _run(server, 5)
        client.feed(b"in\n")  # the echo is a send
    assert not client.closed
    for _ in range(3):  # receiving alone does not count
        _run(server, 2.5)
        client.transport.protocol.dataReceived(b"")
    assert client.closed
    server.reactor.advance(0)
    assert _status(recorder) == 904
    assert cid not in server.connections


def test_write_idle_with_output_stuck_resets_at_once():
    server, recorder = _server(WriteIdleTimeout=3)
    client = MemoryConnection(server)
    client.transport_full()  # the peer stopped reading
    server.send(client.connection_id, b"x" * 100)  # queued: nothing handed on
    _run(server, 4)
    assert client.transport.aborted  # waiting longer would not help
    server.reactor.advance(0)
    assert _status(recorder) == 904


def test_a_timeout_escalates_to_an_abort_keeping_its_status():
    server, recorder = _server(ReadIdleTimeout=2)
    client = MemoryConnection(server)
    client.hold_close()  # the peer never completes the close
    _run(server, 3)
    assert client.closed
    assert not client.transport.aborted
    _run(server, 2.5)  # the timeout's own period as grace
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 903


def test_close_grace_period_resets_a_lingering_disconnect_with_905():
    server, recorder = _server(CloseGracePeriod=5)
    client = MemoryConnection(server)
    client.hold_close()
    server.disconnect(client.connection_id)
    _run(server, 4.9)
    assert not client.transport.aborted
    _run(server, 0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 905


def test_close_grace_period_also_bounds_a_timeouts_close():
    server, recorder = _server(DefaultIdleTimeout=60, CloseGracePeriod=1)
    client = MemoryConnection(server)
    client.hold_close()
    _run(server, 60.5)  # the idle timeout closed it
    assert client.closed
    assert not client.transport.aborted
    _run(server, 1)  # CloseGracePeriod, not the 60 s idle period
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 10060


def test_a_close_that_completes_in_time_is_not_reset():
    server, recorder = _server(CloseGracePeriod=5)
    client = MemoryConnection(server)
    server.disconnect(client.connection_id)
    server.reactor.advance(0)
    _run(server, 10)
    assert not client.transport.aborted
    assert _status(recorder) == 0


def test_proxy_header_timeout_closes_with_906():
    server, recorder = _server(ProxyProtocol=True, ProxyHeaderTimeout=3)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(b"PROXY TCP4 198.51.")  # a header that never completes
    _run(server, 2.9)
    assert not client.closed
    _run(server, 0.2)
    assert client.closed
    (error,) = recorder.of("error")
    assert error.error_code == 906
    assert "3" in error.description
    assert server.stats()["refused"]["proxy"] == 1
    assert recorder.of("connection_request") == []


def test_proxy_header_in_time_cancels_the_timer():
    server, recorder = _server(ProxyProtocol=True, ProxyHeaderTimeout=3)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 9000\r\nhi\n")
    assert client.written() == b"hi\n"
    _run(server, 10)
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
    server.start_listening()
    port = server.local_port

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
    server.start_listening()
    port = server.local_port

    def stall() -> bytes:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with sock:
            time.sleep(1.5)  # never read: the server's output is stuck
            got = b""
            try:
                while chunk := sock.recv(65536):
                    got += chunk
            except ConnectionResetError:
                return b"reset"
            return got

    result = await in_thread(stall)
    await recorder.wait("disconnected")
    assert recorder.of("disconnected")[0].status_code == 904
    assert result == b"reset" or len(result) < 64 * 65536


def test_close_grace_period_counts_queued_output_too():
    server, recorder = _server(CloseGracePeriod=2)
    client = MemoryConnection(server)
    client.transport_full()  # the peer stopped reading
    server.send(client.connection_id, b"x" * 1000)
    server.disconnect(client.connection_id)
    _run(server, 1.9)
    assert not client.transport.aborted
    _run(server, 0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert _status(recorder) == 905
