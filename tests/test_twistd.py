"""twistd as a real subprocess: the installed plugin, handlers, flags, signals."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from helpers import client, venv_bin

TWISTD = venv_bin("twistd")
LISTENING = re.compile(r"tcpserver listening on .* \(port (\d+)\)")


class Twistd:
    """A ``twistd -n tcpserver ...`` child process and its log."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [TWISTD, "-n", "--pidfile=", "tcpserver", "--interface", "127.0.0.1", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.port = int(self.wait_for(LISTENING).group(1))

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float = 30) -> re.Match[str]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        for line in self.lines:
            match = regex.search(line)
            if match:
                return match
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        raise AssertionError(f"{pattern!r} not logged; log so far:\n{''.join(self.lines)}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal twistd; return 0 for a clean shutdown, else the exit status."""
        self.proc.send_signal(sig)
        out, _ = self.proc.communicate(timeout=30)
        self.lines += out.splitlines(keepends=True)
        code = self.proc.returncode
        # twistd re-raises the stopping signal after a clean shutdown
        if code == -sig and "Server Shut Down." in self.log():
            return 0
        return code

    def log(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def spawn(tmp_path):
    started: list[Twistd] = []

    def start(*args: str, cwd: Path = tmp_path) -> Twistd:
        proc = Twistd(list(args), cwd)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait()


def run_usage_error(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", "tcpserver", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


HANDLER = textwrap.dedent(
    """
    seen = []

    def setup(server):
        server.default_eol = b"\\n"
        print("setup ran, listening:", server.listening, flush=True)

    def on_data_in(server, event):
        server.send_line(event.connection_id, event.text[::-1])

    def on_disconnected(server, event):
        print("disconnected", event.connection_id, event.status_code, flush=True)
    """
)


def test_echo_is_the_default_and_says_so(spawn):
    proc = spawn("--port", "0")
    assert "serving the built-in echo handler" in proc.log()
    assert client(proc.port, b"ping\r\npong", shut=True) == b"ping\r\npong"
    assert proc.stop() == 0


def test_handler_module_by_dotted_name_from_the_working_directory(spawn, tmp_path):
    (tmp_path / "reverser.py").write_text(HANDLER)
    proc = spawn("--port", "0", "--handler", "reverser")
    proc.wait_for("setup ran, listening: False")
    assert client(proc.port, b"abc\n", 5) == b"cba\r\n"
    proc.wait_for(r"disconnected 1 0")
    assert proc.stop() == 0


def test_handler_module_by_path(spawn, tmp_path):
    handler_dir = tmp_path / "handlers"
    handler_dir.mkdir()
    (handler_dir / "rev.py").write_text(HANDLER)
    proc = spawn("--port", "0", "--handler", str(handler_dir / "rev.py"))
    assert client(proc.port, b"xyz\n", 5) == b"zyx\r\n"
    assert proc.stop() == 0


def test_sigterm_closes_open_connections_gracefully(spawn, tmp_path):
    (tmp_path / "reverser.py").write_text(HANDLER)
    proc = spawn("--port", "0", "--handler", "reverser")
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
    sock.sendall(b"hi\n")
    assert sock.recv(10) == b"ih\r\n"
    assert proc.stop(signal.SIGTERM) == 0
    assert "disconnected 1 0" in proc.log()
    assert sock.recv(10) == b""
    sock.close()


def test_flags_and_config_reach_the_server(spawn):
    proc = spawn(
        "--port",
        "0",
        "--eol",
        "\\n",
        "--max-connections",
        "1",
        "--config",
        "CodePage=1252",
        "--config",
        "tcpnodelay=yes",
    )
    first = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
    time.sleep(0.3)
    # MaxConnections=1: the second connection is closed at once, unanswered
    second = b""
    with contextlib.suppress(ConnectionResetError):
        second = client(proc.port, b"x\n", 2, timeout=2)
    assert second == b""
    first.sendall(b"line\n")
    assert first.recv(10) == b"line\n"
    first.close()
    assert proc.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--handler", "no_such_module_xyz"], "cannot import handler 'no_such_module_xyz'"),
        (["--handler", "nothing_to_wire"], "defines none of: on_connection_request"),
        (["--handler", "broken_handler"], "ZeroDivisionError: division by zero"),
        (["--config", "MaxConnections=0"], "MaxConnections: bad value '0'"),
        (["--config", "NoSuchSetting=1"], "unknown setting 'NoSuchSetting'"),
        (["--config", "justaname"], "--config takes Name=Value"),
        (["--max-line-length", "12"], "--max-line-length '12'"),
        (["--port", "http"], "--port 'http'"),
    ],
)
def test_bad_command_lines_are_one_line_usage_errors(tmp_path, args, message):
    (tmp_path / "nothing_to_wire.py").write_text("x = 1\n")
    (tmp_path / "broken_handler.py").write_text("1 / 0\n")
    result = run_usage_error(tmp_path, *args)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    # at most the handler's own frames, never twistd's or importlib's
    assert "Traceback (most recent call last)" not in output
    assert "importlib" not in output


def test_help_lists_flags_and_defaults(tmp_path):
    result = run_usage_error(tmp_path, "--help")
    assert result.returncode == 0
    for text in (
        "--port",
        "--handler",
        "--config",
        "--eol",
        "--single-line-mode",
        "--max-line-length",
        "--idle-timeout",
        "--max-connections",
        "--backlog",
        "default: '2048'",
        "[MaxConnections, default: '1000']",
    ):
        assert text in " ".join(result.stdout.split()), text
