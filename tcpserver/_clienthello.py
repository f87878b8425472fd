"""A sans-IO parser for the TLS ClientHello (RFC 8446 section 4.1.2).

tcpserver reads the client's first flight itself before handing the bytes to
OpenSSL, so ``ssl_connection_request`` can report the SNI name, the offered
cipher suites and signature algorithms, and a listener can pick the
certificate - even asynchronously - before the handshake starts.  No Twisted
import, no I/O: :meth:`ClientHelloParser.feed` takes bytes and returns a
:class:`ClientHello` once the whole message has arrived.

Only what is needed is decoded; everything else is skipped by length.  The
records are read as they stream in, so the cost is linear in the bytes fed
however they are cut, and both the message and the number of records it may
be cut into are capped (:data:`MAX_CLIENT_HELLO`,
:data:`MAX_CLIENT_HELLO_RECORDS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "MAX_CLIENT_HELLO",
    "MAX_CLIENT_HELLO_RECORDS",
    "ClientHello",
    "ClientHelloError",
    "ClientHelloParser",
    "cipher_suite_name",
    "group_name",
    "signature_scheme_name",
]

#: A ClientHello (handshake message) larger than this is refused.  Hybrid
#: post-quantum key shares make hellos of 1.5-2 KiB common; 64 KiB is ample.
MAX_CLIENT_HELLO = 64 * 1024

#: A ClientHello cut into more TLS records than this is refused.  Clients send
#: theirs in one record (two for hybrid post-quantum shares beyond 16 KiB);
#: 4096 still takes a typical hello cut into a record per byte.
MAX_CLIENT_HELLO_RECORDS = 4096

_HANDSHAKE = 22
_CLIENT_HELLO = 1

CIPHER_SUITES = {
    0x1301: "TLS_AES_128_GCM_SHA256",
    0x1302: "TLS_AES_256_GCM_SHA384",
    0x1303: "TLS_CHACHA20_POLY1305_SHA256",
    0x1304: "TLS_AES_128_CCM_SHA256",
    0x1305: "TLS_AES_128_CCM_8_SHA256",
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xC009: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    0xC00A: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    0xC013: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    0xC014: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    0xC023: "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    0xC024: "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    0xC027: "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    0xC028: "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    0x002F: "TLS_RSA_WITH_AES_128_CBC_SHA",
    0x0035: "TLS_RSA_WITH_AES_256_CBC_SHA",
    0x003C: "TLS_RSA_WITH_AES_128_CBC_SHA256",
    0x003D: "TLS_RSA_WITH_AES_256_CBC_SHA256",
    0x0033: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA",
    0x0039: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA",
    0x0067: "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    0x006B: "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    0x000A: "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    0xC012: "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    0x00FF: "TLS_EMPTY_RENEGOTIATION_INFO_SCSV",
    0x5600: "TLS_FALLBACK_SCSV",
}

# Signature schemes, named as the manual's TLS13SignatureAlgorithms /
# TLS12SignatureAlgorithms settings name them.
SIGNATURE_SCHEMES = {
    0x0401: "rsa_pkcs1_sha256",
    0x0501: "rsa_pkcs1_sha384",
    0x0601: "rsa_pkcs1_sha512",
    0x0403: "ecdsa_secp256r1_sha256",
    0x0503: "ecdsa_secp384r1_sha384",
    0x0603: "ecdsa_secp521r1_sha512",
    0x0804: "rsa_pss_sha256",
    0x0805: "rsa_pss_sha384",
    0x0806: "rsa_pss_sha512",
    0x0807: "ed25519",
    0x0808: "ed448",
    0x0809: "rsa_pss_pss_sha256",
    0x080A: "rsa_pss_pss_sha384",
    0x080B: "rsa_pss_pss_sha512",
    0x0201: "sha1-rsa",
    0x0203: "sha1-ecdsa",
    0x0202: "sha1-dsa",
    0x0301: "sha224-rsa",
    0x0303: "sha224-ecdsa",
    0x0402: "sha256-dsa",
    0x081A: "ecdsa_brainpoolP256r1tls13_sha256",
    0x081B: "ecdsa_brainpoolP384r1tls13_sha384",
    0x081C: "ecdsa_brainpoolP512r1tls13_sha512",
    0x0904: "mldsa44",
    0x0905: "mldsa65",
    0x0906: "mldsa87",
}

GROUPS = {
    0x0017: "ecdhe_secp256r1",
    0x0018: "ecdhe_secp384r1",
    0x0019: "ecdhe_secp521r1",
    0x001D: "ecdhe_x25519",
    0x001E: "ecdhe_x448",
    0x0100: "ffdhe_2048",
    0x0101: "ffdhe_3072",
    0x0102: "ffdhe_4096",
    0x0103: "ffdhe_6144",
    0x0104: "ffdhe_8192",
    0x0200: "mlkem512",
    0x0201: "mlkem768",
    0x0202: "mlkem1024",
    0x11EB: "secp256r1mlkem768",
    0x11EC: "x25519mlkem768",
    0x11ED: "secp384r1mlkem1024",
}

VERSIONS = {
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLSv1.1",
    0x0303: "TLSv1.2",
    0x0304: "TLSv1.3",
}


def _is_grease(code: int) -> bool:
    """RFC 8701 GREASE values (0x?A?A) carry no meaning."""
    return (code & 0x0F0F) == 0x0A0A and (code >> 8) == (code & 0xFF)


def _name(table: dict[int, str], code: int) -> str:
    return table.get(code, f"0x{code:04X}")


def cipher_suite_name(code: int) -> str:
    """The IANA name of a cipher suite (``0x1302`` -> ``TLS_AES_256_GCM_SHA384``)."""
    return _name(CIPHER_SUITES, code)


def signature_scheme_name(code: int) -> str:
    """The manual's name of a signature scheme (``0x0804`` -> ``rsa_pss_sha256``)."""
    return _name(SIGNATURE_SCHEMES, code)


