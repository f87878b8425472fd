"""twistd as a real subprocess: the installed plugin, handlers, flags, signals."""

from __future__ import annotations

import contextlib
import signal
import socket
import textwrap

import pytest
from helpers import LISTENING, ServerProcess, ServerProcesses, client, read_until, run_twistd


@pytest.fixture
def spawn(processes: ServerProcesses):
    """``twistd -n tcpserver --interface 127.0.0.1 ARGS`` in ``tmp_path``."""

    def start(*args: str) -> ServerProcess:
        proc = processes.twistd("--interface", "127.0.0.1", *args)
        proc.wait_for(LISTENING)  # started up
        return proc

    return start


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
    first.sendall(b"sync\n")  # answered: the server has accepted it
    assert read_until(first, 5) == b"sync\n"
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
    result = run_twistd(tmp_path, *args)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    # at most the handler's own frames, never twistd's or importlib's
    assert "Traceback (most recent call last)" not in output
    assert "importlib" not in output


def test_help_lists_flags_and_defaults(tmp_path):
    result = run_twistd(tmp_path, "--help")
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
