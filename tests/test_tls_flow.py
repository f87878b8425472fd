"""TLS setup under flow control, pauses and early closes, in memory.

A Python ``ssl`` client (MemoryBIO) talks to the server's real TLS engine
through a MemoryConnection; the clock is a ``task.Clock``.  What these pin
down: output accepted while TLS is being set up is held (bounded) until the
handshake and the client-certificate check are done, plaintext promised
before ``start_ssl()`` goes out as plaintext, the handshake reads whatever
else holds reading back, and every way a handshake can end is reported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import MemoryTLSClient, Recorder, TLSFiles
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from tcpserver import SSLStartMode, TCPServerError, TCPServerFactory
from tcpserver.testing import MemoryConnection

EVENTS = (
    "connection_request",
    "ssl_connection_request",
    "ssl_client_authentication",
    "connected",
    "ready_to_send",
    "data_in",
    "disconnected",
    "error",
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: Any) -> TLSFiles:
    return TLSFiles(Path(tmp_path_factory.mktemp("tlsflow")))


def make_factory(files: TLSFiles, mode: SSLStartMode, **properties: Any) -> TCPServerFactory:
    factory = TCPServerFactory(Clock(), default_eol=b"\n", **properties)
    factory.ssl_cert = files.certificate()
    factory.ssl_start_mode = mode
    return factory


def tick(factory: TCPServerFactory) -> None:
    """Let the clock run the calls due now (close notifications)."""
    clock: Any = factory.reactor
    clock.advance(0)


def server_side(connection: MemoryConnection) -> Any:
    """The server's protocol of an accepted in-memory connection."""
    assert connection.protocol is not None
    return connection.protocol


def starttls_on(factory: TCPServerFactory, connection: MemoryConnection) -> bytes:
    """Ask for STARTTLS in plaintext; returns the plaintext the server wrote."""
    connection.feed(b"STARTTLS\n")
    return connection.written()


# -- the handshake reads whatever holds the application back ---------------------------


