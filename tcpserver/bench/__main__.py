"""``python -m tcpserver.bench serve|run``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("serve", "run"):
        print(
            "usage: python -m tcpserver.bench serve --port PORT [--tls CERT KEY]\n"
            "       python -m tcpserver.bench run [--json] [options]",
            file=sys.stderr,
        )
        return 2
    if args[0] == "serve":
        from tcpserver.bench.serve import main as serve

        return serve(args[1:])
    from tcpserver.bench.run import main as run

    return run(args[1:])


if __name__ == "__main__":
    sys.exit(main())
