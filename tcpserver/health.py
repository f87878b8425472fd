"""
A health check a load balancer can use: ``--health tcp:8081`` serves HTTP
``GET /`` with ``200 ok`` while the server accepts connections and ``503
draining`` otherwise - from the moment a drain begins (SIGTERM, or
``shutdown()``), so new connections go elsewhere while the open ones
finish.  HAProxy::

    backend back
        option httpchk GET /
        http-check expect status 200
        server s1 10.0.0.1:9000 check port 8081 inter 500ms fall 1 rise 2 send-proxy-v2

The endpoint stops listening as the service stops, so a check that cannot
even connect fails too.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request
from typing_extensions import override

from tcpserver._website import SiteService
from tcpserver.server import TCPServer

__all__ = ["HealthResource", "HealthService"]


class HealthResource(Resource):
    """``200 ok`` while ``server`` listens, ``503 draining`` otherwise (every path)."""

    isLeaf = True

    def __init__(self, server: TCPServer) -> None:
        super().__init__()
        self.tcp_server = server  # (Resource has a "server" of its own)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"cache-control", b"no-store")
        if self.tcp_server.listening:
            return b"ok\n"
        request.setResponseCode(503)
        return b"draining\n"

    render_HEAD = render_GET


class HealthService(SiteService):
    """Serves :class:`HealthResource` on a Twisted endpoint string."""

    name = "tcpserver-health"

    def __init__(self, server: TCPServer, endpoint: str) -> None:
        super().__init__(server.reactor, endpoint, "health check")
        self.server = server

    @override
    def resource(self) -> HealthResource:
        return HealthResource(self.server)