def test_a_listener_may_await_start_ssl(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT)
    log = Recorder(factory, EVENTS)
    finished: list[str] = []

    async def on_data(event: Any) -> None:
        if event.text == b"STARTTLS":
            factory.send(event.connection_id, b"220 go ahead\n")
            await factory.start_ssl(event.connection_id)  # reading is paused meanwhile
            factory.send(event.connection_id, b"secure now\n")
            finished.append("done")

    factory.on("data_in", lambda e: Deferred.fromCoroutine(on_data(e)))
    connection = MemoryConnection(factory)
    assert starttls_on(factory, connection) == b"220 go ahead\n"
    client = MemoryTLSClient(connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error
    assert client.received == b"secure now\n"
    assert finished == ["done"]
    assert log.names().count("connected") == 2


def test_pause_data_does_not_stop_a_starttls_handshake(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT)

    def on_data(event: Any) -> None:
        if event.text == b"STARTTLS":
            factory.pause_data(event.connection_id)
            factory.start_ssl(event.connection_id)

    factory.on("data_in", on_data)
    connection = MemoryConnection(factory)
    starttls_on(factory, connection)
    assert connection.reading  # the ClientHello must get in
    client = MemoryTLSClient(connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error
    # TLS is up: the user's pause applies to the socket again
    assert not connection.reading
    client.send(b"held\n")
    factory.process_data(connection.connection_id)
    assert connection.reading


@pytest.mark.parametrize("size", [1000, 300_000])
def test_starttls_with_a_full_send_queue(files: TLSFiles, size: int) -> None:
    """Plaintext above the high-water mark at start_ssl() goes out, then TLS starts."""
    factory = make_factory(files, SSLStartMode.EXPLICIT)

    def on_data(event: Any) -> None:
        if event.text == b"STARTTLS":
            factory.send(event.connection_id, b"p" * size + b"\n")
            factory.start_ssl(event.connection_id).addCallback(
                lambda _: factory.send(event.connection_id, b"after TLS\n")
            )

    factory.on("data_in", on_data)
    connection = MemoryConnection(factory)
    connection.transport_full()  # the kernel buffer is full: sends queue up
    assert starttls_on(factory, connection) == b""
    connection.transport_drained()
    assert connection.written() == b"p" * size + b"\n"
    client = MemoryTLSClient(connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error
    assert client.received == b"after TLS\n"


def test_implicit_output_above_high_water_before_the_client_hello(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    connection = MemoryConnection(factory)
    greeting = b"g" * 300_000 + b"\n"
    factory.send(connection.connection_id, greeting)  # e.g. a broadcast
    assert connection.written() == b""  # nothing in plaintext
    assert connection.reading  # flow control must not stop the handshake
    client = MemoryTLSClient(connection, files.client_context())
    client.pump(200)
    assert client.handshake_done, client.error
    assert client.received == greeting


# -- output held until the peer is known -----------------------------------------------


def test_sends_during_a_stalled_handshake_are_bounded(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    connection = MemoryConnection(factory)
    client = MemoryTLSClient(connection, files.client_context())
    client.hello_only()  # the engine starts, the client never finishes
    assert server_side(connection)._tls.engine is not None
    chunk = b"x" * 100_000

    def flood() -> None:
        for _ in range(200):
            factory.send(connection.connection_id, chunk)

    with pytest.raises(TCPServerError) as caught:
        flood()
    assert caught.value.code == 135
    held = factory.connections[connection.connection_id].queued_bytes
    assert held <= factory.settings["SendQueueLimit"]
    assert server_side(connection)._tls.engine._appSendBuffer == []


@pytest.mark.parametrize("decide", ["sync", "async"])
def test_nothing_reaches_a_refused_client_certificate(files: TLSFiles, decide: str) -> None:
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    factory.ssl_authenticate_clients = True
    factory.config("SSLClientCACerts=" + files.ca_pem.read_text())
    log = Recorder(factory, EVENTS)
    pending: list[tuple[Deferred[None], Any]] = []
    factory.on(
        "ssl_connection_request",
        lambda e: factory.send(e.connection_id, b"SECRET-FOR-AUTHENTICATED-CLIENTS\n"),
    )

    def judge(event: Any) -> Deferred[None] | None:
        if decide == "sync":
            event.accept = False
            return None
        waiting: Deferred[None] = Deferred()
        pending.append((waiting, event))
        return waiting

    factory.on("ssl_client_authentication", judge)
    connection = MemoryConnection(factory)
    client = MemoryTLSClient(connection, files.client_context(cert=files.stranger_pem))
    client.pump()
    if decide == "async":
        waiting, event = pending[0]
        factory.send(connection.connection_id, b"SENT-WHILE-DECIDING\n")
        client.pump()
        event.accept = False
        waiting.callback(None)
        client.pump()
    assert client.received == b""
    assert [e.error_code for e in log.of("error")] == [280]
    # the manual's Connected reports the failure: never a successful open
    assert [e.status_code for e in log.of("connected")] == [280]
    assert log.names()[-2:] == ["connected", "error"]
    assert "disconnected" not in log.names()


def test_nothing_happens_while_an_async_client_check_is_pending(files: TLSFiles) -> None:
    # (the clock-tier side of test_tls_sockets' async client check: however long it takes)
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    factory.ssl_authenticate_clients = True
    factory.config("SSLClientCACerts=" + files.ca_pem.read_text())
    log = Recorder(factory, EVENTS)
    decided: Deferred[None] = Deferred()
    factory.on("ssl_client_authentication", lambda e: decided)
    factory.on("data_in", lambda e: factory.send(e.connection_id, e.text + b"\n"))
    connection = MemoryConnection(factory)
    client = MemoryTLSClient(connection, files.client_context(cert=files.client_pem))
    client.pump()
    client.ssl.write(b"hi\n")
    client.pump()
    assert log.names().count("ssl_client_authentication") == 1
    clock: Any = factory.reactor
    clock.advance(60)
    client.pump()
    assert "connected" not in log.names()
    assert client.received == b""
    decided.callback(None)
    client.pump()
    assert "connected" in log.names()
    assert client.received == b"hi\n"


def test_detect_mode_holds_output_until_it_knows(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.DETECT)
    # a TLS client: what was sent before its first byte arrives encrypted
    tls_connection = MemoryConnection(factory)
    factory.send(tls_connection.connection_id, b"early\n")
    assert tls_connection.written() == b""
    client = MemoryTLSClient(tls_connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error
    assert client.received == b"early\n"
    # a plaintext client: the same send arrives in plaintext on its first byte
    plain = MemoryConnection(factory)
    factory.send(plain.connection_id, b"early\n")
    assert plain.written() == b""
    plain.feed(b"hello\n")
    assert plain.written() == b"early\n"


def test_timed_send_parked_before_start_ssl_goes_out_in_plaintext(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT, default_timeout=30)
    results: list[object] = []

    def on_data(event: Any) -> None:
        if event.text == b"STARTTLS":
            cid = event.connection_id
            factory.send(cid, b"x" * factory.settings["SendQueueLimit"])  # fills the queue
            parked = factory.send(cid, b"220 ready for TLS\n")  # no room: parked
            assert parked is not None
            parked.addBoth(results.append)
            assert factory.connections[cid].bytes_sent == 0  # parked, not queued
            assert not parked.called
            factory.start_ssl(cid)

    factory.on("data_in", on_data)
    connection = MemoryConnection(factory)
    connection.transport_full()
    starttls_on(factory, connection)
    connection.transport_drained()
    assert connection.written().endswith(b"x220 ready for TLS\n")
    assert results == [None]
    client = MemoryTLSClient(connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error


def test_start_ssl_waits_for_send_file_and_files_follow_the_handshake(
    files: TLSFiles, tmp_path: Path
) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT)
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 2000)
    connection = MemoryConnection(factory)
    cid = connection.connection_id
    sent = factory.send_file(cid, str(path))
    with pytest.raises(TCPServerError) as caught:
        factory.start_ssl(cid)
    assert caught.value.code == 10022
    assert "send_file" in str(caught.value)
    while not sent.called:
        connection.transport_drained()
    assert connection.written() == path.read_bytes()
    # once TLS starts, a file sent during the handshake streams after it
    tls_done = factory.start_ssl(cid)
    after = factory.send_file(cid, str(path))
    client = MemoryTLSClient(connection, files.client_context())
    client.pump(500)
    assert tls_done.called
    assert after.called
    assert client.received == path.read_bytes()


# -- closing before TLS is up ------------------------------------------------------------


def test_send_and_disconnect_before_the_handshake_completes(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    log = Recorder(factory, EVENTS)

    def refuse_politely(event: Any) -> None:
        factory.send(event.connection_id, b"503 go away\n")
        factory.disconnect(event.connection_id)

    factory.on("ssl_connection_request", refuse_politely)
    connection = MemoryConnection(factory)
    client = MemoryTLSClient(connection, files.client_context())
    client.pump()
    assert client.handshake_done, client.error
    assert client.received == b"503 go away\n"
    assert connection.closed
    tick(factory)
    assert [(e.status_code) for e in log.of("disconnected")] == [0]
    assert log.of("error") == []


def test_a_peer_leaving_mid_handshake_is_a_handshake_error(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT)
    log = Recorder(factory, EVENTS)
    outcome: list[Any] = []
    factory.on(
        "data_in",
        lambda e: factory.start_ssl(e.connection_id).addErrback(outcome.append),
    )
    connection = MemoryConnection(factory)
    starttls_on(factory, connection)
    MemoryTLSClient(connection, files.client_context()).hello_only()
    connection.close()  # a clean FIN, no TLS alert
    tick(factory)
    assert [e.error_code for e in log.of("error")] == [276]
    assert "closed the connection during the TLS handshake" in log.of("error")[0].description
    assert [e.status_code for e in log.of("disconnected")] == [276]
    assert outcome[0].value.code == 276


def test_a_clean_close_before_the_client_hello_is_not_an_error(files: TLSFiles) -> None:
    """A health check (connect, close) makes no noise."""
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    log = Recorder(factory, EVENTS)
    connection = MemoryConnection(factory)
    connection.close()
    tick(factory)
    assert log.names() == ["connection_request"]
    assert len(factory.connections) == 0


@pytest.mark.parametrize(
    "events",
    [
        [e for e in EVENTS if e != "ssl_connection_request"],  # the hello would go to OpenSSL
        [*EVENTS, "ssl_status"],  # the hello would be parsed
    ],
)
def test_a_reset_before_the_client_hello_is_not_an_error(
    files: TLSFiles, logged: Any, events: list[str]
) -> None:
    """A health check that closes with RST is as quiet as one that closes with FIN."""
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    log = Recorder(factory, events)
    connection = MemoryConnection(factory)
    connection.reset()
    tick(factory)
    assert [n for n in log.names() if n != "ssl_status"] == ["connection_request"]
    assert factory.stats()["tls_failures"] == 0
    assert not [m for m in logged.messages() if "TLS failed" in m]
    assert len(factory.connections) == 0


def test_a_reset_after_the_first_hello_byte_is_still_an_error(files: TLSFiles) -> None:
    """Only a reset before any byte is silent: a started handshake that breaks is reported."""
    factory = make_factory(files, SSLStartMode.IMPLICIT)
    log = Recorder(factory, EVENTS)
    connection = MemoryConnection(factory)
    connection.feed(b"\x16")
    connection.reset()
    tick(factory)
    assert [e.error_code for e in log.of("error")] == [10054]
    assert factory.stats()["tls_failures"] == 1


def test_a_reset_before_a_starttls_client_hello_is_reported(files: TLSFiles) -> None:
    """A STARTTLS client asked for the handshake: its reset is a failure, as its FIN is."""
    factory = make_factory(files, SSLStartMode.EXPLICIT)
    log = Recorder(factory, EVENTS)
    factory.on("data_in", lambda e: factory.start_ssl(e.connection_id).addErrback(lambda f: None))
    connection = MemoryConnection(factory)
    starttls_on(factory, connection)
    connection.reset()
    tick(factory)
    assert [e.error_code for e in log.of("error")] == [10054]
    assert [e.status_code for e in log.of("disconnected")] == [10054]


def test_close_all_closes_a_starttls_handshake_gracefully(files: TLSFiles) -> None:
    factory = make_factory(files, SSLStartMode.EXPLICIT)
    log = Recorder(factory, EVENTS)
    factory.on("data_in", lambda e: factory.start_ssl(e.connection_id))
    connection = MemoryConnection(factory)
    starttls_on(factory, connection)
    done = factory.close_all(timeout=5)
    tick(factory)
    assert done.called
    assert [e.status_code for e in log.of("disconnected")] == [0]
    assert not connection.transport.aborted


def test_alerts_are_reported_once_someone_listens(files: TLSFiles) -> None:
    """OpenSSL's info callback is only installed while ssl_status has listeners."""
    import contextlib
    import ssl

    factory = make_factory(files, SSLStartMode.IMPLICIT)
    messages: list[str] = []

    def handshake_and_close() -> None:
        connection = MemoryConnection(factory)
        client = MemoryTLSClient(connection, files.client_context())
        client.pump()
        assert client.handshake_done, client.error
        with contextlib.suppress(ssl.SSLWantReadError):
            client.ssl.unwrap()  # sends close_notify
        client.pump()

    handshake_and_close()  # builds (and caches) a context without the callback
    listener = lambda e: messages.append(e.message)  # noqa: E731
    factory.on("ssl_status", listener)
    handshake_and_close()
    assert "alert received: warning close_notify" in messages
    factory.off("ssl_status", listener)
    assert factory.tls_contexts._cache == {}  # rebuilt without the callback
    messages.clear()
    factory.on("ssl_status", lambda e: None)  # (someone else listens again)
    factory.off("ssl_status", listener)
    handshake_and_close()
    assert messages == []
