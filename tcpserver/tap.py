"""The twistd plugin: ``twistd -n tcpserver [options]``.

:class:`Options` turns the command line into a configured
:class:`~tcpserver.TCPServer`; :func:`makeService` wraps it, with the user's
handler wired in, in a :class:`TCPServerService`.  The first-class flags come
from the settings registry (entries with a ``flag``); ``--config Name=Value``
reaches every setting.  Bad values are usage errors naming the flag and the
value - twistd prints them and exits non-zero, without a traceback.

Embedding in an existing application::

    from tcpserver.tap import TCPServerService
    TCPServerService(TCPServer(local_port=9000), handler).setServiceParent(application)
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.logger import Logger
from twisted.python import usage
from typing_extensions import override

from tcpserver.errors import TCPServerError
from tcpserver.handlers import HandlerError, echo, load_handler, wire_handler
from tcpserver.server import TCPServer
from tcpserver.settings import REGISTRY, Setting, _Bool

__all__ = ["DEFAULT_PORT", "Options", "TCPServerService", "makeService"]

#: The port twistd listens on when ``--port`` is not given.
DEFAULT_PORT = 9000

_log = Logger()


def _flag_settings() -> list[tuple[str, Setting]]:
    """``(flag, setting)`` for every registry entry with a first-class flag."""
    return [(s.flag, s) for s in REGISTRY if s.flag]


def _describe(setting: Setting) -> str:
    default = setting.format(setting.default) if setting.default is not None else ""
    return f"{setting.doc} [{setting.name}, default: {default!r}]"


def _build_option_tables() -> tuple[list[list[Any]], list[list[Any]]]:
    parameters: list[list[Any]] = [
        [
            "handler",
            None,
            None,
            "Handler: a dotted module, a .py file, optionally ':Name' of an object "
            "or class in it. Its on_<event>(server, event) functions are wired; "
            "setup(server) runs before listening. Default: the built-in echo handler.",
        ],
        [
            "port",
            "p",
            None,
            f"TCP port to listen on (0 picks a free one). [LocalPort, default: {DEFAULT_PORT}]",
        ],
        [
            "workers",
            None,
            0,
            "Serve with N worker processes sharing one listening socket; a "
            "supervisor restarts a worker that dies and drains them all on "
            "SIGTERM. 0: serve in this process.",
            int,
        ],
        ["worker-fd", None, None, "(internal) adopt this inherited listening socket", int],
        ["worker-index", None, 0, "(internal) this worker's number", int],
        ["worker-generation", None, 0, "(internal) how often this worker was started", int],
        ["worker-count", None, 1, "(internal) how many workers there are", int],
    ]
    flags: list[list[Any]] = []
    for flag, setting in _flag_settings():
        if flag == "port":
            continue
        if isinstance(setting.type, _Bool):
            if setting.default:
                flags.append([f"no-{flag}", None, f"Turn off: {_describe(setting)}"])
            else:
                flags.append([flag, None, _describe(setting)])
        else:
            parameters.append([flag, None, None, _describe(setting)])
    return parameters, flags


_PARAMETERS, _FLAGS = _build_option_tables()


class Options(usage.Options):
    """Command-line options of ``twistd tcpserver``."""

    synopsis = "[options]"
    longdesc = (
        "Run a tcpserver: a TCP/TLS server that forwards connection events to a "
        "handler module (the built-in echo handler if none is given). Every "
        "config setting of the manual is reachable with --config Name=Value."
    )
    optParameters = _PARAMETERS
    optFlags = _FLAGS

    def __init__(self) -> None:
        super().__init__()
        self["config"] = []
        self.raw_args: list[str] = []

    @override
    def parseOptions(self, options: list[str] | None = None) -> None:
        import sys

        self.raw_args = list(sys.argv[1:] if options is None else options)
        super().parseOptions(options)

    def opt_config(self, value: str) -> None:
        """Set any config setting: --config Name=Value (repeatable)."""
        if "=" not in value:
            raise usage.UsageError(f"--config takes Name=Value, got {value!r}")
        self["config"].append(value)

    opt_c = opt_config

    @override
    def postOptions(self) -> None:
        server = TCPServer()
        port = self["port"]
        self._set(server, "LocalPort", str(DEFAULT_PORT) if port is None else port, "--port")
        for flag, setting in _flag_settings():
            if flag == "port":
                continue
            if isinstance(setting.type, _Bool):
                key = f"no-{flag}" if setting.default else flag
                if self[key]:
                    self._set(server, setting.name, str(not setting.default), f"--{key}")
            elif self[flag] is not None:
                self._set(server, setting.name, self[flag], f"--{flag}")
        for entry in self["config"]:
            try:
                server.config(entry)
            except TCPServerError as exc:
                raise usage.UsageError(f"--config {entry!r}: {exc.description}") from None
        spec = self["handler"]
        if spec is None:
            handler: Any = echo
        else:
            try:
                handler = load_handler(spec)
                wire_handler(TCPServer(), handler)  # fails early if nothing to wire
            except HandlerError as exc:
                raise usage.UsageError(f"--handler {spec!r}: {exc}") from None
        if self["workers"] < 0:
            raise usage.UsageError(f"--workers must be 0 or more, got {self['workers']}")
        if self["worker-fd"] is not None:
            # one of the supervisor's workers: unique ids, a share of MaxConnections
            count = max(self["worker-count"], 1)
            server.factory.id_prefix = f"w{self['worker-index']}.{self['worker-generation']}-"
            limit = server._settings["MaxConnections"]
            server._settings.set("MaxConnections", -(-limit // count), listening=False)
        self["server"] = server
        self["handler_object"] = handler

    @staticmethod
    def _set(server: TCPServer, name: str, value: str, flag: str) -> None:
        try:
            server._settings.set_string(name, value)
        except TCPServerError as exc:
            raise usage.UsageError(f"{flag} {value!r}: {exc.description}") from None


class TCPServerService(service.Service):
    """
    A Twisted service running one :class:`~tcpserver.TCPServer`.

    It wires ``handler`` (if any), runs its ``setup(server)``, listens when
    the service starts (in ``privilegedStartService``, so ports below 1024
    work with twistd's ``--uid``) and shuts the server down gracefully when
    it stops; twistd waits for the returned Deferred.

    :param server: the configured server (not yet listening).
    :param handler: a handler module/object, or ``None``.
    """

    name = "tcpserver"

    def __init__(self, server: TCPServer, handler: Any = None, adopt_fd: int | None = None) -> None:
        self.server = server
        self.handler = handler
        self.adopt_fd = adopt_fd
        self.events: list[str] = []
        if handler is not None:
            self.events = wire_handler(server, handler)

    def _listen(self) -> None:
        if self.server.listening:
            return
        setup = getattr(self.handler, "setup", None)
        if callable(setup):
            setup(self.server)
        if self.handler is echo:
            _log.info("tcpserver: no --handler given, serving the built-in echo handler")
        elif self.handler is not None:
            _log.info(
                "tcpserver: handler {handler} wired for {events}",
                handler=getattr(self.handler, "__name__", self.handler),
                events=", ".join(self.events),
            )
        if self.adopt_fd is not None:
            self.server.adopt_listening_socket(self.adopt_fd)
        else:
            self.server.start_listening()

    @override
    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    @override
    def startService(self) -> None:
        self._listen()
        super().startService()

    @override
    def stopService(self) -> Any:
        super().stopService()
        return self.server.shutdown()


def makeService(options: Options) -> service.Service:
    """The twistd entry point: a service for the parsed options."""
    server: TCPServer = options["server"]
    if options["workers"] and options["worker-fd"] is None:
        from tcpserver.workers import WorkerPool, worker_args

        settings = server._settings
        return WorkerPool(
            settings["LocalHost"],
            settings["LocalPort"],
            options["workers"],
            worker_args(options.raw_args),
            backlog=settings["ConnectionBacklog"],
            use_ipv6=settings["UseIPv6"],
        )
    return TCPServerService(server, options["handler_object"], adopt_fd=options["worker-fd"])
