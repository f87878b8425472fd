"""The benchmark echo server (``python -m tcpserver.bench serve``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tcpserver.bench.sample import DEFAULT_INTERVAL_MS, interval_ms, profiled


def raise_fd_limit() -> None:
    """Let the process open as many sockets as the hard limit allows (idle runs)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def build_server(port: int, tls: tuple[str, str] | None, backlog: int) -> object:
    """A TCPServer that echoes every line, as the benchmark contract says."""
    from tcpserver import Certificate, CertStoreType, SSLStartMode, TCPServer

    server = TCPServer(
        local_host="127.0.0.1",
        local_port=port,
        default_eol=b"\n",
        default_max_line_length=1 << 20,  # lines up to 4 KiB must come whole
        connection_backlog=backlog,
    )
    server.config("MaxConnections=100000")
    server.config("TcpNoDelay=True")
    if tls is not None:
        cert, key = tls
        with open(cert, "rb") as c, open(key, "rb") as k:
            blob = c.read() + b"\n" + k.read()
        server.ssl_cert = Certificate(CertStoreType.PEM_KEY_BLOB, blob)
        server.ssl_start_mode = SSLStartMode.IMPLICIT
    send = server.send

    def echo_line(event: object) -> None:
        send(event.connection_id, event.text + b"\n")  # type: ignore[attr-defined]

    server.on("data_in", echo_line)
    return server


def server_arguments(prog: str, argv: list[str] | None) -> argparse.Namespace:
    """``--port``, ``--tls CERT KEY``, ``--backlog``, ``--profile FILE``
    (both bench servers take them); raises the fd limit and installs the
    epoll reactor."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--backlog", type=int, default=4096)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="sample where the server's CPU goes; the report is written here when it stops",
    )
    parser.add_argument(
        "--profile-interval",
        metavar="MS",
        type=interval_ms,
        default=DEFAULT_INTERVAL_MS,
        help=f"milliseconds of CPU between two samples (default {DEFAULT_INTERVAL_MS:g})",
    )
    args = parser.parse_args(argv)
    if args.profile is not None:
        try:
            Path(args.profile).write_text("")
        except OSError as exc:
            parser.error(f"--profile {args.profile!r}: cannot write it ({exc.strerror})")
    raise_fd_limit()
    from twisted.internet import epollreactor

    epollreactor.install()
    return args


def main(argv: list[str] | None = None) -> int:
    args = server_arguments("python -m tcpserver.bench serve", argv)
    server = build_server(args.port, tuple(args.tls) if args.tls else None, args.backlog)
    server.start_listening()  # type: ignore[attr-defined]
    print(
        f"tcpserver bench echo on 127.0.0.1:{args.port} tls={bool(args.tls)}",
        file=sys.stderr,
        flush=True,
    )
    with profiled(args.profile, args.profile_interval):
        server.run()  # type: ignore[attr-defined]
    return 0
