"""
Write the intersphinx inventories the docs link Twisted and Python names
through (``docs/_inventories/*.inv``, checked in).

The docs build offline (CI machines reach package registries only), so
instead of downloading ``objects.inv`` from docs.twisted.org and
docs.python.org, this script lists the public names of the Twisted modules
and Python types tcpserver's API mentions, with their URLs on those sites,
in Sphinx's inventory format.  Run it again after upgrading Twisted::

    python tools/inventories.py
"""

from __future__ import annotations

import importlib
import inspect
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "_inventories"

TWISTED_MODULES = (
    "twisted.application.service",
    "twisted.internet.defer",
    "twisted.internet.endpoints",
    "twisted.internet.interfaces",
    "twisted.internet.protocol",
    "twisted.internet.ssl",
    "twisted.internet.task",
    "twisted.logger",
    "twisted.python.failure",
    "twisted.protocols.basic",
    "twisted.protocols.policies",
    "twisted.web.resource",
    "twisted.web.server",
)

#: Python names: (name, role, page, anchor)
PYTHON_NAMES = [
    *[
        (name, "class", "library/stdtypes.html", name)
        for name in ("bytes", "bytearray", "memoryview", "str", "int", "float", "bool", "dict",
                     "list", "tuple", "set", "frozenset", "object", "type")
    ],
    *[
        (name, "exception", "library/exceptions.html", name)
        for name in ("Exception", "ValueError", "TypeError", "KeyError", "OSError",
                     "ConnectionError", "TimeoutError", "RuntimeError")
    ],
    ("ssl.SSLContext", "class", "library/ssl.html", "ssl.SSLContext"),
    ("socket.socket", "class", "library/socket.html", "socket.socket"),
    ("pathlib.Path", "class", "library/pathlib.html", "pathlib.Path"),
    ("os.PathLike", "class", "library/os.html", "os.PathLike"),
    ("datetime.datetime", "class", "library/datetime.html", "datetime.datetime"),
    ("enum.IntEnum", "class", "library/enum.html", "enum.IntEnum"),
    ("typing.Any", "data", "library/typing.html", "typing.Any"),
    *[
        (f"collections.abc.{name}", "class", "library/collections.abc.html",
         f"collections.abc.{name}")
        for name in ("Callable", "Iterable", "Iterator", "Mapping", "Sequence",
                     "MutableMapping", "Awaitable", "Coroutine")
    ],
]  # fmt: skip


def _inventory(project: str, version: str, lines: list[str]) -> bytes:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    ).encode()
    return header + zlib.compress(("\n".join(sorted(set(lines))) + "\n").encode())


def twisted_lines() -> list[str]:
    lines = []
    for module_name in TWISTED_MODULES:
        module = importlib.import_module(module_name)
        lines.append(f"{module_name} py:module 0 {module_name}.html -")
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) is None:
                continue
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            home = value.__module__
            if not home.startswith("twisted.") or home.split(".")[-1].startswith("_"):
                home = module_name  # (re-exported from a private module: documented here)
            full = f"{home}.{name}"
            role = "class" if inspect.isclass(value) else "function"
            for spelled in {full, f"{module_name}.{name}"}:
                lines.append(f"{spelled} py:{role} 1 {full}.html -")
    return lines


def python_lines() -> list[str]:
    return [f"{name} py:{role} 1 {page}#{anchor} -" for name, role, page, anchor in PYTHON_NAMES]


def main() -> None:
    import twisted

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "twisted.inv").write_bytes(_inventory("Twisted", twisted.__version__, twisted_lines()))
    (OUT / "python.inv").write_bytes(_inventory("Python", "3", python_lines()))
    print(f"wrote {OUT / 'twisted.inv'} and {OUT / 'python.inv'}")


if __name__ == "__main__":
    main()
