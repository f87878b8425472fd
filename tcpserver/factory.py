"""TCPServerFactory: settings, listeners and the connections of one server.

A Twisted :class:`~twisted.internet.protocol.ServerFactory` usable on its own
with any endpoint::

    factory = TCPServerFactory(default_eol=b"\\n")
    factory.on("data_in", lambda e: factory.send(e.connection_id, e.text + b"\\n"))
    serverFromString(reactor, "tcp:9000").listen(factory)

It owns everything about connections - listeners (``on``/``off``),
``connections``, ``config()``, the connection properties (``default_*``,
``keep_alive``, ``linger``, ``ssl_*``: made from the settings registry) and
every per-connection method (``send*``, ``disconnect``, ``pause_data``...:
see :mod:`tcpserver.delegates`).  The listening port belongs to
:class:`~tcpserver.server.TCPServer`.

It is a composition of parts with public interfaces: the
:class:`~tcpserver.settings.Settings` store (what a change does is declared
on each registry entry: :attr:`Setting.effect
<tcpserver.settingtypes.Setting.effect>`), the
:class:`~tcpserver.dispatch.Dispatcher` (listeners), the
:class:`~tcpserver.table.ConnectionTable` (ids, limits, admission) and the
:class:`~tcpserver.tls.TLSContexts` cache.  Connections see it as a
:class:`~tcpserver.host.ConnectionHost`.

Error handling: a listener that raises (or whose Deferred/coroutine fails) is
logged with its traceback and reported through the ``error`` event (code
900); the connection and the server carry on.  An unknown connection id
raises :class:`~tcpserver.errors.TCPServerError` 126.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from typing_extensions import override

from tcpserver import errors
from tcpserver._codepages import codec_for_code_page
from tcpserver._tlssession import report_alert
from tcpserver._twisted import listen_nodelay
from tcpserver.access import AddressMatcher
from tcpserver.connection import Connection, ConnectionMap
from tcpserver.delegates import ConnectionMethods
from tcpserver.dispatch import Dispatcher
from tcpserver.errors import TCPServerError
from tcpserver.events import ConnectionRequest, Listener
from tcpserver.pool import PartsPool
from tcpserver.profile import ConnectionProfile, build_profile
from tcpserver.properties import (
    PropertyAccess,
    apply_properties,
    property_names,
    setting_properties,
)
from tcpserver.protocol import TCPServerProtocol
from tcpserver.settings import Setting, Settings, parse_config_string, readout_name
from tcpserver.table import REFUSAL_REASONS, ConnectionTable
from tcpserver.tls import TLSContexts
from tcpserver.turn import TurnSends

__all__ = ["REFUSAL_REASONS", "TCPServerFactory"]

T = TypeVar("T")


@setting_properties(port=False)
class TCPServerFactory(ConnectionMethods, PropertyAccess, ServerFactory):
    """
    The factory behind a :class:`~tcpserver.TCPServer`; hand it to any
    Twisted endpoint.

    :param reactor: the reactor for timers (idle and send timeouts); the
        global reactor by default.  Tests pass a ``task.Clock`` or
        ``MemoryReactorClock``.
    :param properties: any property (``default_eol=b"\\n"``...) as a keyword.
    :raises TCPServerError: for an unknown property or a bad value.

    :ivar settings: every setting's value (:class:`~tcpserver.settings.Settings`).
    :ivar dispatcher: the listeners (:class:`~tcpserver.dispatch.Dispatcher`).
    :ivar table: the connections (:class:`~tcpserver.table.ConnectionTable`).
    :ivar connections: read-only ``connection_id -> Connection``.
    :ivar counters: the raw tallies behind :meth:`stats` (refusals by reason,
        handshakes, listener errors...), counted where they happen.
    :ivar nodelay_ports: of the ports a :class:`~tcpserver.TCPServer`
        opened for this factory, those whose accepted sockets come with
        TCP_NODELAY (``TcpNoDelay`` on their listening socket).
    """

    _log = Logger()
    noisy = False  # the port already logs start/stop; no "Starting factory" lines

    #: Properties the factory owns (the rest belong to TCPServer's port).
    PROPERTIES: tuple[str, ...] = property_names(port=False)

    def __init__(self, reactor: IReactorTime | None = None, **properties: Any) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        assert reactor is not None
        self.reactor: IReactorTime = reactor
        #: counters: accepted, refused_<reason>, listener_errors,
        #: tls_handshakes, tls_failures, flow_pauses (see tcpserver.metrics)
        self.counters: Counter[str] = Counter()
        self.settings = Settings(on_change=self._setting_changed)
        self.table: ConnectionTable[TCPServerProtocol] = ConnectionTable(reactor, self.counters)
        self.by_id = self.table.by_id
        #: what connections send during a reactor turn leaves at its end
        self.turn = TurnSends(reactor)
        self.parts = PartsPool()  # kits of connections at rest, for reuse
        self.dispatcher = Dispatcher(
            self.counters,
            self.table.closed,
            lambda: bool(self.settings["MaskSensitiveData"]),
            self._listeners_changed,
        )
        self.connections: Mapping[str, Connection] = ConnectionMap(self.table.by_id)
        self._ports: set[object] = set()  # ports a TCPServer opened for this factory
        self.nodelay_ports: frozenset[object] = frozenset()
        #: what a connection accepted now takes from the settings (rebuilt on every change)
        self.profile: ConnectionProfile = build_profile(self.settings.view)
        self._allowed = AddressMatcher.parse("*")
        self._blocked = AddressMatcher.parse("")
        self._open_access = True  # every address allowed, no limits: no per-connection check
        self.trusted_proxies = AddressMatcher.parse(
            self.settings["TrustedProxies"], "TrustedProxies"
        )
        self.codec = "utf-8"
        self.tls_contexts = TLSContexts(
            self.settings,
            self,
            report_alert,
            wants_alerts=lambda: bool(self.dispatcher.listeners["ssl_status"]),
        )
        #: a new connection opens without asking or telling anyone (see _update_quiet_open)
        self.quiet_open = True
        self._effects: dict[str, Callable[[], None]] = {
            "access": self._access_changed,
            "admission": self._admission_changed,
            "proxies": self._proxies_changed,
            "codec": self._codec_changed,
            "max_connections": self._max_connections_changed,
            "tls": self.tls_contexts.invalidate,
            "nodelay": self._nodelay_changed,
        }
        apply_properties(self, properties, self.PROPERTIES)

    # -- settings ------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether any port is currently serving this factory."""
        return self.numPorts > 0 or bool(self._ports)

    def listening_on(self, port: object) -> None:
        """
        A :class:`~tcpserver.TCPServer` opened ``port`` for this factory: with
        ``TcpNoDelay`` its listening socket gets TCP_NODELAY, which the
        sockets it accepts inherit (see :attr:`nodelay_ports`).
        """
        self._ports.add(port)
        self._nodelay_changed()

    def not_listening_on(self, port: object) -> None:
        """``port`` stops serving this factory (it is being closed)."""
        self._ports.discard(port)
        self.nodelay_ports = self.nodelay_ports - {port}  # (the other ports are as they were)

    @property
    def id_prefix(self) -> str:
        """The prefix of every new connection id (one per worker process)."""
        return self.table.id_prefix

    @id_prefix.setter
    def id_prefix(self, prefix: str) -> None:
        self.table.id_prefix = prefix

    def _setting_changed(self, setting: Setting, value: Any) -> None:
        self.profile = build_profile(self.settings.view)
        if setting.effect is not None:
            self._effects[setting.effect]()

    def _nodelay_changed(self) -> None:
        on = self.profile.tcp_nodelay
        self.nodelay_ports = frozenset(
            port for port in self._ports if listen_nodelay(port, on) and on
        )

    def _access_changed(self) -> None:
        settings = self.settings
        self._allowed = AddressMatcher.parse(settings["AllowedClients"], "AllowedClients")
        self._blocked = AddressMatcher.parse(settings["BlockedClients"], "BlockedClients")
        self._update_quiet_open()

    def _admission_changed(self) -> None:
        settings = self.settings
        self.table.admission.configure(
            settings["MaxConnectionsPerAddress"],
            settings["MaxAcceptRate"],
            settings["MaxAcceptRatePerAddress"],
        )
        self._update_quiet_open()

    def _proxies_changed(self) -> None:
        self.trusted_proxies = AddressMatcher.parse(
            self.settings["TrustedProxies"], "TrustedProxies"
        )

    def _codec_changed(self) -> None:
        self.codec = codec_for_code_page(self.settings["CodePage"])

    def _max_connections_changed(self) -> None:
        self.table.max_connections = self.settings["MaxConnections"]

    def _update_quiet_open(self) -> None:
        """
        The accept-time derived flags, computed here only: every address is
        allowed with no admission limit (``_open_access``), and then also
        nobody listens to ``connection_request``, ``connected`` or
        ``ready_to_send`` (``quiet_open``: a connection opens in one step).
        """
        self._open_access = (
            self._allowed.match_all and self._blocked.empty and not self.table.admission.active
        )
        listeners = self.dispatcher.listeners
        self.quiet_open = (
            self._open_access
            and not listeners["connection_request"]
            and not listeners["connected"]
            and not listeners["ready_to_send"]
        )

    def config(self, configuration: str) -> str:
        """
        Set (``"Name=Value"``) or read (``"Name"``) a config setting.

        Names are the manual's, matched case-insensitively; booleans accept
        True/False/1/0/Yes/No.  Per-connection read-outs take the id in
        brackets: ``config("SSLNegotiatedCipher[<connection_id>]")``.

        :returns: the value as a string when reading, ``""`` when setting.
        :raises TCPServerError: 10022 for an unknown name or a bad value, 10045
            for a value this platform cannot honour, 108 for MaxConnections
            while listening, 126 for an unknown connection id.
        """
        request = parse_config_string(configuration)
        readout = readout_name(request.name)
        if readout is not None:
            if request.value is not None:
                raise TCPServerError(
                    errors.INVALID_ARGUMENT, f"{readout} is read-only (got {configuration!r})"
                )
            if request.index is None:
                raise TCPServerError(
                    errors.INVALID_ARGUMENT,
                    f"{readout} is per connection: use config('{readout}[<connection_id>]')",
                )
            return self.table.get(request.index, readout).readout(readout)
        if request.index is not None:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{request.name} is not a per-connection setting (got {configuration!r})",
            )
        if request.value is None:
            return self.settings.get_string(request.name)
        self.settings.set_string(request.name, request.value, listening=self.listening)
        return ""

    def reset_settings(self) -> None:
        """Every property and config setting back to its default."""
        self.settings.reset()

    # -- events --------------------------------------------------------------------------

    def on(self, name: str, listener: Listener) -> None:
        """
        Call ``listener(event)`` for every ``name`` event.

        :param name: one of :data:`~tcpserver.events.EVENT_NAMES`.
        :param listener: may return ``None``, a Deferred or a coroutine; an
            async ``data_in`` listener holds back that connection's later
            events (and reading) until it completes.
        :raises ValueError: for an unknown event name.
        """
        self.dispatcher.on(name, listener)

    def off(self, name: str, listener: Listener) -> None:
        """
        Stop calling ``listener`` for ``name`` events (no error if it was not
        registered).

        :raises ValueError: for an unknown event name.
        """
        self.dispatcher.off(name, listener)

    def _listeners_changed(self, name: str) -> None:
        if name == "ssl_status":
            self.tls_contexts.invalidate()  # contexts report alerts only while someone listens
        self._update_quiet_open()

    # -- connections -----------------------------------------------------------------------

    @override
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if not self.table.take_socket(addr):
            return None
        # (it becomes pending in connectionMade unless it opens there at once;
        # Twisted's annotation says Protocol, its contract an IProtocol provider)
        return TCPServerProtocol(self, addr)  # type: ignore[return-value]

    def request(self, host: str, port: int) -> bool | Deferred[bool]:
        """
        Whether the client ``host``:``port`` may connect: the access lists
        preset ``accept``, then ``connection_request`` listeners decide
        (refusals are counted by reason).
        """
        listeners = self.dispatcher.listeners["connection_request"]
        if self._open_access and not listeners:
            return True
        accept = self._allowed.matches(host) and (
            self._blocked.empty or not self._blocked.matches(host)
        )
        if not listeners:
            if not accept:
                self.counters["refused_access"] += 1
            return accept
        event = ConnectionRequest(host, port, accept)
        waiting = self.dispatcher.call("connection_request", listeners, event)
        if waiting is None:
            return self._count_decision(accept, event)
        return waiting.addCallback(lambda _: self._count_decision(accept, event))

    def _count_decision(self, preset: bool, event: ConnectionRequest) -> bool:
        decision = bool(event.accept)
        if not decision:
            self.counters["refused_access" if not preset else "refused_listener"] += 1
        return decision

    @property
    def bytes_received(self) -> int:
        """Bytes read from sockets so far (raw: encrypted under TLS)."""
        return self.table.bytes_received()

    def bytes_handed(self) -> int:
        """Bytes handed to sockets (or to TLS) so far, by every connection."""
        return self.table.bytes_handed()

    def events_fired(self) -> dict[str, int]:
        """How many events of each name reached listeners so far."""
        return self.dispatcher.events_fired()

    def stats(self) -> dict[str, Any]:
        """
        The server's counters now, as :meth:`TCPServer.stats
        <tcpserver.TCPServer.stats>` returns them and the metrics endpoint
        exports them (see there for the keys).
        """
        stats = self.counters
        table = self.table
        return {
            "connections_open": len(table.by_id),
            "connections_pending": table.pending,
            "connections_accepted": stats["accepted"],
            "connections_paused": table.paused(),
            "refused": {reason: stats[f"refused_{reason}"] for reason in REFUSAL_REASONS},
            "bytes_received": table.bytes_received(),
            "bytes_sent": table.bytes_handed(),
            "events": self.events_fired(),
            "handler_errors": stats["listener_errors"],
            "tls_handshakes": stats["tls_handshakes"],
            "tls_failures": stats["tls_failures"],
            "flow_control_pauses": stats["flow_pauses"],
        }

    def close_all(self, timeout: float | None = 10.0) -> Deferred[None]:
        """
        Close every connection: gracefully (queued data is sent first), then
        with a reset for whatever is still open after ``timeout`` seconds -
        a hard deadline: listeners that have not finished by then are given
        up on, so every ``disconnected`` fires and the Deferred fires.

        :returns: a Deferred that fires once every connection is gone and its
            ``disconnected`` event has fired.
        """
        self.table.shut_down_all()
        done = self.table.when_all_gone()
        if timeout is not None and not done.called:
            timer = self.reactor.callLater(timeout, self.table.end_all)
            done.addBoth(_cancel_timer, timer)
        return done

    def abort_all(self) -> None:
        """Reset every connection now."""
        self.table.abort_all()


def _cancel_timer(result: T, timer: IDelayedCall) -> T:
    if timer.active():
        timer.cancel()
    return result
