"""What the application may do to one connection: the manual's per-connection methods.

:class:`ConnectionControls` is the part of
:class:`~tcpserver.protocol.TCPServerProtocol` that decides whether its
socket is read - a bit set of reasons (``pause_data``, flow control, an
async listener, a pending decision; a TLS handshake reads whatever holds
the application data back) - and that implements ``send*``,
``send_file``, ``interrupt``, ``disconnect``, ``pause_data``,
``process_data``, ``change_record_length``, ``change_length_prefix`` and
the per-connection read-outs.  The factory and the server expose each with
the connection id first (:mod:`tcpserver.delegates`).  Each checks the
connection's state first - 126 for a connection that is closed (or, for
sending, closing) - then asks the part that owns the rule: the
:class:`~tcpserver.outbound.Outbound` for sending, the framer for framing,
the protocol's lifecycle for closing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.events import Error
from tcpserver.lifecycle import (
    CLOSING,
    DRAINING,
    ENDED,
    FAREWELL,
    HANDSHAKING,
    INPUT_ENDED,
    LOST,
    NEW,
    OPEN,
    PAUSE_FLOW,
    PAUSE_PENDING,
    PAUSE_USER,
    REFUSED,
    REQUESTING,
    SENDABLE,
    UPGRADING,
    State,
)
from tcpserver.sockopts import peer_address

if TYPE_CHECKING:
    from twisted.logger import Logger

    from tcpserver._twisted import StreamTransport
    from tcpserver.clocks import OpeningWatch
    from tcpserver.framing import Framer, FrameTooLongError
    from tcpserver.host import ConnectionHost
    from tcpserver.outbound import Outbound
    from tcpserver.profile import ConnectionProfile

__all__ = ["ADDRESSABLE", "CONNECTED", "LOST_STATES", "ConnectionControls"]

#: the transport has gone; events are still being delivered
LOST_STATES = frozenset({LOST, FAREWELL})
#: ``connected`` fired and the transport is still there
CONNECTED = frozenset({OPEN, UPGRADING, INPUT_ENDED, DRAINING, CLOSING})
#: registered: framing controls work until ``disconnected``
ADDRESSABLE = frozenset(
    {HANDSHAKING, OPEN, UPGRADING, INPUT_ENDED, DRAINING, CLOSING, LOST, FAREWELL}
)


class ConnectionControls:
    """The per-connection methods of a connection's protocol (see the module docstring)."""

    if not TYPE_CHECKING:  # (no instance dictionary; the names are the protocol's slots)
        __slots__ = ()

    if TYPE_CHECKING:  # what it uses of TCPServerProtocol
        factory: ConnectionHost
        connection_id: str
        transport: StreamTransport | None
        outbound: Outbound | None
        _state: State
        _profile: ConnectionProfile
        _read_pauses: int
        _tls_reading: bool
        _close_status: tuple[int, str] | None
        _log: Logger
        _opening: OpeningWatch | None
        _tx: tuple[int, int, float] | None

        @property
        def framer(self) -> Framer: ...
        def out(self) -> Outbound: ...
        def _move(self, new: State) -> None: ...
        def _refresh(self) -> None: ...
        def _advance(self) -> None: ...
        def _close(self, abort: bool) -> None: ...
        def _close_when_sent(self) -> None: ...

    # -- reading: why the socket is not read --------------------------------------------

    def _reading_blocked(self) -> bool:
        """
        Whether the transport should be paused.  During a TLS handshake only
        the handshake's own pause (an async ``ssl_*`` listener) counts: the
        handshake needs the peer's bytes whatever holds the application
        data back, and decrypted data waits in the framer meanwhile.
        """
        pauses = self._read_pauses
        if self._tls_reading:
            pauses &= PAUSE_PENDING
        return pauses != 0

    def _pause_reading(self, reason: int) -> None:
        if reason & PAUSE_PENDING and self._opening is not None:
            self._opening.hold(True)  # (the application decides: the opening's clocks wait)
        was_blocked = self._reading_blocked()
        self._read_pauses |= reason
        if not was_blocked and self._reading_blocked():
            self._transport_reading(False)

    def _resume_reading(self, reason: int) -> None:
        if not self._read_pauses & reason:
            return
        if reason & PAUSE_PENDING and self._opening is not None:
            self._opening.hold(False)
        was_blocked = self._reading_blocked()
        self._read_pauses &= ~reason
        if was_blocked and not self._reading_blocked():
            self._transport_reading(True)

    def _set_tls_reading(self, on: bool) -> None:
        if on == self._tls_reading:
            return
        was_blocked = self._reading_blocked()
        self._tls_reading = on
        blocked = self._reading_blocked()
        if blocked != was_blocked:
            self._transport_reading(not blocked)

    def _transport_reading(self, on: bool) -> None:
        transport = self.transport
        if transport is not None and self._state not in ENDED:
            if on:
                transport.resumeProducing()
            else:
                transport.pauseProducing()

    @property
    def reading_paused(self) -> bool:
        """Reading is paused by ``pause_data`` or flow control."""
        return bool(self._read_pauses & (PAUSE_USER | PAUSE_FLOW))

    # -- what the table asks (Entry) ----------------------------------------------------------

    @property
    def alive(self) -> bool:
        """The transport has not gone."""
        return self._state not in ENDED

    @property
    def bytes_handed(self) -> int:
        """Bytes handed to the socket (or to TLS)."""
        out = self.outbound
        if out is not None:
            return out.handed
        return self._tx[0] if self._tx is not None else 0  # (the parts rest)

    def shut_down(self) -> None:
        """Close: gracefully if it was open (queued data is sent first), else a reset."""
        if self._state in (OPEN, UPGRADING, INPUT_ENDED):
            self.disconnect()
        elif self._state not in CONNECTED:
            self._close(abort=True)

    def abort(self) -> None:
        """Reset the connection now."""
        self._close(abort=True)

    def frame_too_long(self, error: FrameTooLongError) -> bool:
        """Report a too-long frame; ``True`` if the connection goes on (skipped)."""
        code = errors.FRAME_TOO_LONG
        skipped = error.skip
        description = (
            f"{errors.description_for(code)} Connection {self.connection_id!r}: {error}"
            + ("; skipped" if skipped else "; closing")
        )
        self._log.info("{description}", description=description)
        self.factory.dispatcher.dispatch("error", Error(self.connection_id, code, description))
        if not skipped:
            self._close_status = (code, description)
            self._close(abort=True)  # the rest of the stream cannot be framed
        return skipped

    # -- read-outs (the Connection view) ---------------------------------------------------

    @property
    def is_connected(self) -> bool:
        """``connected`` has fired and the connection has not closed."""
        return self._state in CONNECTED

    @property
    def bytes_sent(self) -> int:
        """Bytes of the last send that were taken."""
        out = self.outbound
        if out is not None:
            return out.bytes_sent
        return self._tx[1] if self._tx is not None else 0  # (the parts rest)

    @property
    def ready_to_send(self) -> bool:
        """False after a 135 or above the high-water mark, until ``ready_to_send``."""
        out = self.outbound
        if out is not None:
            return out.ready
        # (no send yet: ready once open, as Outbound.open() would say)
        return (self._state is OPEN or self._state is INPUT_ENDED) and bool(
            self._profile.high_water
        )

    @property
    def send_timeout(self) -> float:
        """The send timeout (``Connection.timeout``)."""
        return self.outbound.timeout if self.outbound is not None else self._profile.send_timeout

    @send_timeout.setter
    def send_timeout(self, seconds: float) -> None:
        self.out().timeout = seconds

    @property
    def taking_sends(self) -> bool:
        """Whether sends are taken: accepted, and not closing."""
        out = self.outbound
        return out.taking_sends if out is not None else self._state in SENDABLE

    @property
    def queued(self) -> int:
        """Outgoing bytes held here, not yet handed to the transport."""
        return self.outbound.queued if self.outbound is not None else 0

    @property
    def local_address(self) -> str:
        """The local IP address the connection came in on."""
        host = self.transport.getHost() if self.transport is not None else None
        return peer_address(host)[0]

    @property
    def accept_data(self) -> bool:
        """Whether ``data_in`` may fire (not paused by :meth:`pause_data`)."""
        return not self._read_pauses & PAUSE_USER

    # -- the methods -------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        """:raises TCPServerError: 126 unless the connection is accepted and its transport there."""
        if self._state not in ADDRESSABLE or self._state in LOST_STATES:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closed",
            )

    def _check_not_closing(self, what: str) -> None:
        if not self.taking_sends:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closing",
            )

    def _check_delivering(self, what: str) -> None:
        """Framing controls work until ``disconnected``: buffered data may still be
        on its way to listeners after the socket closed."""
        if self._state not in ADDRESSABLE:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closed",
            )

    def send(self, data: bytes) -> Deferred[None] | None:
        """
        Send bytes.

        :returns: ``None`` when the connection's ``timeout`` is 0; otherwise a
            Deferred that fires when the bytes are written (10060 if no
            progress for ``timeout`` seconds).
        :raises TCPServerError: 126 unknown/closed id; 135 queue full (see
            ``Connection.bytes_sent``); 10022 if ``data`` is not bytes.
        """
        return self.out().send(data)

    def send_bytes(self, data: bytes) -> Deferred[None] | None:
        """Same as :meth:`send` (the manual has both names)."""
        return self.out().send_as(data, "send_bytes")

    def send_text(self, text: str) -> Deferred[None] | None:
        """Send ``text`` encoded with the ``CodePage`` setting (UTF-8 by default)."""
        return self.out().send_as(self._encode(text, "send_text"), "send_text")

    def send_line(self, text: str | bytes, eol: bytes | None = b"\r\n") -> Deferred[None] | None:
        """
        Send ``text`` followed by ``eol`` (``str`` is encoded with ``CodePage``).

        :param eol: CRLF by default (the manual's SendLine); ``None`` follows
            the connection's own EOL when it is one terminator (not
            ``single_line_mode``, not empty), else CRLF.
        :raises TCPServerError: 10022 if ``eol`` is not non-empty bytes.
        """
        data = text if isinstance(text, bytes) else self._encode(text, "send_line")
        if eol is None:
            framer = self.framer
            eol = framer.eol if framer.eol and not framer.single_line_mode else b"\r\n"
        elif not isinstance(eol, bytes) or not eol:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"send_line: eol must be non-empty bytes or None, got {eol!r}",
            )
        return self.out().send_as(data + eol, "send_line")

    def send_frame(self, data: bytes) -> Deferred[None] | None:
        """
        Send ``data`` with the connection's length prefix in front.

        :raises TCPServerError: 10022 if the connection has no length prefix
            or ``data`` does not fit it.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"send_frame: data must be bytes, got {type(data).__name__}",
            )
        try:
            framed = self.framer.encode_prefixed(bytes(data))
        except ValueError as exc:
            raise TCPServerError(errors.INVALID_ARGUMENT, f"send_frame: {exc}") from None
        return self.out().send_as(framed, "send_frame")

    def _encode(self, text: object, what: str) -> bytes:
        if not isinstance(text, str):
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{what} takes str, not {type(text).__name__}: {text!r:.60}",
            )
        codec = self.factory.codec
        try:
            return text.encode(codec)
        except UnicodeEncodeError as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{what}: {text!r:.60} cannot be encoded with code page "
                f"{self.factory.settings['CodePage']} ({codec}): {exc.reason}",
            ) from None

    def send_file(self, path: str) -> Deferred[int]:
        """
        Stream a regular file through the send queue without reading it
        whole; files sent while one is in progress follow it in order.

        :returns: a Deferred firing with the number of bytes sent; it fails
            with 10004 after :meth:`interrupt`, with the close status if the
            connection closes first, and with the OS error's code if reading
            fails.
        :raises TCPServerError: 126 if the connection is closed or closing;
            10022 if ``path`` is not a regular file; an OS error's code if it
            cannot be opened.
        """
        self._check_open("send_file")
        self._check_not_closing("send_file")
        return self.out().send_file(path)

    def interrupt(self) -> None:
        """Stop the file being sent (and drop queued ones); the connection stays."""
        self._check_open("interrupt")
        if self.outbound is not None:
            self.outbound.interrupt()
        if self._state is DRAINING:
            self._close_when_sent()

    def disconnect(self) -> None:
        """
        Close the connection: gracefully once every queued byte and file has
        been sent when ``linger`` is True, at once with a reset when it is
        False - either way a close the server asked for, which its
        ``disconnected`` reports as 0 "OK" (the manual's normal end).
        Calling it again while closing does nothing.
        """
        state = self._state
        if state in ENDED or state is REFUSED or state is NEW or state is REQUESTING:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"disconnect: connection {self.connection_id!r} is closed",
            )
        self.out().refuse_sends()
        if not self._profile.linger:
            if self._close_status is None:
                self._close_status = (0, "OK")  # (asked for: not a 10053 abort)
            self._close(abort=True)
            return
        if state is OPEN or state is INPUT_ENDED:
            self._move(DRAINING)
        # (during a TLS handshake, held output goes once it is done: tls_up)
        self._close_when_sent()

    def pause_data(self) -> None:
        """Stop ``data_in`` (and reading from the socket) until :meth:`process_data`."""
        self._check_delivering("pause_data")
        self._pause_reading(PAUSE_USER)
        self._refresh()

    def process_data(self) -> None:
        """Resume ``data_in`` after :meth:`pause_data`; buffered data follows at once."""
        self._check_delivering("process_data")
        self._resume_reading(PAUSE_USER)
        self._refresh()
        self._advance()

    def change_record_length(self, length: int) -> None:
        """Deliver fixed ``length``-byte records from the next byte on (0: off)."""
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"record length must be an integer >= 0, got {length!r}",
            )
        self._check_delivering("change_record_length")
        self.framer.record_length = length

    def change_length_prefix(
        self, size: int, byteorder: str = "big", adjust: int = 0, strip: bool = True
    ) -> None:
        """
        Receive length-prefixed frames from the next byte on: each starts
        with its length in ``size`` bytes (1, 2, 4 or 8; 0 turns it off),
        ``byteorder`` ``"big"`` or ``"little"``; the payload is ``length +
        adjust`` bytes; ``strip`` delivers it without the prefix.  Frames
        longer than ``MaxFrameLength`` fire ``error`` 907 and close the
        connection (or are skipped: ``SkipTooLongFrames``).

        :raises TCPServerError: 10022 for a bad size or byte order.
        """
        if isinstance(size, bool) or not isinstance(size, int):
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"length prefix size must be 0, 1, 2, 4 or 8, got {size!r}"
            )
        if isinstance(adjust, bool) or not isinstance(adjust, int):
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"adjust must be an integer, got {adjust!r}"
            )
        self._check_delivering("change_length_prefix")
        # the limits this connection was accepted with (as for its framer)
        accepted = self._profile.length_prefix
        limit, skip = (accepted[4], accepted[5]) if accepted is not None else (1 << 20, False)
        try:
            self.framer.set_length_prefix(size, byteorder, adjust, bool(strip), limit, skip)
        except ValueError as exc:
            raise TCPServerError(errors.INVALID_ARGUMENT, str(exc)) from None
