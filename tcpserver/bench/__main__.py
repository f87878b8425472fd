"""``python -m tcpserver.bench serve ...``."""

from __future__ import annotations

import sys

from tcpserver.bench.serve import main as serve


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "serve":
        print(
            "usage: python -m tcpserver.bench serve --port PORT [--tls CERT KEY]", file=sys.stderr
        )
        return 2
    return serve(args[1:])


if __name__ == "__main__":
    sys.exit(main())
