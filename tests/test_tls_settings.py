"""Every SSL setting changes what a real TLS client sees (real sockets)."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import subprocess
import warnings

import pytest
import pytest_twisted
import trustme
from helpers import in_thread, listen, read_until, tls_client, until
from OpenSSL import SSL

from tcpserver import Certificate, CertStoreType, SSLStartMode, TCPServer, TCPServerError
from tcpserver.handlers import echo, wire_handler


def start(server: TCPServer, certificate: Certificate) -> int:
    server.ssl_cert = certificate
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    wire_handler(server, echo)
    return listen(server)


def handshake(port: int, context: ssl.SSLContext, server_name: str = "localhost"):
    try:
        return tls_client(port, context, b"x", 1, server_name=server_name)[1]
    except (ssl.SSLError, OSError) as exc:
        return exc


@pytest_twisted.ensureDeferred
async def test_cipher_strength(server, recorder, tls):
    server.config("SSLCipherStrength=256")
    port = start(server, tls.certificate())
    weak = tls.client_context()
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    assert isinstance(await in_thread(handshake, port, weak), Exception)
    info = await in_thread(handshake, port, tls.client_context())
    assert info["cipher"][2] >= 256


def tls12_client(tls, cipher: str) -> ssl.SSLContext:
    """A TLS 1.2 client offering only ``cipher`` (OpenSSL's name)."""
    context: ssl.SSLContext = tls.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(f"{cipher}:@SECLEVEL=0")
    return context


#: TLS 1.2 suites a client may offer: accepted by default or not.
TLS12_SUITES = {
    "ECDHE-RSA-AES128-GCM-SHA256": True,
    "ECDHE-RSA-AES256-GCM-SHA384": True,
    "ECDHE-RSA-CHACHA20-POLY1305": True,
    "AES128-GCM-SHA256": False,  # static RSA key exchange: no forward secrecy
    "AES256-SHA256": False,
    "AES128-SHA": False,  # ... and CBC with SHA-1
    "ECDHE-RSA-AES128-SHA": False,  # forward secret, but CBC with SHA-1
    "ECDHE-RSA-AES256-SHA384": False,  # CBC
}


@pytest_twisted.ensureDeferred
async def test_tls_1_2_takes_only_forward_secret_aead_suites_by_default(server, recorder, tls):
    port = start(server, tls.certificate())
    for cipher, accepted in TLS12_SUITES.items():
        info = await in_thread(handshake, port, tls12_client(tls, cipher))
        if accepted:
            assert not isinstance(info, Exception), (cipher, info)
            assert (info["version"], info["cipher"][0]) == ("TLSv1.2", cipher)
        else:
            assert isinstance(info, Exception), cipher
    # TLS 1.3 is untouched
    info = await in_thread(handshake, port, tls.client_context())
    assert info["version"] == "TLSv1.3"


@pytest.mark.parametrize(
    "config",
    [
        "OpenSSLCipherList=AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256",
        "SSLEnabledCipherSuites=TLS_RSA_WITH_AES_128_CBC_SHA;TLS_AES_128_GCM_SHA256",
    ],
)
@pytest_twisted.ensureDeferred
async def test_the_cipher_settings_still_override_the_default(server, recorder, tls, config):
    server.config(config)
    port = start(server, tls.certificate())
    info = await in_thread(handshake, port, tls12_client(tls, "AES128-SHA"))
    assert not isinstance(info, Exception), info
    assert info["cipher"][0] == "AES128-SHA"


@pytest_twisted.ensureDeferred
async def test_legacy_protocols_keep_openssl_default_ciphers(server, recorder, tls):
    """With TLS 1.0/1.1 enabled, DEFAULT is OpenSSL's (their clients know no AEAD suite)."""
    server.config("SSLEnabledProtocols=16320")  # TLS 1.0 - 1.3
    port = start(server, tls.certificate())
    old = tls12_client(tls, "ECDHE-RSA-AES128-SHA")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (TLS 1.0 is: that is the point)
        old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
    info = await in_thread(handshake, port, old)
    assert not isinstance(info, Exception), info
    assert info["version"] == "TLSv1"


@pytest_twisted.ensureDeferred
async def test_openssl_cipher_list_for_tls_1_2(server, recorder, tls):
    server.config("SSLEnabledProtocols=3072")
    server.config("OpenSSLCipherList=ECDHE-RSA-AES128-GCM-SHA256")
    port = start(server, tls.certificate())
    info = await in_thread(handshake, port, tls.client_context())
    assert info["version"] == "TLSv1.2"
    assert info["cipher"][0] == "ECDHE-RSA-AES128-GCM-SHA256"


@pytest_twisted.ensureDeferred
async def test_supported_groups(server, recorder, tls):
    from tcpserver.tls import can_set_groups

    server.config("TLS13SupportedGroups=ecdhe_secp384r1")
    server.config("TLS12SupportedGroups=ecdhe_secp384r1")
    if not can_set_groups():  # (older cryptography bindings): refused before listening
        with pytest.raises(TCPServerError) as caught:
            start(server, tls.certificate())
        assert caught.value.code == 10045
        assert "SupportedGroups" in str(caught.value)
        return
    seen = []
    server.on(
        "data_in",
        lambda e: seen.append(server.config(f"SSLNegotiatedKeyExchange[{e.connection_id}]")),
    )
    port = start(server, tls.certificate())
    await in_thread(handshake, port, tls.client_context())
    assert seen == ["ECDHE (secp384r1)"]


@pytest_twisted.ensureDeferred
async def test_signature_algorithms(server, recorder, tls):
    # only ECDSA signatures allowed, but the server key is RSA: no handshake
    server.config("TLS13SignatureAlgorithms=ecdsa_secp256r1_sha256")  # (both versions: same list)
    server.config("TLS12SignatureAlgorithms=ecdsa_secp256r1_sha256")
    port = start(server, tls.certificate())
    assert isinstance(await in_thread(handshake, port, tls.client_context()), Exception)
    await recorder.wait("error")
    assert recorder.of("error")[0].error_code == 276


def test_two_signature_algorithm_lists_that_openssl_cannot_keep_apart_are_refused():
    """OpenSSL has one sigalgs list: with TLS 1.2 and 1.3 enabled, differing lists are 10045."""
    server = TCPServer()
    server.config("TLS12SignatureAlgorithms=sha256-rsa")
    with pytest.raises(TCPServerError) as caught:
        server.config("TLS13SignatureAlgorithms=ecdsa_secp256r1_sha256")
    assert caught.value.code == 10045
    assert "TLS12SignatureAlgorithms" in str(caught.value)
    assert "'ecdsa_secp256r1_sha256'" in str(caught.value)
    assert server.config("TLS13SignatureAlgorithms") != "ecdsa_secp256r1_sha256"  # not stored
    # one version at a time, each list applies alone
    server.config("SSLEnabledProtocols=12288")
    server.config("TLS13SignatureAlgorithms=ecdsa_secp256r1_sha256")
    with pytest.raises(TCPServerError) as caught:
        server.config("SSLEnabledProtocols=15360")  # (TLS 1.2 back: the lists differ)
    assert caught.value.code == 10045
    server.config("SSLEnabledProtocols=3072")  # TLS 1.2 alone: its list applies
    server.config("TLS12SignatureAlgorithms=sha256-ecdsa")


def test_a_tls13_list_alone_with_both_versions_is_refused_when_listening(tls):
    """One list only (the other at its default), both versions: start_listening says 10045."""
    server = TCPServer()
    server.config("TLS13SignatureAlgorithms=ecdsa_secp256r1_sha256")  # (TLS12 list may follow)
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    server.local_host, server.local_port = "127.0.0.1", 0
    with pytest.raises(TCPServerError) as caught:
        server.start_listening()
    assert caught.value.code == 10045
    assert "TLS13SignatureAlgorithms='ecdsa_secp256r1_sha256'" in str(caught.value)
    assert not server.listening
    server.config("SSLEnabledProtocols=12288")  # TLS 1.3 alone: fine
    server.start_listening()
    try:
        assert server.listening
    finally:
        server.stop_listening()


def _tls13_sigalgs_handshake(port: int, cafile: str, sigalgs: str) -> tuple[int, str]:
    import subprocess

    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
         "-sigalgs", sigalgs, "-servername", "localhost", "-CAfile", cafile],
        input=b"x\n", capture_output=True, timeout=15,
    )  # fmt: skip
    return result.returncode, (result.stdout + result.stderr).decode("latin-1")


