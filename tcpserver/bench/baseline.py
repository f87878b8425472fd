"""The plain Twisted baseline (``python -m tcpserver.bench baseline``).

A ``LineReceiver`` that sends every line back with ``sendLine`` - what one
writes by hand with Twisted - served with ``listenTCP``, or ``listenSSL``
with ``--tls``.  TCP_NODELAY is on, as in the tcpserver bench server.
"""

from __future__ import annotations

import argparse
import sys

from tcpserver.bench.serve import raise_fd_limit


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpserver.bench baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args(argv)
    raise_fd_limit()
    from twisted.internet import epollreactor

    epollreactor.install()
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import LineReceiver

    class LineEcho(LineReceiver):
        delimiter = b"\n"
        MAX_LENGTH = 1 << 20

        def connectionMade(self) -> None:
            self.transport.setTcpNoDelay(True)  # type: ignore[union-attr]

        def lineReceived(self, line: bytes) -> None:
            self.sendLine(line)

    factory = protocol.ServerFactory()
    factory.protocol = LineEcho
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
    reactor.run()
    return 0
