"""TLS through real sockets: Python's ssl module and openssl s_client as clients."""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import subprocess
import time

import pytest
import pytest_twisted
from helpers import client, in_thread, listen, read_until, sleep, tls_client, until
from twisted.internet.defer import Deferred

from tcpserver import SSLStartMode, TCPServer
from tcpserver._clienthello import MAX_CLIENT_HELLO_RECORDS
from tcpserver.handlers import echo, wire_handler


def tls_server(server: TCPServer, tls, mode=SSLStartMode.IMPLICIT, eol=b"\n") -> int:
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = mode
    server.default_eol = eol
    return listen(server)


# -- implicit TLS ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_implicit_tls_events_framing_and_readouts(server, recorder, tls):
    readouts = {}

    def on_data(event):
        for name in (
            "Version",
            "Cipher",
            "CipherStrength",
            "CipherSuite",
            "KeyExchange",
            "KeyExchangeStrength",
        ):
            readouts[name] = server.config(f"SSLNegotiated{name}[{event.connection_id}]")
        server.send_line(event.connection_id, b"secure " + event.text)

    server.on("data_in", on_data)
    port = tls_server(server, tls)
    got, info = await in_thread(tls_client, port, tls.client_context(), b"hello\nwor", 14)
    assert got == b"secure hello\r\n"
    await recorder.wait("disconnected")
    got, info = await in_thread(tls_client, port, tls.client_context(), b"one\ntwo\n", 24)
    assert got == b"secure one\r\nsecure two\r\n"
    assert info["version"] == "TLSv1.3"
    await recorder.wait("disconnected", 2)
    cid = recorder.of("connected")[1].connection_id
    names = recorder.names(cid)
    assert names[0] == "ssl_status"
    assert names.index("ssl_connection_request") < names.index("connected")
    assert names[names.index("connected") :][:2] == ["connected", "ready_to_send"]
    request = next(e for e in recorder.of("ssl_connection_request") if e.connection_id == cid)
    assert request.server_name == "localhost"
    assert "TLS_AES_256_GCM_SHA384" in request.supported_cipher_suites
    assert "rsa_pss_sha256" in request.supported_signature_algs
    assert readouts["Version"] == "TLSv1.3"
    assert readouts["CipherSuite"].startswith("TLS_")
    assert readouts["Cipher"] == info["cipher"][0]
    assert int(readouts["CipherStrength"]) >= 128
    assert readouts["KeyExchange"].startswith("ECDHE")
    assert int(readouts["KeyExchangeStrength"]) > 0
    statuses = [e.message for e in recorder.of("ssl_status") if e.connection_id == cid]
    assert any(m.startswith("handshake complete: TLSv1.3") for m in statuses)
    # the partial line of the first connection arrived at its close
    assert (b"wor", False) in recorder.data()


@pytest.mark.parametrize("watched", [False, True])
@pytest_twisted.ensureDeferred
async def test_a_client_offering_alpn_is_served(server, tls, watched):
    """tcpserver speaks no ALPN protocol: a client's offer (curl, browsers) is ignored."""
    wire_handler(server, echo)
    if watched:  # (else nobody listens: the hello goes straight to OpenSSL)
        server.on("ssl_connection_request", lambda e: None)
    port = tls_server(server, tls)
    context = tls.client_context(alpn=["h2", "http/1.1"])

    def talk():
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.sendall(b"alpn\n")
            return read_until(sock, 5), sock.selected_alpn_protocol()

    assert await in_thread(talk) == (b"alpn\n", None)
    _, out = await in_thread(s_client, port, "-alpn", "h2", "-CAfile", str(tls.ca_pem))
    assert "No ALPN negotiated" in out, out
    assert "Verify return code: 0 (ok)" in out
    assert server.stats()["tls_failures"] == 0


@pytest_twisted.ensureDeferred
async def test_large_transfer_through_tls(server, recorder, tls):
    wire_handler(server, echo)
    port = tls_server(server, tls, eol=b"")
    blob = bytes(range(256)) * 8192  # 2 MiB

    def exchange():
        context = tls.client_context()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as sock,
        ):
            sock.sendall(blob)
            return read_until(sock, len(blob), 20)

    assert await in_thread(exchange) == blob


