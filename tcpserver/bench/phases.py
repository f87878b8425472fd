"""
Where a connection's Python time goes, in process (``python -m tcpserver.bench phases``).

The load harness (``run``, ``../shared/bench``) measures what a client
sees; on a shared two-core machine its figures move by a few per cent
from run to run.  This measures the Python side alone, for tcpserver's
bench server and the plain Twisted ``LineReceiver`` baseline in the same
process: both run on Twisted's real ``tcp.Server`` transport over a stub
socket (no system calls, no reactor polling; what a read or a write
would ask of the reactor is recorded and done by hand), so the figures
repeat to 1-2 % (the split into per read and per line, derived from two
runs, to about 4 %).

* **churn**: accept, one line read and echoed, the peer's FIN, close -
  ``--per-turn`` connections per reactor turn (the answers a turn keeps
  leave at its end, as under load).  Reported per connection and by
  phase: accept, read (with the turn's end: the echo's send), FIN.
* **echo**: ``--connections`` open connections each read ``--lines``
  64-byte lines per turn; reported per line, and split into a cost per
  read and a cost per line (from a run with one line per read).

Nothing here is timed in tests: the test suite only checks that it runs.
The system calls this leaves out favour tcpserver (it makes fewer per
read and per connection), so the load harness's ratios are higher than
these.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure

__all__ = ["Measure", "StubSocket", "main", "measure"]

LINE = b"x" * 63 + b"\n"


class StubSocket:
    """A connected socket that reads what it is given and sends everything at once."""

    family = 2  # AF_INET
    type = 1  # SOCK_STREAM

    def __init__(self, *reads: bytes) -> None:
        self._reads = list(reads)
        self.repeat: bytes | None = None  # (returned by every recv once the reads run out)
        self.sent = 0  # bytes sent
        self.closed = False

    def recv(self, size: int) -> bytes:
        if self._reads:
            return self._reads.pop(0)
        return self.repeat if self.repeat is not None else b""

    def send(self, data: bytes) -> int:
        self.sent += len(data)
        return len(data)

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def setsockopt(self, *args: object) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 9)

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class _FDSet:
    """The transports' reactor: records who asked to be written, polls nothing."""

    def __init__(self) -> None:
        self.writers: set[Any] = set()

    def addReader(self, reader: object) -> None:
        pass

    def removeReader(self, reader: object) -> None:
        pass

    def addWriter(self, writer: object) -> None:
        self.writers.add(writer)

    def removeWriter(self, writer: object) -> None:
        self.writers.discard(writer)


class Measure:
    """
    One server's factory on stub sockets.

    :param factory: a Twisted server factory (its ``buildProtocol`` is used).
    :param clock: the reactor whose delayed calls end a turn (tcpserver
        sends what a turn kept from a ``callLater(0)``).
    """

    def __init__(self, factory: Any, clock: Any) -> None:
        self.factory = factory
        self.clock = clock
        self.fdset = _FDSet()
        self._session = 0

    def open(self, sock: StubSocket) -> Any:
        """Accept ``sock``: the protocol is built and its transport made, as ``tcp.Port`` does."""
        self._session += 1
        peer = ("127.0.0.1", 40000 + self._session % 20000)
        protocol = self.factory.buildProtocol(IPv4Address("TCP", *peer))
        transport = tcp.Server(sock, protocol, peer, None, self._session, self.fdset)  # type: ignore[arg-type]
        protocol.makeConnection(transport)
        return transport

    @staticmethod
    def read(transport: Any) -> None:
        """One readiness event: the transport reads (a FIN: a half-close, as the reactor says)."""
        why = transport.doRead()
        if why is not None and isinstance(why, error.ConnectionDone):
            transport.readConnectionLost(Failure(why))

    def end_turn(self) -> None:
        """The reactor turn ends: its delayed calls run, then what waits to be written is."""
        self.clock.runUntilCurrent()
        while self.fdset.writers:
            self.fdset.writers.pop().doWrite()


