"""Socket options of accepted connections, and their peer addresses as the manual shows them.

KeepAlive (with KeepAliveTime / KeepAliveInterval), In/OutBufferSize,
Linger and TcpNoDelay are applied to each accepted socket here; the
listening socket's options belong to :mod:`tcpserver.server`.  No state.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from typing import Any

from twisted.internet import interfaces
from twisted.logger import Logger

from tcpserver.access import canonical_host

__all__ = ["MAX_KEEPALIVE_SECONDS", "apply_socket_options", "keepalive_seconds", "peer_address"]

_log = Logger()


def peer_address(address: object) -> tuple[str, int]:
    """
    ``(host, port)`` of a Twisted address (``getPeer()``, ``getHost()``), the
    host in :func:`~tcpserver.access.canonical_host` spelling:
    ``::ffff:10.1.2.3`` (an IPv4 client of a dual-stack socket) is
    ``10.1.2.3``.  A UNIX socket address is ``("", 0)``.
    """
    host = str(getattr(address, "host", "") or "")
    return canonical_host(host), int(getattr(address, "port", 0) or 0)


def apply_socket_options(
    transport: Any,
    settings: Mapping[str, Any],
    tcp_nodelay: bool,
    keep_alive: bool,
    extra: bool,
    linger: bool,
    connection_id: str,
) -> None:
    """
    Set TCP_NODELAY / SO_KEEPALIVE through the transport (any transport
    that has ``setTcpNoDelay`` / ``setTcpKeepAlive``), and - when ``extra`` -
    KeepAliveTime/Interval, buffer sizes and SO_LINGER on its socket.  A
    socket that refuses an option is logged, not fatal.
    """
    try:
        if tcp_nodelay and hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
        if keep_alive and hasattr(transport, "setTcpKeepAlive"):
            transport.setTcpKeepAlive(True)
        if not extra:
            return
        system = interfaces.ISystemHandle(transport, None)
        handle = system.getHandle() if system is not None else None
        if isinstance(handle, socket.socket):
            _set_extra(handle, settings, linger)
    except OSError as exc:
        _log.warn("could not set socket options on {cid}: {error}", cid=connection_id, error=exc)


#: the largest TCP_KEEPIDLE / TCP_KEEPINTVL Linux takes (seconds)
MAX_KEEPALIVE_SECONDS = 32767


def keepalive_seconds(milliseconds: int) -> int:
    """
    KeepAliveTime / KeepAliveInterval (milliseconds, the manual's unit) as
    the whole seconds the kernel takes: rounded up, so 1500 ms probes after
    2 s rather than 1 s, and at most :data:`MAX_KEEPALIVE_SECONDS`.
    """
    return min(MAX_KEEPALIVE_SECONDS, max(1, -(-milliseconds // 1000)))


def _set_extra(handle: socket.socket, settings: Mapping[str, Any], linger: bool) -> None:
    """KeepAliveTime/Interval, In/OutBufferSize and Linger on one socket."""
    if settings["KeepAlive"]:
        idle = settings["KeepAliveTime"]
        interval = settings["KeepAliveInterval"]
        if idle and hasattr(socket, "TCP_KEEPIDLE"):
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepalive_seconds(idle))
        if interval and hasattr(socket, "TCP_KEEPINTVL"):
            handle.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, keepalive_seconds(interval))
    if settings["InBufferSize"]:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, settings["InBufferSize"])
    if settings["OutBufferSize"]:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, settings["OutBufferSize"])
    if not linger:
        handle.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