# -- explicit TLS (STARTTLS) -------------------------------------------------------------


def starttls_handler(server: TCPServer, started: list[object]) -> None:
    def on_data(event):
        cid = event.connection_id
        if event.text == b"STARTTLS":
            server.send_line(cid, "OK go ahead")
            server.start_ssl(cid).addBoth(started.append)
        else:
            server.send_line(cid, b"echo " + event.text)

    server.on("data_in", on_data)


@pytest_twisted.ensureDeferred
async def test_starttls(server, recorder, tls):
    started: list[object] = []
    starttls_handler(server, started)
    port = tls_server(server, tls, SSLStartMode.EXPLICIT)

    def talk():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"plain\n")
            assert read_until(raw, 12) == b"echo plain\r\n"
            raw.sendall(b"STARTTLS\n")
            assert read_until(raw, 13) == b"OK go ahead\r\n"
            with tls.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"secret\n")
                return read_until(sock, 13), sock.version()

    got, version = await in_thread(talk)
    assert got == b"echo secret\r\n"
    assert version == "TLSv1.3"
    await recorder.wait("disconnected")
    cid = recorder.of("connected")[0].connection_id
    assert recorder.names(cid).count("connected") == 2
    assert started == [None]
    assert recorder.of("error") == []


@pytest_twisted.ensureDeferred
async def test_starttls_discards_injected_plaintext(server, recorder, tls):
    started: list[object] = []
    starttls_handler(server, started)
    port = tls_server(server, tls, SSLStartMode.EXPLICIT)

    def inject():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"STARTTLS\nINJECTED COMMAND\n")
            assert read_until(raw, 13) == b"OK go ahead\r\n"
            with tls.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
                sock.sendall(b"real\n")
                return read_until(sock, 11)

    assert await in_thread(inject) == b"echo real\r\n"
    await recorder.wait("disconnected")
    assert [t for t, _ in recorder.data()] == [b"STARTTLS", b"real"]
    errors = recorder.of("error")
    assert [e.error_code for e in errors] == [902]
    assert "17 bytes" in errors[0].description


@pytest_twisted.ensureDeferred
async def test_starttls_awaited_in_an_async_listener(server, recorder, tls):
    """The listener's await pauses data_in, not the handshake's reading."""

    async def on_data(event):
        if event.text == b"STARTTLS":
            server.send_line(event.connection_id, "220 go ahead")
            await server.start_ssl(event.connection_id)
            server.send_line(event.connection_id, "secure now")

    server.on("data_in", on_data)
    port = tls_server(server, tls, SSLStartMode.EXPLICIT)

    def talk():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"STARTTLS\n")
            assert read_until(raw, 14) == b"220 go ahead\r\n"
            with tls.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
                return read_until(sock, 12)

    assert await in_thread(talk) == b"secure now\r\n"
    await recorder.wait("disconnected")
    assert recorder.of("error") == []


