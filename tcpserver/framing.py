"""The sans-IO framer: bytes in, ``(chunk, eol_found)`` frames out.

No Twisted import and no I/O: the protocol feeds bytes with
:meth:`Framer.receive` and pulls frames one at a time with
:meth:`Framer.next_frame`.  Pulling one frame at a time is what lets a
``data_in`` listener change the framing (``eol``, ``single_line_mode``,
``record_length``, ``max_line_length``) and have the change apply to the very
next byte, and what lets ``pause_data`` stop delivery with the rest of the
bytes still buffered here.

Framing rules, first match wins (see API.md "Framing"):

1. ``record_length > 0``: exactly that many bytes per frame, ``eol=True``.
2. ``length_prefix`` (1, 2, 4 or 8): each frame starts with its length in
   that many bytes (``byteorder``); the payload is ``length + adjust``
   bytes; the prefix is stripped unless ``strip`` is False.  A payload
   longer than ``max_frame_length`` raises :class:`FrameTooLongError` (after
   arranging to skip it when ``skip_too_long`` is set).  Netty's
   ``LengthFieldBasedFrameDecoder`` with the length field first.
3. ``single_line_mode``: lines end in CR, LF or CRLF (also when the CR and
   the LF arrive in different reads); the terminator is stripped.
4. ``eol`` non-empty: split on it (any bytes, NUL included, multi-byte); the
   terminator is stripped.  When ``max_line_length`` bytes gather without a
   terminator they come out with ``eol=False`` and the line continues.
5. otherwise every received chunk comes out as it is, ``eol=True``.

Cost: every byte is searched once per framing mode (a mode change rescans
what is buffered), a frame is sliced out once, and a partial frame longer than
:data:`HOLD_THRESHOLD` is kept as a list of pieces instead of being copied on
every read - so a long line or record costs linear time however it is cut.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

__all__ = [
    "HOLD_THRESHOLD",
    "LONG_LINE",
    "PREFIX_SIZES",
    "Frame",
    "FrameTooLongError",
    "Framer",
    "split_at",
]

#: A partial frame longer than this is held as a list of pieces rather than
#: re-concatenated with every read (which would be quadratic in its length).
HOLD_THRESHOLD = 64 * 1024

#: the batch iterator of a framer with no batch (always exhausted, so one serves all)
_NO_LINES: Iterator[bytes] = iter(())

#: ``(chunk, eol_found)``
Frame = tuple[bytes, bool]

_CR = 13
_LF = 10

#: The length-prefix sizes, in bytes.
PREFIX_SIZES = (1, 2, 4, 8)


#: A read whose first line is this long or longer is cut with ``find``
#: (see :func:`split_at`).
LONG_LINE = 512


def split_at(data: bytes, eol: bytes, start: int = 0) -> list[bytes]:
    """
    ``data[start:].split(eol)`` - the lines of a read and its unterminated
    rest - at the speed of ``memchr`` for long lines too.

    CPython's ``bytes.split`` compares the data byte by byte (about 0.35 ns
    a byte on the benchmark machine: 11.4 µs for eight 4 KiB lines, and
    more with a two-byte terminator), while ``bytes.find`` searches with
    ``memchr``: cutting the same eight lines with ``find`` takes 2.2 µs.
    For short lines ``split`` wins (0.85 µs for sixteen 64-byte lines,
    against 2.7: it has no per-line Python step).  So the length of the
    first line decides, once per read - :data:`LONG_LINE` bytes or more:
    ``find``; shorter: ``split``.  Both match left to right without
    overlapping, so the lines are the same either way.
    """
    first = data.find(eol, start)
    if first - start < LONG_LINE:  # (also when there is no terminator: -1)
        return (data[start:] if start else data).split(eol)
    size = len(eol)
    find = data.find
    lines = [data[start:first]]
    append = lines.append
    begin = first + size
    while True:
        end = find(eol, begin)
        if end < 0:
            append(data[begin:])
            return lines
        append(data[begin:end])
        begin = end + size


class FrameTooLongError(ValueError):
    """A length-prefixed frame announced more than ``max_frame_length`` bytes."""

    def __init__(self, length: int, limit: int, skip: bool = False) -> None:
        super().__init__(f"a frame of {length} bytes announced; the limit is {limit}")
        self.length = length
        self.limit = limit
        #: the framer drops the frame's bytes and goes on (skip_too_long)
        self.skip = skip


class Framer:
    """
    Splits one connection's byte stream into frames.

    :param eol: end-of-line bytes (empty: no line splitting).
    :param max_line_length: most bytes of a line delivered at once; longer
        lines come out in pieces with ``eol=False``.
    :param single_line_mode: split on CR, LF or CRLF instead of ``eol``.
    :param record_length: fixed-size records when positive.
    """

    __slots__ = (
        "_batch",
        "_batch_start",
        "_buf",
        "_cr",
        "_eol",
        "_frame_need",
        "_held",
        "_held_len",
        "_lf",
        "_limit",
        "_lines_only",
        "_long_lines",
        "_max_frame",
        "_pos",
        "_prefix",
        "_prefix_adjust",
        "_prefix_order",
        "_prefix_strip",
        "_record_length",
        "_scan",
        "_single",
        "_skip",
        "_skip_lf",
        "_skip_too_long",
        "_split_eol_len",
        "batch",
        "batch_done",
        "generation",
    )

    def __init__(
        self,
        eol: bytes = b"",
        max_line_length: int = 2048,
        single_line_mode: bool = False,
        record_length: int = 0,
    ) -> None:
        self._eol = eol
        self._single = single_line_mode
        self._record_length = record_length
        self._limit = max_line_length
        #: changes whenever a framing setting changes (see :meth:`split_lines`)
        self.generation = 0
        self._buf = b""
        self._pos = 0  # start of unconsumed bytes in _buf
        self._scan = 0  # no terminator starts in _buf[_pos:_scan]
        self._held: list[bytes] | None = None  # start of a long partial frame
        self._held_len = 0
        self._skip_lf = False  # a CR ended the last line; swallow one LF
        self._split_eol_len = 0  # terminator length of the current batch
        # the connection's last read began with a long line: cut the next
        # with find (see receive_lines)
        self._long_lines = False
        self._batch: list[bytes] | None = None  # lines of a split_lines() batch
        #: The lines of the batch :meth:`split_lines` (or :meth:`receive_lines`)
        #: started, to be taken in order: a line taken is a line delivered.  A
        #: framer call made meanwhile (a framing change, :meth:`flush`...)
        #: settles the position just after the last line taken and ends the
        #: iteration, so the consumer's loop stops by itself.  Exhausted when
        #: no batch is open.
        self.batch: Iterator[bytes] = _NO_LINES
        self._batch_start = 0
        #: how many lines of the last settled batch were taken
        self.batch_done = 0
        self._cr = -1  # cached index of the next CR in _buf (-1: unknown)
        self._lf = -1  # cached index of the next LF in _buf (-1: unknown)
        self._prefix = 0  # length-prefix size in bytes (0: off)
        self._lines_only = self._is_lines_only()
        # The other length-prefix fields are set by set_length_prefix() (an
        # idle connection's framer stays small and quick to make):
        # _prefix_order, _prefix_adjust, _prefix_strip, _max_frame,
        # _skip_too_long, _frame_need (the frame being received, -1: header
        # not read yet) and _skip (bytes of a too-long frame still to drop).

    # -- framing settings: a change rescans what is buffered ---------------

    @property
    def eol(self) -> bytes:
        """The end-of-line terminator (empty: none)."""
        return self._eol

    @eol.setter
    def eol(self, value: bytes) -> None:
        if value != self._eol:
            self._eol = value
            self._mode_changed()

    @property
    def single_line_mode(self) -> bool:
        """Split on CR, LF or CRLF."""
        return self._single

    @single_line_mode.setter
    def single_line_mode(self, value: bool) -> None:
        if value != self._single:
            self._single = value
            self._mode_changed()

    @property
    def record_length(self) -> int:
        """Fixed record size (0: not in record mode)."""
        return self._record_length

    @record_length.setter
    def record_length(self, value: int) -> None:
        if value != self._record_length:
            self._record_length = value
            self._mode_changed()

    @property
    def length_prefix(self) -> int:
        """Length-prefix size in bytes (0: not in length-prefixed mode)."""
        return self._prefix

    def set_length_prefix(
        self,
        size: int,
        byteorder: str = "big",
        adjust: int = 0,
        strip: bool = True,
        max_frame_length: int | None = None,
        skip_too_long: bool | None = None,
    ) -> None:
        """
        Length-prefixed frames from the next byte on (``size`` 0: off).

        :raises ValueError: a size other than 0, 1, 2, 4, 8 or a byte order
            other than ``"big"`` / ``"little"``.
        """
        if size not in (0, *PREFIX_SIZES):
            raise ValueError(f"length prefix size must be 0, 1, 2, 4 or 8, got {size!r}")
        if byteorder not in ("big", "little"):
            raise ValueError(f"byteorder must be 'big' or 'little', got {byteorder!r}")
        if not hasattr(self, "_max_frame"):  # the first call
            self._prefix_order, self._prefix_adjust, self._prefix_strip = "big", 0, True
            self._max_frame, self._skip_too_long = 1 << 20, False
            self._frame_need, self._skip = -1, 0
        if max_frame_length is not None:
            self._max_frame = max_frame_length
        if skip_too_long is not None:
            self._skip_too_long = skip_too_long
        changed = (size, byteorder, adjust, strip) != self.prefix_format
        self._prefix = size
        self._prefix_order = byteorder
        self._prefix_adjust = adjust
        self._prefix_strip = strip
        if changed:
            self._frame_need = -1
            self._skip = 0  # (a too-long frame being skipped belongs to the old framing)
            self._mode_changed()

    @property
    def prefix_format(self) -> tuple[int, str, int, bool]:
        """``(size, byteorder, adjust, strip)`` of the length-prefixed mode."""
        if not hasattr(self, "_prefix_order"):
            return 0, "big", 0, True
        return self._prefix, self._prefix_order, self._prefix_adjust, self._prefix_strip

    @property
    def max_line_length(self) -> int:
        """Most bytes of a line delivered at once (the rest follows, eol=False)."""
        return self._limit

    @max_line_length.setter
    def max_line_length(self, value: int) -> None:
        if value != self._limit:
            if self._batch is not None:
                self.settle()  # later lines of the batch were cut to the old limit
            self._limit = value
            self.generation += 1

    @property
    def has_input(self) -> bool:
        """Whether received bytes wait here (a batch's undelivered lines included)."""
        if self._batch is not None and self.batch.__length_hint__():  # type: ignore[attr-defined]
            return True
        return self._pos < len(self._buf) or bool(self._held)

    @property
    def pristine(self) -> bool:
        """Nothing buffered, and the framing as it was made (no setting changed since)."""
        return not (
            self.generation
            or self._buf
            or self._held
            or self._batch is not None
            or self._skip_lf
            or self._prefix
        )

    def finish_batch(self) -> int:
        """
        End the batch :meth:`split_lines` (or :meth:`receive_lines`) started,
        after the lines taken from :attr:`batch`.

        :returns: how many lines were taken (0 when no batch was open and
            none was settled since).
        """
        lines = self._batch
        if lines is not None and not self.batch.__length_hint__():  # type: ignore[attr-defined]
            # every line was taken: the position is already right
            self._batch = None
            self.batch_done = 0
            self.batch = _NO_LINES
            if self._pos == len(self._buf):
                # nothing waits: an idle connection keeps no read's bytes
                self._buf = b""
                self._pos = self._scan = 0
            return len(lines)
        if lines is not None:
            self.settle()
        done, self.batch_done = self.batch_done, 0
        return done

    @property
    def buffered(self) -> int:
        """How many received bytes wait here for delivery."""
        if self._batch is not None:
            self.settle()
        return self._held_len + len(self._buf) - self._pos

    def _is_lines_only(self) -> bool:
        """Whether the framing is plain EOL lines: no records, prefix or single-line mode."""
        return (
            bool(self._eol) and self._record_length <= 0 and not self._prefix and not self._single
        )

    def _mode_changed(self) -> None:
        self._lines_only = self._is_lines_only()
        if self._batch is not None:
            self.settle()
        self.generation += 1
        # Held pieces and the scan position were valid for the old mode only.
        if self._held:
            self._buf = b"".join([*self._held, self._buf[self._pos :]])
            self._pos = 0
            self._held = None
            self._held_len = 0
        self._scan = self._pos
        self._cr = self._lf = -1
        if self._prefix:
            self._frame_need = -1

    # -- input -----------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """
        Buffer bytes from the network.  Nothing is parsed until
        :meth:`next_frame` is called.
        """
        if self._batch is not None:
            self.settle()
        if self._skip_lf and data:
            # The last line ended in a CR at the very end of the previous
            # read; an LF right after it belongs to that terminator.  (Nothing
            # is buffered while this is pending, so decide before buffering.)
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        if not data:
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            if not self._held:
                self._buf = data
                self._pos = self._scan = 0
                self._cr = self._lf = -1
                return
            buf, pos = b"", 0
        keep = len(buf) - pos
        if keep > HOLD_THRESHOLD:
            # Move the scanned part of a long partial frame aside instead of
            # copying it into every new buffer.  In line modes keep the last
            # len(eol) - 1 bytes, which may be the start of a terminator.
            if self._record_length > 0 or self._prefix or not (self._single or self._eol):
                cut = len(buf)
            else:
                tail = 0 if self._single else len(self._eol) - 1
                cut = min(self._scan, len(buf) - tail)
            if cut > pos:
                piece = buf[pos:cut]
                if self._held is None:
                    self._held = [piece]
                else:
                    self._held.append(piece)
                self._held_len += len(piece)
                pos = cut
        self._scan = max(self._scan - pos, 0)
        self._buf = buf[pos:] + data
        self._pos = 0
        self._cr = self._lf = -1

    def receive_lines(self, data: bytes) -> list[bytes] | None:
        """
        :meth:`receive` and :meth:`split_lines` in one call, for the hot
        path: when nothing is buffered and ``data`` is complete lines in EOL
        mode (it ends with a terminator), buffer it and return those lines
        as a batch (the :meth:`split_lines` contract: take them from
        :attr:`batch`, then :meth:`finish_batch`) - once they are all taken,
        nothing is left buffered.  Otherwise just buffer it and return ``None``.
        """
        if (
            not self._lines_only
            or self._pos < len(self._buf)
            or self._batch is not None
            or self._held
        ):
            self.receive(data)
            return None
        eol = self._eol
        # How a read is cut is decided by the read before (a connection's
        # lines tend to stay short or long): short - bytes.split, with no
        # find before it; long - split_at, whose find-and-memchr cutting
        # also tells whether they still are.  The first long read after
        # short ones is cut by split, once.
        if self._long_lines:
            lines = split_at(data, eol)
            self._long_lines = len(lines[0]) >= LONG_LINE
        else:
            lines = data.split(eol)
            if len(lines[0]) >= LONG_LINE:
                self._long_lines = True
        if lines.pop() or len(lines) == 0:
            # (a read ending mid-line: split_lines() takes it, with its rest)
            self.receive(data)
            return None
        end = len(data)
        if end - len(eol) > self._limit and len(max(lines, key=len)) > self._limit:
            self.receive(data)
            return None
        self._buf = data
        self._cr = self._lf = -1
        self._batch = lines
        self.batch = iter(lines)
        self._batch_start = 0
        self._split_eol_len = len(eol)
        self._pos = self._scan = end
        return lines

    # -- output ----------------------------------------------------------------

    def next_frame(self) -> Frame | None:
        """
        The next complete frame under the current settings, or ``None`` when
        more bytes are needed.
        """
        if self._batch is not None:
            self.settle()
        if self._record_length > 0:
            return self._next_record()
        if self._prefix:
            return self._next_prefixed()
        if self._single:
            return self._next_single_line()
        eol = self._eol
        if not eol:
            return self._next_raw()
        # Fast path: a whole line inside the current buffer.
        buf = self._buf
        pos = self._pos
        found = buf.find(eol, self._scan)
        if found >= 0 and not self._held and found - pos <= self._limit:
            self._pos = self._scan = found + len(eol)
            return buf[pos:found], True
        return self._next_line(found, len(eol))

    def _next_line(self, found: int, eol_len: int) -> Frame | None:
        buf = self._buf
        pos = self._pos
        limit = self._limit
        if found >= 0:
            length = self._held_len + found - pos
            if length <= limit:
                frame = self._take(length)
                self._pos += eol_len
                self._scan = self._pos
                return frame, True
            return self._take(limit), False
        # No terminator: remember how far we looked.
        self._scan = max(pos, len(buf) - eol_len + 1)
        if self._held_len + len(buf) - pos >= limit + eol_len:
            return self._take(limit), False
        return None

    def _next_single_line(self) -> Frame | None:
        buf = self._buf
        pos = self._pos
        start = self._scan
        cr = self._cr
        if cr < start:
            cr = buf.find(b"\r", start)
            self._cr = cr = len(buf) if cr < 0 else cr
        lf = self._lf
        if lf < start:
            lf = buf.find(b"\n", start)
            self._lf = lf = len(buf) if lf < 0 else lf
        found = min(cr, lf)
        limit = self._limit
        if found < len(buf):
            length = self._held_len + found - pos
            if length > limit:
                return self._take(limit), False
            frame = self._take(length)
            end = found + 1
            if buf[found] == _CR:
                if end < len(buf):
                    if buf[end] == _LF:
                        end += 1
                else:
                    self._skip_lf = True
            self._pos = self._scan = end
            return frame, True
        self._scan = len(buf)
        if self._held_len + len(buf) - pos > limit:
            return self._take(limit), False
        return None

    def _next_record(self) -> Frame | None:
        size = self._record_length
        if self._held_len + len(self._buf) - self._pos < size:
            return None
        frame = self._take(size)
        self._scan = self._pos
        return frame, True

    def _next_prefixed(self) -> Frame | None:
        available = self._held_len + len(self._buf) - self._pos
        if self._skip:
            drop = min(available, self._skip)
            self._take(drop)
            self._skip -= drop
            self._scan = self._pos
            if self._skip:
                return None
            available -= drop
        size = self._prefix
        need = self._frame_need
        if need < 0:
            if available < size:
                return None
            if self._held:
                header = b"".join(self._held)[:size]
                if len(header) < size:
                    header += self._buf[self._pos : self._pos + size - len(header)]
            else:
                header = self._buf[self._pos : self._pos + size]
            length = int.from_bytes(header, self._prefix_order) + self._prefix_adjust  # type: ignore[arg-type]
            if length < 0 or length > self._max_frame:
                skip = self._skip_too_long and length >= 0
                if skip:
                    self._take(size)
                    self._skip = length
                    self._scan = self._pos
                raise FrameTooLongError(length, self._max_frame, skip)
            need = self._frame_need = size + length
        if available < need:
            return None
        self._frame_need = -1
        frame = self._take(need)
        self._scan = self._pos
        return (frame[size:] if self._prefix_strip else frame), True

    def encode_prefixed(self, payload: bytes) -> bytes:
        """``payload`` with this framer's length prefix in front (``send_frame``)."""
        size = self._prefix
        if not size:
            raise ValueError("this connection has no length prefix set")
        value = len(payload) - self._prefix_adjust
        try:
            header = value.to_bytes(size, self._prefix_order)  # type: ignore[arg-type]
        except OverflowError:
            raise ValueError(
                f"a frame of {len(payload)} bytes does not fit a {size}-byte length prefix"
            ) from None
        return header + payload

    def _next_raw(self) -> Frame | None:
        available = self._held_len + len(self._buf) - self._pos
        if not available:
            return None
        frame = self._take(available)
        self._scan = self._pos
        return frame, True

    def _take(self, count: int) -> bytes:
        """Remove and return the first ``count`` unconsumed bytes."""
        buf = self._buf
        pos = self._pos
        if not self._held:
            self._pos = pos + count
            if self._scan < self._pos:
                self._scan = self._pos
            return buf[pos : pos + count]
        head = b"".join(self._held)
        self._held = None
        self._held_len = 0
        if count <= len(head):
            # Rare: an over-long line cut inside the held part.  Put the rest
            # back in front of the buffer; it will be searched again.
            self._buf = head[count:] + buf[pos:]
            self._pos = self._scan = 0
            self._cr = self._lf = -1
            return head[:count]
        end = pos + count - len(head)
        self._pos = end
        if self._scan < end:
            self._scan = end
        return head + buf[pos:end]

    def split_lines(self) -> list[bytes] | None:
        """
        Fast path: every complete line in the buffer at once, in EOL mode.

        Returns ``None`` when the fast path does not apply (another mode, a
        long held partial line, a line longer than ``max_line_length``): use
        :meth:`next_frame` then.  Returns ``[]`` when there is no complete
        frame to deliver now (at most the start of a line is buffered).
        Otherwise the consumer delivers the lines in order by taking them
        from :attr:`batch`, and calls :meth:`settle` when it stops early
        (after a listener paused, went async...) or finishes.  Any framer
        call made meanwhile - a framing change, :meth:`flush` - first settles
        the position just after the line being delivered and ends the
        iteration, so changes still apply to the very next byte.
        """
        eol = self._eol
        if not eol or self._record_length > 0 or self._prefix or self._single or self._held:
            return None
        if self._batch is not None:
            self.settle()
        buf = self._buf
        pos = self._pos
        if buf.find(eol, self._scan) < 0:
            size = len(buf)
            if size - pos >= self._limit + len(eol):
                return None  # an over-long line: next_frame() cuts it
            # remember how far we looked (a terminator may straddle the end)
            self._scan = max(pos, size - len(eol) + 1)
            return []
        # split() matches left to right like next_frame() (overlapping
        # terminators such as "||" in "|||" included); the last piece is the
        # unterminated rest
        lines = split_at(buf, eol, pos)
        rest = lines.pop()
        if len(max(lines, key=len)) > self._limit:
            return None
        self._batch = lines
        self.batch = iter(lines)
        self._batch_start = pos
        self._split_eol_len = len(eol)
        self._pos = self._scan = len(buf) - len(rest)
        return lines

    def settle(self) -> None:
        """
        End the current batch after the lines taken from :attr:`batch` (their
        count goes to :attr:`batch_done`); the rest is buffered again and the
        iteration ends.
        """
        lines = self._batch
        if lines is None:
            return
        self._batch = None
        iterator = self.batch
        self.batch_done = done = len(lines) - iterator.__length_hint__()  # type: ignore[attr-defined]
        if done < len(lines):
            consumed = sum(map(len, lines[:done])) + done * self._split_eol_len
            self._pos = self._scan = self._batch_start + consumed
            deque(iterator, 0)  # the consumer's loop stops after the current line
        self._cr = self._lf = -1

    def flush(self) -> bytes:
        """
        Remove and return every buffered byte, complete frames included (the
        connection is closing; call :meth:`next_frame` first to get those).
        """
        if self._batch is not None:
            self.settle()
        rest = b"".join([*(self._held or ()), self._buf[self._pos :]])
        self._buf = b""
        self._pos = self._scan = self._held_len = 0
        self._held = None
        self._cr = self._lf = -1
        self._skip_lf = False
        if hasattr(self, "_skip"):
            self._frame_need = -1
            self._skip = 0
        return rest
