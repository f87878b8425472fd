"""The per-connection methods of the factory and the server, made once.

Every per-connection method of the manual (``send``, ``disconnect``,
``pause_data``...) is written once, on
:class:`~tcpserver.protocol.TCPServerProtocol`.  :class:`ConnectionMethods`
turns each into a method taking the connection id first - looking the
connection up in the owner's :class:`~tcpserver.table.ConnectionTable`
(126 for an unknown id) - and both
:class:`~tcpserver.factory.TCPServerFactory` and
:class:`~tcpserver.server.TCPServer` inherit them: one list (the class body
below), no copy per class.  ``send`` is the hot path (an answer per line):
it is :func:`send_by_id`, the send fast path, one
call from the listener to the socket.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from twisted.internet.defer import Deferred

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.outbound import Outbound
from tcpserver.protocol import TCPServerProtocol
from tcpserver.table import ConnectionTable

__all__ = ["CONNECTION_METHODS", "ConnectionMethods", "connection_method", "send_by_id"]

P = ParamSpec("P")
R = TypeVar("R")


class Sender(Protocol):
    """A connection, as :func:`send_by_id` finds it."""

    outbound: Outbound | None

    def out(self) -> Outbound:
        """The connection's Outbound (made on first use)."""


class Connections(Protocol):
    """The owner of ``send(connection_id, data)``: its connections by id."""

    @property
    def by_id(self) -> Mapping[str, Sender]:
        """The open connections."""


def send_by_id(owner: Connections, connection_id: str, data: object, /) -> Deferred[None] | None:
    """
    Send bytes to the connection ``connection_id`` of ``owner``.

    :returns: ``None`` when the connection's ``timeout`` is 0; otherwise a
        Deferred that fires when the bytes are written (10060 if no
        progress for ``timeout`` seconds).
    :raises TCPServerError: 126 unknown/closed id; 135 queue full (see
        ``Connection.bytes_sent``); 10022 if ``data`` is not bytes.
    """
    try:
        connection = owner.by_id[connection_id]
    except (KeyError, TypeError):
        raise TCPServerError(
            errors.INVALID_CONNECTION_ID, f"send: no connection with id {connection_id!r}"
        ) from None
    out = connection.outbound  # (made with the first bytes read)
    if out is None:
        out = connection.out()
    if out.fast and type(data) is bytes:
        # the fast path: sends taken, untimed, nothing queued, parked, held
        # or pushed back - corked in a read batch, else written at once
        out.bytes_sent = len(data)
        out.emit(data)
        return None
    return out.send(data)


class HasTable(Protocol):
    """An owner of per-connection methods: it has a connection table."""

    table: ConnectionTable[TCPServerProtocol]


def connection_method(
    target: Callable[Concatenate[TCPServerProtocol, P], R],
) -> Callable[Concatenate[HasTable, str, P], R]:
    """``target`` (a protocol method) as a method taking the connection id first."""
    name = target.__name__

    def method(self: HasTable, connection_id: str, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return target(self.table.get(connection_id, name), *args, **kwargs)

    _describe(method, target)
    return method


def _describe(method: Callable[..., object], target: Callable[..., object]) -> None:
    """Name, docstring and signature of ``target``, with ``connection_id`` first."""
    method.__name__ = method.__qualname__ = target.__name__
    method.__doc__ = target.__doc__
    signature = inspect.signature(target)
    parameters = list(signature.parameters.values())
    connection_id = inspect.Parameter(
        "connection_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="str"
    )
    method.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[parameters[0], connection_id, *parameters[1:]]
    )


class ConnectionMethods:
    """
    The manual's per-connection methods, connection id first.  Each one
    raises :class:`~tcpserver.errors.TCPServerError` 126 for an unknown or
    closed connection id, then does what the protocol method of the same
    name does (its documentation follows).
    """

    table: ConnectionTable[TCPServerProtocol]
    #: the table's connections by id (what ``send`` looks up)
    by_id: dict[str, TCPServerProtocol]

    send = send_by_id
    send_bytes = connection_method(TCPServerProtocol.send_bytes)
    send_text = connection_method(TCPServerProtocol.send_text)
    send_line = connection_method(TCPServerProtocol.send_line)
    send_frame = connection_method(TCPServerProtocol.send_frame)
    send_file = connection_method(TCPServerProtocol.send_file)
    interrupt = connection_method(TCPServerProtocol.interrupt)
    disconnect = connection_method(TCPServerProtocol.disconnect)
    pause_data = connection_method(TCPServerProtocol.pause_data)
    process_data = connection_method(TCPServerProtocol.process_data)
    change_record_length = connection_method(TCPServerProtocol.change_record_length)
    change_length_prefix = connection_method(TCPServerProtocol.change_length_prefix)
    start_ssl = connection_method(TCPServerProtocol.start_ssl)


#: The names of the per-connection methods (the class body above is the list).
CONNECTION_METHODS: tuple[str, ...] = tuple(
    name for name in vars(ConnectionMethods) if not name.startswith("_") and name != "table"
)
