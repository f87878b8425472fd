"""The fast paths: accept, close, read batches and the TLS ClientHello.

A plain TCP connection opens in one step when nothing needs deciding or
telling (no access limits, no ``connection_request`` / ``connected`` /
``ready_to_send`` listener, no per-connection timers or options), and a
clean close ends in one step when nothing is left to deliver and nobody
listens to ``disconnected``.  These tests switch the conditions on and off
while the server is listening and check that every event and setting still
takes effect on the very next connection.
"""

from __future__ import annotations

import socket
import time

import pytest
import pytest_twisted
from helpers import client, in_thread, listen, read_until, tls_client, until

from tcpserver import SSLStartMode, TCPServer
from tcpserver._clienthello import ClientHelloParser
from tcpserver.lifecycle import State
from tcpserver.testing import MemoryConnection, memory_server


def _echo(server: TCPServer) -> None:
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))


@pytest_twisted.ensureDeferred
async def test_quick_open_is_taken_only_while_nobody_needs_telling(server, monkeypatch):
    _echo(server)
    server.start_listening()
    port = server.local_port
    factory = server.factory
    assert factory.quiet_open
    # a connection that must be decided waits in the table's pending set
    # first; one that opens in one step never does
    pending: list[object] = []
    real_add = factory.table.add_pending

    def spy(entry: object) -> None:
        pending.append(entry)
        real_add(entry)

    monkeypatch.setattr(factory.table, "add_pending", spy)
    states: list[State] = []
    server.on("data_in", lambda e: states.append(factory.table.by_id[e.connection_id].state))
    assert await in_thread(client, port, b"a\n", 2) == b"a\n"
    assert pending == []
    assert states == [State.OPEN]
    await until(lambda: not server.connections)  # it closes in one step too

    # a listener for any accept-time event turns the fast path off ...
    for name in ("connection_request", "connected", "ready_to_send"):
        seen: list[object] = []
        server.on(name, seen.append)
        assert not factory.quiet_open
        assert await in_thread(client, port, b"b\n", 2) == b"b\n"
        assert len(seen) == 1, name
        assert len(pending) == 1, name
        pending.clear()
        server.off(name, seen.append)
        assert factory.quiet_open

    # ... and so do access limits
    server.config("BlockedClients=127.0.0.1")
    assert not factory.quiet_open
    assert await in_thread(client, port, b"c\n", 2, shut=True) == b""
    assert factory.counters["refused_access"] == 1
    server.config("BlockedClients=")
    server.config("MaxConnectionsPerAddress=5")
    assert not factory.quiet_open
    server.config("MaxConnectionsPerAddress=0")
    assert factory.quiet_open
    pending.clear()
    assert await in_thread(client, port, b"d\n", 2) == b"d\n"
    assert pending == []


@pytest_twisted.ensureDeferred
async def test_quick_open_sets_tcp_nodelay_and_counts(server):
    _echo(server)
    server.config("TcpNoDelay=True")
    server.start_listening()
    seen: dict[str, object] = {}

    def on_data(event):
        protocol = server.factory.table.by_id[event.connection_id]
        handle = protocol.transport.getHandle()
        seen["nodelay"] = handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        seen["ready"] = server.connections[event.connection_id].ready_to_send
        seen["pending"] = server.factory.table.pending

    server.on("data_in", on_data)
    assert await in_thread(client, server.local_port, b"x\n", 2) == b"x\n"
    assert seen == {"nodelay": 1, "ready": True, "pending": 0}
    stats = server.stats()
    assert stats["connections_accepted"] == 1
    await until(lambda: not server.connections)
    assert server.factory.table.open_sockets == 0


