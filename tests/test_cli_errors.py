"""
A person's mistake on the command line gets one line naming the flag and
the value, and a non-zero exit - under ``twistd tcpserver`` and
``python -m tcpserver`` alike: no help text, no traceback.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import twistd_argv

RUNNERS = {
    "twistd": lambda *args: twistd_argv(*args),
    "python -m": lambda *args: [sys.executable, "-m", "tcpserver", *args],
}


def run(runner: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        RUNNERS[runner](*args), cwd=cwd, capture_output=True, text=True, timeout=60
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line the runner said about the mistake (twistd may log its start)."""
    said = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(said) == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "--help" not in result.stdout  # (not the whole help)
    assert len(result.stdout.splitlines()) <= 5, result.stdout
    return said[0]


@pytest.fixture
def taken_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "setupfail.py").write_text(
        "def setup(server):\n    raise RuntimeError('database down')\n\n"
        "def on_data_in(server, event):\n    pass\n"
    )
    (tmp_path / "broken.py").write_text("x = 1\nimport no_such_module_here\n")
    (tmp_path / "bad.toml").write_text('drain-timeout = "soon"\n')
    return tmp_path


USAGE = [
    (("--workers", "abc"), ["--workers", "'abc'"]),
    (("--drain-timeout", "soon"), ["--drain-timeout", "'soon'"]),
    (("--port", "abc"), ["--port", "'abc'"]),
    (("--frobnicate",), ["--frobnicate"]),
    (("--port", "0", "--listen", "bogus:endpoint"), ["--listen", "'bogus:endpoint'"]),
    (("--port", "0", "--listen", "tcp:notaport"), ["--listen", "'tcp:notaport'"]),
    (("--ssl-start-mode", "implicit", "--port", "0"), ["IMPLICIT", "--tls-cert"]),
    (("--config-file", "bad.toml", "--port", "0"), ["bad.toml", "drain-timeout", "'soon'"]),
]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(("args", "named"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_a_usage_mistake_is_one_line_and_status_2(runner, files, args, named):
    result = run(runner, files, *args)
    assert result.returncode == 2
    line = one_line(result)
    assert line.startswith(("twistd tcpserver: ", "python -m tcpserver: ")), line
    for word in named:
        assert word in line, line
    assert "--help lists the options" in line


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_taken_port_is_one_line_naming_the_flags(runner, files, taken_port):
    for workers in ((), ("--workers", "2")):
        result = run(runner, files, "--interface", "127.0.0.1", "--port", str(taken_port), *workers)
        assert result.returncode == 1
        line = one_line(result)
        assert f"--port {taken_port}" in line, line
        assert "--interface '127.0.0.1'" in line
        assert "[10048]" in line


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize(
    ("interface", "code"), [("203.0.113.7", "[10049]"), ("no.such.host.invalid", "[11001]")]
)
def test_a_bad_interface_is_one_line_naming_it(runner, files, interface, code):
    result = run(runner, files, "--interface", interface, "--port", "0")
    assert result.returncode == 1
    line = one_line(result)
    assert f"--interface {interface!r}" in line
    assert code in line


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_setup_that_raises_is_one_line_with_the_handlers_line(runner, files):
    result = run(runner, files, "--handler", "setupfail.py", "--port", "0")
    assert result.returncode == 1
    line = one_line(result)
    assert "setup() raised RuntimeError: database down" in line
    assert f"{files / 'setupfail.py'}:2" in line


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_handler_that_cannot_import_shows_its_own_file_and_line(runner, files):
    result = run(runner, files, "--handler", "broken.py", "--port", "0")
    assert result.returncode == 2
    assert "Traceback (the handler's own frames)" in result.stderr
    assert f'File "{files / "broken.py"}", line 2' in result.stderr
    assert "No module named 'no_such_module_here'" in result.stderr
    assert "--help" not in result.stdout + result.stderr.splitlines()[-1]


SETPRIV = "/usr/bin/setpriv"


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(SETPRIV),
    reason="needs root to run the server as an unprivileged user",
)
@pytest.mark.parametrize("runner", RUNNERS)
def test_a_privileged_port_without_permission_is_one_line(runner):
    """As an unprivileged user, port 80 is refused: 10013, naming the flags."""
    unprivileged = [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*unprivileged, *RUNNERS[runner]("--version")], cwd="/", capture_output=True, timeout=60
    )
    if probe.returncode != 0:
        pytest.skip("the unprivileged user cannot run this interpreter here")
    result = subprocess.run(
        [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups",
         *RUNNERS[runner]("--interface", "127.0.0.1", "--port", "80")],
        cwd="/", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    line = one_line(result)
    assert "--port 80" in line
    assert "[10013]" in line
