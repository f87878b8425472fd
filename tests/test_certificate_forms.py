"""
The manual's Certificate constructors and settable fields, in their Python
spellings: ``Certificate()``, ``Certificate.from_encoded``,
``Certificate.from_file``, the store forms with ``encoded=`` and
``configuration=``, and setting ``subject`` / ``encoded``.  The forms a
server can use are checked with a real TLS handshake.
"""

from __future__ import annotations

import base64
import ssl

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers import in_thread, listen, tls_client

from tcpserver import Certificate, CertStoreType, SSLStartMode, TCPServer, TCPServerError
from tcpserver.handlers import echo, wire_handler

FIELDS_TEXT = (
    "issuer", "serial_number", "effective_date", "expiration_date", "fingerprint",
    "fingerprint_sha1", "fingerprint_sha256", "thumbprint_md5", "thumbprint_sha1",
    "thumbprint_sha256", "public_key", "public_key_algorithm", "signature_algorithm",
    "subject_alt_names", "extended_key_usage", "usage", "version", "private_key",
    "subject", "encoded",
)  # fmt: skip


def served_subject(port: int, context: ssl.SSLContext, server_name: str = "localhost") -> str:
    """The common name of the certificate the server showed in a real handshake."""
    _, info = tls_client(port, context, b"hi\r\n", 4, server_name=server_name)
    return str(dict(x[0] for x in info["peer"]["subject"])["commonName"])


def start(server: TCPServer, certificate: Certificate) -> int:
    server.ssl_cert = certificate
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    wire_handler(server, echo)
    return listen(server)


def test_the_empty_certificate_has_the_manuals_defaults():
    empty = Certificate()
    assert {name: getattr(empty, name) for name in FIELDS_TEXT} == dict.fromkeys(FIELDS_TEXT, "")
    assert empty.encoded_b == b""
    assert (empty.public_key_length, empty.usage_flags) == (0, 0)
    assert empty.private_key_available is False
    assert empty.chain == []
    assert empty.store_type is CertStoreType.USER
    assert int(empty.store_type) == 0
    with pytest.raises(TCPServerError) as caught:
        TCPServer().ssl_cert = empty  # a server cannot use it
    assert caught.value.code == 273  # (cannot acquire credentials)


def test_the_empty_certificate_takes_an_encoded_certificate(tls):
    certificate = Certificate()
    certificate.encoded = tls.server_cert_pem.read_text()
    # no store to find its key in: the manual sets Subject to ""; the fields are there
    assert certificate.subject == ""
    assert certificate.issuer.endswith("O=tcpserver test CA")
    assert not certificate.private_key_available
    der = tls.server_der.read_bytes()
    certificate.encoded_b = der
    assert certificate.encoded_b == der


@pytest.mark.parametrize("form", ["pem-text", "pem-bytes", "der", "base64"])
def test_from_encoded_reads_every_encoding(tls, form):
    der = tls.server_der.read_bytes()
    pem = tls.server_cert_pem.read_bytes()
    encoded = {
        "pem-text": pem.decode(),
        "pem-bytes": pem,
        "der": der,
        "base64": base64.b64encode(der).decode(),
    }[form]
    certificate = Certificate.from_encoded(encoded)
    assert certificate.encoded_b == der
    assert certificate.subject.startswith("CN=localhost")
    assert not certificate.private_key_available


def test_from_encoded_refuses_what_is_not_a_certificate():
    with pytest.raises(TCPServerError) as caught:
        Certificate.from_encoded(b"\x30\x03\x02\x01\x05")
    assert caught.value.code == 271


def test_a_positional_encoded_certificate_points_to_its_python_spelling(tls):
    with pytest.raises(TCPServerError) as caught:
        Certificate(tls.server_cert_pem.read_bytes())
    assert caught.value.code == 10022
    assert "Certificate.from_encoded" in str(caught.value)
    assert "Certificate.from_file" in str(caught.value)


@pytest_twisted.ensureDeferred
async def test_from_file_with_its_key_file_serves_tls(server, tls):
    certificate = Certificate.from_file(tls.server_cert_pem, key_file=tls.server_key_pem)
    assert certificate.private_key_available
    assert certificate.store_type == CertStoreType.PEM_KEY_FILE
    port = start(server, certificate)
    assert await in_thread(served_subject, port, tls.client_context()) == "localhost"


