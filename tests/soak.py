"""Soak test: many clients doing random things to one server for N minutes.

Not collected by pytest (run it by hand, with the package installed in a
virtualenv - the server runs isolated from the source tree)::

    .venv/bin/python tests/soak.py --minutes 5 --clients 40
    .venv/bin/python tests/soak.py --adversarial --minutes 10

It starts a server (``--serve`` mode of this file) in a subprocess, then runs
client threads that pick random operations - echo lines, a big download paced
by flow control, fixed-size records, slow async answers, paused reading,
half-closes, resets in the middle of a download, clean quits - and check every
byte of every answer.  At the end it prints what was done, any mismatch, and
the server's open descriptors, RSS and counters.  Exit status 1 if anything
was lost or wrong.

``--adversarial`` adds a TLS port and a PROXY-protocol port, STARTTLS, and
hostile clients beside the well-behaved ones (see ``soak_adversarial.py``).

The server subprocess runs with ``python -I`` from a temporary directory, so
``tcpserver`` comes from the interpreter's installed packages, never from this
checkout (``PYTHONPATH`` is ignored); the summary shows which file it was.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from tcpserver import TCPServer
    from tcpserver.events import DataIn, Disconnected

#: the address well-behaved PROXY clients claim to be (TEST-NET-1)
PROXIED_HOST = "192.0.2.7"

# -- the server ------------------------------------------------------------------


def pattern(seed: int, offset: int, size: int) -> bytes:
    """``size`` bytes of a download's repeating pattern, from ``offset``."""
    block = struct.pack(">I", seed) * 16
    start = offset % len(block)
    reps = (start + size) // len(block) + 1
    return (block * reps)[start : start + size]


