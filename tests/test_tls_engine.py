"""The TLS engine's data path, in memory: a read batch of many TLS records is
one delivery whose answers leave as one record; a close_notify or a broken
record behind data still delivers the data first; large answers arrive whole."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
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
from tcpserver._tlssession import RecordTracer
from tcpserver.handlers import echo, wire_handler


class Collector(Protocol):
    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


class TLSEngineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.tls = TLSFiles(Path(tempfile.mkdtemp()))
        self.clock = Clock()
        self.factory = TCPServerFactory(self.clock, default_eol=b"\n")
        self.factory.ssl_cert = self.tls.certificate()
        self.factory.ssl_start_mode = SSLStartMode.IMPLICIT
        self.events = Recorder(self.factory, ("data_in", "disconnected", "error"))
        wire_handler(self.factory, echo)
        ca = TwistedCertificate.loadPEM(self.tls.ca_pem.read_bytes())
        tls_client = TLSMemoryBIOFactory(
            optionsForClientTLS("localhost", trustRoot=ca),
            True,
            ClientFactory.forProtocol(Collector),
            clock=self.clock,
        )
        address = IPv4Address("TCP", "10.0.0.9", 4000)
        self.client: Any
        self.server: Any
        self.client, self.server, self.pump = connectedServerAndClient(
            lambda: self.factory.buildProtocol(address),
            lambda: tls_client.buildProtocol(address),
            clock=self.clock,
        )
        self.pump.flush()  # the handshake
        self.collector: Any = self.client.wrappedProtocol
        assert self.server.tls_active

    def client_says(self, *pieces: bytes) -> bytes:
        """What the client sends for ``pieces``: a TLS record each."""
        wire = b""
        for piece in pieces:
            self.client.write(piece)
            self.clock.advance(0)  # (the client's writes are flushed on the clock)
            wire += self.pump.clientIO.getOutBuffer() or b""
        return wire

    def records_from_server(self, wire: bytes) -> list[tuple[str, int]]:
        """Hand ``wire`` to the server in one read; the server's records in answer."""
        self.server.dataReceived(wire)
        sent = self.pump.serverIO.getOutBuffer()
        self.client.dataReceived(sent)
        return RecordTracer().feed(sent)

    def test_a_batch_of_records_is_answered_with_one_record(self) -> None:
        wire = self.client_says(b"one\n", b"two\n", b"three\n")
        self.assertEqual([kind for kind, _ in RecordTracer().feed(wire)], ["application_data"] * 3)
        records = self.records_from_server(wire)
        self.assertEqual([kind for kind, _ in records], ["application_data"])
        self.assertEqual(
            [e.text for name, e in self.events.events if name == "data_in"],
            [b"one", b"two", b"three"],
        )
        self.pump.flush()
        self.assertEqual(self.collector.received, b"one\ntwo\nthree\n")

    def test_data_before_a_close_notify_is_delivered_and_answered(self) -> None:
        wire = self.client_says(b"last words\n")
        self.client.loseConnection()  # close_notify, in the same read as the data
        self.clock.advance(0)
        wire += self.pump.clientIO.getOutBuffer()
        self.records_from_server(wire)
        self.pump.flush()
        self.assertEqual(self.collector.received, b"last words\n")
        names = self.events.names()
        self.assertEqual(names, ["data_in", "disconnected"])
        self.assertEqual(self.events.events[-1][1].status_code, 0)

    def test_a_broken_record_after_data_costs_the_connection_once_the_data_is_in(self) -> None:
        broken = b"\x17\x03\x03\x00\x20" + b"\x00" * 32
        self.server.dataReceived(self.client_says(b"fine\n") + broken)
        self.pump.flush()
        self.assertEqual(self.events.names()[0], "data_in")
        self.assertEqual(self.events.events[0][1].text, b"fine")
        self.assertTrue(self.pump.serverIO.disconnecting)
        self.assertEqual(self.events.names()[-1], "disconnected")
        self.assertNotEqual(self.events.events[-1][1].status_code, 0)

    def test_an_answer_larger_than_many_records_arrives_whole(self) -> None:
        line = bytes(range(256)).replace(b"\n", b"") * 700  # 178,500 bytes: 11 records
        self.client.write(line + b"\n")
        self.pump.flush()
        self.assertEqual(self.collector.received, line + b"\n")


class PublicRecordIOTests(TLSEngineTests):
    """The same, on pyOpenSSL's public methods (what runs if its internals move)."""

    def setUp(self) -> None:
        from tcpserver import _openssl

        self.patch(_openssl, "BINDINGS", None)
        super().setUp()

    def test_the_fallback_is_what_runs(self) -> None:
        from tcpserver._openssl import PublicRecordIO

        self.client_says(b"x\n")
        self.pump.flush()
        self.assertIsInstance(self.server._tls.engine._io(), PublicRecordIO)


def test_handshake_flights_leave_at_once_and_data_records_with_the_turn(tls):
    """Over a real socket, the reactor's turn never ending: the handshake
    completes (its flights are not kept for the turn's end), an answer's
    records are kept until the turn ends."""
    import select
    import ssl

    from tcpserver.testing import SocketConnection, memory_server

    server = memory_server(default_eol=b"\n")
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    wire_handler(server.factory, echo)
    connection = SocketConnection(server)
    sock, transport = connection.client, connection.transport
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tls.client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")

    def exchange() -> None:
        """Client bytes to the server, one server read, its answer back (no clock)."""
        sock.sendall(outgoing.read())
        select.select([transport.socket], [], [], 2)
        transport.doRead()
        while select.select([sock], [], [], 0.2)[0]:
            incoming.write(sock.recv(65536))

    for _ in range(4):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            exchange()
    else:
        raise AssertionError("the handshake did not complete without the turn's end")
    exchange()  # (the client's Finished; the server's tickets come back)
    assert connection.protocol is not None
    assert connection.protocol.tls_active
    client.write(b"ping\n")
    exchange()
    with pytest.raises(ssl.SSLWantReadError):
        client.read()  # the answer is kept for the turn's end
    server.reactor.advance(0)
    select.select([sock], [], [], 2)
    incoming.write(sock.recv(65536))
    assert client.read() == b"ping\n"
    connection.dispose()
