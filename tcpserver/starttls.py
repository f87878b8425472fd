"""TLS on a connection: the connection's side of its :class:`~tcpserver._tlssession.TLSSession`.

:class:`ConnectionTLS` is the part of
:class:`~tcpserver.protocol.TCPServerProtocol` that starts TLS - at
accept (IMPLICIT), on a first byte of 0x16 (DETECT) or at
:meth:`~ConnectionTLS.start_ssl` (STARTTLS) - and answers the session
(the ``TLSOwner`` interface): output accepted before TLS started goes out in
plaintext and the rest is held (:meth:`Outbound.hold
<tcpserver.outbound.Outbound.hold>`) until the handshake and the client
certificate check are done; the engine takes over the socket once that
plaintext is out; a failure costs only this connection.  The handshake
itself - ClientHello, certificate choice, OpenSSL - is the session's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from tcpserver import errors
from tcpserver._tlssession import TLSSession
from tcpserver.errors import TCPServerError
from tcpserver.events import Connected, Error, SSLStatus
from tcpserver.lifecycle import (
    CLOSE_CALLED,
    DRAINING,
    ENDED,
    HANDSHAKING,
    INPUT_ENDED,
    OPEN,
    PAUSE_PENDING,
    UPGRADING,
    State,
)
from tcpserver.settings import SSLStartMode

if TYPE_CHECKING:
    from tcpserver._twisted import SocketTransport
    from tcpserver.delivery import Inbound
    from tcpserver.host import ConnectionHost
    from tcpserver.outbound import Outbound

__all__ = ["ConnectionTLS"]


class ConnectionTLS:
    """The TLS part of a connection's protocol (see the module docstring)."""

    if not TYPE_CHECKING:  # (no instance dictionary; the names are the protocol's slots)
        __slots__ = ()

    _log: Logger

    if TYPE_CHECKING:  # what it uses of TCPServerProtocol
        factory: ConnectionHost
        connection_id: str
        remote_host: str
        outbound: Outbound | None
        _state: State
        _tls: TLSSession | None
        _in: Inbound | None
        _raw_hook: Callable[[bytes], None] | None
        _direct: SocketTransport | None
        _close_status: tuple[int, str] | None
        _tls_reading: bool

        def _move(self, new: State) -> None: ...
        def _established(self) -> None: ...
        def _set_tls_reading(self, on: bool) -> None: ...
        def _pause_reading(self, reason: int) -> None: ...
        def _resume_reading(self, reason: int) -> None: ...
        def _close(self, abort: bool) -> None: ...
        def _close_when_sent(self) -> None: ...
        def _start_opening(self) -> None: ...
        def _watch_handshake_idle(self, on: bool = True) -> None: ...
        def _check_open(self, what: str) -> None: ...
        def _check_not_closing(self, what: str) -> None: ...
        def plaintext_received(self, data: bytes) -> None: ...
        def out(self) -> Outbound: ...

    def _sniff(self, data: bytes) -> None:
        """SSLStartMode.DETECT: a TLS record (0x16) starts TLS, anything else is plaintext."""
        if data[:1] == b"\x16":
            self._begin_tls()  # (what was sent before this byte goes out encrypted)
            assert self._tls is not None
            self._tls.data(data)
            return
        self._raw_hook = None
        self._established()
        self._release_output()
        if self._state not in ENDED:
            self.plaintext_received(data)

    def send_through_engine(self, data: bytes) -> None:
        """The stream's bytes into the running TLS engine (see ``writer``)."""
        tls = self._tls
        assert tls is not None  # (see writer: the engine runs)
        assert tls.engine is not None
        tls.engine.write(data)

    def _drop_tls(self) -> None:
        """
        CLOSED: let go of the TLS session, which lets go of its engine - each
        refers back to the connection (see ``_forget``: no reference cycles).
        """
        tls = self._tls
        assert tls is not None
        self._tls = None
        self._tls_reading = False
        tls.release()

    def _hold_output(self) -> None:
        """From now on only the bytes accepted so far go out (until _release_output)."""
        self.out().hold()
        self._set_tls_reading(True)

    def _release_output(self) -> None:
        """TLS is up (or DETECT found plaintext): held output may go."""
        self._set_tls_reading(False)
        self.out().release()
        if self._state is DRAINING:
            self._close_when_sent()

    def _begin_tls(self) -> None:
        """Start TLS: what was accepted before still goes out in plaintext."""
        self._hold_output()
        tls = self._tls = TLSSession(self)  # type: ignore[arg-type]  # (a TCPServerProtocol)
        self._raw_hook = tls.data
        self._watch_handshake_idle()
        tls.start()

    @property
    def closing_or_gone(self) -> bool:
        """The transport was told to close, or has gone."""
        return self._state in CLOSE_CALLED or self._state in ENDED

    def hold_reached(self) -> None:
        """OutboundOwner: the plaintext before TLS has been handed on: the engine may start."""
        self.maybe_start_engine()

    def maybe_start_engine(self) -> None:
        """Start the TLS engine once its certificate is chosen and the plaintext is out."""
        tls = self._tls
        if tls is None or not tls.ready or self.closing_or_gone:
            return
        if not self.out().boundary_reached:
            return  # hold_reached() calls again when the plaintext has been handed on
        # Output stays held until the handshake is done (tls_up).
        direct = self._direct
        if direct is not None and direct.producer is None:
            direct.registerProducer(self, True)
        tls.start_engine()
        self.out().reroute()  # (from now on the stream's bytes go through the engine)
        self._raw_hook = tls.reader()  # (the engine itself, unless records are traced)

    def tls_up(self) -> None:
        """Handshake (and client-certificate check) done."""
        self.factory.counters["tls_handshakes"] += 1
        if self._state is not HANDSHAKING and self._state is not UPGRADING:
            return  # closed meanwhile
        self._established()
        if not self.out().taking_sends:
            self._move(DRAINING)  # disconnect() was called during the handshake
        self._release_output()

    def tls_failed(self, code: int, description: str) -> None:
        """Give up on TLS: ``connected`` and ``error`` with the reason, then a reset."""
        self._report_tls_failure(code, description)
        self._close_status = (code, description)
        if self._tls is not None:
            self._tls.fail_waiters(TCPServerError(code, description))
        self._close(abort=True)

    def _report_tls_failure(self, code: int, description: str) -> None:
        tls = self._tls
        if tls is not None:
            if tls.reported:
                return
            tls.reported = True
        self.factory.counters["tls_failures"] += 1
        self._log.info(
            "TLS failed on connection {cid} from {peer}: {description}",
            cid=self.connection_id,
            peer=self.remote_host,
            description=description,
        )
        # The manual's Connected "fires immediately after a connection
        # completes (or fails)": the failure's code, then the error event.
        dispatcher = self.factory.dispatcher
        dispatcher.dispatch("connected", Connected(self.connection_id, code, description))
        dispatcher.dispatch("error", Error(self.connection_id, code, description))

    def hold_reading_for_tls(self, hold: bool) -> None:
        """An async ssl_* listener is deciding: stop reading meanwhile."""
        if hold:
            self._pause_reading(PAUSE_PENDING)
        else:
            self._resume_reading(PAUSE_PENDING)

    def ssl_status(self, message: str) -> None:
        """Fire ``ssl_status`` (if anyone listens)."""
        dispatcher = self.factory.dispatcher
        if dispatcher.listeners["ssl_status"]:
            dispatcher.dispatch("ssl_status", SSLStatus(self.connection_id, message))

    def _tls_loss_status(self, code: int, description: str) -> tuple[int, str]:
        """
        The close status of a connection lost before TLS came up.  A peer
        that leaves (even cleanly) once it has started a handshake, or in
        the middle of a STARTTLS, failed the handshake: the application is
        told with a 276.  Our own close, or a clean close before the
        ClientHello (a health check), stays as it is.  A reset before the
        client's first byte (a health check that closes with RST) keeps its
        10054 but, like the clean close, is no TLS failure: nothing to report.
        """
        tls = self._tls
        assert tls is not None
        started = tls.hello_seen or self._state is UPGRADING
        if code == errors.CONNECTION_RESET and not started and self._state not in CLOSE_CALLED:
            tls.reported = True  # (so tls_lost fires no error, counts and logs nothing)
        if code or self._state in CLOSE_CALLED or not started:
            return code, description
        return (
            errors.HANDSHAKE_ERROR,
            f"{errors.description_for(errors.HANDSHAKE_ERROR)} The peer closed the "
            "connection during the TLS handshake",
        )

    def start_ssl(self) -> Deferred[None]:
        """
        Start TLS on this plaintext connection (STARTTLS).  Bytes received
        before and not yet delivered are discarded - they were sent in
        plaintext and must not be taken as protected - and reported with an
        ``error`` event (902).  ``connected`` fires again after the handshake.

        :returns: a Deferred that fires when the handshake is done, or fails
            with the reason it failed.
        :raises TCPServerError: 126 if the connection is closed or closing;
            10058 if the peer has half-closed (it can send no handshake);
            10045 if ``ssl_start_mode`` is NONE; 10022 if TLS is already on.
        """
        self._check_open("start_ssl")
        if self._tls is not None or self._state not in (OPEN, INPUT_ENDED, DRAINING):
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"start_ssl: TLS is already on for connection {self.connection_id!r}",
            )
        if self.factory.settings["SSLStartMode"] == SSLStartMode.NONE:
            raise TCPServerError(
                errors.NOT_SUPPORTED,
                "start_ssl: set ssl_start_mode to EXPLICIT (or DETECT) first",
            )
        self._check_not_closing("start_ssl")
        if self._state is INPUT_ENDED:
            # The peer sent its FIN: it can send no handshake, and a
            # connection waiting for one would wait for ever.
            raise TCPServerError(
                errors.CANNOT_SEND_AFTER_SHUTDOWN,
                f"start_ssl: the peer of connection {self.connection_id!r} has closed its "
                "sending side (half-close): no TLS handshake can follow",
            )
        if self.outbound is not None and self.outbound.sending_file:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"start_ssl: a send_file is still in progress on connection "
                f"{self.connection_id!r}; start TLS once its Deferred has fired",
            )
        discarded = self._in.take_rest() if self._in is not None else b""
        self._move(UPGRADING)
        self._start_opening()  # (HandshakeTimeout counts from here)
        self._begin_tls()
        assert self._tls is not None
        waiting: Deferred[None] = Deferred()
        self._tls.waiters.append(waiting)
        if discarded:
            text = (
                f"{errors.description_for(errors.DISCARDED_PLAINTEXT)} {len(discarded)} "
                "bytes received before start_ssl() were not delivered"
            )
            self._log.info("connection {cid}: {text}", cid=self.connection_id, text=text)
            self.factory.dispatcher.dispatch(
                "error", Error(self.connection_id, errors.DISCARDED_PLAINTEXT, text)
            )
        return waiting

    @property
    def tls_active(self) -> bool:
        """Whether TLS is up on this connection."""
        return self._tls is not None and self._tls.up

    def readout(self, name: str) -> str:
        """A per-connection ``SSLNegotiated*`` read-out (``""`` without TLS)."""
        return self._tls.readout(name) if self._tls is not None else ""
