"""In-memory helpers for testing handlers without sockets.

Built on Twisted's ``MemoryReactorClock`` and ``StringTransport``: a
:class:`MemoryConnection` plays the client of one connection, so a handler's
behaviour - events, framing, answers, timeouts - can be checked
synchronously::

    from tcpserver.testing import MemoryConnection, memory_server

    server = memory_server(default_eol=b"\\n")
    wire_handler(server, my_handler)
    client = MemoryConnection(server)
    client.feed(b"PING\\n")
    assert client.written() == b"PONG\\r\\n"
    server.reactor.advance(30)          # drive idle timeouts and send timeouts

Closing is reported back to the protocol on the clock, as a real reactor
would do it, so advance it (``server.reactor.advance(0)``) after a
``disconnect``.

:class:`SocketConnection` is the same client over a real loopback TCP
socket, driven by hand instead of by a running reactor: the server side is
a real ``twisted.internet.tcp.Server``, so the paths only a plain socket
takes - the one-step open, answers sent straight on the socket, the kernel
pushing back, the one-step close - run exactly as in production, one
deterministic step at a time.
"""

from __future__ import annotations

import itertools
import select
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableDescriptor, IReactorTime
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tcpserver._twisted import nothing_buffered
from tcpserver.factory import TCPServerFactory
from tcpserver.protocol import TCPServerProtocol
from tcpserver.server import TCPServer

__all__ = [
    "MemoryConnection",
    "MemoryServer",
    "MemoryTransport",
    "SocketConnection",
    "memory_server",
]


class MemoryServer(TCPServer):
    """A :class:`~tcpserver.TCPServer` whose reactor is a ``MemoryReactorClock``."""

    reactor: MemoryReactorClock


def memory_server(**properties: Any) -> MemoryServer:
    """A :class:`~tcpserver.TCPServer` on a ``MemoryReactorClock``."""
    return MemoryServer(reactor=MemoryReactorClock(), **properties)


class MemoryTransport(StringTransport):
    """
    A ``StringTransport`` that tells its protocol about the close, one clock
    tick later, like a real reactor.

    :ivar aborted: ``abortConnection()`` was called (a reset, not a FIN).
    :ivar close_held: a graceful close is never reported (see
        :meth:`MemoryConnection.hold_close`).
    """

    def __init__(self, clock: IReactorTime, host: IPv4Address, peer: IPv4Address) -> None:
        super().__init__(hostAddress=host, peerAddress=peer, lenient=True)
        self.clock = clock
        self.aborted = False
        self.lost = False
        self.close_held = False
        self.protocol: Any = None

    def loseConnection(self) -> None:
        if self.disconnecting:
            return
        super().loseConnection()
        if not self.close_held:
            self.clock.callLater(0, self.report_lost, ConnectionDone())

    def abortConnection(self) -> None:
        report = not self.aborted and (not self.disconnecting or self.close_held)
        self.disconnecting = True
        self.aborted = True
        if report:
            self.clock.callLater(0, self.report_lost, ConnectionAborted())

    def report_lost(self, reason: Exception) -> None:
        """Deliver ``connectionLost(reason)`` once."""
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(reason))


