"""TLS protocol logic in memory: iosim pumps bytes between our server and a
Twisted TLS client (TLSMemoryBIOFactory); no sockets, a Clock for timers."""

from __future__ import annotations

from helpers import Recorder, TLSFiles
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.ssl import Certificate as TwistedCertificate
from twisted.internet.ssl import optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from tcpserver import SSLStartMode, TCPServerFactory
from tcpserver.handlers import echo, wire_handler


class Collector(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.handshakes = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def handshakeCompleted(self) -> None:
        self.handshakes += 1


#: what these tests record (listening to more, such as ssl_status, would add to names())
EVENTS = (
    "connection_request",
    "ssl_connection_request",
    "connected",
    "ready_to_send",
    "data_in",
    "disconnected",
    "error",
)


class TLSInMemoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        import tempfile
        from pathlib import Path

        self.tls = TLSFiles(Path(tempfile.mkdtemp()))
        self.clock = Clock()
        self.factory = TCPServerFactory(self.clock, default_eol=b"\n")
        self.factory.ssl_cert = self.tls.certificate()
        self.events = Recorder(self.factory, EVENTS)

    def connect(self, server_name: str = "localhost"):
        ca = TwistedCertificate.loadPEM(self.tls.ca_pem.read_bytes())
        options = optionsForClientTLS(server_name, trustRoot=ca)
        client_factory = ClientFactory.forProtocol(Collector)
        tls_client = TLSMemoryBIOFactory(options, True, client_factory, clock=self.clock)
        address = IPv4Address("TCP", "10.0.0.9", 4000)
        client, server, pump = connectedServerAndClient(
            lambda: self.factory.buildProtocol(address),
            lambda: tls_client.buildProtocol(address),
            clock=self.clock,
        )
        return client, server, pump

    def test_implicit_handshake_and_framing(self) -> None:
        self.factory.ssl_start_mode = SSLStartMode.IMPLICIT
        wire_handler(self.factory, echo)
        client, server, pump = self.connect()
        pump.flush()
        self.assertEqual(
            self.events.names(),
            ["connection_request", "ssl_connection_request", "connected", "ready_to_send"],
        )
        client.write(b"one\ntw")
        pump.flush()
        client.write(b"o\n")
        pump.flush()
        self.assertEqual(client.wrappedProtocol.received, b"one\ntwo\n")
        self.assertTrue(server.tls_active)
        self.assertEqual(self.events.events[1][1].server_name, "localhost")

    def _accept_quietly(self):
        """A connection that has sent nothing yet."""
        from tcpserver.testing import MemoryTransport

        address = IPv4Address("TCP", "10.0.0.9", 4000)
        protocol = self.factory.buildProtocol(address)
        assert protocol is not None
        transport = MemoryTransport(self.clock, address, address)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        return protocol, transport

    def test_explicit_and_none_modes_open_in_plaintext_at_once(self) -> None:
        # EXPLICIT is plaintext until start_ssl: a greeting must be possible
        # before the client says anything (SMTP/IMAP STARTTLS servers).
        for mode in (SSLStartMode.EXPLICIT, SSLStartMode.NONE):
            self.events.events.clear()
            self.factory.ssl_start_mode = mode
            protocol, _transport = self._accept_quietly()
            self.assertEqual(
                self.events.names(), ["connection_request", "connected", "ready_to_send"], mode
            )
            self.assertFalse(protocol.tls_active)

    def test_detect_mode_waits_for_the_first_byte(self) -> None:
        self.factory.ssl_start_mode = SSLStartMode.DETECT
        protocol, _transport = self._accept_quietly()
        self.assertEqual(self.events.names(), ["connection_request"])
        protocol.dataReceived(b"hello\n")
        self.assertEqual(
            self.events.names(),
            ["connection_request", "connected", "ready_to_send", "data_in"],
        )

    def test_sni_choice(self) -> None:
        self.factory.ssl_start_mode = SSLStartMode.IMPLICIT
        other = self.tls.certificate(self.tls.other_pem)
        self.factory.on("ssl_connection_request", lambda e: setattr(e, "certificate", other))
        wire_handler(self.factory, echo)
        client, server, pump = self.connect("other.example")
        pump.flush()
        client.write(b"x\n")
        pump.flush()
        self.assertEqual(client.wrappedProtocol.received, b"x\n")  # it verified other.example
        self.assertIs(server._tls.certificate, other)

    def test_handshake_bytes_put_the_timeout_off(self) -> None:
        # the timeout counts from the last handshake bytes, not from accept
        self.factory.ssl_start_mode = SSLStartMode.IMPLICIT
        self.factory.config("DefaultConnectionTimeout=3")
        protocol, transport = self._accept_quietly()
        for piece in (b"\x16\x03", b"\x01\x02", b"\x00\x01"):  # a hello, slowly
            self.clock.advance(2)
            protocol.dataReceived(piece)
        self.clock.advance(2.9)  # 8.9 s after accept, 2.9 s after the last bytes
        self.assertFalse(transport.aborted)
        self.clock.advance(0.2)
        self.assertTrue(transport.aborted)
        self.clock.advance(0)
        errors = [e for n, e in self.events.events if n == "error"]
        self.assertEqual([e.error_code for e in errors], [10060])

    def test_handshake_timeout_on_the_clock(self) -> None:
        self.factory.ssl_start_mode = SSLStartMode.IMPLICIT
        self.factory.config("DefaultConnectionTimeout=3")
        protocol, transport = self._accept_quietly()
        protocol.dataReceived(b"\x16\x03\x01\x02\x00\x01")  # a hello that never completes
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.aborted)
        self.clock.advance(0)
        errors = [e for n, e in self.events.events if n == "error"]
        self.assertEqual([e.error_code for e in errors], [10060])
        self.assertNotIn("disconnected", self.events.names())
        self.assertEqual(len(self.factory.connections), 0)
