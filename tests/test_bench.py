"""The benchmark: a short smoke run of ``python -m tcpserver.bench run``.

Benchmarks are not timed tests: this checks that the comparison runs end to
end against both servers and that every echoed byte came back, not how fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tcpserver.bench.load import make_line, percentile


def bench(tmp_path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m tcpserver.bench ARGS`` from outside the source tree (the installed package)."""
    return subprocess.run(
        [sys.executable, "-m", "tcpserver.bench", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_lines_carry_their_sequence_and_size():
    line = make_line(255, 64)
    assert len(line) == 64
    assert line.startswith(b"00000000000000ff")
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert make_line(1, 4096)[:16] != line[:16]


def test_percentile():
    assert percentile([], 0.5) == 0.0
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile(list(map(float, range(100))), 0.99) == 99.0


@pytest.mark.timeout(180)
def test_bench_run_smoke(tmp_path):
    result = bench(
        tmp_path, "run", "--quick", "--json", "--duration", "0.5", "--idle", "100", timeout=170
    )
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    workloads = summary["workloads"]
    assert set(workloads) == {
        "echo64", "latency", "bulk4k", "churn", "idle", "tls_echo64", "tls_churn", "tls_idle",
    }  # fmt: skip
    for entry in workloads.values():
        assert entry["twisted"]["ok"]
        assert entry["tcpserver"]["ok"]
        assert all(value > 0 for value in entry["ratio"].values())
    assert workloads["echo64"]["tcpserver"]["lines_per_s"] > 0
    assert "[rep 1/1] echo64" in result.stderr  # progress goes to stderr


def test_bench_usage():
    result = subprocess.run(
        [sys.executable, "-m", "tcpserver.bench"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "run [--quick]" in result.stderr


@pytest.mark.parametrize("which", ["twisted", "tcpserver"])
def test_phases_stub_transport_echoes_and_closes(which):
    """The in-process measure runs the real server code: the line comes back, the FIN closes."""
    from twisted.internet import reactor

    from tcpserver.bench.baseline import line_echo_factory
    from tcpserver.bench.phases import LINE, Measure, StubSocket
    from tcpserver.bench.serve import build_server

    server: Any = build_server(0, None, 100)
    factory = line_echo_factory() if which == "twisted" else server.factory
    m = Measure(factory, reactor)
    sock = StubSocket(LINE * 3, b"")
    transport = m.open(sock)
    m.read(transport)
    m.end_turn()
    assert sock.sent == len(LINE) * 3
    assert not sock.closed
    m.read(transport)  # the FIN
    m.end_turn()
    assert sock.closed
    assert not transport.connected


def test_bench_phases_smoke(tmp_path):
    result = bench(
        tmp_path, "phases", "--json", "--connections", "200", "--turns", "20", "--rounds", "1",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    keys = {
        "churn_total_us", "churn_accept_us", "churn_read_us", "churn_fin_us",
        "echo16_ns_per_line", "echo_per_line_ns", "echo_per_read_ns",
    }  # fmt: skip
    for server in ("twisted", "tcpserver"):
        assert set(summary["figures"][server]) == keys
        assert summary["figures"][server]["churn_total_us"] > 0
        assert summary["figures"][server]["echo16_ns_per_line"] > 0
    assert set(summary["ratio"]) == keys


def test_bench_phases_refuses_a_bad_count(tmp_path):
    result = bench(tmp_path, "phases", "--rounds", "0", timeout=60)
    assert result.returncode == 2
    assert "--rounds must be at least 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr
