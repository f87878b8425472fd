"""The twistd plugin: ``twistd -n tcpserver [options]``.

:class:`Options` turns the command line (and ``--config-file``) into a
configured :class:`~tcpserver.TCPServer`; :func:`makeService` wraps it, with
the user's handler wired in, in a :class:`~tcpserver.service.TCPServerService`
(or, with ``--workers``, a :class:`~tcpserver.workers.WorkerPool`).

* The first-class flags come from the settings registry (entries with a
  ``flag``); ``--config Name=Value`` reaches every setting, and ``--help``
  lists them all with their defaults.
* ``--config-file server.toml``: top-level keys are option names (``port``,
  ``handler``, ``listen = [...]``...), the ``[settings]`` table holds
  settings by their manual names.  Command-line options win.
* Bad values are usage errors naming the flag and the value - twistd prints
  them and exits non-zero, without a traceback.

Embedding in an existing application::

    from tcpserver.tap import Options, makeService
    options = Options()
    options.parseOptions(["--port", "9000", "--handler", "myapp.handler"])
    makeService(options).setServiceParent(application)
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.python import usage
from typing_extensions import override

from tcpserver._cli import (
    USAGE_STATUS,
    check_endpoint,
    decimal,
    exit_with,
    integer,
    runner_name,
    usage_text,
)
from tcpserver._help import metavar_of, render, shorten
from tcpserver._reload import reloader
from tcpserver._signals import SIGNALS_TEXT
from tcpserver._version import __version__
from tcpserver.certificates import Certificate, CertStoreType
from tcpserver.errors import TCPServerError
from tcpserver.handlers import HandlerError, echo, load_handler, wire_handler
from tcpserver.server import SHUTDOWN_TIMEOUT, TCPServer
from tcpserver.service import TCPServerService
from tcpserver.settings import REGISTRY, BoolType, Setting, SSLStartMode
from tcpserver.settingtypes import ObjectType

__all__ = ["DEFAULT_PORT", "Options", "TCPServerService", "makeService"]

#: The port twistd listens on when neither ``--port`` nor ``--listen`` is given.
DEFAULT_PORT = 9000

#: Options that may be given more than once (lists in the config file).
_REPEATABLE = ("config", "listen", "sni-cert")


def _flag_settings() -> list[tuple[str, Setting]]:
    """``(flag, setting)`` for every registry entry with a first-class flag."""
    return [(s.flag, s) for s in REGISTRY if s.flag]


def _describe(setting: Setting) -> str:
    """A flag's help: its setting's meaning (shortened), name and default."""
    default = setting.format(setting.default) if setting.default is not None else ""
    return f"{shorten(setting.doc)} [{setting.name}, default: {default!r}]"


def _doc(method: Any) -> str:
    return " ".join((method.__doc__ or "").split())


def _unflagged_settings() -> list[Setting]:
    """The settings ``--help`` lists at its end: no flag, not read-only, not client-only."""
    return [
        s
        for s in REGISTRY
        if not s.flag
        and not s.read_only
        and s.unsupported is None
        and not isinstance(s.type, ObjectType)  # (SSLCert: a Certificate, not text)
    ]


def _build_option_tables() -> tuple[list[list[Any]], list[list[Any]]]:
    parameters: list[list[Any]] = [
        [
            "handler",
            None,
            None,
            "Handler: a dotted module, a .py file, optionally ':Name' of an object "
            "or class in it. Its on_<event>(server, event) functions are wired; "
            "setup(server) runs before listening (it may be async). "
            "Default: the built-in echo handler.",
        ],
        [
            "port",
            "p",
            None,
            f"TCP port to listen on (0 picks a free one). [LocalPort, default: {DEFAULT_PORT}]",
        ],
        ["config-file", None, None, "A TOML file of options and [settings]; flags win."],
        [
            "drain-timeout",
            None,
            None,
            "On SIGTERM/SIGINT: seconds queued data may take to go out before "
            "the remaining connections are reset and unfinished listeners given "
            f"up on (a hard deadline). [default: {SHUTDOWN_TIMEOUT:g}]",
            decimal("drain-timeout"),
        ],
        [
            "workers",
            None,
            None,
            "Serve with N worker processes sharing one listening socket; a "
            "supervisor restarts a worker that dies and drains them all on "
            "SIGTERM. 0: serve in this process. [default: 0]",
            integer("workers"),
        ],
        ["tls-cert", None, None, "TLS certificate: PEM (with its key, or see --tls-key) or PFX."],
        ["tls-key", None, None, "PEM private key for --tls-cert, if not in the same file."],
        ["tls-password-file", None, None, "Read the key/PFX password from this file."],
        ["tls-password-env", None, None, "Read the key/PFX password from this variable."],
        [
            "tls-client-ca",
            None,
            None,
            "PEM file of the CAs client certificates must chain to: clients are "
            "asked for a certificate, and one that does not verify is refused; a "
            "client without one is let in (unless --tls-require-client-cert).",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics over HTTP on this endpoint (tcp:9100); "
            "needs the 'metrics' extra (prometheus-client).",
        ],
        [
            "health",
            None,
            None,
            "Serve a load balancer's health check over HTTP on this endpoint "
            "(tcp:8081): GET / answers 200 while the server accepts connections, "
            "503 from the moment a drain begins.",
        ],
        ["worker-fd", None, None, "(internal) adopt this inherited listening socket", int],
        ["worker-index", None, 0, "(internal) this worker's number", int],
        ["worker-generation", None, 0, "(internal) how often this worker was started", int],
        ["worker-count", None, 1, "(internal) how many workers there are", int],
    ]
    flags: list[list[Any]] = [
        [
            "tls-require-client-cert",
            None,
            "Refuse clients without a certificate (needs --tls-client-ca, which "
            "refuses certificates that do not verify).",
        ],
    ]
    for flag, setting in _flag_settings():
        if flag == "port":
            continue
        if isinstance(setting.type, BoolType):
            if setting.default:
                flags.append(
                    [f"no-{flag}", None, f"Sets {setting.name} to False. {_describe(setting)}"]
                )
            else:
                flags.append([flag, None, _describe(setting)])
        else:
            parameters.append([flag, None, None, _describe(setting)])
    return parameters, flags


_PARAMETERS, _FLAGS = _build_option_tables()
_PARAMETER_NAMES = {p[0] for p in _PARAMETERS}
_FLAG_NAMES = {f[0] for f in _FLAGS}


class Options(usage.Options):
    """Command-line options of ``twistd tcpserver``."""

    synopsis = "[options]"
    longdesc = (
        "Run a tcpserver: a TCP/TLS server that forwards connection events to a "
        "handler module (the built-in echo handler if none is given). Every "
        "config setting of the manual is reachable with --config Name=Value.\n"
        f"Signals: {SIGNALS_TEXT}"
    )
    optParameters = _PARAMETERS
    optFlags = _FLAGS

    def __init__(self) -> None:
        super().__init__()
        for name in _REPEATABLE:
            self[name] = []
        self.raw_args: list[str] = []
        self._file: dict[str, Any] = {}

    @override
    def getSynopsis(self) -> str:
        if self.parent is not None:
            return str(super().getSynopsis())
        return f"Usage: {runner_name()} [options]"

    @override
    def getUsage(self, width: int | None = None) -> str:
        options: list[tuple[str, str | None, str | None, str]] = [
            (p[0], p[1], metavar_of(p[0]), p[3])
            for p in self.optParameters
            if not p[0].startswith("worker-")
        ]
        options += [(f[0], f[1], None, f[2]) for f in self.optFlags]
        options += [
            (name.replace("_", "-"), short, metavar_of(name.replace("_", "-")), _doc(method))
            for name, short, method in (
                ("config", "c", self.opt_config),
                ("listen", None, self.opt_listen),
                ("sni_cert", None, self.opt_sni_cert),
            )
        ]
        options += [
            ("version", None, None, "Print the versions of tcpserver and Twisted, and exit."),
            ("help", None, None, "Show this help and exit."),
        ]
        return render(options, self.longdesc, _unflagged_settings())

    def opt_version(self) -> None:
        """Print the versions of tcpserver and Twisted, and exit."""
        import twisted

        print(f"tcpserver {__version__} (Twisted {twisted.__version__})")
        sys.exit(0)

    @override
    def parseOptions(self, options: list[str] | None = None) -> None:
        self.raw_args = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(options)
        except usage.UsageError as exc:
            if self.parent is None:  # (python -m tcpserver, a test: the caller reports it)
                raise
            exit_with(usage_text(exc), USAGE_STATUS)  # (not twistd's whole help)

    def opt_config(self, value: str) -> None:
        """Set any config setting: --config Name=Value (repeatable)."""
        if "=" not in value:
            raise usage.UsageError(f"--config takes Name=Value, got {value!r}")
        self["config"].append(value)

    opt_c = opt_config

    def opt_listen(self, value: str) -> None:
        """Also listen on a Twisted endpoint (repeatable): tcp:9000,
        tcp6:9000:interface=\\:\\:, unix:/run/x.sock, systemd:domain=INET:index=0."""
        self["listen"].append(value)

    def opt_sni_cert(self, value: str) -> None:
        """Serve NAME (an SNI host name, or *.domain) with the certificate at
        PATH: --sni-cert NAME=PATH (repeatable; the --tls-password-* apply)."""
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise usage.UsageError(f"--sni-cert takes NAME=PATH, got {value!r}")
        self["sni-cert"].append(value)

    # -- after parsing -----------------------------------------------------------------

    @override
    def postOptions(self) -> None:
        self._read_config_file()
        server = TCPServer()
        port = self["port"]
        self._set(server, "LocalPort", str(DEFAULT_PORT) if port is None else str(port), "--port")
        for flag, setting in _flag_settings():
            if flag == "port":
                continue
            if isinstance(setting.type, BoolType):
                key = f"no-{flag}" if setting.default else flag
                if self[key]:
                    self._set(server, setting.name, str(not setting.default), f"--{key}")
            elif self[flag] is not None:
                self._set(server, setting.name, str(self[flag]), f"--{flag}")
        for entry in self["config"]:
            try:
                server.config(entry)
            except TCPServerError as exc:
                raise usage.UsageError(f"--config {entry!r}: {exc.description}") from None
        self["sni"] = self._configure_tls(server)
        for endpoint in self["listen"]:
            check_endpoint("--listen", endpoint)
        if self["metrics"] is not None:
            check_endpoint("--metrics", self["metrics"])
        if self["health"] is not None:
            check_endpoint("--health", self["health"])
        if (
            server.ssl_start_mode != SSLStartMode.NONE
            and server.ssl_cert is None
            and not self["sni"]
            and self["handler"] is None
        ):
            raise usage.UsageError(
                f"SSLStartMode {server.ssl_start_mode.name} needs a certificate: "
                "give --tls-cert (or --sni-cert), or --ssl-start-mode none"
            )
        if self["drain-timeout"] is None:
            self["drain-timeout"] = SHUTDOWN_TIMEOUT
        if self["drain-timeout"] < 0:
            raise usage.UsageError(f"--drain-timeout must be >= 0, got {self['drain-timeout']}")
        if self["workers"] is None:
            self["workers"] = 0
        if self["workers"] < 0:
            raise usage.UsageError(f"--workers must be 0 or more, got {self['workers']}")
        if self["metrics"] is not None:
            from tcpserver.metrics import check_available

            try:
                check_available()
            except ImportError as exc:
                raise usage.UsageError(f"--metrics {self['metrics']!r}: {exc}") from None
        if self["worker-fd"] is not None:
            # one of the supervisor's workers: unique ids, a share of MaxConnections
            count = max(self["worker-count"], 1)
            server.factory.id_prefix = f"w{self['worker-index']}.{self['worker-generation']}-"
            limit = server.settings["MaxConnections"]
            server.settings.set("MaxConnections", -(-limit // count), listening=False)
            # the global accept rate is shared the same way; per-address
            # limits apply per worker (the kernel spreads a client's
            # connections over the workers)
            rate = server.settings["MaxAcceptRate"]
            if rate:
                server.settings.set("MaxAcceptRate", rate / count, listening=False)
        self["server"] = server
        self["handler_object"] = self._load_handler()

    def _load_handler(self) -> Any:
        spec = self["handler"]
        if spec is None:
            return echo
        try:
            handler = load_handler(spec)
            wire_handler(TCPServer(), handler)  # fails early if nothing to wire
        except HandlerError as exc:
            raise usage.UsageError(f"--handler {spec!r}: {exc}") from None
        return handler

    def _read_config_file(self) -> None:
        path = self["config-file"]
        if path is None:
            return
        try:
            with open(path, "rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise usage.UsageError(f"--config-file {path!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise usage.UsageError(f"--config-file {path!r}: not valid TOML: {exc}") from None
        settings = data.pop("settings", {})
        if not isinstance(settings, dict):
            raise usage.UsageError(f"--config-file {path!r}: [settings] must be a table")
        given = set(self._given())
        for key, value in data.items():
            if key in _REPEATABLE:
                values = value if isinstance(value, list) else [value]
                if key == "config":
                    self["config"][:0] = [str(v) for v in values]
                else:
                    self[key][:0] = [str(v) for v in values]
            elif key in _FLAG_NAMES:
                if not isinstance(value, bool):
                    raise usage.UsageError(
                        f"--config-file {path!r}: {key} takes true or false, got {value!r}"
                    )
                if key not in given:
                    self[key] = int(value)
            elif key in _PARAMETER_NAMES and not key.startswith("worker-"):
                if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                    raise usage.UsageError(f"--config-file {path!r}: {key} = {value!r}: bad value")
                if key not in given:
                    self[key] = self._coerce_parameter(key, value, path)
            else:
                raise usage.UsageError(f"--config-file {path!r}: unknown option {key!r}")
        # file settings first: --config on the command line comes after and wins
        entries = []
        for name, value in settings.items():
            if isinstance(value, (bool, int, float, str)):
                text = str(value)
            else:
                raise usage.UsageError(
                    f"--config-file {path!r}: setting {name} has a bad value {value!r}"
                )
            entries.append(f"{name}={text}")
        self["config"][:0] = entries
        self._file = data

    def _given(self) -> list[str]:
        """Option names given on the command line."""
        names = []
        for arg in self.raw_args:
            if arg.startswith("--"):
                names.append(arg[2:].split("=", 1)[0])
            elif arg == "-p":
                names.append("port")
        return names

    @staticmethod
    def _coerce_parameter(key: str, value: Any, path: str) -> Any:
        coerce = next((p[4] for p in _PARAMETERS if p[0] == key and len(p) > 4), None)
        if coerce is None:
            return str(value)
        try:
            return coerce(str(value) if isinstance(value, int | float) else value)
        except (TypeError, ValueError):
            raise usage.UsageError(
                f"--config-file {path!r}: {key} = {value!r}: bad value"
            ) from None

    # -- TLS ---------------------------------------------------------------------------

    def _password(self) -> str:
        path, variable = self["tls-password-file"], self["tls-password-env"]
        if path is not None:
            try:
                return Path(path).read_text().rstrip("\r\n")
            except OSError as exc:
                raise usage.UsageError(f"--tls-password-file {path!r}: {exc.strerror}") from None
        if variable is not None:
            if variable not in os.environ:
                raise usage.UsageError(f"--tls-password-env {variable!r}: not set")
            return os.environ[variable]
        return ""

    def _certificate(self, path: str, key: str | None, flag: str) -> Certificate:
        password = self._password()
        try:
            if key is None:
                return Certificate(CertStoreType.AUTO, Path(path), password)
            try:
                blob = Path(path).read_bytes() + b"\n" + Path(key).read_bytes()
            except OSError as exc:
                raise usage.UsageError(f"{flag} {exc.filename!r}: {exc.strerror}") from None
            return Certificate(CertStoreType.PEM_KEY_BLOB, blob, password)
        except TCPServerError as exc:
            raise usage.UsageError(f"{flag} {path!r}: {exc.description}") from None

    def _configure_tls(self, server: TCPServer) -> dict[str, Certificate]:
        if self["tls-cert"] is None and not self["sni-cert"]:
            for flag in ("tls-password-file", "tls-password-env"):
                if self[flag] is not None:
                    raise usage.UsageError(f"--{flag} needs --tls-cert (or --sni-cert)")
        sni: dict[str, Certificate] = {}
        for entry in self["sni-cert"]:
            name, _, path = entry.partition("=")
            sni[name.lower()] = self._certificate(path, None, f"--sni-cert {name}=")
        cert = self["tls-cert"]
        if cert is None:
            if self["tls-key"] is not None:
                raise usage.UsageError("--tls-key needs --tls-cert")
            if sni:
                raise usage.UsageError("--sni-cert needs a default --tls-cert")
        else:
            server.ssl_cert = self._certificate(cert, self["tls-key"], "--tls-cert")
            if server.ssl_start_mode == SSLStartMode.NONE:
                server.ssl_start_mode = SSLStartMode.IMPLICIT
        ca = self["tls-client-ca"]
        if ca is not None:
            try:
                pem = Path(ca).read_text()
            except OSError as exc:
                raise usage.UsageError(f"--tls-client-ca {ca!r}: {exc.strerror}") from None
            self._set(server, "SSLClientCACerts", pem, "--tls-client-ca")
            server.ssl_authenticate_clients = True
            if not self["tls-require-client-cert"]:
                server.on("ssl_client_authentication", _certificate_optional)
        elif self["tls-require-client-cert"]:
            raise usage.UsageError("--tls-require-client-cert needs --tls-client-ca")
        return sni

    @staticmethod
    def _set(server: TCPServer, name: str, value: str, flag: str) -> None:
        try:
            server.settings.set_string(name, value)
        except TCPServerError as exc:
            raise usage.UsageError(f"{flag} {value!r}: {exc.description}") from None


def _certificate_optional(event: Any) -> None:
    """
    ``--tls-client-ca`` without ``--tls-require-client-cert``: a client that
    presents no certificate is let in (SSLAuthenticateClients reports it with
    ``accept`` False); one it presents must still verify.  A handler's own
    ``ssl_client_authentication`` listener runs after this one and decides last.
    """
    if not event.cert_encoded:
        event.accept = True


def _choose_sni(server: TCPServer, certificates: dict[str, Certificate]) -> None:
    """An ``ssl_connection_request`` listener serving --sni-cert names."""

    def choose(event: Any) -> None:
        name = (event.server_name or "").lower()
        chosen = certificates.get(name)
        if chosen is None and "." in name:
            chosen = certificates.get("*." + name.split(".", 1)[1])
        if chosen is not None:
            event.certificate = chosen

    server.on("ssl_connection_request", choose)


def _parse_again(raw_args: list[str]) -> tuple[TCPServer, dict[str, Certificate]]:
    """For a reload: the server and ``--sni-cert`` certificates the arguments make now."""
    fresh = Options()
    try:
        fresh.parseOptions(raw_args)
    except usage.UsageError as exc:
        raise ValueError(str(exc)) from None
    return fresh["server"], fresh["sni"]


def makeService(options: Options) -> service.Service:
    """The twistd entry point: a service for the parsed options."""
    server: TCPServer = options["server"]
    if options["workers"] and options["worker-fd"] is None:
        from tcpserver.workers import WorkerPool, worker_args

        settings = server.settings
        return WorkerPool(
            settings["LocalHost"],
            settings["LocalPort"],
            options["workers"],
            worker_args(options.raw_args),
            backlog=settings["ConnectionBacklog"],
            use_ipv6=settings["UseIPv6"],
            drain_timeout=options["drain-timeout"],
            handle_signals=True,
        )
    certificates: dict[str, Certificate] = dict(options["sni"])
    if certificates:
        _choose_sni(server, certificates)
    endpoints = list(options["listen"])
    listen_port = options["port"] is not None or not endpoints
    svc = TCPServerService(
        server,
        options["handler_object"],
        adopt_fd=options["worker-fd"],
        endpoints=[] if options["worker-fd"] is not None else endpoints,
        listen_port=listen_port,
        drain_timeout=options["drain-timeout"],
        handle_signals=True,
        reload=reloader(options.raw_args, server, _parse_again),
    )
    svc.sni_certificates = certificates  # type: ignore[attr-defined]
    if options["metrics"] is None and options["health"] is None:
        return svc
    parent = service.MultiService()
    svc.setServiceParent(parent)
    if options["metrics"] is not None:
        from tcpserver.metrics import MetricsService

        MetricsService(server, options["metrics"]).setServiceParent(parent)
    if options["health"] is not None:
        from tcpserver.health import HealthService

        HealthService(server, options["health"]).setServiceParent(parent)
    return parent
