"""The benchmark: a short smoke run of ``python -m tcpserver.bench run``.

Benchmarks are not timed tests: this checks that the comparison runs end to
end against both servers and that every echoed byte came back, not how fast.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
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


# -- the sampling profiler (serve/baseline --profile) --------------------------------------


def _burn(seconds: float) -> int:
    """Pure Python work for ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    count = 0
    while time.process_time() < end:
        count += sum(range(200))
    return count


def test_sampler_charges_the_function_that_burns_the_cpu():
    import signal

    from tcpserver.bench.sample import Sampler

    before = signal.getsignal(signal.SIGPROF)
    sampler = Sampler(0.001)
    sampler.start()
    try:
        _burn(0.4)
    finally:
        sampler.stop()
    assert signal.getsignal(signal.SIGPROF) is before  # (given back)
    assert sampler.samples >= 20  # (a 250 Hz kernel gives about 100 in 0.4 s)
    (site, count), *_ = sampler.own.most_common(1)
    assert site[1] == "_burn"
    assert count >= sampler.samples * 0.7
    assert sampler.total[site] >= count
    assert 0.35 <= sampler.cpu_seconds < 2
    report = sampler.report()
    assert f"{sampler.samples} samples in " in report
    assert "_burn (tests/test_bench.py:" in report.splitlines()[4]  # the first "self" row


def test_sampler_without_samples_says_so():
    from tcpserver.bench.sample import Sampler

    assert Sampler().report().startswith("no samples in 0.000 s of CPU")


@pytest.mark.parametrize("text", ["0", "-1", "abc", "inf", "nan"])
def test_a_bad_profile_interval_is_refused(text):
    import argparse

    from tcpserver.bench.sample import Sampler, interval_ms

    with pytest.raises(argparse.ArgumentTypeError, match=f"not {text!r}"):
        interval_ms(text)
    seconds = float(text) / 1000 if text != "abc" else 0.0
    with pytest.raises(ValueError, match="interval must be seconds above 0"):
        Sampler(seconds)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("kind", "main"), [("tcpserver", "serve.py"), ("twisted", "baseline.py")])
def test_a_profiled_server_writes_where_its_cpu_went(tmp_path, kind, main):
    """Under a churn load, SIGTERM: the report counts samples, all of them inside its main()."""
    from tcpserver.bench.run import server

    report = tmp_path / "profile.txt"
    with server(kind, None, set(), ("--profile", str(report))) as (port, _pid):
        assert "written when it stops" in report.read_text()
        deadline = time.process_time() + 0.5
        while time.process_time() < deadline:  # connect, one line, its echo, close
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"hello\n")
                assert client.recv(100) == b"hello\n"
    text = report.read_text()
    samples = int(text.split(" samples in ", 1)[0])
    assert samples >= 1, text
    main_row = next(line for line in text.splitlines() if f" main (bench/{main}:" in line)
    assert main_row.split()[:2] == ["100.00%", str(samples)]  # every sample in the server


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--profile", "/nonexistent-dir/profile.txt"],
            "--profile '/nonexistent-dir/profile.txt': cannot write it",
        ),
        (
            ["--profile", "p.txt", "--profile-interval", "0"],
            "argument --profile-interval: must be milliseconds above 0, not '0'",
        ),
    ],
)
def test_a_bad_profile_argument_is_one_clear_error(tmp_path, args, message):
    result = bench(tmp_path, "serve", "--port", "1", *args, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
