"""No connection a client can pin for ever: the edges an adversarial probe found.

Each test here is about one way a client (or a listener) could keep a
connection, its descriptor or its table entry alive with nothing left to
end it.  Network behaviour goes through real sockets on 127.0.0.1; the
timing rules also run on a clock (``memory_server``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from helpers import MemoryTLSClient, in_memory, in_thread, listen, read_until, until

from tcpserver import SSLStartMode, TCPServerError
from tcpserver.handlers import load_handler, wire_handler
from tcpserver.testing import MemoryConnection

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _half_close_after(port: int, greeting: int, send: bytes) -> bytes:
    """Read ``greeting`` bytes, send ``send``, half-close, read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        got = read_until(sock, greeting)
        sock.sendall(send)
        sock.shutdown(socket.SHUT_WR)
        return got + read_until(sock, 0, 10, until_eof=True)


# -- 1. STARTTLS after the client's FIN ------------------------------------------------


def test_start_ssl_after_the_peers_fin_raises_and_the_connection_closes():
    server, rec = in_memory(default_eol=b"\r\n", SSLStartMode="explicit")
    raised: list[TCPServerError] = []

    def on_data(event):
        try:
            server.start_ssl(event.connection_id)
        except TCPServerError as exc:
            raised.append(exc)

    server.on("data_in", on_data)
    client = MemoryConnection(server)
    client.feed(b"STARTTLS")  # no CRLF: delivered with eol=False once the FIN comes
    client.half_close()
    server.reactor.advance(0)
    assert rec.data() == [(b"STARTTLS", False)]
    assert [e.code for e in raised] == [10058]
    assert "half-close" in str(raised[0])
    assert client.closed
    assert rec.names()[-1] == "disconnected"
    assert len(server.connections) == 0


@pytest_twisted.ensureDeferred
async def test_starttls_example_ignores_an_unfinished_command_and_closes(server, recorder, tls):
    """The probe's attack: 'STARTTLS' without CRLF, then FIN, against examples/starttls.py."""
    handler = load_handler(str(EXAMPLES / "starttls.py"))
    handler.setup(server)
    wire_handler(server, handler)
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.EXPLICIT
    port = listen(server)
    greeting = b"220 tcpserver ESMTP ready\r\n"
    for _ in range(3):
        got = await in_thread(_half_close_after, port, len(greeting), b"STARTTLS")
        assert got == greeting  # no "220 go ahead": not a command; then EOF
    await recorder.wait("disconnected", 3)
    await until(lambda: len(server.connections) == 0)


@pytest_twisted.ensureDeferred
async def test_start_ssl_on_a_half_closed_real_connection_leaves_nothing_behind(
    server, recorder, tls
):
    """The core rule without the example's eol check: 30 such clients, MaxConnections 30."""
    server.config("MaxConnections=30")
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.EXPLICIT
    server.default_eol = b"\r\n"
    codes: list[int] = []

    def on_data(event):
        try:
            server.start_ssl(event.connection_id)
        except TCPServerError as exc:
            codes.append(exc.code)

    server.on("data_in", on_data)
    port = listen(server)
    for _ in range(30):
        assert await in_thread(_half_close_after, port, 0, b"STARTTLS") == b""
    await until(lambda: len(server.connections) == 0)
    assert codes == [10058] * 30
    # and the next real client still gets in
    assert await in_thread(_half_close_after, port, 0, b"hello") == b""


# -- 2. a listener that never finishes -------------------------------------------------


def _never(server):
    """A data_in listener whose Deferred never fires; returns the Deferreds."""
    from twisted.internet.defer import Deferred

    pending: list[Deferred[None]] = []

    def listener(event):
        d: Deferred[None] = Deferred()
        pending.append(d)
        return d

    server.on("data_in", listener)
    return pending


@pytest.mark.parametrize("leave", ["fin", "reset"])
def test_a_peer_that_leaves_behind_a_stuck_listener_is_noticed_and_ended(leave):
    server, rec = in_memory(default_eol=b"\n")
    pending = _never(server)
    client = MemoryConnection(server)
    client.feed(b"ask\nmore\n")
    assert client.reading  # (reading goes on behind the listener: the FIN is seen)
    if leave == "fin":
        client.half_close()
    else:
        client.close()
    server.reactor.advance(29.9)
    assert "disconnected" not in rec.names()
    assert len(server.connections) == 1
    server.reactor.advance(0.2)  # ListenerGracePeriod (30 s by default)
    assert rec.names()[-1] == "disconnected"
    assert rec.data() == [(b"ask", True)]  # ("more" waited behind it: dropped, and logged)
    assert len(server.connections) == 0
    assert client.closed or leave == "reset"
    # the listener finishing late changes nothing; its send is refused clearly
    with pytest.raises(TCPServerError) as raised:
        server.send(client.connection_id, b"late\n")
    assert raised.value.code == 126
    pending[0].callback(None)
    assert rec.names().count("disconnected") == 1
    assert not server.reactor.getDelayedCalls()