@pytest_twisted.ensureDeferred
async def test_starttls_after_more_plaintext_than_the_high_water_mark(server, recorder, tls):
    size = 3 * server.factory.settings["SendQueueHighWater"]  # a multiple of 64 KiB

    def on_data(event):
        if event.text == b"STARTTLS":
            for _ in range(size // 65536):  # the first fills Twisted, the rest queue here
                server.send(event.connection_id, b"p" * 65536)
            server.send(event.connection_id, b"\n")
            server.start_ssl(event.connection_id)

    server.on("data_in", on_data)
    port = tls_server(server, tls, SSLStartMode.EXPLICIT)

    context = tls.client_context()
    with await in_thread(socket.create_connection, ("127.0.0.1", port), 5) as raw:
        await in_thread(raw.sendall, b"STARTTLS\n")
        plain = await in_thread(read_until, raw, size + 1)
        with await in_thread(context.wrap_socket, raw, server_hostname="localhost") as sock:
            version = sock.version()
            # closed only once the server is done with the handshake too (else its
            # start_ssl() may fail with the client's reset, unwatched)
            await recorder.wait("connected", 2)
    assert plain == b"p" * size + b"\n"
    assert version == "TLSv1.3"


# -- a failed handshake: the manual's Connected with the failure ------------------------


@pytest_twisted.ensureDeferred
async def test_a_handshake_timeout_fires_connected_with_10060(server, recorder, tls):
    server.config("HandshakeTimeout=0.5")
    port = tls_server(server, tls)
    with await in_thread(socket.create_connection, ("127.0.0.1", port), 5) as silent:
        await recorder.wait("error")
        with contextlib.suppress(ConnectionResetError):  # (the server reset it)
            assert await in_thread(silent.recv, 10) == b""
    (failed,) = recorder.of("connected")
    assert failed.status_code == 10060
    assert "HandshakeTimeout" in failed.description
    assert recorder.names()[-2:] == ["connected", "error"]
    assert "disconnected" not in recorder.names()  # it never opened
    assert server.connections == {}


@pytest_twisted.ensureDeferred
async def test_a_failed_starttls_fires_connected_again_with_its_code(server, recorder, tls):
    def on_data(event):
        if event.text == b"STARTTLS" and event.eol:
            server.start_ssl(event.connection_id).addErrback(lambda _: None)

    server.on("data_in", on_data)
    port = tls_server(server, tls, SSLStartMode.EXPLICIT)
    with await in_thread(socket.create_connection, ("127.0.0.1", port), 5) as raw:
        await in_thread(raw.sendall, b"STARTTLS\n")
        await recorder.wait("data_in")  # (start_ssl() is called from its listener)
        await in_thread(raw.sendall, b"this is no ClientHello\r\n")
        await recorder.wait("disconnected")
    codes = [
        (getattr(e, "status_code", None), name)
        for name, e in recorder.events
        if name in ("connected", "error", "disconnected")
    ]
    assert [name for _, name in codes] == ["connected", "connected", "error", "disconnected"]
    assert codes[0][0] == 0  # the plaintext connection opened
    assert codes[1][0] == 276  # the manual's Connected for the TLS that failed
    assert recorder.of("error")[0].error_code == 276


# -- SSLStartMode 0 (the manual's automatic) and DETECT ---------------------------------


@pytest_twisted.ensureDeferred
async def test_detect_serves_tls_and_plaintext_on_one_port(server, recorder, tls):
    wire_handler(server, echo)
    port = tls_server(server, tls, SSLStartMode.DETECT)
    plain = await in_thread(client, port, b"plain line\n", 11)
    secure, info = await in_thread(tls_client, port, tls.client_context(), b"tls line\n", 9)
    assert plain == b"plain line\n"
    assert secure == b"tls line\n"
    assert info["version"] == "TLSv1.3"


@pytest.mark.parametrize("mode", ["0", "automatic", "Automatic"])
@pytest_twisted.ensureDeferred
async def test_automatic_is_implicit_tls_never_plaintext(server, recorder, tls, mode):
    """The manual: automatic is implicit except on a protocol's plaintext port - here, implicit."""
    wire_handler(server, echo)
    server.config(f"SSLStartMode={mode}")
    server.ssl_cert = tls.certificate()
    port = listen(server)
    assert server.ssl_start_mode == SSLStartMode.AUTOMATIC  # (the value set stays)

    def plaintext() -> bytes:
        try:
            return client(port, b"plain line\n", 1, timeout=3)
        except OSError:
            return b""

    assert await in_thread(plaintext) == b""  # never served in plaintext
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 276
    assert recorder.of("data_in") == []
    secure, info = await in_thread(tls_client, port, tls.client_context(), b"tls line\n", 9)
    assert secure == b"tls line\n"
    assert info["version"] == "TLSv1.3"


@pytest_twisted.ensureDeferred
async def test_automatic_starts_the_handshake_at_accept(server, recorder, tls):
    """A client that waits for the server (server-speaks-first) still gets TLS at once."""
    server.ssl_start_mode = SSLStartMode.AUTOMATIC
    server.on("connected", lambda e: e.status_code or server.send_line(e.connection_id, "hello"))
    server.ssl_cert = tls.certificate()
    port = listen(server)
    got, _ = await in_thread(tls_client, port, tls.client_context(), b"", 7)
    assert got == b"hello\r\n"


# -- client certificates ------------------------------------------------------------------


def client_auth_server(server: TCPServer, tls) -> int:
    server.ssl_authenticate_clients = True
    server.config(f"SSLClientCACerts={tls.ca_pem.read_text()}")
    wire_handler(server, echo)
    return tls_server(server, tls)


def try_tls(port, context, data=b"hi\n"):
    """The echo, or what went wrong.  With TLS 1.3 the client finishes its side
    of the handshake before the server checks its certificate, so a refusal
    shows as a close (b"") or an SSL error, depending on timing."""
    try:
        return tls_client(port, context, data, len(data))[0]
    except (ssl.SSLError, OSError) as exc:
        return exc


def refused(result):
    return isinstance(result, Exception) or result == b""


@pytest_twisted.ensureDeferred
async def test_client_certificate_accepted(server, recorder, tls):
    port = client_auth_server(server, tls)
    got = await in_thread(try_tls, port, tls.client_context(cert=tls.client_pem))
    assert got == b"hi\n"
    event = recorder.of("ssl_client_authentication")[0]
    assert event.accept is True
    assert event.status == "OK"
    assert event.cert_subject.startswith("CN=test client")
    assert "tcpserver test CA" in event.cert_issuer
    assert event.cert_encoded.startswith(b"-----BEGIN CERTIFICATE-----")
    assert event.cert_encoded.count(b"BEGIN CERTIFICATE") == 1


@pytest_twisted.ensureDeferred
async def test_unknown_issuer_refused_then_overridden(server, recorder, tls):
    port = client_auth_server(server, tls)
    got = await in_thread(try_tls, port, tls.client_context(cert=tls.stranger_pem))
    assert refused(got)
    await recorder.wait("ssl_client_authentication")
    event = recorder.of("ssl_client_authentication")[0]
    assert event.accept is False
    assert "local issuer" in event.status
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 280
    assert [e.status_code for e in recorder.of("connected")] == [280]  # a failed Connected

    def trust_anyway(event):
        event.accept = True

    server.on("ssl_client_authentication", trust_anyway)
    assert await in_thread(try_tls, port, tls.client_context(cert=tls.stranger_pem)) == b"hi\n"


@pytest_twisted.ensureDeferred
async def test_no_client_certificate_is_reported(server, recorder, tls):
    port = client_auth_server(server, tls)
    got = await in_thread(try_tls, port, tls.client_context())
    assert refused(got)
    await recorder.wait("ssl_client_authentication")
    event = recorder.of("ssl_client_authentication")[0]
    assert event.cert_encoded == b""
    assert event.accept is False
    assert "No client certificate" in event.status
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 281


@pytest_twisted.ensureDeferred
async def test_async_client_check_and_full_chain(server, recorder, tls):
    server.config("SSLIncludeCertChain=True")
    decided: Deferred[None] = Deferred()

    async def check(event):
        await decided
        event.accept = event.cert_subject.startswith("CN=test client")

    server.on("ssl_client_authentication", check)
    port = client_auth_server(server, tls)
    pending = in_thread(try_tls, port, tls.client_context(cert=tls.client_pem))
    await recorder.wait("ssl_client_authentication")
    # the check is pending (test_tls_flow shows nothing happens however long it takes)
    assert "connected" not in recorder.names()
    decided.callback(None)
    assert await pending == b"hi\n"
    # the client sent only its leaf; with a chain it would be here too
    assert recorder.of("ssl_client_authentication")[0].cert_encoded.count(b"BEGIN") >= 1


@pytest_twisted.ensureDeferred
async def test_security_flags_allow_unknown_ca(server, recorder, tls):
    server.config("SSLSecurityFlags=0x10")
    port = client_auth_server(server, tls)
    assert await in_thread(try_tls, port, tls.client_context(cert=tls.stranger_pem)) == b"hi\n"
    assert "unknown CA allowed" in recorder.of("ssl_client_authentication")[0].status


@pytest_twisted.ensureDeferred
async def test_ca_file_and_dir_are_trusted(server, recorder, tls, tmp_path):
    server.ssl_authenticate_clients = True
    server.config(f"OpenSSLCAFile={tls.ca_pem}")
    wire_handler(server, echo)
    port = tls_server(server, tls)
    assert await in_thread(try_tls, port, tls.client_context(cert=tls.client_pem)) == b"hi\n"
    assert recorder.of("ssl_client_authentication")[0].status == "OK"


# -- SNI ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sni_picks_the_certificate(server, recorder, tls):
    other = tls.certificate(tls.other_pem)

    def choose(event):
        if event.server_name == "other.example":
            event.certificate = other

    server.on("ssl_connection_request", choose)
    wire_handler(server, echo)
    port = tls_server(server, tls)

    def peer_name(name):
        return tls_client(port, tls.client_context(), b"x\n", 2, server_name=name)[1]["peer"]

    default = await in_thread(peer_name, "localhost")
    chosen = await in_thread(peer_name, "other.example")
    assert ("commonName", "localhost") in sum(default["subject"], ())
    assert ("commonName", "other.example") in sum(chosen["subject"], ())
    contexts = server.factory.tls_contexts
    assert contexts.factory_for(other) is contexts.factory_for(other)
    assert len(contexts._cache) == 2  # one per certificate, not per handshake
    await in_thread(peer_name, "other.example")
    assert len(contexts._cache) == 2


@pytest_twisted.ensureDeferred
async def test_async_sni_listener(server, recorder, tls):
    other = tls.certificate(tls.other_pem)

    async def choose(event):
        await sleep(0.05)  # e.g. a certificate store lookup
        event.certificate = other

    server.on("ssl_connection_request", choose)
    wire_handler(server, echo)
    port = tls_server(server, tls)
    _, info = await in_thread(
        tls_client, port, tls.client_context(), b"x\n", 2, server_name="other.example"
    )
    assert ("commonName", "other.example") in sum(info["peer"]["subject"], ())


# -- settings that change the handshake ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_protocol_versions(server, recorder, tls):
    wire_handler(server, echo)
    server.config("SSLEnabledProtocols=3072")  # TLS 1.2 only
    port = tls_server(server, tls)
    _, info = await in_thread(tls_client, port, tls.client_context(), b"x\n", 2)
    assert info["version"] == "TLSv1.2"
    tls13_only = tls.client_context()
    tls13_only.minimum_version = ssl.TLSVersion.TLSv1_3
    got = await in_thread(try_tls, port, tls13_only)
    assert refused(got)
    await recorder.wait("error")
    error = recorder.of("error")[0]
    assert error.error_code == 276
    assert "protocol" in error.description


@pytest_twisted.ensureDeferred
async def test_session_reuse(server, recorder, tls):
    wire_handler(server, echo)
    server.config("ReuseSSLSession=True")
    port = tls_server(server, tls)
    context = tls.client_context()

    def twice():
        results = []
        session = None
        for _ in range(2):
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                context.wrap_socket(raw, server_hostname="localhost", session=session) as sock,
            ):
                sock.sendall(b"x\n")
                read_until(sock, 2)
                results.append(sock.session_reused)
                session = sock.session
        return results

    assert await in_thread(twice) == [False, True]


