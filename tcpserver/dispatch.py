"""Listeners: who hears which event, isolated from each other and from us.

:class:`Dispatcher` owns the listener sets of one factory (``on``/``off``),
calls them, and keeps the rule every caller relies on: *a listener never
breaks the server*.  A listener that raises - or whose Deferred or coroutine
fails - is logged with its traceback and reported through the ``error``
event (code 900); the others still run.  A listener may return a Deferred,
a coroutine or any awaitable: :meth:`Dispatcher.dispatch` then returns a
Deferred that fires when every such result has completed, which is how a
connection holds its later events back.

The single-listener read-batch loop (:meth:`Dispatcher.deliver_batch`) is
the hottest code of the server: one ``data_in`` event per line, made
without the dataclass ``__init__``, straight to the listener.  It lives
here once.

No I/O here: connections are known only by their id.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from twisted.internet.defer import Deferred, DeferredList
from twisted.logger import Logger
from twisted.python.failure import Failure

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.events import EVENT_NAMES, DataIn, Error, Listener

__all__ = ["Batch", "Dispatcher", "Waiter", "to_deferred"]

T = TypeVar("T")


class Batch(Protocol):
    """A framer's read batch, as :meth:`Dispatcher.deliver_batch` takes it."""

    @property
    def batch(self) -> Iterator[bytes]:
        """The lines, to be taken in order (see ``Framer.batch``)."""

    def settle(self) -> None:
        """End the batch after the lines taken so far."""

    def finish_batch(self) -> int:
        """End the batch; how many lines were taken."""


class Waiter(Protocol):
    """Who waits for a batch's async listener (the connection's Inbound)."""

    def wait(self, waiting: Deferred[Any]) -> None:
        """Hold the connection's delivery until ``waiting`` fires."""


