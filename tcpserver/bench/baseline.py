"""The plain Twisted baseline (``python -m tcpserver.bench baseline``).

A ``LineReceiver`` that sends every line back with ``sendLine`` - what one
writes by hand with Twisted - served with ``listenTCP``, or ``listenSSL``
with ``--tls``.  TCP_NODELAY is on, as in the tcpserver bench server.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tcpserver.bench.sample import profiled
from tcpserver.bench.serve import server_arguments

if TYPE_CHECKING:
    from twisted.internet.protocol import ServerFactory


def line_echo_factory() -> ServerFactory:
    """
    The baseline's factory: a ``LineReceiver`` (delimiter ``\\n``, lines up
    to 1 MiB) that sends every line back with ``sendLine``, TCP_NODELAY on.
    """
    from twisted.internet.protocol import ServerFactory
    from twisted.protocols.basic import LineReceiver

    class LineEcho(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 1 << 20

        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]

        def lineReceived(self, line: bytes) -> None:
            self.sendLine(line)

    factory = ServerFactory()
    factory.protocol = LineEcho
    return factory


def main(argv: list[str] | None = None) -> int:
    args = server_arguments("python -m tcpserver.bench baseline", argv)
    from twisted.internet import reactor

    factory = line_echo_factory()
    if args.tls:
        from twisted.internet import ssl

        cert_path, key_path = args.tls
        with open(cert_path, "rb") as cert, open(key_path, "rb") as key:
            options = ssl.PrivateCertificate.loadPEM(cert.read() + b"\n" + key.read()).options()
        reactor.listenSSL(  # type: ignore[attr-defined]
            args.port, factory, options, backlog=args.backlog, interface="127.0.0.1"
        )
    else:
        reactor.listenTCP(args.port, factory, backlog=args.backlog, interface="127.0.0.1")
    print(f"plain Twisted echo on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
    with profiled(args.profile, args.profile_interval):
        reactor.run()
    return 0
