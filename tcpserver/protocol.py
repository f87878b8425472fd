"""One connection: framing, event order, sending, flow control, idle timeout.

:class:`TCPServerProtocol` is built by
:class:`~tcpserver.factory.TCPServerFactory` for every accepted socket.  It
owns the connection's :class:`~tcpserver.framing.Framer`, its outgoing queue
and its place in the event order::

    connection_request -> connected -> ready_to_send -> data_in* -> disconnected

Listeners are called through the factory, which isolates their exceptions.
A listener that returns a Deferred or a coroutine holds back this
connection's later events (and stops reading from its socket) until it
completes; other connections are not affected.

:class:`Connection` is the public, per-connection view that
``server.connections[connection_id]`` returns.

Flow control (API.md "Sending and flow control"): this protocol is the
transport's streaming producer, so Twisted tells it when the kernel stops
taking bytes (on a plain TCP socket, where a read batch's answer is sent
at once when nothing is buffered, it registers when the transport first
has to buffer).  From then on sends wait in this protocol's own queue.  At
``SendQueueHighWater`` queued bytes it stops reading from the socket and
``ready_to_send`` turns False; below ``SendQueueLowWater`` reading resumes
and ``ready_to_send`` fires.  Past ``SendQueueLimit`` a send with
``timeout == 0`` raises 135 after queueing what fits (``bytes_sent``).
"""

from __future__ import annotations

import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import interfaces
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.tcp import Server as _TCPServer
from twisted.internet.unix import Server as _UNIXServer
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from tcpserver import errors
from tcpserver._files import FileStreamer
from tcpserver._proxy import ProxyHeaderReader, ProxyInfo
from tcpserver._tlssession import TLSSession
from tcpserver.connection import Connection
from tcpserver.errors import TCPServerError, code_for_failure
from tcpserver.events import Connected, DataIn, Disconnected, Error, ReadyToSend, SSLStatus
from tcpserver.framing import Framer, FrameTooLongError
from tcpserver.settings import SSLStartMode

if TYPE_CHECKING:
    from tcpserver.factory import TCPServerFactory

__all__ = ["Connection", "TCPServerProtocol"]

# Why reading from the socket is paused (a bit set; read while it is 0).
PAUSE_USER = 1  # pause_data()
PAUSE_FLOW = 2  # the send queue is above its high-water mark
PAUSE_ASYNC = 4  # an async listener of this connection has not finished
PAUSE_PENDING = 8  # connection_request / TLS handshake not decided yet

# Connection states.
NEW, REQUESTING, HANDSHAKING, OPEN, CLOSED, REFUSED = range(6)
# accepted and not closed: sends are taken (queued while TLS starts)
_SENDABLE = (HANDSHAKING, OPEN)

#: Corked writes are passed to the transport once they reach this size,
#: even in the middle of a read batch.
CORK_LIMIT = 64 * 1024

# Transports whose socket _write() may send on directly (exact types: a
# wrapper such as TLS or HAProxy must see every byte).
_DIRECT_TRANSPORTS = (_TCPServer, _UNIXServer)


def _as_bytes(data: object, what: str) -> bytes:
    if type(data) is bytes:
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TCPServerError(
        errors.INVALID_ARGUMENT,
        f"{what} takes bytes, not {type(data).__name__}: {data!r:.60}",
    )