def to_deferred(result: object) -> Deferred[Any] | None:
    """A Deferred for a listener's awaitable result, or ``None``."""
    if isinstance(result, Deferred):
        return result
    if inspect.iscoroutine(result):
        return Deferred.fromCoroutine(result)
    if asyncio.isfuture(result):
        return Deferred.fromFuture(result)
    if inspect.isawaitable(result):
        return Deferred.fromCoroutine(_await(result))
    return None


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class Dispatcher:
    """
    The listeners of one factory and the way they are called.

    :param stats: the factory's counters (``listener_errors`` counts here).
    :param closed: whether the connection of an id has gone (an await on
        a send of a closed connection is then not a listener bug).
    :param masked: whether payload bytes are masked in log lines
        (MaskSensitiveData).
    :param changed: called with the event name after its listeners changed.

    :ivar listeners: ``name -> tuple of listeners`` (read it, never write it).
    :ivar data_in: the ``data_in`` listeners (the same tuple, for the hot path).
    """

    _log = Logger()

    def __init__(
        self,
        stats: Counter[str],
        closed: Callable[[str], bool],
        masked: Callable[[], bool],
        changed: Callable[[str], None],
    ) -> None:
        self.listeners: dict[str, tuple[Listener, ...]] = {n: () for n in EVENT_NAMES}
        self.data_in: tuple[Listener, ...] = ()
        self._stats = stats
        self._closed = closed
        self._masked = masked
        self._changed = changed
        self._counts: Counter[str] = Counter()  # events through call()
        self._batched = 0  # data_in events of the single-listener batch loop
        # batches being delivered now (innermost last): a change of the
        # data_in listeners ends them, so the next line goes to the new set
        self._delivering: list[Batch] = []

    # -- the listener sets -------------------------------------------------------------

    def on(self, name: str, listener: Listener) -> None:
        """
        Call ``listener(event)`` for every ``name`` event.

        :raises ValueError: for an unknown event name.
        :raises TypeError: if ``listener`` is not callable.
        """
        self.check_name(name)
        if not callable(listener):
            raise TypeError(f"listener for {name!r} must be callable, not {listener!r}")
        self.listeners[name] = (*self.listeners[name], listener)
        self._listeners_changed(name)

    def off(self, name: str, listener: Listener) -> None:
        """
        Stop calling ``listener`` for ``name`` events (no error if it was not
        registered).

        :raises ValueError: for an unknown event name.
        """
        self.check_name(name)
        current = list(self.listeners[name])
        if listener in current:
            current.remove(listener)
            self.listeners[name] = tuple(current)
            self._listeners_changed(name)

    @staticmethod
    def check_name(name: str) -> None:
        """:raises ValueError: ``name`` is not an event."""
        if name not in EVENT_NAMES:
            raise ValueError(f"unknown event {name!r}; events are: {', '.join(EVENT_NAMES)}")

    def _listeners_changed(self, name: str) -> None:
        if name == "data_in":
            self.data_in = self.listeners["data_in"]
            for batch in self._delivering:
                batch.settle()
        self._changed(name)

    # -- calling ----------------------------------------------------------------------

    def dispatch(self, name: str, event: Any) -> Deferred[Any] | None:
        """
        Call every ``name`` listener with ``event``, isolating failures.

        :returns: a Deferred that fires when every async result completed, or
            ``None`` when all listeners finished synchronously (or none listens).
        """
        listeners = self.listeners[name]
        if not listeners:
            return None
        return self.call(name, listeners, event)

    def call(self, name: str, listeners: tuple[Listener, ...], event: Any) -> Deferred[Any] | None:
        """:meth:`dispatch` to the given listeners."""
        pending: list[Deferred[None]] | None = None
        self._counts[name] += 1
        for listener in listeners:
            try:
                result = listener(event)
            except Exception:  # noqa: BLE001 - a listener must never break the server
                self.failed(Failure(), name, listener, event)
                continue
            if result is None:
                continue
            finished = self._result_deferred(result, name, listener, event)
            if finished is None:
                continue
            if pending is None:
                pending = [finished]
            else:
                pending.append(finished)
        if pending is None:
            return None
        if len(pending) == 1:
            return pending[0]
        return DeferredList(pending)

    def deliver(self, connection_id: str, text: bytes, eol: bool) -> Deferred[Any] | None:
        """One ``data_in`` event (see :meth:`dispatch`)."""
        listeners = self.data_in
        if not listeners:
            return None
        return self.call("data_in", listeners, DataIn(connection_id, text, eol))

    def deliver_batch(self, connection_id: str, framer: Batch, waiter: Waiter) -> int:
        """
        Deliver a framer's read batch, one ``data_in`` per line, in order.

        Whatever must stop the batch after the current line - a framing
        change, a pause, an async listener (``waiter.wait`` is called with
        its Deferred), a queued event, a change of the ``data_in`` listeners -
        settles the framer, which ends the iteration and keeps the
        undelivered lines buffered: nothing is checked per line here.

        :returns: how many lines were delivered.
        """
        listeners = self.data_in
        single = listeners[0] if len(listeners) == 1 else None
        self._delivering.append(framer)
        try:
            if single is not None:
                new = object.__new__
                for line in framer.batch:
                    # DataIn(connection_id, line, True) without the call of
                    # its generated __init__ (a third of an event's cost)
                    event = new(DataIn)
                    event.connection_id = connection_id
                    event.text = line
                    event.eol = True
                    try:
                        result = single(event)
                    except Exception:  # noqa: BLE001 - isolate the listener
                        self.failed(Failure(), "data_in", single, event)
                        result = None
                    if result is not None:
                        waiting = self._result_deferred(result, "data_in", single, event)
                        if waiting is not None:
                            waiter.wait(waiting)
            else:
                for line in framer.batch:
                    current = self.data_in
                    if current:
                        waiting = self.call("data_in", current, DataIn(connection_id, line, True))
                        if waiting is not None:
                            waiter.wait(waiting)
        except BaseException:
            framer.settle()  # (KeyboardInterrupt...) the undelivered lines stay buffered
            raise
        finally:
            self._delivering.pop()
        done = framer.finish_batch()
        if single is not None:
            self._batched += done
        return done

    def _result_deferred(
        self, result: object, name: str, listener: Listener, event: Any
    ) -> Deferred[None] | None:
        """
        What to wait for after a listener returned ``result``: ``None`` for a
        plain value or an already-completed awaitable, else a Deferred that
        fires when it completes.
        """
        waiting = to_deferred(result)
        if waiting is None:
            return None
        return self._observe(waiting, name, listener, event)

    def _observe(
        self, waiting: Deferred[Any], name: str, listener: Listener, event: Any
    ) -> Deferred[None] | None:
        """
        Watch a listener's Deferred without changing what it delivers to its
        other callbacks: a result passes through; a failure is reported
        (logged, ``error`` event) and consumed.

        :returns: ``None`` if it has already completed - a Deferred that has
            fired but waits on an inner one has not - otherwise a new Deferred
            that fires when it does.
        """
        finished: Deferred[None] = Deferred()

        def seen(result: object) -> object:
            if isinstance(result, Failure):
                self.failed(result, name, listener, event)
                result = None
            finished.callback(None)
            return result

        waiting.addBoth(seen)
        return None if finished.called else finished

    def failed(self, failure: Failure, name: str, listener: Listener, event: Any) -> None:
        """A listener raised or failed: log it and fire ``error`` (900)."""
        connection_id = getattr(event, "connection_id", "")
        if failure.check(TCPServerError) and connection_id and self._closed(connection_id):
            # An await on a send of a connection that has since closed: not a
            # listener bug; the disconnected event tells the story.
            self._log.info(
                "{event} listener {listener!r} of closed connection {cid!r} ended with {error}",
                event=name,
                listener=listener,
                cid=connection_id,
                error=failure.getErrorMessage(),
            )
            return
        self._stats["listener_errors"] += 1
        self._log.failure(
            "{event} listener {listener!r} raised on {payload} (connection {cid!r})",
            failure,
            event=name,
            listener=listener,
            cid=connection_id,
            payload=self._loggable(event),
        )
        if name != "error":
            self.dispatch(
                "error",
                Error(
                    connection_id,
                    errors.LISTENER_ERROR,
                    f"{name} listener {getattr(listener, '__qualname__', listener)} "
                    f"raised {type(failure.value).__name__}: {failure.getErrorMessage()}",
                ),
            )

    def _loggable(self, event: Any) -> str:
        """An event for a log line; payload bytes masked unless MaskSensitiveData=False."""
        if not self._masked():
            return repr(event)
        fields = []
        for name in getattr(event, "__slots__", ()):
            value = getattr(event, name)
            shown = f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)
            fields.append(f"{name}={shown}")
        return f"{type(event).__name__}({', '.join(fields)})"

    def events_fired(self) -> dict[str, int]:
        """How many events of each name reached listeners so far."""
        counts = dict(self._counts)
        if self._batched:
            counts["data_in"] = counts.get("data_in", 0) + self._batched
        return counts
