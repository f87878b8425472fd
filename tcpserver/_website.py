"""
A small HTTP site on a Twisted endpoint string, as a service - what
``--metrics`` and ``--health`` both are: listen when started (logging the
port, or why not), stop listening when stopped.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.web.resource import Resource
from typing_extensions import override

__all__ = ["SiteService"]

_log = Logger()


class SiteService(service.Service):
    """
    Serves the resource :meth:`resource` makes on ``endpoint``.

    :param reactor: the reactor to listen with.
    :param endpoint: a Twisted server endpoint string (``tcp:9100``).
    :param what: how the log names the site (``metrics``, ``health check``).
    """

    def __init__(self, reactor: Any, endpoint: str, what: str) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.what = what
        self.port: Any = None

    def resource(self) -> Resource:
        """The site's root resource (made when the service starts)."""
        raise NotImplementedError

    @override
    def startService(self) -> None:
        super().startService()
        from twisted.internet.endpoints import serverFromString
        from twisted.web.server import Site

        site = Site(self.resource())
        site.noisy = False
        site.log = lambda request: None  # type: ignore[method-assign]  # (no access log)
        listening: Deferred[Any] = serverFromString(self.reactor, self.endpoint).listen(site)

        def listened(port: Any) -> None:
            self.port = port
            _log.info(
                "tcpserver {what} on {endpoint} (port {port})",
                what=self.what,
                endpoint=self.endpoint,
                port=getattr(port.getHost(), "port", ""),
            )

        def failed(failure: Any) -> None:
            _log.error(
                "tcpserver: cannot serve the {what} on {endpoint}: {error}",
                what=self.what,
                endpoint=self.endpoint,
                error=failure.getErrorMessage(),
            )

        listening.addCallbacks(listened, failed)

    @override
    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self.port is None:
            return succeed(None)
        port, self.port = self.port, None
        result = port.stopListening()
        return result if isinstance(result, Deferred) else succeed(None)
