"""Shared fixtures.

* ``logged`` (autouse): like trial, a test fails when the code under test
  logged a failure the test did not expect; tests call
  ``logged.flush(SomeError)`` for the ones they provoke.
* ``server``: a real :class:`~tcpserver.TCPServer` on 127.0.0.1, port 0,
  driven by the global reactor (pytest-twisted); shut down afterwards.
* ``recorder``: a :class:`helpers.Recorder` of ``server``: every event, and
  a way for async tests to wait for one.
* ``processes``: starts long-running child processes (``twistd``, scripts)
  as :class:`helpers.ServerProcess`; whatever still runs is killed at the end.
* ``tls``: test certificates (:class:`helpers.TLSFiles`).

The rest of the shared machinery (``until``, ``listen``, ``in_memory``,
clients) is in ``helpers``.

Real-socket tests run their blocking clients in a thread
(``deferToThread``) so the reactor keeps serving meanwhile.
"""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from helpers import LogCapture, Recorder, ServerProcesses, TLSFiles
from hypothesis import settings as hypothesis_settings
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

import tcpserver

hypothesis_settings.register_profile("ci", deadline=None, print_blob=True)
hypothesis_settings.register_profile("long", deadline=None, max_examples=20_000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def logged(request: pytest.FixtureRequest):
    if isinstance(getattr(request, "instance", None), SynchronousTestCase):
        yield None  # trial checks logged errors itself
        return
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    try:
        yield capture
    finally:
        globalLogPublisher.removeObserver(capture)
    unexpected = capture.failures()
    if unexpected:
        text = "\n".join(f.getTraceback() for f in unexpected)
        pytest.fail(f"the code under test logged {len(unexpected)} failure(s):\n{text}")


@pytest.fixture
def server():
    srv = tcpserver.TCPServer(local_host="127.0.0.1")
    yield srv
    pytest_twisted.blockon(srv.shutdown(timeout=2))


@pytest.fixture
def recorder(server):
    return Recorder(server)


@pytest.fixture
def processes(tmp_path):
    """Start server processes (in ``tmp_path`` by default); none outlives the test."""
    group = ServerProcesses(tmp_path)
    yield group
    group.close()


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """Certificates for the TLS tests (a CA, server, SNI, client and stranger)."""
    return TLSFiles(tmp_path_factory.mktemp("tls"))