@pytest_twisted.ensureDeferred
async def test_no_session_reuse_by_default(server, recorder, tls):
    wire_handler(server, echo)
    port = tls_server(server, tls)
    context = tls.client_context()

    def twice():
        results = []
        session = None
        for _ in range(2):
            with (
                socket.create_connection(("127.0.0.1", port)) as raw,
                context.wrap_socket(raw, server_hostname="localhost", session=session) as sock,
            ):
                sock.sendall(b"x\n")
                read_until(sock, 2)
                results.append(sock.session_reused)
                session = sock.session
        return results

    assert await in_thread(twice) == [False, False]


@pytest_twisted.ensureDeferred
async def test_key_log_file_in_nss_format(server, recorder, tls, tmp_path):
    log_path = tmp_path / "keys.log"
    server.config(f"SSLKeyLogFile={log_path}")
    wire_handler(server, echo)
    port = tls_server(server, tls)
    await in_thread(tls_client, port, tls.client_context(), b"x\n", 2)
    lines = log_path.read_text().splitlines()
    labels = {line.split()[0] for line in lines}
    assert {
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    } <= labels
    for line in lines:
        _label, client_random, secret = line.split()
        assert len(client_random) == 64
        int(client_random, 16)
        int(secret, 16)


@pytest_twisted.ensureDeferred
async def test_log_ssl_packets_and_alerts(server, recorder, tls):
    server.config("LogSSLPackets=True")
    wire_handler(server, echo)
    port = tls_server(server, tls)
    await in_thread(tls_client, port, tls.client_context(), b"x\n", 2)
    await recorder.wait("disconnected")
    messages = [e.message for e in recorder.of("ssl_status")]
    assert any(m.startswith("record received: handshake") for m in messages)
    assert any(m.startswith("record sent: handshake") for m in messages)
    assert any(m.startswith("record received: application_data") for m in messages)
    assert any("close_notify" in m for m in messages)


