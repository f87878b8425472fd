"""The vocabulary of settings: value types and the :class:`Setting` record.

It owns :class:`SSLStartMode`, the manual's booleans (:func:`parse_bool`),
the escapes of byte strings given as text, the :class:`SettingType` classes
that parse, check and format one kind of value, and :class:`Setting` - one
entry of the registry, including what a change of it affects
(:data:`EFFECTS`) and the values coupled to it.

It holds no values and no registry: :mod:`tcpserver.registry` lists the
settings, :mod:`tcpserver.settings` stores their values.  It never imports
either, nor anything that serves connections.
"""

from __future__ import annotations

import codecs
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

from tcpserver import errors
from tcpserver._codepages import codec_for_code_page
from tcpserver.errors import TCPServerError

__all__ = [
    "EFFECTS",
    "BoolType",
    "BytesType",
    "ChoiceType",
    "CodePageType",
    "Coupling",
    "Effect",
    "EnumType",
    "IntType",
    "Kind",
    "ObjectType",
    "RateType",
    "SSLStartMode",
    "SecondsType",
    "Setting",
    "SettingType",
    "StrType",
    "decode_escapes",
    "encode_escapes",
    "parse_bool",
]

T = TypeVar("T")


class SSLStartMode(enum.IntEnum):
    """How TLS starts on a connection (the manual's ``SSLStartMode``, plus DETECT)."""

    #: The manual's automatic: explicit on a protocol's standard plaintext
    #: port, implicit everywhere else - for this server, implicit TLS.
    AUTOMATIC = 0
    #: TLS handshake immediately after the TCP connection is accepted.
    IMPLICIT = 1
    #: Plaintext first; ``start_ssl(connection_id)`` upgrades (STARTTLS).
    EXPLICIT = 2
    #: No TLS.
    NONE = 3
    #: Beyond the manual: TLS if the first byte starts a TLS record (0x16),
    #: plaintext otherwise - TLS and plaintext clients on one port.
    DETECT = 4

    @property
    def effective(self) -> SSLStartMode:
        """What the mode does on a connection: AUTOMATIC is IMPLICIT, the rest are themselves."""
        return SSLStartMode.IMPLICIT if self is SSLStartMode.AUTOMATIC else self


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


class IntType(SettingType[int]):
    """An integer in ``[minimum, maximum]`` (decimal or ``0x`` hex), optionally checked further."""

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


class SecondsType(SettingType[float]):
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


class RateType(SecondsType):
    """A non-negative number of events per second."""

    name = "per second"

    def from_string(self, text: str) -> float:
        try:
            number = float(text.strip())
        except ValueError:
            raise ValueError("expected a number per second") from None
        return self._check(number)


class BoolType(SettingType[bool]):
    """The manual's booleans (see :func:`parse_bool`); ``0``/``1`` as Python values too."""

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


class StrType(SettingType[str]):
    """A string, optionally checked by a callable that raises :class:`ValueError`."""

    name = "str"

    def __init__(self, check: Callable[[str], object] | None = None) -> None:
        self._check = check

    def from_string(self, text: str) -> str:
        if self._check is not None:
            self._check(text)
        return text


class BytesType(SettingType[bytes]):
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


class EnumType(SettingType[E]):
    """A member of an :class:`enum.IntEnum`, by number or (any case) by name."""

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


class ChoiceType(SettingType[int]):
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


class CodePageType(IntType):
    """A Windows code page number Python has a codec for."""

    def _check(self, number: int) -> int:
        try:
            codec_for_code_page(number)
        except LookupError:
            raise ValueError("Python has no codec for this code page") from None
        return number


class ObjectType(SettingType[Any]):
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


#: What a change of a setting makes its owner refresh (:attr:`Setting.effect`).
Effect = Literal["access", "admission", "proxies", "codec", "max_connections", "tls", "nodelay"]

#: Every effect name, for an owner that dispatches on them:
#:
#: * ``"access"`` - rebuild the AllowedClients / BlockedClients matchers;
#: * ``"admission"`` - reconfigure the per-address and rate limits;
#: * ``"proxies"`` - rebuild the TrustedProxies matcher;
#: * ``"codec"`` - look up the codec of CodePage again;
#: * ``"max_connections"`` - take the new MaxConnections;
#: * ``"tls"`` - drop cached TLS contexts (they are built from the settings);
#: * ``"nodelay"`` - set TcpNoDelay on the listening sockets (accepted ones inherit it).
EFFECTS: tuple[Effect, ...] = get_args(Effect)

#: ``couples(value, values) -> {name: value}``: see :attr:`Setting.couples`.
Coupling = Callable[[Any, Mapping[str, Any]], Mapping[str, Any]]


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
    :ivar effect: what the owner of the values (the factory) must refresh
        when this setting changes, one of :data:`EFFECTS`; ``None`` when
        reading the new value later is enough (every change also makes new
        connections read the settings afresh).
    :ivar couples: the coupling rule, or ``None`` for a setting that stands
        alone.  ``couples(value, values)`` gets the new value and the current
        values (by manual name) and returns the other settings' values that
        must be stored with it to keep them consistent (``SSLStartMode`` and
        ``SSLEnabled``); :class:`~tcpserver.settings.Settings` stores them in
        the same change and reports each one that changed.
    :ivar check_with: ``check_with(value, values)`` checks a new value
        against the other settings (current values, by manual name) and
        raises :class:`~tcpserver.TCPServerError` if the combination cannot
        be honoured; ``None`` for a setting that is checked alone.
    :ivar port: a property of the listening port (:class:`~tcpserver.TCPServer`
        only); the other properties are the factory's.
    :ivar profile: the field of :class:`~tcpserver.profile.ConnectionProfile`
        this setting feeds (a connection copies it when accepted), or ``None``.
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
    effect: Effect | None = None
    couples: Coupling | None = None
    check_with: Callable[[Any, Mapping[str, Any]], None] | None = None
    port: bool = False
    profile: str | None = None

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