class Handler:
    """
    The soak server's protocol on one listening port.

    Lines are commands: ``ECHO x``, ``BIG total seed`` (a download paced by
    ``ready_to_send``), ``REC n`` (one n-byte record), ``SLOW ms`` (answered
    by a Deferred), ``PAUSE ms`` (``pause_data``), ``QUIT``, ``STATS``,
    ``WHO`` (the client address, PROXY-given), ``STARTTLS`` (as in
    ``examples/starttls.py``), ``FLOOD`` (a download without end, cut
    by a disconnect after half a second: for clients that never read).
    """

    def __init__(self, name: str, server: TCPServer, peers: dict[str, Handler]) -> None:
        self.name = name
        self.server = server
        self.peers = peers
        self.downloads: dict[str, list[int]] = {}  # cid -> [next offset, total, seed]
        self.connected: set[str] = set()
        #: "error <code>", "disconnected <status>", "disconnected, never connected"
        self.events: Counter[str] = Counter()
        server.on("data_in", self.on_data)
        server.on("ready_to_send", lambda e: self.pump(e.connection_id))
        server.on("connected", lambda e: self.connected.add(e.connection_id))
        server.on("disconnected", self.on_disconnected)
        server.on("error", lambda e: self.events.update([f"error {e.error_code}"]))

    def on_disconnected(self, event: Disconnected) -> None:
        self.downloads.pop(event.connection_id, None)
        self.events[f"disconnected {event.status_code}"] += 1
        if event.connection_id not in self.connected:
            self.events["disconnected, never connected"] += 1
        self.connected.discard(event.connection_id)

    def pump(self, cid: str) -> None:
        state = self.downloads.get(cid)
        conn = self.server.connections.get(cid)
        if state is None or conn is None:
            return
        while conn.ready_to_send and state[0] < state[1]:
            size = min(32768, state[1] - state[0])
            self.server.send(cid, pattern(state[2], state[0], size))
            state[0] += size
        if state[0] >= state[1]:
            del self.downloads[cid]

    def answer(self, cid: str, line: bytes) -> None:
        """Send a late answer, if the client is still there to get it."""
        conn = self.server.connections.get(cid)
        if conn is not None and conn.connected:
            self.server.send_line(cid, line)

    def hang_up(self, cid: str) -> None:
        """End a FLOOD: by now the socket buffers are full and output is queued."""
        if self.downloads.pop(cid, None) is not None:
            self.server.disconnect(cid)

    def resume(self, cid: str) -> None:
        if cid in self.server.connections:
            self.server.process_data(cid)
            self.answer(cid, b"PAUSED")

    def on_data(self, event: DataIn) -> Deferred[None] | None:
        from twisted.internet import reactor, task

        server, cid, text = self.server, event.connection_id, event.text
        conn = server.connections[cid]
        if conn.record_length:
            server.change_record_length(cid, 0)
            server.send(cid, b"R:" + text + b"\r\n")
            return None
        command, _, arg = text.partition(b" ")
        if command == b"ECHO":
            server.send_line(cid, arg)
        elif command == b"BIG":
            total, seed = (int(x) for x in arg.split())
            self.downloads[cid] = [0, total, seed]
            self.pump(cid)
        elif command == b"REC":
            server.change_record_length(cid, int(arg))
        elif command == b"SLOW":
            return task.deferLater(reactor, int(arg) / 1000, self.answer, cid, b"SLOW ok")
        elif command == b"PAUSE":
            server.pause_data(cid)
            return task.deferLater(reactor, int(arg) / 1000, self.resume, cid)
        elif command == b"QUIT":
            server.send_line(cid, b"BYE")
            server.disconnect(cid)
        elif command == b"WHO":
            server.send_line(cid, f"{conn.remote_host}:{conn.remote_port}".encode())
        elif command.rstrip(b"\r") == b"STARTTLS":
            if event.eol:  # (a fragment the client never finished is not a command)
                server.send_line(cid, b"220 go ahead")
                server.start_ssl(cid).addErrback(lambda _: None)  # counted in tls_failures
        elif command == b"FLOOD":
            self.downloads[cid] = [0, 1 << 30, 1]
            self.pump(cid)
            reactor.callLater(0.5, self.hang_up, cid)
        elif command == b"STATS":
            server.send_line(cid, json.dumps(self.report()).encode())
        elif text:
            server.send_line(cid, b"ERR unknown " + text[:20])
        return None

    def report(self) -> dict[str, Any]:
        """The whole process: descriptors, memory, every port's counters and connections."""
        import tcpserver
        from tcpserver.protocol import TCPServerProtocol

        gc.collect()
        fds = os.listdir("/proc/self/fd")
        states: Counter[str] = Counter()
        for name, peer in self.peers.items():
            for conn in peer.server.connections.values():
                states[f"{name}:{conn.protocol.state.name}"] += 1
        snapshots = {name: peer.server.stats() for name, peer in self.peers.items()}
        return {
            "protocols": sum(isinstance(o, TCPServerProtocol) for o in gc.get_objects()),
            "fds": len(fds),
            "sockets": sum(_is_socket(fd) for fd in fds),
            "rss_kib": _rss_kib(os.getpid()),
            "blocks": sys.getallocatedblocks(),
            "connections": sum(len(peer.server.connections) for peer in self.peers.values()),
            "open": sum(s["connections_open"] for s in snapshots.values()),
            "pending": sum(s["connections_pending"] for s in snapshots.values()),
            "states": dict(sorted(states.items())),
            "ports": snapshots,
            "events": {
                name: dict(sorted(peer.events.items())) for name, peer in self.peers.items()
            },
            "stats": dict(self.server.factory.counters),
            "tcpserver": tcpserver.__file__,
        }


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:  # the listdir's own descriptor, gone by now
        return False


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _log_warnings_to(path: str) -> None:
    """Warnings and errors the library logs go to ``path`` (for the summary)."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    stream = open(path, "a", encoding="utf-8")  # noqa: SIM115  # open for the process's life
    observer = FilteringLogObserver(
        textFileLogObserver(stream), [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)]
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def serve(args: argparse.Namespace) -> None:
    """Listen (one plain port, or the adversarial three) and print the ports as JSON."""
    from twisted.internet import reactor

    import tcpserver
    from tcpserver import Certificate, CertStoreType, SSLStartMode, TCPServer
    from tcpserver.registry import REGISTRY

    if args.log:
        _log_warnings_to(args.log)
    known = {setting.name for setting in REGISTRY}
    ports: dict[str, dict[str, Any]] = {"plain": {}}
    if args.adversarial:
        cert = Certificate(CertStoreType.PEM_KEY_FILE, args.cert)
        tls = {"ssl_cert": cert}
        ports = {
            "plain": {**tls, "ssl_start_mode": SSLStartMode.EXPLICIT},
            "tls": {**tls, "ssl_start_mode": SSLStartMode.IMPLICIT},
            "proxy": {**tls, "ssl_start_mode": SSLStartMode.EXPLICIT, "ProxyProtocol": "True"},
        }
    handlers: dict[str, Handler] = {}
    for name, settings in ports.items():
        properties = {k: v for k, v in settings.items() if k[0].islower()}
        server = TCPServer(
            local_host="127.0.0.1", default_eol=b"\n", connection_backlog=1024, **properties
        )
        server.config("MaxConnections=5000")
        for key, value in settings.items():
            if key[0].isupper():
                server.config(f"{key}={value}")
        if args.adversarial:
            server.config("TrustedProxies=127.0.0.1")
            if "HandshakeTimeout" in known:  # (a TLS handshake deadline, newer versions)
                server.config("HandshakeTimeout=10")
        handlers[name] = Handler(name, server, handlers)
        server.start_listening()
        reactor.addSystemEventTrigger("before", "shutdown", server.shutdown)
    first = handlers["plain"].server
    shown = ("HandshakeTimeout", "CloseGracePeriod", "ProxyHeaderTimeout", "DefaultIdleTimeout")
    info = {
        "ports": {name: h.server.local_port for name, h in handlers.items()},
        "tcpserver": tcpserver.__file__,
        "settings": {n: first.config(n) if n in known else "(absent)" for n in shown},
    }
    print(json.dumps(info), flush=True)
    reactor.run()


# -- the clients ------------------------------------------------------------------


class MismatchError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """One listening port as a well-behaved client sees it."""

    name: str
    port: int
    #: wrap TLS at once (implicit TLS); also the context for STARTTLS
    context: ssl.SSLContext | None = None
    implicit_tls: bool = False
    #: send a PROXY header first
    proxy: bool = False


def proxy_header(rng: random.Random, host: str, port: int, dest_port: int) -> bytes:
    """A valid PROXY v1 or v2 header naming ``host:port`` as the client."""
    if rng.random() < 0.5:
        return b"PROXY TCP4 %s 127.0.0.1 %d %d\r\n" % (host.encode(), port, dest_port)
    addresses = socket.inet_aton(host) + socket.inet_aton("127.0.0.1")
    addresses += struct.pack(">HH", port, dest_port)
    return b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + struct.pack(">H", len(addresses)) + addresses


class Client:
    def __init__(self, target: Target, rng: random.Random, counts: Counter[str]) -> None:
        self.target = target
        self.rng = rng
        self.counts = counts
        self.sock: socket.socket = socket.create_connection(("127.0.0.1", target.port), timeout=30)
        self.buffer = b""
        self.source_port = rng.randint(1024, 65535)
        if target.proxy:
            self.sock.sendall(proxy_header(rng, PROXIED_HOST, self.source_port, target.port))
        if target.implicit_tls:
            self.wrap()

    @property
    def tls(self) -> bool:
        return isinstance(self.sock, ssl.SSLSocket)

    def wrap(self) -> None:
        assert self.target.context is not None
        self.sock = self.target.context.wrap_socket(self.sock, server_hostname="localhost")

    def operations(self) -> list[str]:
        """What this connection may do next."""
        operations = ["echo"] * 10 + ["big", "reset", "record", "slow", "pause", "quit"]
        if not self.tls:  # (a TLS socket cannot half-close here: ssl has no close_notify-only)
            operations.append("half_close")
            if self.target.context is not None:
                operations.append("starttls")
        if self.target.proxy:
            operations.append("who")
        return operations

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise MismatchError(f"EOF while waiting for a line; buffered {self.buffer[:40]!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(min(1 << 20, size - len(self.buffer)))
            if not chunk:
                raise MismatchError(f"EOF after {len(self.buffer)} of {size} bytes")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def expect(self, got: bytes, want: bytes, what: str) -> None:
        if got != want:
            raise MismatchError(f"{what}: got {got[:60]!r}, want {want[:60]!r}")

    def echo(self) -> None:
        payload = os.urandom(self.rng.randint(0, 400)).hex().encode()
        # split the command across writes at random
        message = b"ECHO " + payload + b"\n"
        cut = self.rng.randint(0, len(message))
        self.sock.sendall(message[:cut])
        if self.rng.random() < 0.3:
            time.sleep(0.001)
        self.sock.sendall(message[cut:])
        self.expect(self.line(), payload, "echo")

    def big(self, reset: bool = False) -> None:
        total = self.rng.choice([10_000, 300_000, 3_000_000])
        seed = self.rng.getrandbits(31)
        self.sock.sendall(b"BIG %d %d\n" % (total, seed))
        got = 0
        if reset:
            stop_at = self.rng.randint(0, total)
            while got < stop_at:
                got += len(self.exactly(min(65536, stop_at - got)))
            self.reset_now()
        while got < total:
            size = min(65536, total - got)
            self.expect(self.exactly(size), pattern(seed, got, size), f"download at {got}")
            got += size
            if self.rng.random() < 0.05:
                time.sleep(0.02)  # a slow reader now and then

    def reset(self) -> None:
        self.big(reset=True)

    def reset_now(self) -> None:
        """Leave with a reset (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise ConnectionAbortedError

    def record(self) -> None:
        size = self.rng.randint(1, 300)
        body = bytes(self.rng.getrandbits(8) for _ in range(size))
        self.sock.sendall(b"REC %d\n" % size + body)
        self.expect(self.exactly(2 + size + 2), b"R:" + body + b"\r\n", "record")

    def slow(self) -> None:
        self.sock.sendall(b"SLOW %d\nECHO after\n" % self.rng.randint(1, 50))
        self.expect(self.line(), b"SLOW ok", "slow")
        self.expect(self.line(), b"after", "after slow")

    def pause(self) -> None:
        self.sock.sendall(b"PAUSE %d\nECHO resumed\n" % self.rng.randint(1, 50))
        self.expect(self.line(), b"PAUSED", "pause")
        self.expect(self.line(), b"resumed", "after pause")

    def starttls(self) -> None:
        self.sock.sendall(b"STARTTLS\n")
        self.expect(self.line(), b"220 go ahead", "starttls")
        self.expect(self.buffer, b"", "nothing after 220 before TLS")
        self.wrap()
        self.echo()

    def who(self) -> None:
        self.sock.sendall(b"WHO\n")
        self.expect(self.line(), b"%s:%d" % (PROXIED_HOST.encode(), self.source_port), "who")

    def half_close(self) -> None:
        self.sock.sendall(b"ECHO last\nECHO partial")
        self.sock.shutdown(socket.SHUT_WR)
        self.expect(self.line(), b"last", "before half-close")
        self.expect(self.line(), b"partial", "partial line delivered at half-close")
        self.expect(self.sock.recv(10), b"", "EOF after half-close")
        self.sock.close()
        raise ConnectionAbortedError

    def quit(self) -> None:
        self.sock.sendall(b"QUIT\n")
        self.expect(self.line(), b"BYE", "quit")
        self.expect(self.sock.recv(10), b"", "EOF after quit")
        self.sock.close()
        raise ConnectionAbortedError


def client_loop(
    targets: list[Target],
    deadline: float,
    seed: int,
    counts: Counter[str],
    problems: list[str],
) -> None:
    """Connect, do 1-30 random operations, repeat until ``deadline``."""
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        target = rng.choice(targets)
        try:
            client = Client(target, rng, counts)
        except OSError as exc:
            problems.append(f"connect to {target.name} failed: {exc}")
            time.sleep(0.1)
            continue
        counts["connections"] += 1
        if len(targets) > 1:
            counts[f"connections_{target.name}"] += 1
        op = "connect"
        try:
            for _ in range(rng.randint(1, 30)):
                op = rng.choice(client.operations())
                counts[op] += 1
                getattr(client, op)()
            client.sock.close()
        except ConnectionAbortedError:
            pass
        except (MismatchError, OSError) as exc:
            problems.append(f"{target.name} {op}: {type(exc).__name__}: {exc}")
            client.sock.close()


def run_clients(
    targets: list[Target], clients: int, seconds: float, seed: int, counts: Counter[str]
) -> tuple[list[str], list[threading.Thread]]:
    """Start ``clients`` client threads for ``seconds``; returns the problem list and threads."""
    problems: list[str] = []
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client_loop, args=(targets, deadline, seed + i, counts, problems))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    return problems, threads


