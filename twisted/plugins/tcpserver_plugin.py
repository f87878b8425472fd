"""The ``tcpserver`` twistd plugin (``twistd -n tcpserver --help``).

This file lives in the ``twisted/plugins`` namespace directory, without an
``__init__.py``, so Twisted's plugin system finds it next to its own.
"""

from twisted.application.service import ServiceMaker

tcpserver = ServiceMaker(
    "tcpserver",
    "tcpserver.tap",
    "A pluggable TCP/TLS server: events to a handler module (echo by default)",
    "tcpserver",
)
