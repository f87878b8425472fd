"""The one place that reads Twisted's internals.

Besides the transport internals below, the private modules tcpserver
imports - Twisted's PROXY protocol parsers (:func:`haproxy_parsers`) and
``CertificateOptions``' default minimum TLS version
(:func:`default_minimum_tls_version`) - are reached from here only, and
``tests/test_twisted_adapter.py`` fails loudly if a Twisted release moves
them (the ``lowest`` tox environment runs it on the oldest Twisted declared).

A plain TCP (or UNIX) connection's answer to a read batch is sent straight
on its socket when nothing is buffered in the transport (see
``TCPServerProtocol.write_out``).  That needs to know whether the
transport holds unsent bytes (:func:`nothing_buffered`), which
Twisted keeps in private attributes of ``twisted.internet.abstract``
``FileDescriptor`` (``dataBuffer``, ``_tempDataLen``, ...).  This module is
the only code that reads them, through :class:`SocketTransport` - a
``typing.Protocol`` naming exactly what is read, so mypy checks every use -
and ``tests/test_twisted_adapter.py`` checks that the installed Twisted
still has each attribute (:data:`REQUIRED_ATTRIBUTES`).

What the kernel does not take, and every error, goes through the
transport's own ``write``: ordering, flow control and connection loss stay
Twisted's.  Nothing else here changes a transport's state.
"""

from __future__ import annotations

import _socket
import socket
import sys
from collections.abc import Callable
from typing import Any, Protocol, cast

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.internet import tcp, unix
from twisted.internet.address import IPv6Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from typing_extensions import override

from tcpserver._openssl import PublicRecordIO, RecordIO, record_io

__all__ = [
    "CLEAN_CLOSE",
    "REQUIRED_ATTRIBUTES",
    "TLS_ENGINE_ATTRIBUTES",
    "CleanClose",
    "LeanTLSEngine",
    "QuickServer",
    "SocketTransport",
    "StreamTransport",
    "close_at_once",
    "default_minimum_tls_version",
    "direct_peer",
    "direct_transport",
    "haproxy_parsers",
    "ipv4_client",
    "listen_nodelay",
    "nothing_buffered",
    "quick_accept",
    "route_accept_logs",
    "send_direct",
    "set_nodelay",
]