@pytest_twisted.ensureDeferred
async def test_the_tls13_list_alone_decides_tls13_handshakes(server, recorder, tls):
    server.config("SSLEnabledProtocols=12288")
    server.config("TLS13SignatureAlgorithms=rsa_pss_sha256")
    port = start(server, tls.certificate())  # (an RSA key)
    _code, out = await in_thread(
        _tls13_sigalgs_handshake, port, str(tls.ca_pem), "rsa_pss_rsae_sha256"
    )
    assert "Peer signature type: RSA-PSS" in out, out[-800:]
    assert "Peer signing digest: SHA256" in out, out[-800:]
    _code, out = await in_thread(
        _tls13_sigalgs_handshake, port, str(tls.ca_pem), "rsa_pss_rsae_sha512"
    )
    assert "Peer signing digest" not in out, out[-800:]  # (the server may not sign with it)


def test_renegotiation_option():
    server = TCPServer()
    contexts = server.factory.tls_contexts

    def options(cert):
        return contexts.build_context(cert).set_options(0)  # returns the current options

    import tempfile
    from pathlib import Path

    from helpers import TLSFiles

    files = TLSFiles(Path(tempfile.mkdtemp()))
    assert options(files.certificate()) & SSL.OP_NO_RENEGOTIATION
    server.config("SSLEnableRenegotiation=True")
    assert not options(files.certificate()) & SSL.OP_NO_RENEGOTIATION


