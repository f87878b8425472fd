"""Tier 2: the protocol and factory in memory (MemoryReactorClock, StringTransport).

Uses :mod:`tcpserver.testing`, the helpers we ship for users' handler tests.
trial's SynchronousTestCase fails any test whose code logged an unexpected
failure; tests that provoke one flush it explicitly.
"""

from __future__ import annotations

import os
import tempfile

from helpers import Recorder
from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

from tcpserver import TCPServerError
from tcpserver.delivery import PENDING_READ_LIMIT
from tcpserver.events import DataIn, Error
from tcpserver.testing import MemoryConnection, memory_server


class EventOrderTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server(default_eol=b"\r\n")
        self.rec = Recorder(self.server)

    def test_documented_order(self):
        client = MemoryConnection(self.server, "192.0.2.7", 4242)
        client.feed(b"one\r\ntwo\r\n")
        client.close()
        self.assertEqual(
            self.rec.names(),
            [
                "connection_request",
                "connected",
                "ready_to_send",
                "data_in",
                "data_in",
                "disconnected",
            ],
        )
        request = self.rec.of("connection_request")[0]
        self.assertEqual((request.address, request.port, request.accept), ("192.0.2.7", 4242, True))
        connected = self.rec.of("connected")[0]
        self.assertEqual((connected.status_code, connected.description), (0, "OK"))
        self.assertEqual(connected.connection_id, client.connection_id)
        self.assertEqual(self.rec.of("disconnected")[0].status_code, 0)
        self.assertEqual(self.rec.of("disconnected")[0].description, "OK")

    def test_refused_connection_gets_no_connected_nor_disconnected(self):
        self.server.on("connection_request", lambda e: setattr(e, "accept", False))
        client = MemoryConnection(self.server)
        self.assertTrue(client.transport.disconnecting)
        client.feed(b"ignored\r\n")
        self.server.reactor.advance(0)
        self.assertEqual(self.rec.names(), ["connection_request"])
        self.assertEqual(len(self.server.connections), 0)
        self.assertEqual(self.server.factory.counters["refused_listener"], 1)

    def test_reset_reports_10054(self):
        client = MemoryConnection(self.server)
        client.reset()
        event = self.rec.of("disconnected")[0]
        self.assertEqual(event.status_code, 10054)
        self.assertEqual(event.description, "Connection reset by peer.")

    def test_connection_ids_are_unique_and_never_reused(self):
        seen: set[str] = set()
        for _ in range(50):
            client = MemoryConnection(self.server)
            self.assertNotIn(client.connection_id, seen)
            seen.add(client.connection_id)
            client.close()
        self.assertEqual(len(self.server.connections), 0)

    def test_buffered_partial_line_delivered_at_disconnect(self):
        client = MemoryConnection(self.server)
        client.feed(b"complete\r\npartial")
        client.close()
        self.assertEqual(self.rec.data(), [(b"complete", True), (b"partial", False)])
        self.assertEqual(self.rec.names()[-1], "disconnected")

    def test_half_close_delivers_and_answers_then_closes(self):
        self.server.on("data_in", lambda e: self.server.send(e.connection_id, e.text.upper()))
        client = MemoryConnection(self.server)
        client.feed(b"abc\r\nrest")
        client.half_close()
        self.assertEqual(client.written(), b"ABCREST")
        self.assertTrue(client.transport.disconnecting)
        self.assertFalse(client.transport.aborted)
        self.server.reactor.advance(0)
        self.assertEqual(self.rec.of("disconnected")[0].status_code, 0)


class ListenerIsolationTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server(default_eol=b"\n")
        self.rec = Recorder(self.server)

    def test_raising_listener_is_logged_fires_error_and_connection_survives(self):
        def broken(event):
            if event.text == b"boom":
                raise ZeroDivisionError("listener bug")
            self.server.send(event.connection_id, b"ok:" + event.text + b"\n")

        self.server.on("data_in", broken)
        client = MemoryConnection(self.server)
        client.feed(b"boom\nfine\n")
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        errors = self.rec.of("error")
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0].error_code, 900)
        self.assertIn("ZeroDivisionError", errors[0].description)
        self.assertEqual(errors[0].connection_id, client.connection_id)
        self.assertEqual(client.written(), b"ok:fine\n")
        self.assertFalse(client.closed)

    def test_every_event_listener_may_raise(self):
        def explode(event):
            raise RuntimeError("always")

        for name in (
            "connection_request",
            "connected",
            "ready_to_send",
            "data_in",
            "disconnected",
            "error",
        ):
            self.server.on(name, explode)
        client = MemoryConnection(self.server)
        client.feed(b"x\n")
        client.close()
        # five events raised (error's own failure is only logged)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 10)
        self.assertEqual(self.rec.names().count("disconnected"), 1)

    def test_unknown_event_name(self):
        with self.assertRaises(ValueError) as caught:
            self.server.on("dataIn", print)
        self.assertIn("data_in", str(caught.exception))
        with self.assertRaises(ValueError):
            self.server.off("nope", print)

    def test_off_removes_listener(self):
        calls: list[object] = []
        listener = calls.append
        self.server.on("data_in", listener)
        self.server.off("data_in", listener)
        self.server.off("data_in", listener)  # twice is fine
        MemoryConnection(self.server).feed(b"x\n")
        self.assertEqual(calls, [])


class AsyncListenerTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server(default_eol=b"\n")
        self.rec = Recorder(self.server)

    def test_deferred_data_in_holds_back_later_events_and_reading(self):
        pending = []

        def slow(event):
            d: Deferred[None] = Deferred()
            pending.append(d)
            return d

        self.server.on("data_in", slow)
        client = MemoryConnection(self.server)
        client.feed(b"a\nb\n")
        self.assertEqual(self.rec.data(), [(b"a", True)])
        # reading goes on (a FIN or reset is noticed) until PENDING_READ_LIMIT waits
        self.assertTrue(client.reading)
        lines = (PENDING_READ_LIMIT - 2) // 100
        client.feed(b"c" * 99 + b"\n")
        client.feed((b"c" * 99 + b"\n") * (lines - 1))
        self.assertTrue(client.reading)  # (2 + 100 * lines bytes wait: under the limit)
        client.feed(b"d" * 99 + b"\n")
        self.assertFalse(client.reading)
        client.close()  # disconnected must wait too
        self.assertNotIn("disconnected", self.rec.names())
        pending[0].callback(None)
        self.assertEqual(self.rec.data(), [(b"a", True), (b"b", True)])
        while len(pending) < lines + 3:
            pending[-1].callback(None)
        self.assertEqual(self.rec.data()[-1], (b"d" * 99, True))
        self.assertNotIn("disconnected", self.rec.names())
        pending[-1].callback(None)
        self.assertEqual(self.rec.names()[-1], "disconnected")

    def test_coroutine_listener(self):
        gate: Deferred[None] = Deferred()

        async def handler(event):
            await gate
            self.server.send(event.connection_id, event.text)

        self.server.on("data_in", handler)
        client = MemoryConnection(self.server)
        client.feed(b"x\ny\n")
        self.assertEqual(client.written(), b"")
        gate.callback(None)
        self.assertEqual(client.written(), b"xy")
        self.assertTrue(client.reading)

    def test_failing_async_listener_fires_error(self):
        self.server.on("data_in", lambda e: Deferred.fromCoroutine(self._fail()))
        client = MemoryConnection(self.server)
        client.feed(b"x\n")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)
        self.assertEqual(self.rec.of("error")[0].error_code, 900)
        self.assertTrue(client.reading)

    async def _fail(self):
        raise KeyError("async bug")

    def test_async_connection_request(self):
        decision: Deferred[bool] = Deferred()

        def ask(event):
            def decide(accept):
                event.accept = accept

            return decision.addCallback(decide)

        self.server.on("connection_request", ask)
        client = MemoryConnection(self.server)
        client.feed(b"early\n")
        self.assertEqual(self.rec.names(), ["connection_request"])
        self.assertFalse(client.reading)
        decision.callback(True)
        self.assertEqual(
            self.rec.names(),
            ["connection_request", "connected", "ready_to_send", "data_in"],
        )
        self.assertEqual(self.rec.data(), [(b"early", True)])

    def test_already_fired_deferred_does_not_block(self):
        self.server.on("data_in", lambda e: succeed(None))
        client = MemoryConnection(self.server)
        client.feed(b"a\nb\n")
        self.assertEqual(len(self.rec.of("data_in")), 2)
        self.assertTrue(client.reading)


class FramingInListenerTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server(default_eol=b"\n")
        self.rec = Recorder(self.server)

    def test_change_record_length_inside_listener_applies_to_next_byte(self):
        def header(event: DataIn):
            if event.text.startswith(b"LEN "):
                self.server.change_record_length(event.connection_id, int(event.text[4:]))
            else:
                self.server.change_record_length(event.connection_id, 0)

        self.server.on("data_in", header)
        client = MemoryConnection(self.server)
        client.feed(b"LEN 5\nab\ncdLEN 2\n")
        self.assertEqual(self.rec.data(), [(b"LEN 5", True), (b"ab\ncd", True), (b"LEN 2", True)])

    def test_connection_fields_apply_at_once(self):
        def switch(event):
            self.server.connections[event.connection_id].eol = b"||"

        self.server.on("data_in", switch)
        client = MemoryConnection(self.server)
        client.feed(b"first\nsecond||third||")
        self.assertEqual(self.rec.data(), [(b"first", True), (b"second", True), (b"third", True)])

    def test_single_line_mode_and_max_line_length_per_connection(self):
        client = MemoryConnection(self.server)
        conn = self.server.connections[client.connection_id]
        conn.single_line_mode = True
        conn.max_line_length = 256
        client.feed(b"a\rb\r")
        client.feed(b"\n" + b"z" * 300 + b"\n")
        self.assertEqual(
            self.rec.data(), [(b"a", True), (b"b", True), (b"z" * 256, False), (b"z" * 44, True)]
        )
        with self.assertRaises(TCPServerError) as caught:
            conn.max_line_length = 10
        self.assertEqual(caught.exception.code, 10022)
        self.assertIn("10", caught.exception.description)

    def test_pause_and_process_data(self):
        client = MemoryConnection(self.server)
        cid = client.connection_id
        self.server.pause_data(cid)
        self.assertFalse(self.server.connections[cid].accept_data)
        self.assertFalse(client.reading)
        client.feed(b"held\n")
        self.assertEqual(self.rec.data(), [])
        self.server.process_data(cid)
        self.assertEqual(self.rec.data(), [(b"held", True)])
        self.assertTrue(client.reading)
        self.assertTrue(self.server.connections[cid].accept_data)

    def test_pause_inside_listener_stops_before_next_frame(self):
        self.server.on("data_in", lambda e: self.server.pause_data(e.connection_id))
        client = MemoryConnection(self.server)
        client.feed(b"1\n2\n3\n")
        self.assertEqual(self.rec.data(), [(b"1", True)])
        self.server.process_data(client.connection_id)
        self.assertEqual(self.rec.data(), [(b"1", True), (b"2", True)])

    def test_paused_data_still_delivered_at_close(self):
        client = MemoryConnection(self.server)
        self.server.pause_data(client.connection_id)
        client.feed(b"a\nb")
        client.close()
        self.assertEqual(self.rec.data(), [(b"a", True), (b"b", False)])


class SendTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server()
        self.client = MemoryConnection(self.server)
        self.cid = self.client.connection_id

    def test_send_variants(self):
        self.server.send(self.cid, b"raw")
        self.server.send_bytes(self.cid, bytearray(b"+ba"))
        self.server.send_text(self.cid, "é")
        self.server.send_line(self.cid, "line")
        self.server.send_line(self.cid, b"bytes")
        self.assertEqual(self.client.written(), b"raw+ba\xc3\xa9line\r\nbytes\r\n")
        self.assertEqual(self.server.connections[self.cid].bytes_sent, 7)

    def test_send_line_eol_choice(self):
        self.server.send_line(self.cid, "crlf")  # the manual's default
        self.server.send_line(self.cid, "none", eol=None)  # no EOL on the connection: CRLF
        self.server.connections[self.cid].eol = b"\n"
        self.server.send_line(self.cid, "lf", eol=None)  # the connection's own
        self.server.send_line(self.cid, "nul", eol=b"\0")
        self.server.connections[self.cid].single_line_mode = True
        self.server.send_line(self.cid, "any", eol=None)  # CR, LF or CRLF: CRLF
        self.assertEqual(self.client.written(), b"crlf\r\nnone\r\nlf\nnul\0any\r\n")
        for bad in (b"", "\n", 10):
            with self.assertRaises(TCPServerError) as caught:
                self.server.send_line(self.cid, "x", eol=bad)
            self.assertEqual(caught.exception.code, 10022)
            self.assertIn(repr(bad), str(caught.exception))

    def test_code_page(self):
        self.server.config("CodePage=1252")
        self.server.send_text(self.cid, "€")
        self.server.config("CodePage=1200")
        self.server.send_text(self.cid, "A")
        self.assertEqual(self.client.written(), b"\x80A\x00")
        self.server.config("CodePage=20127")
        with self.assertRaises(TCPServerError) as caught:
            self.server.send_text(self.cid, "ü")
        self.assertEqual(caught.exception.code, 10022)
        self.assertIn("20127", caught.exception.description)

    def test_wrong_types(self):
        with self.assertRaises(TCPServerError) as caught:
            self.server.send(self.cid, "text")
        self.assertIn("'text'", caught.exception.description)
        with self.assertRaises(TCPServerError):
            self.server.send_text(self.cid, b"bytes")

    def test_unknown_and_closed_ids_raise_126(self):
        for call in (
            lambda cid: self.server.send(cid, b"x"),
            lambda cid: self.server.send_line(cid, "x"),
            lambda cid: self.server.disconnect(cid),
            lambda cid: self.server.pause_data(cid),
            lambda cid: self.server.process_data(cid),
            lambda cid: self.server.interrupt(cid),
            lambda cid: self.server.change_record_length(cid, 4),
            lambda cid: self.server.send_file(cid, __file__),
        ):
            with self.assertRaises(TCPServerError) as caught:
                call("no-such-id")
            self.assertEqual(caught.exception.code, 126)
            self.assertIn("no-such-id", caught.exception.description)
        self.client.close()
        with self.assertRaises(TCPServerError) as caught:
            self.server.send(self.cid, b"late")
        self.assertEqual(caught.exception.code, 126)

    def test_send_from_disconnected_listener_raises_126_and_is_isolated(self):
        errors: list[Error] = []
        raised = []

        def late_send(event):
            try:
                self.server.send(event.connection_id, b"x")
            except TCPServerError as exc:
                raised.append(exc.code)
                raise

        self.server.on("error", errors.append)
        self.server.on("disconnected", late_send)
        self.client.close()
        self.assertEqual(raised, [126])
        # the connection closing is the cause, not a listener bug: no error
        # event, no logged failure, and the server carries on
        self.assertEqual(errors, [])
        self.assertEqual(len(self.server.connections), 0)

    def test_disconnect_graceful_and_linger_false(self):
        self.server.send(self.cid, b"bye")
        self.server.disconnect(self.cid)
        self.assertEqual(self.client.written(), b"bye")
        self.assertTrue(self.client.transport.disconnecting)
        self.assertFalse(self.client.transport.aborted)
        self.server.linger = False
        other = MemoryConnection(self.server)
        self.server.disconnect(other.connection_id)
        self.assertTrue(other.transport.aborted)

    def test_writes_in_one_read_batch_are_gathered(self):
        writes = []
        original = self.client.transport.write

        def record(data):
            writes.append(data)
            original(data)

        self.client.transport.write = record
        self.server.factory.connections[self.cid].eol = b"\n"
        self.server.on("data_in", lambda e: self.server.send(e.connection_id, e.text + b"!"))
        self.client.feed(b"a\nb\nc\n")
        self.assertEqual(writes, [b"a!b!c!"])  # one write per read batch
        self.assertEqual(self.client.written(), b"a!b!c!")


class FlowControlTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server()
        self.server.config("SendQueueHighWater=4096")
        self.server.config("SendQueueLowWater=1024")
        self.server.config("SendQueueLimit=8192")
        self.rec = Recorder(self.server)
        self.client = MemoryConnection(self.server)
        self.cid = self.client.connection_id
        self.conn = self.server.connections[self.cid]

    def test_queue_high_water_pauses_reading_and_135_past_limit(self):
        self.client.transport_full()
        self.server.send(self.cid, b"a" * 3000)
        self.assertTrue(self.conn.ready_to_send)
        self.assertTrue(self.client.reading)
        self.server.send(self.cid, b"b" * 3000)
        self.assertFalse(self.conn.ready_to_send)
        self.assertFalse(self.client.reading)
        with self.assertRaises(TCPServerError) as caught:
            self.server.send(self.cid, b"c" * 3000)
        self.assertEqual(caught.exception.code, 135)
        self.assertEqual(self.conn.bytes_sent, 2192)
        self.assertEqual(self.conn.queued_bytes, 8192)
        self.assertEqual(self.client.written(), b"")
        ready_before = len(self.rec.of("ready_to_send"))
        self.client.transport_drained()
        self.assertEqual(self.client.written(), b"a" * 3000 + b"b" * 3000 + b"c" * 2192)
        self.assertTrue(self.conn.ready_to_send)
        self.assertTrue(self.client.reading)
        self.assertEqual(len(self.rec.of("ready_to_send")), ready_before + 1)

    def test_timeout_send_returns_deferred_and_times_out(self):
        self.conn.timeout = 5
        first = self.server.send(self.cid, b"now")
        self.assertIsNone(self.successResultOf(first))
        self.client.transport_full()
        waiting = self.server.send(self.cid, b"x" * 20000)  # beyond the limit: queued
        self.assertNoResult(waiting)
        self.server.reactor.advance(4)
        self.assertNoResult(waiting)
        self.server.reactor.advance(1.5)
        failure = self.failureResultOf(waiting, TCPServerError)
        self.assertEqual(failure.value.code, 10060)
        # the bytes stay queued and go out when the client reads again
        self.client.transport_drained()
        self.assertEqual(self.client.written(), b"now" + b"x" * 20000)

    def test_timeout_send_fires_when_written(self):
        self.conn.timeout = 5
        self.client.transport_full()
        waiting = self.server.send(self.cid, b"y" * 100)
        self.server.reactor.advance(3)
        self.client.transport_drained()
        self.assertIsNone(self.successResultOf(waiting))

    def test_graceful_disconnect_waits_for_queue(self):
        self.client.transport_full()
        self.server.send(self.cid, b"q" * 2000)
        self.server.disconnect(self.cid)
        self.assertFalse(self.client.transport.disconnecting)
        self.client.transport_drained()
        self.assertTrue(self.client.transport.disconnecting)
        self.assertEqual(self.client.written(), b"q" * 2000)


class IdleTimeoutTests(SynchronousTestCase):
    def test_idle_connection_closed_with_10060(self):
        server = memory_server(default_idle_timeout=10)
        rec = Recorder(server)
        client = MemoryConnection(server)
        server.reactor.advance(6)
        client.feed(b"traffic")
        server.reactor.advance(6)
        self.assertFalse(client.closed)
        server.send(client.connection_id, b"out")  # sending counts too
        server.reactor.advance(9)
        self.assertFalse(client.closed)
        server.reactor.advance(1.5)
        self.assertTrue(client.closed)
        server.reactor.advance(0)
        event = rec.of("disconnected")[0]
        self.assertEqual((event.status_code, event.description), (10060, "Connection timed out."))

    def test_per_connection_idle_timeout(self):
        server = memory_server()
        client = MemoryConnection(server)
        server.connections[client.connection_id].idle_timeout = 2
        server.reactor.advance(2.5)
        self.assertTrue(client.closed)


