"""``python -m tcpserver.bench run``: tcpserver against plain Twisted, same load.

Starts each server as a subprocess (``serve`` - a TCPServer whose ``data_in``
listener echoes every line through the public API - and ``baseline`` - a
hand-written Twisted ``LineReceiver``, with ``listenSSL`` for TLS), drives
them in turn with the same client processes (``load``), and prints the
figures with the ratio tcpserver / Twisted.  Servers run pinned to one CPU
and clients to the others when the machine has two or more.

Workloads: pipelined 64-byte line echo; connect/echo/close churn; idle
connections (server RSS per connection); the same three over TLS 1.3 (a
fifth as many idle TLS connections, each with its handshake done).  Every
echoed byte is checked: a run that loses or corrupts a line is marked
failed (``ok`` false, exit status 1).  Figures on a shared machine are
noisy: compare the ratios of one run, and repeat (``--reps``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

from tcpserver.bench.load import make_line, percentile
from tcpserver.bench.serve import raise_fd_limit

SERVERS = ("twisted", "tcpserver")


@dataclass
class Plan:
    duration: float
    warmup: float
    clients: int
    conns: int
    window: int
    churn_clients: int
    bulk_conns: int
    idle: int
    reps: int
    tls: bool


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------


def cpus() -> tuple[set[int], set[int]]:
    """(server CPUs, client CPUs): the last CPU for the server when there are two or more."""
    try:
        available = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return set(), set()
    if len(available) < 2:
        return set(), set()
    return {available[-1]}, set(available[:-1])


def pinned(cpu_set: set[int]) -> Any:
    if not cpu_set:
        return None
    return lambda: os.sched_setaffinity(0, cpu_set)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def server(
    kind: str, tls: tuple[str, str] | None, cpu_set: set[int], extra: tuple[str, ...] = ()
) -> Iterator[tuple[int, int]]:
    """Run one server (``extra``: more of its arguments); yields (port, pid)."""
    port = free_port()
    command = "serve" if kind == "tcpserver" else "baseline"
    argv = [sys.executable, "-m", "tcpserver.bench", command, "--port", str(port)]
    if tls:
        argv += ["--tls", *tls]
    argv += extra
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pinned(cpu_set)
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    raise RuntimeError(f"{kind} server did not start: {error}") from None
                time.sleep(0.05)
        time.sleep(0.2)  # let the probe connection go
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def run_clients(
    mode: str, port: int, pid: int, plan: Plan, count: int, extra: list[str], cpu_set: set[int]
) -> tuple[list[dict[str, Any]], float]:
    """Start ``count`` load processes together; returns their results and server CPU seconds."""
    start_at = time.time() + 1.0 + 0.05 * count
    argv = [
        sys.executable, "-m", "tcpserver.bench", "load", mode, "--port", str(port),
        "--duration", str(plan.duration), "--warmup", str(plan.warmup),
        "--start-at", str(start_at), *extra,
    ]  # fmt: skip
    processes = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=pinned(cpu_set))  # noqa: S603
        for _ in range(count)
    ]
    time.sleep(max(0.0, start_at + plan.warmup - time.time()))
    cpu_before = cpu_seconds(pid)
    time.sleep(plan.duration)
    cpu_used = cpu_seconds(pid) - cpu_before
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=plan.duration + 60)
        if process.returncode != 0:
            raise RuntimeError(f"a load process failed ({process.returncode})")
        results.append(json.loads(out))
    return results, cpu_used


# -- workloads ---------------------------------------------------------------------------


def echo(
    port: int,
    pid: int,
    plan: Plan,
    tls: str | None,
    cpu_set: set[int],
    *,
    clients: int = 0,
    conns: int = 0,
    window: int = 0,
    size: int = 64,
) -> dict[str, Any]:
    """Pipelined lines of ``size`` bytes (the plan's clients, connections and window by default)."""
    extra = [
        "--conns", str(conns or plan.conns), "--window", str(window or plan.window),
        "--size", str(size),
    ]  # fmt: skip
    if tls:
        extra += ["--tls", "--cafile", tls]
    results, cpu = run_clients("echo", port, pid, plan, clients or plan.clients, extra, cpu_set)
    lines = sum(r["lines"] for r in results)
    seconds = max(r["seconds"] for r in results)
    latencies = [v for r in results for v in r["latencies_us"]]
    return {
        "lines_per_s": lines / seconds,
        "mb_per_s": lines * size / seconds / 1e6,
        "srv_us_per_line": cpu / max(lines * plan.duration / seconds, 1) * 1e6,
        "p50_us": percentile(latencies, 0.5),
        "p99_us": percentile(latencies, 0.99),
        "ok": all(r["lost"] == 0 and r["bad"] == 0 for r in results) and lines > 0,
    }


def churn(port: int, pid: int, plan: Plan, tls: str | None, cpu_set: set[int]) -> dict[str, Any]:
    extra = ["--tls", "--cafile", tls] if tls else []
    results, cpu = run_clients("churn", port, pid, plan, plan.churn_clients, extra, cpu_set)
    conns = sum(r["conns"] for r in results)
    return {
        "conns_per_s": conns / plan.duration,
        "srv_us_per_conn": cpu / max(conns, 1) * 1e6,
        "ok": all(r["failed"] == 0 for r in results) and conns > 0,
    }


def idle(port: int, pid: int, count: int, tls: str | None = None) -> dict[str, Any]:
    """
    Open ``count`` connections (TLS handshake done, with ``tls``), read the
    server's RSS, then echo once on each.
    """
    import ssl

    context = None
    if tls:
        context = ssl.create_default_context(cafile=tls)
        context.check_hostname = False
    base_fds, base_rss = open_fds(pid), rss_bytes(pid)
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if context is not None:
                sock = context.wrap_socket(sock, server_hostname="localhost")
            socks.append(sock)
        deadline = time.monotonic() + 30
        while open_fds(pid) < base_fds + count and time.monotonic() < deadline:
            time.sleep(0.05)
        accepted = open_fds(pid) - base_fds
        time.sleep(0.5)
        rss = rss_bytes(pid) - base_rss
        line = make_line(7, 64)
        selector = selectors.DefaultSelector()
        for sock in socks:
            sock.sendall(line)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, bytearray())
        pending = len(socks)
        echoed = 0
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for key, _mask in selector.select(timeout=1):
                buffer = key.data
                try:
                    buffer += key.fileobj.recv(4096)  # type: ignore[union-attr]
                except (BlockingIOError, ssl.SSLWantReadError):
                    continue
                if len(buffer) >= len(line):
                    echoed += bytes(buffer) == line
                    pending -= 1
                    selector.unregister(key.fileobj)
        selector.close()
        rss_after_echo = rss_bytes(pid) - base_rss
    finally:
        for sock in socks:
            sock.close()
    return {
        "bytes_per_idle_conn": rss / count,
        "bytes_per_conn_after_echo": rss_after_echo / count,
        "ok": accepted >= count and echoed == count,
    }