class MemoryConnection:
    """
    The client side of one in-memory connection.

    :param server: a :class:`~tcpserver.TCPServer` or factory whose reactor
        is a clock (see :func:`memory_server`).
    :param host: the client address the server sees.
    :param port: the client port the server sees.
    :ivar protocol: the server's protocol, or ``None`` if MaxConnections
        refused the connection outright.
    """

    def __init__(
        self, server: TCPServer | TCPServerFactory, host: str = "192.0.2.10", port: int = 50000
    ) -> None:
        factory = server.factory if isinstance(server, TCPServer) else server
        peer = IPv4Address("TCP", host, port)
        self.transport = MemoryTransport(
            factory.reactor, IPv4Address("TCP", "127.0.0.1", 9000), peer
        )
        protocol = factory.buildProtocol(peer)
        assert protocol is None or isinstance(protocol, TCPServerProtocol)
        self.protocol: TCPServerProtocol | None = protocol
        if protocol is not None:
            self.transport.protocol = protocol
            protocol.makeConnection(self.transport)

    @property
    def connection_id(self) -> str:
        """The id the server gave this connection (``""`` if refused)."""
        return self.protocol.connection_id if self.protocol is not None else ""

    @property
    def closed(self) -> bool:
        """Whether the server closed (or refused) the connection."""
        return self.protocol is None or self.transport.disconnecting

    @property
    def reading(self) -> bool:
        """Whether the server is reading from this connection (not paused)."""
        return self.transport.producerState == "producing"

    def feed(self, data: bytes) -> None:
        """Bytes arrive from the client."""
        assert self.protocol is not None, "the connection was refused"
        self.protocol.dataReceived(data)

    def written(self) -> bytes:
        """Everything the server wrote since the last call."""
        value: bytes = self.transport.value()
        self.transport.clear()
        return value

    def half_close(self) -> None:
        """The client shuts down its sending side (FIN)."""
        assert self.protocol is not None
        self.protocol.readConnectionLost()

    def close(self) -> None:
        """The client closes the connection cleanly."""
        self.transport.report_lost(ConnectionDone())

    def reset(self) -> None:
        """The client resets the connection (RST)."""
        self.transport.report_lost(ConnectionLost())

    def hold_close(self) -> None:
        """
        The peer never finishes a graceful close (it does not read, or its
        FIN never comes): the server's ``loseConnection()`` stays pending
        until it aborts (``transport.aborted``).
        """
        self.transport.close_held = True

    def pump(self) -> None:
        """Nothing to do: an in-memory transport delivers at once (see SocketConnection)."""

    def transport_full(self) -> None:
        """Simulate the kernel buffer filling up (the transport pauses us)."""
        assert self.protocol is not None
        self.protocol.pauseProducing()

    def transport_drained(self) -> None:
        """Simulate the kernel buffer draining (the transport resumes us)."""
        assert self.protocol is not None
        self.protocol.resumeProducing()


_sessions = itertools.count(1)


