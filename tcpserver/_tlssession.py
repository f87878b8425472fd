"""TLS on one connection: ClientHello, certificate choice, engine, handshake.

A :class:`TLSSession` is created when TLS starts on a connection (at accept
for IMPLICIT, on a first byte of 0x16 for DETECT, at ``start_ssl()`` for
EXPLICIT).  It

1. collects the client's first flight and parses the ClientHello itself
   (:mod:`tcpserver._clienthello`), fires ``ssl_connection_request`` - which
   may pick the certificate, even asynchronously - and fetches the cached
   context for that certificate.  When nobody listens to
   ``ssl_connection_request`` or ``ssl_status`` there is nothing to choose
   or report: the ClientHello is not parsed, the first bytes go straight to
   the engine with ``SSLCert`` (OpenSSL rejects what is not a ClientHello);
2. then starts Twisted's ``TLSMemoryBIOProtocol`` as the connection's TLS
   engine and replays the buffered bytes into it; decrypted data goes to the
   protocol's framing, and the protocol's writes go through the engine;
3. on handshake completion, checks the client certificate (if asked for) and
   fires ``ssl_client_authentication``, then tells the protocol the
   connection is up.

Failures (not a ClientHello, no certificate, handshake timeout, OpenSSL
errors, a refused client certificate) cost only this connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override
from zope.interface import implementer

from tcpserver import errors
from tcpserver._clienthello import MAX_CLIENT_HELLO, ClientHelloError, ClientHelloParser
from tcpserver._twisted import LeanTLSEngine, StreamTransport
from tcpserver.certificates import Certificate, format_name
from tcpserver.clientcerts import verify_client
from tcpserver.errors import TCPServerError
from tcpserver.events import SSLClientAuthentication, SSLConnectionRequest
from tcpserver.tls import negotiated

if TYPE_CHECKING:
    from OpenSSL import SSL

    from tcpserver.host import ConnectionHost

__all__ = ["RecordTracer", "TLSOwner", "TLSSession", "report_alert"]

_RECORD_TYPES = {
    20: "change_cipher_spec",
    21: "alert",
    22: "handshake",
    23: "application_data",
    24: "heartbeat",
}


#: the ``_parser`` of a session before its first byte (see TLSSession.data)
_UNPARSED = ClientHelloParser()


class RecordTracer:
    """Finds TLS record headers in a byte stream cut anywhere (LogSSLPackets)."""

    __slots__ = ("_header", "_skip")

    def __init__(self) -> None:
        self._skip = 0  # payload bytes of the current record still to pass
        self._header = b""

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        """``(record type, length)`` for every record header completed by ``data``."""
        found = []
        view = memoryview(data)
        while view:
            if self._skip:
                step = min(self._skip, len(view))
                self._skip -= step
                view = view[step:]
                continue
            need = 5 - len(self._header)
            self._header += bytes(view[:need])
            view = view[need:]
            if len(self._header) == 5:
                kind = _RECORD_TYPES.get(self._header[0], f"type {self._header[0]}")
                length = int.from_bytes(self._header[3:5], "big")
                found.append((kind, length))
                self._skip = length
                self._header = b""
        return found


class _Traced:
    """A send that reports every record it sends first (LogSSLPackets)."""

    __slots__ = ("_send", "_session", "_tracer")

    def __init__(
        self, session: TLSSession, tracer: RecordTracer, send: Callable[[bytes], None]
    ) -> None:
        self._session = session
        self._tracer = tracer
        self._send = send

    def __call__(self, data: bytes) -> None:
        self._session.trace("sent", self._tracer.feed(data))
        self._send(data)


class _EngineTransport:
    """
    The TLS engine's transport.  The records of an established connection's
    data leave with the reactor turn's other sends (:meth:`write_batched`,
    the connection's :meth:`~TLSOwner.send_raw`); handshake flights, alerts
    and close_notify at once (:meth:`write`, :meth:`~TLSOwner.send_at_once`:
    a handshake waits for each flight, and the turn may be long while other
    handshakes compute).  With LogSSLPackets on, both report every record.
    The rest is the connection's transport.
    """

    def __init__(
        self, transport: StreamTransport | None, session: TLSSession, tracer: RecordTracer | None
    ) -> None:
        self._transport = transport
        owner = session.owner
        if tracer is None:
            self.write: Callable[[bytes], None] = owner.send_at_once
            self.write_batched: Callable[[bytes], None] = owner.send_raw
        else:
            self.write = _Traced(session, tracer, owner.send_at_once)
            self.write_batched = _Traced(session, tracer, owner.send_raw)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class TLSOwner(TypingProtocol):
    """What a :class:`TLSSession` asks of its connection."""

    connection_id: str
    transport: StreamTransport | None

    @property
    def factory(self) -> ConnectionHost:
        """Settings, listeners, contexts, the clock."""

    @property
    def closing_or_gone(self) -> bool:
        """The transport was told to close, or has gone."""

    def ssl_status(self, message: str) -> None:
        """Fire ``ssl_status`` (if anyone listens)."""

    def hold_reading_for_tls(self, hold: bool) -> None:
        """An async ssl_* listener is deciding: stop reading meanwhile."""

    def maybe_start_engine(self) -> None:
        """The certificate is chosen: start the engine when the plaintext is out."""

    def handshake_bytes_done(self) -> None:
        """The handshake's bytes are exchanged (the client check may still run)."""

    def tls_up(self) -> None:
        """Handshake (and client-certificate check) done."""

    def tls_failed(self, code: int, description: str) -> None:
        """Give up on TLS for this connection."""

    def plaintext_received(self, data: bytes) -> None:
        """Decrypted bytes of the connection's stream."""

    def send_raw(self, data: bytes) -> None:
        """Bytes for the socket (TLS records), with the reactor turn's other sends."""

    def send_at_once(self, data: bytes) -> None:
        """Bytes for the socket now (behind what the turn kept of this connection)."""

    def tls_lost(self, reason: Failure) -> None:
        """The connection has gone (the TLS-level reason)."""