@pytest_twisted.ensureDeferred
async def test_ca_certs_complete_the_servers_chain(server, recorder, tmp_path):
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("localhost", key_type=trustme.KeyType.RSA)
    key_and_leaf = tmp_path / "leaf.pem"
    key_and_leaf.write_bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())
    root_pem = tmp_path / "root.pem"
    root.cert_pem.write_to_path(str(root_pem))
    context = ssl.create_default_context(cafile=str(root_pem))
    port = start(server, Certificate(CertStoreType.PEM_KEY_FILE, str(key_and_leaf)))
    assert isinstance(await in_thread(handshake, port, context), Exception)  # chain incomplete
    await server.stop_listening()
    server.config(f"SSLCACerts={intermediate.cert_pem.bytes().decode()}")
    server.start_listening()
    info = await in_thread(handshake, server.local_port, context)
    assert info["version"] == "TLSv1.3"


@pytest_twisted.ensureDeferred
async def test_include_cert_chain(server, recorder, tls, tmp_path):
    intermediate = tls.ca.create_child_ca()
    client = intermediate.issue_cert("chained@example.org", common_name="chained client")
    client_pem = tmp_path / "chained.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(client_pem))  # leaf + intermediate
    server.ssl_authenticate_clients = True
    server.config(f"SSLClientCACerts={tls.ca_pem.read_text()}")
    server.config("SSLIncludeCertChain=True")
    port = start(server, tls.certificate())
    info = await in_thread(handshake, port, tls.client_context(cert=client_pem))
    assert not isinstance(info, Exception)
    event = recorder.of("ssl_client_authentication")[0]
    assert event.status == "OK"
    assert event.cert_encoded.count(b"BEGIN CERTIFICATE") == 2
    server.config("SSLIncludeCertChain=False")
    await in_thread(handshake, port, tls.client_context(cert=client_pem))
    assert recorder.of("ssl_client_authentication")[1].cert_encoded.count(b"BEGIN") == 1


