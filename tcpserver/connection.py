"""The public per-connection view: ``server.connections[connection_id]``.

:class:`Connection` is the manual's Connection type.  It holds no state of
its own; every field reads from or writes to the connection's
:class:`~tcpserver.protocol.TCPServerProtocol` and its framer, so settable
fields apply at once - to the very next byte when set inside a ``data_in``
listener.  Values are validated like the defaults they mirror.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from tcpserver.settings import lookup

if TYPE_CHECKING:
    from tcpserver._proxy import ProxyInfo
    from tcpserver.protocol import TCPServerProtocol

__all__ = ["Connection", "ConnectionMap"]


class Connection:
    """
    One entry of ``server.connections``: the manual's Connection type.

    Settable fields (``eol``, ``single_line_mode``, ``max_line_length``,
    ``idle_timeout``, ``timeout``, ``user_data``) apply to the connection at
    once - to the very next byte when set inside a ``data_in`` listener.
    """

    __slots__ = ("_protocol",)

    def __init__(self, protocol: TCPServerProtocol) -> None:
        self._protocol = protocol

    def __repr__(self) -> str:
        p = self._protocol
        return (
            f"<Connection {p.connection_id!r} {p.remote_host}:{p.remote_port}"
            f"{'' if self.connected else ' closed'}>"
        )

    @property
    def connection_id(self) -> str:
        """The id the server gave this connection (unique, never reused)."""
        return self._protocol.connection_id

    @property
    def connected(self) -> bool:
        """Whether the connection is still open."""
        return self._protocol.is_connected

    @property
    def accept_data(self) -> bool:
        """False while :meth:`~tcpserver.TCPServer.pause_data` holds ``data_in`` back."""
        return self._protocol.accept_data

    @property
    def bytes_sent(self) -> int:
        """Bytes of the last send that were accepted (see 135)."""
        return self._protocol.bytes_sent

    @property
    def ready_to_send(self) -> bool:
        """False after a 135 or above the high-water mark, until ``ready_to_send`` fires."""
        return self._protocol.ready_to_send

    @property
    def remote_host(self) -> str:
        """The client's IP address."""
        return self._protocol.remote_host

    @property
    def remote_port(self) -> int:
        """The client's TCP port."""
        return self._protocol.remote_port

    @property
    def local_address(self) -> str:
        """The local IP address the connection came in on."""
        return self._protocol.local_address

    @property
    def record_length(self) -> int:
        """Current record length (change it with ``change_record_length``)."""
        return self._protocol.framer.record_length

    @property
    def proxy_info(self) -> ProxyInfo | None:
        """
        What the PROXY protocol header said (addresses, and for v2 the TLVs:
        ALPN, authority, TLS details, unique id...); ``None`` without one.
        """
        return self._protocol.proxy_info

    @property
    def length_prefix(self) -> int:
        """Length-prefix size in bytes, 0 when off (change it with ``change_length_prefix``)."""
        return self._protocol.framer.length_prefix

    @property
    def eol(self) -> bytes:
        """End-of-line bytes splitting this connection's data (empty: none)."""
        return self._protocol.framer.eol

    @eol.setter
    def eol(self, value: bytes | str) -> None:
        self._protocol.framer.eol = _coerce("DefaultEOL", value)

    @property
    def single_line_mode(self) -> bool:
        """Split on CR, LF or CRLF."""
        return self._protocol.framer.single_line_mode

    @single_line_mode.setter
    def single_line_mode(self, value: bool) -> None:
        self._protocol.framer.single_line_mode = _coerce("DefaultSingleLineMode", value)

    @property
    def max_line_length(self) -> int:
        """Bytes buffered waiting for an end-of-line (minimum 256)."""
        return self._protocol.framer.max_line_length

    @max_line_length.setter
    def max_line_length(self, value: int) -> None:
        self._protocol.framer.max_line_length = _coerce("DefaultMaxLineLength", value)

    @property
    def idle_timeout(self) -> float:
        """Seconds without traffic before the connection is closed (0: never)."""
        return self._protocol.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float) -> None:
        self._protocol.set_idle_timeout(_coerce("DefaultIdleTimeout", value))

    @property
    def timeout(self) -> float:
        """Send timeout: 0 = a full queue raises 135; > 0 = sends return Deferreds."""
        return self._protocol.send_timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._protocol.send_timeout = _coerce("DefaultTimeout", value)

    @property
    def user_data(self) -> Any:
        """Anything the application wants to keep with the connection."""
        return self._protocol.user_data

    @user_data.setter
    def user_data(self, value: Any) -> None:
        self._protocol.user_data = value

    @property
    def queued_bytes(self) -> int:
        """Outgoing bytes waiting in tcpserver's queue (beyond the transport's)."""
        return self._protocol.queued

    @property
    def tls_active(self) -> bool:
        """Whether TLS is up on this connection (after its handshake)."""
        return self._protocol.tls_active

    @property
    def protocol(self) -> TCPServerProtocol:
        """The Twisted protocol behind this connection (for advanced use)."""
        return self._protocol


def _coerce(setting_name: str, value: object) -> Any:
    """Validate a per-connection field like the default it mirrors."""
    return lookup(setting_name).coerce(value)


class ConnectionMap(Mapping[str, Connection]):
    """Read-only ``connection_id -> Connection`` view of the live connections."""

    __slots__ = ("_protocols",)

    def __init__(self, protocols: Mapping[str, TCPServerProtocol]) -> None:
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
