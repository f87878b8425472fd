"""Certificates without sockets: client-certificate checks, the context cache,
store loading edge cases and the key log file."""

from __future__ import annotations

import base64
import contextlib
import datetime
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL

from tcpserver import Certificate, CertStoreType, TCPServer, TCPServerError
from tcpserver.clientcerts import ALLOW_UNKNOWN_CA, IGNORE_TIME_VALIDITY, verify_client
from tcpserver.tls import TLSContexts

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
NETSCAPE_CERT_TYPE = x509.ObjectIdentifier("2.16.840.1.113730.1.1")

# one key for every test certificate: generating keys is the slow part
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    common_name: str,
    issuer: x509.Certificate | None = None,
    *,
    ca: bool = False,
    expired: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    key_usage: dict[str, bool] | None = None,
    netscape_type: int | None = None,
    signed_with: ec.EllipticCurvePrivateKey = KEY,
) -> x509.Certificate:
    """A certificate for KEY; self-signed unless ``issuer`` is given."""
    not_before, not_after = (NOW - 10 * DAY, NOW - DAY) if expired else (NOW - DAY, NOW + 30 * DAY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.subject if issuer is not None else _name(common_name))
        .public_key(KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    if key_usage is not None:
        flags = dict.fromkeys(
            (
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ),
            False,
        )
        flags.update(key_usage)
        builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    if netscape_type is not None:
        # a one-byte BIT STRING: tag, length, unused bits, the bits
        value = bytes([0x03, 0x02, 0x00, netscape_type])
        builder = builder.add_extension(
            x509.UnrecognizedExtension(NETSCAPE_CERT_TYPE, value), critical=False
        )
    return builder.sign(signed_with, hashes.SHA256())


CA = issue("Trusted CA", ca=True)
UNKNOWN_CA = issue("Unknown CA", ca=True)


def verify(leaf, flags=0, chain=(), trusted=(CA,)):
    return verify_client(leaf, list(chain), list(trusted), "", "", flags)


# -- client certificates: ALLOW_UNKNOWN_CA still checks the rest ------------------------


def test_unknown_ca_allowed_accepts_a_valid_certificate():
    for leaf, chain in (
        (issue("self"), ()),
        (issue("alice", UNKNOWN_CA), ()),
        (issue("alice", UNKNOWN_CA), (UNKNOWN_CA,)),
    ):
        accepted, status = verify(leaf, ALLOW_UNKNOWN_CA, chain)
        assert accepted, status
        assert "unknown CA allowed" in status
    assert verify(issue("alice", UNKNOWN_CA)) == (False, "unable to get local issuer certificate")


@pytest.mark.parametrize(
    ("leaf", "chain"),
    [
        (issue("mallory", expired=True), ()),
        (issue("eve", UNKNOWN_CA, expired=True), ()),
        (issue("eve", UNKNOWN_CA, expired=True), (UNKNOWN_CA,)),
    ],
    ids=["self-signed", "unknown-ca", "unknown-ca-with-chain"],
)
def test_unknown_ca_allowed_still_refuses_an_expired_certificate(leaf, chain):
    assert verify(leaf, ALLOW_UNKNOWN_CA, chain) == (False, "certificate has expired")
    accepted, status = verify(leaf, ALLOW_UNKNOWN_CA | IGNORE_TIME_VALIDITY, chain)
    assert accepted, status


def test_unknown_ca_allowed_still_checks_the_presented_chain():
    expired_ca = issue("Old CA", ca=True, expired=True)
    leaf = issue("carol", expired_ca)
    assert verify(leaf, ALLOW_UNKNOWN_CA, (expired_ca,)) == (False, "certificate has expired")
    # the presented issuer did not sign the leaf
    forged_ca = issue("Unknown CA", ca=True, signed_with=OTHER_KEY)
    forged_leaf = issue("dave", forged_ca, signed_with=OTHER_KEY)
    accepted, status = verify(forged_leaf, ALLOW_UNKNOWN_CA, (UNKNOWN_CA,))
    assert not accepted
    assert "signature" in status
    # a self-signed certificate whose self-signature is wrong
    bad_self = issue("selfish", signed_with=OTHER_KEY)
    accepted, status = verify(bad_self, ALLOW_UNKNOWN_CA)
    assert not accepted
    assert "signature" in status


def test_ignore_time_validity_with_a_trusted_ca():
    leaf = issue("bob", CA, expired=True)
    assert verify(leaf) == (False, "certificate has expired")
    assert verify(leaf, IGNORE_TIME_VALIDITY)[0]
    # ... however old the issuer is
    expired_ca = issue("Old CA", ca=True, expired=True)
    old = issue("bob", expired_ca, expired=True)
    assert verify(old, IGNORE_TIME_VALIDITY, trusted=(expired_ca,))[0]
    assert not verify(old, 0, trusted=(expired_ca,))[0]


def test_ignore_time_validity_still_checks_signatures():
    old_ca = issue("Old CA", CA, ca=True, expired=True)
    forged = issue("mallory", old_ca, signed_with=OTHER_KEY)
    accepted, status = verify(forged, IGNORE_TIME_VALIDITY, (old_ca,))
    assert not accepted
    assert "signature" in status


# -- client certificates: purpose ----------------------------------------------------------


@pytest.mark.parametrize(
    "extensions",
    [
        {},
        {"eku": [CLIENT_AUTH]},
        {"eku": [SERVER_AUTH, CLIENT_AUTH]},
        {"eku": [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]},
        {"key_usage": {"digital_signature": True}},
        {"key_usage": {"key_agreement": True}},
        {"netscape_type": 0x80 | 0x40},
    ],
    ids=["none", "clientAuth", "both", "anyEKU", "digitalSignature", "keyAgreement", "ns-client"],
)
def test_client_purposes_accepted(extensions):
    assert verify(issue("alice", CA, **extensions)) == (True, "OK")


@pytest.mark.parametrize(
    ("extensions", "shown"),
    [
        ({"eku": [SERVER_AUTH]}, "serverAuth"),
        ({"eku": [ExtendedKeyUsageOID.CODE_SIGNING]}, "codeSigning"),
        ({"eku": [x509.ObjectIdentifier("1.2.3.4")]}, "1.2.3.4"),
        ({"key_usage": {"key_encipherment": True}}, "keyEncipherment"),
        ({"netscape_type": 0x40}, "Netscape"),
    ],
    ids=["serverAuth", "codeSigning", "unknown-eku", "keyEncipherment", "ns-server"],
)
def test_wrong_purpose_is_refused(extensions, shown):
    accepted, status = verify(issue("www.example.com", CA, **extensions))
    assert not accepted
    assert status.startswith("unsuitable certificate purpose")
    assert shown in status


def test_wrong_purpose_is_refused_with_unknown_ca_allowed():
    accepted, status = verify(issue("www", eku=[SERVER_AUTH]), ALLOW_UNKNOWN_CA)
    assert not accepted
    assert "certificate purpose" in status


def test_an_issuer_restricted_to_servers_cannot_vouch_for_clients():
    intermediate = issue("Servers only CA", CA, ca=True, eku=[SERVER_AUTH])
    leaf = issue("alice", intermediate, eku=[CLIENT_AUTH])
    accepted, status = verify(leaf, 0, (intermediate,))
    assert not accepted
    assert "certificate purpose" in status
    assert "Servers only CA" in status


# -- the context cache ---------------------------------------------------------------------


def test_equal_certificates_share_one_context(tls):
    contexts = TCPServer().factory.tls_contexts
    first = contexts.factory_for(tls.certificate())
    for _ in range(5):
        assert contexts.factory_for(tls.certificate()) is first
    assert len(contexts._cache) == 1
    # same certificate and key, another chain: another context
    pfx = Certificate(CertStoreType.PFX_FILE, str(tls.pfx), tls.password)
    assert pfx.encoded_b == tls.certificate().encoded_b
    assert contexts.factory_for(pfx) is not first
    assert len(contexts._cache) == 2


def _pem_certificate(number: int) -> Certificate:
    leaf = issue(f"host{number}.example")
    key = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return Certificate(
        CertStoreType.PEM_KEY_BLOB, key + leaf.public_bytes(serialization.Encoding.PEM)
    )


def test_context_cache_is_bounded_and_keeps_the_recent():
    contexts = TCPServer().factory.tls_contexts
    limit = TLSContexts.CACHE_SIZE
    assert limit == 64
    first = _pem_certificate(0)
    first_factory = contexts.factory_for(first)
    for number in range(1, limit + 10):
        contexts.factory_for(_pem_certificate(number))
        contexts.factory_for(first)  # kept in use: never evicted
        assert len(contexts._cache) <= limit
    assert len(contexts._cache) == limit
    assert contexts.factory_for(first) is first_factory


# -- loading certificate stores ------------------------------------------------------------


def _store_error(*args, **kwargs) -> TCPServerError:
    with pytest.raises(TCPServerError) as caught:
        Certificate(*args, **kwargs)
    return caught.value


def test_corrupt_certificate_block_is_271(tls):
    pem = tls.server_pem.read_bytes()
    corrupt = pem.replace(b"-----BEGIN CERTIFICATE-----\n", b"-----BEGIN CERTIFICATE-----\nAAAA", 1)
    error = _store_error(CertStoreType.PEM_KEY_BLOB, corrupt)
    assert error.code == 271
    assert "CERTIFICATE" in error.description
    assert "the certificate blob" in error.description
    assert "'AAAAMII" in error.description  # where the bad data starts
    path = tls.directory / "corrupt.pem"
    path.write_bytes(corrupt)
    error = _store_error(CertStoreType.PEM_KEY_FILE, str(path))
    assert error.code == 271
    assert "corrupt.pem" in error.description


def test_trusted_certificate_label_is_271(tls):
    pem = tls.server_pem.read_bytes()
    trusted = pem.replace(b"BEGIN CERTIFICATE", b"BEGIN TRUSTED CERTIFICATE").replace(
        b"END CERTIFICATE", b"END TRUSTED CERTIFICATE"
    )
    error = _store_error(CertStoreType.PEM_KEY_BLOB, trusted)
    assert error.code == 271
    assert "TRUSTED CERTIFICATE" in error.description


def test_x509_certificate_label_is_read(tls):
    pem = tls.server_pem.read_bytes()
    old = pem.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(
        b"END CERTIFICATE", b"END X509 CERTIFICATE"
    )
    assert Certificate(CertStoreType.PEM_KEY_BLOB, old).private_key_available


def test_corrupt_pkcs7_block_is_271():
    error = _store_error(
        CertStoreType.PUBLIC_KEY_BLOB, b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n"
    )
    assert error.code == 271
    assert "PKCS7" in error.description


def test_unencrypted_key_with_a_password_loads(tls):
    cert = tls.certificate(store_password="s3cret")
    assert cert.private_key_available
    cert = tls.certificate(key_password="unused")
    assert cert.private_key_available
    # an encrypted key still needs its password, and the right one
    assert tls.certificate(tls.encrypted_pem, store_password=tls.password).private_key_available
    error = _store_error(CertStoreType.PEM_KEY_FILE, str(tls.encrypted_pem))
    assert "encrypted" in error.description
    error = _store_error(CertStoreType.PEM_KEY_FILE, str(tls.encrypted_pem), "nope")
    assert "wrong password" in error.description


def test_auto_missing_file_says_so(tmp_path):
    missing = tmp_path / "nowhere" / "server.pem"
    for store in (str(missing), missing):
        error = _store_error(CertStoreType.AUTO, store)
        assert error.code == 271
        assert str(missing) in error.description
        assert "No such file" in error.description
    error = _store_error(CertStoreType.AUTO, str(tmp_path))
    assert error.code == 271
    assert str(tmp_path) in error.description


def test_auto_accepts_a_path(tls):
    cert = Certificate(CertStoreType.AUTO, Path(tls.server_pem))
    assert cert.private_key_available
    pfx = Certificate(CertStoreType.AUTO, Path(tls.pfx), tls.password)
    assert pfx.private_key_available
    # data still works, bytes or text, PEM or Base64
    assert Certificate(CertStoreType.AUTO, tls.server_pem.read_text()).private_key_available
    encoded = base64.b64encode(tls.pfx.read_bytes()).decode()
    assert Certificate(CertStoreType.AUTO, encoded, tls.password).private_key_available
    garbage = _store_error(CertStoreType.AUTO, b"\x01\x02 not a certificate")
    assert garbage.code == 271


# -- SSLKeyLogFile ---------------------------------------------------------------------------


def _handshake_in_memory(context: SSL.Context) -> None:
    server = SSL.Connection(context, None)
    server.set_accept_state()
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    done: set[SSL.Connection] = set()
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
                done.add(side)
            except SSL.WantReadError:
                pass
        for source, sink in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                sink.bio_write(source.bio_read(65536))
        if len(done) == 2:
            return
    raise AssertionError("no handshake")


def test_key_log_file_is_created_private(tls, tmp_path):
    log_path = tmp_path / "keys.log"
    server = TCPServer()
    server.config(f"SSLKeyLogFile={log_path}")
    context = server.factory.tls_contexts.build_context(tls.certificate())
    old_umask = os.umask(0o022)
    try:
        _handshake_in_memory(context)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o600
    lines = log_path.read_text().splitlines()
    assert any(line.startswith("CLIENT_TRAFFIC_SECRET_0 ") for line in lines)
    # an existing file is appended to, its mode left alone
    log_path.chmod(0o640)
    _handshake_in_memory(context)
    assert len(log_path.read_text().splitlines()) > len(lines)
    assert stat.S_IMODE(log_path.stat().st_mode) == 0o640
