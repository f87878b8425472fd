"""TLS without sockets: certificates, the ClientHello parser, settings, contexts."""

from __future__ import annotations

import base64
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tcpserver import Certificate, CertStoreType, TCPServer, TCPServerError
from tcpserver._clienthello import (
    MAX_CLIENT_HELLO,
    MAX_CLIENT_HELLO_RECORDS,
    ClientHelloError,
    ClientHelloParser,
    cipher_suite_name,
    signature_scheme_name,
)
from tcpserver.tls import (
    cipher_bits,
    openssl_groups,
    openssl_sigalgs,
    protocol_range,
    split_cipher_suites,
)

# -- Certificate -------------------------------------------------------------------


def test_pem_key_file_fields(tls):
    cert = tls.certificate()
    assert cert.subject.startswith("CN=localhost")
    assert "tcpserver test CA" in cert.issuer
    assert cert.private_key_available
    assert cert.public_key_algorithm == "RSA"
    assert cert.public_key_length == 2048
    assert "localhost" in cert.subject_alt_names
    assert "127.0.0.1" in cert.subject_alt_names
    assert len(cert.fingerprint_sha256.split(":")) == 32
    assert len(cert.fingerprint_sha1.split(":")) == 20
    assert len(cert.thumbprint_sha1) == 40
    assert cert.encoded.startswith("-----BEGIN CERTIFICATE-----")
    assert cert.encoded_b[:1] == b"\x30"
    assert len(cert.serial_number) % 2 == 0
    assert cert.effective_date.count(":") == 2
    assert cert.expiration_date[2] == "-"
    assert cert.version == "V3"
    assert "Digital Signature" in cert.usage
    assert "1.3.6.1.5.5.7.3.1" in cert.extended_key_usage
    assert cert.signature_algorithm
    assert cert.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert "s3cret" not in repr(tls.certificate(tls.encrypted_pem, store_password="s3cret"))


def test_pem_blob_and_auto_detection(tls):
    blob = tls.server_pem.read_bytes()
    assert Certificate(CertStoreType.PEM_KEY_BLOB, blob).private_key_available
    assert Certificate(CertStoreType.AUTO, blob).private_key_available
    assert Certificate(CertStoreType.AUTO, str(tls.server_pem)).private_key_available
    pfx = Certificate(CertStoreType.AUTO, tls.pfx.read_bytes(), store_password=tls.password)
    assert pfx.private_key_available


def test_encrypted_key(tls):
    cert = tls.certificate(tls.encrypted_pem, store_password=tls.password)
    assert cert.private_key_available
    with pytest.raises(TCPServerError) as caught:
        tls.certificate(tls.encrypted_pem)
    assert caught.value.code == 271
    assert "encrypted" in caught.value.description
    with pytest.raises(TCPServerError) as caught:
        tls.certificate(tls.encrypted_pem, store_password="wrong")
    assert caught.value.code == 271
    assert "wrong password" in caught.value.description
    assert "wrong" not in caught.value.description.replace("wrong password", "")


def test_pfx_file_and_blob(tls):
    cert = Certificate(CertStoreType.PFX_FILE, str(tls.pfx), tls.password)
    assert cert.subject.startswith("CN=localhost")
    assert [c.subject for c in cert.chain] == [tls.certificate().issuer]
    blob = Certificate(CertStoreType.PFX_BLOB, base64.b64encode(tls.pfx.read_bytes()), tls.password)
    assert blob.fingerprint_sha256 == cert.fingerprint_sha256
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PFX_FILE, str(tls.pfx), "nope")
    assert caught.value.code == 271
    assert "wrong password" in caught.value.description


def test_public_key_stores_have_no_private_key(tls):
    for store_type, store in (
        (CertStoreType.PUBLIC_KEY_FILE, str(tls.server_cert_pem)),
        (CertStoreType.PUBLIC_KEY_FILE, str(tls.server_der)),
        (CertStoreType.PUBLIC_KEY_BLOB, tls.server_der.read_bytes()),
        (CertStoreType.PUBLIC_KEY_BLOB, tls.server_cert_pem.read_text()),
    ):
        cert = Certificate(store_type, store)
        assert not cert.private_key_available
        assert cert.private_key == ""
    server = TCPServer()
    with pytest.raises(TCPServerError) as caught:
        server.ssl_cert = Certificate(CertStoreType.PUBLIC_KEY_FILE, str(tls.server_cert_pem))
    assert caught.value.code == 273
    assert "no private key" in caught.value.description