def group_name(code: int) -> str:
    """The manual's name of a key-exchange group (``0x001D`` -> ``ecdhe_x25519``)."""
    return _name(GROUPS, code)


class ClientHelloError(ValueError):
    """The bytes are not a (well-formed) TLS ClientHello."""


@dataclass(slots=True)
class ClientHello:
    """What the client offered; GREASE values are left out."""

    legacy_version: int = 0
    server_name: str = ""
    cipher_suites: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)
    supported_groups: list[int] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    alpn_protocols: list[bytes] = field(default_factory=list)

    @property
    def versions(self) -> list[str]:
        """Offered protocol versions, newest first (``["TLSv1.3", "TLSv1.2"]``)."""
        offered = self.supported_versions or [self.legacy_version]
        return [VERSIONS.get(v, f"0x{v:04X}") for v in sorted(offered, reverse=True)]

    @property
    def cipher_suite_names(self) -> str:
        """Comma-separated IANA names, as ``ssl_connection_request`` reports them."""
        return ",".join(cipher_suite_name(c) for c in self.cipher_suites)

    @property
    def signature_algorithm_names(self) -> str:
        """Comma-separated scheme names, as ``ssl_connection_request`` reports them."""
        return ",".join(signature_scheme_name(c) for c in self.signature_algorithms)


