"""Loading a user's handler and wiring its ``on_<event>`` functions.

A handler is a module (dotted name or ``.py`` path) or any object - a class
instance, say - whose attributes named ``on_<event>(server, event)`` are
connected to the server's events, e.g. ``on_data_in``, ``on_connected``.  An
optional ``setup(server)`` runs once before the server starts listening.

``module:attribute`` selects an object inside a module; if that object is a
class it is instantiated without arguments.

:data:`echo` is the built-in handler the twistd plugin serves when none is
given.  No I/O here beyond importing the handler.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

from tcpserver.events import EVENT_NAMES, DataIn

__all__ = ["HandlerError", "echo", "handler_functions", "load_handler", "wire_handler"]


class HandlerError(Exception):
    """The handler cannot be loaded or has nothing to wire."""


def load_handler(spec: str) -> Any:
    """
    Import a handler.

    :param spec: ``package.module``, ``path/to/file.py``, or either followed
        by ``:attribute``.
    :returns: the module or object.
    :raises HandlerError: with the reason (the import error's own message);
        the original exception is chained.
    """
    target, _, attribute = spec.partition(":")
    if target.endswith(".py") or os.sep in target:
        module = _load_path(target)
    else:
        module = _load_module(target)
    if not attribute:
        return module
    try:
        obj = getattr(module, attribute)
    except AttributeError:
        raise HandlerError(f"{target!r} has no attribute {attribute!r}") from None
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as exc:
            raise HandlerError(f"cannot instantiate {spec!r}: {type(exc).__name__}: {exc}") from exc
    return obj


def _load_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # twistd does not put the working directory on sys.path; a handler
        # module next to the user is what they mean, so look there too.
        if exc.name != name.split(".")[0] or os.getcwd() in sys.path:
            raise HandlerError(f"cannot import handler {name!r}: {exc}") from exc
        sys.path.insert(0, os.getcwd())
        try:
            return importlib.import_module(name)
        except Exception as inner:
            raise HandlerError(
                f"cannot import handler {name!r}:\n{_own_traceback(inner)}"
            ) from inner
    except Exception as exc:
        raise HandlerError(f"cannot import handler {name!r}:\n{_own_traceback(exc)}") from exc


def _load_path(path: str) -> ModuleType:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise HandlerError(f"handler file {path!r} does not exist")
    name = "tcpserver_handler_" + os.path.splitext(os.path.basename(full))[0]
    spec = importlib.util.spec_from_file_location(name, full)
    if spec is None or spec.loader is None:
        raise HandlerError(f"cannot load handler file {path!r}")
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(full)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the handler can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise HandlerError(f"cannot import handler {path!r}:\n{_own_traceback(exc)}") from exc
    return module


_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__))


def _own_traceback(exc: BaseException) -> str:
    """
    The traceback of an import failure, the handler's own frames only
    (importlib's and ours say nothing about the bug).
    """
    import traceback

    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith("<frozen")
        and os.path.abspath(frame.filename) != os.path.abspath(__file__)
        and not os.path.abspath(frame.filename).startswith(_IMPORTLIB)
    ]
    lines = ["Traceback (the handler's own frames):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip()


def handler_functions(handler: Any) -> dict[str, Callable[..., Any]]:
    """``event name -> on_<event> callable`` for every event the handler handles."""
    found = {}
    for name in EVENT_NAMES:
        function = getattr(handler, f"on_{name}", None)
        if callable(function):
            found[name] = function
    return found


def wire_handler(server: Any, handler: Any) -> list[str]:
    """
    Connect the handler's ``on_<event>(server, event)`` functions.

    :returns: the names of the wired events.
    :raises HandlerError: if the handler has no ``on_*`` function at all.
    """
    functions = handler_functions(handler)
    if not functions:
        expected = ", ".join(f"on_{n}" for n in EVENT_NAMES)
        raise HandlerError(
            f"handler {getattr(handler, '__name__', handler)!r} defines none of: {expected}"
        )
    for name, function in functions.items():
        server.on(name, _bind(function, server))
    return sorted(functions)


def _bind(function: Callable[..., Any], server: Any) -> Callable[[Any], Any]:
    def listener(event: Any) -> Any:
        return function(server, event)

    listener.__qualname__ = getattr(function, "__qualname__", repr(function))
    return listener


def _echo_data_in(server: Any, event: DataIn) -> None:
    """Send every frame back, with the terminator the framing stripped."""
    data = event.text
    if event.eol:
        connection = server.connections[event.connection_id]
        if not connection.record_length:
            if connection.single_line_mode:
                data += b"\r\n"
            else:
                data += connection.eol
    server.send(event.connection_id, data)


#: The built-in echo handler: sends every line (or chunk) back.
echo = SimpleNamespace(__name__="tcpserver.handlers.echo", on_data_in=_echo_data_in)
