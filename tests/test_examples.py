"""The examples shown in the README and the docs run as shown."""

from __future__ import annotations

import importlib
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_until, venv_bin

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_handler_tests_from_the_testing_page(examples_on_path):
    module = importlib.import_module("test_shout")
    module.test_shout_answers_in_upper_case()
    module.test_idle_clients_are_dropped()


def test_upper_server_script():
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "upper_server.py"), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline().split()[-1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"make me loud\n")
            assert read_until(sock, 14) == b"MAKE ME LOUD\r\n"
        assert proc.stdout.readline().startswith("connected")
        assert proc.stdout.readline().startswith("gone")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()


def test_shout_with_twistd_as_in_the_quick_start():
    proc = subprocess.Popen(
        [
            venv_bin("twistd"),
            "-n",
            "--pidfile=",
            "tcpserver",
            "--port",
            "0",
            "--interface",
            "127.0.0.1",
            "--handler",
            "shout",
            "--eol",
            "\\n",
        ],
        cwd=EXAMPLES,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "(port " in line:
                port = int(line.rsplit("(port ", 1)[1].split(")")[0])
                break
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"hello\n")
            assert read_until(sock, 32) == b"welcome - say something\r\nHELLO\r\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
