"""
A rolling restart behind a real HAProxy loses nothing.

Two ``twistd tcpserver`` instances (``--proxy-protocol``, ``--health``)
run behind HAProxy with the configuration of docs/operations.rst
(``docs/recipes/haproxy-rolling-restart.cfg``, the very file).  Client
threads stream numbered lines through HAProxy, one at a time, reconnecting
whenever their connection closes, while each instance in turn gets SIGTERM
(it drains), exits 0 and is started again.  Every line is answered exactly
once, by the instance it reached, with the client's real address.
"""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from helpers import LISTENING, ServerProcess, ServerProcesses, free_port, wait_for_port

HAPROXY = "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else "haproxy"
RECIPE = Path(__file__).resolve().parent.parent / "docs" / "recipes" / "haproxy-rolling-restart.cfg"

APP = textwrap.dedent(
    """
    import os

    def on_data_in(server, event):
        if not event.eol:
            return
        connection = server.connections[event.connection_id]
        line = event.text.decode()
        answer = f"{line} {connection.remote_host} {connection.remote_port} {os.getpid()}"
        server.send_line(event.connection_id, answer, eol=b"\\n")
    """
)

pytestmark = pytest.mark.skipif(
    not (os.path.exists(HAPROXY) or os.path.exists("/usr/sbin/haproxy")),
    reason="haproxy is not installed",
)


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Client(threading.Thread):
    """Streams numbered lines, one at a time; a line whose answer did not come is sent again."""

    def __init__(self, number: int, front: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.number, self.front, self.stop = number, front, stop
        self.answers: Counter[str] = Counter()
        self.served_by: set[int] = set()
        self.problems: list[str] = []
        self.reconnects = 0
        self.errors: list[str] = []

    def run(self) -> None:
        sent = 0
        while not self.stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.front), timeout=10) as sock:
                    mine = sock.getsockname()[1]
                    reader = sock.makefile("rb")
                    while not self.stop.is_set():
                        line = f"c{self.number}-{sent}"
                        sock.sendall(line.encode() + b"\n")
                        answer = reader.readline()
                        if not answer:
                            break  # closed (the instance drained): send it again elsewhere
                        text, host, port, pid = answer.decode().split()
                        self.answers[text] += 1
                        self.served_by.add(int(pid))
                        if text != line or host != "127.0.0.1" or int(port) != mine:
                            self.problems.append(f"{line!r} -> {answer!r} (port {mine})")
                        sent += 1
            except OSError as exc:  # reset mid-line: the line is sent again on a new connection
                self.errors.append(repr(exc))
            self.reconnects += 1
            time.sleep(0.01)


def test_a_rolling_restart_behind_haproxy_loses_and_repeats_nothing(
    processes: ServerProcesses, tmp_path: Path
):
    (tmp_path / "app.py").write_text(APP)
    ports = {name: (free_port(), free_port()) for name in ("a", "b")}

    def start(name: str) -> ServerProcess:
        port, health = ports[name]
        proc = processes.twistd(
            "--interface", "127.0.0.1", "--port", str(port), "--handler", "app.py",
            "--proxy-protocol", "--health", f"tcp:{health}:interface=127.0.0.1",
            "--drain-timeout", "10", "--eol", "\\n",
        )  # fmt: skip
        proc.wait_for(LISTENING)
        wait(lambda: healthy(health))
        return proc

    instances = {name: start(name) for name in ("a", "b")}
    front = free_port()
    env = {
        **os.environ,
        "FRONT": f"127.0.0.1:{front}",
        "A": f"127.0.0.1:{ports['a'][0]}",
        "A_HEALTH": str(ports["a"][1]),
        "B": f"127.0.0.1:{ports['b'][0]}",
        "B_HEALTH": str(ports["b"][1]),
    }
    balancer = processes.start([HAPROXY, "-db", "-f", str(RECIPE)], env=env)
    wait_for_port(front)
    time.sleep(1.0)  # (both servers seen up: rise 2 x 200 ms)
    stop = threading.Event()
    clients = [Client(n, front, stop) for n in range(4)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.5)
        first = {c.number: sum(c.answers.values()) for c in clients}
        for name in ("a", "b"):
            old = instances[name]
            old.signal(signal.SIGTERM)  # drain: health turns 503, open connections finish
            assert old.wait(timeout=30) == 0
            instances[name] = start(name)
            time.sleep(1.5)  # (seen up again, and serving)
        time.sleep(1.0)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=20)
        balancer.close()
    for client in clients:
        assert not client.problems, client.problems[:5]
        repeated = {line: n for line, n in client.answers.items() if n != 1}
        assert not repeated, repeated  # every line answered once, none twice
        numbers = sorted(int(line.split("-")[1]) for line in client.answers)
        assert numbers == list(range(len(numbers)))  # and none skipped
        assert len(numbers) > first[client.number] + 20, (client.errors[:3], client.reconnects)
        assert client.reconnects >= 1  # its connection was closed by a drain at least once
    served = set().union(*(c.served_by for c in clients))
    new_pids = {proc.proc.pid for proc in instances.values()}
    assert served & new_pids, "the restarted instances served too"
    for proc in instances.values():
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_the_health_check_turns_503_as_soon_as_a_drain_begins(
    processes: ServerProcesses, tmp_path: Path
):
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            from twisted.internet import defer, reactor

            def on_data_in(server, event):
                server.send(event.connection_id, b"busy\\n")
                d = defer.Deferred()
                reactor.callLater(3, d.callback, None)  # a listener still at work
                return d
            """
        )
    )
    health = free_port()
    proc = processes.twistd(
        "--interface", "127.0.0.1", "--port", "0", "--handler", "slow.py",
        "--health", f"tcp:{health}:interface=127.0.0.1", "--drain-timeout", "10",
    )  # fmt: skip
    proc.wait_for(LISTENING)
    wait(lambda: healthy(health))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(b"work\r\n")
        assert sock.recv(5) == b"busy\n"
        proc.signal(signal.SIGTERM)
        proc.wait_for("draining 1 connection")
        assert not healthy(health)  # down while the connection still drains
        assert proc.proc.poll() is None
    assert proc.wait(timeout=30) == 0
