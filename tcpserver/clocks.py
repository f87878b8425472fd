"""A connection's clocks, and the seldom-set fields that hold them.

* :class:`IdleWatch` - ``ReadIdleTimeout`` / ``WriteIdleTimeout``;
* :class:`OpeningWatch` - ``HandshakeTimeout`` and
  ``DefaultConnectionTimeout``;
* :class:`IdleTimer` - ``DefaultIdleTimeout`` (Twisted's ``TimeoutMixin``);
* :class:`Extras` - where a connection keeps them, with its other
  seldom-set fields.

What they mean for the connection - who closes, with which status - is
:class:`~tcpserver.timeouts.ConnectionTimeouts`' part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.protocols.policies import TimeoutMixin
from typing_extensions import override

from tcpserver import errors

if TYPE_CHECKING:
    from tcpserver._proxy import ProxyInfo

__all__ = ["Extras", "HasExtras", "IdleTimer", "IdleWatch", "OnExtras", "OpeningWatch"]

#: ``(bytes received, bytes sent)`` so far
Counts = Callable[[], tuple[int, int]]
#: ``on_idle(code, what, seconds)``
OnIdle = Callable[[int, str, float], None]


class IdleWatch:
    """
    The read/write idle timers of one connection.

    :param clock: the reactor's clock.
    :param read_idle: seconds without receiving anything (0: not watched).
    :param write_idle: seconds without sending anything (0: not watched).
    :param counts: the connection's byte counters.
    """

    __slots__ = (
        "_call",
        "_clock",
        "_counts",
        "_on_idle",
        "read_idle",
        "rx",
        "rx_at",
        "step",
        "tx",
        "tx_at",
        "write_idle",
    )

    def __init__(
        self, clock: IReactorTime, read_idle: float, write_idle: float, counts: Counts
    ) -> None:
        self._clock = clock
        self._counts = counts
        self.read_idle = read_idle
        self.write_idle = write_idle
        self.step = max(min(t for t in (read_idle, write_idle) if t) / 4, 0.05)
        now = clock.seconds()
        self.rx, self.tx = counts()
        self.rx_at = self.tx_at = now
        self._call: IDelayedCall | None = None
        self._on_idle: OnIdle | None = None

    def start(self, on_idle: OnIdle) -> None:
        """Watch from now on; ``on_idle(code, what, seconds)`` is called at most once."""
        self._on_idle = on_idle
        self._call = self._clock.callLater(self.step, self._tick)

    def stop(self) -> None:
        """Stop watching (the connection has gone)."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _tick(self) -> None:
        """Every step: has anything been read / sent since?"""
        self._call = None
        now = self._clock.seconds()
        rx, tx = self._counts()
        if rx != self.rx:
            self.rx, self.rx_at = rx, now
        if tx != self.tx:
            self.tx, self.tx_at = tx, now
        on_idle = self._on_idle
        assert on_idle is not None
        if self.read_idle and now - self.rx_at >= self.read_idle:
            on_idle(errors.READ_IDLE, "received nothing", self.read_idle)
            return
        if self.write_idle and now - self.tx_at >= self.write_idle:
            on_idle(errors.WRITE_IDLE, "sent nothing", self.write_idle)
            return
        self._call = self._clock.callLater(self.step, self._tick)


