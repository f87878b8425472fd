"""The settings' values: :class:`Settings`, the store one factory owns.

It owns the current value of every setting of :data:`REGISTRY`: it validates
and converts what comes in (Python values, ``config()`` strings, values the
server learns), keeps coupled values consistent, and tells its owner about
each change.  It also parses ``config()`` strings (:func:`parse_config_string`),
finds settings by name (:func:`lookup`, :func:`readout_name`) and answers the
read-only ``BuildInfo`` and ``LicenseInfo``.

The registry itself is :mod:`tcpserver.registry`; the value types and the
:class:`Setting` record are :mod:`tcpserver.settingtypes`.  Every name that
was importable from here before the split still is.

It never applies a value: refreshing matchers, limits or TLS contexts is the
owner's work (``on_change``, guided by :attr:`Setting.effect`).  It never
imports :mod:`tcpserver.tls` and never touches a socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.registry import READOUTS, REGISTRY
from tcpserver.settingtypes import (
    EFFECTS,
    BoolType,
    Coupling,
    Effect,
    Kind,
    Setting,
    SettingType,
    SSLStartMode,
    decode_escapes,
    encode_escapes,
    parse_bool,
)

__all__ = [
    "EFFECTS",
    "LICENSE_INFO",
    "READOUTS",
    "REGISTRY",
    "BoolType",
    "ConfigRequest",
    "Coupling",
    "Effect",
    "Kind",
    "SSLStartMode",
    "Setting",
    "SettingType",
    "Settings",
    "build_info",
    "decode_escapes",
    "encode_escapes",
    "lookup",
    "parse_bool",
    "parse_config_string",
    "readout_name",
]

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

    It is the only writer of setting values: :meth:`set` and
    :meth:`set_string` for what the user sets, :meth:`record` for what the
    server learns, :meth:`reset`.  A setting's coupled values (see
    :attr:`~tcpserver.settingtypes.Setting.couples`) are stored in the same
    change, so SSLEnabled and SSLStartMode always agree.  Readers use
    ``settings["Name"]``, :meth:`get` or the read-only :attr:`view`.

    :param on_change: called as ``on_change(setting, value)`` after a value
        changed - once for each setting whose value changed, coupled ones
        included, after all of them are stored - so the owner can apply it
        (rebuild a matcher, refresh TLS: see
        :attr:`~tcpserver.settingtypes.Setting.effect`).
    """

    def __init__(self, on_change: Callable[[Setting, Any], None] | None = None) -> None:
        self._values: dict[str, Any] = {s.name: s.default for s in REGISTRY}
        self._view: Mapping[str, Any] = MappingProxyType(self._values)
        self._on_change = on_change

    def __iter__(self) -> Iterator[Setting]:
        return iter(REGISTRY)

    @property
    def view(self) -> Mapping[str, Any]:
        """
        Every current value by manual name, read-only and live (it follows
        later changes): for a reader taking many values at once.
        """
        return self._view

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

    def record(self, name: str, value: object) -> None:
        """
        Store a value the server learned rather than one the user set: the
        port the system picked when LocalPort was 0.

        The value is validated like :meth:`set` does, but the listening
        check is skipped (the server records it while listening) and
        ``on_change`` is not called (nothing has to be applied: the value
        describes what already happened).  Coupled values are stored too.

        :raises TCPServerError: like :meth:`set` (the listening check aside).
        """
        setting = lookup(name)
        self._store(setting, setting.coerce(value), value, listening=False, notify=False)

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

    def _store(
        self,
        setting: Setting,
        value: Any,
        shown: object,
        listening: bool,
        *,
        notify: bool = True,
    ) -> None:
        self._check(setting, value, shown, listening)
        if setting.check_with is not None:
            setting.check_with(value, self._view)
        changes = [(setting, value)]
        if setting.couples is not None:
            for name, coupled in setting.couples(value, self._view).items():
                other = lookup(name)
                self._check(other, coupled, coupled, listening)
                changes.append((other, coupled))
        changed = [(s, v) for s, v in changes if self._values[s.name] != v]
        for stored, new_value in changes:
            self._values[stored.name] = new_value
        if notify and self._on_change is not None:
            for stored, new_value in changed:
                self._on_change(stored, new_value)

    def _check(self, setting: Setting, value: Any, shown: object, listening: bool) -> None:
        """Refuse a read-only, unsupported or (while listening) fixed setting's change."""
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
