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
    module.test_shout_answers_a_long_line_as_one_line()
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
        assert read_until(sock, 30) == b"welcome - say something\nHELLO\n"


@pytest.mark.parametrize(
    ("spec", "unfinished"),
    [
        ("kvstore.py:KVStore", b"SET k v"),
        ("chat.py", b"/nick mallory"),
        ("starttls.py", b"STARTTLS"),
    ],
)
def test_examples_do_not_act_on_an_unfinished_command(spec, unfinished):
    """A client that leaves mid-line sent no command: the examples check ``event.eol``."""
    from twisted.internet.defer import ensureDeferred

    from tcpserver import SSLStartMode
    from tcpserver.handlers import load_handler, wire_handler
    from tcpserver.testing import MemoryConnection, memory_server

    server = memory_server(default_eol=b"\n")
    handler = load_handler(str(EXAMPLES / spec))
    setup = getattr(handler, "setup", None)
    if setup is not None and (started := setup(server)) is not None:
        ensureDeferred(started)
    if spec == "starttls.py":
        server.ssl_start_mode = SSLStartMode.EXPLICIT
    wire_handler(server, handler)
    watcher = MemoryConnection(server)
    client = MemoryConnection(server)
    watcher.written(), client.written()  # (the greetings)
    client.feed(unfinished)
    client.half_close()
    server.reactor.advance(0)
    assert client.closed
    assert unfinished.split()[-1] not in watcher.written()  # not broadcast, no rename
    assert client.written() == b""  # no answer
    if spec.startswith("kvstore"):
        assert handler.data == {}
