"""PROXY protocol v1/v2 headers, read before anything else on a connection.

With ``ProxyProtocol`` on, a connection's first bytes must be a PROXY header
from a ``TrustedProxies`` address.  The header is parsed by Twisted's own
parsers (``twisted.protocols.haproxy``); the client address it names then
becomes the connection's ``remote_host``/``remote_port`` *before*
``connection_request`` fires, so access lists, listeners and logs all see
the real client.  (Twisted's ``HAProxyWrappingFactory`` learns it only
after the connection is made.)  A missing, malformed or untrusted header
closes that connection, fires ``error`` and counts in
``stats["refused_proxy"]``.  Bytes after the header are the connection's
own (plaintext or TLS), replayed once the connection is accepted.

Twisted's parsers take any text as a v1 host and any integer as a port;
here the addresses must be IP addresses of the family the header names and
the ports 0-65535 (v1: in plain decimal), and both are put in the one
spelling of :func:`~tcpserver.access.canonical_host` before anything
decides on them.  ``PROXY UNKNOWN`` (with or without the rest of the line,
which is ignored) is taken like a v2 LOCAL header: the client is the
socket's peer.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.address import IPv6Address
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from tcpserver import errors
from tcpserver.access import parse_ip
from tcpserver.events import Error

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from tcpserver.host import ConnectionHost

__all__ = ["ProxyHeaderReader", "ProxyInfo", "ProxyOwner", "proxy_info"]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: the longest v1 header; v2 headers say their length (at most 16 + 65535)
V1_MAX = 107
#: the v1 header of a proxy that does not know the client's address, in the
#: spec's short form (Twisted's V1Parser wants a space after UNKNOWN)
V1_UNKNOWN = b"PROXY UNKNOWN"
#: a v1 port: decimal, no sign, no leading zeros (the spec: no octal confusion)
_V1_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


#: PROXY v2 TLV types (the HAProxy PROXY protocol spec, section 2.2)
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_CRC32C = 0x03
PP2_TYPE_NOOP = 0x04
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
PP2_SUBTYPE_SSL_VERSION = 0x21
PP2_SUBTYPE_SSL_CN = 0x22
PP2_SUBTYPE_SSL_CIPHER = 0x23
PP2_SUBTYPE_SSL_SIG_ALG = 0x24
PP2_SUBTYPE_SSL_KEY_ALG = 0x25
PP2_TYPE_NETNS = 0x30
PP2_CLIENT_SSL = 0x01
PP2_CLIENT_CERT_CONN = 0x02
PP2_CLIENT_CERT_SESS = 0x04

#: address block sizes of a v2 header by its family byte's high nibble
_V2_ADDRESS_SIZES = {0x00: 0, 0x10: 12, 0x20: 36, 0x30: 216}


@dataclass(frozen=True)
class ProxyInfo:
    """
    What a PROXY protocol header said about a connection
    (``server.connections[cid].proxy_info``).

    :ivar version: 1 or 2.
    :ivar source: the real client ``(host, port)``, the host in
        :func:`~tcpserver.access.canonical_host` spelling; ``None`` for a
        v2 LOCAL or v1 UNKNOWN header (the proxy's own health check, or a
        client the proxy has no address for).
    :ivar destination: the address the client connected to on the proxy.
    :ivar alpn: the ALPN protocol the client negotiated with the proxy.
    :ivar authority: the host name the client asked for (SNI).
    :ivar unique_id: the proxy's id for the connection (``unique-id``).
    :ivar ssl: the client connected to the proxy over TLS.
    :ivar ssl_client_cert: the client presented a certificate.
    :ivar ssl_verified: a client certificate was presented and verified
        (``False`` without one; ``None``: no SSL TLV).
    :ivar ssl_version: e.g. ``"TLSv1.3"``.
    :ivar ssl_cn: the client certificate's common name.
    :ivar ssl_cipher: e.g. ``"TLS_AES_256_GCM_SHA384"``.
    :ivar ssl_sig_alg: the client certificate's signature algorithm.
    :ivar ssl_key_alg: the client certificate's key algorithm.
    :ivar netns: the proxy's network namespace name.
    :ivar tlvs: every TLV as ``(type, value)``, SSL sub-TLVs included, in order.
    """

    version: int
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    alpn: bytes | None = None
    authority: str | None = None
    unique_id: bytes | None = None
    ssl: bool = False
    ssl_client_cert: bool = False
    ssl_verified: bool | None = None
    ssl_version: str | None = None
    ssl_cn: str | None = None
    ssl_cipher: str | None = None
    ssl_sig_alg: str | None = None
    ssl_key_alg: str | None = None
    netns: str | None = None
    tlvs: tuple[tuple[int, bytes], ...] = field(default=())


def _address(value: Any, role: str) -> tuple[str, int] | None:
    """
    One of Twisted's parsed addresses, checked and in canonical spelling
    (``None``: no address - LOCAL, UNKNOWN, an AF_UNIX v2 header).

    :raises ValueError: a host that is not an IP address of the header's
        family, or a port outside 0-65535.
    """
    host = getattr(value, "host", None)
    if host is None:
        return None
    if isinstance(host, bytes):
        host = host.decode("ascii")
    family = 6 if isinstance(value, IPv6Address) else 4
    try:
        if "%" in host:  # (ipaddress takes a scope id; a PROXY header has none)
            raise ValueError
        address = parse_ip(host, family)
    except ValueError:
        raise ValueError(f"the {role} address {host!r} is not an IPv{family} address") from None
    port = value.port
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"the {role} port {port} is not in 0-65535")
    return str(address), port


def _check_v1_fields(line: bytes) -> None:
    """
    What Twisted's V1Parser lets through in a TCP4/TCP6 line: other than six
    fields (it ignores the rest), a port that is not plain decimal (it calls
    ``int()``: ``-5``, ``+5``, ``0x10`` are refused here, ``99999`` by
    :func:`_address`).

    :raises ValueError: naming the bad field.
    """
    fields = line.split(b" ")
    if fields[:1] != [b"PROXY"] or fields[1:2] not in ([b"TCP4"], [b"TCP6"]):
        return  # (Twisted's parser says what is wrong)
    if len(fields) != 6:
        raise ValueError(f"{len(fields) - 1} fields after PROXY, not 5: {line!r}")
    for role, text in (("source", fields[4]), ("destination", fields[5])):
        if not _V1_PORT.fullmatch(text):
            raise ValueError(f"the {role} port {text!r} is not a decimal 0-65535")


def _split_tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """``(type, value)`` pairs; a truncated TLV raises ValueError."""
    tlvs = []
    offset = 0
    while offset < len(data):
        if offset + 3 > len(data):
            raise ValueError("a truncated TLV")
        kind = data[offset]
        (length,) = struct.unpack_from("!H", data, offset + 1)
        value = data[offset + 3 : offset + 3 + length]
        if len(value) != length:
            raise ValueError("a truncated TLV")
        tlvs.append((kind, value))
        offset += 3 + length
    return tlvs


def proxy_info(header: bytes, parsed: Any) -> ProxyInfo:
    """
    The :class:`ProxyInfo` of a complete header (``parsed`` is Twisted's
    parse of it, for the addresses; ``None`` for the v1 ``PROXY UNKNOWN``
    short form).

    :raises ValueError: a bad address or port, malformed TLVs.
    """
    if parsed is None:
        return ProxyInfo(1, None, None)
    source = _address(parsed.source, "source")
    destination = _address(parsed.destination, "destination")
    if not header.startswith(V2_SIGNATURE):
        return ProxyInfo(1, source, destination)
    (length,) = struct.unpack_from("!H", header, 14)
    # (a LOCAL header may carry an address block too: it is skipped all the same)
    skip = _V2_ADDRESS_SIZES.get(header[13] & 0xF0, 0)
    body = header[16 : 16 + length]
    tlvs = _split_tlvs(body[skip:]) if len(body) > skip else []
    fields: dict[str, Any] = {}
    every: list[tuple[int, bytes]] = []
    text = lambda value: value.decode("utf-8", "replace")  # noqa: E731
    for kind, value in tlvs:
        every.append((kind, value))
        if kind == PP2_TYPE_ALPN:
            fields["alpn"] = value
        elif kind == PP2_TYPE_AUTHORITY:
            fields["authority"] = text(value)
        elif kind == PP2_TYPE_UNIQUE_ID:
            fields["unique_id"] = value
        elif kind == PP2_TYPE_NETNS:
            fields["netns"] = text(value)
        elif kind == PP2_TYPE_SSL and len(value) >= 5:
            client = value[0]
            (verify,) = struct.unpack_from("!I", value, 1)
            presented = bool(client & (PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS))
            fields["ssl"] = bool(client & PP2_CLIENT_SSL)
            fields["ssl_client_cert"] = presented
            # HAProxy zeroes the TLV and fills in verify only for a certificate:
            # no certificate is never "verified"
            fields["ssl_verified"] = presented and verify == 0
            names = {
                PP2_SUBTYPE_SSL_VERSION: "ssl_version",
                PP2_SUBTYPE_SSL_CN: "ssl_cn",
                PP2_SUBTYPE_SSL_CIPHER: "ssl_cipher",
                PP2_SUBTYPE_SSL_SIG_ALG: "ssl_sig_alg",
                PP2_SUBTYPE_SSL_KEY_ALG: "ssl_key_alg",
            }
            for sub_kind, sub_value in _split_tlvs(value[5:]):
                every.append((sub_kind, sub_value))
                if sub_kind in names:
                    fields[names[sub_kind]] = text(sub_value)
    return ProxyInfo(2, source, destination, tlvs=tuple(every), **fields)


def _parsers() -> tuple[Any, Any, type[Exception]]:
    from tcpserver._twisted import haproxy_parsers

    return haproxy_parsers()


class ProxyOwner(Protocol):
    """What a :class:`ProxyHeaderReader` asks of its connection."""

    remote_host: str
    remote_port: int
    proxy_info: ProxyInfo | None

    @property
    def factory(self) -> ConnectionHost:
        """The factory (its counters and listeners)."""

    def route_raw(self, hook: Callable[[bytes], None] | None) -> None:
        """Raw bytes go to ``hook`` from now on (``None``: to the stream)."""

    def release_raw(self, hook: Callable[[bytes], None]) -> None:
        """If raw bytes still go to ``hook``, they go to the stream from now on."""

    def peer_known(self, host: str, port: int) -> Deferred[None] | None:
        """The real client is known: decide (a Deferred if that takes a while)."""

    def refuse_now(self) -> None:
        """Close the connection unaccepted (no events)."""

    def replay(self, data: bytes) -> None:
        """Bytes that came after the header, for the accepted connection."""


class ProxyHeaderReader:
    """
    The raw-bytes hook of a connection until its PROXY header is read.

    :param owner: the connection.
    :param trusted: the connection comes from a TrustedProxies address.
    :param detect: ProxyProtocolDetect: a connection without a header is a
        direct client.
    :param timeout: ProxyHeaderTimeout (0: none).
    :param clock: for the timeout.
    """

    __slots__ = ("_buffer", "_clock", "_detect", "_owner", "_pending", "_timeout", "_timer",
                 "_trusted")  # fmt: skip

    _log = Logger()

    def __init__(
        self, owner: ProxyOwner, trusted: bool, detect: bool, timeout: float, clock: IReactorTime
    ) -> None:
        self._owner = owner
        self._buffer = b""
        self._pending = b""
        self._timer: IDelayedCall | None = None
        self._trusted = trusted
        self._detect = detect
        self._timeout = timeout
        self._clock = clock

    def start(self) -> None:
        """Check where the connection comes from; read the header next."""
        owner = self._owner
        if not self._trusted and not self._detect:
            self._refuse(
                errors.ACCESS_DENIED,
                f"PROXY header expected from a TrustedProxies address, but "
                f"{owner.remote_host} is not one",
            )
            return
        owner.route_raw(self.feed)
        if self._timeout:
            self._timer = self._clock.callLater(self._timeout, self._timed_out, self._timeout)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        if self._detect and not self._buffer.startswith((V1_PREFIX, V2_SIGNATURE)):
            self._direct()  # a client that waits for the server to speak first
            return
        self._refuse(
            errors.PROXY_HEADER_TIMEOUT,
            f"no complete PROXY header within {timeout}s (ProxyHeaderTimeout)",
        )

    def stop(self) -> None:
        """The connection has gone: no timeout."""
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def feed(self, data: bytes) -> None:
        """Raw bytes from the socket, until the header is complete."""
        buffer = self._buffer + data
        self._buffer = buffer
        v1, v2 = buffer.startswith(V1_PREFIX), buffer.startswith(V2_SIGNATURE)
        if not (v1 or v2):
            if V1_PREFIX.startswith(buffer[:6]) or V2_SIGNATURE.startswith(buffer[:12]):
                return  # (a prefix of either: wait for more)
            if self._detect:
                self._direct()  # ProxyProtocolDetect: no header, a direct client
                return
            self._malformed(f"the connection does not start with one: {buffer[:16]!r}")
            return
        if not self._trusted:
            self._refuse(
                errors.ACCESS_DENIED,
                f"a PROXY header from {self._owner.remote_host}, which is not a "
                "TrustedProxies address",
            )
            return
        v1_parser, v2_parser, invalid = _parsers()
        if v2 and len(buffer) < 16:
            return
        if v1 and b"\r\n" not in buffer[:V1_MAX]:
            if len(buffer) >= V1_MAX:
                self._malformed(f"a v1 header longer than {V1_MAX} bytes: {buffer[:40]!r}...")
            return
        version = 1 if v1 else 2
        try:
            if v1:
                line, _, rest = buffer.partition(b"\r\n")
                _check_v1_fields(line)
                info = None if line == V1_UNKNOWN else v1_parser.parse(line)
                header = line
            else:
                info, rest = v2_parser().feed(buffer)
                if info is None:
                    return  # a v2 header not complete yet
                header = info.header
            details = proxy_info(header, info)
        except invalid as exc:
            self._malformed(f"an invalid v{version} header ({type(exc).__name__})")
            return
        except ValueError as exc:  # (ours, naming the field)
            self._malformed(f"an invalid v{version} header ({exc})")
            return
        except Exception as exc:  # noqa: BLE001 - anything the parser chokes on
            self._malformed(f"an invalid v{version} header ({exc!r})")
            return
        self._buffer = b""
        self.stop()
        self._accept(details, rest or b"")

    def _direct(self) -> None:
        """Detection found no header: the peer is the client."""
        self.stop()
        buffer, self._buffer = self._buffer, b""
        self._accept(None, buffer)

    def _accept(self, info: ProxyInfo | None, rest: bytes) -> None:
        """Go on with the real client (``info``; ``None``: a direct connection)."""
        owner = self._owner
        owner.proxy_info = info
        if info is None or info.source is None:
            # a direct connection (detection), or LOCAL/UNKNOWN: the proxy itself
            host, port = owner.remote_host, owner.remote_port
        else:
            host, port = info.source
        self._pending = rest
        owner.route_raw(self._hold)
        decision: Deferred[Any] | None = owner.peer_known(str(host), port)
        if decision is None:
            self._replay()
        else:
            decision.addCallback(self._replay_after)

    def _replay_after(self, result: object) -> object:
        self._replay()
        return result

    def _hold(self, data: bytes) -> None:
        """More bytes while connection_request decides: kept for later."""
        self._pending += data

    def _replay(self) -> None:
        data, self._pending = self._pending, b""
        self._owner.release_raw(self._hold)  # (TLS may have taken the raw bytes since)
        self._owner.replay(data)

    def _malformed(self, why: str) -> None:
        self._refuse(errors.PEER_PROTOCOL_ERROR, f"bad PROXY protocol header: {why}")

    def _refuse(self, code: int, description: str) -> None:
        self.stop()
        owner = self._owner
        factory = owner.factory
        factory.counters["refused_proxy"] += 1
        owner.route_raw(None)
        self._log.info(
            "PROXY protocol: closing a connection from {peer}: {description}",
            peer=owner.remote_host,
            description=description,
        )
        factory.dispatcher.dispatch("error", Error("", code, description))
        owner.refuse_now()