def _best(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def churn(m: Measure, connections: int, per_turn: int, rounds: int) -> dict[str, float]:
    """µs per connection: accept, read (with the turn's end), FIN, and in all."""
    clock = time.perf_counter
    phases = {"accept": 0.0, "read": 0.0, "fin": 0.0}

    def one_round() -> float:
        for key in phases:
            phases[key] = 0.0
        start = clock()
        for _ in range(connections // per_turn):
            t0 = clock()
            transports = [m.open(StubSocket(LINE, b"")) for _ in range(per_turn)]
            t1 = clock()
            for transport in transports:
                m.read(transport)
            m.end_turn()
            t2 = clock()
            for transport in transports:
                m.read(transport)
            m.end_turn()
            t3 = clock()
            phases["accept"] += t1 - t0
            phases["read"] += t2 - t1
            phases["fin"] += t3 - t2
        return (clock() - start) / connections * 1e6

    one_round()  # (warm-up)
    best = _best(rounds, one_round)
    done = connections // per_turn * per_turn
    return {"total": best} | {key: value / done * 1e6 for key, value in phases.items()}


def echo(m: Measure, connections: int, lines: int, turns: int, rounds: int) -> float:
    """ns per line: ``connections`` connections each read ``lines`` lines per turn."""
    socks = []
    transports = []
    for _ in range(connections):
        sock = StubSocket()
        sock.repeat = LINE * lines
        socks.append(sock)
        transports.append(m.open(sock))
    clock = time.perf_counter

    def one_round() -> float:
        start = clock()
        for _ in range(turns):
            for transport in transports:
                m.read(transport)
            m.end_turn()
        return (clock() - start) / (turns * connections * lines) * 1e9

    one_round()
    best = _best(rounds, one_round)
    for sock, transport in zip(socks, transports, strict=True):
        sock.repeat = None  # (the peer closes: its FIN is read next)
        m.read(transport)
    m.end_turn()
    return best


def measure(
    connections: int = 20000, per_turn: int = 10, turns: int = 2000, rounds: int = 5
) -> dict[str, Any]:
    """
    Both servers, every figure, and the ratios LineReceiver / tcpserver
    (above 1: tcpserver spends less).
    """
    from twisted.internet import reactor

    from tcpserver.bench.baseline import line_echo_factory
    from tcpserver.bench.serve import build_server

    server: Any = build_server(0, None, 100)
    servers = {
        "twisted": Measure(line_echo_factory(), reactor),
        "tcpserver": Measure(server.factory, reactor),
    }
    figures: dict[str, dict[str, float]] = {}
    for name, m in servers.items():
        result = {f"churn_{k}_us": v for k, v in churn(m, connections, per_turn, rounds).items()}
        result["echo16_ns_per_line"] = echo(m, 10, 16, turns, rounds)
        one = echo(m, 10, 1, turns, rounds)
        # a read of n lines costs read + n * line
        result["echo_per_line_ns"] = (result["echo16_ns_per_line"] * 16 - one) / 15
        result["echo_per_read_ns"] = one - result["echo_per_line_ns"]
        figures[name] = result
    ratios = {
        key: figures["twisted"][key] / figures["tcpserver"][key] for key in figures["twisted"]
    }
    return {"figures": figures, "ratio": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpserver.bench phases")
    parser.add_argument("--connections", type=int, default=20000, help="churned per round")
    parser.add_argument("--per-turn", type=int, default=10, help="connections per reactor turn")
    parser.add_argument("--turns", type=int, default=2000, help="echo turns per round")
    parser.add_argument("--rounds", type=int, default=5, help="the best round counts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for flag in ("connections", "per_turn", "turns", "rounds"):
        value = getattr(args, flag)
        if value < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    result = measure(args.connections, args.per_turn, args.turns, args.rounds)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    figures, ratios = result["figures"], result["ratio"]
    print(f"{'':26s} {'LineReceiver':>13s} {'tcpserver':>10s} {'ratio':>6s}")
    for key in figures["twisted"]:
        print(
            f"{key:26s} {figures['twisted'][key]:13.2f} {figures['tcpserver'][key]:10.2f}"
            f" {ratios[key]:6.2f}"
        )
    print(
        "(µs per connection, ns per line; ratio = LineReceiver / tcpserver, above 1: "
        "tcpserver spends less)",
        file=sys.stderr,
    )
    return 0
