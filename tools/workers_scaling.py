"""Measure ``--workers N``: throughput with 1 and 2 workers, and how accepts spread.

Usage (from the project root, after ``../shared/bench/run_all.sh`` has built
its load generator)::

    python tools/workers_scaling.py [--loadgen .bench/build/loadgen] [--twistd .venv/bin/twistd]

For each worker count it starts ``twistd -n tcpserver --port P --workers N``
(the built-in echo handler), runs the C load generator's echo64 and churn
workloads against it (not pinned: the workers and the load generator share
the machine's cores, as they would on a small server), then opens 2,000
idle connections and counts each worker's sockets in ``/proc`` - the
kernel's spread of ``accept`` over the processes waiting on the shared
socket.  Prints one table (Markdown) and exits 0; a failed run exits 1.
"""
# ruff: noqa: S603 - runs the commands named on its own command line

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_listening(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout} s")


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


def loadgen(binary: str, port: int, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [binary, *args, "-p", str(port)], capture_output=True, text=True, check=True
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def measure(twistd: str, binary: str, workers: int) -> dict[str, object]:
    port = free_port()
    command = [twistd, "-n", "--pidfile=", "tcpserver", "--port", str(port), "--backlog", "4096"]
    command += ["--max-connections", "10000"]
    if workers > 1:
        command += ["--workers", str(workers)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        time.sleep(1)  # (every worker up)
        loadgen(binary, port, "echo", "-c", "50", "-w", "16", "-s", "64", "-d", "1")  # warm
        echo = loadgen(binary, port, "echo", "-c", "50", "-w", "16", "-s", "64", "-d", "5")
        churn = loadgen(binary, port, "churn", "-c", "20", "-d", "5", "--src-addrs", "64")
        time.sleep(1)  # (the churn's last connections close)
        processes = children(server.pid) if workers > 1 else [server.pid]
        before = {pid: sockets_of(pid) for pid in processes}
        idle = subprocess.Popen(
            [binary, "idle", "-c", "2000", "--hold", "3", "-p", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert idle.stderr is not None
        for line in idle.stderr:
            if "connected in" in line:  # (every connection is made; it holds them now)
                break
        deadline = time.monotonic() + 2.5  # (within the 3 s hold)
        spread = [0] * len(processes)
        while time.monotonic() < deadline:  # (the most accepted at once)
            now = [sockets_of(pid) - before[pid] for pid in processes]
            if sum(now) > sum(spread):
                spread = now
            if sum(spread) >= 2000:
                break
            time.sleep(0.05)
        idle.communicate()
        return {
            "workers": workers,
            "echo_lines_per_s": echo["lines_per_s"],
            "echo_ok": echo["ok"],
            "churn_conns_per_s": churn["conns_per_s"],
            "churn_ok": churn["ok"],
            "idle_spread": spread,
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loadgen", default=".bench/build/loadgen")
    parser.add_argument("--twistd", default=str(Path(sys.executable).parent / "twistd"))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--reps", type=int, default=1, help="repeat, and report medians")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    runs = [[measure(args.twistd, args.loadgen, n) for n in counts] for _ in range(args.reps)]
    rows = []
    for index, _ in enumerate(counts):
        reps = [run[index] for run in runs]
        middle = dict(reps[len(reps) // 2])
        for key in ("echo_lines_per_s", "churn_conns_per_s"):
            middle[key] = statistics.median(float(rep[key]) for rep in reps)  # type: ignore[arg-type]
        middle["echo_ok"] = all(rep["echo_ok"] for rep in reps)
        middle["churn_ok"] = all(rep["churn_ok"] for rep in reps)
        rows.append(middle)
    base = rows[0]
    print("| workers | echo64 lines/s | ratio | churn conn/s | ratio | 2,000 conns per worker |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        echo_ratio = float(row["echo_lines_per_s"]) / float(base["echo_lines_per_s"])  # type: ignore[arg-type]
        churn_ratio = float(row["churn_conns_per_s"]) / float(base["churn_conns_per_s"])  # type: ignore[arg-type]
        print(
            f"| {row['workers']} | {float(row['echo_lines_per_s']):,.0f} | {echo_ratio:.2f} "  # type: ignore[arg-type]
            f"| {float(row['churn_conns_per_s']):,.0f} | {churn_ratio:.2f} "  # type: ignore[arg-type]
            f"| {' / '.join(map(str, row['idle_spread']))} |"  # type: ignore[call-overload]
        )
    return 0 if all(row["echo_ok"] and row["churn_ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