# -- the run ------------------------------------------------------------------------------


def make_certificate(directory: Path) -> tuple[str, str]:
    """A self-signed localhost certificate (ECDSA P-256) for the TLS runs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bench.crt", directory / "bench.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


#: (workload, metric, higher is better) in the order printed
METRICS = (
    ("echo64", "lines_per_s", True),
    ("echo64", "srv_us_per_line", False),
    ("echo64", "p50_us", False),
    ("echo64", "p99_us", False),
    ("latency", "p50_us", False),
    ("latency", "p99_us", False),
    ("latency", "srv_us_per_line", False),
    ("bulk4k", "mb_per_s", True),
    ("bulk4k", "srv_us_per_line", False),
    ("churn", "conns_per_s", True),
    ("churn", "srv_us_per_conn", False),
    ("idle", "bytes_per_idle_conn", False),
    ("idle", "bytes_per_conn_after_echo", False),
    ("tls_echo64", "lines_per_s", True),
    ("tls_echo64", "srv_us_per_line", False),
    ("tls_churn", "conns_per_s", True),
    ("tls_churn", "srv_us_per_conn", False),
    ("tls_idle", "bytes_per_idle_conn", False),
)


def measure(plan: Plan) -> dict[str, Any]:
    raise_fd_limit()
    server_cpus, client_cpus = cpus()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = make_certificate(Path(scratch))
        workloads: list[tuple[str, bool]] = [
            ("echo64", False), ("latency", False), ("bulk4k", False), ("churn", False),
            ("idle", False),
        ]  # fmt: skip
        if plan.tls:
            workloads += [("tls_echo64", True), ("tls_churn", True), ("tls_idle", True)]
        for rep in range(plan.reps):
            for workload, tls in workloads:
                for kind in SERVERS:
                    log(f"[rep {rep + 1}/{plan.reps}] {workload:10s} {kind}")
                    with server(kind, (cert, key) if tls else None, server_cpus) as (port, pid):
                        cafile = cert if tls else None
                        if workload.endswith("echo64"):
                            figures = echo(port, pid, plan, cafile, client_cpus)
                        elif workload == "latency":  # one connection, one line at a time
                            figures = echo(
                                port, pid, plan, None, client_cpus, clients=1, conns=1, window=1
                            )
                        elif workload == "bulk4k":  # 4 KiB lines, as the harness's bulk
                            figures = echo(
                                port, pid, plan, None, client_cpus,
                                clients=1, conns=plan.bulk_conns, window=8, size=4096,
                            )  # fmt: skip
                        elif workload.endswith("churn"):
                            figures = churn(port, pid, plan, cafile, client_cpus)
                        elif tls:  # (a TLS connection costs a handshake: fewer of them)
                            figures = idle(port, pid, max(plan.idle // 5, 1), cafile)
                        else:
                            figures = idle(port, pid, plan.idle)
                    results.setdefault(workload, {}).setdefault(kind, []).append(figures)
                    if not figures["ok"]:
                        log(f"  FAILED: {figures}")
    summary: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "pinned": bool(server_cpus),
        "plan": plan.__dict__,
        "ok": all(f["ok"] for w in results.values() for runs in w.values() for f in runs),
        "workloads": {},
    }
    for workload, kinds in results.items():
        entry: dict[str, Any] = {}
        for kind, runs in kinds.items():
            entry[kind] = {key: median(run[key] for run in runs) for key in runs[0] if key != "ok"}
            entry[kind]["ok"] = all(run["ok"] for run in runs)
        entry["ratio"] = {
            key: entry["tcpserver"][key] / entry["twisted"][key]
            for key in entry["twisted"]
            if key != "ok" and entry["twisted"][key]
        }
        summary["workloads"][workload] = entry
    return summary


def table(summary: dict[str, Any]) -> str:
    rows = [
        f"tcpserver vs plain Twisted - {summary['date']}, Python {summary['python']}, "
        f"{summary['plan']['reps']} rep(s), medians, "
        f"{'server pinned to its own CPU' if summary['pinned'] else 'not pinned'}",
        "",
        f"{'workload':<12}{'metric':<22}{'twisted':>14}{'tcpserver':>14}{'ratio':>8}  better",
    ]
    for workload, metric, higher in METRICS:
        entry = summary["workloads"].get(workload)
        if entry is None:
            continue
        theirs, ours = entry["twisted"][metric], entry["tcpserver"][metric]
        ratio = entry["ratio"].get(metric, 0.0)
        rows.append(
            f"{workload:<12}{metric:<22}{theirs:>14,.1f}{ours:>14,.1f}{ratio:>8.2f}  "
            f"{'>1' if higher else '<1'}"
        )
    rows.append("")
    rows.append("all echoes verified" if summary["ok"] else "FAILED: some echo was lost or wrong")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpserver.bench run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (CI)")
    parser.add_argument("--reps", type=int, help="repetitions, interleaved (default 3; quick 1)")
    parser.add_argument("--duration", type=float, help="seconds per measurement")
    parser.add_argument("--idle", type=int, help="idle connections (default 10000)")
    parser.add_argument("--no-tls", action="store_true", help="skip the TLS workloads")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    quick = args.quick
    plan = Plan(
        duration=args.duration or (1.0 if quick else 3.0),
        warmup=0.3 if quick else 0.5,
        clients=1 if quick else 2,
        conns=10 if quick else 25,
        window=16,
        churn_clients=2 if quick else 4,
        bulk_conns=4 if quick else 10,
        idle=args.idle or (300 if quick else 10_000),
        reps=args.reps or (1 if quick else 3),
        tls=not args.no_tls,
    )
    summary = measure(plan)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print(table(summary))
    return 0 if summary["ok"] else 1