def test_a_listener_that_finishes_in_time_keeps_every_event():
    server, rec = in_memory(default_eol=b"\n")
    pending = _never(server)
    client = MemoryConnection(server)
    client.feed(b"ask\nmore\n")
    client.close()
    server.reactor.advance(10)
    pending[0].callback(None)
    assert rec.data() == [(b"ask", True), (b"more", True)]
    pending[1].callback(None)
    assert rec.names()[-1] == "disconnected"
    assert len(server.connections) == 0
    assert not server.reactor.getDelayedCalls()  # (the grace timer went with it)


def test_listener_grace_period_zero_waits_as_long_as_it_takes():
    server, rec = in_memory(default_eol=b"\n", ListenerGracePeriod=0)
    pending = _never(server)
    client = MemoryConnection(server)
    client.feed(b"ask\n")
    client.close()
    server.reactor.advance(3600)
    assert "disconnected" not in rec.names()
    pending[0].callback(None)
    assert rec.names()[-1] == "disconnected"


def test_shutdown_is_a_hard_deadline_for_a_stuck_listener():
    server, rec = in_memory(default_eol=b"\n", ListenerGracePeriod=0)
    _never(server)
    client = MemoryConnection(server)
    client.feed(b"ask\n")
    done = server.shutdown(timeout=1)
    server.reactor.advance(0.9)
    assert not done.called
    server.reactor.advance(0.2)
    server.reactor.advance(0)
    assert done.called
    assert rec.names()[-1] == "disconnected"
    assert len(server.connections) == 0