@pytest_twisted.ensureDeferred
async def test_cipher_settings_reach_the_handshake(server, recorder, tls):
    wire_handler(server, echo)
    server.config("SSLEnabledCipherSuites=TLS_CHACHA20_POLY1305_SHA256")
    port = tls_server(server, tls)
    _, info = await in_thread(tls_client, port, tls.client_context(), b"x\n", 2)
    assert info["cipher"][0] == "TLS_CHACHA20_POLY1305_SHA256"


# -- bad input costs one connection -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_plaintext_to_a_tls_port(server, recorder, tls, logged):
    wire_handler(server, echo)
    port = tls_server(server, tls)

    def plaintext():
        try:
            return client(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1, timeout=3)
        except OSError:
            return b""

    assert await in_thread(plaintext) == b""
    await recorder.wait("error")
    error = recorder.of("error")[0]
    assert error.error_code == 276
    assert "not a TLS handshake record" in error.description
    (failed,) = recorder.of("connected")  # the manual's Connected, with the failure
    assert (failed.status_code, failed.description) == (276, error.description)
    assert recorder.names().index("connected") < recorder.names().index("error")
    assert len([m for m in logged.messages() if "TLS failed" in m]) == 1
    got, _ = await in_thread(tls_client, port, tls.client_context(), b"still\n", 6)
    assert got == b"still\n"


