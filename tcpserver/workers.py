"""Multi-process serving: one listening socket, N worker processes.

``twistd -n tcpserver --workers N ...`` (or :func:`run_workers` from Python)
starts a *supervisor*: it binds the listening socket once and starts N
worker processes, each a ``twistd -n tcpserver`` of its own with the same
options, that adopt the inherited socket (``reactor.adoptStreamPort``) and
accept from it - the kernel spreads connections over the workers that are
waiting in ``accept``.  The supervisor

* restarts a worker that exits while the server runs (after a delay that
  grows while a worker keeps dying young, so a broken handler does not
  spin),
* on SIGTERM/SIGINT sends SIGTERM to every worker - each drains its
  connections gracefully (``shutdown()``: queued data is sent, listeners
  finish) - and exits with status 0 once they have, killing any still there
  after the drain timeout plus a grace period; a second SIGTERM kills them
  and exits 1 at once (the single-process server's rule, in
  :mod:`tcpserver._signals`),
* on SIGHUP sends SIGHUP to every worker: each reloads.

A worker whose supervisor is gone - even killed with SIGKILL - reads
end-of-file on its stdin (a pipe only the supervisor writes to), drains and
exits: no worker outlives its supervisor.

Connection ids stay unique across workers and restarts: worker ``i`` of
generation ``g`` prefixes its ids with ``w<i>.<g>-``.  ``MaxConnections``
applies to the whole server: each worker takes an equal share (rounded up).
Listeners run in the worker that owns the connection, so state shared
between connections must live outside the process (a database, Redis...).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from tcpserver import errors
from tcpserver._cli import STARTUP_STATUS, exit_with, listen_flags
from tcpserver._signals import SignalPolicy
from tcpserver.errors import TCPServerError
from tcpserver.server import bind_address

__all__ = ["WorkerPool", "run_workers", "worker_args"]

#: Delay before restarting a worker; doubles (up to MAX_RESTART_DELAY) while
#: workers exit within YOUNG seconds of starting.
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
YOUNG = 5.0

#: After SIGTERM, how long past the drain timeout a worker may take to exit.
GRACE = 5.0

_log = Logger()


def worker_args(args: list[str]) -> list[str]:
    """The plugin arguments for a worker: ``args`` without ``--workers``."""
    out: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


class _Worker(ProcessProtocol):
    def __init__(self, pool: WorkerPool, index: int, generation: int) -> None:
        self.pool = pool
        self.index = index
        self.generation = generation
        self.started = pool.clock.seconds()
        self.exited: defer.Deferred[None] = defer.Deferred()

    @override
    def processEnded(self, reason: Failure) -> None:
        self.pool.worker_ended(self, reason)
        self.exited.callback(None)


class WorkerPool(service.Service):
    """
    The supervisor service of ``--workers N``.

    :param host: address to bind (``LocalHost``; empty for every address).
    :param port: port to bind (0 picks a free one; see :attr:`port`).
    :param workers: how many worker processes.
    :param args: ``twistd tcpserver`` arguments for every worker (their
        ``--port`` is ignored: they adopt the supervisor's socket).
    :param backlog: listen backlog.
    :param use_ipv6: the ``UseIPv6`` setting (0, 1 or 2).
    :param drain_timeout: seconds a worker gets to drain on SIGTERM.
    :param handle_signals: install the SIGTERM/SIGINT/SIGHUP handlers once
        the reactor runs (twistd and :func:`run_workers` do).
    """

    name = "tcpserver-workers"

    def __init__(
        self,
        host: str,
        port: int,
        workers: int,
        args: list[str],
        backlog: int = 128,
        use_ipv6: int = 0,
        drain_timeout: float = 10.0,
        reactor: Any = None,
        handle_signals: bool = False,
    ) -> None:
        if workers < 1:
            raise TCPServerError(errors.INVALID_ARGUMENT, f"workers must be >= 1, got {workers}")
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor: IReactorProcess = reactor
        self.clock: IReactorTime = reactor
        self.host = host
        self.port = port
        self.workers = workers
        self.args = args
        self.backlog = backlog
        self.use_ipv6 = use_ipv6
        self.drain_timeout = drain_timeout
        self.socket: socket.socket | None = None
        self.live: dict[int, _Worker] = {}
        self.generations = [0] * workers
        self.delays = [RESTART_DELAY] * workers
        self.restarts = 0
        self._stopping = False
        self._pending_restarts: dict[int, Any] = {}
        self.handle_signals = handle_signals
        self.signals = SignalPolicy(reactor, self._drain_and_stop, self.reload, self._kill_all)

    # -- the socket ---------------------------------------------------------------------

    def bind(self) -> None:
        """
        Bind and listen (once).

        :raises TCPServerError: the socket cannot listen; under twistd
            (``handle_signals``) one line naming the flags instead, and exit 1.
        """
        try:
            self._bind()
        except TCPServerError as exc:
            if not self.handle_signals:
                raise
            exit_with(f"{listen_flags(self.host, self.port)}: {exc}", STARTUP_STATUS)

    def _bind(self) -> None:
        if self.socket is not None:
            return
        family, address = bind_address(self.host, self.port, self.use_ipv6)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(
                    socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if self.use_ipv6 == 1 else 0
                )
            sock.bind(address)
            sock.listen(self.backlog)
        except OSError as exc:
            sock.close()
            raise TCPServerError.from_os_error(exc, f"cannot listen on {address!r}") from None
        sock.set_inheritable(True)
        self.socket = sock
        self.port = int(sock.getsockname()[1])
        shown = f"[{address[0]}]" if family == socket.AF_INET6 else address[0]
        _log.info(
            "tcpserver listening on {address} (port {port}) with {n} workers",
            address=f"{shown}:{self.port}",
            port=self.port,
            n=self.workers,
        )

    # -- workers ------------------------------------------------------------------------

    def _spawn(self, index: int) -> None:
        self._pending_restarts.pop(index, None)
        if self._stopping or self.socket is None:
            return
        generation = self.generations[index]
        self.generations[index] += 1
        worker = _Worker(self, index, generation)
        argv = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "tcpserver",
            *self.args,
            "--worker-fd",
            "3",
            "--worker-index",
            str(index),
            "--worker-generation",
            str(generation),
            "--worker-count",
            str(self.workers),
        ]
        fd = self.socket.fileno()
        self.reactor.spawnProcess(
            worker,
            sys.executable,
            argv,
            env=dict(os.environ),
            childFDs={0: "w", 1: 1, 2: 2, 3: fd},
        )
        self.live[index] = worker
        _log.info(
            "tcpserver worker {index} started (pid {pid})",
            index=index,
            pid=worker.transport.pid if worker.transport is not None else "?",
        )

    def worker_ended(self, worker: _Worker, reason: Failure) -> None:
        """A worker process exited: start another unless the pool is stopping."""
        if self.live.get(worker.index) is worker:
            del self.live[worker.index]
        status = reason.value
        if self._stopping:
            _log.info(
                "tcpserver worker {index} exited ({status})", index=worker.index, status=status
            )
            return
        young = self.clock.seconds() - worker.started < YOUNG
        delay = self.delays[worker.index]
        self.delays[worker.index] = min(delay * 2, MAX_RESTART_DELAY) if young else RESTART_DELAY
        self.restarts += 1
        _log.warn(
            "tcpserver worker {index} exited unexpectedly ({status}); restarting in {delay}s",
            index=worker.index,
            status=status,
            delay=delay,
        )
        self._pending_restarts[worker.index] = self.clock.callLater(
            delay, self._spawn, worker.index
        )

    # -- service ------------------------------------------------------------------------

    @override
    def privilegedStartService(self) -> None:
        self.bind()
        super().privilegedStartService()

    @override
    def startService(self) -> None:
        self.bind()
        super().startService()
        for index in range(self.workers):
            self._spawn(index)
        if self.handle_signals:
            self.signals.install_hangup()
            reactor: Any = self.reactor
            reactor.callWhenRunning(self.signals.install)

    def reload(self) -> None:
        """SIGHUP: every worker reloads (each re-reads its configuration)."""
        _log.info("tcpserver: SIGHUP: reloading {n} worker(s)", n=len(self.live))
        for worker in list(self.live.values()):
            self._signal(worker, signal.SIGHUP)

    def _drain_and_stop(self, why: str) -> None:
        _log.info(
            "tcpserver: {why}: draining {n} worker(s) for up to {timeout}s",
            why=why,
            n=len(self.live),
            timeout=self.drain_timeout,
        )
        reactor: Any = self.reactor
        reactor.stop()

    @override
    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._stopping = True
        for call in self._pending_restarts.values():
            if call.active():
                call.cancel()
        self._pending_restarts.clear()
        waiting = [worker.exited for worker in self.live.values()]
        for worker in list(self.live.values()):
            self._signal(worker, signal.SIGTERM)
        killer = self.clock.callLater(self.drain_timeout + GRACE, self._kill_all)
        done = defer.DeferredList(waiting, consumeErrors=True)

        def finished(_: object) -> None:
            if killer.active():
                killer.cancel()
            if self.socket is not None:
                self.socket.close()
                self.socket = None

        done.addCallback(finished)
        return done  # type: ignore[return-value]

    def _kill_all(self) -> None:
        for worker in list(self.live.values()):
            _log.warn("tcpserver worker {index} did not drain in time: killed", index=worker.index)
            self._signal(worker, signal.SIGKILL)

    @staticmethod
    def _signal(worker: _Worker, number: int) -> None:
        transport: Any = worker.transport
        if transport is not None and transport.pid is not None:
            with contextlib.suppress(ProcessExitedAlready, OSError):
                transport.signalProcess(number)  # (unless it exited meanwhile)


def run_workers(
    workers: int,
    port: int = 0,
    host: str = "",
    args: list[str] | None = None,
    drain_timeout: float = 10.0,
) -> None:
    """
    Run a supervisor with ``workers`` worker processes until SIGTERM/SIGINT
    (the Python API of ``twistd -n tcpserver --workers N``), logging to
    stderr.  Each worker is a ``twistd -n tcpserver`` process.

    :param args: ``twistd tcpserver`` options for the workers, e.g.
        ``["--handler", "myapp.handler", "--config", "MaxConnections=10000"]``.
    """
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    pool = WorkerPool(
        host, port, workers, args or [], drain_timeout=drain_timeout, handle_signals=True
    )
    pool.startService()
    reactor.addSystemEventTrigger("before", "shutdown", pool.stopService)
    reactor.run()
