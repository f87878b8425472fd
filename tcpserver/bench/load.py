"""Load generator processes for ``python -m tcpserver.bench run``.

``python -m tcpserver.bench load echo|churn ...`` runs one client process and
prints one JSON object.  Plain sockets and ``selectors`` only (``ssl`` for
TLS), so the measuring side is the same for every server:

* **echo**: ``--conns`` connections each keep ``--window`` 64-byte lines in
  flight; every line carries a sequence number and is checked when it comes
  back (length, order, bytes).  After ``--duration`` seconds sending stops
  and what is in flight is drained: ``lost`` and ``bad`` must be 0.
* **churn**: connect (and handshake), send one line, read its echo, close;
  repeat for ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from dataclasses import dataclass, field

FILLER = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_line(sequence: int, size: int) -> bytes:
    """``size`` bytes: 16 hex digits of ``sequence``, filler, ``\\n``."""
    head = b"%016x" % sequence
    body = (FILLER * (size // len(FILLER) + 1))[: size - 17]
    return head + body + b"\n"


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def client_context(cafile: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False  # the bench certificate names localhost
    if cafile is None:
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass
class _Conn:
    sock: socket.socket
    sent: deque[tuple[int, float]] = field(default_factory=deque)  # (seq, time)
    inbuf: bytes = b""
    outbuf: bytes = b""
    next_seq: int = 0


class EchoLoad:
    """Pipelined line echo over many connections in one process."""

    def __init__(
        self,
        port: int,
        conns: int,
        window: int,
        size: int,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.port = port
        self.window = window
        self.size = size
        self.tls = tls
        self.selector = selectors.DefaultSelector()
        self.conns: list[_Conn] = []
        self.received = 0
        self.bad = 0
        self.latencies: list[float] = []
        self.sending = True
        self.measuring = False
        self.measured = 0
        for _ in range(conns):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
            sock.setblocking(False)
            conn = _Conn(sock)
            self.conns.append(conn)
            self.selector.register(sock, selectors.EVENT_READ, conn)

    def _queue_line(self, conn: _Conn) -> None:
        seq = conn.next_seq
        conn.next_seq += 1
        conn.sent.append((seq, time.perf_counter()))
        conn.outbuf += make_line(seq, self.size)

    def _flush(self, conn: _Conn) -> None:
        while conn.outbuf:
            try:
                count = conn.sock.send(conn.outbuf)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                break
            conn.outbuf = conn.outbuf[count:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        self.selector.modify(conn.sock, events, conn)

    def _read(self, conn: _Conn) -> None:
        while True:
            try:
                data = conn.sock.recv(1 << 16)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            if not data:
                raise ConnectionError("the server closed a connection")
            conn.inbuf += data
            now = time.perf_counter()
            lines = conn.inbuf.split(b"\n")
            conn.inbuf = lines.pop()
            for line in lines:
                seq, started = conn.sent.popleft()
                if line + b"\n" != make_line(seq, self.size):
                    self.bad += 1
                self.received += 1
                if self.measuring:
                    self.measured += 1
                    if self.measured % 8 == 0:
                        self.latencies.append((now - started) * 1e6)
                if self.sending:
                    self._queue_line(conn)
            if not isinstance(conn.sock, ssl.SSLSocket) or not conn.sock.pending():
                return

    def run(self, warmup: float, duration: float) -> dict[str, object]:
        for conn in self.conns:
            for _ in range(self.window):
                self._queue_line(conn)
            self._flush(conn)
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration
        window_start = measure_from
        count_start = 0
        elapsed, lines = duration, 0
        while True:
            now = time.perf_counter()
            if not self.measuring and now >= measure_from:
                self.measuring = True
                window_start, count_start = now, self.received
            if self.sending and now >= stop_at:
                self.sending = False
                elapsed = now - window_start
                lines = self.received - count_start
            if not self.sending and all(not c.sent for c in self.conns):
                break
            if not self.sending and now > stop_at + 10:
                break  # what is still in flight is lost
            for key, _mask in self.selector.select(timeout=0.5):
                conn = key.data
                self._read(conn)
                self._flush(conn)
        lost = sum(len(c.sent) for c in self.conns)
        for conn in self.conns:
            conn.sock.close()
        return {
            "lines": lines,
            "seconds": elapsed,
            "lost": lost,
            "bad": self.bad,
            "latencies_us": self.latencies,
        }


def churn(
    port: int, duration: float, warmup: float, tls: ssl.SSLContext | None
) -> dict[str, object]:
    """Connect, one line, its echo, close; over and over."""
    line = make_line(1, 64)
    done = failed = 0
    latencies: list[float] = []
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    while True:
        began = time.perf_counter()
        if began >= stop_at:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
                sock.sendall(line)
                got = b""
                while len(got) < len(line):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                if got != line:
                    failed += 1
                    continue
        except OSError:
            failed += 1
            continue
        if began >= measure_from:
            done += 1
            latencies.append((time.perf_counter() - began) * 1e6)
    return {"conns": done, "seconds": duration, "failed": failed, "latencies_us": latencies}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpserver.bench load")
    parser.add_argument("mode", choices=("echo", "churn"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--conns", type=int, default=10)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--cafile")
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to begin at")
    args = parser.parse_args(argv)
    context = client_context(args.cafile) if args.tls else None
    if args.mode == "echo":
        load = EchoLoad(args.port, args.conns, args.window, args.size, context)
        delay = args.start_at - time.time()
        if delay > 0:
            time.sleep(delay)  # all client processes start together
        result = load.run(args.warmup, args.duration)
    else:
        delay = args.start_at - time.time()
        if delay > 0:
            time.sleep(delay)
        result = churn(args.port, args.duration, args.warmup, context)
    json.dump(result, sys.stdout)
    return 0
