"""A connection's working parts: made when first needed, given back at rest.

A connection that has said nothing has no parts: its protocol is all there
is.  The first byte read (or the first send) gives it an
:class:`~tcpserver.delivery.Inbound` with its
:class:`~tcpserver.framing.Framer` and an
:class:`~tcpserver.outbound.Outbound` - a *kit*, about 600 bytes.

A connection that reads rarely gives its kit back between reads: when a
read batch is delivered and answered - and it was the connection's first,
or the one before ended :data:`REST_AFTER` seconds ago or more - and
nothing waits anywhere (no partial frame, no listener in flight, nothing
queued, parked, timed or streamed, no setting of the connection's own:
:attr:`Inbound.at_rest <tcpserver.delivery.Inbound.at_rest>` and
:attr:`Outbound.at_rest <tcpserver.outbound.Outbound.at_rest>`), the kit
goes back to the factory's :class:`~tcpserver.pool.PartsPool` and the connection keeps
only its byte counts.  The next connection that reads takes a kit from
the pool instead of making three objects.  So many quiet connections that
have each said something hold about what silent ones hold, a short
connection reuses the kit of the one before, and a busy connection - its
batches less than :data:`REST_AFTER` apart - keeps its kit and pays one
clock reading per batch.

:class:`ConnectionParts` is the part of
:class:`~tcpserver.protocol.TCPServerProtocol` that makes, takes and gives
back its parts; the rules of "at rest" belong to the parts themselves.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from tcpserver.delivery import Inbound
from tcpserver.framing import Framer
from tcpserver.lifecycle import CLOSED, ENDED, INPUT_ENDED, OPEN, SENDABLE, State
from tcpserver.outbound import Outbound, Writer

if TYPE_CHECKING:
    from tcpserver.clocks import Extras
    from tcpserver.framing import FrameTooLongError
    from tcpserver.host import ConnectionHost
    from tcpserver.profile import ConnectionProfile

__all__ = ["REST_AFTER", "ConnectionParts"]

#: seconds between two read batches of a connection that make it quiet:
#: its kit goes back to the pool after the second
REST_AFTER = 1.0


class ConnectionParts:
    """The parts of a connection's protocol (see the module docstring)."""

    if not TYPE_CHECKING:  # (no instance dictionary; the names are the protocol's slots)
        __slots__ = ()

    if TYPE_CHECKING:  # what it uses of TCPServerProtocol
        factory: ConnectionHost
        connection_id: str
        outbound: Outbound | None
        _in: Inbound | None
        _state: State
        _profile: ConnectionProfile
        _read_pauses: int
        extras: Extras | None
        _tx: tuple[int, int, float] | None

        def _refresh(self) -> None: ...

        # (the owner interfaces of Inbound and Outbound)
        def writer(self) -> Writer: ...
        def flow(self, paused: bool) -> None: ...
        def drained(self) -> None: ...
        def hold_reached(self) -> None: ...
        def hold_reading(self, held: bool) -> None: ...
        def settled(self) -> bool: ...
        def frame_too_long(self, error: FrameTooLongError) -> bool: ...

    def out(self) -> Outbound:
        """
        The connection's outgoing side, made (or taken from the pool) when
        first needed - a send, the first bytes read, TLS, a send timeout -
        in the state the lifecycle implies: sends taken while the
        connection is accepted and not closing, ``ready`` once it is open.
        """
        out = self.outbound
        if out is None:
            if self._in is None and self._state is OPEN and self._take_parts() is not None:
                assert self.outbound is not None
                return self.outbound
            out = self._new_outbound()
        return out

    def _new_outbound(self) -> Outbound:
        profile = self._profile
        state = self._state
        out = self.outbound = Outbound(
            self,
            self.factory.reactor,
            profile,
            profile.send_timeout,
            taking_sends=state in SENDABLE,
            is_open=state is OPEN or state is INPUT_ENDED,
        )
        self._adopt(out, None)
        if state in ENDED:
            out.gone(0, "OK")  # (nothing to write any more)
            if state is CLOSED:
                out.detach()  # (forgotten: nothing may refer back to it)
        return out

    def _adopt(self, out: Outbound, inbound: Inbound | None) -> None:
        """
        ``out`` (new, or taken from the pool with ``inbound``) serves this
        connection from now on: the counts it had while its parts rested
        (and when it last read), and its idle timer.
        """
        tx = self._tx
        if tx is not None:
            self._tx = None
            out.rebind(self, tx[0], tx[1])
            if inbound is not None:
                inbound.rebind(self, tx[2])
        elif inbound is not None:
            out.rebind(self, 0, 0)
            inbound.rebind(self, -math.inf)
        extras = self.extras
        if extras is not None and extras.idle is not None:
            out.on_progress = extras.idle.resetTimeout  # (bytes handed on are traffic)

    def _inbound(self) -> Inbound:
        """The connection's Inbound, made (with its framer) or taken when first needed."""
        inbound = self._in
        if inbound is None:
            if self.outbound is None and self._state is OPEN:
                inbound = self._take_parts()
                if inbound is not None:
                    return inbound
            # the framer takes the settings in force at accept
            profile = self._profile
            framer = Framer(profile.eol, profile.max_line_length, profile.single_line_mode)
            prefix = profile.length_prefix
            if prefix is not None and prefix[0]:
                size, order, adjust, strip, limit, skip = prefix
                framer.set_length_prefix(size, order, adjust, strip, limit, skip)
            out = self.outbound if self.outbound is not None else self._new_outbound()
            inbound = self._in = Inbound(self, self.factory.dispatcher, framer, out)
            self._refresh()
        return inbound

    def _take_parts(self) -> Inbound | None:
        """An open connection with no parts takes a kit from the pool, if one waits."""
        kit = self.factory.parts.take(self._profile)
        if kit is None:
            return None
        inbound, out = kit
        self._adopt(out, inbound)
        self.outbound = out
        self._in = inbound
        self._refresh()
        return inbound

    @property
    def framer(self) -> Framer:
        """This connection's framer (made from the settings in force at accept, on first use)."""
        return self._inbound().framer

    def _rest(self, now: float) -> None:
        """
        A read batch was delivered and answered at ``now``, :data:`REST_AFTER`
        or more after the one before (the protocol's ``dataReceived`` checks
        that, with the one clock reading per batch): if the connection is
        at rest, its parts go back to the pool and only its counts stay.
        """
        inbound = self._in
        out = self.outbound
        if inbound is None or out is None:
            return
        inbound.last_batch = now
        if self._state is not OPEN or self._read_pauses or not inbound.at_rest or not out.at_rest:
            return
        self._tx = (out.handed, out.bytes_sent, now)
        self._in = self.outbound = None
        self.factory.parts.give(self._profile, inbound, out)