class StreamTransport(Protocol):
    """
    What a connection calls on its transport: public methods of Twisted's
    ``ITCPTransport``, ``IConsumer`` and ``IPushProducer`` that every stream
    transport we serve (TCP, UNIX, TLS, endpoints' wrappers) has.
    """

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def registerProducer(self, producer: Any, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...

    def getPeer(self) -> Any: ...

    def getHost(self) -> Any: ...


class SocketTransport(StreamTransport, Protocol):
    """What is read of a ``tcp.Server`` / ``unix.Server`` (see the module docstring)."""

    @property
    def connected(self) -> int: ...

    @property
    def disconnecting(self) -> bool: ...

    @property
    def dataBuffer(self) -> bytes:
        """Bytes being written (FileDescriptor)."""

    @property
    def _tempDataLen(self) -> int:
        """Bytes waiting behind dataBuffer (FileDescriptor)."""

    @property
    def _writeDisconnecting(self) -> bool:
        """loseWriteConnection() was called (FileDescriptor)."""

    @property
    def _aborting(self) -> bool:
        """abortConnection() was called (tcp.Connection)."""

    @property
    def socket(self) -> socket.socket: ...

    @property
    def producer(self) -> object | None: ...

    @property
    def server(self) -> object:
        """The listening port that accepted it (``tcp.Server.server``)."""

    def connectionLost(self, reason: Any) -> None: ...


#: Every attribute :class:`SocketTransport` names, with the classes that must
#: have it (checked against the installed Twisted by the tests).
REQUIRED_ATTRIBUTES = (
    "connected",
    "disconnecting",
    "dataBuffer",
    "_tempDataLen",
    "_writeDisconnecting",
    "_aborting",
    "socket",
    "producer",
    "server",
)


def direct_transport(transport: object) -> SocketTransport | None:
    """``transport`` if its socket may be written directly, else ``None``."""
    if type(transport) in _DIRECT_TYPES:
        return cast(SocketTransport, transport)
    return None


def ipv4_client(transport: object) -> tuple[str, int] | None:
    """
    The peer ``(host, port)`` of an IPv4 ``tcp.Server`` as ``accept()``
    returned it (no ``IPv4Address`` built), else ``None``.
    """
    if type(transport) in _TCP_SERVERS:
        client = transport.client  # type: ignore[attr-defined]
        if type(client) is tuple and len(client) == 2:
            return cast(tuple[str, int], client)
    return None


def direct_peer(transport: object) -> tuple[SocketTransport | None, tuple[str, int] | None]:
    """:func:`direct_transport` and :func:`ipv4_client` in one call (one per accept)."""
    kind = type(transport)
    if kind in _TCP_SERVERS:
        client = transport.client  # type: ignore[attr-defined]
        peer = client if type(client) is tuple and len(client) == 2 else None
        # (a SocketTransport; no cast() call: this runs once per accept)
        return transport, peer  # type: ignore[return-value]
    if kind is unix.Server:
        return transport, None  # type: ignore[return-value]
    return None, None


def nothing_buffered(transport: SocketTransport) -> bool:
    """Whether a direct transport holds no unsent bytes and is not closing."""
    return bool(
        transport.connected
        and not transport._tempDataLen
        and not transport.dataBuffer
        and not transport.disconnecting
        and not transport._writeDisconnecting
        and not transport._aborting
    )


def send_direct(transport: SocketTransport, data: bytes, producer: object) -> None:
    """
    Send ``data`` on a direct transport's socket.  With nothing buffered in
    the transport it is sent at once: Twisted's ``write`` would buffer it,
    register the socket for writing and send it on the next reactor turn
    (two ``epoll_ctl`` calls and a dispatch per send).  What the kernel
    does not take, and every error, goes through ``write`` as usual, so
    ordering, flow control and connection loss stay Twisted's; from the
    first bytes the transport has to buffer, ``producer`` is its producer.
    """
    # (no producer yet: the transport never had to buffer anything of ours,
    # and it has not gone - the TLS engine may still flush an alert from
    # connectionLost)
    if transport.connected and (transport.producer is None or nothing_buffered(transport)):
        try:
            sent = transport.socket.send(data)
        except OSError:  # EAGAIN, or an error write() will report
            sent = 0
        if sent == len(data):
            return
        if sent:
            data = data[sent:]
    if transport.producer is None and transport.connected:
        # From now on the transport's buffer may fill: have it pause us.
        transport.registerProducer(producer, True)
    transport.write(data)


def listen_nodelay(port: object, on: bool) -> bool:
    """
    TCP_NODELAY ``on`` (or off) on a listening TCP port's socket, so that
    the sockets it accepts come with it: Linux copies a listening socket's
    TCP options to the sockets it accepts, which then need no
    ``setsockopt`` of their own (one system call less per connection).

    :returns: whether the port's accepted sockets now have it as asked
        (``False`` off Linux, for a UNIX socket, or if the socket refused).
    """
    if not sys.platform.startswith("linux"):
        return False
    sock = getattr(port, "socket", None)
    if not isinstance(sock, socket.socket) or sock.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(on))
    except OSError:
        return False
    return True


def set_nodelay(transport: SocketTransport) -> bool:
    """TCP_NODELAY on a direct TCP socket; ``False`` if the socket refused it."""
    try:
        transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


class CleanClose(Failure):
    """
    Twisted's ``connectionDone`` failure, whose :meth:`check` answers the
    same without computing qualified names: ``tcp.Connection.connectionLost``
    asks every closing connection whether it was aborted, and
    ``Failure.check`` spends about 0.4 us on that (``inspect.isclass``,
    ``reflect.qual`` and the ``parents`` list, all Python).
    """

    @override
    def check(self, *errorTypes: type[BaseException] | str) -> type[BaseException] | str | None:
        for error in errorTypes:
            if isinstance(error, type) and issubclass(error, Exception):
                if issubclass(self.type, error):  # type: ignore[arg-type]
                    return error
            elif error in self.parents:
                return error
        return None


#: the failure a clean close we end ourselves hands to Twisted
CLEAN_CLOSE = CleanClose(ConnectionDone())


def close_at_once(transport: SocketTransport) -> None:
    """
    End a direct transport now, as Twisted does for a protocol that does not
    take half-closes (its ``connectionLost`` stops reading and writing).
    """
    transport.connectionLost(CLEAN_CLOSE)


_socket_family = _socket.socket.family.__get__  # (the int, where socket.family builds an enum)
_socket_type = _socket.socket.type.__get__


class QuickAcceptSocket(socket.socket):
    """
    A listening socket whose :meth:`accept` makes the accepted socket
    exactly as :meth:`socket.socket.accept` does, without building the
    ``AddressFamily`` and ``SocketKind`` members that ``self.family`` and
    ``self.type`` convert to (about 0.45 us each): 2.9-3.1 us per accepted
    connection become 2.0-2.1 us.  (Instances only ever come from
    :func:`quick_accept`.)
    """

    __slots__ = ()

    @override
    def accept(self) -> tuple[socket.socket, Any]:
        fd, address = self._accept()  # type: ignore[attr-defined]
        sock = socket.socket(_socket_family(self), _socket_type(self), self.proto, fileno=fd)
        if socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)  # (as socket.accept does)
        return sock, address


