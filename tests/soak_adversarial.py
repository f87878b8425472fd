"""The adversarial soak (``tests/soak.py --adversarial``): hostile clients beside well-behaved ones.

The server (``soak.py --serve --adversarial``, the installed ``tcpserver``)
listens on three ports with default settings, plus a 10 s ``HandshakeTimeout``
when the installed version has it:

* ``plain``: plaintext lines, STARTTLS available (``SSLStartMode.EXPLICIT``);
* ``tls``: implicit TLS;
* ``proxy``: a PROXY v1/v2 header first (trusted from 127.0.0.1), then as
  ``plain``.

Well-behaved clients (``soak.Client``) run on all three - a quarter on
``tls``, a quarter behind a PROXY header, the rest plaintext, any of which
may STARTTLS - and check every byte.  Hostile clients (:class:`Hostile`, one
method per kind) meanwhile do what the probes did; a socket the server is
expected to close (a silent client, a trickled ClientHello, a client that
never reads) is handed to the :class:`Holder`, which waits up to
:data:`HOLD_CAP` seconds for the server to close it and records how long
that took.

Phases: warm-up (the same mix, ``--warmup`` seconds, so that the baseline
includes what the mix costs at its peak), drain (the held sockets), the
baseline once the server is quiet (descriptors, ``connections_open``, RSS),
the run (``--minutes``), drain, settle (up to :data:`SETTLE` seconds for the
server's own timeouts), checks.  Exit status 1 unless every check passes:

* every well-behaved client got exactly the bytes it should;
* the server's descriptors and ``connections_open`` are back to the baseline;
* its RSS is within :data:`RSS_SLACK` of the baseline;
* it closed every stalled hostile socket within :data:`HOLD_CAP` seconds;
* it gave no hostile client a wrong answer (served a malformed PROXY header,
  garbled the echo after a ClientHello in 1-byte records).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import queue
import random
import re
import select
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import soak

#: seconds a stalled hostile socket waits for the server to close it (the
#: server's deadlines are 10 s for handshakes and PROXY headers, 30 s for a close)
HOLD_CAP = 90.0
#: seconds the server gets to come back to its baseline once the clients stop
SETTLE = 60.0
#: RSS may grow this much over the baseline
RSS_SLACK = 0.10
#: seconds between bytes of a trickled ClientHello, and how long it trickles
TRICKLE_INTERVAL = 1.5
TRICKLE_CAP = 30.0
#: how long a hostile client waits for an answer or a close before it calls the socket stalled
PATIENCE = 15.0
#: the PROXY v2 signature
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: poll() events that mean the peer closed or reset
CLOSED_EVENTS = select.POLLRDHUP | select.POLLHUP | select.POLLERR


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A throw-away CA and a ``localhost`` certificate; returns (key+cert PEM, CA PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey) -> Any:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=7))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        builder("soak CA", "soak CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        builder("localhost", "soak CA", key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_pem, ca_pem = directory / "server.pem", directory / "ca.pem"
    pem = serialization.Encoding.PEM
    server_pem.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + leaf.public_bytes(pem)
    )
    ca_pem.write_bytes(ca.public_bytes(pem))
    return server_pem, ca_pem


# -- what the hostile clients saw ---------------------------------------------------


class Tally:
    """Hostile actions, their outcomes and how the server treated them (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.actions: Counter[str] = Counter()
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.closed_after: defaultdict[str, list[float]] = defaultdict(list)
        self.never_closed: Counter[str] = Counter()
        self.violations: list[str] = []

    def outcome(self, kind: str, what: str) -> None:
        with self.lock:
            self.outcomes[kind][what] += 1

    def closed(self, kind: str, started: float) -> None:
        """The server closed a socket it was expected to close."""
        with self.lock:
            self.closed_after[kind].append(time.monotonic() - started)

    def violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)