@pytest.mark.parametrize("close", ["fin", "rst"])
@pytest_twisted.ensureDeferred
async def test_a_health_check_makes_no_noise(server, recorder, tls, logged, close):
    """Connect, then close (FIN) or reset (SO_LINGER 0: RST) before any byte: no error."""
    port = tls_server(server, tls)

    def knock():
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if close == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    await in_thread(knock)
    await recorder.wait("connection_request")
    await until(lambda: len(server.connections) == 0)
    # a whole handshake after it: whatever the knock caused has been dispatched by then
    await in_thread(tls_client, port, tls.client_context())
    await recorder.wait("disconnected")
    assert recorder.of("error") == []
    assert server.stats()["tls_failures"] == 0
    assert server.stats()["tls_handshakes"] == 1
    assert not [m for m in logged.messages() if "TLS failed" in m]
    assert recorder.names().count("connected") == 1


@pytest_twisted.ensureDeferred
async def test_garbage_and_truncated_hellos(server, recorder, tls):
    wire_handler(server, echo)
    server.config("DefaultConnectionTimeout=0.5")
    port = tls_server(server, tls)

    def send_raw(data):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(data)
            try:
                return read_until(sock, 1, 3, until_eof=True)
            except OSError:
                return b""

    garbage = b"\x16\x03\x01\x00\x20" + b"\x01\x00\x00\x1c" + b"\xff" * 28
    await in_thread(send_raw, garbage)
    truncated = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # then silence
    started = time.monotonic()
    await in_thread(send_raw, truncated)
    assert time.monotonic() - started < 3
    await recorder.wait("error", 2)
    codes = [e.error_code for e in recorder.of("error")]
    assert codes == [276, 10060]
    assert "DefaultConnectionTimeout" in recorder.of("error")[1].description
    got, _ = await in_thread(tls_client, port, tls.client_context(), b"fine\n", 5)
    assert got == b"fine\n"


