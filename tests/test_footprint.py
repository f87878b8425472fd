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
IDLE_BUDGET = 340


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
