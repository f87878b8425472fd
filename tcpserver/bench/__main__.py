"""``python -m tcpserver.bench serve|baseline|run|load ...``."""

from __future__ import annotations

import sys

USAGE = """usage: python -m tcpserver.bench COMMAND ...

  serve --port PORT [--tls CERT KEY] [--profile FILE]
                                       the tcpserver echo server (the bench contract);
                                       --profile: where its CPU goes, sampled under load
  baseline --port PORT [--tls CERT KEY] [--profile FILE]
                                       a plain Twisted LineReceiver echo, for comparison
  run [--quick] [--reps N] [--json]    tcpserver vs plain Twisted, same load, with ratios
  load echo|churn --port PORT ...      one load-generator process (used by run)
  phases [--json]                      in process: Python time per connection, read
                                       and line, tcpserver vs LineReceiver (no sockets)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else ""
    if command == "serve":
        from tcpserver.bench.serve import main as serve

        return serve(args[1:])
    if command == "baseline":
        from tcpserver.bench.baseline import main as baseline

        return baseline(args[1:])
    if command == "run":
        from tcpserver.bench.run import main as run

        return run(args[1:])
    if command == "phases":
        from tcpserver.bench.phases import main as phases

        return phases(args[1:])
    if command == "load":
        from tcpserver.bench.load import main as load

        return load(args[1:])
    print(USAGE, file=sys.stderr, end="")
    return 2


if __name__ == "__main__":
    sys.exit(main())
