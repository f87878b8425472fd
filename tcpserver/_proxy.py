"""PROXY protocol v1/v2 headers, read before anything else on a connection.

With ``ProxyProtocol`` on, a connection's first bytes must be a PROXY header
from a ``TrustedProxies`` address.  The header is parsed by Twisted's own
parsers (``twisted.protocols.haproxy``); the client address it names then
becomes the connection's ``remote_host``/``remote_port`` *before*
``connection_request`` fires, so access lists, listeners and logs all see
the real client.  (Twisted's ``HAProxyWrappingFactory`` learns it only
after the connection is made.)  A missing, malformed or untrusted header
closes that connection, fires ``error`` and counts in
``stats["refused_proxy"]``.  Bytes after the header are the connection's
own (plaintext or TLS), replayed once the connection is accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tcpserver import errors
from tcpserver.events import Error

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from tcpserver.protocol import TCPServerProtocol

__all__ = ["ProxyHeaderReader"]

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: the longest v1 header; v2 headers say their length (at most 16 + 65535)
V1_MAX = 107


def _parsers() -> tuple[Any, Any, type[Exception]]:
    from twisted.protocols.haproxy._exceptions import InvalidProxyHeader
    from twisted.protocols.haproxy._v1parser import V1Parser
    from twisted.protocols.haproxy._v2parser import V2Parser

    return V1Parser, V2Parser, InvalidProxyHeader


class ProxyHeaderReader:
    """The raw-bytes hook of a connection until its PROXY header is read."""

    __slots__ = ("_buffer", "_owner", "_pending", "_timer")

    def __init__(self, owner: TCPServerProtocol) -> None:
        self._owner = owner
        self._buffer = b""
        self._pending = b""
        self._timer: Any = None

    def start(self) -> None:
        """Check where the connection comes from; read the header next."""
        owner = self._owner
        if not owner.factory._trusted_proxies.matches(owner.remote_host):
            self._refuse(
                errors.ACCESS_DENIED,
                f"PROXY header expected from a TrustedProxies address, but "
                f"{owner.remote_host} is not one",
            )
            return
        owner._raw_hook = self.feed
        timeout = owner._profile.proxy_timeout
        if timeout:
            self._timer = owner._clock.callLater(timeout, self._timed_out, timeout)

    def _timed_out(self, timeout: float) -> None:
        self._timer = None
        owner = self._owner
        if owner._lost is None and owner._raw_hook == self.feed:
            self._refuse(
                errors.PROXY_HEADER_TIMEOUT,
                f"no complete PROXY header within {timeout}s (ProxyHeaderTimeout)",
            )

    def _stop_timer(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        self._buffer = buffer
        v1, v2 = buffer.startswith(V1_PREFIX), buffer.startswith(V2_SIGNATURE)
        if not (v1 or v2):
            if V1_PREFIX.startswith(buffer[:6]) or V2_SIGNATURE.startswith(buffer[:12]):
                return  # (a prefix of either: wait for more)
            self._malformed(f"the connection does not start with one: {buffer[:16]!r}")
            return
        v1_parser, v2_parser, invalid = _parsers()
        if v2 and len(buffer) < 16:
            return
        if v1 and b"\r\n" not in buffer[:V1_MAX]:
            if len(buffer) >= V1_MAX:
                self._malformed(f"a v1 header longer than {V1_MAX} bytes: {buffer[:40]!r}...")
            return
        try:
            info, rest = (v1_parser() if v1 else v2_parser()).feed(buffer)
        except invalid as exc:
            self._malformed(f"an invalid v{1 if v1 else 2} header ({type(exc).__name__})")
            return
        except Exception as exc:  # noqa: BLE001 - anything the parser chokes on
            self._malformed(f"an invalid v{1 if v1 else 2} header ({exc!r})")
            return
        if info is None:
            return  # a v2 header not complete yet
        self._buffer = b""
        self._stop_timer()
        self._accept(info, rest or b"")

    def _accept(self, info: Any, rest: bytes) -> None:
        owner = self._owner
        source = info.source
        host = getattr(source, "host", None)
        if host is None:  # LOCAL/UNKNOWN: the proxy itself (a health check)
            host, port = owner.remote_host, owner.remote_port
        else:
            port = int(getattr(source, "port", 0) or 0)
            if isinstance(host, bytes):
                host = host.decode("ascii")
        self._pending = rest
        owner._raw_hook = self._hold
        decision: Deferred[Any] | None = owner._peer_known(str(host), port)
        if decision is None:
            self._replay()
        else:
            decision.addCallback(self._replay_after)

    def _replay_after(self, result: object) -> object:
        self._replay()
        return result

    def _hold(self, data: bytes) -> None:
        """More bytes while connection_request decides: kept for later."""
        self._pending += data

    def _replay(self) -> None:
        owner = self._owner
        if owner._raw_hook == self._hold:
            owner._raw_hook = None
        data, self._pending = self._pending, b""
        if data and owner._lost is None and owner.connection_id:  # (accepted)
            hook = owner._raw_hook
            if hook is not None:
                hook(data)  # TLS (or its detection)
            else:
                owner.dataReceived(data, True)

    def _malformed(self, why: str) -> None:
        self._refuse(errors.PEER_PROTOCOL_ERROR, f"bad PROXY protocol header: {why}")

    def _refuse(self, code: int, description: str) -> None:
        self._stop_timer()
        owner = self._owner
        factory = owner.factory
        factory.stats["refused_proxy"] += 1
        owner._raw_hook = None
        owner._log.info(
            "PROXY protocol: closing a connection from {peer}: {description}",
            peer=owner.remote_host,
            description=description,
        )
        factory._dispatch("error", Error("", code, description))
        owner._refuse_now()