@pytest_twisted.ensureDeferred
async def test_security_flags_ignore_time_validity(server, recorder, tls, tmp_path):
    expired = tls.ca.issue_cert(
        "old@example.org",
        common_name="expired client",
        not_before=datetime.datetime(2020, 1, 1),
        not_after=datetime.datetime(2021, 1, 1),
    )
    expired_pem = tmp_path / "expired.pem"
    expired.private_key_and_cert_chain_pem.write_to_path(str(expired_pem))
    server.ssl_authenticate_clients = True
    server.config(f"SSLClientCACerts={tls.ca_pem.read_text()}")
    port = start(server, tls.certificate())
    await in_thread(handshake, port, tls.client_context(cert=expired_pem))
    await recorder.wait("ssl_client_authentication")
    first = recorder.of("ssl_client_authentication")[0]
    assert first.accept is False
    assert "expired" in first.status
    server.config("SSLSecurityFlags=0x1")
    info = await in_thread(handshake, port, tls.client_context(cert=expired_pem))
    assert not isinstance(info, Exception)
    assert recorder.of("ssl_client_authentication")[1].accept is True


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl rehash")
@pytest_twisted.ensureDeferred
async def test_openssl_ca_dir(server, recorder, tls, tmp_path):
    directory = tmp_path / "cas"
    directory.mkdir()
    shutil.copy(tls.ca_pem, directory / "ca.pem")
    subprocess.run(["openssl", "rehash", str(directory)], check=True)
    server.ssl_authenticate_clients = True
    server.config(f"OpenSSLCADir={directory}")
    port = start(server, tls.certificate())
    info = await in_thread(handshake, port, tls.client_context(cert=tls.client_pem))
    assert not isinstance(info, Exception)
    assert recorder.of("ssl_client_authentication")[0].status == "OK"


@pytest_twisted.ensureDeferred
async def test_legacy_tls_only_when_enabled(server, recorder, tls):
    server.config("SSLEnabledProtocols=15360")
    port = start(server, tls.certificate())
    old = tls.client_context()
    old.minimum_version = ssl.TLSVersion.TLSv1_2
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    info = await in_thread(handshake, port, old)
    assert info["version"] == "TLSv1.2"


@pytest_twisted.ensureDeferred
async def test_pfx_certificate_serves(server, recorder, tls):
    port = start(server, Certificate(CertStoreType.PFX_FILE, str(tls.pfx), tls.password))
    info = await in_thread(handshake, port, tls.client_context())
    assert info["version"] == "TLSv1.3"


@pytest_twisted.ensureDeferred
async def test_large_tls_send_to_a_slow_reader_stays_bounded(server, recorder, tls):
    """Flow control through TLS: the queue limit holds and every byte arrives."""
    server.config("SendQueueLimit=262144")
    server.config("SendQueueHighWater=131072")
    total = 32 * 1024 * 1024
    sent = {"n": 0}

    def pump(cid):
        conn = server.connections[cid]
        while conn.ready_to_send and sent["n"] < total:
            server.send(cid, b"t" * 65536)
            sent["n"] += 65536
            assert conn.queued_bytes <= 262144 + 65536

    server.on("connected", lambda e: pump(e.connection_id))
    server.on("ready_to_send", lambda e: pump(e.connection_id))
    port = start(server, tls.certificate())

    context = tls.client_context()
    raw = await in_thread(socket.create_connection, ("127.0.0.1", port))
    with await in_thread(context.wrap_socket, raw, server_hostname="localhost") as sock:
        await recorder.wait("connected")
        cid = recorder.of("connected")[0].connection_id
        # not reading yet: the server fills its queue up to the high-water mark and waits
        await until(lambda: not server.connections[cid].ready_to_send)
        assert len(await in_thread(read_until, sock, total, 60)) == total
