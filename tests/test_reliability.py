"""No connection a client can pin for ever: the edges an adversarial probe found.

Each test here is about one way a client (or a listener) could keep a
connection, its descriptor or its table entry alive with nothing left to
end it.  Network behaviour goes through real sockets on 127.0.0.1; the
timing rules also run on a clock (``memory_server``).
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest_twisted
from helpers import in_memory, in_thread, listen, read_until, until

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
