"""tcpserver: a production-grade, pluggable TCP/TLS server built on Twisted.

Public names::

    from tcpserver import TCPServer, TCPServerFactory, TCPServerError
    from tcpserver import Certificate, CertStoreType, SSLStartMode

:class:`TCPServer` is the manual's class (properties, methods, events,
``config()``, the listening port); :class:`TCPServerFactory` is the Twisted
factory behind it, usable with any endpoint.
"""

from tcpserver._proxy import ProxyInfo
from tcpserver._version import __version__
from tcpserver.certificates import Certificate, CertStoreType
from tcpserver.connection import Connection
from tcpserver.errors import TCPServerError
from tcpserver.events import EVENT_NAMES
from tcpserver.factory import TCPServerFactory
from tcpserver.server import TCPServer
from tcpserver.settings import SSLStartMode

__all__ = [
    "EVENT_NAMES",
    "CertStoreType",
    "Certificate",
    "Connection",
    "ProxyInfo",
    "SSLStartMode",
    "TCPServer",
    "TCPServerError",
    "TCPServerFactory",
    "__version__",
]
