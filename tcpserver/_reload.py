"""
SIGHUP for ``twistd tcpserver``: the command line and config file are read
again, what may change while listening is applied, and the log says exactly
what changed - settings by value (certificates by content), the CA files by
content, ``--sni-cert`` names - and, apart, what needs a restart.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from twisted.logger import Logger

from tcpserver.certificates import Certificate
from tcpserver.server import TCPServer
from tcpserver.service import TCPServerService
from tcpserver.settings import REGISTRY

__all__ = ["reloader"]

_log = Logger()


#: Settings naming a file or directory that TLS contexts read: a reload
#: reports them changed when what they name changes, under the same name too.
_CONTENT_SETTINGS = ("OpenSSLCAFile", "OpenSSLCADir")


def _contents(path: str) -> bytes:
    """
    A digest of the file at ``path``, or of a directory's files (names and
    contents); ``b""`` for no path, ``b"?"`` if it cannot be read (the
    setting's own check says why, when it is used).
    """
    if not path:
        return b""
    digest = hashlib.sha256()
    try:
        if os.path.isdir(path):
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                if entry.is_file():
                    digest.update(entry.name.encode() + b"\0")
                    digest.update(hashlib.sha256(Path(entry.path).read_bytes()).digest())
        else:
            digest.update(Path(path).read_bytes())
    except OSError:
        return b"?"
    return digest.digest()


def _same(old: object, new: object) -> bool:
    """Whether a reload leaves a setting as it was: certificates by content."""
    if isinstance(old, Certificate) and isinstance(new, Certificate):
        return old.content_key == new.content_key
    return old == new


def _sni_changes(old: Mapping[str, Certificate], new: Mapping[str, Certificate]) -> list[str]:
    """``--sni-cert NAME`` for each name added, dropped or given other content."""
    return [
        f"--sni-cert {name}"
        for name in sorted(old.keys() | new.keys())
        if name not in old or name not in new or not _same(old[name], new[name])
    ]


#: Settings a reload does not apply: they need a restart (it says so).
_RESTART_SETTINGS = tuple(
    s.name
    for s in REGISTRY
    if not s.read_only
    and (s.listening_error is not None or s.name in ("LocalPort", "LocalHost", "SSLEnabled"))
)


def reloader(
    raw_args: list[str],
    server: TCPServer,
    parse: Callable[[list[str]], tuple[TCPServer, dict[str, Certificate]]],
) -> Callable[[TCPServerService], None]:
    """
    SIGHUP: ``parse`` the same arguments again, apply what may change live, and
    log exactly what changed: settings by value (certificates by content),
    the files of :data:`_CONTENT_SETTINGS` by content, ``--sni-cert`` names;
    and, apart, the changed settings that need a restart.
    """
    contents = {name: _contents(server.settings[name]) for name in _CONTENT_SETTINGS}
    # as configured, not as the running server has them (port 0 is bound to one)
    configured = {name: server.settings[name] for name in _RESTART_SETTINGS}

    def reload(svc: TCPServerService) -> None:
        new, sni = parse(raw_args)  # (ValueError: the arguments no longer parse)
        live = svc.server
        changed: list[str] = []
        for setting in REGISTRY:
            name = setting.name
            if setting.read_only or name in _RESTART_SETTINGS:
                continue
            value = new.settings[name]
            if not _same(live.settings[name], value):
                live.settings.set(name, value, listening=True)
                changed.append(name)
        # (not remembered: until a restart, they still differ from what runs)
        restart = [n for n in _RESTART_SETTINGS if not _same(configured[n], new.settings[n])]
        for name in _CONTENT_SETTINGS:
            now = _contents(new.settings[name])
            if now != contents[name] and name not in changed:
                changed.append(name)
            contents[name] = now
        certificates = getattr(svc, "sni_certificates", None)
        if certificates is not None:
            changed += _sni_changes(certificates, sni)
            certificates.clear()
            certificates.update(sni)
        live.factory.tls_contexts.invalidate()  # CA files are re-read for new handshakes
        summary = f"changed: {', '.join(changed)}" if changed else "nothing changed"
        if restart:
            summary += f"; not applied, they need a restart: {', '.join(restart)}"
        _log.info(
            "tcpserver: reloaded ({summary})", summary=summary, changed=changed, restart=restart
        )

    return reload
