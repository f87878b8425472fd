"""TCPServer: the manual's class - properties, methods, events, the port.

A thin facade over one :class:`~tcpserver.factory.TCPServerFactory`
(``server.factory``): every connection-level name is delegated to it, and
this class adds the listening socket - ``local_host``, ``local_port``,
``connection_backlog``, ``listening``, ``start_listening``,
``stop_listening``, ``shutdown``, ``do_events`` and ``run``.

OS errors from binding are translated to the manual's codes here, at one
boundary: address in use 10048, permission denied 10013, bad address 10049.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.interfaces import IListeningPort, IReactorSocket, IReactorTCP, IReactorTime
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from tcpserver import errors
from tcpserver._twisted import quick_accept, route_accept_logs
from tcpserver.connection import Connection
from tcpserver.delegates import ConnectionMethods
from tcpserver.errors import TCPServerError
from tcpserver.events import Error, Listener
from tcpserver.factory import TCPServerFactory
from tcpserver.properties import (
    PropertyAccess,
    apply_properties,
    property_names,
    setting_properties,
)
from tcpserver.settingtypes import SSLStartMode

__all__ = ["TCPServer"]

#: How long ``shutdown()`` lets queued data drain before resetting the rest.
SHUTDOWN_TIMEOUT = 10.0

#: At most one "out of file descriptors" log line per this many seconds.
ACCEPT_ERROR_LOG_INTERVAL = 10.0


def bind_address(host: str, port: int, use_ipv6: int) -> tuple[int, tuple[Any, ...]]:
    """
    The address family and socket address to bind for ``LocalHost`` and
    ``UseIPv6``.

    An empty host means every interface (``0.0.0.0``, or ``::`` for UseIPv6
    1 and 2).  A literal address decides the family itself; a host name is
    resolved once (prefer addresses: the manual recommends them too).

    :raises TCPServerError: 10049 for a host that is not an address of the
        right family, 11001 for a name that does not resolve.
    """
    if not host:
        if use_ipv6:
            return socket.AF_INET6, ("::", port, 0, 0)
        return socket.AF_INET, ("0.0.0.0", port)  # noqa: S104 - the manual's "" = all interfaces
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        family = (
            socket.AF_INET6
            if use_ipv6 == 1
            else (socket.AF_UNSPEC if use_ipv6 == 2 else socket.AF_INET)
        )
        try:
            infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise TCPServerError.from_os_error(exc, f"LocalHost {host!r}") from None
        found_family, _, _, _, sockaddr = infos[0]
        return found_family, sockaddr
    if address.version == 6:
        if use_ipv6 == 0 and address.ipv4_mapped is None:
            raise TCPServerError(
                errors.CANNOT_ASSIGN_ADDRESS,
                f"LocalHost {host!r} is IPv6 but UseIPv6 is 0 (IPv4 only)",
            )
        return socket.AF_INET6, (host, port, 0, 0)
    if use_ipv6 == 1:
        raise TCPServerError(
            errors.CANNOT_ASSIGN_ADDRESS,
            f"LocalHost {host!r} is IPv4 but UseIPv6 is 1 (IPv6 only)",
        )
    return socket.AF_INET, (host, port)


@implementer(ILogObserver)
class AcceptErrorLog:
    """
    Rate-limits a listening port's accept-error log lines.

    When the process runs out of file descriptors, Twisted's port recovers by
    itself: it closes a reserved descriptor, accepts and closes the waiting
    clients, and re-reserves it (libuv does the same) - the port keeps
    listening and never spins.  It logs a line for every closed client,
    though.  This observer counts them in ``factory.counters["refused_emfile"]``
    and lets one line through per :data:`ACCEPT_ERROR_LOG_INTERVAL`; it
    fires one ``error`` event (connection id ``""``, 10024) per burst - a
    burst ends after :data:`ACCEPT_ERROR_LOG_INTERVAL` seconds without one.
    """

    def __init__(self, observer: ILogObserver, factory: TCPServerFactory) -> None:
        self._observer = observer
        self._factory = factory
        self._last = float("-inf")
        self._last_seen = float("-inf")
        self._suppressed = 0

    def __call__(self, event: LogEvent) -> None:
        text = str(event.get("log_format", ""))
        if not text.startswith("EMFILE"):
            self._observer(event)
            return
        factory = self._factory
        if "Closed socket" in text:
            factory.counters["refused_emfile"] += 1
        now = factory.reactor.seconds()
        new_burst = now - self._last_seen >= ACCEPT_ERROR_LOG_INTERVAL
        self._last_seen = now
        if new_burst:
            code = errors.TOO_MANY_OPEN_FILES
            factory.dispatcher.dispatch(
                "error",
                Error(
                    "",
                    code,
                    f"{errors.description_for(code)} New connections are closed at once "
                    "until descriptors are free (stats: refused['emfile']).",
                ),
            )
        if now - self._last < ACCEPT_ERROR_LOG_INTERVAL:
            self._suppressed += 1
            return
        self._last = now
        event = dict(event)
        event["log_format"] = (
            "out of file descriptors: closing new connections until some are free "
            "({suppressed} similar messages suppressed; see stats()['refused']['emfile'])"
        )
        event["log_level"] = LogLevel.warn
        event["suppressed"] = self._suppressed
        self._suppressed = 0
        self._observer(event)


def serve_port(port: object, factory: TCPServerFactory) -> None:
    """
    A Twisted listening port starts serving ``factory``: its accept-error
    logs go through :class:`AcceptErrorLog`, it accepts through
    :class:`~tcpserver._twisted.QuickAcceptSocket` (about 1 us less per
    connection) and the factory knows it
    (:meth:`~tcpserver.factory.TCPServerFactory.listening_on`).
    """
    route_accept_logs(port, lambda observer: AcceptErrorLog(observer, factory))
    quick_accept(port)
    factory.listening_on(port)


@setting_properties(port=True)
@setting_properties(port=False)
class TCPServer(ConnectionMethods, PropertyAccess):
    """
    A TCP/TLS server with the manual's properties, methods and events.

    :param reactor: the reactor to use; the global one by default (tests pass
        their own).
    :param properties: any property as a keyword
        (``TCPServer(local_port=9000, default_eol=b"\\n")``).
    :raises TCPServerError: for an unknown property or a bad value.

    Example::

        server = TCPServer(local_port=9000, default_eol=b"\\n")
        server.on("data_in", lambda e: server.send_line(e.connection_id, e.text.upper()))
        server.start_listening()
        server.run()
    """

    _log = Logger()

    #: Properties settable as constructor keywords (the port's, then the factory's).
    PROPERTIES: tuple[str, ...] = (*property_names(port=True), *TCPServerFactory.PROPERTIES)

    def __init__(self, reactor: IReactorTime | None = None, **properties: Any) -> None:
        #: The Twisted factory behind this server (share it with endpoints).
        self.factory = TCPServerFactory(reactor)
        self.reactor = self.factory.reactor
        #: The factory's settings (one store for both).
        self.settings = self.factory.settings
        #: The factory's connections (the per-connection methods look them up here).
        self.table = self.factory.table
        self.by_id = self.table.by_id
        self._port: IListeningPort | None = None
        self._endpoint_ports: list[tuple[str, IListeningPort]] = []
        self._in_run = False
        self._stopping: Deferred[None] | None = None
        apply_properties(self, properties, self.PROPERTIES)

    def __repr__(self) -> str:
        state = f"listening on {self.local_port}" if self.listening else "not listening"
        return f"<TCPServer {state}, {len(self.connections)} connection(s)>"

    # -- read-only properties --------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether the server is listening (on its port or any endpoint)."""
        return self._port is not None or bool(self._endpoint_ports)

    @property
    def connections(self) -> Mapping[str, Connection]:
        """Read-only mapping ``connection_id -> Connection`` of open connections."""
        return self.factory.connections

    # -- events and config (delegated) -------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """
        The server's counters now - the numbers the metrics endpoint exports.

        ========================  ===============================================
        key                       meaning
        ========================  ===============================================
        ``connections_open``      accepted and not yet closed (``connections``)
        ``connections_pending``   accepted by the kernel, not yet decided
                                  (``connection_request``, PROXY header)
        ``connections_accepted``  accepted since the server was made
        ``connections_paused``    open, with reading paused (``pause_data`` or
                                  flow control)
        ``refused``               refusals by reason: ``max_connections``,
                                  ``per_address`` and ``rate`` (admission
                                  control), ``access``, ``listener``,
                                  ``emfile``, ``proxy``
        ``bytes_received``        read from sockets (encrypted bytes under TLS)
        ``bytes_sent``            handed to sockets (or to TLS)
        ``events``                events fired, by name
        ``handler_errors``        listeners that raised or failed
        ``tls_handshakes``        TLS handshakes completed
        ``tls_failures``          TLS handshakes that failed
        ``flow_control_pauses``   times a send queue passed its high-water mark
        ========================  ===============================================

        A new dictionary each call (reading it costs a pass over the open
        connections); counters only grow.
        """
        return self.factory.stats()

    def on(self, name: str, listener: Listener) -> None:
        """Add a listener; see :meth:`TCPServerFactory.on`."""
        self.factory.on(name, listener)

    def off(self, name: str, listener: Listener) -> None:
        """Remove a listener; see :meth:`TCPServerFactory.off`."""
        self.factory.off(name, listener)

    def config(self, configuration: str) -> str:
        """Set or read a config setting; see :meth:`TCPServerFactory.config`."""
        return self.factory.config(configuration)

    # -- listening ---------------------------------------------------------------------

    def start_listening(self) -> None:
        """
        Bind and listen now; afterwards ``local_port`` holds the real port.

        :raises TCPServerError: 104 already listening; 10048 address in use;
            10013 permission denied; 10049 bad address; 10045 SSL settings
            that cannot hold together.
        """
        if self._port is not None:
            raise TCPServerError(
                errors.ALREADY_LISTENING,
                f"{errors.description_for(errors.ALREADY_LISTENING)} (on port {self.local_port})",
            )
        settings = self.settings
        if settings["SSLStartMode"] != SSLStartMode.NONE:
            self.factory.tls_contexts.check_settings()  # (before the port listens)
        host: str = settings["LocalHost"]
        port: int = settings["LocalPort"]
        family, address = bind_address(host, port, settings["UseIPv6"])
        shown = f"[{address[0]}]:{port}" if family == socket.AF_INET6 else f"{address[0]}:{port}"
        if IReactorSocket.providedBy(self.reactor):
            listening, bound = self._adopt(family, address, shown)
        else:
            # A reactor without socket adoption (an in-memory test reactor):
            # let it do the listening itself.
            reactor: IReactorTCP = self.reactor  # type: ignore[assignment]
            listening = reactor.listenTCP(
                port, self.factory, settings["ConnectionBacklog"], address[0]
            )
            bound = listening.getHost().port  # type: ignore[attr-defined]
            self.factory.listening_on(listening)
        self._port = listening
        settings.record("LocalPort", bound)
        self._log.info(
            "tcpserver listening on {address} (port {port})",
            address=f"{shown.rsplit(':', 1)[0]}:{bound}",
            port=bound,
        )

    def _adopt(
        self, family: int, address: tuple[Any, ...], shown: str
    ) -> tuple[IListeningPort, int]:
        settings = self.settings
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if not settings["BindExclusively"] and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(
                    socket.IPPROTO_IPV6,
                    socket.IPV6_V6ONLY,
                    1 if settings["UseIPv6"] == 1 else 0,
                )
            # Buffer sizes set on the listening socket are inherited by
            # accepted ones and shape the TCP window from the SYN on.
            if settings["InBufferSize"]:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings["InBufferSize"])
            if settings["OutBufferSize"]:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings["OutBufferSize"])
            sock.bind(address)
            sock.listen(settings["ConnectionBacklog"])
            sock.setblocking(False)
            bound = int(sock.getsockname()[1])
            reactor: IReactorSocket = self.reactor  # type: ignore[assignment]
            listening = reactor.adoptStreamPort(
                sock.fileno(), socket.AddressFamily(family), self.factory
            )
            serve_port(listening, self.factory)
        except OSError as exc:
            raise TCPServerError.from_os_error(exc, f"cannot listen on {shown}") from None
        finally:
            sock.close()  # the reactor holds its own duplicate
        return listening, bound

    def adopt_listening_socket(self, fd: int) -> None:
        """
        Serve connections from a socket that is already listening - one a
        supervisor bound and passed down (``--workers``), or one from
        systemd socket activation.  The descriptor stays the caller's.

        :raises TCPServerError: 104 already listening; 10022 if ``fd`` is
            not a listening stream socket.
        """
        if self._port is not None:
            raise TCPServerError(
                errors.ALREADY_LISTENING,
                f"{errors.description_for(errors.ALREADY_LISTENING)} (on port {self.local_port})",
            )
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"cannot adopt descriptor {fd}: {exc.strerror}"
            ) from None
        try:
            if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN
            ):
                raise TCPServerError(
                    errors.INVALID_ARGUMENT,
                    f"cannot adopt descriptor {fd}: not a listening stream socket",
                )
            sock.setblocking(False)
            reactor: IReactorSocket = self.reactor  # type: ignore[assignment]
            listening = reactor.adoptStreamPort(
                sock.fileno(), socket.AddressFamily(sock.family), self.factory
            )
            serve_port(listening, self.factory)
            bound = int(sock.getsockname()[1]) if sock.family != socket.AF_UNIX else 0
        finally:
            sock.close()  # the reactor holds its own duplicate
        self._port = listening
        self.settings.record("LocalPort", bound)
        self._log.info("tcpserver serving descriptor {fd} (port {port})", fd=fd, port=bound)

    def listen_endpoint(self, description: str) -> Deferred[IListeningPort]:
        """
        Also accept connections on a Twisted server endpoint -
        ``tcp:9000``, ``tcp6:9000:interface=\\:\\:``, ``unix:/run/app.sock``,
        ``systemd:domain=INET:index=0`` (socket activation), ``ssl:...`` - all
        served by this server's one factory: the same listeners, limits and
        connection ids as :meth:`start_listening`.

        :returns: a Deferred firing with the listening port.
        :raises TCPServerError: 10022 for a description Twisted cannot parse;
            the Deferred fails with the OS error's code if listening fails.
        """
        from twisted.internet.endpoints import serverFromString

        try:
            endpoint = serverFromString(self.reactor, description)
        except (ValueError, KeyError, TypeError) as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"bad endpoint {description!r}: {exc}"
            ) from None

        def listening(port: IListeningPort) -> IListeningPort:
            serve_port(port, self.factory)
            self._endpoint_ports.append((description, port))
            host = port.getHost()
            shown = getattr(host, "port", None) or getattr(host, "name", host)
            if isinstance(shown, bytes):
                shown = shown.decode(errors="replace")
            self._log.info(
                "tcpserver listening on {endpoint} (port {port})",
                endpoint=description,
                port=shown,
            )
            return port

        def failed(failure: Failure) -> Failure:
            value = failure.value
            if isinstance(value, TCPServerError):
                return failure
            os_error = getattr(value, "socketError", None) or value
            if isinstance(os_error, OSError):
                raise TCPServerError.from_os_error(os_error, f"cannot listen on {description}")
            raise TCPServerError(
                errors.INVALID_ARGUMENT, f"cannot listen on {description}: {value}"
            )

        listened: Deferred[IListeningPort] = endpoint.listen(self.factory)
        return listened.addCallbacks(listening, failed)

    def stop_listening(self) -> Deferred[None]:
        """
        Stop accepting connections (on the port and every endpoint); existing
        ones stay open.

        :returns: a Deferred that fires when every listening port is closed.
        """
        port, self._port = self._port, None
        endpoints, self._endpoint_ports = self._endpoint_ports, []
        closing: list[Deferred[Any]] = []
        if port is not None:
            self.factory.not_listening_on(port)
            self._log.info("tcpserver stopped listening on port {port}", port=self.local_port)
            result = port.stopListening()
            if isinstance(result, Deferred):
                closing.append(result)
        for description, listening in endpoints:
            self.factory.not_listening_on(listening)
            self._log.info("tcpserver stopped listening on {endpoint}", endpoint=description)
            result = listening.stopListening()
            if isinstance(result, Deferred):
                closing.append(result)
        if not closing:
            return succeed(None)
        return gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)

    def shutdown(self, timeout: float | None = SHUTDOWN_TIMEOUT) -> Deferred[None]:
        """
        Stop listening and close every connection (queued data is sent first;
        connections still open after ``timeout`` seconds are reset).

        :returns: a Deferred that fires when every connection is gone and its
            ``disconnected`` event has fired.
        """
        stopped = self.stop_listening()
        closed = self.factory.close_all(timeout)
        done: Deferred[None] = Deferred()

        def both(_: object) -> None:
            closed.addCallback(lambda _: done.callback(None))

        stopped.addBoth(both)
        if self._in_run:
            done.addCallback(self._stop_reactor)
        self._stopping = done
        done.addBoth(self._stopped)
        return done

    def _stopped(self, result: object) -> object:
        self._stopping = None
        return result

    def reset(self) -> None:
        """
        Back to a fresh server: stop listening, reset every connection and set
        every property and config setting to its default.  Listeners stay.
        """
        self.stop_listening()
        self.factory.abort_all()
        self.factory.reset_settings()

    # -- running the reactor -------------------------------------------------------------

    def do_events(self, timeout: float = 0.1) -> None:
        """
        Process pending network events, waiting up to ``timeout`` seconds for
        one (the manual's DoEvents loop).  Does nothing when the reactor is
        already running, e.g. when called from a listener.
        """
        iterate = getattr(self.reactor, "iterate", None)
        if iterate is None or getattr(self.reactor, "running", False):
            return
        iterate(timeout)

    def run(self) -> None:
        """
        Listen (if not yet) and run the reactor until :meth:`shutdown`
        completes.  SIGINT/SIGTERM shut down gracefully.
        """
        if self._port is None:
            self.start_listening()
        reactor: Any = self.reactor
        self._in_run = True
        reactor.addSystemEventTrigger("before", "shutdown", self._shutdown_trigger)
        try:
            reactor.run()
        finally:
            self._in_run = False

    def _shutdown_trigger(self) -> Deferred[None] | None:
        self._in_run = False
        if self._stopping is not None:
            return self._stopping
        return self.shutdown()

    def _stop_reactor(self, _: object) -> None:
        reactor: Any = self.reactor
        if self._in_run and reactor.running:
            self._in_run = False
            reactor.stop()