def fragmented_hello_client(port: int, context: ssl.SSLContext, records: int) -> bytes:
    """
    A Python ``ssl`` client (MemoryBIO) over a socket that cuts its ClientHello
    into ``records`` TLS records (a byte each, then the rest), then finishes
    the handshake and says hi.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    first = outgoing.read()
    message = first[5 : 5 + int.from_bytes(first[3:5], "big")]
    assert len(message) >= records
    pieces = [message[i : i + 1] for i in range(records - 1)] + [message[records - 1 :]]
    wire = b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in pieces)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(wire)
        while True:
            try:
                tls_object.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                data = sock.recv(65536)
                if not data:
                    return b""
                incoming.write(data)
        tls_object.write(b"hi\n")
        sock.sendall(outgoing.read())
        got = b""
        while not got.endswith(b"\n"):
            data = sock.recv(65536)
            if not data:
                break
            incoming.write(data)
            with contextlib.suppress(ssl.SSLWantReadError):
                got += tls_object.read()
        return got


@pytest_twisted.ensureDeferred
async def test_a_client_hello_cut_into_many_records(server, recorder, tls):
    """tcpserver reads a hello cut into records and hands OpenSSL what it read."""
    wire_handler(server, echo)
    port = tls_server(server, tls)
    context = tls.client_context()
    size = len(real_hello_message(context))  # (a byte per record)
    assert await in_thread(fragmented_hello_client, port, context, size) == b"hi\n"
    assert recorder.of("ssl_connection_request")[0].server_name == "localhost"
    assert recorder.of("error") == []

    # more records than a ClientHello may take: refused before OpenSSL sees it
    def too_many_records() -> bytes:
        message = b"\x01" + (5000).to_bytes(3, "big") + bytes(5000)
        wire = b"".join(
            b"\x16\x03\x01\x00\x01" + message[i : i + 1]
            for i in range(MAX_CLIENT_HELLO_RECORDS + 1)
        )
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(wire)
            try:
                return read_until(sock, 1, 5, until_eof=True)
            except OSError:
                return b""  # (reset: the server closed with the rest unread)

    assert await in_thread(too_many_records) == b""
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 276
    assert "more than 4096 records" in recorder.of("error")[0].description


def real_hello_message(context: ssl.SSLContext) -> bytes:
    """The ClientHello (the handshake message) ``context`` would send."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()[5:]


@pytest_twisted.ensureDeferred
async def test_stall_after_the_client_hello(server, recorder, tls):
    server.config("DefaultConnectionTimeout=0.5")
    port = tls_server(server, tls)
    hello = _python_client_hello()

    def stall():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(hello)
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except OSError:
                pass  # the server resets the stalled connection
            return answer

    answer = await in_thread(stall)
    assert answer[:1] == b"\x16"  # the ServerHello came, then we went quiet
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 10060
    assert len(server.connections) == 0


def _python_client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()


# -- openssl s_client ---------------------------------------------------------------------------


def s_client(port: int, *args: str, data: bytes = b"", timeout: float = 15) -> tuple[int, str]:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input=data,
        capture_output=True,
        timeout=timeout,
    )
    return result.returncode, (result.stdout + result.stderr).decode("latin-1")


@pytest_twisted.ensureDeferred
async def test_openssl_s_client_with_sni_and_client_certificate(server, recorder, tls):
    other = tls.certificate(tls.other_pem)
    server.on(
        "ssl_connection_request",
        lambda e: setattr(e, "certificate", other) if e.server_name == "other.example" else None,
    )
    server.ssl_authenticate_clients = True
    server.config(f"SSLClientCACerts={tls.ca_pem.read_text()}")

    def answer_and_close(event):
        server.send_line(event.connection_id, b"got " + event.text)
        server.disconnect(event.connection_id)

    server.on("data_in", answer_and_close)
    port = tls_server(server, tls)
    _code, out = await in_thread(
        s_client,
        port,
        "-servername",
        "other.example",
        "-CAfile",
        str(tls.ca_pem),
        "-cert",
        str(tls.client_cert_pem),
        "-key",
        str(tls.client_key_pem),
        "-verify_return_error",
        "-ign_eof",
        data=b"over s_client\n",
    )
    assert "CN=other.example" in out.replace(" = ", "=")
    assert "Verify return code: 0 (ok)" in out
    assert "got over s_client" in out
    assert recorder.of("ssl_client_authentication")[0].accept is True