def test_store_errors_say_which(tls, tmp_path):
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, str(tmp_path / "missing.pem"))
    assert caught.value.code == 271
    assert "missing.pem" in caught.value.description
    key_only = tmp_path / "key.pem"
    key_only.write_bytes(tls.server_key_pem.read_bytes())
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, str(key_only))
    assert caught.value.code == 272
    assert "no certificate" in caught.value.description
    cert_only = tmp_path / "cert.pem"
    cert_only.write_bytes(tls.server_cert_pem.read_bytes())
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, str(cert_only))
    assert caught.value.code == 272
    assert "no private key" in caught.value.description
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x01\x02 not a certificate")
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.AUTO, str(garbage))
    assert caught.value.code == 271


@pytest.mark.parametrize(
    "store_type",
    [
        CertStoreType.USER,
        CertStoreType.MACHINE,
        CertStoreType.JKS_FILE,
        CertStoreType.PKCS11,
        CertStoreType.JWK_BLOB,
    ],
)
def test_foreign_store_types_are_refused_clearly(store_type):
    with pytest.raises(TCPServerError) as caught:
        Certificate(store_type, "MY")
    assert caught.value.code == 10045
    assert "not supported on this platform" in caught.value.description


def test_subject_selection_in_a_store_with_several(tls, tmp_path):
    both = tmp_path / "both.pem"
    both.write_bytes(tls.server_pem.read_bytes() + tls.other_pem.read_bytes())
    first = Certificate(CertStoreType.PEM_KEY_FILE, str(both))
    assert first.subject.startswith("CN=localhost")
    other = Certificate(CertStoreType.PEM_KEY_FILE, str(both), subject="CN=other.example")
    assert other.subject.startswith("CN=other.example")
    assert other.private_key_available
    partial = Certificate(CertStoreType.PEM_KEY_FILE, str(both), subject="other.exa")
    assert partial.subject == other.subject
    by_thumb = Certificate(
        CertStoreType.PEM_KEY_FILE, str(both), subject=f"Thumbprint={other.thumbprint_sha1}"
    )
    assert by_thumb.subject == other.subject
    with pytest.raises(TCPServerError) as caught:
        Certificate(CertStoreType.PEM_KEY_FILE, str(both), subject="CN=nobody")
    assert caught.value.code == 272
    assert "CN=nobody" in caught.value.description


# -- the ClientHello parser ------------------------------------------------------------


def real_client_hello(
    server_name: str = "example.com", alpn: list[str] | None = None, **context_options
) -> bytes:
    context = ssl.create_default_context()
    for name, value in context_options.items():
        setattr(context, name, value)
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls_object.do_handshake()
    return outgoing.read()


def test_parses_a_real_client_hello():
    hello = ClientHelloParser().feed(real_client_hello("sni.example.org"))
    assert hello is not None
    assert hello.server_name == "sni.example.org"
    assert "TLSv1.3" in hello.versions
    assert "TLS_AES_256_GCM_SHA384" in hello.cipher_suite_names
    assert "rsa_pss_sha256" in hello.signature_algorithm_names
    assert hello.supported_groups


@given(st.lists(st.integers(1, 50), min_size=1))
@settings(max_examples=50)
def test_parse_does_not_depend_on_cuts(sizes):
    data = real_client_hello("cut.example")
    parser = ClientHelloParser()
    result = None
    position = 0
    for size in sizes * 100:
        if position >= len(data):
            break
        result = parser.feed(data[position : position + size])
        position += size
        if result is not None:
            break
    if result is None and position < len(data):
        result = parser.feed(data[position:])
    assert result is not None
    assert result.server_name == "cut.example"


def test_hello_split_across_records():
    data = real_client_hello("records.example")
    body = data[5:]
    split = b""
    for start in range(0, len(body), 100):
        piece = body[start : start + 100]
        split += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
    hello = ClientHelloParser().feed(split)
    assert hello is not None
    assert hello.server_name == "records.example"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a TLS handshake record"),
        (b"\x80\x2e\x01\x03\x01", "SSLv2"),
        (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not ClientHello"),
        (b"\x16\x03\x01\x00\x00", "bad TLS record length"),
        (b"\x16\x03\x01\x00\x06\x01\x00\x00\x02\x03\x03", "truncated"),
    ],
)
def test_not_a_client_hello(data, message):
    with pytest.raises(ClientHelloError, match=message):
        ClientHelloParser().feed(data)


def test_oversized_hello_is_refused():
    parser = ClientHelloParser()
    header = b"\x16\x03\x01\x40\x00\x01\x0f\xff\xff"  # claims a 1 MiB hello
    with pytest.raises(ClientHelloError, match="larger than"):
        parser.feed(header + b"\x00" * (0x4000 - 4))


