"""A connection's timeouts: idle, read idle, write idle, and the close's grace.

* ``DefaultIdleTimeout`` (the manual's: no traffic either way, 10060) is
  Twisted's ``TimeoutMixin``, on an :class:`~tcpserver.clocks.IdleTimer` of its own (made
  only for a connection that has the timeout, so that the protocol itself
  stays a slotted object); bytes handed on count as traffic too (:attr:`Outbound.on_progress
  <tcpserver.outbound.Outbound.on_progress>`).
* ``ReadIdleTimeout`` / ``WriteIdleTimeout`` (903 / 904): an
  :class:`~tcpserver.clocks.IdleWatch` looks at the connection's byte counters every quarter
  of the shorter timeout (at least every 50 ms) and reports the first
  direction that has been silent for its whole timeout.  One watch per
  connection that has either set (made when it opens).
* The opening (:class:`~tcpserver.clocks.OpeningWatch`): ``HandshakeTimeout`` bounds the
  whole way from accept to an open connection (PROXY header, DETECT's
  first byte, TLS handshake) and a STARTTLS handshake from ``start_ssl``;
  ``DefaultConnectionTimeout`` (the manual's) bounds inactivity while a
  handshake, or DETECT's first byte, waits on the peer.  Either resets the
  connection with 10060 and an ``error`` event.
* A listener that never finishes (``ListenerGracePeriod``): once the
  connection's input is over, an async listener may hold back its later
  events this long; then it is given up on (:meth:`Inbound.abandon
  <tcpserver.delivery.Inbound.abandon>`) and the connection ends.
* Every timeout closes gracefully with its own status and escalates to a
  reset after ``CloseGracePeriod`` (or the timeout's own period) if the
  peer does not finish the close; ``CloseGracePeriod`` alone bounds every
  graceful close (905).

:class:`ConnectionTimeouts` is the part of
:class:`~tcpserver.protocol.TCPServerProtocol` that runs them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from tcpserver import errors
from tcpserver.clocks import IdleTimer, IdleWatch, OnExtras, OpeningWatch
from tcpserver.events import Error
from tcpserver.lifecycle import (
    CLOSE_CALLED,
    CLOSED,
    ENDED,
    HANDSHAKING,
    OPEN,
    UPGRADING,
    State,
)

if TYPE_CHECKING:
    from tcpserver._tlssession import TLSSession
    from tcpserver.clocks import Extras
    from tcpserver.delivery import Inbound
    from tcpserver.host import ConnectionHost
    from tcpserver.outbound import Outbound
    from tcpserver.profile import ConnectionProfile

__all__ = ["ConnectionTimeouts"]


class ConnectionTimeouts:
    """The timeouts of a connection's protocol (see the module docstring)."""

    if not TYPE_CHECKING:  # (no instance dictionary; the names are the protocol's slots)
        __slots__ = ()

    _log: Logger

    if TYPE_CHECKING:  # what it uses of TCPServerProtocol
        factory: ConnectionHost
        connection_id: str
        remote_host: str
        rx_total: int
        outbound: Outbound | None
        _state: State
        _profile: ConnectionProfile
        extras: Extras | None

        def own_extras(self) -> Extras: ...

        _tls: TLSSession | None
        _raw_hook: Callable[[bytes], None] | None
        _in: Inbound | None
        _close_status: tuple[int, str] | None

        def _close(self, abort: bool) -> None: ...
        def _advance(self) -> None: ...
        def out(self) -> Outbound: ...
        @property
        def bytes_handed(self) -> int: ...
        def tls_failed(self, code: int, description: str) -> None: ...

    # -- the timers (on the connection's :class:`Extras`, made when the first is set) ---------

    @property
    def idle_timeout(self) -> float:
        """This connection's idle timeout (DefaultIdleTimeout unless set; 0: none)."""
        extras = self.extras
        return self._profile.idle_timeout if extras is None else extras.idle_timeout

    _abort_call = OnExtras[IDelayedCall]("abort_call")
    _grace = OnExtras[IDelayedCall]("grace")
    _idle = OnExtras[IdleTimer]("idle")
    _opening = OnExtras[OpeningWatch]("opening")
    _watch = OnExtras[IdleWatch]("watch")

    # -- read / write idle -------------------------------------------------------------

    def _start_idle_watch(self) -> None:
        """ReadIdleTimeout / WriteIdleTimeout, if set: watch from now on."""
        profile = self._profile
        if profile.read_idle or profile.write_idle:
            watch = self._watch = IdleWatch(
                self.factory.reactor, profile.read_idle, profile.write_idle, self._idle_counts
            )
            watch.start(self._idle_close)

    # -- the opening (HandshakeTimeout, DefaultConnectionTimeout) --------------------------

    def _start_opening(self) -> None:
        """
        HandshakeTimeout, from now (accept, or start_ssl) - and, when the
        handshake starts at accept, DefaultConnectionTimeout with it (one
        timer, not one replaced by another a moment later).
        """
        self._end_opening()
        profile = self._profile
        seconds = profile.handshake_timeout
        if seconds:
            self._opening = OpeningWatch(
                self.factory.reactor, seconds, self._opening_expired, profile.opening_idle
            )

    def _watch_handshake_idle(self, on: bool = True) -> None:
        """
        DefaultConnectionTimeout: from now the peer's bytes are awaited (a TLS
        handshake, DETECT's first byte) - or, ``on=False``, no longer.
        """
        seconds = self._profile.handshake_idle if on else 0.0
        opening = self._opening
        if opening is None:
            if not seconds:
                return
            opening = self._opening = OpeningWatch(self.factory.reactor, 0, self._opening_expired)
        opening.watch_idle(seconds)

    def handshake_bytes_done(self) -> None:
        """TLSOwner: the handshake's bytes are exchanged; the deadline alone still runs."""
        self._watch_handshake_idle(on=False)

    def _end_opening(self) -> None:
        """The connection is open (or gone): its opening clocks stop."""
        opening = self._opening
        if opening is not None:
            self._opening = None
            opening.stop()

    def _opening_expired(self, deadline: bool) -> None:
        self._opening = None
        state = self._state
        if state in ENDED or state in CLOSE_CALLED:
            return
        prefix = errors.description_for(errors.TIMED_OUT)
        if deadline:
            since = "start_ssl()" if state is UPGRADING else "it was accepted"
            text = (
                f"{prefix} The connection was not open {self._profile.handshake_timeout}s "
                f"after {since} (HandshakeTimeout)"
            )
        elif self._tls is not None:
            text = (
                f"{prefix} The TLS handshake made no progress for "
                f"{self._profile.handshake_idle}s (DefaultConnectionTimeout)"
            )
        else:
            text = (
                f"{prefix} No byte came within {self._profile.handshake_idle}s to tell "
                "TLS from plaintext (DefaultConnectionTimeout)"
            )
        if self._tls is not None or state is HANDSHAKING or state is UPGRADING:
            self.tls_failed(errors.TIMED_OUT, text)  # (counted as a TLS failure, then a reset)
            return
        # Not accepted yet: the PROXY header, or connection_request, is late.
        if self._raw_hook is not None:
            self.factory.counters["refused_proxy"] += 1
        self._log.info(
            "closing connection from {peer} before it opened: {text}",
            peer=self.remote_host,
            text=text,
        )
        self.factory.dispatcher.dispatch("error", Error(self.connection_id, errors.TIMED_OUT, text))
        self._close_status = (errors.TIMED_OUT, text)
        self._close(abort=True)

    # -- a listener that never finishes (ListenerGracePeriod) ---------------------------

    def _start_listener_grace(self) -> None:
        """The input is over and a listener is in flight: bound the wait for it."""
        seconds = self._profile.listener_grace
        if seconds and self._grace is None:
            self._grace = self.factory.reactor.callLater(seconds, self._give_up_listener, seconds)

    def end_now(self) -> None:
        """Reset now and wait for no listener (the server's shutdown deadline)."""
        self._close(abort=True)
        self._give_up_listener(None)

    def _stop_listener_grace(self) -> None:
        grace, self._grace = self._grace, None
        if grace is not None and grace.active():
            grace.cancel()

    def _give_up_listener(self, seconds: float | None) -> None:
        """
        Stop waiting for this connection's listeners (``seconds``: the
        ListenerGracePeriod that passed; ``None``: the server's shutdown
        deadline); the connection then ends as if they had finished.
        """
        self._grace = None
        inbound = self._in
        if inbound is None or not inbound.waiting or self._state is CLOSED:
            return
        dropped = inbound.abandon()
        why = "the shutdown deadline" if seconds is None else f"ListenerGracePeriod ({seconds}s)"
        self._log.warn(
            "connection {cid} from {peer}: a listener had not finished at {why}; "
            "giving up on it ({dropped} received bytes behind it dropped)",
            cid=self.connection_id,
            peer=self.remote_host,
            why=why,
            dropped=dropped,
        )
        self._advance()

    def _stop_timers(self) -> None:
        """The connection has gone: no timeout may fire."""
        self._end_opening()
        idle = self._idle
        if idle is not None:
            self._idle = None  # (it refers back to us)
            idle.setTimeout(None)
        if self._abort_call is not None:
            if self._abort_call.active():
                self._abort_call.cancel()
            self._abort_call = None  # (it refers back to us)
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def _arm_close_grace(self) -> None:
        """CloseGracePeriod: a graceful close that takes longer ends with a reset."""
        grace = self._profile.close_grace
        if grace and self._abort_call is None and self._state not in ENDED:
            self._abort_call = self.factory.reactor.callLater(grace, self._grace_expired)

    def _grace_expired(self) -> None:
        """CloseGracePeriod passed and the connection is still not gone: reset it."""
        self._abort_call = None
        if self._state in ENDED:
            return
        self._log.info(
            "connection {cid} from {peer}: the close took longer than {seconds}s, resetting it",
            cid=self.connection_id,
            peer=self.remote_host,
            seconds=self._profile.close_grace,
        )
        if self._close_status is None or not self._close_status[0]:
            # (a timeout's close keeps its own status when it escalates)
            code = errors.CLOSE_GRACE_EXPIRED
            self._close_status = (code, errors.description_for(code))
        self._close(abort=True)

    def set_idle_timeout(self, seconds: float) -> None:
        """Change this connection's idle timeout (0: none); restarts the clock."""
        self.own_extras().idle_timeout = seconds
        if self._state is OPEN:
            self._set_idle_timer(seconds)

    def _set_idle_timer(self, seconds: float) -> None:
        idle = self._idle
        if not seconds:
            if idle is not None:
                self._idle = None
                idle.setTimeout(None)
                self.out().on_progress = None
            return
        if idle is None:
            idle = self._idle = IdleTimer(self.factory.reactor, self._idle_expired)
        idle.setTimeout(seconds)
        # bytes handed on count as traffic too
        self.out().on_progress = idle.resetTimeout

    def _idle_expired(self) -> None:
        """DefaultIdleTimeout passed with no traffic either way."""
        self._idle = None
        self._log.info(
            "closing idle connection {cid} from {peer} after {seconds}s",
            cid=self.connection_id,
            peer=self.remote_host,
            seconds=self.idle_timeout,
        )
        self._timed_out(
            errors.TIMED_OUT, errors.description_for(errors.TIMED_OUT), self.idle_timeout
        )

    def _idle_counts(self) -> tuple[int, int]:
        return self.rx_total, self.bytes_handed

    def _idle_close(self, code: int, what: str, seconds: float) -> None:
        self._watch = None
        self._log.info(
            "closing connection {cid} from {peer}: {what} for {seconds}s",
            cid=self.connection_id,
            peer=self.remote_host,
            what=what,
            seconds=seconds,
        )
        self._timed_out(code, errors.description_for(code), seconds)

    def _timed_out(self, code: int, description: str, period: float) -> None:
        """
        Close for a timeout with its own status: gracefully, escalating to an
        abort after CloseGracePeriod (or the timeout's own period) if the
        peer does not finish the close.
        """
        self._close_status = (code, description)
        # Nothing moved for a whole period: if output is stuck (or a graceful
        # close is already waiting on it), waiting longer will not help.
        stuck = (self.outbound is not None and self.outbound.stuck) or self._state in CLOSE_CALLED
        self._close(abort=stuck)
        if not stuck and self._state not in ENDED and self._abort_call is None:
            # A FIN the peer never acknowledges must not keep us forever.
            grace = self._profile.close_grace or max(period, 1.0)
            self._abort_call = self.factory.reactor.callLater(grace, self._close, True)
