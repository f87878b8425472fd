"""Soak test: many clients doing random things to one server for N minutes.

Not collected by pytest (run it by hand)::

    .venv/bin/python tests/soak.py --minutes 5 --clients 40

It starts a server (``--serve`` mode of this file) in a subprocess, then runs
client threads that pick random operations - echo lines, a big download paced
by flow control, fixed-size records, slow async answers, paused reading,
half-closes, resets in the middle of a download, clean quits - and check every
byte of every answer.  At the end it prints what was done, any mismatch, and
the server's open descriptors, RSS and counters.  Exit status 1 if anything
was lost or wrong.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

# -- the server ------------------------------------------------------------------


def serve() -> None:
    from twisted.internet import reactor, task

    from tcpserver import TCPServer
    from tcpserver.events import DataIn
    from tcpserver.protocol import TCPServerProtocol

    server = TCPServer(local_host="127.0.0.1", default_eol=b"\n", connection_backlog=1024)
    server.config("MaxConnections=5000")
    downloads: dict[str, list[int]] = {}  # cid -> [next offset, total, seed]

    def pattern(seed: int, offset: int, size: int) -> bytes:
        block = struct.pack(">I", seed) * 16
        start = offset % len(block)
        reps = (start + size) // len(block) + 1
        return (block * reps)[start : start + size]

    def pump(cid: str) -> None:
        state = downloads.get(cid)
        conn = server.connections.get(cid)
        if state is None or conn is None:
            return
        while conn.ready_to_send and state[0] < state[1]:
            size = min(32768, state[1] - state[0])
            server.send(cid, pattern(state[2], state[0], size))
            state[0] += size
        if state[0] >= state[1]:
            del downloads[cid]

    async def on_data(event: DataIn) -> None:
        cid, text = event.connection_id, event.text
        conn = server.connections[cid]
        if conn.record_length:
            server.change_record_length(cid, 0)
            server.send(cid, b"R:" + text + b"\r\n")
            return
        command, _, arg = text.partition(b" ")
        if command == b"ECHO":
            server.send_line(cid, arg)
        elif command == b"BIG":
            total, seed = (int(x) for x in arg.split())
            downloads[cid] = [0, total, seed]
            pump(cid)
        elif command == b"REC":
            server.change_record_length(cid, int(arg))
        elif command == b"SLOW":
            await task.deferLater(reactor, int(arg) / 1000, lambda: None)
            if cid in server.connections and server.connections[cid].connected:
                server.send_line(cid, b"SLOW ok")
        elif command == b"PAUSE":
            server.pause_data(cid)
            await task.deferLater(reactor, int(arg) / 1000, lambda: None)
            if cid in server.connections:
                server.process_data(cid)
                if server.connections[cid].connected:
                    server.send_line(cid, b"PAUSED")
        elif command == b"QUIT":
            server.send_line(cid, b"BYE")
            server.disconnect(cid)
        elif command == b"STATS":
            gc.collect()
            report = {
                "protocols": sum(isinstance(o, TCPServerProtocol) for o in gc.get_objects()),
                "fds": len(os.listdir("/proc/self/fd")),
                "rss_kib": _rss_kib(os.getpid()),
                "connections": len(server.connections),
                "stats": dict(server.factory.counters),
            }
            server.send_line(cid, json.dumps(report).encode())
        elif text:
            server.send_line(cid, b"ERR unknown " + text[:20])

    server.on("data_in", on_data)
    server.on("ready_to_send", lambda e: pump(e.connection_id))
    server.on("disconnected", lambda e: downloads.pop(e.connection_id, None))
    server.start_listening()
    print(server.local_port, flush=True)
    server.run()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


# -- the clients ------------------------------------------------------------------


class MismatchError(Exception):
    pass


class Client:
    def __init__(self, port: int, rng: random.Random, counts: Counter[str]) -> None:
        self.port = port
        self.rng = rng
        self.counts = counts
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

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

    def big(self, reset: bool) -> None:
        total = self.rng.choice([10_000, 300_000, 3_000_000])
        seed = self.rng.getrandbits(31)
        self.sock.sendall(b"BIG %d %d\n" % (total, seed))
        block = struct.pack(">I", seed) * 16
        got = 0
        if reset:
            stop_at = self.rng.randint(0, total)
            while got < stop_at:
                got += len(self.exactly(min(65536, stop_at - got)))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            raise ConnectionAbortedError
        while got < total:
            size = min(65536, total - got)
            data = self.exactly(size)
            start = got % len(block)
            reps = (start + size) // len(block) + 1
            self.expect(data, (block * reps)[start : start + size], f"download at {got}")
            got += size
            if self.rng.random() < 0.05:
                time.sleep(0.02)  # a slow reader now and then

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
    port: int, deadline: float, seed: int, counts: Counter[str], problems: list[str]
) -> None:
    rng = random.Random(seed)
    operations = ["echo"] * 10 + ["big", "reset", "record", "slow", "pause", "half_close", "quit"]
    while time.monotonic() < deadline:
        try:
            client = Client(port, rng, counts)
        except OSError as exc:
            problems.append(f"connect failed: {exc}")
            time.sleep(0.1)
            continue
        counts["connections"] += 1
        op = "connect"
        try:
            for _ in range(rng.randint(1, 30)):
                op = rng.choice(operations)
                counts[op] += 1
                if op == "reset":
                    client.big(reset=True)
                else:
                    getattr(client, op)(reset=False) if op == "big" else getattr(client, op)()
            client.sock.close()
        except ConnectionAbortedError:
            pass
        except (MismatchError, OSError) as exc:
            problems.append(f"{op}: {type(exc).__name__}: {exc}")
            client.sock.close()


def stats(port: int) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"STATS\n")
        data = b""
        while not data.endswith(b"\r\n"):
            data += sock.recv(65536)
    result: dict[str, object] = json.loads(data)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    before = stats(port)
    counts: Counter[str] = Counter()
    problems: list[str] = []
    deadline = time.monotonic() + args.minutes * 60
    threads = [
        threading.Thread(target=client_loop, args=(port, deadline, args.seed + i, counts, problems))
        for i in range(args.clients)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(1.0)  # let the server see the last closes
    after = stats(port)
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    print(f"soak: {args.clients} clients, {time.monotonic() - started:.0f} s, seed {args.seed}")
    print("operations:", dict(sorted(counts.items())))
    print("server before:", before)
    print("server after: ", after)
    print(f"server exit status: {server.returncode}")
    for problem in problems[:20]:
        print("PROBLEM:", problem)
    print(f"{len(problems)} problem(s)")
    leaked = int(after["fds"]) - int(before["fds"])  # type: ignore[call-overload]
    open_connections = int(after["connections"]) - 1  # type: ignore[call-overload]
    if problems or leaked or open_connections or server.returncode not in (0, -15):
        print(f"FAILED: leaked fds {leaked}, connections left {open_connections}")
        return 1
    print("OK: nothing lost, nothing leaked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