class SendFileTests(SynchronousTestCase):
    def setUp(self):
        self.server = memory_server()
        self.client = MemoryConnection(self.server)
        fd, self.path = tempfile.mkstemp()
        self.content = os.urandom(300_000)
        with os.fdopen(fd, "wb") as f:
            f.write(self.content)
        self.addCleanup(os.unlink, self.path)

    def test_streams_without_blocking_the_reactor(self):
        done = self.server.send_file(self.client.connection_id, self.path)
        # one reactor turn reads a bounded number of chunks, not the file
        self.assertLess(len(self.client.transport.value()), len(self.content))
        for _ in range(100):
            self.server.reactor.advance(0)
        self.assertEqual(self.successResultOf(done), len(self.content))
        self.assertEqual(self.client.written(), self.content)

    def test_follows_transport_pushback(self):
        self.client.transport_full()
        done = self.server.send_file(self.client.connection_id, self.path)
        self.server.reactor.advance(0)
        self.assertEqual(self.client.transport.value(), b"")
        while not done.called:
            self.client.transport_drained()
            self.client.transport_full()
            self.server.reactor.advance(0)
        self.client.transport_drained()
        self.assertEqual(self.client.written(), self.content)

    def test_interrupt(self):
        self.client.transport_full()
        done = self.server.send_file(self.client.connection_id, self.path)
        self.server.interrupt(self.client.connection_id)
        failure = self.failureResultOf(done, TCPServerError)
        self.assertEqual(failure.value.code, 10004)
        self.assertFalse(self.client.closed)
        self.server.send(self.client.connection_id, b"still open")

    def test_missing_file(self):
        with self.assertRaises(TCPServerError) as caught:
            self.server.send_file(self.client.connection_id, "/no/such/file")
        self.assertEqual(caught.exception.code, 10022)  # (a manual code, not 10000 + ENOENT)
        self.assertIn("'/no/such/file'", caught.exception.description)
        self.assertIn("No such file", caught.exception.description)

    def test_every_file_error_has_a_manual_code(self):
        import errno

        from tcpserver.errors import MESSAGES

        for number in errno.errorcode:
            error = TCPServerError.from_file_error(OSError(number, "why"), "send_file: 'f'")
            self.assertIn(error.code, MESSAGES, errno.errorcode[number])
        denied = TCPServerError.from_file_error(OSError(errno.EACCES, "Permission denied"), "x")
        self.assertEqual(denied.code, 10013)

    def test_connection_lost_fails_transfer(self):
        self.client.transport_full()
        done = self.server.send_file(self.client.connection_id, self.path)
        self.client.reset()
        self.assertEqual(self.failureResultOf(done, TCPServerError).value.code, 10054)


class MaxConnectionsTests(SynchronousTestCase):
    def test_limit_refuses_at_once_and_counts(self):
        server = memory_server()
        server.config("MaxConnections=2")
        rec = Recorder(server)
        a, b = MemoryConnection(server), MemoryConnection(server)
        c = MemoryConnection(server)
        self.assertIsNone(c.protocol)
        self.assertEqual(server.factory.counters["refused_max_connections"], 1)
        # one stats() on the factory and the server alike
        self.assertEqual(server.factory.stats()["refused"]["max_connections"], 1)
        self.assertEqual(server.stats(), server.factory.stats())
        self.assertEqual(len(rec.of("connected")), 2)
        a.close()
        d = MemoryConnection(server)
        self.assertIsNotNone(d.protocol)
        del b