def stats(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"STATS\n")
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the STATS connection")
            data += chunk
    result: dict[str, Any] = json.loads(data)
    return result


def start_server(workdir: str, extra: list[str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """
    Start this file's ``--serve`` mode isolated from the source tree: ``-I``
    (no script directory, no ``PYTHONPATH``, no user site) from ``workdir``.
    """
    command = [sys.executable, "-I", str(Path(__file__).resolve()), "--serve", *extra]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=workdir)
    stdout: IO[str] | None = server.stdout
    assert stdout is not None
    line = stdout.readline()
    if not line:
        server.wait(timeout=30)
        raise SystemExit(f"the server did not start (exit status {server.returncode})")
    info: dict[str, Any] = json.loads(line)
    return server, info


def stop_server(server: subprocess.Popen[str]) -> int:
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        return server.wait()


def installed_note(path: str) -> str:
    """Says whether ``path`` (tcpserver's __init__) is an installed copy or this checkout."""
    if "site-packages" in Path(path).parts:
        return "installed"
    if Path(path).resolve().is_relative_to(Path(__file__).resolve().parent.parent):
        return "THIS CHECKOUT, not an installed copy"
    return "not in site-packages: an editable install?"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=None, help="default 2 (10 adversarial)")
    parser.add_argument("--clients", type=int, default=32, help="well-behaved client threads")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--adversarial", action="store_true", help="add hostile clients")
    parser.add_argument("--hostile", type=int, default=8, help="hostile client threads")
    parser.add_argument(
        "--warmup", type=float, default=60.0, help="adversarial: seconds before the baseline"
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minutes is None:
        args.minutes = 10.0 if args.adversarial else 2.0
    return args


def main() -> int:
    args = parse_args()
    if args.serve:
        serve(args)
        return 0
    if args.adversarial:
        import soak_adversarial

        return soak_adversarial.run(args)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        return run_plain(args, workdir)


def run_plain(args: argparse.Namespace, workdir: str) -> int:
    """The plain soak: well-behaved clients on one plaintext port."""
    server, info = start_server(workdir, [])
    port = info["ports"]["plain"]
    before = stats(port)
    counts: Counter[str] = Counter()
    started = time.monotonic()
    target = Target("plain", port)
    problems, threads = run_clients([target], args.clients, args.minutes * 60, args.seed, counts)
    for thread in threads:
        thread.join()
    time.sleep(1.0)  # let the server see the last closes
    after = stats(port)
    status = stop_server(server)
    print(f"soak: {args.clients} clients, {time.monotonic() - started:.0f} s, seed {args.seed}")
    print(f"tcpserver: {info['tcpserver']} ({installed_note(info['tcpserver'])})")
    print("operations:", dict(sorted(counts.items())))
    for name, report in (("before:", before), ("after: ", after)):
        shown = {k: report[k] for k in ("protocols", "fds", "rss_kib", "connections", "stats")}
        print("server", name, shown)
    print(f"server exit status: {status}")
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print(f"{len(problems)} problem(s)")
    leaked = int(after["fds"]) - int(before["fds"])
    open_connections = int(after["connections"]) - 1
    if problems or leaked or open_connections or status not in (0, -15):
        print(f"FAILED: leaked fds {leaked}, connections left {open_connections}")
        return 1
    print("OK: nothing lost, nothing leaked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
