"""One connection: its lifecycle, and the Twisted glue between its parts.

:class:`TCPServerProtocol` is built by the factory for every accepted
socket.  It is the one owner of the connection's :class:`~tcpserver.lifecycle.State`
- every move goes through :meth:`TCPServerProtocol._move`, which checks it
against :data:`~tcpserver.lifecycle.MOVES` and recomputes the derived
delivery flags (:meth:`_refresh`, the only place they are computed) - and
it wires the parts that do the work:

* :class:`~tcpserver.delivery.Inbound` - read batches and the event order
  (made when the first byte or the first held-back event needs it);
* :class:`~tcpserver.outbound.Outbound` - cork, queue, timed sends, flow
  control (this protocol is its sink and the transport's producer);
* :class:`~tcpserver._tlssession.TLSSession` and
  :class:`~tcpserver._proxy.ProxyHeaderReader` - which see it only through
  their owner interfaces (``TLSOwner``, ``ProxyOwner``);
* :mod:`tcpserver._twisted` - the only reader of Twisted's transport
  internals (the direct socket send).

The fast paths are functions of the state: a plain socket opens in one step
when nobody needs asking or telling (:meth:`connectionMade`), and a clean
close ends in one step when :meth:`_can_end_now` (the one "close now"
decision) says nothing is left to deliver, stop, fail or tell.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    ILoggingContext,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from tcpserver import errors
from tcpserver._proxy import ProxyHeaderReader, ProxyInfo
from tcpserver._tlssession import TLSSession
from tcpserver._twisted import (
    SocketTransport,
    StreamTransport,
    close_at_once,
    direct_peer,
    nothing_buffered,
    send_direct,
    set_nodelay,
)
from tcpserver.clocks import Extras, OnExtras
from tcpserver.controls import ADDRESSABLE, LOST_STATES, ConnectionControls
from tcpserver.delivery import Inbound
from tcpserver.errors import code_for_failure
from tcpserver.events import Connected, Disconnected, ReadyToSend
from tcpserver.host import ConnectionHost
from tcpserver.lifecycle import (
    CLOSE_CALLED,
    CLOSED,
    CLOSING,
    DELIVERING,
    DRAINING,
    ENDED,
    FAREWELL,
    HANDSHAKING,
    INPUT_ENDED,
    LOST,
    MOVES,
    NEW,
    OPEN,
    PAUSE_ASYNC,
    PAUSE_FLOW,
    PAUSE_PENDING,
    PAUSE_USER,
    REFUSED,
    REQUESTING,
    SENDABLE,
    UPGRADING,
    WAS_OPEN,
    State,
    check_move,
)
from tcpserver.outbound import Outbound, Writer
from tcpserver.parts import REST_AFTER, ConnectionParts
from tcpserver.settings import SSLStartMode
from tcpserver.sockopts import apply_socket_options, peer_address
from tcpserver.starttls import ConnectionTLS
from tcpserver.timeouts import ConnectionTimeouts

__all__ = ["TCPServerProtocol"]

#: the input is over: when nothing is left to deliver, settled() decides what next
_ENDING = frozenset({INPUT_ENDED, LOST, FAREWELL})


@implementer(IProtocol, ILoggingContext, IPushProducer, IHalfCloseableProtocol)
class TCPServerProtocol(ConnectionControls, ConnectionTLS, ConnectionTimeouts, ConnectionParts):
    """
    The protocol of one accepted connection.

    Not created directly: the factory's ``buildProtocol`` makes one per
    connection with the settings in force (its profile).

    :ivar outbound: the connection's outgoing side (sends go here), or
        ``None`` until it is first needed (see :meth:`out`).
    :ivar rx_total: bytes read from the socket (encrypted under TLS).
    :ivar proxy_info: what a PROXY protocol header said, or ``None``.
    """

    _log = Logger()

    #: zope.interface asks every object it adapts for ``__conform__`` -
    #: Twisted adapts the protocol to ``IHalfCloseableProtocol`` at every
    #: FIN - and on a slotted object without one, that lookup raises and
    #: clears an AttributeError inside zope's C code each time: ``None``
    #: says "no conform", 0.45 -> 0.15 us per adaptation.
    __conform__ = None

    # Slots keep an idle connection small: no base has an instance
    # dictionary (that is why Twisted's ``Protocol`` is not one: its three
    # methods are below, and the idle timeout's TimeoutMixin is an object of
    # its own, see clocks.IdleTimer).
    __slots__ = (
        "_close_status",
        "_direct",
        "_in",
        "_profile",
        "_raw_hook",
        "_read_pauses",
        "_state",
        "_tls",
        "_tls_reading",
        "_tx",
        "connection_id",
        "extras",
        "factory",
        "outbound",
        "remote_host",
        "remote_port",
        "rx_total",
        "transport",
    )

    factory: ConnectionHost

    def __init__(self, factory: ConnectionHost, addr: IAddress | None) -> None:
        self.factory = factory
        self.transport = None
        self.connection_id = ""
        self._profile = factory.profile
        self.remote_host = ""
        self.remote_port = 0
        self.rx_total = 0  # (the table sums these: bytes_received)
        # (bytes handed on, the last send's bytes, when): kept while the parts rest
        self._tx: tuple[int, int, float] | None = None
        self._state = NEW
        self._in: Inbound | None = None  # made when first needed (see _inbound)
        # made on first use (see out()): an idle connection has none
        self.outbound: Outbound | None = None
        self._read_pauses = 0
        self._close_status: tuple[int, str] | None = None
        # timers, its own idle timeout, proxy_info, user_data: made when first set
        self.extras: Extras | None = None
        self._tls: TLSSession | None = None
        # raw bytes go here first (the PROXY header reader, TLS)
        self._raw_hook: Callable[[bytes], None] | None = None
        # a plain TCP/UNIX transport: bytes go straight to its socket when
        # nothing is buffered (see send_raw)
        self._direct: SocketTransport | None = None
        # The TLS handshake must read whatever else holds reading back
        # (flow control, pause_data, an async listener): see _reading_blocked.
        self._tls_reading = False

    # -- the lifecycle ---------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Where the connection is in its life."""
        return self._state

    def _move(self, new: State) -> None:
        """The one way the state changes (checked against the table, :func:`check_move`)."""
        if new not in MOVES[self._state]:
            check_move(self._state, new)  # (raises, naming both)
        self._state = new
        if self._in is not None:
            self._refresh()

    def _refresh(self) -> None:
        """Recompute the delivery flags: the only place they are computed."""
        inbound = self._in
        if inbound is None:
            return
        state = self._state
        inbound.ending = state in _ENDING
        deliver = state in DELIVERING and (
            not self._read_pauses & PAUSE_USER or state in LOST_STATES
        )
        if inbound.deliver and not deliver and inbound.delivering:
            inbound.end_batch()  # (a batch is only ever open while delivering)
        inbound.deliver = deliver

    def _can_end_now(self) -> bool:
        """
        The one "close now" decision: nothing to stop or fail (no hook, timer,
        waiter or file), nobody to tell (no ``disconnected`` listener) and
        nothing left to deliver - so the connection can end in one step.
        """
        out = self.outbound
        inbound = self._in
        return (
            not self.factory.dispatcher.listeners["disconnected"]
            and self._raw_hook is None
            and (self.extras is None or not self.extras.timers_running)
            and (out is None or out.idle)
            and (inbound is None or inbound.idle)
        )

    def check_invariants(self) -> None:
        """
        Raise AssertionError if the connection's parts disagree (the
        property tests call this after every step).
        """
        state = self._state
        out = self.outbound
        registered = self.factory.table.by_id.get(self.connection_id) is self
        assert registered == (state in ADDRESSABLE), (state, registered)
        if out is not None:
            if state in ENDED or state is REFUSED or state is DRAINING or state is CLOSING:
                assert not out.taking_sends, state
            if state is OPEN or state is INPUT_ENDED:
                assert out.taking_sends, state
            if state in ENDED:
                assert out.is_gone, state
        if self._in is not None:
            expected = state in DELIVERING and (
                not self._read_pauses & PAUSE_USER or state in LOST_STATES
            )
            assert self._in.deliver == expected, (state, self._in.deliver)
        if self._tls is None:
            assert not self._tls_reading
        if self._tx is not None:  # (the counts of parts at rest: none may be in use)
            assert out is None, out
            assert self._in is None, self._in

    # -- the seldom-set fields (see clocks.Extras, clocks.OnExtras) ------------------------

    def own_extras(self) -> Extras:
        """This connection's :class:`~tcpserver.clocks.Extras`, made now if it has none."""
        extras = self.extras
        if extras is None:
            extras = self.extras = Extras(self._profile.idle_timeout)
        return extras

    #: anything the application keeps with the connection
    user_data = OnExtras[Any]("user_data")
    #: what a PROXY protocol header said, or ``None``
    proxy_info = OnExtras[ProxyInfo]("proxy_info")

    # -- Twisted's IProtocol -----------------------------------------------------------------

    def makeConnection(self, transport: ITransport) -> None:
        """The transport is connected (as Twisted's ``BaseProtocol`` does it)."""
        # (every transport we serve is a StreamTransport - TCP, UNIX, TLS,
        # endpoints' wrappers; no cast() call: this runs once per accept)
        self.transport = transport  # type: ignore[assignment]
        self.connectionMade()

    @property
    def connected(self) -> int:
        """Twisted's ``BaseProtocol.connected``: 1 once the transport is connected."""
        return 0 if self.transport is None else 1

    def logPrefix(self) -> str:
        """What Twisted puts before what it logs for this connection."""
        return "tcpserver"

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None  # (makeConnection set it)
        direct, peer = direct_peer(transport)  # (accept()'s IPv4 spelling is canonical)
        if peer is None:
            peer = peer_address(transport.getPeer())
        self.remote_host, self.remote_port = peer
        factory = self.factory
        self._direct = direct
        if direct is None:
            # every stream transport is a consumer (duck-typed: no adapter lookup)
            transport.registerProducer(self, True)
        elif self._profile.quick_open and factory.quiet_open:
            # The common accept, in one step: a plain socket, nothing to
            # decide, set up or tell.  (We become the transport's producer
            # when it first buffers something: see write_out.)
            factory.table.register(self)
            if self._profile.tcp_nodelay:
                self._set_nodelay()
            self._move(OPEN)  # (sends are taken: see out())
            return
        self._move(REQUESTING)
        factory.table.add_pending(self)
        if self._profile.timed_opening:
            self._start_opening()  # HandshakeTimeout: the peer's part of opening is bounded
        if self._profile.proxy_protocol:
            profile = self._profile
            ProxyHeaderReader(
                self,
                factory.trusted_proxies.matches(self.remote_host),
                profile.proxy_detect,
                profile.proxy_timeout,
                factory.reactor,
            ).start()  # the real peer comes in the header
        else:
            self.peer_known(*peer)

    def peer_known(self, host: str, port: int) -> Deferred[None] | None:
        """
        The real peer is known: admission control, then ``connection_request``.

        :returns: a Deferred if listeners decide asynchronously (it fires
            after the decision took effect), else ``None`` (decided already).
        """
        self.remote_host, self.remote_port = host, port
        factory = self.factory
        if not factory.table.admit(self, host):
            self.refuse_now()
            return None
        decision = factory.request(host, port)
        if isinstance(decision, Deferred):
            self._pause_reading(PAUSE_PENDING)
            return decision.addCallback(self._decided)
        self._decided(decision)
        return None

    def refuse_now(self) -> None:
        """Close a connection that is not accepted (no events)."""
        self._move(REFUSED)
        if self.transport is not None:
            self.factory.turn.take(self)
            self.transport.loseConnection()

    def _decided(self, accept: bool) -> None:
        if self._read_pauses:
            self._resume_reading(PAUSE_PENDING)
        if self._state is not REQUESTING:
            return  # it left while connection_request decided
        if not accept:
            self.refuse_now()
            return
        self.factory.table.register(self)
        profile = self._profile
        if profile.tcp_nodelay:
            self._set_nodelay()
        if profile.keep_alive or profile.extra_socket_options:
            apply_socket_options(
                self.transport,
                self.factory.settings.view,
                False,
                profile.keep_alive,
                profile.extra_socket_options,
                profile.linger,
                self.connection_id,
            )
        if self.idle_timeout:
            self._set_idle_timer(self.idle_timeout)
        if self.outbound is not None:
            self.outbound.accept_sends()
        mode = profile.ssl_start_mode
        if mode == SSLStartMode.IMPLICIT:
            self._move(HANDSHAKING)
            self._begin_tls()
        elif mode == SSLStartMode.DETECT:
            # Plaintext or TLS is not known until the first byte: hold output
            # meanwhile (a TLS client must not get plaintext).
            self._move(HANDSHAKING)
            self._hold_output()
            self._raw_hook = self._sniff
            self._watch_handshake_idle()  # (the first byte is awaited, as a ClientHello is)
        else:  # NONE, or EXPLICIT (plaintext until start_ssl)
            self._established()

    def _set_nodelay(self) -> None:
        """
        TCP_NODELAY: nothing to do for a socket that came with it from its
        listening socket (``factory.nodelay_ports``); on the socket itself
        when it is a plain one, else through the transport.
        """
        direct = self._direct
        if direct is not None and direct.server in self.factory.nodelay_ports:
            return
        if direct is None or not set_nodelay(direct):
            apply_socket_options(
                self.transport,
                self.factory.settings.view,
                True,
                False,
                False,
                True,
                self.connection_id,
            )

    def _established(self) -> None:
        """Plaintext accepted (or a TLS handshake done): the connection is open."""
        self._end_opening()
        if self._state is not UPGRADING:  # (the first time)
            self._start_idle_watch()
        self._move(OPEN)
        out = self.outbound
        if out is not None:
            out.open()  # (output held during a TLS handshake may already fill the queue)
        listeners = self.factory.dispatcher.listeners
        connected = listeners["connected"]
        ready = listeners["ready_to_send"]
        if connected or ready:
            # No data_in before connected and ready_to_send have been
            # dispatched, even if a connected listener calls process_data().
            inbound = self._in
            if inbound is not None:
                inbound.hold_delivery(True)
            try:
                if connected:
                    self._fire("connected", Connected(self.connection_id))
                # a send in connected may already have hit 135
                if self.ready_to_send and ready:
                    self._fire("ready_to_send", ReadyToSend(self.connection_id))
            finally:
                if inbound is not None:
                    inbound.hold_delivery(False)
        if self._in is not None:
            self._in.advance()

    def dataReceived(self, data: bytes) -> None:
        """Bytes from the transport: the raw hook's (PROXY, TLS) or the stream's."""
        self.rx_total += len(data)
        extras = self.extras
        if extras is not None and extras.idle is not None:
            extras.idle.resetTimeout()
        hook = self._raw_hook
        if hook is not None:
            if self._opening is not None:
                self._opening.progress()
            hook(data)  # the PROXY header reader or TLS sees the raw bytes first
            return
        inbound = self._in
        if inbound is None:
            inbound = self._inbound()
        inbound.receive(data)
        now = self.factory.reactor.seconds()
        if now - inbound.last_batch < REST_AFTER:
            inbound.last_batch = now  # (a busy connection keeps its parts)
        else:
            self._rest(now)  # after a quiet spell: the parts go back to the pool if at rest

    def plaintext_received(self, data: bytes) -> None:
        """The connection's stream, decrypted (TLS) or after a PROXY header."""
        inbound = self._in
        if inbound is None:
            inbound = self._inbound()
        inbound.receive(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._state in ENDED:
            return  # (it ended already: see readConnectionLost)
        tls = self._tls
        if tls is not None and tls.forward_loss(reason):
            return  # the TLS engine reports back through tls_lost
        if self._state is OPEN and type(reason.value) is ConnectionDone and self._can_end_now():
            # The common end, in one step: a clean close with nothing to
            # deliver, stop, fail or tell.
            self._end_at_once()
            return
        self.tls_lost(reason)

    def _end_at_once(self) -> None:
        """
        The one-step end of a clean close (see connectionLost,
        readConnectionLost): nobody listens for its close status.
        """
        out = self.outbound
        if out is not None:
            out.gone(0, "OK")  # (nothing to fail: it is idle)
        self.factory.table.lost(self, self.rx_total, self.bytes_handed)
        self._closed()

    def tls_lost(self, reason: Failure) -> None:
        """The transport is gone (``reason``); under TLS, as the engine reports it."""
        state = self._state
        if state in ENDED:
            return
        self._stop_timers()
        reader = getattr(self._raw_hook, "__self__", None)
        if isinstance(reader, ProxyHeaderReader):
            reader.stop()  # (it left before its PROXY header came)
        tls = self._tls
        handshaking = tls is not None and not tls.up
        if self._close_status is None:
            self._close_status = code_for_failure(reason)
            if handshaking:
                self._close_status = self._tls_loss_status(*self._close_status)
        code, description = self._close_status
        opened = state in WAS_OPEN
        # (first the state: whoever hears of the loss below sees a closed connection)
        self._move(LOST if opened else CLOSED)
        self.factory.table.lost(self, self.rx_total, self.bytes_handed)
        if self.outbound is not None:
            self.outbound.gone(code, description)
        if tls is not None:
            tls.lost(code, description)
            if handshaking and code and code != errors.CANNOT_SEND_AFTER_SHUTDOWN:
                self._report_tls_failure(code, description)
        if not opened:
            # never opened (refused, or TLS never came up): no disconnected
            self._forget()
            return
        if self._can_end_now():
            self._closed()
            return
        self._advance()

    def readConnectionLost(self) -> None:
        """
        The peer half-closed (sent FIN): deliver what it sent, let listeners
        answer, then close gracefully once the answers are written.  The idle
        timeout keeps running, so a peer that never reads the answers is
        still reaped.
        """
        state = self._state
        if state is not OPEN:
            if state is HANDSHAKING or state is UPGRADING:
                # A peer that stopped sending can no longer start or finish a
                # TLS handshake: close now rather than at the handshake
                # timeout (a health check that half-closes gets its EOF at once).
                transport = self.transport
                if transport is not None:
                    transport.loseConnection()
            return  # (closing already; Twisted repeats this when reading resumes)
        direct = self._direct
        if direct is not None:
            self.factory.turn.take(self)  # (then nothing_buffered tells all)
        if direct is not None and self._tls is None and nothing_buffered(direct):
            # Close now, as Twisted does for a protocol that does not take
            # half-closes, instead of a loseConnection() that takes another
            # round of the reactor ...
            if self._can_end_now():
                # ... and end in the same step (connectionLost finds it CLOSED)
                self._end_at_once()
                close_at_once(direct)
                return
            out = self.outbound
            if (self._in is None or self._in.idle) and (out is None or not out.pending):
                # ... with nothing to deliver or answer (connectionLost tells)
                close_at_once(direct)
                return
        self._move(INPUT_ENDED)
        self._advance()

    def writeConnectionLost(self) -> None:
        """Our sending side is shut; nothing to do."""

    def _closed(self) -> None:
        """The end: every event delivered, the connection forgotten."""
        self._in = None  # (nothing is left to deliver: no flags to recompute)
        self._move(CLOSED)
        if self.outbound is not None:
            self.outbound.ready = False
        self._forget()

    def _forget(self) -> None:
        """
        CLOSED: the table forgets the connection and its parts let go of
        it.  Nothing refers back to the protocol any more (no reference
        cycles), so it is freed at once, not by the garbage collector - a
        cost every short connection would otherwise pay.
        """
        self.factory.table.forget(self)
        if self.extras is not None and self._grace is not None:
            self._stop_listener_grace()
        self._in = None  # (nothing is left to deliver)
        self._raw_hook = None
        out = self.outbound
        if out is not None:
            out.detach()
        if self._tls is not None:
            self._drop_tls()

    # -- the inbound side (InboundOwner) --------------------------------------------------

    def hold_reading(self, held: bool) -> None:
        """An async listener of this connection started (``True``) or finished."""
        if held:
            self._pause_reading(PAUSE_ASYNC)
        else:
            self._resume_reading(PAUSE_ASYNC)

    def settled(self) -> bool:
        """
        Nothing deliverable is left and the input is over: what that means
        for the lifecycle.  (Inbound calls this; see its docstring.)
        """
        state = self._state
        inbound = self._in
        assert inbound is not None
        if state is FAREWELL:
            self._closed()
            return False
        if state is INPUT_ENDED and self._read_pauses & PAUSE_USER:
            return False  # half-closed but paused: wait for process_data()
        # Nothing received is lost: what never completed a line comes out as
        # a last data_in with eol=False.
        rest = inbound.take_rest()
        if rest:
            inbound.deliver_one(rest, False)
            return True
        if state is INPUT_ENDED:
            # Input is over and every listener has finished: close once the
            # queued answers are written.
            self._move(DRAINING)
            if self.outbound is not None:
                self.outbound.refuse_sends()
            self._close_when_sent()
            return False
        self._move(FAREWELL)
        if self.factory.dispatcher.listeners["disconnected"]:
            code, description = self._close_status or (0, "OK")
            inbound.fire("disconnected", Disconnected(self.connection_id, code, description))
        return True

    def _fire(self, name: str, event: Any) -> None:
        """Fire a connection event now, or after the async listener in flight."""
        inbound = self._in
        if inbound is not None:
            inbound.fire(name, event)
            return
        waiting = self.factory.dispatcher.dispatch(name, event)
        if waiting is not None:
            self._inbound().wait(waiting)

    def _advance(self) -> None:
        inbound = self._in
        if inbound is None:
            if self._state not in _ENDING:
                return
            inbound = self._inbound()
        inbound.advance()
        if inbound.waiting and self._state in _ENDING:
            self._start_listener_grace()  # (its input is over: the wait is bounded)

    # -- the outbound side (OutboundOwner, IPushProducer) --------------------------------

    def writer(self) -> Writer:
        """
        How the stream's bytes go out (OutboundOwner): into the TLS engine
        once it runs (:meth:`maybe_start_engine` reroutes); on a plain
        socket, with the reactor turn's sends; else :meth:`send_raw`, which
        knows every case.  (``_direct`` is set in connectionMade and never
        changes; before the engine runs, TLS output is held or plaintext.)
        """
        tls = self._tls
        if tls is not None and tls.engine is not None:
            return TCPServerProtocol.send_through_engine
        if self._direct is not None:
            return self.factory.turn.send
        return TCPServerProtocol.send_raw

    def send_raw(self, data: bytes) -> None:
        """
        Send bytes of the wire (TLS records under TLS).  On a plain socket
        transport they leave with the rest of this reactor turn's sends, at
        its end (:mod:`tcpserver.turn`), through :meth:`send_now`.
        """
        if self._direct is None:
            transport = self.transport
            assert transport is not None  # (sends begin after makeConnection)
            transport.write(data)
            return
        self.factory.turn.send(self, data)

    def send_at_once(self, data: bytes) -> None:
        """Send bytes now, behind what this reactor turn kept of this connection."""
        if self._direct is not None:
            self.factory.turn.take(self)
        self.send_now(data)

    def send_now(self, data: bytes) -> None:
        """Send bytes on the socket now (see :func:`tcpserver._twisted.send_direct`)."""
        direct = self._direct
        if direct is None:
            transport = self.transport
            assert transport is not None  # (sends begin after makeConnection)
            transport.write(data)
            return
        send_direct(direct, data, self)

    def flow(self, paused: bool) -> None:
        """The send queue passed its high-water mark, or drained to its low one."""
        if paused:
            self.factory.counters["flow_pauses"] += 1
            self._pause_reading(PAUSE_FLOW)
        else:
            self._resume_reading(PAUSE_FLOW)

    def drained(self) -> None:
        """The send queue drained: close if closing, else ``ready_to_send``."""
        state = self._state
        out = self.out()
        if state is DRAINING:
            self._close_when_sent()
        elif (state is OPEN or state is INPUT_ENDED) and not out.ready:
            out.ready = True
            if self.factory.dispatcher.listeners["ready_to_send"]:
                self._fire("ready_to_send", ReadyToSend(self.connection_id))

    def pauseProducing(self) -> None:
        """The transport's buffer is full: queue further sends."""
        self.out().pause()

    def resumeProducing(self) -> None:
        """The transport's buffer drained: pass it more of the queue."""
        self.out().resume()

    def stopProducing(self) -> None:
        """The transport is going away; ``connectionLost`` cleans up."""

    # -- the PROXY header reader's owner -----------------------------------------------------

    def route_raw(self, hook: Callable[[bytes], None] | None) -> None:
        """Raw bytes go to ``hook`` from now on (``None``: to the stream)."""
        self._raw_hook = hook

    def release_raw(self, hook: Callable[[bytes], None]) -> None:
        """If raw bytes still go to ``hook``, they go to the stream from now on."""
        if self._raw_hook == hook:
            self._raw_hook = None

    def replay(self, data: bytes) -> None:
        """Bytes that came after the PROXY header: the connection's own, once accepted."""
        if data and self._state in SENDABLE:
            hook = self._raw_hook
            if hook is not None:
                hook(data)  # TLS (or its detection)
            else:
                self.plaintext_received(data)

    # -- closing -------------------------------------------------------------------------------

    def _close_when_sent(self) -> None:
        """Close gracefully now if nothing is left to send (else drained() will)."""
        self._arm_close_grace()  # (queued data and files count against it too)
        if self.outbound is None or not self.outbound.pending:
            self._close(abort=False)

    def _close(self, abort: bool) -> None:
        """Tell the transport to close: gracefully (FIN after the queue) or with a reset."""
        transport = self.transport
        state = self._state
        if transport is None or state in ENDED:
            return
        out = self.outbound
        if out is not None:
            out.refuse_sends()
        if state in CLOSE_CALLED and not abort:
            return
        if state not in WAS_OPEN and state is not REFUSED:
            self._move(REFUSED)  # never opened: no events
        elif state is not CLOSING and state is not REFUSED:
            self._move(CLOSING)
        if out is not None:
            out.flush()
        engine = self._tls.engine if self._tls is not None else None
        sink: StreamTransport = engine if engine is not None else transport
        turn = self.factory.turn
        if abort:
            turn.drop(self)
            sink.abortConnection()
        else:
            # Twisted keeps a connection with a paused streaming producer open
            # until the producer unregisters; nothing more is sent now anyway.
            transport.unregisterProducer()
            turn.take(self)  # (what this turn kept goes before the FIN)
            sink.loseConnection()
            if sink is not transport:
                # TLS: our close_notify is on its way; a server need not wait
                # for the peer's (many clients never send one), so close TCP
                # once it is flushed.
                turn.take(self)
                transport.loseConnection()
            self._arm_close_grace()