def _ask_and_leave(port: int, count: int, reset: bool) -> None:
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"ask\n")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _close_wait(port: int) -> int:
    """Server sockets of ``port`` in CLOSE-WAIT (the peer left, we did not close)."""
    import subprocess

    out = subprocess.run(
        ["ss", "-Htan", "state", "close-wait", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return len(out.splitlines())


@pytest.mark.parametrize("reset", [False, True])
@pytest_twisted.ensureDeferred
async def test_real_clients_that_leave_a_stuck_listener_leave_nothing_behind(
    server, recorder, reset
):
    server.default_eol = b"\n"
    server.config("ListenerGracePeriod=0.5")
    _never(server)
    port = listen(server)
    await in_thread(_ask_and_leave, port, 50, reset)
    await recorder.wait("data_in", 50)
    await recorder.wait("disconnected", 50, timeout=10)
    assert len(server.connections) == 0
    assert server.stats()["connections_open"] == 0
    assert _close_wait(port) == 0


@pytest_twisted.ensureDeferred
async def test_shutdown_of_a_real_server_with_a_stuck_listener_ends_on_time(recorder):
    import time

    from tcpserver import TCPServer

    srv = TCPServer(local_host="127.0.0.1")
    rec = type(recorder)(srv)
    srv.default_eol = b"\n"
    _never(srv)
    port = listen(srv)
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(b"ask\n")
        await rec.wait("data_in", 1)
        started = time.monotonic()
        await srv.shutdown(timeout=1)
        took = time.monotonic() - started
        assert 0.9 < took < 3
        assert rec.names()[-1] == "disconnected"
    finally:
        sock.close()


STUCK = """
from twisted.internet.defer import Deferred


def on_data_in(server, event):
    print("asked", flush=True)
    return Deferred()  # never fires
"""


def test_sigterm_drain_timeout_ends_twistd_with_a_stuck_listener(processes, tmp_path):
    import signal
    import time

    (tmp_path / "stuck.py").write_text(STUCK)
    proc = processes.twistd("--port", "0", "--handler", "stuck", "--drain-timeout", "2")
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=20)
    try:
        sock.sendall(b"ask\r\n")
        proc.wait_for(r"asked")
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 6
    finally:
        sock.close()


# -- 3. disconnect() of a client that never reads --------------------------------------


def test_disconnect_of_a_client_that_never_reads_ends_by_default():
    """Default settings: CloseGracePeriod (30 s) turns the stuck close into a reset (905)."""
    server, rec = in_memory(default_eol=b"\n")
    client = MemoryConnection(server)
    client.transport_full()  # the peer stopped reading
    server.send(client.connection_id, b"x" * 1_000_000)
    server.disconnect(client.connection_id)
    server.reactor.advance(29)
    assert not client.transport.aborted
    server.reactor.advance(1.5)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [e.status_code for e in rec.of("disconnected")] == [905]
    assert len(server.connections) == 0


def _connect_and_never_read(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        socks.append(sock)
    return socks


@pytest_twisted.ensureDeferred
async def test_disconnect_of_real_clients_that_never_read_frees_their_sockets(server, recorder):
    server.config("CloseGracePeriod=0.5")
    server.config("OutBufferSize=4096")
    server.on("connected", lambda e: server.send(e.connection_id, b"y" * 1_000_000))
    port = listen(server)
    socks = await in_thread(_connect_and_never_read, port, 10)
    try:
        await recorder.wait("connected", 10)
        for cid in list(server.connections):
            server.disconnect(cid)
        await recorder.wait("disconnected", 10, timeout=10)
        assert {e.status_code for e in recorder.of("disconnected")} == {905}
        assert len(server.connections) == 0
    finally:
        for sock in socks:
            sock.close()


# -- 4. HandshakeTimeout: the whole opening has a deadline ----------------------------


def _tls_server(tls, **settings):
    server, rec = in_memory(default_eol=b"\n", echo=True, **settings)
    server.ssl_cert = tls.certificate()
    return server, rec


def _errors(rec):
    return [(e.error_code, e.description) for e in rec.of("error")]


def _cut_at(server, rec, client, seconds, setting):
    """The silent ``client`` is reset ``seconds`` after accept, with 10060 naming ``setting``."""
    server.reactor.advance(seconds - 0.1)
    assert not client.closed
    server.reactor.advance(0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [code for code, _ in _errors(rec)] == [10060]
    assert setting in _errors(rec)[0][1]


@pytest.mark.parametrize("mode", ["implicit", "automatic", "detect"])
def test_a_silent_connection_is_reset_at_the_handshake_deadline_by_default(tls, mode):
    server, rec = _tls_server(tls, SSLStartMode=mode)
    client = MemoryConnection(server)
    _cut_at(server, rec, client, 10, "HandshakeTimeout")
    assert len(server.connections) == 0


def _client_hello(tls) -> bytes:
    connection = MemoryConnection(memory_server_for_hello(tls))
    return MemoryTLSClient(connection, tls.client_context()).hello_only()


def memory_server_for_hello(tls):
    server, _ = _tls_server(tls, SSLStartMode="implicit")
    return server


def test_a_trickled_client_hello_is_cut_at_the_deadline_though_never_idle(tls):
    """One byte every 1.5 s never trips a 2 s inactivity timeout; the deadline ends it."""
    hello = _client_hello(tls)
    server, rec = _tls_server(tls, SSLStartMode="implicit", DefaultConnectionTimeout=2)
    client = MemoryConnection(server)
    sent = 0
    while server.reactor.seconds() + 1.5 < 10:
        server.reactor.advance(1.5)
        client.feed(hello[sent : sent + 1])
        sent += 1
    assert not client.closed  # (inactivity never reached 2 s)
    server.reactor.advance(10 - server.reactor.seconds() + 0.01)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [code for code, _ in _errors(rec)] == [10060]
    assert "HandshakeTimeout" in _errors(rec)[0][1]


@pytest.mark.parametrize("mode", ["implicit", "detect"])
def test_a_handshake_at_accept_runs_both_opening_clocks_on_one_timer(tls, mode):
    """DefaultConnectionTimeout and HandshakeTimeout from accept: one callLater, not two."""
    server, rec = _tls_server(
        tls, SSLStartMode=mode, DefaultConnectionTimeout=2, HandshakeTimeout=10
    )
    delays: list[float] = []
    call_later = server.reactor.callLater

    def counting(delay: float, f: Any, *args: Any, **kwargs: Any) -> Any:
        delays.append(delay)
        return call_later(delay, f, *args, **kwargs)

    server.reactor.callLater = counting
    client = MemoryConnection(server)
    assert delays == [2]  # (the earlier of the two clocks)
    _cut_at(server, rec, client, 2, "DefaultConnectionTimeout")


def test_the_deadline_counts_from_accept_across_a_proxy_header(tls):
    server, rec = _tls_server(
        tls, SSLStartMode="implicit", ProxyProtocol=True, TrustedProxies="*",
        ProxyHeaderTimeout=0, HandshakeTimeout=4,
    )  # fmt: skip
    client = MemoryConnection(server)
    server.reactor.advance(3)
    client.feed(b"PROXY TCP4 10.0.0.1 10.0.0.2 1234 443\r\n")
    server.reactor.advance(0.9)
    assert not client.closed
    server.reactor.advance(0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [code for code, _ in _errors(rec)] == [10060]


def test_the_deadline_waits_while_the_application_decides(tls):
    """An async connection_request's time is the server's, not the peer's."""
    from twisted.internet.defer import Deferred

    server, rec = _tls_server(tls, SSLStartMode="implicit", HandshakeTimeout=5)
    decided: Deferred[bool] = Deferred()
    server.on("connection_request", lambda e: decided)
    client = MemoryConnection(server)
    server.reactor.advance(3)
    server.reactor.advance(60)  # the application takes its time: not counted
    decided.callback(True)
    server.reactor.advance(1.9)
    assert not client.closed
    tls_client = MemoryTLSClient(client, tls.client_context())
    tls_client.pump()
    assert tls_client.handshake_done, tls_client.error
    server.reactor.advance(30)  # open: the deadline is over
    assert not client.closed
    assert _errors(rec) == []


def test_starttls_has_the_deadline_from_start_ssl(tls):
    server, rec = _tls_server(tls, SSLStartMode="explicit")
    failed: list[int] = []

    def on_data(event):
        done = server.start_ssl(event.connection_id)
        done.addErrback(lambda f: failed.append(f.value.code))

    server.on("data_in", on_data)
    client = MemoryConnection(server)
    server.reactor.advance(100)  # plaintext may stay silent: no deadline
    assert not client.closed
    client.feed(b"STARTTLS\n")
    server.reactor.advance(9.9)
    assert not client.closed
    server.reactor.advance(0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [code for code, _ in _errors(rec)] == [10060]
    assert "start_ssl()" in _errors(rec)[0][1]
    assert failed == [10060]  # (start_ssl's Deferred hears why)


def test_handshake_timeout_zero_turns_the_deadline_off(tls):
    server, _ = _tls_server(tls, SSLStartMode="implicit", HandshakeTimeout=0)
    client = MemoryConnection(server)
    server.reactor.advance(3600)
    assert not client.closed


def test_a_plaintext_server_has_no_opening_deadline():
    server, _ = in_memory(default_eol=b"\n")
    client = MemoryConnection(server)
    server.reactor.advance(3600)  # (a server-speaks-first client may listen for ever)
    assert not client.closed


def _silent_then_real(port: int, count: int, cafile: str) -> tuple[bytes, float]:
    """``count`` silent connects; wait until they are reset; then a real TLS client."""
    import ssl
    import time

    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    started = time.monotonic()
    try:
        for sock in silent:
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""
        waited = time.monotonic() - started
    finally:
        for sock in silent:
            sock.close()
    context = ssl.create_default_context(cafile=cafile)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(b"hello\n")
        return read_until(sock, 6), waited


@pytest_twisted.ensureDeferred
async def test_silent_connects_no_longer_lock_real_tls_clients_out(server, recorder, tls):
    server.config("MaxConnections=50")
    server.config("HandshakeTimeout=1")
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    answer, waited = await in_thread(_silent_then_real, port, 50, str(tls.ca_pem))
    assert answer == b"hello\n"
    assert 0.5 < waited < 5
    assert [e.error_code for e in recorder.of("error")] == [10060] * 50


# -- 5. DETECT arms DefaultConnectionTimeout before the first byte ---------------------


@pytest.mark.parametrize("mode", ["implicit", "automatic", "detect"])
def test_every_tls_start_mode_resets_a_silent_connection_at_the_inactivity_timeout(tls, mode):
    server, rec = _tls_server(
        tls, SSLStartMode=mode, DefaultConnectionTimeout=2, HandshakeTimeout=0
    )
    client = MemoryConnection(server)
    server.reactor.advance(1.9)
    assert not client.closed
    server.reactor.advance(0.2)
    assert client.transport.aborted
    server.reactor.advance(0)
    assert [code for code, _ in _errors(rec)] == [10060]
    assert "DefaultConnectionTimeout" in _errors(rec)[0][1]


@pytest_twisted.ensureDeferred
async def test_detect_mode_resets_real_silent_connections_like_implicit(server, recorder, tls):
    server.config("DefaultConnectionTimeout=0.5")
    server.config("HandshakeTimeout=0")
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.DETECT
    port = listen(server)

    def silent() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                return sock.recv(1)
            except ConnectionResetError:
                return b""

    assert await in_thread(silent) == b""
    await recorder.wait("error", 1)
    assert [e.error_code for e in recorder.of("error")] == [10060]
