"""The settings registry: every property and config setting in one table.

Each :class:`Setting` carries its manual name, Python attribute (for
properties), type, default, validation, whether it may change while the
server listens, and a one-line meaning.  ``config()``, the property setters,
the twistd flags and the reference docs are all generated from
:data:`REGISTRY`; there is no second list of names.

:class:`Settings` is the value store one factory owns.  It validates and
converts, and tells its owner about changes; it never touches a socket.
"""

from __future__ import annotations

import codecs
import enum
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from tcpserver import errors
from tcpserver._codepages import codec_for_code_page
from tcpserver._tlsnames import (
    check_cipher_list,
    check_cipher_suites,
    check_groups,
    check_protocols,
    check_sigalgs,
)
from tcpserver.errors import TCPServerError

__all__ = [
    "READOUTS",
    "REGISTRY",
    "SSLStartMode",
    "Setting",
    "Settings",
    "lookup",
    "parse_bool",
]

T = TypeVar("T")


class SSLStartMode(enum.IntEnum):
    """How TLS starts on a connection (the manual's ``SSLStartMode``)."""

    #: Detect a TLS ClientHello on the first byte; otherwise plaintext.
    AUTOMATIC = 0
    #: TLS handshake immediately after the TCP connection is accepted.
    IMPLICIT = 1
    #: Plaintext first; ``start_ssl(connection_id)`` upgrades (STARTTLS).
    EXPLICIT = 2
    #: No TLS.
    NONE = 3


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(text: str) -> bool:
    """
    The manual's booleans: True/False/1/0/Yes/No, any case (On/Off too).

    :raises ValueError: for anything else.
    """
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected True/False/1/0/Yes/No")


def _parse_int(text: str) -> int:
    """Decimal or ``0x`` hexadecimal integers (the manual uses both)."""
    return int(text.strip(), 0)


def decode_escapes(text: str) -> bytes:
    r"""
    Turn an escaped string from a command line or config file into bytes.

    ``"\r\n"`` (backslash escapes), ``"\x00"`` and literal characters up to
    U+00FF are accepted, so any byte string can be written.

    :raises ValueError: for a character above U+00FF or a bad escape.
    """
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError("only characters up to \\xff are allowed") from exc
    try:
        decoded: bytes = codecs.escape_decode(raw)[0]
    except ValueError as exc:
        raise ValueError(f"bad escape sequence ({exc})") from exc
    return decoded


def encode_escapes(value: bytes) -> str:
    r"""The inverse of :func:`decode_escapes`: ``b"\r\n"`` -> ``"\r\n"``."""
    out: str = codecs.escape_encode(value)[0].decode("latin-1")
    return out


class SettingType(Generic[T]):
    """How one kind of value is parsed, checked and shown."""

    #: shown in docs and ``--help``
    name = "str"

    def from_string(self, text: str) -> T:
        """Parse the string form (``config()``, twistd, config files)."""
        raise NotImplementedError

    def coerce(self, value: object) -> T:
        """Check and normalise a Python value (property setters)."""
        if isinstance(value, str):
            return self.from_string(value)
        raise ValueError(f"expected {self.name}")

    def to_string(self, value: T) -> str:
        """The string ``config(name)`` returns."""
        return str(value)