class Holder(threading.Thread):
    """
    Holds stalled hostile sockets - never reading from them - until the
    server closes or resets them, or :data:`HOLD_CAP` seconds after they
    were opened (then it counts them as never closed and closes them itself).
    """

    def __init__(self, tally: Tally) -> None:
        super().__init__(name="holder", daemon=True)
        self.tally = tally
        self.incoming: queue.SimpleQueue[tuple[socket.socket, str, float]] = queue.SimpleQueue()
        self.held: dict[int, tuple[socket.socket, str, float]] = {}
        self.finishing = threading.Event()

    def hold(self, sock: socket.socket, kind: str, started: float) -> None:
        self.incoming.put((sock, kind, started))

    def run(self) -> None:
        poller = select.poll()
        while not (self.finishing.is_set() and not self.held and self.incoming.empty()):
            while not self.incoming.empty():
                sock, kind, started = self.incoming.get()
                self.held[sock.fileno()] = (sock, kind, started)
                poller.register(sock, CLOSED_EVENTS)
            for fd, _ in poller.poll(200):
                sock, kind, started = self.held.pop(fd)
                poller.unregister(fd)
                self.tally.closed(kind, started)
                sock.close()
            now = time.monotonic()
            for fd, (sock, kind, started) in list(self.held.items()):
                if now - started > HOLD_CAP:
                    del self.held[fd]
                    poller.unregister(fd)
                    with self.tally.lock:
                        self.tally.never_closed[kind] += 1
                    sock.close()

    def finish(self) -> None:
        """Wait until every held socket is closed (at most HOLD_CAP seconds)."""
        self.finishing.set()
        self.join()


# -- the hostile clients ------------------------------------------------------------


