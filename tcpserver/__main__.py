"""
``python -m tcpserver [options]``: the twistd plugin's server without twistd.

It takes exactly the options of ``twistd -n tcpserver`` (the same
:class:`tcpserver.tap.Options`: every setting, ``--config-file``,
``--listen``, TLS, ``--workers``...), logs to standard output, drains on
SIGTERM/SIGINT and exits 0, reloads on SIGHUP.  It does not go through
Twisted's plugin system, so it never reads or writes ``dropin.cache``.

``python -m tcpserver --regenerate-plugin-cache`` rebuilds Twisted's plugin
cache (``twisted/plugins/dropin.cache``) where tcpserver's plugin is
installed.  Run it once after installing into a site-packages that will be
read-only at run time (a container image, a system package): ``twistd``
then finds a fresh cache and does not try, and fail, to rewrite it
(twisted/twisted#2410, #11236).  A plain ``python -m tcpserver`` run does the
same quietly when the cache is stale and its directory is writable.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

__all__ = ["main", "plugin_cache_is_fresh", "regenerate_plugin_cache"]

_PLUGIN = "tcpserver_plugin.py"


def _plugin_directory() -> Path | None:
    import twisted.plugins

    for entry in twisted.plugins.__path__:
        if (Path(entry) / _PLUGIN).exists():
            return Path(entry)
    return None


def plugin_cache_is_fresh() -> bool:
    """Whether Twisted would use the plugin cache beside our plugin as it is."""
    directory = _plugin_directory()
    if directory is None:
        return True  # (not installed as a plugin: nothing to cache)
    cache = directory / "dropin.cache"
    if not cache.exists():
        return False
    cached = cache.stat().st_mtime
    modules = [path for path in directory.glob("*.py") if path.name != "__init__.py"]
    try:
        with cache.open("rb") as stream:
            entries = pickle.load(stream)  # noqa: S301 - Twisted's own cache file
    except Exception:  # noqa: BLE001 - unreadable: Twisted would rebuild it
        return False
    # Twisted rewrites it when a module is newer or the entries differ
    return set(entries) == {path.stem for path in modules} and all(
        path.stat().st_mtime < cached for path in modules
    )


def regenerate_plugin_cache() -> bool:
    """
    Rebuild ``dropin.cache`` beside tcpserver's plugin.

    :returns: whether the cache is fresh afterwards.
    """
    from twisted.plugin import getCache

    import twisted.plugins

    getCache(twisted.plugins)  # (imports only the plugins whose entries are stale)
    return plugin_cache_is_fresh()


def _refresh_quietly() -> None:
    directory = _plugin_directory()
    if directory is None or not os.access(directory, os.W_OK):
        return
    try:
        if not plugin_cache_is_fresh():
            regenerate_plugin_cache()
    except Exception:  # noqa: BLE001, S110 - a cache for twistd's sake: never fatal here
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the server (the process's exit status is returned)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--regenerate-plugin-cache"]:
        fresh = regenerate_plugin_cache()
        where = _plugin_directory()
        print(f"plugin cache in {where}: {'fresh' if fresh else 'could not be written'}")
        return 0 if fresh else 1

    from twisted.python import usage

    from tcpserver._cli import USAGE_STATUS, report, usage_text
    from tcpserver.errors import TCPServerError
    from tcpserver.tap import Options, makeService

    options = Options()
    try:
        options.parseOptions(args)
    except usage.UsageError as exc:
        print(report(usage_text(exc), USAGE_STATUS), file=sys.stderr)
        return USAGE_STATUS
    _refresh_quietly()

    from twisted.application import app, service
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    application = service.Application("tcpserver")
    makeService(options).setServiceParent(application)
    try:
        app.startApplication(application, False)
    except TCPServerError as exc:  # the port is taken, the address is wrong...
        print(report(str(exc), 1), file=sys.stderr)
        return 1
    reactor.run()
    return 0


def console() -> None:
    """The ``tcpserver`` console script: ``python -m tcpserver``, shorter."""
    sys.exit(main())


if __name__ == "__main__":
    console()