@implementer(IHandshakeListener)
class _Plaintext(Protocol):
    """The TLS engine's application side: hands everything to the session."""

    def __init__(self, session: TLSSession) -> None:
        self.session = session

    @override
    def dataReceived(self, data: bytes) -> None:
        self.session.owner.plaintext_received(data)  # decrypted

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.session.owner.tls_lost(self.session.adjust_reason(reason))

    def handshakeCompleted(self) -> None:
        self.session.handshake_done()


def report_alert(connection: SSL.Connection, direction: str, level: str, name: str) -> None:
    """A TLS alert on some connection, reported through its ``ssl_status``."""
    engine = connection.get_app_data()
    plaintext = getattr(engine, "wrappedProtocol", None)
    if isinstance(plaintext, _Plaintext):
        plaintext.session.owner.ssl_status(f"alert {direction}: {level} {name}")


class TLSSession:
    """TLS state of one connection; see the module docstring."""

    _log = Logger()

    def __init__(self, owner: TLSOwner) -> None:
        self.owner = owner
        settings = owner.factory.settings
        self.engine: LeanTLSEngine | None = None
        self.certificate: Certificate | None = None
        self.up = False  # handshake (and client check) done
        self.waiters: list[Deferred[None]] = []  # start_ssl() callers
        self.reported = False  # the failure has been reported (error event)
        # _UNPARSED until the first byte decides whether the ClientHello is
        # parsed (someone may see what it says) or goes straight to OpenSSL;
        # None once it came (or, unparsed, once the first byte came).
        self._parser: ClientHelloParser | None = _UNPARSED
        self._raw: list[bytes] = []
        self._raw_len = 0
        self._chosen = False
        self._tls_factory: Any = None
        self._forwarded_loss = False
        self._raw_reason: Failure | None = None
        self._trace_in = RecordTracer() if settings["LogSSLPackets"] else None

    # -- phase 1: the ClientHello ------------------------------------------------------

    def start(self) -> None:
        """Wait for the client's first flight (its clocks are the connection's)."""
        self.owner.ssl_status("TLS: waiting for the ClientHello")

    def data(self, data: bytes) -> None:
        """Raw bytes from the socket."""
        if self._trace_in is not None:
            self.trace("received", self._trace_in.feed(data))
        if self.engine is not None:
            self.engine.dataReceived(data)
            return
        self._raw.append(data)
        self._raw_len += len(data)
        if self._parser is None:  # ClientHello seen; the engine starts soon
            if self._raw_len > MAX_CLIENT_HELLO:
                self.fail(errors.HANDSHAKE_ERROR, "too much data before the handshake started")
            return
        if self._parser is _UNPARSED:
            listeners = self.owner.factory.dispatcher.listeners
            if not (listeners["ssl_connection_request"] or listeners["ssl_status"]):
                # Nobody would see the ClientHello or choose by it: OpenSSL reads it.
                self._parser = None
                self._choose(None)
                return
            self._parser = ClientHelloParser()
        try:
            hello = self._parser.feed(data)
        except ClientHelloError as exc:
            self.fail(
                errors.HANDSHAKE_ERROR,
                f"{errors.description_for(276)} Not a TLS ClientHello: {exc}",
            )
            return
        if hello is None:
            return
        self._parser = None
        owner = self.owner
        factory = owner.factory
        listeners = factory.dispatcher.listeners
        if listeners["ssl_status"]:
            owner.ssl_status(
                f"ClientHello: {', '.join(hello.versions)} offered, server name "
                f"{hello.server_name or '(none)'}, {len(hello.cipher_suites)} cipher suites"
            )
        if not listeners["ssl_connection_request"]:
            self._choose(None)  # (no event to build: nobody would see it)
            return
        event = SSLConnectionRequest(
            owner.connection_id,
            hello.server_name,
            hello.cipher_suite_names,
            hello.signature_algorithm_names,
        )
        waiting = factory.dispatcher.dispatch("ssl_connection_request", event)
        if waiting is None:
            self._choose(event.certificate)
        else:
            owner.hold_reading_for_tls(True)
            waiting.addCallback(lambda _: self._choose(event.certificate, resumed=True))

    def _choose(self, chosen: Certificate | None, resumed: bool = False) -> None:
        owner = self.owner
        if resumed:
            owner.hold_reading_for_tls(False)
        if owner.closing_or_gone:
            return
        certificate = chosen or owner.factory.settings["SSLCert"]
        if certificate is None:
            self.fail(
                errors.NO_SERVER_CERTIFICATE,
                f"{errors.description_for(282)} Set ssl_cert, or choose one in "
                "ssl_connection_request",
            )
            return
        if not isinstance(certificate, Certificate):
            self.fail(
                errors.INVALID_ARGUMENT,
                f"ssl_connection_request set certificate to {certificate!r}, not a Certificate",
            )
            return
        try:
            self._tls_factory = owner.factory.tls_contexts.factory_for(certificate)
        except TCPServerError as exc:
            self.fail(exc.code, exc.description)
            return
        except Exception as exc:  # noqa: BLE001 - one connection must not break the server
            self._log.failure("building the TLS context for {subject}", subject=certificate.subject)
            self.fail(
                errors.CANNOT_ACQUIRE_CREDENTIALS,
                f"{errors.description_for(273)} {type(exc).__name__}: {exc}",
            )
            return
        self.certificate = certificate
        self._chosen = True
        if owner.factory.dispatcher.listeners["ssl_status"]:
            owner.ssl_status(f"certificate: {certificate.subject}")
        owner.maybe_start_engine()

    @property
    def hello_seen(self) -> bool:
        """The client has started its handshake (sent a byte of it, at least)."""
        return self._parser is None or self._raw_len > 0

    @property
    def ready(self) -> bool:
        """A certificate is chosen; the engine may start."""
        return self._chosen and self.engine is None

    # -- phase 2: the engine -------------------------------------------------------------

    def start_engine(self) -> LeanTLSEngine:
        """Start the TLS engine and replay the client's first flight into it."""
        owner = self.owner
        tls_factory = self._tls_factory
        # Not the factory's BufferingTLSTransport: the protocol already
        # gathers each read batch's writes into one.
        tracer = RecordTracer() if self._trace_in is not None else None
        transport = _EngineTransport(owner.transport, self, tracer)
        engine = LeanTLSEngine(
            tls_factory, _Plaintext(self), owner.plaintext_received, transport.write_batched
        )
        engine.makeConnection(transport)
        self.engine = engine
        replay = b"".join(self._raw)
        self._raw = []
        self._raw_len = 0
        if replay:
            engine.dataReceived(replay)
        else:
            engine.start_handshake()  # (nothing to read yet)
        return engine

    def reader(self) -> Callable[[bytes], None]:
        """Where the socket's bytes go: the engine, or :meth:`data` to trace them."""
        if self.engine is not None and self._trace_in is None:
            return self.engine.dataReceived
        return self.data

    def handshake_done(self) -> None:
        """The engine finished the handshake."""
        owner = self.owner
        owner.handshake_bytes_done()  # (no more bytes are awaited: no inactivity limit)
        connection = self.handle
        if owner.factory.dispatcher.listeners["ssl_status"]:
            owner.ssl_status(
                f"handshake complete: {negotiated(connection, 'SSLNegotiatedVersion')} "
                f"{negotiated(connection, 'SSLNegotiatedCipher')} "
                f"({negotiated(connection, 'SSLNegotiatedCipherStrength')} bits)"
            )
        settings = owner.factory.settings
        if not settings["SSLAuthenticateClients"]:
            self._finish()
            return
        assert connection is not None
        peer = connection.get_peer_certificate(as_cryptography=True)
        chain = connection.get_peer_cert_chain(as_cryptography=True) or []
        if peer is None:
            accept, status, encoded = False, "No client certificate was presented", b""
            subject = issuer = ""
        else:
            accept, status = verify_client(
                peer,
                chain,
                owner.factory.tls_contexts.trusted(),
                settings["OpenSSLCAFile"],
                settings["OpenSSLCADir"],
                settings["SSLSecurityFlags"],
            )
            from cryptography.hazmat.primitives.serialization import Encoding

            # a server's view of the peer chain leaves the leaf out
            shown = [peer]
            if settings["SSLIncludeCertChain"]:
                shown += [c for c in chain if c != peer]
            encoded = b"".join(c.public_bytes(Encoding.PEM) for c in shown)
            subject, issuer = format_name(peer.subject), format_name(peer.issuer)
        owner.ssl_status(f"client certificate: {subject or '(none)'}; verification: {status}")
        event = SSLClientAuthentication(
            owner.connection_id, encoded, subject, issuer, status, accept
        )
        waiting = owner.factory.dispatcher.dispatch("ssl_client_authentication", event)
        if waiting is None:
            self._judged(event)
        else:
            owner.hold_reading_for_tls(True)
            waiting.addCallback(lambda _: self._judged(event))

    def _judged(self, event: SSLClientAuthentication) -> None:
        owner = self.owner
        owner.hold_reading_for_tls(False)
        if owner.closing_or_gone:
            return
        if not event.accept:
            code = (
                errors.NO_CLIENT_CERTIFICATE
                if not event.cert_encoded
                else (errors.CERTIFICATE_VERIFY_ERROR)
            )
            self.fail(
                code, f"{errors.description_for(code)} Client certificate refused: {event.status}"
            )
            return
        self._finish()

    def _finish(self) -> None:
        self.up = True
        waiters, self.waiters = self.waiters, []
        self.owner.tls_up()
        for waiting in waiters:
            waiting.callback(None)

    # -- failure and loss ----------------------------------------------------------------

    def fail(self, code: int, description: str) -> None:
        """Give up on TLS for this connection."""
        self.owner.tls_failed(code, description)

    def lost(self, code: int, description: str) -> None:
        """The connection has gone (status ``code``): start_ssl() callers hear why."""
        if self.waiters:
            self.fail_waiters(
                TCPServerError(code, description)
                if code
                else TCPServerError(
                    errors.HANDSHAKE_ERROR,
                    f"{errors.description_for(errors.HANDSHAKE_ERROR)} The connection "
                    "closed before the TLS handshake finished",
                )
            )

    def release(self) -> None:
        """
        The connection is CLOSED: let go of the engine, whose transport and
        callbacks refer back to this session and the connection, so that
        reference counting frees them all (see ``TCPServerProtocol._forget``).
        """
        self.engine = None

    def fail_waiters(self, error: TCPServerError) -> None:
        """The connection closed before the handshake finished."""
        waiters, self.waiters = self.waiters, []
        for waiting in waiters:
            waiting.errback(Failure(error))

    def forward_loss(self, reason: Failure) -> bool:
        """
        Let the engine see the socket close first, so the application hears
        the TLS-level reason (a handshake error rather than a plain close).

        :returns: whether the engine took it (it then calls back the protocol).
        """
        if self.engine is None or self._forwarded_loss:
            return False
        self._forwarded_loss = True
        self._raw_reason = reason
        self.engine.connectionLost(reason)
        return True

    def adjust_reason(self, reason: Failure) -> Failure:
        """
        Twisted reports a TCP close without a TLS close_notify as a lost
        connection.  Many clients close that way; when the TCP close itself
        was clean, report it as clean (status 0; a clean close in the middle
        of the handshake becomes a 276 in the protocol).
        """
        raw = self._raw_reason
        if (
            raw is not None
            and isinstance(raw.value, ConnectionDone)
            and isinstance(reason.value, ConnectionLost)
        ):
            return raw
        return reason

    # -- reporting ---------------------------------------------------------------------

    @property
    def handle(self) -> Any:
        """The OpenSSL connection (``None`` before the engine starts)."""
        return self.engine.getHandle() if self.engine is not None else None

    def readout(self, name: str) -> str:
        """A per-connection ``SSLNegotiated*`` read-out."""
        return negotiated(self.handle, name) if self.up else ""

    def trace(self, direction: str, records: list[tuple[str, int]]) -> None:
        for kind, length in records:
            self.owner.ssl_status(f"record {direction}: {kind}, {length} bytes")
