"""``--workers N``: a supervisor, worker processes sharing one socket, restarts."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import LISTENING, ServerProcess, ServerProcesses, read_until, run_twistd, wait_until

from tcpserver.tap import Options
from tcpserver.workers import worker_args

WHO = textwrap.dedent(
    """
    import os

    def on_data_in(server, event):
        server.send(event.connection_id, b"%d %s\\n" % (os.getpid(), event.connection_id.encode()))
    """
)


@pytest.fixture
def pool(processes: ServerProcesses, tmp_path):
    (tmp_path / "who.py").write_text(WHO)

    def start(*args: str) -> ServerProcess:
        proc = processes.twistd(
            "--interface", "127.0.0.1", "--handler", "who", "--port", "0", *args
        )
        proc.wait_for(LISTENING)  # started up
        return proc

    return start


def ask(port: int, sock: socket.socket | None = None) -> tuple[int, str, socket.socket]:
    """Send a line; returns (worker pid, connection id, the open socket)."""
    if sock is None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"who\r\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(100)
        assert chunk, "connection closed"
        reply += chunk
    pid, cid = reply.decode().split()
    return int(pid), cid, sock


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def worker_pids(proc: ServerProcess, count: int) -> list[int]:
    pids = []
    for index in range(count):
        match = proc.wait_for(rf"worker {index} started \(pid (\d+)\)")
        pids.append(int(match.group(1)))
    return pids


def test_two_workers_serve_share_the_socket_and_restart(pool):
    proc = pool("--workers", "2")
    pids = worker_pids(proc, 2)
    proc.wait_for("serving descriptor 3", count=2)  # both workers serve
    # many connections, all served, by both workers, with ids unique server-wide
    served: dict[int, list[socket.socket]] = {pid: [] for pid in pids}
    ids = set()
    socks: list[socket.socket] = []
    deadline = time.monotonic() + 30
    while (len(socks) < 40 or not all(served.values())) and time.monotonic() < deadline:
        pid, cid, sock = ask(proc.port)
        assert pid in served
        assert cid.startswith(("w0.0-", "w1.0-"))
        assert cid not in ids
        ids.add(cid)
        served[pid].append(sock)
        socks.append(sock)
    assert all(served.values()), f"one worker served nothing: {[len(v) for v in served.values()]}"
    # killing one worker costs only its own connections ...
    victim, survivor = pids
    os.kill(victim, signal.SIGKILL)
    for sock in served[victim]:
        sock.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(10) == b""
    for sock in served[survivor]:
        assert ask(proc.port, sock)[0] == survivor
    # ... and it comes back, with a new generation of ids
    match = proc.wait_for(rf"worker (\d) started \(pid (?!(?:{pids[0]}|{pids[1]})\))(\d+)\)")
    assert "exited unexpectedly" in proc.log()
    seen = set()
    deadline = time.monotonic() + 30
    while int(match.group(2)) not in seen and time.monotonic() < deadline:
        pid, cid, sock = ask(proc.port)
        seen.add(pid)
        sock.close()
        if pid == int(match.group(2)):
            assert cid.startswith(f"w{match.group(1)}.1-")
    assert int(match.group(2)) in seen
    for sock in socks:
        sock.close()
    assert proc.stop() == 0


def test_sigterm_drains_every_worker(pool, tmp_path):
    proc = pool("--workers", "2")
    pids = worker_pids(proc, 2)
    proc.wait_for("serving descriptor 3", count=2)  # both workers serve
    _pid, _cid, sock = ask(proc.port)
    assert proc.stop() == 0
    # the open connection was closed gracefully by its worker, not reset
    sock.settimeout(10)
    assert read_until(sock, 1, 10) == b""
    wait_until(lambda: not any(alive(worker) for worker in pids), timeout=10)
    for worker in pids:
        assert not alive(worker)
    assert "restarting" not in proc.log()


def test_worker_arguments_and_shares(tmp_path: Path):
    assert worker_args(["--workers", "4", "--port", "9", "--workers=2", "-c", "A=1"]) == [
        "--port",
        "9",
        "-c",
        "A=1",
    ]
    options = Options()
    options.parseOptions(
        [
            *("--worker-fd", "3", "--worker-index", "1", "--worker-generation", "2"),
            *("--worker-count", "3", "--config", "MaxConnections=10"),
        ]
    )
    server = options["server"]
    assert server.factory.id_prefix == "w1.2-"
    assert server.settings["MaxConnections"] == 4  # a third of 10, rounded up
    assert options.raw_args[:2] == ["--worker-fd", "3"]


def test_negative_workers_is_a_usage_error(tmp_path: Path):
    result = run_twistd(tmp_path, "--workers", "-1")
    assert result.returncode != 0
    assert "--workers must be 0 or more" in result.stdout + result.stderr


def test_run_workers_from_python(processes, tmp_path):
    (tmp_path / "who.py").write_text(WHO)
    code = (
        "from tcpserver.workers import run_workers; "
        "run_workers(2, port=0, host='127.0.0.1', args=['--handler', 'who'])"
    )
    proc = processes.start([sys.executable, "-c", code])
    port = int(proc.wait_for(r"listening on .* \(port (\d+)\) with 2 workers").group(1))
    proc.wait_for("serving descriptor 3", count=2)
    pid, cid, sock = ask(port)
    assert alive(pid)
    assert cid.startswith(("w0.0-", "w1.0-"))
    sock.close()
    proc.signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert not alive(pid)


def test_sighup_reloads_every_worker_and_the_supervisor_keeps_running(pool):
    proc = pool("--workers", "2")
    pids = worker_pids(proc, 2)
    proc.wait_for("serving descriptor 3", count=2)
    proc.signal(signal.SIGHUP)
    proc.wait_for(r"SIGHUP: reloading 2 worker")
    proc.wait_for(r"tcpserver: reloaded", count=2)  # each worker reloaded itself
    assert proc.proc.poll() is None  # the supervisor did not die of the signal
    assert all(alive(worker) for worker in pids)
    served, _cid, sock = ask(proc.port)
    sock.close()
    assert served in pids
    # SIGTERM: the same exit status as a single process (0), not a re-raised signal
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not any(alive(worker) for worker in pids)


def test_workers_drain_and_exit_when_the_supervisor_is_killed(pool):
    proc = pool("--workers", "2")
    pids = worker_pids(proc, 2)
    proc.wait_for("serving descriptor 3", count=2)
    _pid, _cid, sock = ask(proc.port)
    proc.kill()  # SIGKILL: no handler runs in the supervisor
    wait_until(lambda: not any(alive(worker) for worker in pids), timeout=20)
    # the open connection was closed gracefully by its worker (drained), not reset
    sock.settimeout(10)
    assert read_until(sock, 1, 10) == b""
    sock.close()
    assert "supervisor gone: draining" in proc.drain()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proc.port), timeout=2).close()


def test_a_single_server_exits_0_after_sigterm_and_1_after_a_second(processes, tmp_path):
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            from twisted.internet import defer, reactor

            def on_data_in(server, event):
                server.send(event.connection_id, b"busy\\n")
                d = defer.Deferred()
                reactor.callLater(30, d.callback, None)  # a listener that takes its time
                return d
            """
        )
    )
    proc = processes.twistd("--interface", "127.0.0.1", "--port", "0")  # (the echo handler)
    proc.wait_for(LISTENING)
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as echoed:
        echoed.sendall(b"up\r\n")
        assert read_until(echoed, 4, 10) == b"up\r\n"  # (the reactor runs: handlers are in)
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0  # (not -15: twistd does not re-raise the signal)
    proc = processes.twistd(
        "--interface", "127.0.0.1", "--port", "0", "--handler", "slow", "--drain-timeout", "60"
    )
    proc.wait_for(LISTENING)
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
    sock.sendall(b"wait\r\n")
    assert read_until(sock, 5, 10) == b"busy\n"  # (its listener is pending now)
    proc.signal(signal.SIGTERM)
    proc.wait_for(r"SIGTERM: draining 1 connection")
    proc.signal(signal.SIGTERM)  # impatient: exit now
    assert proc.wait(timeout=30) == 1
    assert "again: exiting without draining" in proc.log()
    sock.close()


def test_the_signal_story_is_told_the_same_in_help_and_docs(tmp_path: Path):
    from tcpserver._signals import SIGNALS_TEXT

    def flat(text: str) -> str:
        return "".join(text.split())  # (--help wraps lines, at hyphens too)

    shown = run_twistd(tmp_path, "--help")
    assert flat(SIGNALS_TEXT) in flat(shown.stdout + shown.stderr)
    docs = Path(__file__).resolve().parent.parent / "docs"
    for page in ("twistd.rst", "operations.rst"):
        assert flat(SIGNALS_TEXT) in flat((docs / page).read_text(encoding="utf-8")), page