class OpeningWatch:
    """
    The two clocks of a connection's opening, on one timer.

    :param clock: the reactor's clock.
    :param deadline: seconds until the opening must be over (0: none).
    :param expired: called once, with ``True`` if the deadline passed,
        ``False`` if the peer was silent for :attr:`idle` seconds.
    :param idle: seconds the peer may stay silent from now (0: not watched
        until :meth:`watch_idle`) - one timer for both clocks from the start.
    :ivar idle: seconds the peer may stay silent (0: not watched); see
        :meth:`watch_idle`.
    """

    __slots__ = (
        "_call",
        "_call_due",
        "_clock",
        "_expired",
        "_held_at",
        "deadline_at",
        "idle",
        "progress_at",
    )

    def __init__(
        self,
        clock: IReactorTime,
        deadline: float,
        expired: Callable[[bool], None],
        idle: float = 0.0,
    ) -> None:
        self._clock = clock
        self._expired = expired
        now = clock.seconds()
        self.deadline_at = now + deadline if deadline else math.inf
        self.idle = idle
        self.progress_at = now
        self._held_at: float | None = None
        self._call: IDelayedCall | None = None
        self._call_due = math.inf  # (when the call was asked to fire)
        self._schedule(now)

    def watch_idle(self, seconds: float) -> None:
        """From now on the peer may stay silent ``seconds`` at most (0: no limit)."""
        now = self._clock.seconds()
        self.idle = seconds
        self.progress_at = now
        self._schedule(now)

    def progress(self) -> None:
        """Bytes came from the peer (one clock read; the timer checks when it fires)."""
        self.progress_at = self._clock.seconds()

    def hold(self, held: bool) -> None:
        """
        The application is deciding (an async ``connection_request`` or
        ``ssl_*`` listener): neither clock runs until it is done, since the
        peer cannot be blamed for the server's own time.
        """
        now = self._clock.seconds()
        if held:
            if self._held_at is None:
                self._held_at = now
                self.stop()
            return
        held_at, self._held_at = self._held_at, None
        if held_at is not None:
            self.deadline_at += now - held_at
            self.progress_at = now
            self._schedule(now)

    def stop(self) -> None:
        """The opening is over (or the connection gone): nothing fires."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _due(self) -> float:
        if self.idle:
            return min(self.deadline_at, self.progress_at + self.idle)
        return self.deadline_at

    def _schedule(self, now: float) -> None:
        if self._held_at is not None:
            return
        due = self._due()
        call = self._call
        if call is not None:
            # (the due time it was asked for, not call.getTime(): callLater
            # reads the clock again, so that is a little later than asked,
            # and would make every unchanged due time look earlier)
            if self._call_due <= due:
                return  # it fires first and looks again
            call.cancel()
            self._call = None
        if due != math.inf:
            self._call = self._clock.callLater(max(due - now, 0.0), self._fire)
            self._call_due = due

    def _fire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        if self._due() - now > 1e-9:  # bytes came since it was set
            self._schedule(now)
            return
        self._expired(self.deadline_at - now <= 1e-9)


class IdleTimer(TimeoutMixin):
    """
    ``DefaultIdleTimeout``: Twisted's ``TimeoutMixin`` on ``clock``, calling
    ``expired`` once no traffic was seen for the timeout.

    A separate object rather than a base of the protocol: ``TimeoutMixin``
    has no ``__slots__``, so as a base it would give every connection an
    instance dictionary - including the many that have no idle timeout.
    """

    def __init__(self, clock: IReactorTime, expired: Callable[[], object]) -> None:
        self._clock = clock
        self._expired = expired

    @override
    def callLater(self, period: float, func: Any) -> IDelayedCall:
        """TimeoutMixin's clock: the factory's reactor (a ``task.Clock`` in tests)."""
        return self._clock.callLater(period, func)

    @override
    def timeoutConnection(self) -> None:
        self._expired()


class Extras:
    """
    What a connection seldom has: its timers, an idle timeout of its own, a
    PROXY header's details, ``user_data`` - made when the first is set.
    Most connections, most of the time, have none of these: for them they
    are one empty slot of the protocol instead of eight (64 bytes of every
    idle connection).  The protocol and :class:`ConnectionTimeouts` read
    and write them through :class:`OnExtras` attributes of the old names
    (``_abort_call``, ``user_data``...), so the code that uses them reads
    as before.
    """

    __slots__ = (
        "abort_call",
        "grace",
        "idle",
        "idle_timeout",
        "opening",
        "proxy_info",
        "user_data",
        "watch",
    )

    def __init__(self, idle_timeout: float) -> None:
        #: CloseGracePeriod, or a timeout's escalation to a reset
        self.abort_call: IDelayedCall | None = None
        #: ListenerGracePeriod
        self.grace: IDelayedCall | None = None
        #: DefaultIdleTimeout
        self.idle: IdleTimer | None = None
        #: this connection's DefaultIdleTimeout
        self.idle_timeout = idle_timeout
        #: HandshakeTimeout, DefaultConnectionTimeout
        self.opening: OpeningWatch | None = None
        #: what a PROXY protocol header said
        self.proxy_info: ProxyInfo | None = None
        #: the application's own
        self.user_data: Any = None
        #: ReadIdleTimeout / WriteIdleTimeout
        self.watch: IdleWatch | None = None

    @property
    def timers_running(self) -> bool:
        """An idle clock or a close's escalation runs (the one-step end must stop it)."""
        return self.idle is not None or self.watch is not None or self.abort_call is not None


T = TypeVar("T")


class HasExtras(Protocol):
    """A connection that keeps its seldom-set fields on :class:`Extras`."""

    #: its Extras, or ``None`` until a field is first set
    extras: Extras | None

    def own_extras(self) -> Extras:
        """Its Extras, made now if it has none."""


class OnExtras(Generic[T]):
    """
    A connection attribute kept on its :class:`Extras`: ``None`` until set,
    and setting ``None`` on a connection without Extras makes none.
    """

    __slots__ = ("field",)

    def __init__(self, field: str) -> None:
        self.field = field

    @overload
    def __get__(self, connection: None, owner: type) -> OnExtras[T]: ...

    @overload
    def __get__(self, connection: HasExtras, owner: type) -> T | None: ...

    def __get__(self, connection: HasExtras | None, owner: type) -> OnExtras[T] | T | None:
        if connection is None:
            return self
        extras = connection.extras
        return None if extras is None else getattr(extras, self.field)

    def __set__(self, connection: HasExtras, value: T | None) -> None:
        if value is not None or connection.extras is not None:
            setattr(connection.own_extras(), self.field, value)
