"""Tier 3: real sockets on 127.0.0.1, port 0, with the global reactor.

Blocking Python clients run in threads (``in_thread``) while the reactor
serves; every event, framing mode, send method and lifecycle error is seen
through a real TCP (or UNIX) socket here.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import pytest
import pytest_twisted
from helpers import Recorder, client, in_thread, listen, read_until, until
from twisted.internet import reactor
from twisted.internet.endpoints import serverFromString

from tcpserver import TCPServer, TCPServerError, TCPServerFactory
from tcpserver.handlers import echo, wire_handler

# -- events ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_event_through_a_real_socket(server, recorder):
    server.default_eol = b"\r\n"
    server.on("data_in", lambda e: server.send_line(e.connection_id, b"got " + e.text))
    port = listen(server)

    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    with sock:
        local_port = sock.getsockname()[1]
        await in_thread(sock.sendall, b"hello\r\nwor")
        await recorder.wait("data_in")  # "wor" arrives in a later read
        await in_thread(sock.sendall, b"ld\r\n")
        answer = await in_thread(read_until, sock, 22)
    assert answer == b"got hello\r\ngot world\r\n"
    await recorder.wait("disconnected")
    cid = recorder.of("connected")[0].connection_id
    assert recorder.names(cid) == [
        "connected",
        "ready_to_send",
        "data_in",
        "data_in",
        "disconnected",
    ]
    request = recorder.of("connection_request")[0]
    assert (request.address, request.port) == ("127.0.0.1", local_port)
    assert recorder.data() == [(b"hello", True), (b"world", True)]
    assert recorder.of("disconnected")[0].status_code == 0
    assert cid not in server.connections


@pytest_twisted.ensureDeferred
async def test_connection_fields_while_connected(server, recorder):
    port = listen(server)
    seen: dict[str, object] = {}

    def on_connected(event):
        conn = server.connections[event.connection_id]
        seen.update(
            id=conn.connection_id,
            host=conn.remote_host,
            port=conn.remote_port,
            local=conn.local_address,
            connected=conn.connected,
            ready=conn.ready_to_send,
            eol=conn.eol,
            mll=conn.max_line_length,
            accept=conn.accept_data,
        )
        conn.user_data = {"any": "object"}

    server.on("connected", on_connected)

    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    with sock:
        client_port = sock.getsockname()[1]
        await recorder.wait("connected")  # (seen while connected)
    await recorder.wait("disconnected")
    assert seen == {
        "id": recorder.of("connected")[0].connection_id,
        "host": "127.0.0.1",
        "port": client_port,
        "local": "127.0.0.1",
        "connected": True,
        "ready": True,
        "eol": b"",
        "mll": 2048,
        "accept": True,
    }


@pytest_twisted.ensureDeferred
async def test_reset_by_peer_reports_10054(server, recorder):
    port = listen(server)

    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    await in_thread(sock.sendall, b"partial")
    await recorder.wait("data_in")  # delivered, then the reset
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    await recorder.wait("disconnected")
    event = recorder.of("disconnected")[0]
    assert (event.status_code, event.description) == (10054, "Connection reset by peer.")
    assert recorder.data() == [(b"partial", True)]


@pytest_twisted.ensureDeferred
async def test_refused_client_is_closed_without_connected(server, recorder):
    server.on("connection_request", lambda e: setattr(e, "accept", False))
    port = listen(server)

    def knock():
        try:
            return client(port, b"knock", shut=True)
        except OSError:
            return b""  # reset or already gone: unread bytes make the kernel send RST

    assert await in_thread(knock) == b""
    # a second knock, refused alike, comes after all that the first one could cause
    assert await in_thread(knock) == b""
    await recorder.wait("connection_request", 2)
    assert recorder.names() == ["connection_request"] * 2


@pytest_twisted.ensureDeferred
async def test_raising_listener_keeps_connection_and_server(server, recorder, logged):
    server.default_eol = b"\n"

    def handler(event):
        if event.text == b"bad":
            raise ValueError("handler bug")
        server.send(event.connection_id, event.text + b"\n")

    server.on("data_in", handler)
    port = listen(server)
    got = await in_thread(client, port, b"bad\ngood\n", 5)
    assert got == b"good\n"
    assert len(logged.flush(ValueError)) == 1
    assert recorder.of("error")[0].error_code == 900
    assert await in_thread(client, port, b"again\n", 6) == b"again\n"


# -- framing ---------------------------------------------------------------------


async def paced(server: TCPServer, port: int, pieces: list[bytes]) -> None:
    """Send pieces as separate reads: each once the server has read the one before."""
    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        received = server.stats()["bytes_received"]
        for piece in pieces:
            await in_thread(sock.sendall, piece)
            received += len(piece)

            def read_it(count: int = received) -> bool:
                return bool(server.stats()["bytes_received"] >= count)

            await until(read_it)


@pytest_twisted.ensureDeferred
async def test_multibyte_and_nul_eol_split_across_reads(server, recorder):
    server.default_eol = b"\x00END"
    port = listen(server)
    await paced(server, port, [b"one\x00E", b"N", b"D\x00ENDtw", b"o\x00END", b"tail"])
    await recorder.wait("disconnected")
    assert recorder.data() == [(b"one", True), (b"", True), (b"two", True), (b"tail", False)]


@pytest_twisted.ensureDeferred
async def test_single_line_mode_crlf_split_across_reads(server, recorder):
    server.default_single_line_mode = True
    port = listen(server)
    await paced(server, port, [b"a\r", b"\nb\n", b"c\rd\r", b"\n"])
    await recorder.wait("disconnected")
    assert recorder.data() == [(b"a", True), (b"b", True), (b"c", True), (b"d", True)]


@pytest_twisted.ensureDeferred
async def test_record_length_and_max_line_length(server, recorder):
    server.default_eol = b"\n"
    server.default_max_line_length = 256

    def on_data(event):
        if event.text == b"RECORDS":
            server.change_record_length(event.connection_id, 3)

    server.on("data_in", on_data)
    port = listen(server)
    await paced(server, port, [b"x" * 300 + b"\nRECORDS\n", b"abcdef", b"gh"])
    await recorder.wait("disconnected")
    assert recorder.data() == [
        (b"x" * 256, False),
        (b"x" * 44, True),
        (b"RECORDS", True),
        (b"abc", True),
        (b"def", True),
        (b"gh", False),
    ]


@pytest_twisted.ensureDeferred
async def test_raw_mode_delivers_chunks(server, recorder):
    port = listen(server)
    await paced(server, port, [b"first", b"second"])
    await recorder.wait("disconnected")
    assert b"".join(t for t, _ in recorder.data()) == b"firstsecond"
    assert all(eol for _, eol in recorder.data())


# -- sending ------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_methods(server, recorder, tmp_path):
    blob = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "blob.bin"
    path.write_bytes(blob)
    results: list[int] = []

    def on_connected(event):
        cid = event.connection_id
        server.send(cid, b"send|")
        server.send_bytes(cid, b"send_bytes|")
        server.send_text(cid, "send_text \u00e9|")
        server.send_line(cid, "send_line")
        server.send_file(cid, str(path)).addCallback(results.append)

    server.on("connected", on_connected)
    port = listen(server)
    expected = b"send|send_bytes|send_text \xc3\xa9|send_line\r\n" + blob
    got = await in_thread(client, port, b"", len(expected), timeout=20)
    assert got == expected
    assert results == [len(blob)]


@pytest_twisted.ensureDeferred
async def test_interrupt_stops_send_file_and_keeps_connection(server, recorder, tmp_path):
    path = tmp_path / "big.bin"
    path.write_bytes(b"z" * (64 * 1024 * 1024))
    outcome = []

    def on_data(event):
        cid = event.connection_id
        if event.text == b"file":
            server.send_file(cid, str(path)).addErrback(lambda f: outcome.append(f.value.code))
        elif event.text == b"stop":
            server.interrupt(cid)
            server.send(cid, b"|STOPPED")

    server.default_eol = b"\n"
    server.on("data_in", on_data)
    port = listen(server)

    def talk():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"file\n")
            first = read_until(sock, 100_000, 5)  # some of it arrives
            sock.sendall(b"stop\n")
            rest = b""
            while not rest.endswith(b"|STOPPED"):
                chunk = sock.recv(1 << 20)
                assert chunk
                rest += chunk
            return len(first) + len(rest) - len(b"|STOPPED")

    received = await in_thread(talk)
    assert outcome == [10004]
    assert 100_000 <= received < 64 * 1024 * 1024


@pytest_twisted.ensureDeferred
async def test_answers_leave_during_the_read_without_a_write_registration(
    server, recorder, monkeypatch
):
    # On plain TCP with nothing buffered, a read batch's answer is sent at once:
    # the socket is never registered for writing (Twisted's write() would).
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    registered: list[object] = []
    add_writer = reactor.addWriter

    def spy(selectable):
        registered.append(selectable)
        return add_writer(selectable)

    monkeypatch.setattr(reactor, "addWriter", spy)
    lines = b"".join(b"%05d\n" % i for i in range(2000))

    def talk():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(lines)
            return read_until(sock, len(lines))

    assert await in_thread(talk) == lines
    await recorder.wait("disconnected")
    assert recorder.of("disconnected")[0].status_code == 0
    assert registered == []


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_reading_still_pauses_direct_sends(server, recorder):
    # The protocol becomes the transport's producer only once the transport
    # buffers: flow control must still see the buffer fill and drain.
    server.default_eol = b"\n"
    server.config("SendQueueHighWater=65536")
    chunk = os.urandom(64 * 1024)
    sent = bytearray()
    state: dict[str, Any] = {}

    def on_connected(event):
        state["cid"] = event.connection_id

    def fill(event):
        cid = event.connection_id
        while server.connections[cid].ready_to_send and len(sent) < 64 * len(chunk):
            server.send(cid, chunk)
            sent.extend(chunk)
        state["paused_after"] = len(sent)

    server.on("connected", on_connected)
    server.on("data_in", fill)
    ready: list[str] = []
    server.on("ready_to_send", lambda e: ready.append(e.connection_id))
    port = listen(server)

    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    with sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        await in_thread(sock.sendall, b"go\n")
        # not reading: the kernel buffers fill, then ours, until ready_to_send goes False
        await recorder.wait("data_in")
        received = await in_thread(read_until, sock, state["paused_after"], 20)
    assert state["paused_after"] < 64 * len(chunk)  # ready_to_send went False
    assert received == bytes(sent)  # everything, in order, once read
    assert len(ready) >= 2  # once at connect, again when the buffer drained


# -- lifecycle -----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_start_listening_binds_synchronously_and_reports_port(server):
    assert server.local_port == 0
    server.start_listening()
    assert server.listening
    assert server.local_port > 0
    # bound now: a plain connect succeeds before the reactor turns again
    with socket.create_connection(("127.0.0.1", server.local_port), timeout=2):
        pass
    with pytest.raises(TCPServerError) as caught:
        server.start_listening()
    assert caught.value.code == 104


@pytest_twisted.ensureDeferred
async def test_address_in_use_is_10048(server):
    port = listen(server)
    other = TCPServer(local_host="127.0.0.1", local_port=port)
    with pytest.raises(TCPServerError) as caught:
        other.start_listening()
    assert caught.value.code == 10048
    assert str(port) in caught.value.description
    assert not other.listening


def test_bad_addresses_are_10049_or_11001():
    with pytest.raises(TCPServerError) as caught:
        TCPServer(local_host="192.0.2.123").start_listening()  # TEST-NET, not ours
    assert caught.value.code == 10049
    assert "192.0.2.123" in caught.value.description
    with pytest.raises(TCPServerError) as caught:
        TCPServer(local_host="no-such-host.invalid").start_listening()
    assert caught.value.code in (11001, 11002)
    with pytest.raises(TCPServerError) as caught:
        TCPServer(local_host="::1").start_listening()  # UseIPv6 = 0
    assert caught.value.code == 10049


def test_permission_denied_is_10013(tmp_path):
    """Bind a privileged port as an unprivileged user (a subprocess if we are root)."""
    import subprocess
    import sys

    script = (
        "import os, sys\n"
        "from tcpserver import TCPServer, TCPServerError\n"
        "server = TCPServer(local_host='127.0.0.1', local_port=1)\n"
        "if os.getuid() == 0:  # imports done: the stdlib may be unreadable for nobody\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        "    server.start_listening()\n"
        "except TCPServerError as e:\n"
        "    print(e.code, e.description)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.stdout.startswith("10013 "), out.stdout + out.stderr
    assert "127.0.0.1:1" in out.stdout


@pytest_twisted.ensureDeferred
async def test_changes_refused_while_listening(server):
    listen(server)
    for attempt, code in (
        (lambda: setattr(server, "local_port", 1234), 106),
        (lambda: setattr(server, "local_host", "0.0.0.0"), 107),  # noqa: S104
        (lambda: server.config("MaxConnections=5"), 108),
    ):
        with pytest.raises(TCPServerError) as caught:
            attempt()
        assert caught.value.code == code
    await server.stop_listening()
    server.config("MaxConnections=5")
    assert server.config("MaxConnections") == "5"


@pytest_twisted.ensureDeferred
async def test_stop_listening_keeps_connections_shutdown_closes_them(server, recorder):
    server.default_eol = b"\n"
    wire_handler(server, echo)
    port = listen(server)
    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    try:
        await recorder.wait("connected")
        await server.stop_listening()
        assert not server.listening
        with pytest.raises(ConnectionRefusedError):
            await in_thread(socket.create_connection, ("127.0.0.1", port), 1)
        await in_thread(sock.sendall, b"still here\n")
        assert await in_thread(read_until, sock, 11) == b"still here\n"
        await server.shutdown()
        assert len(server.connections) == 0
        assert recorder.of("disconnected")[0].status_code == 0
        assert await in_thread(read_until, sock, 1, 2, True) == b""  # EOF
    finally:
        sock.close()


@pytest_twisted.ensureDeferred
async def test_restart_after_stop(server):
    port = listen(server)
    await server.stop_listening()
    server.start_listening()
    assert server.local_port == port


@pytest_twisted.ensureDeferred
async def test_reset_restores_defaults(server, recorder):
    server.default_eol = b"\n"
    server.config("MaxConnections=7")
    port = listen(server)
    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    await recorder.wait("connected")
    server.reset()
    assert not server.listening
    assert server.default_eol == b""
    assert server.config("MaxConnections") == "1000"
    await recorder.wait("disconnected")
    sock.close()


@pytest_twisted.ensureDeferred
async def test_tcp_nodelay_and_ipv6_settings(server, recorder):
    server.config("TcpNoDelay=True")
    port = listen(server)
    sock = await in_thread(socket.create_connection, ("127.0.0.1", port))
    await recorder.wait("connected")
    cid = recorder.of("connected")[0].connection_id
    handle = server.connections[cid].protocol.transport.getHandle()
    assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    sock.close()


@pytest.mark.parametrize(
    ("use_ipv6", "v4_ok", "v6_ok"), [(0, True, False), (1, False, True), (2, True, True)]
)
@pytest_twisted.ensureDeferred
async def test_use_ipv6(use_ipv6, v4_ok, v6_ok):
    srv = TCPServer()
    srv.config(f"UseIPv6={use_ipv6}")
    rec = Recorder(srv)
    srv.start_listening()
    try:
        for family, host, ok in (
            (socket.AF_INET, "127.0.0.1", v4_ok),
            (socket.AF_INET6, "::1", v6_ok),
        ):

            def connect(family=family, host=host):
                with socket.socket(family) as sock:
                    sock.settimeout(2)
                    try:
                        sock.connect((host, srv.local_port))
                    except OSError:
                        return False
                    return True

            assert await in_thread(connect) == ok, (host, use_ipv6)
        if use_ipv6 == 2:
            await rec.wait("connection_request", 2)
            assert [e.address for e in rec.of("connection_request")] == ["127.0.0.1", "::1"]
    finally:
        await srv.shutdown(timeout=1)


@pytest_twisted.ensureDeferred
async def test_stats_count_what_happens(server, recorder):
    server.default_eol = b"\n"
    server.config("BlockedClients=10.1.2.3")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    before = server.stats()
    assert before["connections_open"] == 0
    assert before["refused"]["access"] == 0

    def talk():
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"one\ntwo\n")
            return read_until(sock, 8)

    assert await in_thread(talk) == b"one\ntwo\n"
    await recorder.wait("disconnected")
    # an open connection whose reading is paused
    paused = socket.create_connection(("127.0.0.1", port))
    try:
        await recorder.wait_for(lambda: len(recorder.of("connected")) == 2)
        cid = recorder.of("connected")[1].connection_id
        server.pause_data(cid)
        stats = server.stats()
        assert stats["connections_open"] == 1
        assert stats["connections_paused"] == 1
        assert stats["connections_accepted"] == 2
        assert stats["bytes_received"] == 8
        assert stats["bytes_sent"] == 8
        assert stats["events"]["data_in"] == 2
        assert stats["events"]["connected"] == 2
        assert stats["handler_errors"] == 0
        server.process_data(cid)
        assert server.stats()["connections_paused"] == 0
    finally:
        paused.close()
    await recorder.wait_for(lambda: len(recorder.of("disconnected")) == 2)
    # a refusal, by reason
    server.config("BlockedClients=127.0.0.1")
    assert await in_thread(client, port, b"", 1, timeout=2) == b""
    await until(lambda: server.stats()["refused"]["access"])
    assert server.stats()["refused"] == {
        "max_connections": 0, "per_address": 0, "rate": 0, "access": 1, "listener": 0,
        "emfile": 0, "proxy": 0,
    }  # fmt: skip
    assert server.stats()["connections_open"] == 0


# -- the factory with any endpoint --------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_factory_with_tcp_endpoint():
    factory = TCPServerFactory(default_eol=b"\n")
    wire_handler(factory, echo)
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
    try:
        got = await in_thread(client, port.getHost().port, b"via endpoint\n", 13)
        assert got == b"via endpoint\n"
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_factory_with_unix_endpoint(tmp_path):
    factory = TCPServerFactory(default_eol=b"\n")
    rec = Recorder(factory)
    wire_handler(factory, echo)
    path = str(tmp_path / "tcpserver.sock")
    port = await serverFromString(reactor, f"unix:{path}").listen(factory)

    def talk():
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"over unix\n")
            return read_until(sock, 10)

    try:
        assert await in_thread(talk) == b"over unix\n"
        await rec.wait("disconnected")
        assert rec.of("connection_request")[0].port == 0
    finally:
        await port.stopListening()


# -- manual-style loops: do_events() and run() in their own process -------------------------

DO_EVENTS_SCRIPT = """
import socket, sys, threading
from tcpserver import TCPServer
server = TCPServer(local_host="127.0.0.1", default_eol=b"\\n")
got = []
server.on("data_in", lambda e: (got.append(e.text), server.send_line(e.connection_id, e.text)))
server.start_listening()
answer = []
def talk():
    with socket.create_connection(("127.0.0.1", server.local_port)) as s:
        s.sendall(b"pumped\\n")
        answer.append(s.recv(100))
