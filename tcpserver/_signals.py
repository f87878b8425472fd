"""
How a running server process treats signals - one policy for a single
server (``twistd -n tcpserver``) and a ``--workers`` supervisor alike:

* SIGTERM / SIGINT: stop gracefully (the caller drains), then exit with
  status 0; the same signal again exits at once with status 1;
* SIGHUP: reload (a single server re-reads its configuration; a supervisor
  forwards the reload to every worker).

And how a worker notices that its supervisor is gone, whatever killed it
(SIGKILL included): the supervisor holds the write end of the worker's
stdin pipe, so the worker reads end-of-file from it (:func:`watch_parent`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from twisted.internet import abstract, main
from twisted.logger import Logger
from twisted.python.failure import Failure

__all__ = ["EXIT_AGAIN", "SIGNALS_TEXT", "SignalPolicy", "watch_parent"]

#: The exit status after a second SIGTERM/SIGINT (no drain).
EXIT_AGAIN = 1

#: The signal story, word for word in ``--help``, twistd.rst and operations.rst.
SIGNALS_TEXT = (
    "SIGTERM/SIGINT: stop accepting, drain (--drain-timeout), exit 0; a second one "
    "exits at once with status 1. SIGHUP: reload certificates, access lists and the "
    "config file. With --workers the supervisor passes each signal on to every "
    "worker and exits the same way; a worker whose supervisor is gone drains and exits."
)

_log = Logger()


class SignalPolicy:
    """
    SIGTERM/SIGINT and SIGHUP handlers for a process that runs a reactor.

    :param reactor: the running reactor (handlers hand over to it).
    :param stop: called (in the reactor) on the first SIGTERM/SIGINT with
        the signal's name; it starts the drain, e.g. ``reactor.stop()``.
    :param reload: called (in the reactor) on SIGHUP.
    :param hurry: called on a second SIGTERM/SIGINT just before the process
        exits with :data:`EXIT_AGAIN` (a supervisor kills its workers).
    """

    def __init__(
        self,
        reactor: Any,
        stop: Callable[[str], None],
        reload: Callable[[], None],
        hurry: Callable[[], None] | None = None,
    ) -> None:
        self.reactor = reactor
        self._stop = stop
        self._reload = reload
        self._hurry = hurry
        self.stopping = False

    def install_hangup(self) -> None:
        """
        Install the SIGHUP handler - at once, before the reactor runs (it
        has none of its own, and SIGHUP's default would kill the process);
        a reload asked for early runs once the reactor does.
        """
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_hangup)

    def install(self) -> None:
        """
        Install the SIGTERM/SIGINT handlers - once the reactor runs, after
        its own, which they replace (so twistd does not re-raise SIGTERM
        when it exits) - and SIGHUP's.
        """
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._on_stop)
        self.install_hangup()

    def _on_stop(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.stop, signal.Signals(number).name)

    def _on_hangup(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self._reload)

    def stop(self, why: str) -> None:
        """The first time: ``stop(why)``; again: ``hurry()``, then exit 1 at once."""
        if self.stopping:
            _log.warn("tcpserver: {why} again: exiting without draining", why=why)
            if self._hurry is not None:
                self._hurry()
            os._exit(EXIT_AGAIN)
        self.stopping = True
        self._stop(why)


class _ParentPipe(abstract.FileDescriptor):
    """The read end of the pipe whose write end only the supervisor holds."""

    def __init__(self, reactor: Any, fd: int, gone: Callable[[], None]) -> None:
        super().__init__(reactor)
        self._fd = fd
        self._gone = gone
        os.set_blocking(fd, False)

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> object:
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return None
        except OSError:
            data = b""
        return None if data else main.CONNECTION_DONE  # (what it writes: nothing, ignored)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self._gone()


def watch_parent(reactor: Any, gone: Callable[[], None], fd: int = 0) -> None:
    """
    Call ``gone()`` (in the reactor) once the supervisor that started this
    process has exited: its end of the pipe on ``fd`` (stdin) closes.
    """
    _ParentPipe(reactor, fd, gone).startReading()