def padded(message: bytes, size: int) -> bytes:
    """A ClientHello handshake message grown to ``size`` bytes by a padding extension."""
    if size == len(message):
        return message
    body = message[4:]
    at = 2 + 32
    at += 1 + body[at]  # session id
    at += 2 + int.from_bytes(body[at : at + 2], "big")  # cipher suites
    at += 1 + body[at]  # compression methods
    extensions = body[at + 2 :]
    pad = size - 4 - (at + 2 + len(extensions)) - 4
    assert pad >= 0
    extensions += (21).to_bytes(2, "big") + pad.to_bytes(2, "big") + b"\0" * pad
    body = body[:at] + len(extensions).to_bytes(2, "big") + extensions
    return b"\x01" + len(body).to_bytes(3, "big") + body


def as_records(message: bytes, sizes: list[int]) -> bytes:
    """``message`` cut into TLS records of the given sizes (the last one takes the rest)."""
    wire = bytearray()
    position = 0
    for size in [*sizes, len(message)]:
        piece = message[position : position + min(size, 16384)]
        if not piece:
            break
        wire += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
        position += len(piece)
    while position < len(message):  # (what the sizes left, in full records)
        piece = message[position : position + 16384]
        wire += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
        position += len(piece)
    return bytes(wire)


def feed_in(parser: ClientHelloParser, wire: bytes, chunks: list[int]) -> object:
    """Feed ``wire`` in reads of the given sizes (then the rest); the first result."""
    position = 0
    for size in [*chunks, len(wire)]:
        if position >= len(wire):
            break
        result = parser.feed(wire[position : position + size])
        position += size
        if result is not None:
            return result
    return None


_ONE_RECORD = real_client_hello("records.example", alpn=["h2", "http/1.1"])


@given(
    size=st.sampled_from([len(_ONE_RECORD) - 5, 3000, 40_000]),
    records=st.lists(st.integers(1, 3000), max_size=60),
    chunks=st.lists(st.integers(1, 5000), max_size=60),
)
@settings(max_examples=150)
def test_records_and_reads_do_not_change_the_hello(size, records, chunks):
    """However a hello is cut into records, and the records into reads, it parses the same."""
    message = padded(_ONE_RECORD[5:], size)
    expected = ClientHelloParser().feed(as_records(message, []))
    assert expected is not None
    assert expected.server_name == "records.example"
    assert expected.alpn_protocols == [b"h2", b"http/1.1"]
    got = feed_in(ClientHelloParser(), as_records(message, records), chunks)
    assert got == expected


