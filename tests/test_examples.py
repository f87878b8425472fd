"""The examples shown in the README and the docs run as shown."""

from __future__ import annotations

import importlib
import signal
import socket
import sys
from pathlib import Path

import pytest
from helpers import read_until

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_handler_tests_from_the_testing_page(examples_on_path):
    module = importlib.import_module("test_shout")
    module.test_shout_answers_in_upper_case()
    module.test_idle_clients_are_dropped()


def test_upper_server_script(processes):
    proc = processes.start(
        [sys.executable, str(EXAMPLES / "upper_server.py"), "0"], merge_stderr=False
    )
    port = int(proc.next_line().split()[-1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"make me loud\n")
        assert read_until(sock, 14) == b"MAKE ME LOUD\r\n"
    assert proc.next_line().startswith("connected")
    assert proc.next_line().startswith("gone")
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_shout_with_twistd_as_in_the_quick_start(processes):
    proc = processes.twistd(
        "--port", "0", "--interface", "127.0.0.1", "--handler", "shout", "--eol", "\\n",
        cwd=EXAMPLES,
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", proc.port), timeout=5) as sock:
        sock.sendall(b"hello\n")
        assert read_until(sock, 32) == b"welcome - say something\r\nHELLO\r\n"
