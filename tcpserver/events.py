"""Event payloads: one small slotted dataclass per event of the manual.

Listeners receive one of these objects.  Fields the manual marks as settable
(``accept``, ``certificate``) are plain attributes the listener assigns; the
rest are informational.  This module holds no behaviour and does no I/O.

Event names are the manual's in snake_case (``DataIn`` -> ``data_in``);
:data:`EVENT_NAMES` is the complete list and
:data:`EVENT_TYPES` maps each name to its payload class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tcpserver.certificates import Certificate

__all__ = [
    "EVENT_NAMES",
    "EVENT_TYPES",
    "Connected",
    "ConnectionRequest",
    "DataIn",
    "Disconnected",
    "Error",
    "Event",
    "Listener",
    "ReadyToSend",
    "SSLClientAuthentication",
    "SSLConnectionRequest",
    "SSLStatus",
]


@dataclass(slots=True)
class ConnectionRequest:
    """
    A client asks to connect (``ConnectionRequest``).

    :ivar address: the client's IP address (the real client's when the PROXY
        protocol is on).
    :ivar port: the client's TCP port.
    :ivar accept: preset by AllowedClients / BlockedClients; set it to
        ``False`` to refuse the connection.
    """

    address: str
    port: int
    accept: bool = True


@dataclass(slots=True)
class Connected:
    """
    A connection is established (``Connected``); with TLS, after the handshake.

    When a TLS handshake fails (implicit TLS or ``start_ssl``), ``connected``
    fires with the failure's code and description (276, 10054, 10060 ...),
    then ``error``; a connection that never opened gets no ``disconnected``.

    :ivar connection_id: the connection's id (a key of ``connections`` while
        it is open; not for a failed handshake of implicit TLS).
    :ivar status_code: ``0`` for a successful connection, else the failure.
    :ivar description: ``"OK"`` for a successful connection, else why not.
    """

    connection_id: str
    status_code: int = 0
    description: str = "OK"


@dataclass(slots=True)
class DataIn:
    """
    Data arrived (``DataIn``), framed as the connection's settings say.

    :ivar connection_id: the connection the data came from.
    :ivar text: the bytes, without the end-of-line terminator.
    :ivar eol: ``True`` when a terminator (or a whole record) ended ``text``;
        ``False`` for a line longer than ``max_line_length`` or the last bytes
        of a connection that closed mid-line.
    """

    connection_id: str
    text: bytes
    eol: bool


@dataclass(slots=True)
class Disconnected:
    """
    A connection closed (``Disconnected``).

    :ivar connection_id: the connection that closed.
    :ivar status_code: ``0`` for a clean close, otherwise the manual's code
        (``10054`` reset by peer, ``10060`` idle timeout, ...).
    :ivar description: ``"OK"`` or the code's description.
    """

    connection_id: str
    status_code: int = 0
    description: str = "OK"


@dataclass(slots=True)
class Error:
    """
    Something went wrong while handling a connection (``Error``).

    :ivar connection_id: the connection concerned (``""`` if none).
    :ivar error_code: the manual's error code (``900`` for a listener that
        raised).
    :ivar description: what happened.
    """

    connection_id: str
    error_code: int
    description: str


@dataclass(slots=True)
class ReadyToSend:
    """
    The connection can take data again (``ReadyToSend``): fired once after
    ``connected`` and again whenever a full send queue has drained.

    :ivar connection_id: the connection that can be written to.
    """

    connection_id: str


@dataclass(slots=True)
class SSLClientAuthentication:
    """
    The client presented (or failed to present) a certificate.

    :ivar connection_id: the connection concerned.
    :ivar cert_encoded: the client's certificate, PEM; ``b""`` if none.
    :ivar cert_subject: its subject distinguished name.
    :ivar cert_issuer: its issuer distinguished name.
    :ivar status: ``"OK"`` or why verification failed.
    :ivar accept: preset to the chain-verification result; set it to
        ``False`` to close the connection, ``True`` to accept anyway.
    """

    connection_id: str
    cert_encoded: bytes
    cert_subject: str
    cert_issuer: str
    status: str
    accept: bool


@dataclass(slots=True)
class SSLConnectionRequest:
    """
    A TLS ClientHello arrived; a listener may choose the certificate.

    :ivar connection_id: the connection concerned.
    :ivar server_name: the SNI host name the client asked for (may be ``""``).
    :ivar supported_cipher_suites: comma-separated cipher suites the client
        offers, where OpenSSL exposes them.
    :ivar supported_signature_algs: comma-separated signature algorithms the
        client offers, where OpenSSL exposes them.
    :ivar certificate: set to a :class:`~tcpserver.tls.Certificate` to serve
        this connection with it instead of ``ssl_cert``.
    """

    connection_id: str
    server_name: str
    supported_cipher_suites: str = ""
    supported_signature_algs: str = ""
    certificate: Certificate | None = None


@dataclass(slots=True)
class SSLStatus:
    """
    Progress of a TLS handshake, for logging (``SSLStatus``).

    :ivar connection_id: the connection concerned.
    :ivar message: a human-readable status line.
    """

    connection_id: str
    message: str


Event = (
    ConnectionRequest
    | Connected
    | DataIn
    | Disconnected
    | Error
    | ReadyToSend
    | SSLClientAuthentication
    | SSLConnectionRequest
    | SSLStatus
)

#: A listener: called with the event; it may return ``None``, a
#: :class:`~twisted.internet.defer.Deferred` or a coroutine.
Listener = Callable[[Any], Any]

EVENT_TYPES: dict[str, type] = {
    "connection_request": ConnectionRequest,
    "connected": Connected,
    "data_in": DataIn,
    "disconnected": Disconnected,
    "error": Error,
    "ready_to_send": ReadyToSend,
    "ssl_client_authentication": SSLClientAuthentication,
    "ssl_connection_request": SSLConnectionRequest,
    "ssl_status": SSLStatus,
}

#: Every event name ``on()`` accepts, in the manual's order.
EVENT_NAMES: tuple[str, ...] = tuple(EVENT_TYPES)