@pytest.mark.parametrize("reads", [None, 1000])
def test_work_grows_linearly_with_the_records(reads):
    """
    The bytes the parser copies stay within a small multiple of the bytes
    fed, from one record to thousands (re-joining everything received on
    every record, as it once did, copied the message once per record).
    """
    message = padded(_ONE_RECORD[5:], 60_000)
    ratios = {}
    for count in (1, 16, 256, 4000):
        wire = as_records(message, [-(-len(message) // count)] * count)
        parser = ClientHelloParser()
        hello = feed_in(parser, wire, [reads or len(wire)] * (len(wire) // (reads or 1) + 1))
        assert hello is not None
        ratios[count] = parser.copied / len(wire)
    assert all(ratio <= 2.5 for ratio in ratios.values()), ratios


def test_a_hello_in_too_many_records_is_refused():
    message = padded(_ONE_RECORD[5:], MAX_CLIENT_HELLO_RECORDS + 100)
    at_most = as_records(message, [2] * (MAX_CLIENT_HELLO_RECORDS - 1))
    assert ClientHelloParser().feed(at_most) is not None
    too_many = as_records(message, [1] * MAX_CLIENT_HELLO_RECORDS)
    with pytest.raises(ClientHelloError, match="more than 4096 records"):
        ClientHelloParser().feed(too_many)
    # the message cap holds too: a hello just over it, in records of 16 KiB
    with pytest.raises(ClientHelloError, match="larger than"):
        ClientHelloParser().feed(as_records(padded(_ONE_RECORD[5:], MAX_CLIENT_HELLO + 5), []))


def test_names():
    assert cipher_suite_name(0x1302) == "TLS_AES_256_GCM_SHA384"
    assert cipher_suite_name(0xABCD) == "0xABCD"
    assert signature_scheme_name(0x0804) == "rsa_pss_sha256"


# -- settings and their translation ------------------------------------------------------


def test_protocol_masks():
    from twisted.internet.ssl import TLSVersion

    assert protocol_range(15360) == (TLSVersion.TLSv1_2, TLSVersion.TLSv1_3)
    assert protocol_range(12288) == (TLSVersion.TLSv1_3, TLSVersion.TLSv1_3)
    assert protocol_range(3072 | 768) == (TLSVersion.TLSv1_1, TLSVersion.TLSv1_2)
    for bad, message in (
        (48, "SSL 2.0 and 3.0"),
        (0, "no TLS version"),
        (12288 | 192, "contiguous"),
    ):
        with pytest.raises(ValueError, match=message):
            protocol_range(bad)


def test_cipher_suites_and_strength():
    tls12, tls13 = split_cipher_suites(
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384;TLS_AES_128_GCM_SHA256"
    )
    assert tls12 == ["ECDHE-RSA-AES256-GCM-SHA384"]
    assert tls13 == ["TLS_AES_128_GCM_SHA256"]
    assert split_cipher_suites("*") == ([], [])
    with pytest.raises(ValueError, match="CALG"):
        split_cipher_suites("CALG_AES_256")
    assert cipher_bits("ECDHE-RSA-AES256-GCM-SHA384") == 256
    assert cipher_bits("TLS_AES_128_GCM_SHA256") == 128
    assert cipher_bits("DES-CBC3-SHA") == 112


def test_sigalg_and_group_names():
    assert openssl_sigalgs("sha256-rsa,rsa_pss_sha256,ed25519") == (
        "RSA+SHA256:rsa_pss_rsae_sha256:ed25519"
    )
    assert openssl_groups("ecdhe_x25519,ecdhe_secp256r1", "ecdhe_secp256r1,ffdhe_2048") == (
        "X25519:P-256:ffdhe2048"
    )
    with pytest.raises(ValueError, match="unknown group"):
        openssl_groups("ecdhe_nope")


@pytest.mark.parametrize(
    ("config", "code", "shown"),
    [
        ("SSLEnabledProtocols=48", 10022, "SSL 2.0"),
        ("SSLEnabledProtocols=12480", 10022, "contiguous"),
        ("OpenSSLCipherList=NO-SUCH-CIPHER", 10022, "selects no cipher"),
        ("SSLEnabledCipherSuites=TLS_FAKE_SUITE", 10022, "TLS_FAKE_SUITE"),
        ("TLS13SignatureAlgorithms=rsa_md5", 10022, "rsa_md5"),
        ("TLS13SupportedGroups=ecdhe_p999", 10022, "ecdhe_p999"),
        ("OpenSSLCAFile=/no/such/ca.pem", 10022, "/no/such/ca.pem"),
        ("OpenSSLCADir=/no/such/dir", 10022, "/no/such/dir"),
        ("SSLClientCACerts=not pem", 10022, "no PEM certificate"),
        ("SSLKeyLogFile=/no/such/dir/keys.log", 10022, "directory"),
        ("SSLAcceptAnyServerCert=True", 10045, "client components"),
        ("SSLServerCACerts=x", 10045, "client components"),
        ("TLS13KeyShareGroups=ecdhe_x25519", 10045, "key shares"),
        ("OpenSSLPrngSeedData=abc", 10045, "seed"),
        ("UseInternalSecurityAPI=yes", 10045, "OpenSSL"),
    ],
)
def test_tls_setting_errors(config, code, shown):
    with pytest.raises(TCPServerError) as caught:
        TCPServer().config(config)
    assert caught.value.code == code
    assert shown in caught.value.description


def test_tls_settings_accepted(tls):
    from tcpserver.tls import can_set_groups

    server = TCPServer()
    for config in (
        "SSLEnabledProtocols=12288",
        "OpenSSLCipherList=HIGH:!aNULL",
        "SSLEnabledCipherSuites=TLS_AES_256_GCM_SHA384;TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "SSLCipherStrength=256",
        "ReuseSSLSession=True",
        "SSLEnableRenegotiation=True",
        "SSLIncludeCertChain=True",
        "SSLSecurityFlags=0x10",
        "LogSSLPackets=True",
        f"OpenSSLCAFile={tls.ca_pem}",
        f"OpenSSLCADir={tls.directory}",
        "DefaultConnectionTimeout=5",
        *(["TLS13SupportedGroups=ecdhe_x25519,ecdhe_secp256r1"] if can_set_groups() else []),
        "TLS13SignatureAlgorithms=rsa_pss_sha256,ecdsa_secp256r1_sha256",
    ):
        server.config(config)
    server.config(f"SSLClientCACerts={tls.ca_pem.read_text()}")
    assert server.config("SSLSecurityFlags") == "16"
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = 1
    assert server.ssl_enabled is True
    # the context builds with every one of them
    context = server.factory.tls_contexts.build_context(server.ssl_cert)
    assert context is not None
    server.ssl_enabled = False
    assert server.ssl_start_mode == 3


def test_contexts_are_cached_per_certificate(tls):
    server = TCPServer()
    cert = tls.certificate()
    contexts = server.factory.tls_contexts
    first = contexts.factory_for(cert)
    assert contexts.factory_for(cert) is first
    assert contexts.factory_for(tls.certificate(tls.other_pem)) is not first
    server.config("ReuseSSLSession=True")  # a TLS setting changed: rebuilt
    assert contexts.factory_for(cert) is not first
