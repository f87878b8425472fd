"""
How the command line reports a person's mistake: one line naming the flag
and the value, and a non-zero exit - under ``twistd tcpserver`` and
``python -m tcpserver`` alike, never twistd's whole help or a traceback.

* usage errors (a bad flag or value, found while the options are parsed):
  exit status 2;
* start-up errors (the port is taken, the address does not exist, a
  handler's ``setup()`` raised): exit status 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar

from twisted.python import usage

__all__ = [
    "STARTUP_STATUS",
    "USAGE_STATUS",
    "check_endpoint",
    "decimal",
    "exit_with",
    "integer",
    "listen_flags",
    "report",
    "runner_name",
    "setup_failure",
    "usage_text",
]

T = TypeVar("T")

USAGE_STATUS = 2
STARTUP_STATUS = 1

_TWISTED_PREFIX = "Parameter type enforcement failed: "


def runner_name() -> str:
    """``twistd tcpserver``, ``tcpserver`` or ``python -m tcpserver``: who is speaking."""
    program = os.path.basename(sys.argv[0] if sys.argv else "")
    if program.startswith("twistd"):
        return "twistd tcpserver"
    return "tcpserver" if program == "tcpserver" else "python -m tcpserver"


def usage_text(error: BaseException) -> str:
    """A usage error's message, without Twisted's generic prefix."""
    text = str(error)
    return text[len(_TWISTED_PREFIX) :] if text.startswith(_TWISTED_PREFIX) else text


def report(message: str, status: int) -> str:
    """``<runner>: message``, with a pointer to ``--help`` after a one-line usage error."""
    usage_error = status == USAGE_STATUS and "\n" not in message  # (not after a traceback)
    hint = f" ({runner_name()} --help lists the options)" if usage_error else ""
    return f"{runner_name()}: {message}{hint}"


def exit_with(message: str, status: int) -> NoReturn:
    """Print :func:`report` on the real standard error, and exit with ``status``."""
    print(report(message, status), file=sys.__stderr__ or sys.stderr, flush=True)
    raise SystemExit(status)


def _number(flag: str, convert: Callable[[str], T], expected: str) -> Callable[[str], T]:
    """A coercer for ``--flag VALUE`` whose error names the flag and the value."""

    def coerce(value: str) -> T:
        try:
            return convert(value)
        except ValueError:
            raise ValueError(f"--{flag} {value!r}: expected {expected}") from None

    coerce.coerceDoc = f"{expected[0].upper()}{expected[1:]}."  # type: ignore[attr-defined]
    return coerce


def integer(flag: str) -> Callable[[str], int]:
    """``--flag N``: a whole number."""
    return _number(flag, int, "a whole number")


def decimal(flag: str) -> Callable[[str], float]:
    """``--flag SECONDS``: any number."""
    return _number(flag, float, "a number")


def check_endpoint(flag: str, description: str) -> None:
    """
    Parse a Twisted server endpoint string now (it listens later), so a bad
    one is a usage error before anything listens.

    :raises usage.UsageError: naming the flag, the value and why.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(None, description)  # (no reactor needed to parse)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's value
        reason = str(exc) or type(exc).__name__
        raise usage.UsageError(f"{flag} {description!r}: {reason}") from None


def listen_flags(host: str, port: int) -> str:
    """The flags a listening socket came from, as a start-up error names them."""
    return f"--interface {host or '(all)'!r} --port {port}"


def setup_failure(handler: object, error: BaseException) -> str:
    """
    One line for a handler's ``setup()`` that raised: the exception and the
    line of the handler that raised it.
    """
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    name = getattr(handler, "__file__", None) or getattr(handler, "__name__", repr(handler))
    return f"--handler {name!r}: setup() raised {type(error).__name__}: {error}{where}"