@implementer(IPushProducer, IHalfCloseableProtocol)
class TCPServerProtocol(Protocol, TimeoutMixin):
    """
    The protocol of one accepted connection.

    Not created directly: :meth:`TCPServerFactory.buildProtocol` makes one
    per connection with the server's current defaults.
    """

    _log = Logger()

    # Slots keep an idle connection small; "transport", "connected", "factory"
    # and TimeoutMixin's attributes live here too (shadowing class defaults).
    __slots__ = (
        "_TimeoutMixin__timeoutCall",
        "_abort_call",
        "_accepted_total",
        "_admitted",
        "_advancing",
        "_busy",
        "_close_called",
        "_close_status",
        "_closing",
        "_cork",
        "_cork_len",
        "_corked",
        "_data_ok",
        "_direct",
        "_disconnect_fired",
        "_eof",
        "_fast",
        "_files",
        "_flushed",
        "_flushed_mark",
        "_framer",
        "_handed_total",
        "_holding",
        "_lost",
        "_parked",
        "_parked_len",
        "_profile",
        "_proxy_info",
        "_queue",
        "_queue_len",
        "_raw_hook",
        "_read_pauses",
        "_rx_total",
        "_send_timer",
        "_send_timer_period",
        "_sink",
        "_state",
        "_steps",
        "_tls",
        "_tls_boundary",
        "_tls_error_reported",
        "_tls_reading",
        "_tx_paused",
        "_waiters",
        "_was_open",
        "_watch",
        "bytes_sent",
        "connected",
        "connection_id",
        "factory",
        "idle_timeout",
        "ready_to_send",
        "remote_host",
        "remote_port",
        "send_timeout",
        "timeOut",
        "transport",
        "user_data",
    )

    factory: TCPServerFactory

    def __init__(self, factory: TCPServerFactory, addr: IAddress | None) -> None:
        self.factory = factory
        self.transport = None
        self.connected = 0
        self.timeOut = None
        self._TimeoutMixin__timeoutCall = None
        self.connection_id = ""
        self._profile = profile = factory._connection_profile()
        self._framer: Framer | None = None  # made when the first byte arrives (see framer)
        self.remote_host = ""
        self.remote_port = 0
        self.idle_timeout: float = profile.idle_timeout
        self.send_timeout: float = profile.send_timeout
        self.user_data: Any = None
        self.bytes_sent = 0
        self.ready_to_send = False

        self._state = NEW
        self._admitted: str | None = None  # the address admission control counts it under
        self._proxy_info: ProxyInfo | None = None  # what a PROXY header said
        self._read_pauses = 0
        self._data_ok = False  # frames may be delivered now
        self._busy: Deferred[Any] | None = None  # an async listener in flight
        # events waiting for _busy (deques are made when first needed: an
        # empty deque costs more than an idle connection's whole budget)
        self._steps: deque[tuple[str, Any]] | None = None
        self._advancing = False
        self._lost: Failure | None = None
        self._eof = False  # the peer shut down its sending side
        self._flushed = False
        self._disconnect_fired = False
        self._close_status: tuple[int, str] | None = None
        self._closing = False  # disconnect() asked: no more sends
        self._close_called = False  # the transport was told to close
        self._abort_call: IDelayedCall | None = None
        self._rx_total = 0  # bytes read from the socket (ReadIdleTimeout)
        self._watch: _IdleWatch | None = None  # ReadIdleTimeout / WriteIdleTimeout

        # sending
        self._corked = False
        self._cork: list[bytes] | None = None  # writes gathered during a read batch
        self._cork_len = 0
        self._tx_paused = False  # the transport's buffer is full
        self._fast = False  # send() may hand bytes on directly (see _update_fast)
        self._queue: deque[bytes] | None = None
        self._queue_len = 0
        # bytes send() took, corked ones excepted: _uncork() adds those (see _emit)
        self._accepted_total = 0
        self._handed_total = 0
        self._flushed_mark = 0
        self._waiters: deque[tuple[int, Deferred[None]]] | None = None
        self._send_timer: IDelayedCall | None = None
        self._send_timer_period = 0.0
        self._parked: deque[tuple[bytes, Deferred[None]]] | None = None  # timed sends waiting
        self._parked_len = 0
        self._files: FileStreamer | None = None

        # TLS
        self._sink: Any = None  # where outgoing bytes go: the transport or the TLS engine
        # a plain TCP transport: a batch goes straight to its socket when the
        # transport's buffer is empty (see _write); a flag, not the bound
        # send method, which would cost an idle connection ~60 bytes
        self._direct = False
        self._raw_hook: Callable[[bytes], None] | None = None  # raw bytes go here instead
        self._tls: TLSSession | None = None
        # Output accepted while TLS is being set up is held here until the
        # handshake (and the client-certificate check) is done: only bytes
        # accepted before TLS started (the first _tls_boundary) go out, in
        # plaintext.  Nothing reaches an unauthenticated peer.
        self._holding = False
        self._tls_boundary = 0
        # The TLS handshake must read whatever else holds reading back
        # (flow control, pause_data, an async listener): see _reading_blocked.
        self._tls_reading = False
        self._was_open = False  # connected has fired
        self._tls_error_reported = False

    # -- Twisted's IProtocol ---------------------------------------------------

    @override
    def connectionMade(self) -> None:
        transport: Any = self.transport
        direct = type(transport) in _DIRECT_TRANSPORTS
        client: Any = transport.client if type(transport) is _TCPServer else None
        host: str
        port: int
        if type(client) is tuple and len(client) == 2:
            host, port = client  # IPv4 accept() address: no IPv4Address to build
        else:
            peer = transport.getPeer()
            if type(peer) is IPv4Address:
                host, port = peer.host, peer.port
            else:
                host = _plain_address(str(getattr(peer, "host", "") or ""))
                port = int(getattr(peer, "port", 0) or 0)
        self.remote_host = host
        self.remote_port = port
        self._sink = transport
        factory = self.factory
        if direct:
            # We become its producer when it first buffers something (_write).
            self._direct = True
            if self._profile.quick_open and factory._quiet_open:
                self._open_at_once()
                return
        else:
            # every stream transport is a consumer (duck-typed: no adapter lookup)
            transport.registerProducer(self, True)
        factory._pending.add(self)
        if self._profile.proxy_protocol:
            ProxyHeaderReader(self).start()  # the real peer comes in the header
        elif factory._open_access and not factory._listeners["connection_request"]:
            self._decided(True)  # nobody to ask
        else:
            self._peer_known(host, port)

    def _open_at_once(self) -> None:
        """
        The common accept, in one step: a plain socket, nothing to decide,
        set up or tell (``quick_open`` and the factory's ``_quiet_open``).
        What :meth:`_decided` and :meth:`_established` would do comes to this.
        """
        self.factory._register(self)
        if self._profile.tcp_nodelay:
            self._set_nodelay()
        self._state = OPEN
        self._was_open = True
        self.ready_to_send = self._profile.high_water > 0
        self._data_ok = True
        self._fast = True

    def _set_nodelay(self) -> None:
        """TCP_NODELAY on a plain TCP socket: what setTcpNoDelay does, without the calls."""
        try:
            self.transport.socket.setsockopt(  # type: ignore[union-attr]
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
            )
        except OSError:
            self._apply_socket_options()  # (it logs why)

    @property
    def framer(self) -> Framer:
        """
        This connection's framer.  An idle connection has none: it is made,
        from the settings in force at accept, when the first byte arrives or
        a framing property is read or set.
        """
        framer = self._framer
        if framer is None:
            profile = self._profile
            framer = self._framer = Framer(
                profile.eol, profile.max_line_length, profile.single_line_mode
            )
            prefix = profile.length_prefix
            if prefix is not None and prefix[0]:
                size, order, adjust, strip, limit, skip = prefix
                framer.set_length_prefix(size, order, adjust, strip, limit, skip)
        return framer

    def _input_buffered(self) -> bool:
        """Whether received bytes wait in the framer."""
        framer = self._framer
        return framer is not None and (framer._pos < len(framer._buf) or bool(framer._held))

    @property
    def local_address(self) -> str:
        """The local IP address the connection came in on."""
        host = self.transport.getHost() if self.transport is not None else None
        return _plain_address(str(getattr(host, "host", "") or ""))

    def _peer_known(self, host: str, port: int) -> Deferred[None] | None:
        """
        The real peer is known: ask ``connection_request`` listeners.

        :returns: a Deferred if they decide asynchronously (it fires after
            the decision took effect), else ``None`` (decided already).
        """
        self.remote_host, self.remote_port = host, port
        factory = self.factory
        if factory._admission.active and not factory._admit(self, host):
            self._refuse_now()
            return None
        self._state = REQUESTING
        decision = factory._request_connection(self, host, port)
        if isinstance(decision, Deferred):
            self._pause_reading(PAUSE_PENDING)
            return decision.addCallback(self._decided)
        self._decided(decision)
        return None

    def _refuse_now(self) -> None:
        """Close a connection that is not accepted (no events)."""
        self._state = REFUSED
        if self.transport is not None:
            self.transport.loseConnection()

    def _decided(self, accept: bool) -> None:
        if self._read_pauses:
            self._resume_reading(PAUSE_PENDING)
        if self._lost is not None:
            self._state = REFUSED
            return
        if not accept:
            self._state = REFUSED
            assert self.transport is not None
            self.transport.loseConnection()
            return
        self.factory._pending.discard(self)
        self.factory._register(self)
        profile = self._profile
        if profile.keep_alive or profile.extra_socket_options:
            self._apply_socket_options()
        elif profile.tcp_nodelay:
            if self._direct:
                self._set_nodelay()
            else:
                self._apply_socket_options()
        if self.idle_timeout:
            self.setTimeout(self.idle_timeout)
        mode = profile.ssl_start_mode
        if mode == SSLStartMode.IMPLICIT:
            self._state = HANDSHAKING
            self._begin_tls(self._accepted_total + self._cork_len)
        elif mode == SSLStartMode.AUTOMATIC:
            # Plaintext or TLS is not known until the first byte: hold output
            # meanwhile (a TLS client must not get plaintext).
            self._state = HANDSHAKING
            self._hold_output(self._accepted_total + self._cork_len)
            self._raw_hook = self._sniff
        else:  # NONE, or EXPLICIT (plaintext until start_ssl)
            self._established()

    def _established(self) -> None:
        """Plaintext accepted (or TLS handshake done): the connection is open."""
        self._state = OPEN
        if not self._was_open:
            profile = self._profile
            if profile.read_idle or profile.write_idle:
                self._start_idle_watch(profile.read_idle, profile.write_idle)
        self._was_open = True
        # (output held during a TLS handshake may already fill the queue)
        self.ready_to_send = not self._parked and (
            self._queue_len + self._cork_len < self._profile.high_water
        )
        self._data_ok = not (self._read_pauses & PAUSE_USER) or self._lost is not None
        # (_update_fast(), inlined: the state is OPEN)
        self._fast = (
            self._lost is None
            and not self._closing
            and not self._queue_len
            and not self._tx_paused
            and not self._parked
            and not self._holding
        )
        listeners = self.factory._listeners
        connected = listeners["connected"]
        ready = listeners["ready_to_send"]
        if connected or ready:
            # No data_in before connected and ready_to_send have been
            # dispatched, even if a connected listener calls process_data().
            self._advancing = True
            try:
                if connected:
                    self._fire("connected", Connected(self.connection_id))
                # a send in connected may already have hit 135
                if self.ready_to_send and ready:
                    self._fire("ready_to_send", ReadyToSend(self.connection_id))
            finally:
                self._advancing = False
        if self._framer is not None or self._steps or self._eof or self._lost is not None:
            self._advance()

    def _update_fast(self) -> None:
        """
        Recompute whether send() may hand bytes straight on.  Anything that
        queues, pauses, closes or holds output sets ``_fast`` False itself;
        this turns it back on when every condition allows.
        """
        self._fast = (
            self._state in _SENDABLE
            and self._lost is None
            and not self._closing
            and not self._queue_len
            and not self._tx_paused
            and not self._parked
            and not self._holding
        )

    @override
    def dataReceived(self, data: bytes, decrypted: bool = False) -> None:
        """
        Bytes from the transport, or (``decrypted``) the connection's stream
        from the TLS engine.  The plaintext path is written out here, not in
        a helper: it runs once per read.
        """
        if not decrypted:
            self._rx_total += len(data)  # (the factory sums these: bytes_received)
            if self._TimeoutMixin__timeoutCall is not None:
                self.resetTimeout()
            hook = self._raw_hook
            if hook is not None:
                hook(data)  # TLS (or its detection) sees the raw bytes first
                return
        framer = self._framer
        if framer is None:
            framer = self.framer
        if self._busy is not None or not self._data_ok:
            framer.receive(data)
            return
        self._corked = True
        try:
            if self._advancing or self._steps:
                framer.receive(data)
                self._advance()
                return
            # The hot path: whole lines on an idle buffer, delivered at once.
            lines = framer.receive_lines(data)
            self._advancing = True
            try:
                if lines is not None:
                    self._deliver_lines(lines)
                    if not (
                        framer._pos < len(framer._buf)
                        or self._steps
                        or self._busy is not None
                        or self._eof
                        or self._lost is not None
                    ):
                        return  # nothing else to do (the common case)
                self._advance_loop()
            finally:
                self._advancing = False
        finally:
            self._corked = False
            if self._cork:
                self._uncork()

    def _plaintext_received(self, data: bytes) -> None:
        """The connection's stream (decrypted when TLS is on)."""
        self.dataReceived(data, True)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        tls = self._tls
        if tls is not None:
            if tls.forward_loss(reason):
                return  # the TLS engine reports back through _connection_lost
        elif (
            self._state == OPEN
            and self._lost is None
            and type(reason.value) is ConnectionDone
            and self._busy is None
            and not self._advancing
            and not self._steps
            and self._raw_hook is None
            and self._TimeoutMixin__timeoutCall is None
            and self._watch is None
            and self._abort_call is None
            and self._send_timer is None
            and not self._waiters
            and not self._parked
            and self._files is None
            and not self._input_buffered()
            and not self.factory._listeners["disconnected"]
        ):
            # The common end of a plaintext connection, as _connection_lost
            # would do it: a clean close with nothing left to deliver, no
            # timer to stop, no waiter to fail and nobody to tell.
            self._lost = reason
            self._fast = False
            self._accepted_total += self._cork_len
            self._cork = self._queue = None
            self._cork_len = self._queue_len = 0
            if self._close_status is None:
                self._close_status = (0, "OK")
            self._flushed = self._disconnect_fired = True
            self._data_ok = False
            self.factory._connection_lost(self)
            self._closed()
            return
        self._connection_lost(reason)

    def _connection_lost(self, reason: Failure) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self._fast = False
        if self._TimeoutMixin__timeoutCall is not None:
            self.setTimeout(None)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        watch = self._watch
        if watch is not None:
            self._watch = None
            if watch.call.active():
                watch.call.cancel()
        reader = getattr(self._raw_hook, "__self__", None)
        if isinstance(reader, ProxyHeaderReader):
            reader._stop_timer()  # (left before its PROXY header came)
        self._accepted_total += self._cork_len
        self._cork = None
        self._cork_len = 0
        self.factory._connection_lost(self)
        if self._close_status is None:
            self._close_status = code_for_failure(reason)
            if self._state == HANDSHAKING and self._tls is not None:
                self._close_status = self._tls_loss_status(*self._close_status)
        code, description = self._close_status
        tls = self._tls
        if tls is not None:
            tls._cancel_timer()
            if tls.waiters:  # start_ssl() callers still waiting
                tls.fail_waiters(
                    TCPServerError(code, description)
                    if code
                    else TCPServerError(
                        errors.HANDSHAKE_ERROR,
                        f"{errors.description_for(errors.HANDSHAKE_ERROR)} The connection "
                        "closed before the TLS handshake finished",
                    )
                )
        if self._waiters or self._parked or self._send_timer is not None:
            if code == 0:
                # A clean close means Twisted flushed everything it was handed.
                self._flushed_mark = self._handed_total
                self._progress()
                code = errors.CANNOT_SEND_AFTER_SHUTDOWN
                description = errors.description_for(code)
            self._fail_waiters(TCPServerError(code, description))
        if self._files is not None:
            self._files.stop(TCPServerError(code, f"send_file stopped: {description}"))
        # Release what can no longer be sent, even if the application keeps
        # its Connection object.
        self._queue = None
        self._queue_len = 0
        if self._state in (NEW, REQUESTING, REFUSED):
            return  # never accepted: no disconnected event
        if self._state == HANDSHAKING:
            if code and code != errors.CANNOT_SEND_AFTER_SHUTDOWN and not self._tls_error_reported:
                # the handshake failed, or the peer left in the middle of it
                self._tls_error_reported = True
                self.factory.stats["tls_failures"] += 1
                self._log.info(
                    "TLS failed on connection {cid} from {peer}: {description}",
                    cid=self.connection_id,
                    peer=self.remote_host,
                    description=description,
                )
                self.factory._dispatch("error", Error(self.connection_id, code, description))
            if not self._was_open:
                # TLS never came up: like a refused connection, no
                # disconnected (the error event told what happened)
                self._state = CLOSED
                self.factory._unregister(self)
                return
            self._state = OPEN  # STARTTLS failed: the connection had been open
        framer = self._framer
        if (
            self._state == OPEN
            and self._busy is None
            and not self._steps
            and not self._advancing
            and (framer is None or not (framer._pos < len(framer._buf) or framer._held))
            and not self.factory._listeners["disconnected"]
        ):
            # The common end: nothing left to deliver and nobody to tell.
            self._flushed = self._disconnect_fired = True
            self._data_ok = False
            self._closed()
            return
        self._refresh()
        self._advance()

    def _tls_loss_status(self, code: int, description: str) -> tuple[int, str]:
        """
        The close status of a connection lost before TLS came up.  A peer
        that leaves (even cleanly) once it has started a handshake, or in
        the middle of a STARTTLS, failed the handshake: the application is
        told with a 276.  Our own close, or a clean close before the
        ClientHello (a health check), stays as it is.
        """
        tls = self._tls
        assert tls is not None
        if code or self._close_called or not (tls.hello_seen or self._was_open):
            return code, description
        return (
            errors.HANDSHAKE_ERROR,
            f"{errors.description_for(errors.HANDSHAKE_ERROR)} The peer closed the "
            "connection during the TLS handshake",
        )

    def readConnectionLost(self) -> None:
        """
        The peer half-closed (sent FIN): deliver what it sent, let listeners
        answer, then close gracefully once the answers are written.  The idle
        timeout keeps running, so a peer that never reads the answers is
        still reaped.
        """
        if self._eof:
            return  # Twisted repeats this when reading resumes
        self._eof = True
        transport: Any = self.transport
        if self._state == HANDSHAKING and transport is not None:
            # A peer that stopped sending can no longer start or finish a TLS
            # handshake: close now rather than at the handshake timeout (a
            # health check that half-closes gets its EOF at once).
            transport.loseConnection()
            return
        if (
            type(transport) is _TCPServer
            and self._state == OPEN
            and self._busy is None
            and not self._steps
            and not self._advancing
            and self._tls is None
            and not self._queue_len
            and not self._parked
            and (self._files is None or not self._files.busy)
            and not self._input_buffered()
            and not transport.disconnecting
            and not transport.dataBuffer
            and not transport._tempDataLen
        ):
            # Nothing to deliver, nothing to answer: close now, as Twisted
            # does for a protocol that does not take half-closes, instead of
            # a loseConnection() that takes another round of the reactor.
            # (Its connectionLost stops reading and writing.)
            transport.connectionLost(connectionDone)
            return
        self._advance()

    def writeConnectionLost(self) -> None:
        """Our sending side is shut; nothing to do."""

    # -- TLS --------------------------------------------------------------------

    def _sniff(self, data: bytes) -> None:
        """SSLStartMode.AUTOMATIC: a TLS record (0x16) starts TLS, anything else is plaintext."""
        if data[:1] == b"\x16":
            # what was sent before this byte goes out encrypted, after the handshake
            self._begin_tls(self._tls_boundary)
            assert self._tls is not None
            self._tls.data(data)
        else:
            self._raw_hook = None
            self._established()
            self._release_output()
            if self._lost is None:
                self._plaintext_received(data)

    def _hold_output(self, boundary: int) -> None:
        """From now on only the first ``boundary`` accepted bytes go out (see __init__)."""
        if self._cork:
            self._uncork()
        self._holding = True
        self._fast = False
        self._tls_boundary = boundary
        self._set_tls_reading(True)

    def _release_output(self) -> None:
        """TLS is up (or AUTOMATIC found plaintext): held output may go."""
        self._holding = False
        self._set_tls_reading(False)
        if self._lost is not None:
            return
        if self._queue or self._parked:
            self._drain()
        else:
            self._update_fast()
        if self._files is not None and self._files.busy and not self._tx_paused:
            self._files.pull()
        if self._closing and not self._close_called:
            self._close_when_sent()

    def _begin_tls(self, boundary: int) -> None:
        """Start TLS: the first ``boundary`` accepted bytes still go out in plaintext."""
        self._hold_output(boundary)
        self._tls = TLSSession(self)
        self._raw_hook = self._tls.data
        self._tls.start()

    def _maybe_start_engine(self) -> None:
        """Start the TLS engine once its certificate is chosen and the plaintext is out."""
        tls = self._tls
        if tls is None or not tls.ready or self._lost is not None or self._close_called:
            return
        if self._handed_total < self._tls_boundary:
            return  # _drain() calls again when the plaintext has been handed over
        # Output stays held until the handshake is done (_tls_up).
        if self._direct:
            self._direct = False
            transport: Any = self.transport
            if transport.producer is None:
                transport.registerProducer(self, True)
        self._sink = tls.start_engine()

    def _tls_up(self) -> None:
        """Handshake (and client-certificate check) done."""
        self.factory.stats["tls_handshakes"] += 1
        self._established()
        self._release_output()

    def _tls_failed(self, code: int, description: str) -> None:
        self._tls_error_reported = True
        self.factory.stats["tls_failures"] += 1
        self._log.info(
            "TLS failed on connection {cid} from {peer}: {description}",
            cid=self.connection_id,
            peer=self.remote_host,
            description=description,
        )
        self._close_status = (code, description)
        if self._tls is not None:
            self._tls.fail_waiters(TCPServerError(code, description))
        self.factory._dispatch("error", Error(self.connection_id, code, description))
        self._close(abort=True)

    def _hold_reading_for_tls(self, hold: bool) -> None:
        """An async ssl_* listener is deciding: stop reading meanwhile."""
        if hold:
            self._pause_reading(PAUSE_PENDING)
        else:
            self._resume_reading(PAUSE_PENDING)

    def _ssl_status(self, message: str) -> None:
        if self.factory._listeners["ssl_status"]:
            self.factory._dispatch("ssl_status", SSLStatus(self.connection_id, message))

    def start_ssl(self) -> Deferred[None]:
        """
        Start TLS on this plaintext connection (STARTTLS).  Bytes received
        before and not yet delivered are discarded - they were sent in
        plaintext and must not be taken as protected - and reported with an
        ``error`` event (902).  ``connected`` fires again after the handshake.

        :returns: a Deferred that fires when the handshake is done, or fails
            with the reason it failed.
        :raises TCPServerError: 126 if the connection is closed; 10045 if
            ``ssl_start_mode`` is NONE; 10022 if TLS is already on.
        """
        self._check_open("start_ssl")
        if self._tls is not None or self._state != OPEN:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"start_ssl: TLS is already on for connection {self.connection_id!r}",
            )
        if self.factory._settings["SSLStartMode"] == SSLStartMode.NONE:
            raise TCPServerError(
                errors.NOT_SUPPORTED,
                "start_ssl: set ssl_start_mode to EXPLICIT (or AUTOMATIC) first",
            )
        if self._closing:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"start_ssl: connection {self.connection_id!r} is closing",
            )
        if self._files is not None and self._files.busy:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"start_ssl: a send_file is still in progress on connection "
                f"{self.connection_id!r}; start TLS once its Deferred has fired",
            )
        discarded = self.framer.flush()
        self._state = HANDSHAKING
        self._refresh()
        # Timed sends waiting for room were made before start_ssl(): they
        # belong to the plaintext part, whatever the queue limit says.
        self._admit_parked(force=True)
        self._begin_tls(self._accepted_total + self._cork_len)
        assert self._tls is not None
        waiting: Deferred[None] = Deferred()
        self._tls.waiters.append(waiting)
        if discarded:
            text = (
                f"{errors.description_for(errors.DISCARDED_PLAINTEXT)} {len(discarded)} "
                "bytes received before start_ssl() were not delivered"
            )
            self._log.info("connection {cid}: {text}", cid=self.connection_id, text=text)
            self.factory._dispatch(
                "error", Error(self.connection_id, errors.DISCARDED_PLAINTEXT, text)
            )
        return waiting

    @property
    def _clock(self) -> IReactorTime:
        """The reactor's clock (the factory's; a ``task.Clock`` in tests)."""
        return self.factory.reactor

    @property
    def connection(self) -> Connection:
        """The public view of this connection (made on demand)."""
        return Connection(self)

    @property
    def tls_active(self) -> bool:
        """Whether TLS is up on this connection."""
        return self._tls is not None and self._tls.up

    @property
    def is_connected(self) -> bool:
        """``connected`` has fired and the connection has not closed."""
        return self._was_open and self._lost is None and self._state != CLOSED

    # -- event order -----------------------------------------------------------

    def _refresh(self) -> None:
        self._data_ok = ok = self._state == OPEN and (
            not (self._read_pauses & PAUSE_USER) or self._lost is not None
        )
        if not ok:
            self._end_batch()

    def _end_batch(self) -> None:
        """
        A listener did something that ends the read batch being delivered
        (it paused, went async, queued an event, or the listeners changed):
        the lines after the current one go back to the framer, for
        :meth:`_advance` to deliver when it may.
        """
        framer = self._framer
        if framer is not None and framer._batch is not None:
            framer.settle()

    def _fire(self, name: str, event: Any) -> None:
        """Fire a connection event now, or after the async listener in flight."""
        if self._busy is not None or self._steps:
            if self._steps is None:
                self._steps = deque()
            self._steps.append((name, event))
            self._end_batch()
            return
        waiting = self.factory._dispatch(name, event)
        if waiting is not None:
            self._wait(waiting)

    def _wait(self, waiting: Deferred[Any]) -> None:
        self._busy = waiting
        self._end_batch()
        self._pause_reading(PAUSE_ASYNC)
        waiting.addBoth(self._unblock)

    def _unblock(self, result: object) -> None:
        self._busy = None
        self._resume_reading(PAUSE_ASYNC)
        self._advance()

    def _advance(self) -> None:
        """Deliver queued events and buffered frames, in order, while we can."""
        if self._advancing:
            return
        self._advancing = True
        try:
            self._advance_loop()
        finally:
            self._advancing = False

    def _advance_loop(self) -> None:
        factory = self.factory
        framer = self._framer  # None: nothing was ever received
        while self._busy is None:
            steps = self._steps
            if steps:
                name, event = steps.popleft()
                waiting = factory._dispatch(name, event)
                if waiting is not None:
                    self._wait(waiting)
                continue
            # (an empty buffer is the common case: skip asking the framer)
            if (
                self._data_ok
                and framer is not None
                and (framer._pos < len(framer._buf) or framer._held)
            ):
                lines = framer.split_lines()
                if lines:
                    self._deliver_lines(lines)
                    continue
                if lines is None:
                    try:
                        frame = framer.next_frame()
                    except FrameTooLongError as exc:
                        if self._frame_too_long(exc):
                            continue
                        self._data_ok = False
                        framer.flush()
                        continue
                    if frame is not None:
                        self._deliver(frame[0], frame[1])
                        continue
            if self._state != OPEN or (self._lost is None and not self._eof):
                return
            if self._lost is None and self._read_pauses & PAUSE_USER:
                return  # half-closed but paused: wait for process_data()
            if not self._flushed:
                # Nothing received is lost: what never completed a line comes
                # out as a last data_in with eol=False.
                self._flushed = True
                if framer is not None and (framer._pos < len(framer._buf) or framer._held):
                    rest = framer.flush()
                    if rest:
                        self._deliver(rest, False)
                continue
            if self._lost is None:
                # Input is over and every listener has finished: close once
                # the queued answers are written.
                if not self._closing:
                    self._closing = True
                    self._fast = False
                    self._close_when_sent()
                return
            if not self._disconnect_fired:
                self._disconnect_fired = True
                if factory._listeners["disconnected"]:
                    code, description = self._close_status or (0, "OK")
                    waiting = factory._dispatch(
                        "disconnected", Disconnected(self.connection_id, code, description)
                    )
                    if waiting is not None:
                        self._wait(waiting)
                continue
            self._closed()
            return

    def _closed(self) -> None:
        """The end: every event delivered, the connection forgotten."""
        self._state = CLOSED
        self.ready_to_send = False
        self.factory._unregister(self)

    def _deliver_lines(self, lines: list[bytes]) -> None:
        """
        The hot path: complete lines split in one go, taken from the
        framer's batch.  Whatever must stop the batch after the current line
        (a framing change, a pause, an async listener, a queued event, a
        listener added or removed) settles the framer, which ends the
        iteration and buffers the undelivered lines again: nothing is
        checked per line here.
        """
        factory = self.factory
        framer = self._framer
        assert framer is not None  # lines came from it
        batch = framer._batch_iter
        connection_id = self.connection_id
        listeners = factory._data_in_listeners
        single = listeners[0] if len(listeners) == 1 else None
        delivering = factory._delivering
        delivering.append(self)  # (on() and off() end the batch)
        try:
            if single is not None:
                new = object.__new__
                for line in batch:
                    # DataIn(connection_id, line, True) without the call of
                    # its generated __init__ (a third of an event's cost)
                    event = new(DataIn)
                    event.connection_id = connection_id
                    event.text = line
                    event.eol = True
                    try:
                        result = single(event)
                    except Exception:  # noqa: BLE001 - isolate the listener
                        factory._listener_failed(Failure(), "data_in", single, event)
                        result = None
                    if result is not None:
                        waiting = factory._result_deferred(result, "data_in", single, event)
                        if waiting is not None:
                            self._wait(waiting)
            else:
                for line in batch:
                    if listeners:
                        waiting = factory._call_listeners(
                            "data_in", listeners, DataIn(connection_id, line, True)
                        )
                        if waiting is not None:
                            self._wait(waiting)
        except BaseException:
            framer.settle()  # (KeyboardInterrupt...) the undelivered lines stay buffered
            raise
        finally:
            delivering.pop()
        if framer._batch is lines:
            framer._batch = None  # all delivered: the position is already right
            done = len(lines)
        else:
            done = framer.batch_done  # settled early
        if single is not None:
            factory._data_in_batched += done

    def _deliver(self, text: bytes, eol: bool) -> None:
        factory = self.factory
        listeners = factory._data_in_listeners
        if not listeners:
            return
        waiting = factory._call_listeners(
            "data_in", listeners, DataIn(self.connection_id, text, eol)
        )
        if waiting is not None:
            self._wait(waiting)

    # -- reading ---------------------------------------------------------------

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
        was_blocked = self._reading_blocked()
        self._read_pauses |= reason
        if not was_blocked and self._reading_blocked():
            self._transport_reading(False)

    def _transport_reading(self, on: bool) -> None:
        transport: Any = self.transport
        if self._lost is None and transport is not None:
            if on:
                transport.resumeProducing()
            else:
                transport.pauseProducing()

    def _resume_reading(self, reason: int) -> None:
        if not self._read_pauses & reason:
            return
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

    @property
    def accept_data(self) -> bool:
        """Whether ``data_in`` may fire (not paused by :meth:`pause_data`)."""
        return not self._read_pauses & PAUSE_USER

    # -- idle timeout (TimeoutMixin) ---------------------------------------------

    def set_idle_timeout(self, seconds: float) -> None:
        """Change this connection's idle timeout (0: none); restarts the clock."""
        self.idle_timeout = seconds
        if self._state == OPEN and self._lost is None:
            self.setTimeout(seconds or None)

    @override
    def callLater(self, period: float, func: Callable[[], object]) -> IDelayedCall:
        """TimeoutMixin's clock: the factory's reactor (a ``task.Clock`` in tests)."""
        return self._clock.callLater(period, func)

    @override
    def timeoutConnection(self) -> None:
        self._log.info(
            "closing idle connection {cid} from {peer} after {seconds}s",
            cid=self.connection_id,
            peer=self.remote_host,
            seconds=self.idle_timeout,
        )
        self._timed_out(
            errors.TIMED_OUT, errors.description_for(errors.TIMED_OUT), self.idle_timeout
        )

    def _timed_out(self, code: int, description: str, period: float) -> None:
        """
        Close for a timeout with its own status: gracefully, escalating to an
        abort after CloseGracePeriod (or the timeout's own period) if the
        peer does not finish the close.
        """
        self._close_status = (code, description)
        # Nothing moved for a whole period: if output is stuck (or a graceful
        # close is already waiting on it), waiting longer will not help.
        stuck = self._output_pending() or self._tx_paused or self._close_called
        self._close(abort=stuck)
        if not stuck and self._lost is None and self._abort_call is None:
            # A FIN the peer never acknowledges must not keep us forever.
            grace = self._profile.close_grace or max(period, 1.0)
            self._abort_call = self._clock.callLater(grace, self._close, True)

    def _start_idle_watch(self, read_idle: float, write_idle: float) -> None:
        now = self._clock.seconds()
        step = max(min(t for t in (read_idle, write_idle) if t) / 4, 0.05)
        watch = _IdleWatch(read_idle, write_idle, step, self._rx_total, self._handed_total, now)
        watch.call = self._clock.callLater(step, self._idle_tick)
        self._watch = watch

    def _idle_tick(self) -> None:
        """Every quarter timeout: has anything been read / sent since?"""
        watch = self._watch
        if watch is None or self._lost is not None:
            return
        now = self._clock.seconds()
        if self._rx_total != watch.rx:
            watch.rx, watch.rx_at = self._rx_total, now
        if self._handed_total != watch.tx:
            watch.tx, watch.tx_at = self._handed_total, now
        if watch.read_idle and now - watch.rx_at >= watch.read_idle:
            self._watch = None
            self._idle_close(errors.READ_IDLE, "received nothing", watch.read_idle)
            return
        if watch.write_idle and now - watch.tx_at >= watch.write_idle:
            self._watch = None
            self._idle_close(errors.WRITE_IDLE, "sent nothing", watch.write_idle)
            return
        watch.call = self._clock.callLater(watch.step, self._idle_tick)

    def _idle_close(self, code: int, what: str, seconds: float) -> None:
        self._log.info(
            "closing connection {cid} from {peer}: {what} for {seconds}s",
            cid=self.connection_id,
            peer=self.remote_host,
            what=what,
            seconds=seconds,
        )
        self._timed_out(code, errors.description_for(code), seconds)

    def _grace_expired(self) -> None:
        """CloseGracePeriod passed and the connection is still not gone: reset it."""
        self._abort_call = None
        if self._lost is not None:
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

    # -- sending -----------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._state not in _SENDABLE or self._lost is not None:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closed",
            )

    def _check_delivering(self, what: str) -> None:
        """Framing controls work until ``disconnected``: buffered data may still be
        on its way to listeners after the socket closed."""
        if self._state not in _SENDABLE:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closed",
            )

    @property
    def queued(self) -> int:
        """Outgoing bytes held here, not yet handed to the transport."""
        return self._queue_len + self._cork_len

    def send(self, data: object, what: str = "send") -> Deferred[None] | None:
        """
        Queue ``data`` for sending.

        :returns: ``None`` when ``timeout == 0``.  Otherwise a Deferred that
            fires once the bytes have been handed to Twisted and Twisted has
            not pushed back (its buffer is below its limit), or fails with
            10060 after ``timeout`` seconds without progress.
        :raises TCPServerError: 126 if the connection is closed; 135 if the
            queue is full and ``timeout == 0`` (``bytes_sent`` tells how many
            bytes of ``data`` were queued), or - with ``timeout > 0`` - if
            another ``SendQueueLimit`` bytes already wait for room.
        """
        if self._fast and type(data) is bytes:
            # the hot path: nothing queued, nothing in the way
            size = len(data)
            self.bytes_sent = size
            if self._corked:
                cork = self._cork
                if cork is None:
                    self._cork = [data]
                else:
                    cork.append(data)
                self._cork_len += size
                if self._cork_len >= CORK_LIMIT:
                    self._uncork()
            else:
                self._accepted_total += size
                self._write(data)
                self._handed(size)
            if self.send_timeout:
                return self._timed_result()
            return None
        return self._send_slow(_as_bytes(data, what), what)

    def _send_slow(self, data: bytes, what: str) -> Deferred[None] | None:
        if self._state not in _SENDABLE or self._lost is not None or self._closing:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: connection {self.connection_id!r} is closed",
            )
        size = len(data)
        timeout = self.send_timeout
        if not self._queue_len and not self._tx_paused and not self._parked and not self._holding:
            self.bytes_sent = size
            self._emit(data)
        elif not timeout:
            room = (
                0 if self._parked else self._profile.queue_limit - self._queue_len - self._cork_len
            )
            if room < size:
                accepted = max(room, 0)
                if accepted:
                    self._enqueue(data[:accepted])
                self.bytes_sent = accepted
                self._not_ready()
                raise TCPServerError(
                    errors.WOULD_BLOCK,
                    f"{errors.description_for(errors.WOULD_BLOCK)} The send queue of "
                    f"connection {self.connection_id!r} is full: {accepted} of {size} "
                    "bytes queued; wait for ready_to_send",
                )
            self._enqueue(data)
            self.bytes_sent = size
        elif self._parked or not self._has_room(size):
            return self._park(data)
        else:
            self._enqueue(data)
            self.bytes_sent = size
        if not timeout:
            return None
        return self._timed_result()

    def _timed_result(self) -> Deferred[None]:
        """The Deferred of a timed send that was just accepted."""
        accepted = self._accepted_total + self._cork_len
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
        return not self._queue_len or self._queue_len + size <= self._profile.queue_limit

    def _park(self, data: bytes) -> Deferred[None]:
        """
        Hold a timed send until the queue has room for all of it.  Parked
        bytes are not sent at all if their timeout expires, so a caller that
        retries never sends them twice.
        """
        if self._parked_len + len(data) > self._profile.queue_limit and self._parked:
            self.bytes_sent = 0
            raise TCPServerError(
                errors.WOULD_BLOCK,
                f"{errors.description_for(errors.WOULD_BLOCK)} {self._parked_len} bytes "
                f"of earlier sends already wait for room on connection "
                f"{self.connection_id!r}; await them before sending more",
            )
        waiter: Deferred[None] = Deferred()
        if self._parked is None:
            self._parked = deque()
        self._parked.append((data, waiter))
        self._parked_len += len(data)
        self._fast = False
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
            self._waiters.append((self._accepted_total + self._cork_len, waiter))

    def _output_pending(self) -> bool:
        """Whether anything still waits to be handed to the transport."""
        # (corked bytes are not pending: _close() flushes them first)
        return bool(
            self._queue_len or self._parked or (self._files is not None and self._files.busy)
        )

    def _emit(self, data: bytes) -> None:
        """
        Hand accepted bytes to the transport (gathered per read batch when
        corked).  Accounting: ``_accepted_total`` counts every byte send()
        took except those still corked, which ``_cork_len`` counts until
        :meth:`_uncork` moves them over - so the per-line send path updates
        one counter, not two.  Where the full count matters (a waiter's mark,
        the TLS boundary) it is ``_accepted_total + _cork_len``.
        """
        if self._corked:
            if self._cork is None:
                self._cork = [data]
            else:
                self._cork.append(data)
            self._cork_len += len(data)
            if self._cork_len >= CORK_LIMIT:
                self._uncork()
        else:
            self._accepted_total += len(data)
            self._write(data)
            self._handed(len(data))

    def _write(self, data: bytes) -> None:
        """
        Hand *data* to the sink.  On a plain TCP transport with nothing
        buffered it is sent at once: Twisted's ``write`` would buffer it,
        register the socket for writing and send it on the next reactor turn
        (two ``epoll_ctl`` calls and a dispatch per read batch).  What the
        kernel does not take, and every error, goes through ``write`` as
        usual, so ordering, flow control and connection loss are Twisted's.
        """
        if self._direct:
            sink = self._sink
            if (
                sink.connected
                and not sink._tempDataLen
                and not sink.dataBuffer
                and not sink.disconnecting
                and not sink._writeDisconnecting
                and not sink._aborting
            ):
                try:
                    sent = sink.socket.send(data)
                except OSError:  # EAGAIN, or an error write() will report
                    sent = 0
                if sent == len(data):
                    return
                if sent:
                    data = data[sent:]
            if sink.producer is None:
                # From now on the transport's buffer may fill: have it pause us.
                sink.registerProducer(self, True)
        self._sink.write(data)

    def _uncork(self) -> None:
        cork = self._cork
        size = self._cork_len
        self._cork = None
        self._cork_len = 0
        self._accepted_total += size
        if cork and self._lost is None:
            # One write of the joined batch: Twisted's writeSequence checks
            # and appends every piece, and joins them again before sending.
            self._write(cork[0] if len(cork) == 1 else b"".join(cork))
            # (_handed, inlined: once per read batch)
            self._handed_total += size
            if not self._tx_paused:
                self._flushed_mark = self._handed_total
            if self.idle_timeout or self._waiters or self._parked:
                self._progress()

    def _handed(self, size: int) -> None:
        self._handed_total += size
        if not self._tx_paused:
            self._flushed_mark = self._handed_total
        self._progress()

    def _enqueue(self, data: bytes) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._queue_len += len(data)
        self._accepted_total += len(data)
        self._fast = False
        if self._queue_len + self._cork_len >= self._profile.high_water:
            self._not_ready()

    def _not_ready(self) -> None:
        if self.ready_to_send:
            self.ready_to_send = False
        if (
            self._queue_len + self._cork_len >= self._profile.high_water
            and not self._read_pauses & PAUSE_FLOW
        ):
            self.factory.stats["flow_pauses"] += 1
            self._pause_reading(PAUSE_FLOW)

    def _drain(self) -> None:
        """Move queued bytes to the transport until it is full again."""
        queue = self._queue
        moved = 0
        while self._lost is None and not self._tx_paused:
            if self._holding and self._handed_total + moved >= self._tls_boundary:
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
            self._write(chunk)
        if self._parked and not self._holding:
            self._admit_parked()
        if moved:
            self._handed(moved)
        self._update_fast()
        if self._holding:
            self._maybe_start_engine()
            return
        if self._queue_len > self._profile.low_water or self._parked or self._lost is not None:
            return
        if self._read_pauses & PAUSE_FLOW:
            self._resume_reading(PAUSE_FLOW)
        if self._closing:
            self._close_when_sent()
            return
        if not self.ready_to_send and self._state == OPEN:
            self.ready_to_send = True
            if self.factory._listeners["ready_to_send"]:
                self._fire("ready_to_send", ReadyToSend(self.connection_id))

    def _progress(self) -> None:
        """Bytes moved: fire finished timed sends, restart the timers."""
        if self.idle_timeout:
            self.resetTimeout()
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
            self._send_timer_period = self.send_timeout
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
                f"connection {self.connection_id!r} for {seconds}s; the bytes are "
                "queued and go out if the client reads again",
            )
        )
        for data, waiter in parked or ():
            waiter.errback(
                TCPServerError(
                    errors.TIMED_OUT,
                    f"{errors.description_for(errors.TIMED_OUT)} No send progress on "
                    f"connection {self.connection_id!r} for {seconds}s; these "
                    f"{len(data)} bytes were not sent",
                )
            )
        self._update_fast()
        if self._closing and not self._output_pending():
            self._close_when_sent()

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

    def pauseProducing(self) -> None:
        """The transport's buffer is full: queue further sends here."""
        self._tx_paused = True
        self._fast = False

    def resumeProducing(self) -> None:
        """The transport's buffer drained: pass it more of the queue."""
        self._tx_paused = False
        if self._flushed_mark < self._handed_total:
            self._flushed_mark = self._handed_total
            self._progress()
        self._drain()
        if self._files is not None and self._files.busy and not self._tx_paused:
            self._files.pull()

    def stopProducing(self) -> None:
        """The transport is going away; ``connectionLost`` cleans up."""

    # -- send_file (the FileStreamer pulls while we can take bytes) -------------

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
        if self._closing:
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"send_file: connection {self.connection_id!r} is closing",
            )
        if self._files is None:
            self._files = FileStreamer(self)
        return self._files.send(path)

    def _can_take_file_bytes(self) -> bool:
        return (
            not self._tx_paused and not self._queue_len and not self._holding and self._lost is None
        )

    def _file_bytes(self, data: bytes) -> None:
        """A chunk of a file being sent (FileStreamer)."""
        if self._lost is not None:
            return
        if not self._queue_len and not self._tx_paused and not self._parked and not self._holding:
            self._emit(data)
        else:
            self._enqueue(data)

    def _files_idle(self) -> None:
        """The file streamer has nothing more to start."""
        if self._closing:
            self._close_when_sent()

    def interrupt(self) -> None:
        """Stop the file being sent (and drop queued ones); the connection stays."""
        self._check_open("interrupt")
        files = self._files
        if files is not None:
            files.stop(TCPServerError(10004, f"send_file interrupted after {files.sent} bytes"))
        if self._closing:
            self._close_when_sent()

    # -- closing -----------------------------------------------------------------

    def disconnect(self) -> None:
        """
        Close the connection: gracefully once every queued byte and file has
        been sent when ``linger`` is True, at once with a reset when it is
        False.  Calling it again while closing does nothing.
        """
        if self._lost is not None or self._state in (CLOSED, REFUSED):
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"disconnect: connection {self.connection_id!r} is closed",
            )
        self._closing = True
        self._fast = False
        if not self._profile.linger:
            self._close(abort=True)
        else:
            self._close_when_sent()

    def _close_when_sent(self) -> None:
        """Close gracefully now if nothing is left to send (else _drain will)."""
        self._arm_close_grace()  # (queued data and files count against it too)
        if not self._output_pending():
            self._close(abort=False)

    def _arm_close_grace(self) -> None:
        grace = self._profile.close_grace
        if grace and self._abort_call is None and self._lost is None:
            self._abort_call = self._clock.callLater(grace, self._grace_expired)

    def _close(self, abort: bool) -> None:
        transport = self.transport
        if transport is None or self._lost is not None:
            return
        self._closing = True
        self._fast = False
        if self._close_called and not abort:
            return
        self._close_called = True
        if self._cork:
            self._uncork()
        sink: Any = self._sink if self._sink is not None else transport
        if abort:
            sink.abortConnection()
        else:
            # Twisted keeps a connection with a paused streaming producer open
            # until the producer unregisters; nothing more is sent now anyway.
            cast(Any, transport).unregisterProducer()
            sink.loseConnection()
            if sink is not transport:
                # TLS: our close_notify is on its way; a server need not wait
                # for the peer's (many clients never send one), so close TCP
                # once it is flushed.
                transport.loseConnection()
            self._arm_close_grace()

    # -- framing controls ------------------------------------------------------------

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
        """Length-prefixed frames from the next byte on (see the factory's method)."""
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

    def _frame_too_long(self, exc: FrameTooLongError) -> bool:
        """Report a too-long frame; ``True`` if the connection goes on (skipped)."""
        code = errors.FRAME_TOO_LONG
        skipped = exc.skip
        description = f"{errors.description_for(code)} Connection {self.connection_id!r}: {exc}" + (
            "; skipped" if skipped else "; closing"
        )
        self._log.info("{description}", description=description)
        self.factory._dispatch("error", Error(self.connection_id, code, description))
        if not skipped:
            self._close_status = (code, description)
            self._close(abort=True)  # the rest of the stream cannot be framed
        return skipped

    # -- socket options ----------------------------------------------------------------

    def _apply_socket_options(self) -> None:
        transport: Any = self.transport
        profile = self._profile
        try:
            if profile.tcp_nodelay and hasattr(transport, "setTcpNoDelay"):
                transport.setTcpNoDelay(True)
            if profile.keep_alive and hasattr(transport, "setTcpKeepAlive"):
                transport.setTcpKeepAlive(True)
            if not profile.extra_socket_options:
                return
            system = interfaces.ISystemHandle(transport, None)
            handle = system.getHandle() if system is not None else None
            if isinstance(handle, socket.socket):
                _apply_sockopts(handle, self.factory._settings, profile.linger)
        except OSError as exc:
            self._log.warn(
                "could not set socket options on {cid}: {error}",
                cid=self.connection_id,
                error=exc,
            )

    # -- read-outs -----------------------------------------------------------------

    def readout(self, name: str) -> str:
        """A per-connection ``SSLNegotiated*`` read-out (``""`` without TLS)."""
        return self._tls.readout(name) if self._tls is not None else ""


