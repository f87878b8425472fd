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
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from tcpserver.factory import TCPServerFactory
from tcpserver.protocol import TCPServerProtocol
from tcpserver.server import TCPServer

__all__ = ["MemoryConnection", "MemoryServer", "MemoryTransport", "memory_server"]


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

    def transport_full(self) -> None:
        """Simulate the kernel buffer filling up (the transport pauses us)."""
        assert self.protocol is not None
        self.protocol.pauseProducing()

    def transport_drained(self) -> None:
        """Simulate the kernel buffer draining (the transport resumes us)."""
        assert self.protocol is not None
        self.protocol.resumeProducing()