class _Reader:
    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise ClientHelloError(f"{self.what} is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> _Reader:
        return _Reader(self.take(self.number(length_size)), self.what)

    def numbers(self, length_size: int, item_size: int) -> list[int]:
        items = self.vector(length_size)
        if len(items.data) % item_size:
            raise ClientHelloError(f"{self.what}: list length is not a multiple of {item_size}")
        return [items.number(item_size) for _ in range(len(items.data) // item_size)]

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


class ClientHelloParser:
    """
    Collects TLS records until a whole ClientHello has arrived.

    :meth:`feed` returns ``None`` while more bytes are needed, the parsed
    :class:`ClientHello` once complete, and raises :class:`ClientHelloError`
    for anything that is not a TLS ClientHello (plaintext sent to a TLS port,
    an SSLv2 hello, garbage, an oversized message, a hello cut into more than
    :data:`MAX_CLIENT_HELLO_RECORDS` records).

    The records are read as they stream in - each byte is looked at once,
    however the hello is cut into records and reads - so the work is linear
    in what was fed; :attr:`copied` counts it.
    """

    __slots__ = ("_header", "_left", "_message", "_records", "copied")

    def __init__(self) -> None:
        self._header = bytearray()  # the record header being read (fewer than 5 bytes)
        self._left = 0  # payload bytes of the current record still to come
        self._message = bytearray()  # handshake bytes gathered from records
        self._records = 0  # records begun
        #: bytes copied so far (record headers, payloads, the message parsed):
        #: the parser's work, at most a small multiple of the bytes fed.
        self.copied = 0

    def feed(self, data: bytes) -> ClientHello | None:
        """Add bytes from the network; see the class docstring."""
        view = memoryview(data)
        position, end = 0, len(view)
        while position < end:
            left = self._left
            if left:  # inside a record's payload
                step = min(left, end - position)
                self._message += view[position : position + step]
                self.copied += step
                position += step
                self._left = left - step
                if self._left == 0:  # a whole record: is the hello complete?
                    hello = self._record_done()
                    if hello is not None:
                        return hello
                continue
            header = self._header
            step = min(5 - len(header), end - position)
            header += view[position : position + step]
            self.copied += step
            position += step
            if len(header) == 5:
                self._left = self._record_header(bytes(header))
                header.clear()
        return None

    def _record_header(self, header: bytes) -> int:
        """Check a record header; the length of its payload."""
        content_type = header[0]
        if content_type != _HANDSHAKE:
            if content_type & 0x80:
                raise ClientHelloError("SSLv2-style ClientHello is not supported")
            raise ClientHelloError(f"not a TLS handshake record (first bytes {header!r})")
        if header[1] != 3:
            raise ClientHelloError(f"not a TLS record (version bytes {header[1:3]!r})")
        length = int.from_bytes(header[3:5], "big")
        if length == 0 or length > 16384 + 2048:
            raise ClientHelloError(f"bad TLS record length {length}")
        self._records += 1
        if self._records > MAX_CLIENT_HELLO_RECORDS:
            raise ClientHelloError(
                f"ClientHello cut into more than {MAX_CLIENT_HELLO_RECORDS} records"
            )
        return length

    def _record_done(self) -> ClientHello | None:
        """A record's payload is in: the ClientHello, if it is now complete."""
        message = self._message
        if len(message) > MAX_CLIENT_HELLO:
            raise ClientHelloError(f"ClientHello larger than {MAX_CLIENT_HELLO} bytes")
        if len(message) < 4:
            return None
        if message[0] != _CLIENT_HELLO:
            raise ClientHelloError(f"first handshake message is type {message[0]}, not ClientHello")
        size = int.from_bytes(message[1:4], "big")
        if size > MAX_CLIENT_HELLO:
            raise ClientHelloError(f"ClientHello larger than {MAX_CLIENT_HELLO} bytes")
        if len(message) < 4 + size:
            return None
        self.copied += size
        return _parse(bytes(message[4 : 4 + size]))


def _parse(body: bytes) -> ClientHello:
    reader = _Reader(body, "ClientHello")
    hello = ClientHello(legacy_version=reader.number(2))
    reader.take(32)  # random
    reader.vector(1)  # legacy_session_id
    hello.cipher_suites = [c for c in reader.numbers(2, 2) if not _is_grease(c)]
    reader.vector(1)  # compression methods
    if reader.done:
        return hello
    extensions = reader.vector(2)
    while not extensions.done:
        kind = extensions.number(2)
        data = extensions.vector(2)
        data.what = f"ClientHello extension {kind}"
        if kind == 0:  # server_name
            names = data.vector(2)
            while not names.done:
                name_type = names.number(1)
                name = names.vector(2).data
                if name_type == 0:
                    try:
                        hello.server_name = name.decode("ascii")
                    except UnicodeDecodeError:
                        raise ClientHelloError(f"SNI name is not ASCII: {name!r}") from None
        elif kind == 13:  # signature_algorithms
            hello.signature_algorithms = [c for c in data.numbers(2, 2) if not _is_grease(c)]
        elif kind == 10:  # supported_groups
            hello.supported_groups = [c for c in data.numbers(2, 2) if not _is_grease(c)]
        elif kind == 43:  # supported_versions
            hello.supported_versions = [c for c in data.numbers(1, 2) if not _is_grease(c)]
        elif kind == 16:  # ALPN
            protocols = data.vector(2)
            while not protocols.done:
                hello.alpn_protocols.append(protocols.vector(1).data)
    return hello