t = threading.Thread(target=talk)
t.start()
while t.is_alive():
    server.do_events(0.05)
print(got, answer)
"""


def test_do_events_loop_without_a_running_reactor(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", DO_EVENTS_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.stdout.strip() == "[b'pumped'] [b'pumped\\r\\n']", out.stderr


RUN_SCRIPT = """
import sys
from tcpserver import TCPServer
server = TCPServer(local_host="127.0.0.1", default_eol=b"\\n")
server.on("disconnected", lambda e: print("disconnected", e.connection_id, flush=True))
server.on("connected", lambda e: print("connected", e.connection_id, flush=True))
server.start_listening()
print("port", server.local_port, flush=True)
server.run()
print("run returned", flush=True)
"""


def test_run_until_sigterm_closes_connections(processes):
    import signal
    import sys

    proc = processes.start([sys.executable, "-c", RUN_SCRIPT], merge_stderr=False)
    port = int(proc.next_line().split()[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    assert proc.next_line().startswith("connected")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.err_log()
    assert proc.log().splitlines()[2:] == ["disconnected 1", "run returned"]
    assert sock.recv(10) == b""
    sock.close()


@pytest_twisted.ensureDeferred
async def test_bytes_sent_with_a_timeout_set_is_zero_over_a_socket(server, recorder):
    server.default_timeout = 5
    server.default_eol = b"\n"
    seen: list[int] = []

    def answer(event):
        done = server.send(event.connection_id, event.text + b"\n")
        seen.append(server.connections[event.connection_id].bytes_sent)
        return done

    server.on("data_in", answer)
    port = listen(server)
    assert await in_thread(client, port, b"hello\n", 6) == b"hello\n"
    assert seen == [0]


# -- accepting ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_listening_path_accepts_without_building_socket_enums(
    server, tmp_path, monkeypatch
):
    """
    Ports the server listens on accept through QuickAcceptSocket: the
    reactor thread builds no AddressFamily/SocketKind member per accepted
    connection (socket.accept builds two), and the connection works.
    """
    import threading

    server.default_eol = b"\n"
    wire_handler(server, echo)
    port = listen(server)
    tcp_port = await server.listen_endpoint("tcp:0:interface=127.0.0.1")
    unix_path = str(tmp_path / "quick.sock")
    await server.listen_endpoint(f"unix:{unix_path}")
    adopted = TCPServer(local_host="127.0.0.1", default_eol=b"\n")
    wire_handler(adopted, echo)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        bound.listen(8)
        adopted.adopt_listening_socket(bound.fileno())
        adopted_port = bound.getsockname()[1]
    reactor_thread = threading.get_ident()
    built: list[type] = []
    convert = socket._intenum_converter  # type: ignore[attr-defined]

    def counting(value: int, enum_class: type) -> object:
        if threading.get_ident() == reactor_thread:
            built.append(enum_class)
        return convert(value, enum_class)

    monkeypatch.setattr(socket, "_intenum_converter", counting)

    def talk(family: int, address: object) -> bytes:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(address)
            sock.sendall(b"quick\n")
            return read_until(sock, 6)

    try:
        for family, address in [
            (socket.AF_INET, ("127.0.0.1", port)),
            (socket.AF_INET, ("127.0.0.1", tcp_port.getHost().port)),
            (socket.AF_UNIX, unix_path),
            (socket.AF_INET, ("127.0.0.1", adopted_port)),
        ]:
            assert await in_thread(talk, family, address) == b"quick\n"
        assert built == []
    finally:
        await adopted.shutdown(timeout=2)
