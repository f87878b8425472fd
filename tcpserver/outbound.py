"""One connection's outgoing bytes: cork, queue, timed sends, water marks.

:class:`Outbound` is sans-IO: it never touches a transport.  Bytes leave
through the writer its owner gives it (:meth:`OutboundOwner.writer`: the
connection's way to the socket, the transport or the TLS engine), and its timers
run on the clock it is given.  It owns every rule about sending (API.md
"Sending and flow control"):

* **cork** - while a read batch is delivered (``Outbound.corked``), the
  listeners' answers are gathered and written once when the batch ends
  (:meth:`Outbound.uncork`), or as soon as :data:`CORK_LIMIT` bytes gather;
* **queue** - once the transport has pushed back (:meth:`Outbound.pause`),
  sends wait here; at ``high_water`` queued bytes the owner is told to stop
  reading (:meth:`OutboundOwner.flow`) and ``ready`` turns False; at
  ``low_water`` reading resumes and the owner hears
  :meth:`OutboundOwner.drained` (it fires ``ready_to_send``);
* **limit** - with ``timeout == 0`` a send beyond ``queue_limit`` raises
  135 after queueing what fits (``bytes_sent``); with ``timeout > 0`` it is
  parked until the queue has room and its Deferred fires once its bytes
  were handed on, or fails with 10060 after ``timeout`` seconds without
  progress;
* **hold** - while TLS starts, only the bytes accepted before it started
  go out (in plaintext); the rest waits for the handshake
  (:meth:`Outbound.hold` / :meth:`Outbound.release`);
* **files** - ``send_file`` streams through the same queue
  (:class:`~tcpserver._files.FileStreamer`).

The fast path is :func:`tcpserver.delegates.send_by_id` - ``send(connection_id, data)`` of
the factory and the server, the one call per answered line - taken while
:attr:`Outbound.fast` holds (computed in one place,
:meth:`Outbound._update_fast`): it hands the bytes to
:meth:`Outbound.emit`, the one cork path, skipping the general path's
checks (:meth:`Outbound.send`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from tcpserver import errors
from tcpserver._files import FileStreamer
from tcpserver.errors import TCPServerError

__all__ = [
    "CORK_LIMIT",
    "Limits",
    "Outbound",
    "OutboundOwner",
    "Writer",
    "as_bytes",
]

#: Corked writes are passed on once they reach this size, even in the
#: middle of a read batch.
CORK_LIMIT = 64 * 1024


#: How an Outbound's bytes go out: called as ``write(owner, data)``, a
#: function of two so that the common one - the reactor turn's
#: :meth:`~tcpserver.turn.TurnSends.send` - is taken as it is, without a
#: closure per connection (see :meth:`OutboundOwner.writer`).
Writer = Callable[[Any, bytes], None]


class OutboundOwner(Protocol):
    """What an :class:`Outbound` tells the connection it belongs to."""

    #: named in error messages
    connection_id: str

    def writer(self) -> Writer:
        """
        How the bytes the Outbound hands on go out (socket, transport or TLS
        engine), in order: asked when the Outbound is bound to the owner,
        and again at :meth:`Outbound.reroute`.
        """

    def flow(self, paused: bool) -> None:
        """The queue passed ``high_water`` (``True``) or fell to ``low_water``."""

    def drained(self) -> None:
        """
        The queue is at or below ``low_water`` with nothing parked, and
        either sends are no longer taken (closing) or ``ready`` is False.
        """

    def hold_reached(self) -> None:
        """Everything accepted before :meth:`Outbound.hold` has been handed on."""


class _Ended:
    """
    The owner of an :class:`Outbound` whose connection has ended (see
    :meth:`Outbound.detach`): it keeps the id for error messages and hears
    nothing, since nothing is written or drained any more.
    """

    __slots__ = ("connection_id",)

    def __init__(self, connection_id: str) -> None:
        self.connection_id = connection_id

    def writer(self) -> Writer:
        return _Ended.refuse_write

    def refuse_write(self, data: bytes) -> None:
        raise AssertionError(f"connection {self.connection_id!r} ended: nothing is written")

    def flow(self, paused: bool) -> None:
        pass

    def drained(self) -> None:
        pass

    def hold_reached(self) -> None:
        pass


#: the owner of an Outbound waiting in a pool (see Outbound.rest)
_AT_REST = _Ended("")
_AT_REST_WRITER = _AT_REST.writer()


class Limits(Protocol):
    """The water marks (a connection's profile)."""

    @property
    def high_water(self) -> int: ...

    @property
    def low_water(self) -> int: ...

    @property
    def queue_limit(self) -> int: ...

    @property
    def send_timeout(self) -> float: ...


def as_bytes(data: object, what: str) -> bytes:
    """``data`` as ``bytes``, or 10022 naming ``what`` and the bad value."""
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TCPServerError(
        errors.INVALID_ARGUMENT,
        f"{what} takes bytes, not {type(data).__name__}: {data!r:.60}",
    )


class Outbound:
    """
    The outgoing side of one connection (see the module docstring).

    :param owner: where bytes go and who hears about flow control.
    :param clock: runs the send timer (a ``task.Clock`` in tests).
    :param limits: ``high_water``, ``low_water`` and ``queue_limit``.
    :param timeout: the send timeout (``Connection.timeout``), seconds.
    :param taking_sends: start as :meth:`accept_sends` leaves it.
    :param is_open: start as :meth:`open` leaves it (``ready``).

    :ivar bytes_sent: bytes of the last send that were taken; always 0
        with ``timeout > 0`` (the manual's synchronous mode).
    :ivar ready: ``ready_to_send``: False after a 135 or above the
        high-water mark, until the queue drains.
    :ivar handed: bytes handed on so far.
    :ivar fast: :meth:`send` may hand bytes straight on (or cork them) -
        read it, never write it: :meth:`_update_fast` is the one place it
        is computed.
    :ivar on_progress: called whenever bytes are handed on (the idle timer).
    :ivar corked: a read batch is being delivered: its answers gather and
        leave in one write at :meth:`uncork` (or once :data:`CORK_LIMIT`
        bytes gather).
    """

    __slots__ = (
        "_accepted_total",
        "_accepting",
        "_boundary",
        "_clock",
        "_cork",
        "_cork_len",
        "_files",
        "_flow_paused",
        "_flushed_mark",
        "_gone",
        "_holding",
        "_limits",
        "_owner",
        "_parked",
        "_parked_len",
        "_queue",
        "_queue_len",
        "_send_timer",
        "_send_timer_period",
        "_timeout",
        "_tx_paused",
        "_waiters",
        "_write",
        "bytes_sent",
        "corked",
        "fast",
        "handed",
        "on_progress",
        "ready",
    )

    def __init__(
        self,
        owner: OutboundOwner,
        clock: IReactorTime,
        limits: Limits,
        timeout: float = 0,
        *,
        taking_sends: bool = False,
        is_open: bool = False,
    ) -> None:
        self._owner = owner
        self._write = owner.writer()
        self._clock = clock
        self._limits = limits
        self._timeout = timeout
        self.bytes_sent = 0
        self.ready = is_open and limits.high_water > 0
        self.on_progress: Callable[[], object] | None = None
        self._accepting = taking_sends  # sends are taken (accepted, not closing)
        self._gone = False  # the transport is gone: nothing more is written
        self.corked = False
        self._cork: list[bytes] | None = None  # writes gathered during a read batch
        self._cork_len = 0
        self._tx_paused = False  # the transport's buffer is full
        self._flow_paused = False  # the owner was told to stop reading
        # (deques are made when first needed: an idle connection has none)
        self._queue: deque[bytes] | None = None
        self._queue_len = 0
        # bytes send() took, corked ones excepted: uncork() adds those
        self._accepted_total = 0
        self.handed = 0
        self._flushed_mark = 0  # handed bytes the transport did not push back on
        self._waiters: deque[tuple[int, Deferred[None]]] | None = None
        self._send_timer: IDelayedCall | None = None
        self._send_timer_period = 0.0
        self._parked: deque[tuple[bytes, Deferred[None]]] | None = None
        self._parked_len = 0
        self._holding = False
        self._boundary = 0
        self._files: FileStreamer | None = None
        self._update_fast()  # (the one place _fast is computed)

    # -- the one derived flag ------------------------------------------------------------

    def _update_fast(self) -> None:
        """
        Whether :meth:`send` may hand bytes straight on (or cork them): sends
        are taken, untimed, and nothing is queued, parked, held or pushed back.
        """
        self.fast = (
            self._accepting
            and not self._timeout
            and not self._queue_len
            and not self._tx_paused
            and not self._parked
            and not self._holding
        )

    # -- what the connection tells us ------------------------------------------------------

    def accept_sends(self) -> None:
        """The connection is accepted: sends are taken from now on."""
        self._accepting = True
        self._update_fast()

    def open(self) -> None:
        """The connection (re)opened: ``ready`` unless output already fills the queue."""
        self.ready = not self._parked and (
            self._queue_len + self._cork_len < self._limits.high_water
        )

    def refuse_sends(self) -> None:
        """The connection is closing: further sends raise 126."""
        self._accepting = False
        self._update_fast()

    def gone(self, code: int, description: str) -> None:
        """
        The transport is gone (status ``code``): fail what waits, release the
        queue (even if the application keeps its Connection object).
        """
        self._gone = True
        self._accepting = False
        self._update_fast()
        self._accepted_total += self._cork_len
        self._cork = None
        self._cork_len = 0
        if self._waiters or self._parked or self._send_timer is not None:
            if code == 0:
                # A clean close means Twisted flushed everything it was handed.
                self._flushed_mark = self.handed
                self._progress()
                code = errors.CANNOT_SEND_AFTER_SHUTDOWN
                description = errors.description_for(code)
            self._fail_waiters(TCPServerError(code, description))
        if self._files is not None:
            self._files.stop(TCPServerError(code, f"send_file stopped: {description}"))
        self._queue = None
        self._queue_len = 0

    def detach(self) -> None:
        """
        The connection has ended (after :meth:`gone`): let go of it, so that
        a closed connection and its parts are freed at once, by reference
        counting, instead of waiting for the garbage collector.  What the
        application still reads (``bytes_sent``, ``ready``, the counters)
        stays; sends keep failing with 126.
        """
        assert self._gone, "detach() comes after gone()"
        self._owner = _Ended(self._owner.connection_id)
        self._write = self._owner.writer()
        self.on_progress = None

    @property
    def at_rest(self) -> bool:
        """
        Nothing waits or streams, and nothing differs from a new Outbound
        but the counts: it may serve another connection (:meth:`rebind`).
        """
        return (
            self._accepting
            and not (self._queue_len or self._tx_paused or self._parked or self._holding)
            and self._cork is None
            and self._files is None
            and not self._flow_paused
            and not self._waiters
            and self._send_timer is None
            and self._timeout == self._limits.send_timeout
            and self.ready == (self._limits.high_water > 0)
            and self._flushed_mark == self.handed == self._accepted_total
        )

    def rebind(self, owner: OutboundOwner, handed: int, sent: int) -> None:
        """Serve ``owner`` (at rest, see :attr:`at_rest`), whose counts so far are these."""
        self._owner = owner
        self._write = owner.writer()
        self.handed = self._accepted_total = self._flushed_mark = handed
        self.bytes_sent = sent
        self.on_progress = None
        self._queue = self._waiters = self._parked = None  # (empty ones take room)

    def rest(self) -> None:
        """Wait in a pool: let go of the connection and its idle timer (see :meth:`rebind`)."""
        self._owner = _AT_REST
        self._write = _AT_REST_WRITER
        self.on_progress = None

    def reroute(self) -> None:
        """The owner's way out changed (a TLS engine took over): ask it again."""
        self._write = self._owner.writer()

    @property
    def timeout(self) -> float:
        """The send timeout (``Connection.timeout``): 0 makes a full queue raise 135."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self._timeout = seconds
        self._update_fast()

    @property
    def taking_sends(self) -> bool:
        """Whether sends are taken (the connection is accepted and not closing)."""
        return self._accepting

    @property
    def is_gone(self) -> bool:
        """Whether the transport is gone (nothing more is written)."""
        return self._gone

    def uncork(self) -> None:
        """The read batch ended: write what it gathered, at once, in one write."""
        self.corked = False
        cork = self._cork
        if cork is None:
            return
        size = self._cork_len
        self._cork = None
        self._cork_len = 0
        self._accepted_total += size
        if not self._gone:
            # One write of the joined batch: Twisted's writeSequence checks
            # and appends every piece, and joins them again before sending.
            self._write(self._owner, cork[0] if len(cork) == 1 else b"".join(cork))
            self._handed(size)

    def flush(self) -> None:
        """Write the corked bytes now, mid-batch (a full cork, a close, TLS starting)."""
        corked = self.corked
        self.uncork()
        self.corked = corked

    def pause(self) -> None:
        """The transport's buffer is full: queue further sends here."""
        self._tx_paused = True
        self._update_fast()

    def resume(self) -> None:
        """The transport's buffer drained: pass it more of the queue."""
        self._tx_paused = False
        if self._flushed_mark < self.handed:
            self._flushed_mark = self.handed
            self._progress()
        self._drain()
        files = self._files
        if files is not None and files.busy and not self._tx_paused:
            files.pull()

    def hold(self) -> None:
        """
        TLS starts: from now on only what was accepted so far goes out (in
        plaintext); the rest waits for :meth:`release`.  Timed sends parked
        for room were made before: they belong to the plaintext part.
        """
        if self._holding:
            return
        self.flush()
        self._admit_parked(force=True)
        self._holding = True
        self._update_fast()
        self._boundary = self._accepted_total

    @property
    def holding(self) -> bool:
        """Output beyond the TLS boundary is held (until :meth:`release`)."""
        return self._holding

    @property
    def boundary_reached(self) -> bool:
        """Every byte accepted before :meth:`hold` has been handed on."""
        return self.handed >= self._boundary

    def release(self) -> None:
        """TLS is up (or DETECT found plaintext): held output may go."""
        self._holding = False
        if self._gone:
            return
        # (even with nothing left to move: the queue may have drained below
        # its low-water mark while held, and reading must resume)
        self._drain()
        files = self._files
        if files is not None and files.busy and not self._tx_paused:
            files.pull()

    # -- what the connection asks ------------------------------------------------------

    @property
    def accepted(self) -> int:
        """Bytes taken by sends so far."""
        return self._accepted_total + self._cork_len

    @property
    def queued(self) -> int:
        """Bytes taken and not yet handed on."""
        return self._queue_len + self._cork_len

    @property
    def pending(self) -> bool:
        """Whether anything still waits to be handed on (corked bytes aside)."""
        return bool(
            self._queue_len or self._parked or (self._files is not None and self._files.busy)
        )

    @property
    def stuck(self) -> bool:
        """Output waits, or the transport pushed back."""
        return self.pending or self._tx_paused

    @property
    def idle(self) -> bool:
        """Nothing queued, parked, awaited or being streamed: nothing to fail or stop."""
        return not (
            self._queue_len
            or self._parked
            or self._waiters
            or self._send_timer is not None
            or (self._files is not None and self._files.busy)
        )

    # -- sending ---------------------------------------------------------------------------

    def send(self, data: object, /) -> Deferred[None] | None:
        """
        Take ``data`` for sending.

        :returns: ``None`` when ``timeout == 0``.  Otherwise a Deferred that
            fires once the bytes have been handed on and the transport has
            not pushed back, or fails with 10060 after ``timeout`` seconds
            without progress.
        :raises TCPServerError: 126 if sends are not taken (closed or
            closing); 135 if the queue is full and ``timeout == 0``
            (``bytes_sent`` tells how many bytes of ``data`` were queued),
            or - with ``timeout > 0`` - if another ``queue_limit`` bytes
            already wait for room; 10022 if ``data`` is not bytes.
        """
        return self._send_slow(as_bytes(data, "send"), "send")

    def send_as(self, data: object, what: str) -> Deferred[None] | None:
        """:meth:`send`, naming ``what`` (``send_line``...) in its errors."""
        return self._send_slow(as_bytes(data, what), what)

    def _send_slow(self, data: bytes, what: str) -> Deferred[None] | None:
        if not self._accepting:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self._owner.connection_id!r} is closed",
            )
        size = len(data)
        timeout = self._timeout
        if not self._queue_len and not self._tx_paused and not self._parked and not self._holding:
            # (the manual: BytesSent is always 0 in the synchronous mode, timeout > 0)
            self.bytes_sent = 0 if timeout else size
            self.emit(data)
        elif not timeout:
            room = 0 if self._parked else self._limits.queue_limit - self.queued
            if room < size:
                accepted = max(room, 0)
                if accepted:
                    self._enqueue(data[:accepted])
                self.bytes_sent = accepted
                self._not_ready()
                raise TCPServerError(
                    errors.WOULD_BLOCK,
                    f"{errors.description_for(errors.WOULD_BLOCK)} The send queue of "
                    f"connection {self._owner.connection_id!r} is full: {accepted} of {size} "
                    "bytes queued; wait for ready_to_send",
                )
            self._enqueue(data)
            self.bytes_sent = size
        elif self._parked or not self._has_room(size):
            return self._park(data)
        else:
            self._enqueue(data)
            self.bytes_sent = 0
        if not timeout:
            return None
        return self._timed_result()

    def emit(self, data: bytes) -> None:
        """Hand accepted bytes on (gathered per read batch when corked): the one cork path."""
        if self.corked:
            if self._cork is None:
                self._cork = [data]
            else:
                self._cork.append(data)
            self._cork_len += len(data)
            if self._cork_len >= CORK_LIMIT:
                self.flush()
        else:
            self._accepted_total += len(data)
            self._write(self._owner, data)
            self._handed(len(data))

    def _timed_result(self) -> Deferred[None]:
        """The Deferred of a timed send that was just accepted."""
        accepted = self.accepted
        if self._flushed_mark >= accepted:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        if self._waiters is None:
            self._waiters = deque()
        self._waiters.append((accepted, waiter))
        self._start_send_timer()
        return waiter

    def _has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes fit the queue (an empty queue takes anything)."""
        return not self._queue_len or self._queue_len + size <= self._limits.queue_limit

    def _park(self, data: bytes) -> Deferred[None]:
        """
        Hold a timed send until the queue has room for all of it.  Parked
        bytes are not sent at all if their timeout expires, so a caller that
        retries never sends them twice.
        """
        if self._parked_len + len(data) > self._limits.queue_limit and self._parked:
            self.bytes_sent = 0
            raise TCPServerError(
                errors.WOULD_BLOCK,
                f"{errors.description_for(errors.WOULD_BLOCK)} {self._parked_len} bytes "
                f"of earlier sends already wait for room on connection "
                f"{self._owner.connection_id!r}; await them before sending more",
            )
        waiter: Deferred[None] = Deferred()
        if self._parked is None:
            self._parked = deque()
        self._parked.append((data, waiter))
        self._parked_len += len(data)
        self._update_fast()
        self.bytes_sent = 0
        self._not_ready()
        self._start_send_timer()
        return waiter

    def _admit_parked(self, force: bool = False) -> None:
        """Move parked sends into the queue while they fit (all if ``force``), in order."""
        parked = self._parked
        while parked and (force or self._has_room(len(parked[0][0]))):
            data, waiter = parked.popleft()
            self._parked_len -= len(data)
            self._enqueue(data)
            if self._waiters is None:
                self._waiters = deque()
            self._waiters.append((self.accepted, waiter))

    def _handed(self, size: int) -> None:
        self.handed += size
        if not self._tx_paused:
            self._flushed_mark = self.handed
        if self.on_progress is not None or self._waiters or self._parked:
            self._progress()

    def _enqueue(self, data: bytes) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if self._cork:
            # bytes corked before these go first: into the queue with them
            queue.extend(self._cork)
            self._queue_len += self._cork_len
            self._accepted_total += self._cork_len
            self._cork = None
            self._cork_len = 0
        queue.append(data)
        self._queue_len += len(data)
        self._accepted_total += len(data)
        self._update_fast()
        if self.queued >= self._limits.high_water:
            self._not_ready()

    def _not_ready(self) -> None:
        self.ready = False
        if self.queued >= self._limits.high_water and not self._flow_paused:
            self._flow_paused = True
            self._owner.flow(True)

    def _drain(self) -> None:
        """Move queued bytes on until the transport is full again."""
        queue = self._queue
        moved = 0
        while not self._gone and not self._tx_paused:
            if self._holding and self.handed + moved >= self._boundary:
                break  # what remains is for the TLS engine, which is not up yet
            if not queue:
                if not self._parked:
                    break
                self._admit_parked()
                queue = self._queue
                continue
            chunk = queue.popleft()
            self._queue_len -= len(chunk)
            moved += len(chunk)
            self._write(self._owner, chunk)
        if self._parked and not self._holding:
            self._admit_parked()
        if moved:
            self._handed(moved)
        self._update_fast()
        if self._holding:
            if self.boundary_reached:
                self._owner.hold_reached()
            return
        if self._queue_len > self._limits.low_water or self._parked or self._gone:
            return
        if self._flow_paused:
            self._flow_paused = False
            self._owner.flow(False)
        if not self._accepting or not self.ready:
            self._owner.drained()

    def _progress(self) -> None:
        """Bytes moved: fire finished timed sends, restart the timers."""
        if self.on_progress is not None:
            self.on_progress()
        waiters = self._waiters
        if not waiters and not self._parked:
            return
        mark = self._flushed_mark
        while waiters and waiters[0][0] <= mark:
            waiters.popleft()[1].callback(None)
        if self._send_timer is not None:
            if waiters or self._parked:
                self._send_timer.reset(self._send_timer_period)
            else:
                self._cancel_send_timer()

    def _start_send_timer(self) -> None:
        if self._send_timer is None:
            self._send_timer_period = self._timeout
            self._send_timer = self._clock.callLater(self._send_timer_period, self._send_timed_out)

    def _send_timed_out(self) -> None:
        self._send_timer = None
        seconds = self._send_timer_period
        parked, self._parked = self._parked, None
        self._parked_len = 0
        # in stream order: queued sends first, then the parked ones
        self._fail_waiters(
            TCPServerError(
                errors.TIMED_OUT,
                f"{errors.description_for(errors.TIMED_OUT)} No send progress on "
                f"connection {self._owner.connection_id!r} for {seconds}s; the bytes are "
                "queued and go out if the client reads again",
            )
        )
        for data, waiter in parked or ():
            waiter.errback(
                TCPServerError(
                    errors.TIMED_OUT,
                    f"{errors.description_for(errors.TIMED_OUT)} No send progress on "
                    f"connection {self._owner.connection_id!r} for {seconds}s; these "
                    f"{len(data)} bytes were not sent",
                )
            )
        self._update_fast()
        if not self._accepting and not self._gone and not self.pending:
            self._owner.drained()

    def _cancel_send_timer(self) -> None:
        if self._send_timer is not None:
            if self._send_timer.active():
                self._send_timer.cancel()
            self._send_timer = None

    def _fail_waiters(self, error: TCPServerError) -> None:
        waiters, self._waiters = self._waiters, None
        parked, self._parked = self._parked, None
        self._parked_len = 0
        self._cancel_send_timer()
        for _, waiter in waiters or ():
            waiter.errback(Failure(error))
        for _, waiter in parked or ():
            waiter.errback(Failure(error))

    # -- files (the FileStreamer's sink) --------------------------------------------------------

    def send_file(self, path: str) -> Deferred[int]:
        """
        Stream a regular file through the queue without reading it whole;
        files sent while one is in progress follow it in order.

        :raises TCPServerError: 126 when sends are not taken; 10022 if
            ``path`` is not a regular file; an OS error's code if it cannot
            be opened.
        """
        if not self._accepting:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"send_file: connection {self._owner.connection_id!r} is closed or closing",
            )
        if self._files is None:
            self._files = FileStreamer(self, self._clock)
        return self._files.send(path)

    @property
    def sending_file(self) -> bool:
        """Whether a file is being sent or waits to be."""
        return self._files is not None and self._files.busy

    def interrupt(self) -> None:
        """Stop the file being sent (and drop queued ones)."""
        files = self._files
        if files is not None:
            files.stop(TCPServerError(10004, f"send_file interrupted after {files.sent} bytes"))

    def can_take_file_bytes(self) -> bool:
        """FileStreamer: whether to read more of the file now."""
        return not self._tx_paused and not self._queue_len and not self._holding and not self._gone

    def file_bytes(self, data: bytes) -> None:
        """FileStreamer: a chunk of the file."""
        if self._gone:
            return
        if not self._queue_len and not self._tx_paused and not self._parked and not self._holding:
            self.emit(data)
        else:
            self._enqueue(data)

    def files_idle(self) -> None:
        """FileStreamer: nothing more to start."""
        if not self._accepting and not self._gone:
            self._owner.drained()