class SocketConnection:
    """
    The client side of one connection over a real loopback TCP socket.

    The server's reactor must be a ``MemoryReactorClock`` (see
    :func:`memory_server`): this class plays the reactor for the server's
    ``tcp.Server`` transport - it reads when the transport reads, writes
    when it wants to, and reports a close the way Twisted's reactor does -
    each time :meth:`pump` is called (every method here pumps).

    :param server: the server or factory.
    :param buffer_size: the kernel's send and receive buffer sizes, and
        the transport's own write buffer: small values make the kernel push
        back after a few KiB (see :meth:`stop_reading`).
    :ivar protocol: the server's protocol, or ``None`` if MaxConnections
        refused the connection outright.
    """

    def __init__(self, server: TCPServer | TCPServerFactory, buffer_size: int = 0) -> None:
        factory = server.factory if isinstance(server, TCPServer) else server
        self.reactor: Any = factory.reactor
        listener = socket.socket()
        try:
            if buffer_size:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self.client = socket.socket()
            if buffer_size:
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
                self.client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
            self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.client.connect(listener.getsockname())
            accepted, address = listener.accept()
        finally:
            listener.close()
        self.client.setblocking(False)
        accepted.setblocking(False)
        self._sent = 0  # bytes the client sent
        self._received = 0  # bytes the client read
        self._reading = True  # the client reads what the server sends
        self._closed = False
        protocol = factory.buildProtocol(IPv4Address("TCP", *address))
        assert protocol is None or isinstance(protocol, TCPServerProtocol)
        self.protocol: TCPServerProtocol | None = protocol
        if protocol is None:
            accepted.close()
            self.transport: Any = None
            return
        # (no listening Port: tcp.Server takes None there and skips its repr)
        port: Any = None
        reactor: Any = self.reactor  # (a MemoryReactorClock: an IReactorFDSet too)
        self.transport = tcp.Server(accepted, protocol, address, port, next(_sessions), reactor)
        if buffer_size:
            self.transport.bufferSize = buffer_size
        protocol.makeConnection(self.transport)
        self.pump()

    @property
    def connection_id(self) -> str:
        """The id the server gave this connection (``""`` if refused)."""
        return self.protocol.connection_id if self.protocol is not None else ""

    @property
    def reading(self) -> bool:
        """Whether the server reads from this connection (not paused)."""
        return self.transport is not None and self.transport in self.reactor.getReaders()

    @property
    def closed(self) -> bool:
        """Whether the server's side of the connection has gone."""
        return self.transport is None or not self.transport.connected

    def feed(self, data: bytes) -> None:
        """Bytes from the client (the server reads them if it is reading)."""
        view = memoryview(data)
        while view:
            try:
                sent = self.client.send(view)
            except BlockingIOError:
                sent = 0
            view = view[sent:]
            self._sent += sent
            self.pump()
            if view and not sent:
                poller = select.poll()
                poller.register(self.client, select.POLLOUT)
                poller.poll(1000)

    def written(self) -> bytes:
        """What the server sent since the last call (nothing while the client does not read)."""
        if not self._reading:
            self.pump()
            return b""
        got: list[bytes] = []
        while True:
            self.pump()
            chunk = self._receive()
            if chunk:
                got.append(chunk)
                self._received += len(chunk)
                continue
            if not self._in_flight():
                return b"".join(got)
            poller = select.poll()
            poller.register(self.client, select.POLLIN)
            if not poller.poll(1000):
                return b"".join(got)

    def _in_flight(self) -> bool:
        """Bytes the server handed to its socket that have not reached the client yet."""
        transport, protocol = self.transport, self.protocol
        if protocol is None or not transport.connected or self._closed:
            return False
        return nothing_buffered(transport) and self._received < protocol.bytes_handed

    def stop_reading(self) -> None:
        """The client stops reading: the kernel's buffers fill, then Twisted's."""
        self._reading = False

    def start_reading(self) -> None:
        """The client reads again (everything buffered reaches it on :meth:`written`)."""
        self._reading = True

    def half_close(self) -> None:
        """The client shuts down its sending side (FIN)."""
        self.client.shutdown(socket.SHUT_WR)
        self._closed = True
        self.pump()

    def close(self) -> None:
        """The client closes the connection (FIN; unread data makes it a reset)."""
        self._closed = True
        self.client.close()
        self.pump()

    def pump(self) -> None:
        """Let the server's transport read, write and close until nothing moves."""
        transport = self.transport
        reactor = self.reactor
        for _ in range(10_000):
            reactor.advance(0)
            if transport is None or not transport.connected:
                return
            moved = False
            expecting = self.protocol is not None and self.protocol.rx_total < self._sent
            if transport in reactor.getReaders() and self._readable(expecting):
                moved = True
                self._step(transport.doRead(), True)
            if transport.connected and transport in reactor.getWriters():
                before = nothing_buffered(transport)
                self._step(transport.doWrite(), False)
                moved = moved or not before
                if transport.connected and not nothing_buffered(transport) and self._reading:
                    moved = bool(self._drain_client()) or moved
            if not moved:
                return

    def _readable(self, expecting: bool) -> bool:
        timeout = 1000 if expecting or self._closed else 0
        poller = select.poll()
        poller.register(self.transport.socket, select.POLLIN)
        return bool(poller.poll(timeout))

    def dispose(self) -> None:
        """Close both sockets, whatever state the connection is in."""
        self.client.close()
        if self.transport is not None and self.transport.connected:
            self.transport.socket.close()

    def _step(self, why: Any, is_read: bool) -> None:
        """What the reactor does with a doRead()/doWrite() result."""
        if not why:
            return
        transport = self.transport
        reactor = self.reactor
        reactor.removeReader(transport)
        if isinstance(why, ConnectionDone | ConnectionLost):
            reason = Failure(type(why)())
            if (
                is_read
                and isinstance(why, ConnectionDone)
                and IHalfCloseableDescriptor.providedBy(transport)
            ):
                transport.readConnectionLost(reason)
                return
        else:
            reason = Failure(why)
        reactor.removeWriter(transport)
        transport.connectionLost(reason)

    _pending_client: list[bytes]

    def _drain_client(self) -> int:
        """Read what waits for the client into a buffer (returned by :meth:`written`)."""
        chunk = self._receive_now()
        if chunk:
            self._pending_client = [*getattr(self, "_pending_client", []), chunk]
        return len(chunk)

    def _receive(self) -> bytes:
        pending = getattr(self, "_pending_client", [])
        self._pending_client = []
        return b"".join([*pending, self._receive_now()])

    def _receive_now(self) -> bytes:
        if self._closed:
            return b""
        got: list[bytes] = []
        while True:
            try:
                chunk = self.client.recv(1 << 16)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            got.append(chunk)
        return b"".join(got)
