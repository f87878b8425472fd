"""What a connection asks of the factory that made it: :class:`ConnectionHost`.

The protocol, its TLS session and its PROXY header reader see the factory
only through this interface - public attributes and methods, no private
state - so the factory can change inside without them noticing, and they
never import it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

if TYPE_CHECKING:
    from tcpserver.access import AddressMatcher
    from tcpserver.dispatch import Dispatcher
    from tcpserver.pool import PartsPool
    from tcpserver.profile import ConnectionProfile
    from tcpserver.settings import Settings
    from tcpserver.table import ConnectionTable
    from tcpserver.tls import TLSContexts
    from tcpserver.turn import TurnSends

__all__ = ["ConnectionHost"]


class ConnectionHost(Protocol):
    """The factory, as its connections see it."""

    #: timers of every connection (a ``task.Clock`` in tests)
    reactor: IReactorTime
    settings: Settings
    dispatcher: Dispatcher
    table: ConnectionTable[Any]
    turn: TurnSends
    #: listening ports whose accepted sockets come with TCP_NODELAY
    nodelay_ports: frozenset[object]
    #: kits of connections at rest, for the next connection to take
    parts: PartsPool
    #: the raw tallies behind :meth:`TCPServerFactory.stats`
    counters: Counter[str]
    tls_contexts: TLSContexts
    trusted_proxies: AddressMatcher
    #: the Python codec of the CodePage setting
    codec: str
    #: what a connection accepted now takes from the settings
    profile: ConnectionProfile

    @property
    def quiet_open(self) -> bool:
        """A new connection opens without asking or telling anyone."""

    def request(self, host: str, port: int) -> bool | Deferred[bool]:
        """
        Whether the client ``host``:``port`` may connect: the access lists,
        then ``connection_request`` (refusals are counted).
        """
