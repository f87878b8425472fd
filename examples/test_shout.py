"""Testing the shout handler in memory (run with pytest)."""

import shout

from tcpserver.handlers import wire_handler
from tcpserver.testing import MemoryConnection, memory_server


def test_shout_answers_in_upper_case():
    server = memory_server()
    shout.setup(server)
    wire_handler(server, shout)
    client = MemoryConnection(server)
    assert client.written() == b"welcome - say something\n"
    client.feed(b"hello\nwor")
    client.feed(b"ld\n")
    assert client.written() == b"HELLO\nWORLD\n"


def test_shout_answers_a_long_line_as_one_line():
    server = memory_server()
    shout.setup(server)
    wire_handler(server, shout)
    client = MemoryConnection(server)
    client.written()
    client.feed(b"x" * 5000 + b"\n")  # over MaxLineLength (2048): three pieces
    assert client.written() == b"X" * 5000 + b"\n"


def test_idle_clients_are_dropped():
    server = memory_server(default_idle_timeout=30)
    wire_handler(server, shout)
    client = MemoryConnection(server)
    server.reactor.advance(31)
    assert client.closed