@pytest_twisted.ensureDeferred
async def test_accepted_sockets_inherit_tcp_nodelay_from_the_listening_socket(server, monkeypatch):
    """
    With TcpNoDelay the listening sockets carry TCP_NODELAY and accepted
    sockets come with it (no setsockopt per connection); the setting
    changed while listening applies to the next connections either way.
    """
    import threading

    _echo(server)
    server.config("TcpNoDelay=True")
    server.start_listening()
    endpoint = await server.listen_endpoint("tcp:0:interface=127.0.0.1")
    reactor_thread = threading.get_ident()
    set_on_accept: list[object] = []
    setsockopt = socket.socket.setsockopt

    def counting(sock: socket.socket, level: int, option: int, *value: object) -> None:
        if threading.get_ident() == reactor_thread and option == socket.TCP_NODELAY:
            set_on_accept.append(value)
        setsockopt(sock, level, option, *value)  # type: ignore[call-overload]

    monkeypatch.setattr(socket.socket, "setsockopt", counting)
    seen: list[int] = []

    def on_data(event):
        protocol = server.factory.table.by_id[event.connection_id]
        handle = protocol.transport.getHandle()
        seen.append(handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server.on("data_in", on_data)
    ports = (server.local_port, endpoint.getHost().port)
    for port in ports:
        assert await in_thread(client, port, b"x\n", 2) == b"x\n"
    assert seen == [1, 1]
    assert set_on_accept == []  # (none per connection: inherited)
    server.config("TcpNoDelay=False")
    for port in ports:
        assert await in_thread(client, port, b"y\n", 2) == b"y\n"
    assert seen[2:] == [0, 0]
    server.config("TcpNoDelay=True")
    for port in ports:
        assert await in_thread(client, port, b"z\n", 2) == b"z\n"
    assert seen[4:] == [1, 1]
    # only the listening sockets were told (twice each: off, on)
    assert len(set_on_accept) == 4
    await server.stop_listening()
    assert server.factory.nodelay_ports == frozenset()


@pytest_twisted.ensureDeferred
async def test_quiet_close_still_tells_a_late_disconnected_listener(server):
    _echo(server)
    server.start_listening()
    port = server.local_port
    assert await in_thread(client, port, b"a\n", 2, shut=True) == b"a\n"
    await until(lambda: not server.connections)

    gone: list[object] = []
    server.on("disconnected", gone.append)
    assert await in_thread(client, port, b"b\n", 2, shut=True) == b"b\n"
    await until(lambda: len(gone) == 1)
    assert gone[0].status_code == 0  # type: ignore[attr-defined]
    assert not server.connections
    assert server.stats()["bytes_received"] == 4


@pytest_twisted.ensureDeferred
async def test_quiet_close_delivers_a_last_partial_line(server):
    # bytes without a terminator are buffered: the close takes the full path
    # and delivers them with eol=False
    server.default_eol = b"\n"
    got: list[tuple[bytes, bool]] = []
    server.on("data_in", lambda e: got.append((e.text, e.eol)))
    server.start_listening()
    await in_thread(client, server.local_port, b"one\ntwo", 0, shut=True)
    await until(lambda: len(got) == 2)
    assert got == [(b"one", True), (b"two", False)]
    await until(lambda: not server.connections)


# -- a read batch: nothing is checked per line, yet every change applies to the next line


def test_listeners_changed_mid_batch_apply_to_the_next_line():
    server = memory_server(default_eol=b"\n")
    first: list[bytes] = []
    second: list[bytes] = []

    def take_second(event):
        second.append(event.text)

    def take_first(event):
        first.append(event.text)
        if event.text == b"b":
            server.off("data_in", take_first)
            server.on("data_in", take_second)

    server.on("data_in", take_first)
    client = MemoryConnection(server)
    client.feed(b"a\nb\nc\nd\n")  # one read: one batch
    assert first == [b"a", b"b"]
    assert second == [b"c", b"d"]
    assert server.factory.events_fired()["data_in"] == 4

    # a listener added mid-batch hears the next line too
    both: list[bytes] = []
    server.on("data_in", lambda e: both.append(e.text) if e.text == b"x" else None)
    server.on("data_in", lambda e: both.append(b"+" + e.text))
    client.feed(b"w\nx\ny\n")
    assert second == [b"c", b"d", b"w", b"x", b"y"]
    assert both == [b"+w", b"x", b"+x", b"+y"]
    # no batch is left in progress: a later change disturbs nothing
    server.off("data_in", take_second)
    client.feed(b"z\n")
    assert second == [b"c", b"d", b"w", b"x", b"y"]
    assert both == [b"+w", b"x", b"+x", b"+y", b"+z"]


def test_a_framing_change_mid_batch_reframes_the_rest():
    server = memory_server(default_eol=b"\n")
    got: list[bytes] = []

    def listener(event):
        got.append(event.text)
        if event.text == b"max":
            server.connections[event.connection_id].max_line_length = 256

    server.on("data_in", listener)
    client = MemoryConnection(server)
    client.feed(b"max\n" + b"z" * 300 + b"\nef\n")
    assert got == [b"max", b"z" * 256, b"z" * 44, b"ef"]
    assert server.factory.events_fired()["data_in"] == 4


def test_a_pause_mid_batch_keeps_the_rest_for_later():
    server = memory_server(default_eol=b"\n")
    got: list[bytes] = []

    def listener(event):
        got.append(event.text)
        if event.text == b"stop":
            server.pause_data(event.connection_id)

    server.on("data_in", listener)
    client = MemoryConnection(server)
    client.feed(b"one\nstop\ntwo\nthree\n")
    assert got == [b"one", b"stop"]
    protocol = server.connections[client.connection_id].protocol
    assert protocol.framer.buffered == len(b"two\nthree\n")
    server.process_data(client.connection_id)
    assert got == [b"one", b"stop", b"two", b"three"]
    assert server.factory.events_fired()["data_in"] == 4


# -- TLS: the ClientHello is parsed only when someone may see what it says


def _tls_echo(server: TCPServer, tls) -> int:
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    return listen(server)


@pytest_twisted.ensureDeferred
async def test_an_unwatched_client_hello_goes_straight_to_openssl(server, tls, monkeypatch):
    fed: list[bytes] = []
    real_feed = ClientHelloParser.feed

    def spy(self, data):
        fed.append(data)
        return real_feed(self, data)

    monkeypatch.setattr(ClientHelloParser, "feed", spy)
    port = _tls_echo(server, tls)
    got, info = await in_thread(tls_client, port, tls.client_context(), b"hi\n", 3)
    assert got == b"hi\n"
    assert info["version"] == "TLSv1.3"
    assert fed == []  # nobody listens to ssl_connection_request or ssl_status

    for name in ("ssl_status", "ssl_connection_request"):
        seen: list[object] = []
        server.on(name, seen.append)
        got, _ = await in_thread(tls_client, port, tls.client_context(), b"again\n", 6)
        assert got == b"again\n"
        assert fed, name  # parsed for the listener
        assert seen, name
        server.off(name, seen.append)
        fed.clear()


@pytest_twisted.ensureDeferred
async def test_an_unwatched_tls_port_still_rejects_plaintext(server, tls):
    errors: list[object] = []
    server.on("error", errors.append)
    opened: list[object] = []
    failed: list[object] = []  # (the manual's Connected with the failure's code)
    server.on("connected", lambda e: (failed if e.status_code else opened).append(e))
    port = _tls_echo(server, tls)

    def plaintext() -> bytes:
        try:
            return client(port, b"GET / HTTP/1.1\r\n\r\n", 1, timeout=3)
        except OSError:
            return b""

    assert await in_thread(plaintext) == b""
    await until(lambda: len(errors) == 1)
    assert errors[0].error_code == 276  # type: ignore[attr-defined]
    assert opened == []

    # a health check that half-closes without a byte gets its EOF at once
    # (not at the 30 s handshake timeout) and is not a failed handshake
    server.config("DefaultConnectionTimeout=30")
    started = time.monotonic()
    assert await in_thread(client, port, b"", 0, shut=True, timeout=10) == b""
    assert time.monotonic() - started < 5
    got, _ = await in_thread(tls_client, port, tls.client_context(), b"ok\n", 3)
    assert got == b"ok\n"
    await until(lambda: len(opened) == 1)
    assert len(errors) == 1

    # half a ClientHello, then a half-close: a failed handshake, at once
    partial = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    started = time.monotonic()
    await in_thread(client, port, partial, 0, shut=True, timeout=10)
    assert time.monotonic() - started < 5
    await until(lambda: len(errors) == 2)
    assert errors[1].error_code == 276  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("watched", [False, True])
async def test_a_started_handshake_that_stops_is_a_failure_either_way(server, tls, watched):
    # whether or not a listener makes tcpserver parse the ClientHello, half
    # a ClientHello and a close is a failed handshake; no byte is no noise
    errors: list[object] = []
    server.on("error", errors.append)
    if watched:
        server.on("ssl_status", lambda e: None)
    port = _tls_echo(server, tls)
    partial = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    await in_thread(client, port, partial, 0, shut=True, timeout=10)
    await until(lambda: len(errors) == 1)
    assert errors[0].error_code == 276  # type: ignore[attr-defined]
    await in_thread(client, port, b"", 0, shut=True, timeout=10)
    await until(lambda: not server.connections)
    assert len(errors) == 1
    assert server.stats()["tls_failures"] == 1


@pytest_twisted.ensureDeferred
async def test_a_listener_added_after_accept_sees_the_client_hello(server, tls):
    port = _tls_echo(server, tls)
    requests: list[object] = []

    def handshake_late() -> bytes:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        deadline = time.monotonic() + 5
        while not server.connections and time.monotonic() < deadline:
            time.sleep(0.01)  # (the reactor accepts it meanwhile)
        from twisted.internet import reactor
        from twisted.internet.threads import blockingCallFromThread

        blockingCallFromThread(reactor, server.on, "ssl_connection_request", requests.append)
        with tls.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"late\n")
            return read_until(sock, 5)

    assert await in_thread(handshake_late) == b"late\n"
    assert len(requests) == 1
    assert requests[0].server_name == "localhost"  # type: ignore[attr-defined]


