"""Inbound delivery: read batches and one connection's event order.

:class:`Inbound` delivers what a connection received and the events it
owes, in the order API.md promises::

    connection_request -> connected -> ready_to_send -> data_in* -> disconnected

Bytes go into the connection's :class:`~tcpserver.framing.Framer`; complete
frames come out as ``data_in`` through the factory's
:class:`~tcpserver.dispatch.Dispatcher`.  A listener that returns a Deferred
or a coroutine holds back every later event of its connection until it
completes (:meth:`Inbound.wait`), and events fired in the meantime queue
behind it (:meth:`Inbound.fire`).  Reading goes on meanwhile until
:data:`PENDING_READ_LIMIT` bytes wait in the framer - so a peer's FIN or
reset is noticed while a listener decides - and only then does the owner
stop reading.  A listener whose connection's input is over may be given up
on (:meth:`Inbound.abandon`): its owner bounds that wait.  Changes made
inside a listener - framing, pause, listeners added or removed - take
effect for the very next byte: whatever must stop a read batch settles the
framer, which ends the batch's iteration.

When nothing deliverable is left the owner takes over
(:meth:`InboundOwner.settled`): it decides what the end of the input means
for the connection's lifecycle.  This module knows nothing of sockets,
timers or states.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Protocol

from twisted.internet.defer import Deferred

from tcpserver.dispatch import Dispatcher
from tcpserver.framing import Framer, FrameTooLongError

__all__ = ["PENDING_READ_LIMIT", "Cork", "Inbound", "InboundOwner"]

#: bytes read on while an async listener is in flight, before reading stops
PENDING_READ_LIMIT = 64 * 1024


class Cork(Protocol):
    """Where a read batch's answers gather (the connection's Outbound)."""

    #: a read batch is being delivered: answers gather until :meth:`uncork`
    corked: bool

    def uncork(self) -> None:
        """The read batch ended: write what it gathered."""


class InboundOwner(Protocol):
    """What an :class:`Inbound` asks of its connection."""

    connection_id: str

    def hold_reading(self, held: bool) -> None:
        """
        Stop (``True``) or resume reading: an async listener is in flight and
        :data:`PENDING_READ_LIMIT` bytes wait behind it, or it finished.
        """

    def settled(self) -> bool:
        """
        Nothing deliverable is left, nothing is in flight and the input is
        over (:attr:`Inbound.ending`): the connection's turn.

        :returns: whether it queued or delivered something to look at again.
        """

    def frame_too_long(self, error: FrameTooLongError) -> bool:
        """Report a too-long frame; ``True`` if the stream goes on (skipped)."""


class _Resting:
    """The owner of an Inbound waiting in a pool (see Inbound.rest): nothing may reach it."""

    __slots__ = ()

    connection_id = ""

    def hold_reading(self, held: bool) -> None:
        raise AssertionError("an Inbound at rest has no connection")

    def settled(self) -> bool:
        raise AssertionError("an Inbound at rest has no connection")

    def frame_too_long(self, error: FrameTooLongError) -> bool:
        raise AssertionError("an Inbound at rest has no connection")


_AT_REST = _Resting()


class Inbound:
    """
    The inbound side of one connection (see the module docstring).

    :ivar framer: the connection's framer.
    :ivar out: where the answers of a read batch gather until it ends.
    :ivar deliver: ``data_in`` may be delivered now (the owner computes it).
    :ivar delivering: the delivery loop is running (a read batch can only be
        open meanwhile); read it, never write it.
    :ivar ending: the input is over: when nothing is left, the owner's
        :meth:`~InboundOwner.settled` runs (the owner computes it).
    """

    __slots__ = (
        "_abandoned",
        "_busy",
        "_dispatcher",
        "_held",
        "_owner",
        "_steps",
        "deliver",
        "delivering",
        "ending",
        "framer",
        "last_batch",
        "out",
    )

    def __init__(
        self, owner: InboundOwner, dispatcher: Dispatcher, framer: Framer, out: Cork
    ) -> None:
        self._owner = owner
        self._dispatcher = dispatcher
        self.framer = framer
        self.out = out
        self._busy: Deferred[Any] | None = None  # an async listener in flight
        self._held = False  # reading stopped behind it (PENDING_READ_LIMIT)
        self._abandoned = False  # see abandon()
        # events waiting for _busy (made when first needed)
        self._steps: deque[tuple[str, Any]] | None = None
        self.delivering = False
        self.deliver = False
        self.ending = False
        #: when the connection's previous read batch ended (-inf: none yet)
        self.last_batch = -math.inf

    @property
    def idle(self) -> bool:
        """Nothing to deliver and nothing in flight."""
        return (
            self._busy is None
            and not self._steps
            and not self.delivering
            and not self.framer.has_input
        )

    @property
    def at_rest(self) -> bool:
        """
        Nothing to deliver, in flight or held, and the framer as it was made:
        it may serve another connection (:meth:`rebind`).
        """
        return (
            self._busy is None
            and not self._steps
            and not self.delivering
            and not self._held
            and not self._abandoned
            and self.framer.pristine
        )

    def rebind(self, owner: InboundOwner, last_batch: float = -math.inf) -> None:
        """
        Serve ``owner`` (at rest, see :attr:`at_rest`), whose previous read
        batch ended at ``last_batch``; its owner computes the flags again.
        """
        self._owner = owner
        self._steps = None  # (an empty deque takes room)
        self.deliver = self.ending = False
        self.last_batch = last_batch

    def rest(self) -> None:
        """
        Wait in a pool (at rest): let go of the connection.  (The flags
        and the time of the last batch are set again by :meth:`rebind`
        when the Inbound is taken.)
        """
        self._owner = _AT_REST

    @property
    def waiting(self) -> bool:
        """An async listener of this connection has not finished."""
        return self._busy is not None

    # -- bytes -------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """
        Bytes of the connection's stream (decrypted under TLS): one read
        batch, whose answers are corked until it ends.  The common case -
        whole lines on an idle buffer - is delivered at once; everything
        else goes through :meth:`advance`.
        """
        framer = self.framer
        if self._busy is not None or not self.deliver:
            framer.receive(data)
            if self._busy is not None and not self._held and framer.buffered >= PENDING_READ_LIMIT:
                self._held = True
                self._owner.hold_reading(True)
            return
        out = self.out
        out.corked = True
        try:
            if self.delivering or self._steps:
                framer.receive(data)
                self.advance()
                return
            lines = framer.receive_lines(data)
            self.delivering = True
            try:
                if lines is not None:
                    done = self._dispatcher.deliver_batch(self._owner.connection_id, framer, self)
                    if done == len(lines) and not (
                        self._steps or self._busy is not None or self.ending
                    ):
                        return  # every line delivered, nothing left (the common case)
                self._loop()
            finally:
                self.delivering = False
        finally:
            out.uncork()

    def take_rest(self) -> bytes:
        """Remove and return every buffered byte (the input is over, or TLS starts)."""
        return self.framer.flush()

    def end_batch(self) -> None:
        """
        Something ends the read batch being delivered (a pause, a state
        change): the lines after the current one go back to the framer, for
        :meth:`advance` to deliver when it may.
        """
        self.framer.settle()

    # -- events ------------------------------------------------------------------------

    def fire(self, name: str, event: Any) -> None:
        """Fire a connection event now, or after the async listener in flight."""
        if self._busy is not None or self._steps:
            if self._steps is None:
                self._steps = deque()
            self._steps.append((name, event))
            self.end_batch()
            return
        waiting = self._dispatcher.dispatch(name, event)
        if waiting is not None:
            self.wait(waiting)

    def deliver_one(self, text: bytes, eol: bool) -> None:
        """One ``data_in`` event, now (the caller keeps the order)."""
        waiting = self._dispatcher.deliver(self._owner.connection_id, text, eol)
        if waiting is not None:
            self.wait(waiting)

    def wait(self, waiting: Deferred[Any]) -> None:
        """Hold later events until ``waiting`` fires (reading goes on to a bound)."""
        if self._abandoned:
            return  # (its connection is over: nothing waits for listeners any more)
        self._busy = waiting
        self.end_batch()
        if self.framer.buffered >= PENDING_READ_LIMIT:
            self._held = True
            self._owner.hold_reading(True)
        waiting.addBoth(self._unblock)

    def _unblock(self, result: object) -> None:
        if self._abandoned:
            return  # (given up on: what it finished with changes nothing)
        self._busy = None
        if self._held:
            self._held = False
            self._owner.hold_reading(False)
        self.advance()

    def abandon(self) -> int:
        """
        Stop waiting for the listener in flight - its connection's input is
        over and it took too long, or the server is shutting down: its
        result is ignored, later listeners are not waited for, and the
        frames it held back are dropped (nobody is left to answer them).

        :returns: how many bytes were dropped (the owner reports them).
        """
        self._abandoned = True
        self._busy = None
        if self._held:
            self._held = False
            self._owner.hold_reading(False)
        return len(self.framer.flush())

    def advance(self) -> None:
        """Deliver queued events and buffered frames, in order, while we can."""
        if self.delivering:
            return
        self.delivering = True
        try:
            self._loop()
        finally:
            self.delivering = False

    def hold_delivery(self, held: bool) -> None:
        """
        While ``held``, :meth:`advance` does nothing: ``connected`` and
        ``ready_to_send`` go out before any ``data_in``, even if a
        ``connected`` listener calls ``process_data()``.
        """
        self.delivering = held

    def _loop(self) -> None:
        dispatcher = self._dispatcher
        owner = self._owner
        framer = self.framer
        while self._busy is None:
            steps = self._steps
            if steps:
                name, event = steps.popleft()
                waiting = dispatcher.dispatch(name, event)
                if waiting is not None:
                    self.wait(waiting)
                continue
            if self.deliver and framer.has_input:
                lines = framer.split_lines()
                if lines:
                    dispatcher.deliver_batch(owner.connection_id, framer, self)
                    continue
                if lines is None:
                    try:
                        frame = framer.next_frame()
                    except FrameTooLongError as exc:
                        if not owner.frame_too_long(exc):
                            # the rest cannot be framed (the owner resets the
                            # connection, which stops reading): drop it
                            framer.flush()
                        continue
                    if frame is not None:
                        self.deliver_one(frame[0], frame[1])
                        continue
            if not self.ending or not owner.settled():
                return
