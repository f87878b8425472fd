"""Properties made from the settings registry: ``server.default_eol`` and friends.

Every registry entry of kind ``"property"`` becomes a :class:`SettingProperty`
on the class that owns it - :class:`~tcpserver.factory.TCPServerFactory`
for the connection settings, :class:`~tcpserver.server.TCPServer` for the
listening port's three (``Setting.port``) and, by inheritance from the
factory's list, the connection ones too.  :func:`setting_properties` is the
class decorator that adds them; there is no list of properties besides
:data:`~tcpserver.settings.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.settings import REGISTRY, Setting, Settings, lookup

__all__ = [
    "PropertyAccess",
    "SettingProperty",
    "SettingsOwner",
    "apply_properties",
    "property_names",
    "setting_properties",
]

T = TypeVar("T")
C = TypeVar("C", bound=type)


class SettingsOwner(Protocol):
    """A class whose properties are settings: it has a store and knows if it listens."""

    settings: Settings

    @property
    def listening(self) -> bool: ...


class SettingProperty(Generic[T]):
    """
    A property backed by the settings registry.

    Reading returns the current value; assigning validates it like
    ``config()`` does and raises :class:`~tcpserver.errors.TCPServerError`
    (showing the bad value) when it is refused.
    """

    def __init__(self, name: str) -> None:
        self.setting = lookup(name)
        self.__doc__ = f"{self.setting.doc} Default: {self.setting.default!r}."

    @overload
    def __get__(self, obj: None, owner: type) -> SettingProperty[T]: ...

    @overload
    def __get__(self, obj: SettingsOwner, owner: type) -> T: ...

    def __get__(self, obj: SettingsOwner | None, owner: type) -> T | SettingProperty[T]:
        if obj is None:
            return self
        value: T = obj.settings[self.setting.name]
        return value

    def __set__(self, obj: SettingsOwner, value: T | str | int) -> None:
        obj.settings.set(self.setting.name, value, listening=obj.listening)


def _owned(port: bool) -> tuple[Setting, ...]:
    return tuple(
        s for s in REGISTRY if s.kind == "property" and s.attr is not None and s.port == port
    )


def property_names(port: bool) -> tuple[str, ...]:
    """The attribute names of the connection (``port=False``) or port properties."""
    return tuple(s.attr for s in _owned(port) if s.attr is not None)


def setting_properties(port: bool) -> Callable[[C], C]:
    """A class decorator adding the connection (or port) settings as properties."""

    def add(cls: C) -> C:
        for setting in _owned(port):
            assert setting.attr is not None
            setattr(cls, setting.attr, SettingProperty[Any](setting.name))
        return cls

    return add


def apply_properties(
    target: object, properties: Mapping[str, Any], allowed: tuple[str, ...]
) -> None:
    """
    Set each ``name=value`` of ``properties`` on ``target`` (constructor keywords).

    :raises TCPServerError: 10022 for a name not in ``allowed``; a bad value's code.
    """
    for name, value in properties.items():
        if name not in allowed:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"unknown property {name!r} (known: {', '.join(sorted(allowed))})",
            )
        setattr(target, name, value)


class PropertyAccess:
    """
    Typing support for classes with :func:`setting_properties`: the
    properties are made at run time from the registry, so the type checker
    is told that other attributes may exist (their values are checked by
    the settings when set).
    """

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...
