"""Prometheus metrics (``twistd tcpserver --metrics tcp:9100``).

Served over HTTP at ``/metrics`` (any path answers) by Twisted's web
server, with ``prometheus-client`` - the optional ``metrics`` extra
(``pip install 'tcpserver[metrics]'``).  Values are read from the server's
counters when scraped; nothing is counted per line beyond plain integer
additions.

======================================  ========================================
metric                                  meaning
======================================  ========================================
tcpserver_connections_open              connections accepted and not yet closed
tcpserver_connections_paused            open connections whose reading is paused
tcpserver_connections_accepted_total    connections accepted
tcpserver_connections_refused_total     refused, by ``reason``: max_connections,
                                        per_address, rate, access, listener,
                                        emfile, proxy
tcpserver_received_bytes_total          bytes read from sockets (TLS: encrypted)
tcpserver_sent_bytes_total              bytes handed to sockets (or TLS)
tcpserver_events_total                  events fired, by ``event``
tcpserver_handler_errors_total          listeners that raised or failed
tcpserver_tls_handshakes_total          TLS handshakes completed
tcpserver_tls_failures_total            TLS handshakes that failed
tcpserver_flow_control_pauses_total     times a send queue passed its high-water
                                        mark (reading paused)
======================================  ========================================

The numbers are those of :meth:`tcpserver.TCPServer.stats`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from typing_extensions import override

from tcpserver._website import SiteService

if TYPE_CHECKING:
    from tcpserver.server import TCPServer

__all__ = ["MetricsService", "check_available", "collector"]


def check_available() -> None:
    """:raises ImportError: with how to install it, if prometheus-client is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise ImportError(
            "metrics need prometheus-client: pip install 'tcpserver[metrics]'"
        ) from None


def collector(server: TCPServer) -> Any:
    """A prometheus-client collector reading ``server``'s counters when scraped."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> Iterator[Any]:
            stats = server.stats()
            yield GaugeMetricFamily(
                "tcpserver_connections_open",
                "Connections accepted and not yet closed.",
                value=stats["connections_open"],
            )
            yield GaugeMetricFamily(
                "tcpserver_connections_paused",
                "Open connections whose reading is paused (pause_data or flow control).",
                value=stats["connections_paused"],
            )
            yield CounterMetricFamily(
                "tcpserver_connections_accepted",
                "Connections accepted.",
                value=stats["connections_accepted"],
            )
            refused = CounterMetricFamily(
                "tcpserver_connections_refused", "Connections refused.", labels=["reason"]
            )
            for reason, count in stats["refused"].items():
                refused.add_metric([reason], count)
            yield refused
            yield CounterMetricFamily(
                "tcpserver_received_bytes",
                "Bytes read from sockets.",
                value=stats["bytes_received"],
            )
            yield CounterMetricFamily(
                "tcpserver_sent_bytes", "Bytes handed to sockets.", value=stats["bytes_sent"]
            )
            events = CounterMetricFamily("tcpserver_events", "Events fired.", labels=["event"])
            for name, count in sorted(stats["events"].items()):
                events.add_metric([name], count)
            yield events
            yield CounterMetricFamily(
                "tcpserver_handler_errors",
                "Listeners that raised or failed.",
                value=stats["handler_errors"],
            )
            yield CounterMetricFamily(
                "tcpserver_tls_handshakes",
                "TLS handshakes completed.",
                value=stats["tls_handshakes"],
            )
            yield CounterMetricFamily(
                "tcpserver_tls_failures", "TLS handshakes that failed.", value=stats["tls_failures"]
            )
            yield CounterMetricFamily(
                "tcpserver_flow_control_pauses",
                "Times a send queue passed its high-water mark.",
                value=stats["flow_control_pauses"],
            )

    return Collector()


class MetricsService(SiteService):
    """
    Serves ``server``'s metrics as Prometheus text over HTTP on ``endpoint``
    (a Twisted endpoint string such as ``tcp:9100:interface=127.0.0.1``).
    """

    name = "tcpserver-metrics"

    def __init__(self, server: TCPServer, endpoint: str) -> None:
        check_available()
        super().__init__(server.reactor, endpoint, "metrics")
        self.server = server

    @override
    def resource(self) -> Any:
        from prometheus_client import CollectorRegistry
        from prometheus_client.twisted import MetricsResource

        registry = CollectorRegistry()
        registry.register(collector(self.server))
        return MetricsResource(registry=registry)
