"""What a connection keeps in memory (Python objects), idle and at rest.

tracemalloc counts what tcpserver's own code allocated and still holds per
connection, over a few hundred in-memory connections.  The bounds are the
budget docs/performance.md explains ("Memory per connection"); the
harness's idle workloads measure the same on real sockets, RSS included.
"""

from __future__ import annotations

import gc
import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from tcpserver.testing import MemoryConnection, MemoryServer, memory_server

#: a connection that has said nothing: its protocol, id and table entry
IDLE_BUDGET = 280


def echo_server(**properties: object) -> MemoryServer:
    server = memory_server(default_eol=b"\n", **properties)
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    MemoryConnection(server, port=1).feed(b"warm up\n")  # (first-use caches)
    return server


def kept_per_connection(
    server: MemoryServer, count: int = 400, line: bytes | None = None
) -> tuple[float, list[MemoryConnection]]:
    """Bytes tcpserver's code holds per connection after ``count`` accepts
    (each sending ``line``, if given)."""
    only_ours = [
        tracemalloc.Filter(True, "*/tcpserver/*"),
        tracemalloc.Filter(False, "*/tcpserver/testing.py"),  # (the in-memory transport)
    ]
    clients = []
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces(only_ours)
        for i in range(count):
            client = MemoryConnection(server, port=2000 + i)
            if line is not None:
                client.feed(line)
            clients.append(client)
        after = tracemalloc.take_snapshot().filter_traces(only_ours)
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return grown / count, clients


class IdleFootprintTests(SynchronousTestCase):
    def test_an_idle_connection_keeps_only_its_protocol_and_entry(self):
        server = echo_server()
        per_connection, clients = kept_per_connection(server)
        self.assertEqual(len(server.connections), len(clients) + 1)
        self.assertLessEqual(per_connection, IDLE_BUDGET)

    def test_the_protocol_has_no_instance_dictionary(self):
        # (a base without __slots__ would add a dictionary to every connection)
        client = MemoryConnection(echo_server())
        self.assertFalse(hasattr(client.protocol, "__dict__"))

    def test_seldom_set_fields_keep_their_values(self):
        # (user_data, timers, an idle timeout of its own: see clocks.Extras)
        server = echo_server()
        client = MemoryConnection(server)
        connection = server.connections[client.connection_id]
        self.assertIsNone(connection.user_data)
        connection.user_data = {"user": "alice"}
        connection.idle_timeout = 30
        self.assertEqual(connection.user_data, {"user": "alice"})
        self.assertEqual(connection.idle_timeout, 30)
        connection.user_data = None
        self.assertIsNone(connection.user_data)
        server.reactor.advance(29)
        self.assertFalse(client.closed)
        server.reactor.advance(2)
        self.assertTrue(client.closed)

    def test_an_idle_timeout_still_closes_a_silent_connection(self):
        # (DefaultIdleTimeout lives on an object of its own: see timeouts.IdleTimer)
        server = echo_server(default_idle_timeout=5)
        client = MemoryConnection(server)
        client.feed(b"one\n")
        server.reactor.advance(4)
        self.assertFalse(client.closed)
        client.feed(b"two\n")  # (traffic restarts the clock)
        server.reactor.advance(4)
        self.assertFalse(client.closed)
        server.reactor.advance(1.5)
        self.assertTrue(client.closed)


class PartsAtRestTests(SynchronousTestCase):
    """A connection that has said something and is quiet keeps only its counts."""

    def test_a_connection_that_said_one_line_keeps_what_an_idle_one_keeps(self):
        idle, _ = kept_per_connection(echo_server())
        spoke, clients = kept_per_connection(echo_server(), line=b"hello\n")
        self.assertEqual([c.transport.value() for c in clients[:2]], [b"hello\n"] * 2)
        self.assertLessEqual(spoke, idle + 120)  # (its counts, when it rested)

    def test_counts_and_settings_survive_the_rest(self):
        server = echo_server()
        client = MemoryConnection(server)
        client.feed(b"abc\n")
        connection = server.connections[client.connection_id]
        self.assertEqual(connection.bytes_sent, 4)
        self.assertEqual(server.factory.stats()["bytes_sent"], 4 + len(b"warm up\n"))
        client.feed(b"defgh\n")
        self.assertEqual(client.transport.value(), b"abc\ndefgh\n")
        self.assertEqual(connection.bytes_sent, 6)
        server.reactor.advance(5)  # (quiet: it rests again after the next line)
        client.feed(b"i\n")
        self.assertEqual(connection.bytes_sent, 2)
        self.assertEqual(server.factory.stats()["bytes_sent"], 4 + 6 + 2 + len(b"warm up\n"))

    def test_a_partial_line_is_kept_across_reads(self):
        server = echo_server()
        client = MemoryConnection(server)
        client.feed(b"one\ntw")
        server.reactor.advance(5)
        client.feed(b"o\n")
        self.assertEqual(client.transport.value(), b"one\ntwo\n")

    def test_a_connections_own_framing_is_kept_and_not_lent_to_others(self):
        server = echo_server()
        first = MemoryConnection(server, port=1001)
        first.feed(b"x\n")
        server.connections[first.connection_id].eol = b"|"
        server.reactor.advance(5)
        first.feed(b"a|b\n|")
        other = MemoryConnection(server, port=1002)
        other.feed(b"c|d\n")
        self.assertEqual(first.transport.value(), b"x\na\nb\n\n")
        self.assertEqual(other.transport.value(), b"c|d\n")

    def test_parts_are_reused_by_the_next_connection(self):
        server = echo_server()
        pool = server.factory.parts
        before = len(pool)
        clients = [MemoryConnection(server, port=3000 + i) for i in range(5)]
        for client in clients:
            client.feed(b"ping\n")
        self.assertEqual(len(pool), before)  # (each took the kit the one before gave back)
        for client in clients:
            self.assertEqual(client.transport.value(), b"ping\n")

    def test_a_busy_connection_keeps_its_parts(self):
        server = echo_server()
        client = MemoryConnection(server)
        client.feed(b"1\n")
        client.feed(b"2\n")  # (less than REST_AFTER later: it keeps its kit)
        taken = len(server.factory.parts)
        client.feed(b"3\n")
        client.feed(b"4\n")
        self.assertEqual(len(server.factory.parts), taken)
        self.assertEqual(client.transport.value(), b"1\n2\n3\n4\n")
