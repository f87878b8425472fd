"""
``--help`` for people: options grouped in the order a user needs them, each
described once and briefly, lines under 100 columns, internal flags hidden,
then the settings that have no flag of their own (``--config Name=Value``).

The option tables themselves live in :mod:`tcpserver.tap` (and the settings
registry); this module only lays them out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from tcpserver.settingtypes import Setting

__all__ = ["GROUPS", "WIDTH", "render", "shorten"]

#: Help lines stay under this many columns.
WIDTH = 99

#: The sections of ``--help`` and their flags, in the order a user needs them.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Listening", ("port", "interface", "listen", "backlog", "max-connections", "workers")),
    ("Handler and configuration", ("handler", "config", "config-file")),
    (
        "Framing",
        (
            "eol",
            "single-line-mode",
            "max-line-length",
            "length-prefix",
            "max-frame-length",
            "code-page",
        ),
    ),
    (
        "Timeouts and limits",
        (
            "idle-timeout",
            "read-idle-timeout",
            "write-idle-timeout",
            "timeout",
            "handshake-timeout",
            "close-grace-period",
            "listener-grace-period",
            "drain-timeout",
        ),
    ),
    (
        "TLS",
        (
            "tls-cert",
            "tls-key",
            "tls-password-file",
            "tls-password-env",
            "sni-cert",
            "ssl-start-mode",
            "tls-client-ca",
            "tls-require-client-cert",
        ),
    ),
    (
        "PROXY protocol",
        ("proxy-protocol", "proxy-protocol-detect", "trusted-proxies", "proxy-header-timeout"),
    ),
    (
        "Admission",
        (
            "allowed-clients",
            "blocked-clients",
            "max-connections-per-address",
            "max-accept-rate",
            "max-accept-rate-per-address",
        ),
    ),
    ("Sockets", ("keep-alive", "tcp-nodelay", "no-linger")),
    ("Operations", ("metrics", "health", "version", "help")),
)

_LEFT = 32  # the column descriptions start in
_MOST = 170  # characters of a description shown (then "...")


def shorten(text: str, most: int = _MOST) -> str:
    """``text`` whole if short, else cut at a word boundary and ended with ``...``."""
    text = " ".join(text.split())
    if len(text) <= most:
        return text
    cut = text[: most - 3].rsplit(" ", 1)[0].rstrip(",;:(")
    return cut + "..."


def _entry(left: str, text: str) -> list[str]:
    indent = " " * _LEFT
    if len(left) + 2 > _LEFT:  # a long flag: its text on the next lines
        return [left, *textwrap.wrap(text, WIDTH, initial_indent=indent, subsequent_indent=indent)]
    first = left.ljust(_LEFT)
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=indent)


def render(
    options: Sequence[tuple[str, str | None, str | None, str]],
    description: str,
    settings: Iterable[Setting],
) -> str:
    """
    The whole ``--help``.

    :param options: ``(long, short, metavar or None for a switch, help)``
        for every option a user may give.
    :param settings: the settings to list at the end (those without a flag).
    :raises ValueError: an option that no group lists, or a group's flag
        that is no option (so neither is forgotten).
    """
    by_name = {option[0]: option for option in options}
    grouped = [flag for _, flags in GROUPS for flag in flags]
    missing = sorted(set(by_name) - set(grouped))
    unknown = sorted(set(grouped) - set(by_name))
    if missing or unknown:
        raise ValueError(f"--help groups: not grouped {missing}, not options {unknown}")
    lines = ["", *textwrap.wrap(" ".join(description.split("\n")[0].split()), WIDTH)]
    for title, flags in GROUPS:
        lines += ["", f"{title}:"]
        for flag in flags:
            long, short, metavar, text = by_name[flag]
            left = f"  -{short}, --{long}" if short else f"      --{long}"
            if metavar:
                left += f"={metavar}"
            lines += _entry(left, text)
    for paragraph in description.split("\n")[1:]:
        lines += ["", *textwrap.wrap(" ".join(paragraph.split()), WIDTH)]
    lines += ["", "Other settings (--config Name=Value, or [settings] in --config-file):", ""]
    for setting in settings:
        default = setting.format(setting.default) if setting.default is not None else ""
        head = f"  {setting.name}={shorten(str(default), 24)}"
        lines += _entry(head, shorten(setting.doc, 120))
    lines += ["", "Every setting in full: the documentation's reference page."]
    return "\n".join(lines) + "\n"


def metavar_of(flag: str) -> str:
    """A short placeholder for an option's value: ``PATH``, ``SECONDS``, ``N``..."""
    for ending, name in _METAVARS:
        if flag.endswith(ending):
            return name
    return "VALUE"


_METAVARS = (
    ("rate-per-address", "PER-SECOND"),
    ("sni-cert", "NAME=PATH"),
    ("port", "PORT"),
    ("interface", "ADDRESS"),
    ("timeout", "SECONDS"),
    ("grace-period", "SECONDS"),
    ("file", "PATH"),
    ("cert", "PATH"),
    ("key", "PATH"),
    ("client-ca", "PATH"),
    ("handler", "MODULE"),
    ("listen", "ENDPOINT"),
    ("metrics", "ENDPOINT"),
    ("health", "ENDPOINT"),
    ("clients", "LIST"),
    ("proxies", "LIST"),
    ("env", "NAME"),
    ("config", "NAME=VALUE"),
    ("sni-cert", "NAME=PATH"),
    ("eol", "BYTES"),
    ("mode", "MODE"),
    ("page", "NUMBER"),
    ("workers", "N"),
    ("backlog", "N"),
    ("connections", "N"),
    ("length", "BYTES"),
    ("prefix", "BYTES"),
    ("rate", "PER-SECOND"),
    ("address", "N"),
)
