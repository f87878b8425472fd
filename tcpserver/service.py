"""The Twisted service that runs a :class:`~tcpserver.TCPServer`.

:class:`TCPServerService` is what ``twistd tcpserver`` runs, and what an
existing Twisted application adds to its ``Application``::

    from twisted.application import service
    from tcpserver import TCPServer
    from tcpserver.service import TCPServerService

    application = service.Application("myapp")
    server = TCPServer(local_port=9000)
    TCPServerService(server, myhandler).setServiceParent(application)

It wires the handler, runs its ``setup(server)`` (which may be async: the
server listens once it completes), listens on the server's port and any
endpoints, and on stop drains: stops accepting, lets queued data go out for
up to ``drain_timeout`` seconds, fires ``disconnected`` for every
connection.  Under twistd (``handle_signals``) SIGTERM/SIGINT drain and then
exit with status 0, a second SIGTERM exits at once, and SIGHUP reloads.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, FirstError, ensureDeferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from tcpserver import errors
from tcpserver._cli import STARTUP_STATUS, exit_with, listen_flags, setup_failure
from tcpserver._signals import SignalPolicy, watch_parent
from tcpserver.errors import TCPServerError
from tcpserver.handlers import echo, wire_handler
from tcpserver.server import SHUTDOWN_TIMEOUT, TCPServer
from tcpserver.settingtypes import SSLStartMode

__all__ = ["TCPServerService"]

_log = Logger()


class TCPServerService(service.Service):
    """
    A Twisted service running one :class:`~tcpserver.TCPServer`.

    :param server: the configured server (not yet listening).
    :param handler: a handler module/object (its ``on_<event>`` functions are
        wired), or ``None``.
    :param adopt_fd: serve this inherited listening socket instead of
        binding (a ``--workers`` worker).
    :param endpoints: Twisted endpoint strings to listen on as well (or,
        with ``listen_port=False``, instead of the server's own port).
    :param listen_port: whether to bind the server's ``local_port``.
    :param drain_timeout: seconds queued data may take to go out on stop.
    :param handle_signals: install SIGTERM/SIGINT (drain, then exit 0; a
        second one exits at once with 1) and SIGHUP (``reload``) handlers once
        the reactor runs - what twistd wants; leave off when embedding.  A
        worker (``adopt_fd``) then also drains and exits when its supervisor
        is gone, whatever ended it.
    :param reload: called on SIGHUP (see :meth:`reload`).
    """

    name = "tcpserver"

    def __init__(
        self,
        server: TCPServer,
        handler: Any = None,
        adopt_fd: int | None = None,
        endpoints: list[str] | None = None,
        listen_port: bool = True,
        drain_timeout: float = SHUTDOWN_TIMEOUT,
        handle_signals: bool = False,
        reload: Callable[[TCPServerService], None] | None = None,
    ) -> None:
        self.server = server
        self.handler = handler
        self.adopt_fd = adopt_fd
        self.endpoints = list(endpoints or [])
        self.listen_port = listen_port
        self.drain_timeout = drain_timeout
        self.handle_signals = handle_signals
        self._reload = reload
        self.events: list[str] = []
        self.ready: Deferred[None] = Deferred()  # fires once listening
        self._started = False
        #: SIGTERM/SIGINT drain then exit 0 (again: exit 1), SIGHUP reloads
        self.signals = SignalPolicy(server.reactor, self._drain_and_stop, self.reload)
        if handler is not None:
            self.events = wire_handler(server, handler)

    # -- starting ----------------------------------------------------------------------

    def _setup(self) -> Any:
        setup = getattr(self.handler, "setup", None)
        if not callable(setup):
            return None
        result = setup(self.server)
        if inspect.iscoroutine(result):
            return ensureDeferred(result)
        return result

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.handler is echo:
            _log.info("tcpserver: no --handler given, serving the built-in echo handler")
        elif self.handler is not None:
            _log.info(
                "tcpserver: handler {handler} wired for {events}",
                handler=getattr(self.handler, "__name__", type(self.handler).__name__),
                events=", ".join(self.events),
            )
        try:
            pending = self._setup()
        except Exception as exc:
            if not self.handle_signals:
                raise  # (embedded: the application's own error handling)
            exit_with(setup_failure(self.handler, exc), STARTUP_STATUS)
        if isinstance(pending, Deferred):
            # an async setup: listen once it has completed
            pending.addCallbacks(
                lambda _: self._listen_later(), lambda f: self._fatal(f, "setup() failed")
            )
        else:
            try:
                self._listen()
            except TCPServerError as exc:
                if not self.handle_signals:
                    raise
                exit_with(self._listen_problem(exc), STARTUP_STATUS)

    def _listen_problem(self, error: TCPServerError) -> str:
        """A start-up error as one line naming the flags (and values) it is about."""
        if self.adopt_fd is None and self.listen_port:
            settings = self.server.settings
            return f"{listen_flags(settings['LocalHost'], settings['LocalPort'])}: {error}"
        return str(error)

    def _check_certificate(self) -> None:
        """TLS at accept or by start_ssl needs a certificate, or a listener that chooses one."""
        server = self.server
        if (
            server.ssl_start_mode != SSLStartMode.NONE
            and server.ssl_cert is None
            and not server.factory.dispatcher.listeners["ssl_connection_request"]
        ):
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"SSLStartMode {server.ssl_start_mode.name} needs a certificate: give "
                "--tls-cert, set server.ssl_cert in setup(), or choose one in "
                "on_ssl_connection_request",
            )

    def _listen(self) -> None:
        self._check_certificate()
        if self.adopt_fd is not None:
            self.server.adopt_listening_socket(self.adopt_fd)
        elif self.listen_port:
            self.server.start_listening()
        waiting = [self.server.listen_endpoint(e) for e in self.endpoints]
        if not waiting:
            self.ready.callback(None)
            return
        from twisted.internet.defer import gatherResults

        gatherResults(waiting, consumeErrors=True).addCallbacks(
            lambda _: self.ready.callback(None),
            lambda f: self._fatal(f, "cannot listen"),
        )

    def _listen_later(self) -> None:
        try:
            self._listen()
        except Exception:  # noqa: BLE001 - reported, then the process stops
            self._fatal(Failure(), "cannot listen")

    def _fatal(self, failure: Failure, what: str) -> None:
        """Starting failed after twistd took over: say why, once, and exit 1."""
        value = failure.value
        if isinstance(value, FirstError):
            failure = value.subFailure
            value = failure.value
        _log.critical(
            "tcpserver: {what}: {error}\n{traceback}",
            what=what,
            error=f"{type(value).__name__}: {value}",
            traceback=""
            if type(value).__module__.startswith("tcpserver")
            else failure.getTraceback(),
        )
        if not self.ready.called:
            self.ready.errback(failure)
            self.ready.addErrback(lambda _: None)
        reactor: Any = self.server.reactor
        reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        if getattr(reactor, "running", False):
            reactor.stop()
        else:
            reactor.callWhenRunning(reactor.stop)

    @override
    def privilegedStartService(self) -> None:
        # Listening here lets twistd bind ports below 1024 before it drops
        # privileges (--uid); an async setup() defers listening to its end.
        # SIGHUP is caught before the socket serves: a reload sent as soon
        # as the server logs that it serves must not kill it.
        if self.handle_signals:
            self.signals.install_hangup()
        self._start()
        super().privilegedStartService()

    @override
    def startService(self) -> None:
        if self.handle_signals:
            self.signals.install_hangup()
        self._start()
        super().startService()
        if self.handle_signals:
            reactor: Any = self.server.reactor
            reactor.callWhenRunning(self._install_signal_handlers)

    # -- signals -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        self.signals.install()
        if self.adopt_fd is not None:  # a worker: leave when the supervisor does
            watch_parent(self.server.reactor, lambda: self.signals.stop("supervisor gone"))

    def _drain_and_stop(self, why: str) -> None:
        _log.info(
            "tcpserver: {why}: draining {count} connection(s) for up to {timeout}s",
            why=why,
            count=len(self.server.connections),
            timeout=self.drain_timeout,
        )
        reactor: Any = self.server.reactor
        reactor.stop()

    def reload(self) -> None:
        """
        Re-read what may change without dropping connections (SIGHUP):
        certificates and keys, AllowedClients/BlockedClients, the config
        file.  A bad new configuration keeps the current one and logs why.
        """
        if self._reload is None:
            _log.info("tcpserver: SIGHUP: nothing to reload (not started from options)")
            return
        try:
            self._reload(self)
        except Exception as exc:  # noqa: BLE001 - a failed reload keeps serving
            _log.error(
                "tcpserver: reload failed, keeping the current configuration: {error}",
                error=str(exc),
            )

    # -- stopping ------------------------------------------------------------------------

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        if not self.server.listening and not self.server.connections:
            return succeed(None)
        done: Deferred[None] = maybeDeferred(self.server.shutdown, self.drain_timeout)

        def drained(result: None) -> None:
            _log.info("tcpserver: drained; stopped")

        return done.addCallback(drained)