class _Int(SettingType[int]):
    def __init__(
        self,
        minimum: int | None = 0,
        maximum: int | None = None,
        check: Callable[[int], object] | None = None,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.name = "int"
        self._extra = check

    def from_string(self, text: str) -> int:
        try:
            number = _parse_int(text)
        except ValueError:
            raise ValueError("expected an integer") from None
        return self._check(number)

    def coerce(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("expected an integer")
        if isinstance(value, str):
            return self.from_string(value)
        return self._check(value)

    def _check(self, number: int) -> int:
        if self.minimum is not None and number < self.minimum:
            raise ValueError(f"must be at least {self.minimum}")
        if self.maximum is not None and number > self.maximum:
            raise ValueError(f"must be at most {self.maximum}")
        if self._extra is not None:
            self._extra(number)
        return number


class _Seconds(SettingType[float]):
    """Non-negative seconds; ints stay ints when shown."""

    name = "seconds"

    def from_string(self, text: str) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError("expected a number of seconds") from None
        return self._check(number)

    def coerce(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("expected a number of seconds")
        if isinstance(value, str):
            return self.from_string(value)
        return self._check(value)

    def _check(self, number: float) -> float:
        if number != number or number < 0 or number == float("inf"):
            raise ValueError("must be a finite number >= 0")
        return int(number) if float(number).is_integer() else number

    def to_string(self, value: float) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)


class _Rate(_Seconds):
    """A non-negative number of events per second."""

    name = "per second"

    def from_string(self, text: str) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError("expected a number per second") from None
        return self._check(number)


class _Bool(SettingType[bool]):
    name = "bool"

    def from_string(self, text: str) -> bool:
        return parse_bool(text)

    def coerce(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            return parse_bool(value)
        raise ValueError("expected a boolean")

    def to_string(self, value: bool) -> str:
        return "True" if value else "False"


class _Str(SettingType[str]):
    name = "str"

    def __init__(self, check: Callable[[str], object] | None = None) -> None:
        self._check = check

    def from_string(self, text: str) -> str:
        if self._check is not None:
            self._check(text)
        return text


class _Bytes(SettingType[bytes]):
    r"""Bytes; strings from config/twistd may use ``\r\n``-style escapes."""

    name = "bytes"

    def from_string(self, text: str) -> bytes:
        return decode_escapes(text)

    def coerce(self, value: object) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            # A Python str is taken literally: "\r\n" is already CR LF.
            try:
                return value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("str values may only hold characters up to \\xff") from None
        raise ValueError("expected bytes")

    def to_string(self, value: bytes) -> str:
        return encode_escapes(value)


E = TypeVar("E", bound=enum.IntEnum)


class _Enum(SettingType[E]):
    def __init__(self, cls: type[E]) -> None:
        self.cls = cls
        self.name = cls.__name__

    def from_string(self, text: str) -> E:
        stripped = text.strip()
        try:
            return self.cls(int(stripped, 0))
        except ValueError:
            pass
        try:
            return self.cls[stripped.upper()]
        except KeyError:
            choices = ", ".join(f"{m.value} ({m.name})" for m in self.cls)
            raise ValueError(f"expected one of {choices}") from None

    def coerce(self, value: object) -> E:
        if isinstance(value, str):
            return self.from_string(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a {self.cls.__name__}")
        try:
            return self.cls(value)
        except ValueError:
            choices = ", ".join(f"{m.value} ({m.name})" for m in self.cls)
            raise ValueError(f"expected one of {choices}") from None

    def to_string(self, value: E) -> str:
        return str(int(value))


class _Choice(SettingType[int]):
    """An int restricted to a documented set of values."""

    def __init__(self, choices: Mapping[int, str]) -> None:
        self.choices = dict(choices)
        self.name = "int"

    def from_string(self, text: str) -> int:
        try:
            number = _parse_int(text)
        except ValueError:
            raise ValueError(self._expected()) from None
        return self.coerce(number)

    def coerce(self, value: object) -> int:
        if isinstance(value, str):
            return self.from_string(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(self._expected())
        if value not in self.choices:
            raise ValueError(self._expected())
        return value

    def _expected(self) -> str:
        return "expected one of " + ", ".join(f"{k} ({v})" for k, v in self.choices.items())


class _CodePage(_Int):
    def _check(self, number: int) -> int:
        try:
            codec_for_code_page(number)
        except LookupError:
            raise ValueError("Python has no codec for this code page") from None
        return number


class _Object(SettingType[Any]):
    """A Python object that has no string form (``ssl_cert``)."""

    def __init__(self, name: str, check: Callable[[object], object]) -> None:
        self.name = name
        self._check = check

    def from_string(self, text: str) -> Any:
        raise ValueError(f"a {self.name} cannot be given as a string")

    def coerce(self, value: object) -> Any:
        self._check(value)
        return value

    def to_string(self, value: Any) -> str:
        return "" if value is None else str(getattr(value, "subject", value))


def _check_certificate(value: object) -> None:
    from tcpserver.certificates import Certificate  # it imports settings

    if value is None:
        return
    if not isinstance(value, Certificate):
        raise ValueError("expected a tcpserver.Certificate or None")
    if not value.private_key_available:
        raise TCPServerError(
            errors.CANNOT_ACQUIRE_CREDENTIALS,
            f"certificate {value.subject!r} has no private key: a server cannot use it",
        )


def _check_existing(kind: str) -> Callable[[str], None]:
    def check(path: str) -> None:
        if not path:
            return
        exists = os.path.isdir(path) if kind == "directory" else os.path.isfile(path)
        if not exists:
            raise ValueError(f"no such {kind}")

    return check


def _check_key_log(path: str) -> None:
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError("its directory does not exist")


def _check_pem_list(setting: str) -> Callable[[str], None]:
    def check(text: str) -> None:
        from tcpserver.certificates import load_pem_certificates

        try:
            load_pem_certificates(text, setting)
        except TCPServerError as exc:
            raise ValueError(exc.description) from None

    return check


def _check_address_list(text: str) -> None:
    from tcpserver.access import AddressMatcher

    AddressMatcher.parse(text)


Kind = Literal["property", "config"]


@dataclass(frozen=True, slots=True)
class Setting:
    """
    One entry of the registry.

    :ivar name: the manual's name (``MaxConnections``, ``DefaultEOL``).
    :ivar kind: ``"property"`` (a Python attribute, :attr:`attr`) or
        ``"config"`` (reached through ``config()``).
    :ivar type: parses, checks and formats values.
    :ivar default: the manual's default (or ours, where documented).
    :ivar doc: one line saying what it does.
    :ivar attr: the snake_case attribute for properties.
    :ivar listening_error: the error code raised when it is changed while
        listening (``106``, ``107``, ``108``); ``None`` if it may change.
    :ivar read_only: cannot be set (``BuildInfo``).
    :ivar unsupported: why a non-default value is refused, or ``None`` when
        every valid value is honoured.
    :ivar applies: when a change takes effect, for the docs.
    :ivar flag: the first-class twistd flag, if it has one.
    """

    name: str
    kind: Kind
    type: SettingType[Any]
    default: Any
    doc: str
    attr: str | None = None
    listening_error: int | None = None
    read_only: bool = False
    unsupported: str | None = None
    applies: str = "at once"
    flag: str | None = None

    def parse(self, text: str) -> Any:
        """Parse ``text`` for this setting; bad values raise 10022."""
        try:
            return self.type.from_string(text)
        except ValueError as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"{self.name}: bad value {text!r}: {exc}"
            ) from None

    def coerce(self, value: object) -> Any:
        """Check a Python value for this setting; bad values raise 10022."""
        try:
            return self.type.coerce(value)
        except ValueError as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"{self.name}: bad value {value!r}: {exc}"
            ) from None

    def format(self, value: Any) -> str:
        """The string form of ``value``."""
        return self.type.to_string(value)


_NEW_CONNECTIONS = "to connections accepted afterwards"
_NEXT_LISTEN = "at the next start_listening()"
_NEXT_HANDSHAKE = "to TLS handshakes started afterwards"

_RSA_TLS12_SIGALGS = (
    "sha512-ecdsa,sha512-rsa,sha512-dsa,sha384-ecdsa,sha384-rsa,sha384-dsa,"
    "sha256-ecdsa,sha256-rsa,sha256-dsa,sha224-ecdsa,sha224-rsa,sha224-dsa,"
    "sha1-ecdsa,sha1-rsa,sha1-dsa"
)
_TLS13_SIGALGS = (
    "rsa_pss_sha256,rsa_pss_sha384,rsa_pss_sha512,rsa_pkcs1_sha256,"
    "rsa_pkcs1_sha384,rsa_pkcs1_sha512,ecdsa_secp256r1_sha256,"
    "ecdsa_secp384r1_sha384,ecdsa_secp521r1_sha512,ed25519,ed448"
)


def _prop(
    name: str, attr: str, type_: SettingType[Any], default: Any, doc: str, **kw: Any
) -> Setting:
    return Setting(name, "property", type_, default, doc, attr=attr, **kw)


def _check_byte_order(text: str) -> None:
    if text not in ("big", "little"):
        raise ValueError("expected big or little")


def _cfg(name: str, type_: SettingType[Any], default: Any, doc: str, **kw: Any) -> Setting:
    return Setting(name, "config", type_, default, doc, **kw)


REGISTRY: tuple[Setting, ...] = (
    # ---- properties -------------------------------------------------------
    _prop(
        "ConnectionBacklog",
        "connection_backlog",
        _Int(1, 65535),
        5,
        "Pending connections the kernel queues for accept() (listen backlog).",
        applies=_NEXT_LISTEN,
        flag="backlog",
    ),
    _prop(
        "DefaultEOL",
        "default_eol",
        _Bytes(),
        b"",
        "End-of-line bytes that split incoming data into lines; empty means "
        "data is delivered as it arrives.",
        applies=_NEW_CONNECTIONS,
        flag="eol",
    ),
    _prop(
        "DefaultIdleTimeout",
        "default_idle_timeout",
        _Seconds(),
        0,
        "Seconds without traffic after which a connection is closed (0: never).",
        applies=_NEW_CONNECTIONS,
        flag="idle-timeout",
    ),
    _prop(
        "DefaultMaxLineLength",
        "default_max_line_length",
        _Int(256),
        2048,
        "Bytes buffered while waiting for an end-of-line before they are "
        "delivered with eol=False (minimum 256).",
        applies=_NEW_CONNECTIONS,
        flag="max-line-length",
    ),
    _prop(
        "DefaultSingleLineMode",
        "default_single_line_mode",
        _Bool(),
        False,
        "Split incoming data on CR, LF or CRLF (DefaultEOL is then ignored).",
        applies=_NEW_CONNECTIONS,
        flag="single-line-mode",
    ),
    _prop(
        "DefaultTimeout",
        "default_timeout",
        _Seconds(),
        0,
        "Send timeout of new connections: 0 = sends fail with 135 when the "
        "queue is full; > 0 = sends wait up to this many seconds.",
        applies=_NEW_CONNECTIONS,
        flag="timeout",
    ),
    _prop(
        "KeepAlive",
        "keep_alive",
        _Bool(),
        False,
        "Enable TCP keep-alive probes (SO_KEEPALIVE) on accepted connections.",
        applies=_NEW_CONNECTIONS,
        flag="keep-alive",
    ),
    _prop(
        "Linger",
        "linger",
        _Bool(),
        True,
        "True: close gracefully after queued data is sent; False: abortive "
        "close (RST, SO_LINGER 0), queued data may be lost.",
        applies=_NEW_CONNECTIONS,
        flag="linger",
    ),
    _prop(
        "LocalHost",
        "local_host",
        _Str(),
        "",
        "IP address (or host name) of the interface to listen on; empty means all interfaces.",
        listening_error=errors.LOCAL_HOST_WHILE_LISTENING,
        applies=_NEXT_LISTEN,
        flag="interface",
    ),
    _prop(
        "LocalPort",
        "local_port",
        _Int(0, 65535),
        0,
        "TCP port to listen on; 0 lets the system pick one (read it back after start_listening()).",
        listening_error=errors.LOCAL_PORT_WHILE_LISTENING,
        applies=_NEXT_LISTEN,
        flag="port",
    ),
    _prop(
        "SSLAuthenticateClients",
        "ssl_authenticate_clients",
        _Bool(),
        False,
        "Ask TLS clients for a certificate (see ssl_client_authentication).",
        applies=_NEXT_HANDSHAKE,
    ),
    _prop(
        "SSLCert",
        "ssl_cert",
        _Object("Certificate", _check_certificate),
        None,
        "The server certificate (a tcpserver.Certificate) used for TLS.",
        applies=_NEXT_HANDSHAKE,
    ),
    _prop(
        "SSLEnabled",
        "ssl_enabled",
        _Bool(),
        False,
        "Whether TLS is enabled; setting ssl_start_mode updates it.",
        applies=_NEW_CONNECTIONS,
    ),
    _prop(
        "SSLProvider",
        "ssl_provider",
        _Choice({0: "Automatic", 1: "Platform"}),
        0,
        "TLS implementation: 0 automatic and 1 platform both mean OpenSSL "
        "(through pyOpenSSL); 2 (internal) does not exist here.",
        applies=_NEW_CONNECTIONS,
    ),
    _prop(
        "SSLStartMode",
        "ssl_start_mode",
        _Enum(SSLStartMode),
        SSLStartMode.NONE,
        "How TLS starts: 0 automatic (detect), 1 implicit, 2 explicit (start_ssl), 3 none.",
        applies=_NEW_CONNECTIONS,
        flag="ssl-start-mode",
    ),
    # ---- TCPServer config settings ------------------------------------------
    _cfg(
        "AllowedClients",
        _Str(_check_address_list),
        "*",
        "Comma-separated addresses allowed to connect: '*' wildcards, CIDR "
        "blocks and IPv6 accepted. Others get accept=False in connection_request.",
        flag="allowed-clients",
    ),
    _cfg(
        "BindExclusively",
        _Bool(),
        True,
        "True: the port is reserved for this server; False: other sockets "
        "may bind it too (SO_REUSEPORT).",
        applies=_NEXT_LISTEN,
    ),
    _cfg(
        "BlockedClients",
        _Str(_check_address_list),
        "",
        "Comma-separated addresses refused (accept=False in "
        "connection_request); same syntax as AllowedClients.",
        flag="blocked-clients",
    ),
    _cfg(
        "ProxyProtocol",
        _Bool(),
        False,
        "Expect a PROXY protocol v1 or v2 header (HAProxy, load balancers) "
        "first on every connection, from a TrustedProxies address: the real "
        "client address is known before connection_request.",
        applies=_NEW_CONNECTIONS,
        flag="proxy-protocol",
    ),
    _cfg(
        "TrustedProxies",
        _Str(_check_address_list),
        "127.0.0.1,::1",
        "Comma-separated addresses (CIDR blocks allowed) PROXY headers are "
        "accepted from; with ProxyProtocol on, connections from elsewhere are closed.",
        applies=_NEW_CONNECTIONS,
        flag="trusted-proxies",
    ),
    _cfg(
        "DefaultLengthPrefix",
        _Choice({0: "off", 1: "1 byte", 2: "2 bytes", 4: "4 bytes", 8: "8 bytes"}),
        0,
        "Length-prefixed framing for new connections: each frame starts with "
        "its length in this many bytes (like Netty's LengthFieldBasedFrameDecoder); "
        "per connection change_length_prefix().",
        applies=_NEW_CONNECTIONS,
        flag="length-prefix",
    ),
    _cfg(
        "LengthPrefixByteOrder",
        _Str(_check_byte_order),
        "big",
        "Byte order of the length prefix: big (network order) or little.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "LengthPrefixAdjustment",
        _Int(minimum=None),
        0,
        "Added to the length field to get the payload length (negative when "
        "the field counts the prefix itself, e.g. -4).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "LengthPrefixStrip",
        _Bool(),
        True,
        "Deliver the payload without its length prefix (False: the whole frame).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "MaxFrameLength",
        _Int(minimum=0),
        1048576,
        "Largest payload a length prefix may announce; a larger one fires "
        "error 907 and closes the connection (or is skipped, SkipTooLongFrames).",
        applies=_NEW_CONNECTIONS,
        flag="max-frame-length",
    ),
    _cfg(
        "SkipTooLongFrames",
        _Bool(),
        False,
        "A too-long length-prefixed frame is skipped (its bytes dropped, error "
        "907 fired, the connection kept) instead of closing the connection.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "ProxyProtocolDetect",
        _Bool(),
        False,
        "With ProxyProtocol on, a connection that does not start with a PROXY "
        "header (or sends nothing within ProxyHeaderTimeout) is served as a "
        "direct client instead of being closed; a header from an address not "
        "in TrustedProxies is still refused (like Netty's detectProtocol).",
        applies=_NEW_CONNECTIONS,
        flag="proxy-protocol-detect",
    ),
    _cfg(
        "ProxyHeaderTimeout",
        _Seconds(),
        10,
        "With ProxyProtocol on: seconds a connection may take to send its "
        "PROXY header before it is closed (error 906, counted as refused "
        "proxy; 0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="proxy-header-timeout",
    ),
    _cfg(
        "ReadIdleTimeout",
        _Seconds(),
        0,
        "Seconds without a byte received after which a connection is closed "
        "with status 903 (like Netty's reader idle; 0: never).",
        applies=_NEW_CONNECTIONS,
        flag="read-idle-timeout",
    ),
    _cfg(
        "WriteIdleTimeout",
        _Seconds(),
        0,
        "Seconds without a byte sent (nothing to send, or output stuck "
        "behind a peer that does not read) after which a connection is "
        "closed with status 904 (like Netty's writer idle; 0: never).",
        applies=_NEW_CONNECTIONS,
        flag="write-idle-timeout",
    ),
    _cfg(
        "CloseGracePeriod",
        _Seconds(),
        0,
        "Seconds a graceful close may take (queued data going out, the "
        "peer's FIN) before it becomes an abort (RST) with status 905 "
        "(0: no limit, except after a timeout, which always escalates).",
        applies=_NEW_CONNECTIONS,
        flag="close-grace-period",
    ),
    _cfg(
        "MaxConnectionsPerAddress",
        _Int(minimum=0),
        0,
        "Most simultaneous connections from one client address (the real one "
        "behind a PROXY header); more are closed at once, before any TLS work, "
        "and counted as refused per_address (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-connections-per-address",
    ),
    _cfg(
        "MaxAcceptRate",
        _Rate(),
        0,
        "Connections accepted per second from all clients together (a token "
        "bucket holding one second's worth); more are closed at once, before "
        "any TLS work, and counted as refused rate (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-accept-rate",
    ),
    _cfg(
        "MaxAcceptRatePerAddress",
        _Rate(),
        0,
        "Connections accepted per second from one client address (a token "
        "bucket per address); more are closed at once and counted as refused "
        "rate (0: no limit).",
        applies=_NEW_CONNECTIONS,
        flag="max-accept-rate-per-address",
    ),
    _cfg(
        "DefaultConnectionTimeout",
        _Seconds(),
        0,
        "Seconds of inactivity allowed during a TLS handshake (0: no limit).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "InBufferSize",
        _Int(0, 1 << 30),
        0,
        "Socket receive buffer (SO_RCVBUF) in bytes; 0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "KeepAliveInterval",
        _Int(0, 1 << 31),
        0,
        "Milliseconds between unanswered keep-alive probes (TCP_KEEPINTVL); "
        "0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "KeepAliveTime",
        _Int(0, 1 << 31),
        0,
        "Milliseconds of inactivity before the first keep-alive probe "
        "(TCP_KEEPIDLE); 0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "MaxConnections",
        _Int(1, 100000),
        1000,
        "Most simultaneous connections; more are closed at once and counted.",
        listening_error=errors.MAX_CONNECTIONS_WHILE_LISTENING,
        applies="before listening only",
        flag="max-connections",
    ),
    _cfg(
        "OutBufferSize",
        _Int(0, 1 << 30),
        0,
        "Socket send buffer (SO_SNDBUF) in bytes; 0 keeps the system default.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "TcpNoDelay",
        _Bool(),
        False,
        "Disable Nagle's algorithm (TCP_NODELAY) on accepted connections.",
        applies=_NEW_CONNECTIONS,
        flag="tcp-nodelay",
    ),
    _cfg(
        "UseIPv6",
        _Choice({0: "IPv4 only", 1: "IPv6 only", 2: "IPv6 and IPv4"}),
        0,
        "0: IPv4 only; 1: IPv6 only; 2: both on one dual-stack socket.",
        applies=_NEXT_LISTEN,
    ),
    # ---- flow control (tcpserver's own; the manual has no numbers) -----------
    _cfg(
        "SendQueueHighWater",
        _Int(1024, 1 << 30),
        256 * 1024,
        "Queued outgoing bytes at which a connection stops reading and ready_to_send turns False.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "SendQueueLowWater",
        _Int(0, 1 << 30),
        64 * 1024,
        "Queued outgoing bytes below which reading resumes and ready_to_send fires again.",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "SendQueueLimit",
        _Int(1024, 1 << 31),
        1024 * 1024,
        "Hard limit of queued outgoing bytes: past it a send with timeout 0 "
        "fails with 135 (bytes_sent tells what was queued).",
        applies=_NEW_CONNECTIONS,
    ),
    # ---- SSL config settings -------------------------------------------------
    _cfg(
        "LogSSLPackets",
        _Bool(),
        False,
        "Report every TLS record sent and received through ssl_status (debugging).",
        applies=_NEW_CONNECTIONS,
    ),
    _cfg(
        "OpenSSLCADir",
        _Str(_check_existing("directory")),
        "",
        "Directory of hashed CA certificates (c_rehash) trusted for client certificates.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "OpenSSLCAFile",
        _Str(_check_existing("file")),
        "",
        "PEM file of CA certificates trusted for client certificates.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "OpenSSLCipherList",
        _Str(check_cipher_list),
        "DEFAULT",
        "OpenSSL cipher list for TLS 1.2 and below (ciphers(1)); DEFAULT keeps "
        "Twisted's strong default list.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "OpenSSLPrngSeedData",
        _Str(),
        "",
        "Data to seed the PRNG with.",
        unsupported="OpenSSL 1.1.1 and later seed themselves from the operating system; "
        "pyOpenSSL offers no way to add seed data",
    ),
    _cfg(
        "ReuseSSLSession",
        _Bool(),
        False,
        "Allow TLS session resumption (server session cache and session tickets).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLAcceptAnyServerCert",
        _Bool(),
        False,
        "Client components only: trust any server certificate.",
        unsupported="it applies to client components; a server has no server "
        "certificate to check (see SSLClientCACerts and ssl_client_authentication)",
    ),
    _cfg(
        "SSLCACerts",
        _Str(_check_pem_list("SSLCACerts")),
        "",
        "PEM CA certificates sent after the server certificate (its chain).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLCipherStrength",
        _Int(0, 1024),
        0,
        "Minimum bulk-cipher strength in bits (0: no minimum).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLClientCACerts",
        _Str(_check_pem_list("SSLClientCACerts")),
        "",
        "PEM CA certificates trusted when verifying client certificates.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLEnabledCipherSuites",
        _Str(check_cipher_suites),
        "*",
        "Cipher suites to enable, IANA names separated by semicolons; '*' = all "
        "enabled by OpenSSLCipherList.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLEnabledProtocols",
        _Int(0, 0xFFFF, check_protocols),
        15360,
        "Bitmask of TLS versions: 12288 TLS 1.3, 3072 TLS 1.2, 768 TLS 1.1, "
        "192 TLS 1.0 (default 15360 = TLS 1.2 + 1.3).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLEnableRenegotiation",
        _Bool(),
        False,
        "Allow client-initiated TLS 1.2 renegotiation.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLIncludeCertChain",
        _Bool(),
        False,
        "ssl_client_authentication carries the client's whole chain, not only its "
        "leaf certificate.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLKeyLogFile",
        _Str(_check_key_log),
        "",
        "Append TLS secrets to this file in NSS key log format (debugging only).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLSecurityFlags",
        _Int(0, 0xFFFFFFFF),
        0,
        "Flags relaxing client certificate checks: 0x1 ignore time validity, "
        "0x10 allow an unknown CA; the others relax checks tcpserver does not make.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "SSLServerCACerts",
        _Str(),
        "",
        "Client components only: CA certificates for server verification.",
        unsupported="it applies to client components; servers verify clients with SSLClientCACerts",
    ),
    _cfg(
        "TLS12SignatureAlgorithms",
        _Str(check_sigalgs),
        _RSA_TLS12_SIGALGS,
        "Signature algorithms allowed in TLS 1.2 (hash-signature pairs).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "TLS12SupportedGroups",
        _Str(check_groups),
        "ecdhe_secp256r1,ecdhe_secp384r1,ecdhe_secp521r1",
        "Key-exchange groups for TLS 1.2 (joined with TLS13SupportedGroups; OpenSSL has one list).",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "TLS13KeyShareGroups",
        _Str(check_groups),
        "ecdhe_x25519,ecdhe_secp256r1,ecdhe_secp384r1,ffdhe_2048,ffdhe_3072",
        "Client components only: groups whose key shares are sent in advance.",
        unsupported="clients choose the key shares they send; a server answers one of "
        "them (restrict groups with TLS13SupportedGroups)",
    ),
    _cfg(
        "TLS13SignatureAlgorithms",
        _Str(check_sigalgs),
        _TLS13_SIGALGS,
        "Signature algorithms allowed in TLS 1.3.",
        applies=_NEXT_HANDSHAKE,
    ),
    _cfg(
        "TLS13SupportedGroups",
        _Str(check_groups),
        "ecdhe_x25519,ecdhe_x448,ecdhe_secp256r1,ecdhe_secp384r1,ecdhe_secp521r1,"
        "ffdhe_2048,ffdhe_3072,ffdhe_4096,ffdhe_6144,ffdhe_8192",
        "Key-exchange groups for TLS 1.3, most preferred first.",
        applies=_NEXT_HANDSHAKE,
    ),
    # ---- base config settings ------------------------------------------------
    _cfg("BuildInfo", _Str(), "", "Versions of tcpserver and what it runs on.", read_only=True),
    _cfg(
        "CodePage",
        _CodePage(1, 65535),
        65001,
        "Code page send_text() encodes with (65001 = UTF-8, 1252, 28591...).",
        flag="code-page",
    ),
    _cfg("LicenseInfo", _Str(), "", "The license tcpserver is distributed under.", read_only=True),
    _cfg(
        "MaskSensitiveData",
        _Bool(),
        True,
        "Keep payload bytes (and passwords) out of log messages: events in logs "
        "show data as '<N bytes>'.",
    ),
    _cfg(
        "UseInternalSecurityAPI",
        _Bool(),
        False,
        "True would select an internal TLS implementation; only OpenSSL exists here.",
        unsupported="tcpserver always uses OpenSSL through pyOpenSSL",
    ),
)

#: Per-connection read-outs: ``config("SSLNegotiatedCipher[<connection_id>]")``.
READOUTS: tuple[str, ...] = (
    "SSLNegotiatedCipher",
    "SSLNegotiatedCipherStrength",
    "SSLNegotiatedCipherSuite",
    "SSLNegotiatedKeyExchange",
    "SSLNegotiatedKeyExchangeStrength",
    "SSLNegotiatedVersion",
)

_BY_NAME: dict[str, Setting] = {s.name.lower(): s for s in REGISTRY}
_BY_ATTR: dict[str, Setting] = {s.attr: s for s in REGISTRY if s.attr}
_READOUTS_LOWER: dict[str, str] = {r.lower(): r for r in READOUTS}
_CONFIG_RE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(?:\[([^\]]*)\])?\s*(?:=(.*))?$", re.S)


def lookup(name: str) -> Setting:
    """
    The setting called ``name`` (manual name, any case, or snake_case attribute).

    :raises TCPServerError: 10022 naming the unknown setting.
    """
    setting = _BY_NAME.get(name.strip().lower()) or _BY_ATTR.get(name.strip())
    if setting is None:
        raise TCPServerError(errors.INVALID_ARGUMENT, f"unknown setting {name!r}")
    return setting


def readout_name(name: str) -> str | None:
    """The canonical read-out name for ``name``, or ``None`` if it is not one."""
    return _READOUTS_LOWER.get(name.strip().lower())


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    """A parsed ``config()`` string: ``Name``, ``Name=Value`` or ``Name[id]``."""

    name: str
    index: str | None
    value: str | None


def parse_config_string(text: str) -> ConfigRequest:
    """
    Split a ``config()`` argument.

    :raises TCPServerError: 10022 if it is not ``Name``, ``Name=Value`` or
        ``Name[connection_id]``.
    """
    match = _CONFIG_RE.match(text)
    if match is None:
        raise TCPServerError(
            errors.INVALID_ARGUMENT,
            f"config() takes 'Name' or 'Name=Value', got {text!r}",
        )
    name, index, value = match.groups()
    return ConfigRequest(name, index, value)


class Settings:
    """
    The current values of every setting, validated on the way in.

    :param on_change: called as ``on_change(setting, value)`` after a value
        changed, so the owner can apply it (rebuild a matcher, refresh TLS).
    """

    def __init__(self, on_change: Callable[[Setting, Any], None] | None = None) -> None:
        self._values: dict[str, Any] = {s.name: s.default for s in REGISTRY}
        self._on_change = on_change

    def __iter__(self) -> Iterator[Setting]:
        return iter(REGISTRY)

    def get(self, name: str) -> Any:
        """The current value of ``name`` (manual name or attribute)."""
        return self._values[lookup(name).name]

    def __getitem__(self, canonical_name: str) -> Any:
        """Fast read by exact manual name (``settings["MaxConnections"]``)."""
        return self._values[canonical_name]

    def set(self, name: str, value: object, *, listening: bool = False) -> None:
        """
        Validate and store a Python value.

        :param listening: whether the owning server listens now; settings
            that cannot change then raise their manual code (106/107/108).
        :raises TCPServerError: for a bad value, a read-only or unsupported
            setting, or a change the manual forbids while listening.
        """
        setting = lookup(name)
        self._store(setting, setting.coerce(value), value, listening)

    def set_string(self, name: str, text: str, *, listening: bool = False) -> None:
        """Like :meth:`set` for the string form (``config()``, twistd)."""
        setting = lookup(name)
        self._store(setting, setting.parse(text), text, listening)

    def get_string(self, name: str) -> str:
        """The string form of the current value (what ``config(name)`` returns)."""
        setting = lookup(name)
        if setting.name == "BuildInfo":
            return build_info()
        if setting.name == "LicenseInfo":
            return LICENSE_INFO
        return setting.format(self._values[setting.name])

    def reset(self) -> None:
        """Every setting back to its default (``reset()``)."""
        for setting in REGISTRY:
            if self._values[setting.name] != setting.default:
                self._values[setting.name] = setting.default
                if self._on_change is not None:
                    self._on_change(setting, setting.default)

    def _store(self, setting: Setting, value: Any, shown: object, listening: bool) -> None:
        if setting.read_only:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"{setting.name} is read-only (tried {shown!r})"
            )
        current = self._values[setting.name]
        if setting.listening_error is not None and listening and value != current:
            raise TCPServerError(
                setting.listening_error,
                f"{errors.description_for(setting.listening_error)} "
                f"(tried {setting.name}={shown!r})",
            )
        if setting.unsupported is not None and value != setting.default:
            raise TCPServerError(
                errors.NOT_SUPPORTED,
                f"{setting.name}={shown!r} is not supported: {setting.unsupported}",
            )
        self._values[setting.name] = value
        if self._on_change is not None and value != current:
            self._on_change(setting, value)


LICENSE_INFO = (
    "Product: tcpserver; License Type: MIT (open source); "
    "License Source: distribution metadata; no license key required"
)


def build_info() -> str:
    """``BuildInfo``: versions of tcpserver, Python, Twisted and OpenSSL."""
    import platform

    from OpenSSL import SSL
    from OpenSSL import __version__ as pyopenssl_version

    from tcpserver._version import __version__
    from twisted import __version__ as twisted_version

    openssl = SSL.OpenSSL_version(SSL.OPENSSL_VERSION).decode("ascii", "replace")
    return (
        f"tcpserver {__version__}; Python {platform.python_version()} "
        f"({platform.python_implementation()}); Twisted {twisted_version}; "
        f"pyOpenSSL {pyopenssl_version}; {openssl}; {platform.system()} {platform.machine()}"
    )