def _plain_address(host: str) -> str:
    """``::ffff:10.1.2.3`` (an IPv4 client of a dual-stack socket) -> ``10.1.2.3``."""
    if host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def _apply_sockopts(handle: socket.socket, settings: Any, linger: bool) -> None:
    """KeepAliveTime/Interval, In/OutBufferSize and Linger on one socket."""
    if settings["KeepAlive"]:
        idle = settings["KeepAliveTime"]
        interval = settings["KeepAliveInterval"]
        if idle and hasattr(socket, "TCP_KEEPIDLE"):
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, idle // 1000))
        if interval and hasattr(socket, "TCP_KEEPINTVL"):
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, interval // 1000))
    if settings["InBufferSize"]:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings["InBufferSize"])
    if settings["OutBufferSize"]:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings["OutBufferSize"])
    if not linger:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _IdleWatch:
    """ReadIdleTimeout / WriteIdleTimeout state of one connection (made only when set)."""

    __slots__ = ("call", "read_idle", "rx", "rx_at", "step", "tx", "tx_at", "write_idle")

    def __init__(
        self, read_idle: float, write_idle: float, step: float, rx: int, tx: int, now: float
    ) -> None:
        self.read_idle = read_idle
        self.write_idle = write_idle
        self.step = step
        self.rx, self.rx_at = rx, now
        self.tx, self.tx_at = tx, now
        self.call: Any = None