@pytest_twisted.ensureDeferred
async def test_openssl_s_client_tls_1_1_refused(server, recorder, tls):
    wire_handler(server, echo)
    port = tls_server(server, tls)
    code, out = await in_thread(s_client, port, "-tls1_1", "-CAfile", str(tls.ca_pem))
    assert code != 0
    assert "Cipher is (NONE)" in out or "no protocols available" in out or "alert" in out
    await recorder.wait("error")  # the handshake failed: the connection's last event
    assert [e.status_code for e in recorder.of("connected")] == [recorder.of("error")[0].error_code]
    assert recorder.of("connected")[0].status_code != 0
    assert "disconnected" not in recorder.names()


@pytest_twisted.ensureDeferred
async def test_openssl_s_client_starttls_smtp(server, recorder, tls):
    """A toy SMTP greeting, enough for ``s_client -starttls smtp``."""
    server.default_eol = b"\r\n"

    def greet(event):
        server.send_line(event.connection_id, "220 tcpserver ESMTP")

    def smtp(event):
        cid, line = event.connection_id, event.text.upper()
        if line.startswith(b"EHLO"):
            server.send_line(cid, "250-tcpserver")
            server.send_line(cid, "250 STARTTLS")
        elif line == b"STARTTLS":
            server.send_line(cid, "220 Ready to start TLS")
            server.start_ssl(cid)
        else:
            server.send_line(cid, b"250 you said " + event.text)
            server.disconnect(cid)

    server.on(
        "connected",
        lambda e: greet(e) if not server.connections[e.connection_id].protocol.tls_active else None,
    )
    server.on("data_in", smtp)
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.EXPLICIT
    server.start_listening()
    _code, out = await in_thread(
        s_client,
        server.local_port,
        "-starttls",
        "smtp",
        "-CAfile",
        str(tls.ca_pem),
        "-servername",
        "localhost",
        "-ign_eof",
        "-crlf",
        data=b"NOOP\n",
    )
    assert "Verify return code: 0 (ok)" in out
    assert "250 you said NOOP" in out
    cid = recorder.of("connected")[0].connection_id
    assert recorder.names(cid).count("connected") == 2


def _renegotiate(port: int, cafile: str) -> list[str]:
    """
    ``openssl s_client -tls1_2``: send a line, ask for a renegotiation ("R"),
    send another; returns what it printed, up to the second echo or its end.
    """
    import queue
    import threading

    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
         "-servername", "localhost", "-CAfile", cafile],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1,
    )  # fmt: skip
    assert proc.stdin is not None
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    out = proc.stdout

    def read() -> None:
        for line in out:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []

    def wait_for(text: str) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return False
            seen.append(line.rstrip())
            if line.rstrip() == text:
                return True
        return False

    try:
        for send, expect in (("hello\n", "hello"), ("R\n", "RENEGOTIATING"), ("world\n", "world")):
            try:
                proc.stdin.write(send)
                proc.stdin.flush()
            except BrokenPipeError:
                break
            if not wait_for(expect):
                break
    finally:
        proc.kill()
        proc.wait()
    return seen


@pytest.mark.parametrize("enabled", [True, False])
@pytest_twisted.ensureDeferred
async def test_ssl_enable_renegotiation_with_a_real_tls12_renegotiation(
    server, recorder, tls, enabled
):
    """SSLEnableRenegotiation=True lets a client renegotiate (OpenSSL 3 needs
    SSL_OP_ALLOW_CLIENT_RENEGOTIATION too); the default refuses it."""
    server.config(f"SSLEnableRenegotiation={enabled}")
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = tls_server(server, tls)
    seen = await in_thread(_renegotiate, port, str(tls.ca_pem))
    assert "hello" in seen, seen
    assert "RENEGOTIATING" in seen, seen
    assert ("world" in seen) is enabled, seen[-5:]