class QuickServer(tcp.Server):
    """
    Twisted's ``tcp.Server``, made in one step: the same attributes as the
    three ``__init__`` methods of ``FileDescriptor``, ``Connection`` and
    ``Server`` set (``tests/test_twisted_adapter.py`` compares them on the
    installed Twisted), without the calls between them, and its ``repr``
    made when asked, not at every accept: 0.45 us less per connection
    (1.1 -> 0.67 us).  Everything after ``__init__`` is ``tcp.Server``'s.
    A port's ``transport`` attribute names the class it makes (Twisted's
    documented hook); :func:`quick_accept` sets it.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: IProtocol,
        client: tuple[Any, ...],
        server: tcp.Port,
        sessionno: int,
        reactor: Any,
    ) -> None:
        # (FileDescriptor.__init__)
        self.reactor = reactor
        self._tempDataBuffer: list[bytes] = []
        self._tempDataLen = 0
        # (Connection.__init__)
        self.socket = sock
        sock.setblocking(False)
        self.fileno = sock.fileno
        self.protocol = protocol
        # (Server.__init__)
        if len(client) != 2:
            self._addressType = IPv6Address
        self.server = server
        self.client = client
        self.sessionno = sessionno
        self.hostname = client[0]
        self.logstr = f"{self._getLogPrefix(protocol)},{sessionno},{client[0]}"
        reactor.addReader(self)  # (startReading)
        self.connected = 1

    @property
    def repstr(self) -> str:  # type: ignore[override]
        """``tcp.Server``'s ``repr``, made when asked."""
        name = self.protocol.__class__.__name__ if hasattr(self, "protocol") else "?"
        return f"<{name} #{self.sessionno} on {self.server.getHost().port}>"


# Exact types: a wrapper such as TLS or HAProxy must see every byte.
_TCP_SERVERS = (QuickServer, tcp.Server)
_DIRECT_TYPES = (*_TCP_SERVERS, unix.Server)


def quick_accept(port: object) -> bool:
    """
    Have a Twisted listening port (``tcp.Port``, ``unix.Port``: each
    accepts with ``self.socket.accept()``) accept through
    :class:`QuickAcceptSocket`, and a ``tcp.Port`` make its connections'
    transports as :class:`QuickServer`.  The socket object stays the same
    (its class changes; the two have the same layout), so the port's
    ``fileno`` and the reactor's registration are untouched.

    :returns: whether the port's socket is now one (``False`` for a port
        without a plain ``socket.socket``, which is left as it is).
    """
    if type(port) is tcp.Port and getattr(port, "transport", None) is tcp.Server:
        port.transport = QuickServer
    sock = getattr(port, "socket", None)
    if type(sock) is socket.socket:
        sock.__class__ = QuickAcceptSocket
    return type(sock) is QuickAcceptSocket


def route_accept_logs(port: object, wrap: Any) -> bool:
    """
    Send a Twisted listening port's own log lines (accept errors) through
    ``wrap(observer)``; ``Port._logger`` is a class attribute, so an instance
    attribute overrides it for this port only.

    :returns: whether the port has such a logger.
    """
    logger = getattr(port, "_logger", None)
    if not isinstance(logger, Logger):
        return False
    setattr(port, "_logger", Logger(namespace=logger.namespace, observer=wrap(logger.observer)))  # noqa: B010
    return True


def haproxy_parsers() -> tuple[Any, Any, type[Exception]]:
    """Twisted's PROXY protocol v1 and v2 parsers and their error (private modules)."""
    from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
    from twisted.protocols.haproxy._v1parser import V1Parser
    from twisted.protocols.haproxy._v2parser import V2Parser

    return V1Parser, V2Parser, InvalidProxyHeader


def default_minimum_tls_version() -> Any:
    """The lowest TLS version ``CertificateOptions`` allows unless told otherwise."""
    from twisted.internet.ssl import CertificateOptions

    return CertificateOptions._defaultMinimumTLSVersion


# -- the TLS engine ----------------------------------------------------------------------------


