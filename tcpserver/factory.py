"""TCPServerFactory: settings, the connection map, access control, events.

A Twisted :class:`~twisted.internet.protocol.ServerFactory` usable on its own
with any endpoint::

    factory = TCPServerFactory(default_eol=b"\\n")
    factory.on("data_in", lambda e: factory.send(e.connection_id, e.text + b"\\n"))
    serverFromString(reactor, "tcp:9000").listen(factory)

It owns everything about connections - listeners (``on``/``off``),
``connections``, ``config()``, the ``default_*``, ``keep_alive``, ``linger``
and ``ssl_*`` properties and every per-connection method (``send*``,
``disconnect``, ``pause_data``...).  The listening port belongs to
:class:`~tcpserver.server.TCPServer`.

Error handling: a listener that raises (or whose Deferred/coroutine fails) is
logged with its traceback and reported through the ``error`` event (code
900); the connection and the server carry on.  An unknown connection id
raises :class:`~tcpserver.errors.TCPServerError` 126.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
from collections import Counter
from collections.abc import Awaitable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from typing_extensions import override

from tcpserver import errors
from tcpserver._codepages import codec_for_code_page
from tcpserver.access import AddressMatcher
from tcpserver.admission import Admission
from tcpserver.connection import Connection
from tcpserver.errors import TCPServerError
from tcpserver.events import EVENT_NAMES, ConnectionRequest, Error, Listener
from tcpserver.protocol import CORK_LIMIT, PAUSE_FLOW, PAUSE_USER, TCPServerProtocol
from tcpserver.settings import (
    Setting,
    Settings,
    SSLStartMode,
    lookup,
    parse_config_string,
    readout_name,
)
from tcpserver.tls import Certificate, TLSContexts

__all__ = ["SettingProperty", "TCPServerFactory"]

T = TypeVar("T")

#: How often (seconds) a refused-connection warning may be logged.
REFUSAL_LOG_INTERVAL = 10.0

#: Why connections are refused: each has a counter (``stats["refused_<reason>"]``),
#: a key of ``snapshot()["refused"]`` and a label of the refusals metric.
REFUSAL_REASONS = (
    "max_connections", "per_address", "rate", "access", "listener", "emfile", "proxy",
)  # fmt: skip

_USER_OR_FLOW = PAUSE_USER | PAUSE_FLOW


def _length_prefix(values: Mapping[str, Any]) -> tuple[int, str, int, bool, int, bool] | None:
    settings = (
        values["DefaultLengthPrefix"],
        values["LengthPrefixByteOrder"],
        values["LengthPrefixAdjustment"],
        values["LengthPrefixStrip"],
        values["MaxFrameLength"],
        values["SkipTooLongFrames"],
    )
    return None if settings == (0, "big", 0, True, 1 << 20, False) else settings


def _as_frame_bytes(data: object) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TCPServerError(
        errors.INVALID_ARGUMENT, f"send_frame: data must be bytes, got {type(data).__name__}"
    )


_ACCESS_SETTINGS = frozenset(
    ("AllowedClients", "BlockedClients", "MaxConnectionsPerAddress", "MaxAcceptRate",
     "MaxAcceptRatePerAddress")
)  # fmt: skip


class SettingProperty(Generic[T]):
    """
    A property backed by the settings registry.

    Reading returns the current value; assigning validates it like
    ``config()`` does and raises :class:`~tcpserver.errors.TCPServerError`
    (showing the bad value) when it is refused.
    """

    def __init__(self, name: str) -> None:
        self.setting = lookup(name)
        self.__doc__ = f"{self.setting.doc} Default: {self.setting.default!r}."

    @overload
    def __get__(self, obj: None, owner: type) -> SettingProperty[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object | None, owner: type) -> T | SettingProperty[T]:
        if obj is None:
            return self
        value: T = obj._settings[self.setting.name]  # type: ignore[attr-defined]
        return value

    def __set__(self, obj: object, value: T | str | int) -> None:
        obj._change_setting(self.setting.name, value)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ConnectionProfile:
    """
    What a new connection takes from the settings, read once per settings
    change and shared: a connection holds one reference instead of a copy of
    each value (and accepting one costs no settings lookups).
    """

    eol: bytes
    max_line_length: int
    single_line_mode: bool
    idle_timeout: float
    send_timeout: float
    high_water: int
    low_water: int
    queue_limit: int
    linger: bool
    ssl_start_mode: int
    tcp_nodelay: bool
    keep_alive: bool
    #: any socket option beyond TCP_NODELAY / SO_KEEPALIVE to set
    extra_socket_options: bool
    #: a PROXY protocol header comes first (ProxyProtocol)
    proxy_protocol: bool
    proxy_timeout: float
    proxy_detect: bool
    read_idle: float
    write_idle: float
    close_grace: float
    #: (size, byteorder, adjust, strip, max frame length, skip too long), or
    #: None when all are at their defaults (the framer's own)
    length_prefix: tuple[int, str, int, bool, int, bool] | None
    #: a connection opens at accept with nothing to set up but TCP_NODELAY:
    #: no PROXY header, no TLS at accept, no keep-alive or other socket
    #: options, no idle timers (TCPServerProtocol.connectionMade's fast path)
    quick_open: bool = False


class _ConnectionMap(Mapping[str, Connection]):
    """Read-only ``connection_id -> Connection`` view of the live connections."""

    __slots__ = ("_protocols",)

    def __init__(self, protocols: dict[str, TCPServerProtocol]) -> None:
        self._protocols = protocols

    def __getitem__(self, connection_id: str) -> Connection:
        # Views are made on demand: an idle connection carries no view object.
        return Connection(self._protocols[connection_id])

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._protocols))

    def __len__(self) -> int:
        return len(self._protocols)

    def __repr__(self) -> str:
        return f"<connections {sorted(self._protocols)}>"


def _to_deferred(result: object) -> Deferred[Any] | None:
    """A Deferred for a listener's awaitable result, or ``None``."""
    if isinstance(result, Deferred):
        return result
    if inspect.iscoroutine(result):
        return Deferred.fromCoroutine(result)
    if asyncio.isfuture(result):
        return Deferred.fromFuture(result)
    if inspect.isawaitable(result):
        return Deferred.fromCoroutine(_await(result))
    return None


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class TCPServerFactory(ServerFactory):
    """
    The factory behind a :class:`~tcpserver.TCPServer`; hand it to any
    Twisted endpoint.

    :param reactor: the reactor for timers (idle and send timeouts); the
        global reactor by default.  Tests pass a ``task.Clock`` or
        ``MemoryReactorClock``.
    :param properties: any property (``default_eol=b"\\n"``...) as a keyword.
    :raises TCPServerError: for an unknown property or a bad value.
    """

    _log = Logger()
    noisy = False  # the port already logs start/stop; no "Starting factory" lines

    default_eol: SettingProperty[bytes] = SettingProperty("DefaultEOL")
    default_idle_timeout: SettingProperty[float] = SettingProperty("DefaultIdleTimeout")
    default_max_line_length: SettingProperty[int] = SettingProperty("DefaultMaxLineLength")
    default_single_line_mode: SettingProperty[bool] = SettingProperty("DefaultSingleLineMode")
    default_timeout: SettingProperty[float] = SettingProperty("DefaultTimeout")
    keep_alive: SettingProperty[bool] = SettingProperty("KeepAlive")
    linger: SettingProperty[bool] = SettingProperty("Linger")
    ssl_authenticate_clients: SettingProperty[bool] = SettingProperty("SSLAuthenticateClients")
    ssl_cert: SettingProperty[Certificate | None] = SettingProperty("SSLCert")
    ssl_enabled: SettingProperty[bool] = SettingProperty("SSLEnabled")
    ssl_provider: SettingProperty[int] = SettingProperty("SSLProvider")
    ssl_start_mode: SettingProperty[SSLStartMode] = SettingProperty("SSLStartMode")

    #: Properties the factory owns (the rest belong to TCPServer's port).
    PROPERTIES: tuple[str, ...] = (
        "default_eol",
        "default_idle_timeout",
        "default_max_line_length",
        "default_single_line_mode",
        "default_timeout",
        "keep_alive",
        "linger",
        "ssl_authenticate_clients",
        "ssl_cert",
        "ssl_enabled",
        "ssl_provider",
        "ssl_start_mode",
    )

    def __init__(self, reactor: IReactorTime | None = None, **properties: Any) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        assert reactor is not None
        self.reactor: IReactorTime = reactor
        self._settings = Settings(on_change=self._setting_changed)
        self._listeners: dict[str, tuple[Listener, ...]] = {n: () for n in EVENT_NAMES}
        self._data_in_listeners: tuple[Listener, ...] = ()
        self._protocols: dict[str, TCPServerProtocol] = {}
        self._pending: set[TCPServerProtocol] = set()  # built, not yet registered
        self._profile: ConnectionProfile | None = None
        self._open = 0  # sockets built and not yet lost (for MaxConnections)
        self._server_ports = 0  # ports a TCPServer opened for this factory
        self._ids = itertools.count(1)
        #: prefix of every connection id (set per worker process)
        self.id_prefix = ""
        self._all_gone: list[Deferred[None]] = []
        self._allowed = AddressMatcher.parse("*")
        self._blocked = AddressMatcher.parse("")
        self._open_access = True  # every address allowed, no limits: no per-connection check
        self._admission = Admission()
        self._trusted_proxies = AddressMatcher.parse(self._settings["TrustedProxies"])
        self._codec = "utf-8"
        self._max_connections = 1000
        self._last_refusal_log = float("-inf")
        self._refusals_unlogged = 0
        #: counters: accepted, refused_max_connections, refused_access,
        #: refused_listener, refused_emfile, refused_proxy, listener_errors,
        #: tls_handshakes, tls_failures, flow_pauses (see tcpserver.metrics)
        self.stats: Counter[str] = Counter()
        self._bytes_received_closed = 0  # by connections that have gone
        self._bytes_handed_closed = 0  # by connections that have gone
        self._event_counts: Counter[str] = Counter()  # events through _call_listeners
        self._data_in_batched = 0  # data_in events of the single-listener fast path
        #: protocols delivering a read batch now (innermost last): a change of
        #: the data_in listeners ends their batches (see _listeners_changed)
        self._delivering: list[TCPServerProtocol] = []
        self.connections: Mapping[str, Connection] = _ConnectionMap(self._protocols)
        self._tls_contexts = TLSContexts(
            self._settings,
            self,
            self._tls_alert,
            wants_alerts=lambda: bool(self._listeners["ssl_status"]),
        )
        #: a new connection opens without asking anyone (see _update_quiet_open)
        self._quiet_open = True
        self._apply_properties(properties, self.PROPERTIES)

    def _listeners_changed(self, name: str) -> None:
        if name == "data_in":
            self._data_in_listeners = self._listeners["data_in"]
            # the next line of a batch being delivered goes to the new set
            for protocol in self._delivering:
                protocol._end_batch()
        self._update_quiet_open()

    def _update_quiet_open(self) -> None:
        """
        Whether accepting needs no per-connection decision or event: every
        address is allowed, no admission limit, and nobody listens to
        ``connection_request``, ``connected`` or ``ready_to_send``.
        """
        listeners = self._listeners
        self._quiet_open = (
            self._open_access
            and not listeners["connection_request"]
            and not listeners["connected"]
            and not listeners["ready_to_send"]
        )

    def _apply_properties(self, properties: dict[str, Any], allowed: tuple[str, ...]) -> None:
        for name, value in properties.items():
            if name not in allowed:
                raise TCPServerError(
                    errors.INVALID_ARGUMENT,
                    f"unknown property {name!r} (known: {', '.join(sorted(allowed))})",
                )
            setattr(self, name, value)

    # -- settings -------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether any port is currently serving this factory."""
        return self.numPorts > 0 or self._server_ports > 0

    def _change_setting(self, name: str, value: object) -> None:
        self._settings.set(name, value, listening=self.listening)

    def _setting_changed(self, setting: Setting, value: Any) -> None:
        name = setting.name
        self._profile = None
        if name == "AllowedClients":
            self._allowed = AddressMatcher.parse(value)
        elif name == "BlockedClients":
            self._blocked = AddressMatcher.parse(value)
        elif name in ("MaxConnectionsPerAddress", "MaxAcceptRate", "MaxAcceptRatePerAddress"):
            settings = self._settings
            self._admission.configure(
                settings["MaxConnectionsPerAddress"],
                settings["MaxAcceptRate"],
                settings["MaxAcceptRatePerAddress"],
            )
        if name in _ACCESS_SETTINGS:
            self._open_access = (
                self._allowed.match_all and self._blocked.empty and not self._admission.active
            )
            self._update_quiet_open()
        if name == "TrustedProxies":
            self._trusted_proxies = AddressMatcher.parse(value)
        elif name == "CodePage":
            self._codec = codec_for_code_page(value)
        elif name == "MaxConnections":
            self._max_connections = value
        if name.startswith(("SSL", "OpenSSL", "TLS1", "ReuseSSL")):
            self._tls_contexts.invalidate()

    def _tls_alert(self, connection: Any, direction: str, level: str, name: str) -> None:
        """A TLS alert on some connection, reported through ssl_status."""
        engine = connection.get_app_data()
        session = getattr(getattr(engine, "wrappedProtocol", None), "_session", None)
        if session is not None:
            session.owner._ssl_status(f"alert {direction}: {level} {name}")

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
            return self._protocol_for(request.index, readout).readout(readout)
        if request.index is not None:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{request.name} is not a per-connection setting (got {configuration!r})",
            )
        if request.value is None:
            return self._settings.get_string(request.name)
        self._settings.set_string(request.name, request.value, listening=self.listening)
        return ""

    # -- events -------------------------------------------------------------------------

    def on(self, name: str, listener: Listener) -> None:
        """
        Call ``listener(event)`` for every ``name`` event.

        :param name: one of :data:`~tcpserver.events.EVENT_NAMES`.
        :param listener: may return ``None``, a Deferred or a coroutine; an
            async ``data_in`` listener holds back that connection's later
            events (and reading) until it completes.
        :raises ValueError: for an unknown event name.
        """
        self._check_event(name)
        if not callable(listener):
            raise TypeError(f"listener for {name!r} must be callable, not {listener!r}")
        if name == "ssl_status" and not self._listeners[name]:
            self._tls_contexts.invalidate()  # new contexts report alerts
        self._listeners[name] = (*self._listeners[name], listener)
        self._listeners_changed(name)

    def off(self, name: str, listener: Listener) -> None:
        """
        Stop calling ``listener`` for ``name`` events (no error if it was not
        registered).

        :raises ValueError: for an unknown event name.
        """
        self._check_event(name)
        current = list(self._listeners[name])
        if listener in current:
            current.remove(listener)
            self._listeners[name] = tuple(current)
            self._listeners_changed(name)
            if name == "ssl_status" and not current:
                self._tls_contexts.invalidate()

    @staticmethod
    def _check_event(name: str) -> None:
        if name not in EVENT_NAMES:
            raise ValueError(f"unknown event {name!r}; events are: {', '.join(EVENT_NAMES)}")

    def _dispatch(self, name: str, event: Any) -> Deferred[Any] | None:
        listeners = self._listeners[name]
        if not listeners:
            return None
        return self._call_listeners(name, listeners, event)

    def _call_listeners(
        self, name: str, listeners: tuple[Listener, ...], event: Any
    ) -> Deferred[Any] | None:
        """
        Call each listener in turn, isolating failures.

        :returns: a Deferred that fires when every async result completed, or
            ``None`` when all listeners finished synchronously.
        """
        pending: list[Deferred[None]] | None = None
        self._event_counts[name] += 1
        for listener in listeners:
            try:
                result = listener(event)
            except Exception:  # noqa: BLE001 - a listener must never break the server
                self._listener_failed(Failure(), name, listener, event)
                continue
            if result is None:
                continue
            finished = self._result_deferred(result, name, listener, event)
            if finished is None:
                continue
            if pending is None:
                pending = [finished]
            else:
                pending.append(finished)
        if pending is None:
            return None
        if len(pending) == 1:
            return pending[0]
        return DeferredList(pending)

    def _result_deferred(
        self, result: object, name: str, listener: Listener, event: Any
    ) -> Deferred[None] | None:
        """
        What to wait for after a listener returned ``result``: ``None`` for a
        plain value or an already-completed awaitable, else a Deferred that
        fires when it completes.
        """
        waiting = _to_deferred(result)
        if waiting is None:
            return None
        return self._observe(waiting, name, listener, event)

    def _observe(
        self, waiting: Deferred[Any], name: str, listener: Listener, event: Any
    ) -> Deferred[None] | None:
        """
        Watch a listener's Deferred without changing what it delivers to its
        other callbacks: a result passes through; a failure is reported
        (logged, ``error`` event) and consumed.

        :returns: ``None`` if it has already completed - a Deferred that has
            fired but waits on an inner one has not - otherwise a new Deferred
            that fires when it does.
        """
        finished: Deferred[None] = Deferred()

        def seen(result: object) -> object:
            if isinstance(result, Failure):
                self._listener_failed(result, name, listener, event)
                result = None
            finished.callback(None)
            return result

        waiting.addBoth(seen)
        return None if finished.called else finished

    def _listener_failed(self, failure: Failure, name: str, listener: Listener, event: Any) -> None:
        connection_id = getattr(event, "connection_id", "")
        if failure.check(TCPServerError) and self._closed_under(connection_id):
            # An await on a send of a connection that has since closed: not a
            # listener bug; the disconnected event tells the story.
            self._log.info(
                "{event} listener {listener!r} of closed connection {cid!r} ended with {error}",
                event=name,
                listener=listener,
                cid=connection_id,
                error=failure.getErrorMessage(),
            )
            return
        self.stats["listener_errors"] += 1
        self._log.failure(
            "{event} listener {listener!r} raised on {payload} (connection {cid!r})",
            failure,
            event=name,
            listener=listener,
            cid=connection_id,
            payload=self._loggable(event),
        )
        if name != "error":
            self._dispatch(
                "error",
                Error(
                    connection_id,
                    errors.LISTENER_ERROR,
                    f"{name} listener {getattr(listener, '__qualname__', listener)} "
                    f"raised {type(failure.value).__name__}: {failure.getErrorMessage()}",
                ),
            )

    def _closed_under(self, connection_id: str) -> bool:
        """Whether the connection of an event has been lost in the meantime."""
        if not connection_id:
            return False
        protocol = self._protocols.get(connection_id)
        return protocol is None or protocol._lost is not None

    def _loggable(self, event: Any) -> str:
        """An event for a log line; payload bytes masked unless MaskSensitiveData=False."""
        if not self._settings["MaskSensitiveData"]:
            return repr(event)
        fields = []
        for name in getattr(event, "__slots__", ()):
            value = getattr(event, name)
            shown = f"<{len(value)} bytes>" if isinstance(value, bytes) else repr(value)
            fields.append(f"{name}={shown}")
        return f"{type(event).__name__}({', '.join(fields)})"

    # -- connections -------------------------------------------------------------------

    @override
    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if self._open >= self._max_connections:
            self.stats["refused_max_connections"] += 1
            self._log_refusal(
                f"MaxConnections={self._max_connections}", getattr(addr, "host", addr)
            )
            return None
        # (it joins _pending in connectionMade unless it opens there at once)
        protocol = TCPServerProtocol(self, addr)
        self._open += 1
        return protocol

    def _log_refusal(self, limit: str, peer: object) -> None:
        """Log refused connections, at most once per REFUSAL_LOG_INTERVAL."""
        now = self.reactor.seconds()
        self._refusals_unlogged += 1
        if now - self._last_refusal_log < REFUSAL_LOG_INTERVAL:
            return
        self._log.warn(
            "{limit} reached: refused {count} connection(s), latest from {peer}",
            limit=limit,
            count=self._refusals_unlogged,
            peer=peer,
        )
        self._last_refusal_log = now
        self._refusals_unlogged = 0

    def _connection_profile(self) -> ConnectionProfile:
        """What new connections take from the settings (one shared object)."""
        profile = self._profile
        if profile is None:
            values = self._settings.view
            high = values["SendQueueHighWater"]
            profile = self._profile = ConnectionProfile(
                eol=values["DefaultEOL"],
                max_line_length=values["DefaultMaxLineLength"],
                single_line_mode=values["DefaultSingleLineMode"],
                idle_timeout=values["DefaultIdleTimeout"],
                send_timeout=values["DefaultTimeout"],
                high_water=high,
                low_water=min(values["SendQueueLowWater"], high),
                queue_limit=max(values["SendQueueLimit"], high),
                linger=values["Linger"],
                ssl_start_mode=values["SSLStartMode"],
                tcp_nodelay=values["TcpNoDelay"],
                keep_alive=values["KeepAlive"],
                proxy_protocol=values["ProxyProtocol"],
                proxy_timeout=values["ProxyHeaderTimeout"],
                proxy_detect=values["ProxyProtocolDetect"],
                read_idle=values["ReadIdleTimeout"],
                write_idle=values["WriteIdleTimeout"],
                close_grace=values["CloseGracePeriod"],
                length_prefix=_length_prefix(values),
                extra_socket_options=bool(
                    values["InBufferSize"]
                    or values["OutBufferSize"]
                    or not values["Linger"]
                    or (
                        values["KeepAlive"]
                        and (values["KeepAliveTime"] or values["KeepAliveInterval"])
                    )
                ),
            )
            quick_open = not (
                profile.proxy_protocol
                or profile.ssl_start_mode in (SSLStartMode.IMPLICIT, SSLStartMode.AUTOMATIC)
                or profile.keep_alive
                or profile.extra_socket_options
                or profile.idle_timeout
                or profile.read_idle
                or profile.write_idle
            )
            profile = self._profile = dataclasses.replace(profile, quick_open=quick_open)
        return profile

    def _access_allows(self, host: str) -> bool:
        if not self._allowed.matches(host):
            return False
        return self._blocked.empty or not self._blocked.matches(host)

    def _admit(self, protocol: TCPServerProtocol, host: str) -> bool:
        """
        Admission control for a connection whose real client is ``host``:
        ``False`` means refuse it now (counted, logged at most every
        REFUSAL_LOG_INTERVAL seconds), before any event or TLS work.
        """
        admission = self._admission
        reason = admission.admit(host, self.reactor.seconds())
        if reason is None:
            if admission.per_address:
                protocol._admitted = host
            return True
        self.stats[f"refused_{reason}"] += 1
        limit = (
            f"MaxConnectionsPerAddress={admission.per_address}"
            if reason == "per_address"
            else f"MaxAcceptRate={admission.rate}, "
            f"MaxAcceptRatePerAddress={admission.rate_per_address}"
        )
        self._log_refusal(limit, host)
        return False

    def _request_connection(
        self, protocol: TCPServerProtocol, host: str, port: int
    ) -> bool | Deferred[bool]:
        """Preset ``accept`` from the access lists and ask the listeners."""
        accept = self._access_allows(host)
        listeners = self._listeners["connection_request"]
        if not listeners:
            if not accept:
                self.stats["refused_access"] += 1
            return accept
        event = ConnectionRequest(host, port, accept)
        waiting = self._call_listeners("connection_request", listeners, event)
        if waiting is None:
            return self._count_decision(accept, event)
        return waiting.addCallback(lambda _: self._count_decision(accept, event))

    def _count_decision(self, preset: bool, event: ConnectionRequest) -> bool:
        decision = bool(event.accept)
        if not decision:
            self.stats["refused_access" if not preset else "refused_listener"] += 1
        return decision

    def _register(self, protocol: TCPServerProtocol) -> None:
        prefix = self.id_prefix
        connection_id = f"{prefix}{next(self._ids)}" if prefix else str(next(self._ids))
        protocol.connection_id = connection_id
        self._protocols[connection_id] = protocol
        self.stats["accepted"] += 1

    def _connection_lost(self, protocol: TCPServerProtocol) -> None:
        self._open -= 1
        if protocol._admitted is not None:
            self._admission.release(protocol._admitted)
        self._bytes_handed_closed += protocol._handed_total
        self._bytes_received_closed += protocol._rx_total
        if not protocol.connection_id:
            self._pending.discard(protocol)
            self._check_all_gone()

    def _unregister(self, protocol: TCPServerProtocol) -> None:
        self._protocols.pop(protocol.connection_id, None)
        if self._all_gone:
            self._check_all_gone()

    @property
    def bytes_received(self) -> int:
        """Bytes read from sockets so far (raw: encrypted under TLS)."""
        return self._bytes_received_closed + sum(
            p._rx_total for p in self._protocols.values() if p._lost is None
        )

    def bytes_handed(self) -> int:
        """Bytes handed to sockets (or to TLS) so far, by every connection."""
        return self._bytes_handed_closed + sum(
            p._handed_total for p in self._protocols.values() if p._lost is None
        )

    def events_fired(self) -> dict[str, int]:
        """How many events of each name reached listeners so far."""
        counts = dict(self._event_counts)
        if self._data_in_batched:
            counts["data_in"] = counts.get("data_in", 0) + self._data_in_batched
        return counts

    def snapshot(self) -> dict[str, Any]:
        """
        The server's counters now, as :meth:`TCPServer.stats
        <tcpserver.TCPServer.stats>` returns them and the metrics endpoint
        exports them (see there for the keys).
        """
        stats = self.stats
        protocols = self._protocols.values()
        return {
            "connections_open": len(self._protocols),
            "connections_pending": len(self._pending),
            "connections_accepted": stats["accepted"],
            "connections_paused": sum(
                1 for p in protocols if p._read_pauses & _USER_OR_FLOW and p._lost is None
            ),
            "refused": {reason: stats[f"refused_{reason}"] for reason in REFUSAL_REASONS},
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_handed(),
            "events": self.events_fired(),
            "handler_errors": stats["listener_errors"],
            "tls_handshakes": stats["tls_handshakes"],
            "tls_failures": stats["tls_failures"],
            "flow_control_pauses": stats["flow_pauses"],
        }

    def _live(self) -> list[TCPServerProtocol]:
        """Every connection not yet gone, registered or not."""
        return [*self._pending, *self._protocols.values()]

    def _check_all_gone(self) -> None:
        if not self._pending and not self._protocols and self._all_gone:
            waiting, self._all_gone = self._all_gone, []
            for d in waiting:
                d.callback(None)

    def _protocol_for(self, connection_id: str, what: str) -> TCPServerProtocol:
        try:
            return self._protocols[connection_id]
        except (KeyError, TypeError):
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID,
                f"{what}: no connection with id {connection_id!r}",
            ) from None

    def close_all(self, timeout: float | None = 10.0) -> Deferred[None]:
        """
        Close every connection: gracefully (queued data is sent first), then
        with a reset for whatever is still open after ``timeout`` seconds.

        :returns: a Deferred that fires once every connection is gone and its
            ``disconnected`` event has fired.
        """
        for protocol in self._live():
            if protocol._was_open and protocol._lost is None:
                # (a STARTTLS handshake in progress too: it had been open)
                if not protocol._closing:
                    protocol.disconnect()
            else:
                protocol._close(abort=True)
        if not self._pending and not self._protocols:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._all_gone.append(done)
        if timeout is not None:
            timer = self.reactor.callLater(timeout, self._abort_all)
            done.addBoth(_cancel_timer, timer)
        return done

    def _abort_all(self) -> None:
        for protocol in self._live():
            protocol._close(abort=True)

    # -- per-connection methods -------------------------------------------------------

    def send(self, connection_id: str, data: bytes) -> Deferred[None] | None:
        """
        Send bytes to a connection.

        :returns: ``None`` when the connection's ``timeout`` is 0; otherwise a
            Deferred that fires when the bytes are written (10060 if no
            progress for ``timeout`` seconds).
        :raises TCPServerError: 126 unknown/closed id; 135 queue full (see
            ``Connection.bytes_sent``).
        """
        try:
            protocol = self._protocols[connection_id]
        except (KeyError, TypeError):
            raise TCPServerError(
                errors.INVALID_CONNECTION_ID, f"send: no connection with id {connection_id!r}"
            ) from None
        if (
            protocol._corked
            and protocol._fast
            and type(data) is bytes
            and not protocol.send_timeout
        ):
            # TCPServerProtocol.send's own fast path, inlined for the most
            # common call there is: an answer from a data_in listener.
            size = len(data)
            protocol.bytes_sent = size
            cork = protocol._cork
            if cork is None:
                protocol._cork = [data]
            else:
                cork.append(data)
            protocol._cork_len += size
            if protocol._cork_len >= CORK_LIMIT:
                protocol._uncork()
            return None
        return protocol.send(data)

    def send_bytes(self, connection_id: str, data: bytes) -> Deferred[None] | None:
        """Same as :meth:`send` (the manual has both names)."""
        return self._protocol_for(connection_id, "send_bytes").send(data, "send_bytes")

    def send_text(self, connection_id: str, text: str) -> Deferred[None] | None:
        """Send ``text`` encoded with the ``CodePage`` setting (UTF-8 by default)."""
        return self._protocol_for(connection_id, "send_text").send(
            self._encode(text, "send_text"), "send_text"
        )

    def send_line(self, connection_id: str, text: str | bytes) -> Deferred[None] | None:
        """Send ``text`` followed by CRLF (``str`` is encoded with ``CodePage``)."""
        data = text if isinstance(text, bytes) else self._encode(text, "send_line")
        return self._protocol_for(connection_id, "send_line").send(data + b"\r\n", "send_line")

    def _encode(self, text: object, what: str) -> bytes:
        if not isinstance(text, str):
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{what} takes str, not {type(text).__name__}: {text!r:.60}",
            )
        try:
            return text.encode(self._codec)
        except UnicodeEncodeError as exc:
            raise TCPServerError(
                errors.INVALID_ARGUMENT,
                f"{what}: {text!r:.60} cannot be encoded with code page "
                f"{self._settings['CodePage']} ({self._codec}): {exc.reason}",
            ) from None

    def send_file(self, connection_id: str, path: str) -> Deferred[int]:
        """
        Stream a file to a connection through a producer (never read whole).

        :returns: a Deferred firing with the byte count once it is all sent.
        :raises TCPServerError: 126 unknown id; a 10xxx code if the file
            cannot be opened.
        """
        return self._protocol_for(connection_id, "send_file").send_file(path)

    def interrupt(self, connection_id: str) -> None:
        """Stop a ``send_file`` in progress; the connection stays open."""
        self._protocol_for(connection_id, "interrupt").interrupt()

    def disconnect(self, connection_id: str) -> None:
        """Close a connection (gracefully when ``linger`` is True)."""
        self._protocol_for(connection_id, "disconnect").disconnect()

    def pause_data(self, connection_id: str) -> None:
        """Hold back ``data_in`` (and stop reading) until :meth:`process_data`."""
        self._protocol_for(connection_id, "pause_data").pause_data()

    def process_data(self, connection_id: str) -> None:
        """Resume ``data_in`` after :meth:`pause_data`."""
        self._protocol_for(connection_id, "process_data").process_data()

    def change_record_length(self, connection_id: str, record_length: int) -> None:
        """Receive fixed-size records of ``record_length`` bytes (0: off)."""
        self._protocol_for(connection_id, "change_record_length").change_record_length(
            record_length
        )

    def change_length_prefix(
        self,
        connection_id: str,
        size: int,
        byteorder: str = "big",
        adjust: int = 0,
        strip: bool = True,
    ) -> None:
        """
        Receive length-prefixed frames from the next byte on: each starts
        with its length in ``size`` bytes (1, 2, 4 or 8; 0 turns it off),
        ``byteorder`` ``"big"`` or ``"little"``; the payload is ``length +
        adjust`` bytes; ``strip`` delivers it without the prefix.  Frames
        longer than ``MaxFrameLength`` fire ``error`` 907 and close the
        connection (or are skipped: ``SkipTooLongFrames``).

        :raises TCPServerError: 10022 for a bad size or byte order.
        """
        self._protocol_for(connection_id, "change_length_prefix").change_length_prefix(
            size, byteorder, adjust, strip
        )

    def send_frame(self, connection_id: str, data: bytes) -> Deferred[None] | None:
        """
        Send ``data`` with the connection's length prefix in front (see
        :meth:`change_length_prefix`), as :meth:`send` does.

        :raises TCPServerError: 10022 if the connection has no length prefix
            or ``data`` does not fit it.
        """
        protocol = self._protocol_for(connection_id, "send_frame")
        try:
            framed = protocol.framer.encode_prefixed(_as_frame_bytes(data))
        except ValueError as exc:
            raise TCPServerError(errors.INVALID_ARGUMENT, f"send_frame: {exc}") from None
        return protocol.send(framed)

    def start_ssl(self, connection_id: str) -> Deferred[None]:
        """
        Start TLS on a plaintext connection (STARTTLS; ``ssl_start_mode``
        EXPLICIT).  Undelivered plaintext received before it is discarded
        (``error`` 902); ``connected`` fires again after the handshake.

        :returns: a Deferred that fires when the handshake is done.
        :raises TCPServerError: 126 unknown id; 10045 if ``ssl_start_mode`` is
            NONE; 10022 if TLS is already on.
        """
        return self._protocol_for(connection_id, "start_ssl").start_ssl()

    def reset_settings(self) -> None:
        """Every property and config setting back to its default."""
        self._settings.reset()


def _cancel_timer(result: T, timer: IDelayedCall) -> T:
    if timer.active():
        timer.cancel()
    return result
