"""The factory's pool of connection parts at rest (see :mod:`tcpserver.parts`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tcpserver.delivery import Inbound
from tcpserver.outbound import Outbound

if TYPE_CHECKING:
    from tcpserver.profile import ConnectionProfile

__all__ = ["POOL_LIMIT", "PartsPool"]

#: kits a factory keeps for reuse (beyond that, a kit given back is freed)
POOL_LIMIT = 128


class PartsPool:
    """
    Kits (an Inbound with its Framer, and an Outbound) of connections at
    rest, for the next connection made with the same profile (the same
    settings: a settings change empties the pool).
    """

    __slots__ = ("_kits", "_profile")

    def __init__(self) -> None:
        self._kits: list[tuple[Inbound, Outbound]] = []
        self._profile: ConnectionProfile | None = None

    def __len__(self) -> int:
        return len(self._kits)

    def take(self, profile: ConnectionProfile) -> tuple[Inbound, Outbound] | None:
        """A kit made for ``profile``, if one waits (rebind it before use)."""
        if self._kits and profile is self._profile:
            return self._kits.pop()
        return None

    def give(self, profile: ConnectionProfile, inbound: Inbound, out: Outbound) -> None:
        """Keep the kit of a connection at rest (made for ``profile``)."""
        inbound.rest()
        out.rest()
        if profile is not self._profile:
            self._profile = profile
            self._kits = []
        if len(self._kits) < POOL_LIMIT:
            self._kits.append((inbound, out))
