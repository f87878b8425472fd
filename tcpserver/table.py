"""The connection table: ids, pending connections, counts, admission, all-gone.

:class:`ConnectionTable` knows every connection of one factory from the
moment a socket is accepted until its last event:

* **pending** - accepted by the kernel, not yet decided (PROXY header,
  admission control, ``connection_request``);
* **registered** - accepted by us: it has its id (unique, never reused)
  and is a key of ``connections`` until its ``disconnected`` has fired.

It applies the limits that refuse a connection before any event or TLS
work - ``MaxConnections`` when the socket is accepted, per-address caps and
accept rates (:class:`~tcpserver.admission.Admission`) once the real
client is known - counts refusals by reason and logs them at most every
:data:`REFUSAL_LOG_INTERVAL` seconds, and fires the Deferreds of
:meth:`ConnectionTable.when_all_gone`.  It calls connections only through
the small :class:`Entry` interface; it does no I/O.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Generic, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from tcpserver import errors
from tcpserver.admission import Admission
from tcpserver.errors import TCPServerError

__all__ = ["REFUSAL_LOG_INTERVAL", "REFUSAL_REASONS", "ConnectionTable", "Entry"]

#: How often (seconds) a refused-connection warning may be logged.
REFUSAL_LOG_INTERVAL = 10.0

#: Why connections are refused: each has a counter (``stats["refused_<reason>"]``),
#: a key of ``stats()["refused"]`` and a label of the refusals metric.
REFUSAL_REASONS = (
    "max_connections", "per_address", "rate", "access", "listener", "emfile", "proxy",
)  # fmt: skip


class Entry(Protocol):
    """What the table asks of a connection."""

    connection_id: str

    @property
    def rx_total(self) -> int:
        """Bytes read from its socket."""

    @property
    def bytes_handed(self) -> int:
        """Bytes handed to its socket (or TLS)."""

    @property
    def alive(self) -> bool:
        """Its transport has not gone."""

    @property
    def reading_paused(self) -> bool:
        """Reading is paused by ``pause_data`` or flow control."""

    def shut_down(self) -> None:
        """Close it: gracefully if it was open, else with a reset."""

    def abort(self) -> None:
        """Reset it now."""

    def end_now(self) -> None:
        """Reset it now and wait for none of its listeners (a hard deadline)."""


E = TypeVar("E", bound=Entry)


class ConnectionTable(Generic[E]):
    """
    The connections of one factory (see the module docstring).

    :param clock: for refusal-log rate limiting and admission buckets.
    :param stats: the factory's counters (``accepted``, ``refused_*``).

    :ivar by_id: ``connection_id -> connection`` of registered connections
        (read it, never write it).
    :ivar id_prefix: the prefix of every new id (one per worker process).
    :ivar max_connections: sockets open at once before new ones are refused.
    :ivar admission: per-address caps and accept rates.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, stats: Counter[str]) -> None:
        self._clock = clock
        self._stats = stats
        self.by_id: dict[str, E] = {}
        self._pending: set[E] = set()
        self._open = 0  # sockets accepted and not yet lost
        self._ids = itertools.count(1)
        self.id_prefix = ""
        self.max_connections = 1000
        self.admission = Admission()
        self._admitted: dict[E, str] = {}  # counted under an address (per-address caps)
        self._all_gone: list[Deferred[None]] = []
        self._last_refusal_log = float("-inf")
        self._refusals_unlogged = 0
        self._received_closed = 0  # by connections that have gone
        self._handed_closed = 0

    # -- the life of an entry --------------------------------------------------------------

    def take_socket(self, peer: object) -> bool:
        """
        A socket from ``peer`` (its address) was accepted: ``False``
        (counted, logged) if MaxConnections sockets are already open.
        """
        if self._open >= self.max_connections:
            host = getattr(peer, "host", peer)
            self.refused("max_connections", f"MaxConnections={self.max_connections}", host)
            return False
        self._open += 1
        return True

    def add_pending(self, entry: E) -> None:
        """``entry`` waits for its decision."""
        self._pending.add(entry)

    def admit(self, entry: E, host: str) -> bool:
        """
        Admission control for ``entry`` whose real client is ``host``:
        ``False`` means refuse it now (counted, logged), before any event or
        TLS work.
        """
        admission = self.admission
        if not admission.active:
            return True
        reason = admission.admit(host, self._clock.seconds())
        if reason is None:
            if admission.per_address:
                self._admitted[entry] = host
            return True
        limit = (
            f"MaxConnectionsPerAddress={admission.per_address}"
            if reason == "per_address"
            else f"MaxAcceptRate={admission.rate}, "
            f"MaxAcceptRatePerAddress={admission.rate_per_address}"
        )
        self.refused(reason, limit, host)
        return False

    def refused(self, reason: str, limit: str, peer: object) -> None:
        """Count a refusal; log at most one line per REFUSAL_LOG_INTERVAL."""
        self._stats[f"refused_{reason}"] += 1
        now = self._clock.seconds()
        self._refusals_unlogged += 1
        if now - self._last_refusal_log < REFUSAL_LOG_INTERVAL:
            return
        self._log.warn(
            "{limit} reached: refused {count} connection(s), latest from {peer}",
            limit=limit,
            count=self._refusals_unlogged,
            peer=peer,
        )
        self._last_refusal_log = now
        self._refusals_unlogged = 0

    def register(self, entry: E) -> str:
        """``entry`` is accepted: give it its id and a place in ``connections``."""
        if self._pending:
            self._pending.discard(entry)
        prefix = self.id_prefix
        connection_id = f"{prefix}{next(self._ids)}" if prefix else str(next(self._ids))
        entry.connection_id = connection_id
        self.by_id[connection_id] = entry
        self._stats["accepted"] += 1
        return connection_id

    def lost(self, entry: E, received: int, handed: int) -> None:
        """
        ``entry``'s socket has gone (its events may still be delivered), having
        read ``received`` bytes and handed on ``handed``.
        """
        self._open -= 1
        if self._admitted:
            host = self._admitted.pop(entry, None)
            if host is not None:
                self.admission.release(host)
        self._handed_closed += handed
        self._received_closed += received
        if not entry.connection_id:
            self._pending.discard(entry)
            self._check_all_gone()

    def forget(self, entry: E) -> None:
        """``entry``'s last event has fired: it leaves ``connections``."""
        self.by_id.pop(entry.connection_id, None)
        if self._all_gone:
            self._check_all_gone()

    # -- asking ----------------------------------------------------------------------------

    def get(self, connection_id: str, what: str) -> E:
        """
        The registered connection ``connection_id``.

        :raises TCPServerError: 126 naming ``what`` and the id.
        """
        try:
            return self.by_id[connection_id]
        except (KeyError, TypeError):
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: no connection with id {connection_id!r}",
            ) from None

    def closed(self, connection_id: str) -> bool:
        """Whether the connection of ``connection_id`` has gone (or never was)."""
        entry = self.by_id.get(connection_id)
        return entry is None or not entry.alive

    @property
    def open_sockets(self) -> int:
        """Sockets accepted and not yet lost (what MaxConnections counts)."""
        return self._open

    @property
    def pending(self) -> int:
        """Connections accepted by the kernel and not yet decided."""
        return len(self._pending)

    def live(self) -> list[E]:
        """Every connection not yet gone, registered or not."""
        return [*self._pending, *self.by_id.values()]

    def bytes_received(self) -> int:
        """Bytes read from sockets so far, by every connection."""
        return self._received_closed + sum(e.rx_total for e in self.by_id.values() if e.alive)

    def bytes_handed(self) -> int:
        """Bytes handed to sockets (or to TLS) so far, by every connection."""
        return self._handed_closed + sum(e.bytes_handed for e in self.by_id.values() if e.alive)

    def paused(self) -> int:
        """Open connections whose reading is paused (``pause_data``, flow control)."""
        return sum(1 for e in self.by_id.values() if e.alive and e.reading_paused)

    # -- closing everything ------------------------------------------------------------------

    def when_all_gone(self) -> Deferred[None]:
        """A Deferred that fires once no connection is left (at once if none is)."""
        if not self._pending and not self.by_id:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._all_gone.append(done)
        return done

    def shut_down_all(self) -> None:
        """Close every connection (gracefully where it was open)."""
        for entry in self.live():
            entry.shut_down()

    def abort_all(self) -> None:
        """Reset every connection now."""
        for entry in self.live():
            entry.abort()

    def end_all(self) -> None:
        """
        Reset every connection now and give up on listeners that have not
        finished, so that every ``disconnected`` fires (a shutdown deadline).
        """
        for entry in self.live():
            entry.end_now()

    def _check_all_gone(self) -> None:
        if not self._pending and not self.by_id and self._all_gone:
            waiting, self._all_gone = self._all_gone, []
            for d in waiting:
                d.callback(None)