class LeanTLSEngine(TLSMemoryBIOProtocol):
    """
    Twisted's ``TLSMemoryBIOProtocol`` with a lean path for an established
    connection's data; the handshake, alerts, renegotiation, shutdown and
    every error stay Twisted's own code.

    On the lean path (:meth:`lean`: handshake done, nothing buffered in the
    engine, not closing) a read batch is fed to OpenSSL at once and every
    whole record's plaintext goes to the application in **one** delivery
    (so its answers to the whole batch are corked into one write), and a
    write is one ``SSL_write`` whose records leave in **one** transport
    write - all through :class:`~tcpserver._openssl.RecordIO`'s C calls.
    Twisted's engine delivers every record on its own and drains the
    memory BIO 32 KiB at a time, ending each drain with an exception.

    This reads ``TLSMemoryBIOProtocol``'s private state (listed in
    :data:`TLS_ENGINE_ATTRIBUTES`, checked by the tests against the
    installed Twisted).
    """

    _records: RecordIO | PublicRecordIO | None = None
    _wrote = False

    def __init__(
        self,
        factory: Any,
        wrapped: IProtocol,
        deliver: Callable[[bytes], object],
        send: Callable[[bytes], object],
    ) -> None:
        """
        :param wrapped: the application side (``_connectWrapped`` is off: it
            is connected already).
        :param deliver: where the lean path's plaintext goes (``wrapped``'s
            ``dataReceived`` or a shorter way to the same place).
        :param send: where the lean path's records go (the transport's
            ``write`` takes the rest: handshake, alerts, close_notify).
        """
        super().__init__(factory, wrapped, False)
        self.deliver = deliver
        self.send = send

    @override
    def makeConnection(self, transport: Any) -> None:
        """
        Twisted's ``makeConnection`` without what this engine does not need:
        copying every interface of the transport onto itself (a
        ``directlyProvides`` per interface, a tenth of a TLS accept's CPU)
        - the connection's protocol keeps the socket transport as its own -
        and a first handshake step before any byte came (the owner feeds
        the client's first flight at once).
        """
        self._tlsConnection = self.factory._creatorCallable(self)
        self._appSendBuffer = []
        TwistedProtocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)

    @override
    def _tlsShutdownFinished(self, reason: Failure | None) -> None:
        """
        Twisted's, with the failure's traceback dropped first.  The failure
        was made where an OpenSSL error was caught (an EOF without
        close_notify: the common unclean close), and that traceback's frames
        hold the engine and the failure itself - a reference cycle, with the
        whole connection in it, that only the garbage collector would free.
        Only the error is reported on, never where it was raised.  (This is
        what ``Failure.cleanFailure`` does, without rendering the frames.)
        """
        if reason is not None and reason.tb is not None:
            if reason.value is not None:
                reason.value.__traceback__ = None
            reason.tb = None
        super()._tlsShutdownFinished(reason)

    @override
    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        # Twisted lets go of the OpenSSL connection, whose app data is this
        # engine; so must the record path that holds it too.
        self._records = None

    def start_handshake(self) -> None:
        """Take the handshake's first step before the client's bytes came."""
        self._checkHandshakeStatus()

    def lean(self) -> bool:
        """Whether the next read or write may take the lean path."""
        return bool(
            self._handshakeDone
            and not self._appSendBuffer
            and not self.disconnecting
            and not self._lostTLSConnection
        )

    def _io(self) -> RecordIO | PublicRecordIO:
        records = self._records
        if records is None:
            records = self._records = record_io(self._tlsConnection)
        return records

    @override
    def dataReceived(self, data: bytes) -> None:
        if not self.lean():
            super().dataReceived(data)
            return
        records = self._io()
        records.feed(data)
        chunks: list[bytes] = []
        ended: Failure | None = None
        clean_end = False
        try:
            records.read(chunks)
        except ZeroReturnError:
            clean_end = True  # the peer's close_notify
        except Error:
            ended = Failure()
        if ended is not None:
            # The records before the broken one are delivered, but nothing
            # can be sent any more: the failure is recorded (and the alert
            # sent) first, so that it is what the application hears.
            self._tlsShutdownFinished(ended)
        self._wrote = False
        if chunks:
            self.deliver(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if clean_end:
            if not self._lostTLSConnection:
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
        elif ended is None and not self._wrote and self._tlsConnection is not None:
            # Reading may have made bytes to send (a KeyUpdate answer); an
            # answer written during the delivery took them along.
            self._send_sealed(records)

    @override
    def write(self, data: bytes) -> None:
        if not self.lean():
            super().write(data)
            return
        records = self._io()
        size = len(data)
        done = 0
        try:
            while done < size:
                done += records.write(data[done:] if done else data)
        except WantReadError:  # a renegotiation is under way: Twisted buffers the rest
            self._send_sealed(records)
            self._bufferedWrite(data[done:])
            return
        except Error:
            self._tlsShutdownFinished(Failure())
            return
        self._send_sealed(records)

    def _send_sealed(self, records: RecordIO | PublicRecordIO) -> None:
        """Hand every record waiting in the send BIO to the transport, in one write."""
        self._wrote = True
        sealed = records.drain()
        if sealed:
            self.send(sealed)


#: What :class:`LeanTLSEngine` reads and calls of ``TLSMemoryBIOProtocol``.
TLS_ENGINE_ATTRIBUTES = (
    "factory._creatorCallable",
    "_handshakeDone",
    "_appSendBuffer",
    "_lostTLSConnection",
    "_tlsConnection",
    "_shutdownTLS",
    "_tlsShutdownFinished",
    "_flushSendBIO",
    "_bufferedWrite",
    "_checkHandshakeStatus",
)