class MemoryTLS:
    """A TLS client in memory; :attr:`hello` is its first flight (the ClientHello records)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        with contextlib.suppress(ssl.SSLWantReadError):
            self.tls.do_handshake()
        self.hello = self.outgoing.read()

    def run(self, sock: socket.socket, step: Callable[[], Any]) -> Any:
        """Do ``step`` (handshake, read), moving records through ``sock`` as it needs."""
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                sock.sendall(self.outgoing.read())
                data = sock.recv(65536)
                if not data:
                    raise ConnectionResetError("closed by the server") from None
                self.incoming.write(data)
            else:
                sock.sendall(self.outgoing.read())
                return result


def records(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """Split TLS records: (content type, version, payload)."""
    found = []
    while len(data) >= 5:
        (length,) = struct.unpack(">H", data[3:5])
        found.append((data[0], data[1:3], data[5 : 5 + length]))
        data = data[5 + length :]
    return found


#: bad PROXY v1 headers: (name, header, whether the server must refuse it)
BAD_PROXY_HEADERS = [
    ("port 99999", b"PROXY TCP4 192.0.2.1 127.0.0.1 99999 80\r\n", True),
    ("port -1", b"PROXY TCP4 192.0.2.1 127.0.0.1 -1 80\r\n", True),
    ("destination port 99999", b"PROXY TCP4 192.0.2.1 127.0.0.1 1234 99999\r\n", True),
    ("source evil.example", b"PROXY TCP4 evil.example 127.0.0.1 1234 80\r\n", True),
    ("destination evil.example", b"PROXY TCP4 192.0.2.1 evil.example 1234 80\r\n", True),
    ("TCP6 with IPv4", b"PROXY TCP6 192.0.2.1 ::1 1234 80\r\n", True),
    ("too few fields", b"PROXY TCP4 192.0.2.1\r\n", True),
    ("too long", b"PROXY " + b"9" * 200 + b"\r\n", True),
    ("UNKNOWN", b"PROXY UNKNOWN\r\n", False),  # (valid: served as a direct client)
]


class Hostile:
    """One hostile client thread's actions; each public method is a kind."""

    KINDS = (
        "starttls_fin", "nonreader", "silent_tls", "silent_proxy", "trickle_hello",
        "rst_before_hello", "leave_pending", "rst_download", "tls_garbage", "proxy_bad",
        "proxy_truncated", "split_hello", "slowloris",
    )  # fmt: skip

    def __init__(
        self, targets: dict[str, soak.Target], rng: random.Random, tally: Tally, holder: Holder
    ) -> None:
        self.targets = targets
        self.rng = rng
        self.tally = tally
        self.holder = holder
        context = targets["tls"].context
        assert context is not None
        self.context = context

    # helpers

    def connect(self, name: str) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.targets[name].port), timeout=10)

    def client(self, *names: str) -> soak.Client:
        """A well-behaved start (PROXY header, TLS) on one of ``names``."""
        return soak.Client(self.targets[self.rng.choice(names)], self.rng, Counter())

    @staticmethod
    def reset(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def leave(self, sock: socket.socket) -> str:
        """Go away: a FIN or a reset, at random."""
        if self.rng.random() < 0.5:
            sock.close()
            return "left"
        self.reset(sock)
        return "reset"

    def await_close(
        self, kind: str, label: str, sock: socket.socket, started: float, want: bytes = b""
    ) -> str:
        """
        Read until the server closes (or sends ``want``), for :data:`PATIENCE`
        seconds; a socket still open then is handed to the holder.  The
        outcome is "``label``: closed by server", "... stalled, held" or
        "... served" (``want`` came); returns it without the label.
        """
        got = b""
        deadline = time.monotonic() + PATIENCE
        try:
            while not (want and want in got):
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            self.tally.outcome(kind, f"{label}stalled, held")
            self.holder.hold(sock, kind, started)
            return "stalled, held"
        except OSError:
            pass  # reset
        outcome = "served" if want and want in got else "closed by server"
        if outcome != "served":
            self.tally.closed(kind, started)
        self.tally.outcome(kind, f"{label}{outcome}")
        sock.close()
        return outcome

    # the kinds

    def starttls_fin(self) -> None:
        """STARTTLS (usually without its line end), a half-close, then leave or wait."""
        started = time.monotonic()
        sock = self.client("plain", "proxy").sock
        sock.sendall(self.rng.choice([b"STARTTLS", b"STARTTLS", b"STARTTLS\r\n"]))
        sock.shutdown(socket.SHUT_WR)
        if self.rng.random() < 0.5:
            self.tally.outcome("starttls_fin", self.leave(sock))
        else:
            self.await_close("starttls_fin", "", sock, started)

    def nonreader(self) -> None:
        """Ask for a lot, never read; the server disconnects (graceful, then reset)."""
        client = self.client("plain", "tls", "proxy")
        client.sock.sendall(b"FLOOD\n")
        self.holder.hold(client.sock, "nonreader", time.monotonic())

    def silent_tls(self) -> None:
        self.holder.hold(self.connect("tls"), "silent_tls", time.monotonic())

    def silent_proxy(self) -> None:
        self.holder.hold(self.connect("proxy"), "silent_proxy", time.monotonic())

    def trickle_hello(self) -> None:
        """A ClientHello, one byte every TRICKLE_INTERVAL seconds."""
        started = time.monotonic()
        sock = self.connect("tls")
        poller = select.poll()
        poller.register(sock, CLOSED_EVENTS)
        for byte in MemoryTLS(self.context).hello:
            if time.monotonic() - started > TRICKLE_CAP:
                break
            with contextlib.suppress(OSError):  # (reset: the poll below sees it)
                sock.send(bytes([byte]))
            if poller.poll(int(TRICKLE_INTERVAL * 1000)):
                self.tally.closed("trickle_hello", started)
                self.tally.outcome("trickle_hello", "closed by server")
                sock.close()
                return
        self.tally.outcome("trickle_hello", "still open after 30 s, held")
        self.holder.hold(sock, "trickle_hello", started)

    def rst_before_hello(self) -> None:
        sock = self.connect(self.rng.choice(["tls", "proxy", "plain"]))
        time.sleep(self.rng.choice([0, 0, 0.01, 0.05]))
        self.reset(sock)

    def leave_pending(self) -> None:
        """Leave while an async answer (or a pause) is pending."""
        client = self.client("plain", "tls", "proxy")
        client.sock.sendall(self.rng.choice([b"SLOW 2000\n", b"PAUSE 2000\nECHO x\n"]))
        time.sleep(self.rng.choice([0, 0.01, 0.1]))
        self.tally.outcome("leave_pending", self.leave(client.sock))

    def rst_download(self) -> None:
        with contextlib.suppress(ConnectionAbortedError):
            self.client("plain", "tls", "proxy").big(reset=True)

    def tls_garbage(self) -> None:
        """Malformed records and garbage on the TLS port."""
        started = time.monotonic()
        hello = bytearray(MemoryTLS(self.context).hello)
        for _ in range(8):
            hello[self.rng.randrange(5, len(hello))] ^= 0xFF
        name, garbage = self.rng.choice(
            [
                ("random bytes", os.urandom(self.rng.randint(1, 2000))),
                ("oversized record", b"\x16\x03\x01\xff\xff" + os.urandom(300)),
                ("truncated record", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
                ("data before hello", b"\x17\x03\x03\x00\x10" + os.urandom(16)),
                ("alert before hello", b"\x15\x03\x03\x00\x02\x02\x28"),
                ("empty handshake records", b"\x16\x03\x01\x00\x00" * 50),
                ("plaintext HTTP", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
                ("corrupted hello", bytes(hello)),
            ]
        )
        sock = self.connect("tls")
        sock.sendall(garbage)
        if self.rng.random() < 0.5:
            sock.shutdown(socket.SHUT_WR)
        self.await_close("tls_garbage", f"{name}: ", sock, started)

    def proxy_bad(self) -> None:
        """A malformed or lying PROXY v1 header, then a command."""
        started = time.monotonic()
        name, header, must_refuse = self.rng.choice(BAD_PROXY_HEADERS)
        sock = self.connect("proxy")
        sock.sendall(header + b"ECHO served\n")
        outcome = self.await_close("proxy_bad", f"{name}: ", sock, started, b"served\r\n")
        if must_refuse and outcome == "served":
            self.tally.violation(f"proxy_bad: {header[:60]!r} was accepted and served")

    def proxy_truncated(self) -> None:
        """A PROXY v2 header cut short; then silence or a half-close."""
        started = time.monotonic()
        full = V2_SIGNATURE + b"\x21\x11\x00\x0c" + os.urandom(12)
        sock = self.connect("proxy")
        sock.sendall(full[: self.rng.randint(1, len(full) - 1)])
        if self.rng.random() < 0.5:
            self.holder.hold(sock, "proxy_truncated", started)
            return
        sock.shutdown(socket.SHUT_WR)
        self.await_close("proxy_truncated", "", sock, started)

    def split_hello(self) -> None:
        """A ClientHello in 1-byte records, then a checked echo over the TLS it starts."""
        started = time.monotonic()
        client = MemoryTLS(self.context)
        body = b"".join(payload for kind, _, payload in records(client.hello) if kind == 0x16)
        version = client.hello[1:3]
        sock = self.connect("tls")
        sock.sendall(b"".join(b"\x16" + version + b"\x00\x01" + bytes([b]) for b in body))
        sock.settimeout(PATIENCE)
        payload = os.urandom(16).hex().encode()
        try:
            client.run(sock, client.tls.do_handshake)
            client.run(sock, lambda: client.tls.write(b"ECHO " + payload + b"\n"))
            answer = b""
            while b"\r\n" not in answer:
                answer += client.run(sock, lambda: client.tls.read(65536))
        except TimeoutError:
            self.tally.outcome("split_hello", "stalled, held")
            self.holder.hold(sock, "split_hello", started)
            return
        except (ssl.SSLError, ConnectionError) as exc:
            self.tally.outcome("split_hello", f"refused ({type(exc).__name__})")
            sock.close()
            return
        self.tally.outcome("split_hello", "completed")
        if answer != payload + b"\r\n":
            self.tally.violation(f"split_hello: echo got {answer[:60]!r}")
        sock.close()

    def slowloris(self) -> None:
        """A line that never ends, a few bytes at a time; then leave."""
        client = self.client("plain", "tls", "proxy")
        total, deadline = self.rng.randint(3000, 8000), time.monotonic() + 8
        while total > 0 and time.monotonic() < deadline:
            size = self.rng.randint(20, 300)
            client.sock.sendall(b"A" * size)
            total -= size
            time.sleep(self.rng.uniform(0.05, 0.3))
        self.tally.outcome("slowloris", self.leave(client.sock))


def hostile_loop(hostile: Hostile, deadline: float) -> None:
    """Hostile actions of random kinds until ``deadline``."""
    tally, rng = hostile.tally, hostile.rng
    while time.monotonic() < deadline:
        kind = rng.choice(Hostile.KINDS)
        with tally.lock:
            tally.actions[kind] += 1
        try:
            getattr(hostile, kind)()
        except (OSError, soak.MismatchError) as exc:  # (and SSLError): refused, reset...
            tally.outcome(kind, f"error {type(exc).__name__}")
        time.sleep(rng.uniform(0.05, 0.5))


# -- the run ------------------------------------------------------------------------


def settle(
    port: int, done: Callable[[dict[str, Any]], bool], seconds: float
) -> tuple[bool, dict[str, Any], float]:
    """Poll STATS until ``done`` (or ``seconds`` pass): (done?, last report, waited)."""
    started = time.monotonic()
    while True:
        report = soak.stats(port)
        waited = time.monotonic() - started
        if done(report) or waited > seconds:
            return done(report), report, waited
        time.sleep(1.0)


def sample(port: int, until: float, samples: list[tuple[float, dict[str, Any]]]) -> None:
    """The server's STATS every 30 s of the run (the trend of RSS, descriptors, connections)."""
    started = time.monotonic()
    while time.monotonic() + 30 < until:
        time.sleep(30)
        samples.append((time.monotonic() - started, soak.stats(port)))


def shown(report: dict[str, Any]) -> str:
    keys = ("fds", "sockets", "open", "pending", "rss_kib", "blocks", "protocols", "states")
    return ", ".join(f"{key} {report[key]}" for key in keys)


def log_summary(path: Path) -> list[str]:
    """The server's warnings and errors: counts by level, the commonest messages."""
    if not path.exists():
        return ["server log: none"]
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        found = re.match(r"\S+ \[([^\]#]*)#(\w+)\] (.*)", line)
        if found:
            levels[found[2]] += 1
            messages[re.sub(r"\d+", "N", f"{found[1]}: {found[3]}")[:150]] += 1
        elif line.startswith("Traceback"):
            levels["traceback"] += 1
    lines = [f"server log: {dict(levels) or 'no warnings'}"]
    lines += [f"  {count:6d} x {text}" for text, count in messages.most_common(8)]
    return lines


def run(args: argparse.Namespace) -> int:
    """The adversarial soak (the module docstring); the exit status."""
    workdir = Path(tempfile.mkdtemp(prefix="soak-adversarial-"))
    status = _run(args, workdir)
    if status == 0:
        shutil.rmtree(workdir)
    else:
        print(f"server log and certificates kept in {workdir}")
    return status


def _run(args: argparse.Namespace, workdir: Path) -> int:
    server_pem, ca_pem = make_certificates(workdir)
    log = workdir / "server.log"
    command = ["--adversarial", "--cert", str(server_pem), "--log", str(log)]
    server, info = soak.start_server(str(workdir), command)
    try:
        return _soak(args, server, info, ssl.create_default_context(cafile=str(ca_pem)), log)
    finally:
        if server.poll() is None:
            server.kill()


def phase(
    args: argparse.Namespace,
    targets: dict[str, soak.Target],
    seconds: float,
    seed: int,
    counts: Counter[str],
    tally: Tally,
) -> tuple[list[str], list[tuple[float, dict[str, Any]]]]:
    """
    Well-behaved and hostile clients for ``seconds``, then wait for the held
    sockets; returns the well-behaved clients' problems and the STATS samples.
    """
    mix = [targets["plain"], targets["plain"], targets["tls"], targets["proxy"]]
    holder = Holder(tally)
    holder.start()
    until = time.monotonic() + seconds
    problems, threads = soak.run_clients(mix, args.clients, seconds, seed, counts)
    for i in range(args.hostile):
        hostile = Hostile(targets, random.Random(seed + 1000 + i), tally, holder)
        threads.append(threading.Thread(target=hostile_loop, args=(hostile, until)))
    samples: list[tuple[float, dict[str, Any]]] = []
    threads.append(threading.Thread(target=sample, args=(targets["plain"].port, until, samples)))
    for thread in threads[args.clients :]:
        thread.start()
    for thread in threads:
        thread.join()
    holder.finish()
    return problems, samples


@dataclass
class Results:
    """What one adversarial soak saw."""

    args: argparse.Namespace
    info: dict[str, Any]
    log: Path
    counts: Counter[str] = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)
    problems: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    settled_after: float | None = None  # None: not settled
    samples: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    seconds: float = 0.0
    status: int | None = None


def _soak(
    args: argparse.Namespace,
    server: Any,
    info: dict[str, Any],
    context: ssl.SSLContext,
    log: Path,
) -> int:
    ports = info["ports"]
    targets = {
        "plain": soak.Target("plain", ports["plain"], context),
        "tls": soak.Target("tls", ports["tls"], context, implicit_tls=True),
        "proxy": soak.Target("proxy", ports["proxy"], context, proxy=True),
    }
    port = ports["plain"]
    started = time.monotonic()
    results = Results(args, info, log)

    # warm-up: the same mix; the baseline once the server is quiet again
    problems, _ = phase(args, targets, args.warmup, args.seed, results.counts, results.tally)
    quiet, results.baseline, waited = settle(
        port, lambda r: r["open"] <= 1 and r["pending"] == 0, SETTLE
    )
    results.problems = [f"warm-up: {problem}" for problem in problems]
    if not quiet:
        results.problems.append(f"warm-up: the server did not get quiet in {waited:.0f} s")
    baseline = results.baseline

    # the run, then SETTLE seconds for the server's own timeouts to close what is left
    problems, results.samples = phase(
        args, targets, args.minutes * 60, args.seed + 10_000, results.counts, results.tally
    )
    results.problems += problems

    def back(report: dict[str, Any]) -> bool:
        return bool(
            report["fds"] <= baseline["fds"]
            and report["open"] <= baseline["open"]
            and report["pending"] == 0
        )

    settled, results.after, waited = settle(port, back, SETTLE)
    results.settled_after = waited if settled else None
    results.status = soak.stop_server(server)
    results.seconds = time.monotonic() - started
    return summary(results)


def checks(results: Results) -> list[tuple[bool, str]]:
    """The pass/fail lines: (passed, what)."""
    baseline, after, tally = results.baseline, results.after, results.tally
    growth = after["rss_kib"] / baseline["rss_kib"] - 1
    never = sum(tally.never_closed.values())
    return [
        (
            not results.problems,
            f"well-behaved clients' bytes exact ({len(results.problems)} problems)",
        ),
        (
            after["fds"] <= baseline["fds"],
            f"descriptors back to baseline: {baseline['fds']} -> {after['fds']}",
        ),
        (
            after["open"] <= baseline["open"] and after["pending"] == 0,
            f"connections_open back to baseline: {baseline['open']} -> {after['open']}"
            f" (pending {after['pending']})",
        ),
        (
            growth <= RSS_SLACK,
            f"RSS within {RSS_SLACK:.0%}: {baseline['rss_kib']} -> {after['rss_kib']} KiB"
            f" ({growth:+.1%})",
        ),
        (
            never == 0,
            f"server closed every stalled hostile socket within {HOLD_CAP:.0f} s"
            f" ({never} not: {dict(tally.never_closed)})",
        ),
        (
            not tally.violations,
            f"no wrong answer to a hostile client ({len(tally.violations)} violations)",
        ),
        (results.status in (0, -15), f"server exit status {results.status}"),
    ]


def summary(results: Results) -> int:
    """Print what happened and the checks; the exit status."""
    args, info, tally, after = results.args, results.info, results.tally, results.after
    print(
        f"adversarial soak: {args.clients} well-behaved + {args.hostile} hostile clients, "
        f"{args.minutes * 60:.0f} s after {args.warmup:.0f} s of warm-up "
        f"({results.seconds:.0f} s in all), seed {args.seed}"
    )
    print(f"tcpserver: {info['tcpserver']} ({soak.installed_note(info['tcpserver'])})")
    print(f"ports: {info['ports']}; settings: {info['settings']}")
    print("well-behaved operations:", dict(sorted(results.counts.items())))
    print("hostile actions:", dict(sorted(tally.actions.items())))
    print("hostile outcomes:")
    for kind in sorted(tally.outcomes):
        print(f"  {kind}: {dict(sorted(tally.outcomes[kind].items()))}")
    print(f"sockets the server closed (seconds after connect; held at most {HOLD_CAP:.0f} s):")
    for kind in sorted(set(tally.closed_after) | set(tally.never_closed)):
        times = sorted(tally.closed_after[kind])
        spread = f" (median {times[len(times) // 2]:.1f}, max {times[-1]:.1f})" if times else ""
        print(f"  {kind}: {len(times)} closed{spread}, {tally.never_closed[kind]} never closed")
    print(f"server baseline: {shown(results.baseline)}")
    settled = results.settled_after
    print(
        f"server after:    {shown(after)} "
        + (f"(settled after {settled:.0f} s)" if settled is not None else "(NOT settled)")
    )
    trend = ", ".join(
        f"{t:.0f}s {r['rss_kib']}/{r['blocks']}/{r['fds']}/{r['open']}" for t, r in results.samples
    )
    print(f"during the run (RSS KiB/Python blocks/fds/open): {trend or '-'}")
    for name, snapshot in after["ports"].items():
        counters = {k: v for k, v in snapshot.items() if k not in ("events", "refused")}
        refused = {k: v for k, v in snapshot["refused"].items() if v}
        print(f"server {name}: {counters}, refused {refused}")
        print(f"  events: {after['events'][name]}")
    for line in log_summary(results.log):
        print(line)
    for problem in results.problems[:20]:
        print("PROBLEM:", problem)
    for violation, count in Counter(tally.violations).most_common(20):
        print(f"VIOLATION ({count}x): {violation}")
    failed = 0
    for ok, text in checks(results):
        print(f"  [{'ok' if ok else 'FAIL'}] {text}")
        failed += not ok
    print(f"FAILED: {failed} check(s)" if failed else "OK: nothing lost, nothing leaked")
    return 1 if failed else 0