class ReviewRegressionTests(SynchronousTestCase):
    """Bugs found in review, each pinned by a test."""

    def test_disconnect_waits_for_send_file(self):
        server = memory_server()
        client = MemoryConnection(server)
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        content = os.urandom(400_000)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        client.transport_full()
        done = server.send_file(client.connection_id, path)
        server.disconnect(client.connection_id)
        with self.assertRaises(TCPServerError):
            server.send_file(client.connection_id, path)  # closing: no more
        while not client.transport.disconnecting:
            client.transport_drained()
            client.transport_full()
            server.reactor.advance(0)
        self.assertEqual(self.successResultOf(done), len(content))
        self.assertEqual(client.written(), content)

    def test_half_close_waits_for_send_file(self):
        server = memory_server(default_eol=b"\n")
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "wb") as f:
            f.write(b"F" * 200_000)
        server.on("data_in", lambda e: server.send_file(e.connection_id, path))
        client = MemoryConnection(server)
        client.transport_full()
        client.feed(b"GET\n")
        client.half_close()
        self.assertFalse(client.transport.disconnecting)
        for _ in range(200):
            client.transport_drained()
            server.reactor.advance(0)
        self.assertEqual(client.written(), b"F" * 200_000)
        self.assertTrue(client.transport.disconnecting)

    def test_idle_timeout_still_reaps_a_half_closed_client_that_never_reads(self):
        server = memory_server(default_eol=b"\n", default_idle_timeout=5)
        server.on("data_in", lambda e: server.send(e.connection_id, b"r" * 200_000))
        client = MemoryConnection(server)
        client.transport_full()
        client.feed(b"req\n")
        client.half_close()
        server.reactor.advance(6)
        self.assertTrue(client.transport.aborted)

    def test_idle_timeout_aborts_a_stuck_graceful_close(self):
        server = memory_server(default_idle_timeout=5)
        rec = Recorder(server)
        client = MemoryConnection(server)
        client.transport_full()
        server.send(client.connection_id, b"y" * 40_000)
        server.disconnect(client.connection_id)  # waits for the queue forever
        server.reactor.advance(5.5)
        self.assertTrue(client.transport.aborted)
        server.reactor.advance(0)
        self.assertEqual(rec.of("disconnected")[0].status_code, 10060)

    def test_idle_close_of_a_peer_that_never_acknowledges_is_aborted(self):
        server = memory_server(default_idle_timeout=5)
        server.config("CloseGracePeriod=0")  # (the idle timeout's own period is the grace)
        client = MemoryConnection(server)
        client.transport.loseConnection = lambda: None  # the FIN is never acknowledged
        server.reactor.advance(5.5)
        self.assertFalse(client.transport.aborted)
        server.reactor.advance(5)
        self.assertTrue(client.transport.aborted)

    def test_timed_sends_stay_bounded_and_are_not_sent_after_timing_out(self):
        server = memory_server(default_timeout=5)
        server.config("SendQueueLimit=1048576")
        client = MemoryConnection(server)
        cid = client.connection_id
        client.transport_full()
        outcomes: list[object] = []
        first = server.send(cid, b"a" * 1_000_000)  # fits the empty queue
        parked = server.send(cid, b"b" * 1_000_000)  # waits for room
        assert first is not None
        assert parked is not None
        first.addBoth(outcomes.append)
        parked.addBoth(outcomes.append)
        with self.assertRaises(TCPServerError) as caught:
            server.send(cid, b"c" * 100_000)  # another full queue's worth: refused
        self.assertEqual(caught.exception.code, 135)
        queued = server.connections[cid].queued_bytes
        self.assertLessEqual(queued, 1_048_576)
        server.reactor.advance(6)
        self.assertEqual([o.value.code for o in outcomes], [10060, 10060])  # type: ignore[attr-defined]
        self.assertIn("were not sent", str(outcomes[1].value))  # type: ignore[attr-defined]
        client.transport_drained()
        self.assertEqual(client.written(), b"a" * 1_000_000)  # never the parked b's

    def test_parked_send_goes_out_in_order_when_room_frees(self):
        server = memory_server(default_timeout=5)
        server.config("SendQueueHighWater=1024")
        server.config("SendQueueLimit=2048")
        client = MemoryConnection(server)
        cid = client.connection_id
        client.transport_full()
        sends = [server.send(cid, bytes([65 + i]) * 900) for i in range(4)]
        client.transport_drained()
        self.assertEqual(client.written(), b"A" * 900 + b"B" * 900 + b"C" * 900 + b"D" * 900)
        for d in sends:
            self.assertIsNone(self.successResultOf(d))

    def test_deferred_waiting_on_an_inner_deferred_still_holds_events(self):
        server = memory_server(default_eol=b"\n")
        rec = Recorder(server)
        inner: Deferred[None] = Deferred()
        server.on(
            "data_in",
            lambda e: succeed(None).addCallback(lambda _: inner) if e.text == b"a" else None,
        )
        client = MemoryConnection(server)
        client.feed(b"a\nb\n")
        self.assertEqual(rec.data(), [(b"a", True)])
        self.assertTrue(client.reading)  # (reading goes on, to PENDING_READ_LIMIT)
        inner.callback(None)
        self.assertEqual(rec.data(), [(b"a", True), (b"b", True)])

    def test_a_listeners_deferred_keeps_its_result(self):
        server = memory_server(default_eol=b"\n")
        shared: Deferred[str] = Deferred()
        server.on("data_in", lambda e: shared)
        MemoryConnection(server).feed(b"x\n")
        shared.callback("DB-CONNECTION")
        got: list[str] = []
        shared.addCallback(got.append)
        self.assertEqual(got, ["DB-CONNECTION"])

    def test_many_small_files_queue_without_recursion(self):
        server = memory_server()
        client = MemoryConnection(server)
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "wb") as f:
            f.write(b"0123456789")
        results = [server.send_file(client.connection_id, path) for _ in range(2000)]
        for _ in range(50):
            server.reactor.advance(0)
        self.assertEqual([self.successResultOf(d) for d in results], [10] * 2000)
        self.assertEqual(client.written(), b"0123456789" * 2000)

    def test_file_read_errors_fail_that_file_and_the_next_one_runs(self):
        server = memory_server()
        client = MemoryConnection(server)
        fd, path = tempfile.mkstemp()
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, "wb") as f:
            f.write(b"ok")
        # a regular file whose read() fails with EIO
        bad = server.send_file(client.connection_id, "/proc/self/mem")
        good = server.send_file(client.connection_id, path)
        failure = self.failureResultOf(bad, TCPServerError)
        self.assertIn("reading failed", failure.value.description)
        self.assertEqual(self.successResultOf(good), 2)
        self.assertEqual(client.written(), b"ok")

    def test_special_files_are_refused(self):
        server = memory_server()
        client = MemoryConnection(server)
        directory = tempfile.mkdtemp()
        fifo = os.path.join(directory, "fifo")
        os.mkfifo(fifo)
        self.addCleanup(os.rmdir, directory)
        self.addCleanup(os.unlink, fifo)
        with self.assertRaises(TCPServerError) as caught:
            server.send_file(client.connection_id, fifo)
        self.assertEqual(caught.exception.code, 10022)
        self.assertIn("not a regular file", caught.exception.description)

    def test_no_data_in_before_ready_to_send(self):
        server = memory_server(default_eol=b"\n")
        decision: Deferred[None] = Deferred()
        server.on("connection_request", lambda e: decision)
        server.on("connected", lambda e: server.process_data(e.connection_id))
        rec = Recorder(server)
        client = MemoryConnection(server)
        client.feed(b"early\n")
        decision.callback(None)
        self.assertEqual(
            rec.names(), ["connection_request", "connected", "ready_to_send", "data_in"]
        )

    def test_no_ready_to_send_right_after_a_full_queue_in_connected(self):
        server = memory_server()
        server.config("SendQueueLimit=1024")
        server.config("SendQueueHighWater=1024")

        def flood(event):
            protocol = server.connections[event.connection_id].protocol
            protocol.pauseProducing()
            try:
                server.send(event.connection_id, b"z" * 5000)
                server.send(event.connection_id, b"z" * 5000)
            except TCPServerError:
                pass

        server.on("connected", flood)
        rec = Recorder(server)
        client = MemoryConnection(server)
        self.assertEqual(rec.names(), ["connection_request", "connected"])
        client.transport_drained()
        self.assertEqual(rec.names()[-1], "ready_to_send")

    def test_closed_connection_releases_its_queue(self):
        server = memory_server()
        client = MemoryConnection(server)
        conn = server.connections[client.connection_id]
        client.transport_full()
        server.send(client.connection_id, b"q" * 100_000)
        self.assertEqual(conn.queued_bytes, 100_000)
        client.reset()
        self.assertEqual(conn.queued_bytes, 0)