class _Stop(BaseException):
    pass


def test_a_base_exception_mid_batch_loses_no_line():
    server = memory_server(default_eol=b"\n")
    got: list[bytes] = []
    raised: list[bool] = []

    def listener(event):
        got.append(event.text)
        if event.text == b"boom" and not raised:
            raised.append(True)
            raise _Stop  # not an Exception: it is not isolated, it propagates

    server.on("data_in", listener)
    client = MemoryConnection(server)
    with pytest.raises(_Stop):
        client.feed(b"a\nboom\nb\nc\n")
    assert got == [b"a", b"boom"]
    client.feed(b"d\n")  # the next read delivers the rest first
    assert got == [b"a", b"boom", b"b", b"c", b"d"]

    # and so does a close right after the exception
    got.clear()
    raised.clear()
    other = MemoryConnection(server)
    with pytest.raises(_Stop):
        other.feed(b"boom\ne\nf\n")
    other.close()
    server.reactor.advance(0)
    assert got == [b"boom", b"e", b"f"]


def test_a_timed_send_in_a_batch_fires_once_its_bytes_are_handed():
    # corked bytes are counted apart until the batch ends; a timed send's
    # Deferred must still wait for them (and for the bytes before them)
    server = memory_server(default_eol=b"\n")
    server.config("DefaultTimeout=5")
    seen: list[object] = []

    def listener(event):
        cid = event.connection_id
        server.factory.table.by_id[cid].send_timeout = 0  # an untimed send first
        server.send(cid, b"first\n")
        server.factory.table.by_id[cid].send_timeout = 5
        done = server.send(cid, event.text + b"\n")
        assert done is not None  # timed
        seen.append(done.called)

        def fired(_: None) -> None:
            seen.append(conn.written())

        done.addCallback(fired)

    server.on("data_in", listener)
    conn = MemoryConnection(server)
    conn.feed(b"one\n")
    assert seen == [False, b"first\none\n"]


def test_the_protocol_adapts_to_its_interfaces_without_a_conform_lookup():
    """
    Twisted adapts the protocol to ``IHalfCloseableProtocol`` at every FIN:
    ``__conform__ = None`` answers zope's lookup without the AttributeError
    a slotted object would raise and clear each time (0.45 -> 0.15 us), and
    adapting still gives the protocol itself for each interface it provides.
    """
    from twisted.internet.interfaces import (
        IHalfCloseableProtocol,
        ILoggingContext,
        IProtocol,
        IPushProducer,
    )

    from tcpserver.protocol import TCPServerProtocol

    assert TCPServerProtocol.__conform__ is None
    protocol = TCPServerProtocol(TCPServer().factory, None)
    for interface in (IHalfCloseableProtocol, ILoggingContext, IProtocol, IPushProducer):
        assert interface(protocol, None) is protocol
        assert interface.providedBy(protocol)