def test_from_file_alone_is_a_public_certificate(tls):
    certificate = Certificate.from_file(tls.server_cert_pem)
    assert certificate.subject.startswith("CN=localhost")
    assert not certificate.private_key_available
    assert Certificate.from_file(tls.server_der).encoded_b == tls.server_der.read_bytes()
    assert Certificate.from_file(tls.encrypted_pem, password=tls.password).private_key_available


def test_from_file_errors_name_the_file(tls, tmp_path):
    with pytest.raises(TCPServerError) as caught:
        Certificate.from_file(tmp_path / "missing.pem")
    assert caught.value.code == 271
    assert "missing.pem" in str(caught.value)
    with pytest.raises(TCPServerError) as caught:
        Certificate.from_file(tls.server_cert_pem, key_file=tls.client_key_pem)
    assert caught.value.code == 272
    assert "client.key" in str(caught.value)


def _two_server_store(tls, tmp_path):
    store = tmp_path / "two.pem"
    store.write_bytes(tls.server_pem.read_bytes() + tls.other_pem.read_bytes())
    other = x509.load_pem_x509_certificates(tls.other_pem.read_bytes())[0]
    return store, other.public_bytes(serialization.Encoding.PEM)


@pytest_twisted.ensureDeferred
async def test_store_and_encoded_selects_that_certificate_and_its_key(server, tls, tmp_path):
    store, other_pem = _two_server_store(tls, tmp_path)
    certificate = Certificate(CertStoreType.PEM_KEY_FILE, store, encoded=other_pem)
    assert certificate.subject.startswith("CN=other.example,")
    assert certificate.private_key_available
    port = start(server, certificate)
    served = await in_thread(served_subject, port, tls.client_context(), "other.example")
    assert served == "other.example"


def test_store_and_encoded_without_its_key_in_a_key_store_is_272(tls, tmp_path):
    with pytest.raises(TCPServerError) as caught:
        Certificate(
            CertStoreType.PEM_KEY_FILE, tls.server_pem, encoded=tls.client_cert_pem.read_text()
        )
    assert caught.value.code == 272
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, tls.server_pem, "", "CN=localhost", encoded=b"x")
    assert caught.value.code == 10022


@pytest_twisted.ensureDeferred
async def test_configuration_thumbprint_selects(server, tls, tmp_path):
    store, other_pem = _two_server_store(tls, tmp_path)
    thumbprint = Certificate.from_encoded(other_pem).thumbprint_sha256
    certificate = Certificate(
        CertStoreType.AUTO,
        store.read_bytes(),  # (the manual's byte[] store form)
        "",
        "*",
        configuration=f"PersistPFXKey=False\nThumbprint={thumbprint}\n",
    )
    assert certificate.subject.startswith("CN=other.example,")
    port = start(server, certificate)
    served = await in_thread(served_subject, port, tls.client_context(), "other.example")
    assert served == "other.example"


def test_an_unknown_configuration_name_is_refused(tls):
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, tls.server_pem, configuration="Colour=blue")
    assert caught.value.code == 10022
    assert "'Colour=blue'" in str(caught.value)


def test_setting_subject_searches_the_store(tls, tmp_path):
    store, _ = _two_server_store(tls, tmp_path)
    certificate = Certificate(CertStoreType.PEM_KEY_FILE, store)
    assert certificate.subject.startswith("CN=localhost")
    before = certificate.content_key
    certificate.subject = "other"  # a part of a subject (after no exact match)
    assert certificate.subject.startswith("CN=other.example,")
    assert certificate.private_key_available
    assert certificate.content_key != before  # (TLS contexts are cached by it)
    certificate.subject = "CN=nobody"
    assert certificate.subject == ""  # no match: nothing selected (the manual)
    assert certificate.encoded == ""
    assert not certificate.private_key_available
    certificate.subject = "*"
    assert certificate.subject.startswith("CN=localhost")


def test_setting_encoded_looks_for_its_key_in_the_store(tls, tmp_path):
    store, other_pem = _two_server_store(tls, tmp_path)
    certificate = Certificate(CertStoreType.PEM_KEY_FILE, store)
    certificate.encoded = other_pem.decode()
    assert certificate.subject.startswith("CN=other.example,")  # key found: the full subject
    assert certificate.private_key_available
    certificate.encoded = tls.client_cert_pem.read_text()
    assert certificate.subject == ""  # no key for it in the store
    assert certificate.issuer.endswith("O=tcpserver test CA")
