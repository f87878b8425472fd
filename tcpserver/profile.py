"""What a new connection takes from the settings: one shared, frozen profile.

A :class:`ConnectionProfile` is read once per settings change and shared:
a connection holds one reference instead of a copy of each value, and
accepting one costs no settings lookups.  Which settings feed it is
declared in the registry (:attr:`Setting.profile
<tcpserver.settingtypes.Setting.profile>`); the few values derived from
several settings are computed here, in :func:`build_profile`.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tcpserver.settings import REGISTRY, SSLStartMode

__all__ = ["PROFILE_SETTINGS", "ConnectionProfile", "build_profile"]

#: ``(profile field, setting name)`` for every setting a connection copies at accept.
PROFILE_SETTINGS: tuple[tuple[str, str], ...] = tuple(
    (s.profile, s.name) for s in REGISTRY if s.profile is not None
)

_DEFAULT_LENGTH_PREFIX = (0, "big", 0, True, 1 << 20, False)


@dataclass(frozen=True, slots=True)
class ConnectionProfile:
    """
    The settings in force when a connection was accepted.

    The fields named in the registry (``Setting.profile``) are copies of
    settings; the last six are derived in :func:`build_profile`.
    """

    eol: bytes
    max_line_length: int
    single_line_mode: bool
    idle_timeout: float
    send_timeout: float
    high_water: int
    low_water: int
    queue_limit: int
    linger: bool
    ssl_start_mode: int
    tcp_nodelay: bool
    keep_alive: bool
    proxy_protocol: bool
    proxy_timeout: float
    proxy_detect: bool
    read_idle: float
    write_idle: float
    close_grace: float
    listener_grace: float
    handshake_idle: float
    handshake_timeout: float
    #: (size, byteorder, adjust, strip, max frame length, skip too long), or
    #: None when all are at their defaults (the framer's own)
    length_prefix: tuple[int, str, int, bool, int, bool] | None
    #: any socket option beyond TCP_NODELAY / SO_KEEPALIVE to set
    extra_socket_options: bool
    #: a connection opens at accept with nothing to set up but TCP_NODELAY:
    #: no PROXY header, no TLS at accept, no keep-alive or other socket
    #: options, no idle timers
    quick_open: bool
    #: TLS (or DETECT's first-byte detection) at accept, and HandshakeTimeout bounds
    #: the opening from accept
    timed_opening: bool
    #: DefaultConnectionTimeout (``handshake_idle``) watched from accept: TLS (or
    #: DETECT) at accept and no PROXY header first; else 0 (watched from the
    #: start of the handshake, if at all)
    opening_idle: float


def build_profile(values: Mapping[str, Any]) -> ConnectionProfile:
    """The profile of the settings ``values`` (a ``Settings`` view)."""
    fields: dict[str, Any] = {field: values[name] for field, name in PROFILE_SETTINGS}
    fields["ssl_start_mode"] = SSLStartMode(fields["ssl_start_mode"]).effective
    high = fields["high_water"]
    fields["low_water"] = min(fields["low_water"], high)
    fields["queue_limit"] = max(fields["queue_limit"], high)
    prefix = (
        values["DefaultLengthPrefix"],
        values["LengthPrefixByteOrder"],
        values["LengthPrefixAdjustment"],
        values["LengthPrefixStrip"],
        values["MaxFrameLength"],
        values["SkipTooLongFrames"],
    )
    fields["length_prefix"] = None if prefix == _DEFAULT_LENGTH_PREFIX else prefix
    extra = bool(
        values["InBufferSize"]
        or values["OutBufferSize"]
        or not values["Linger"]
        or (values["KeepAlive"] and (values["KeepAliveTime"] or values["KeepAliveInterval"]))
    )
    fields["extra_socket_options"] = extra
    fields["quick_open"] = not (
        fields["proxy_protocol"]
        or fields["ssl_start_mode"] in (SSLStartMode.IMPLICIT, SSLStartMode.DETECT)
        or fields["keep_alive"]
        or extra
        or fields["idle_timeout"]
        or fields["read_idle"]
        or fields["write_idle"]
    )
    # (a PROXY header alone has its own deadline, ProxyHeaderTimeout; with TLS
    # at accept HandshakeTimeout counts from accept, across the header too)
    fields["timed_opening"] = bool(fields["handshake_timeout"]) and fields["ssl_start_mode"] in (
        SSLStartMode.IMPLICIT,
        SSLStartMode.DETECT,
    )
    fields["opening_idle"] = (
        fields["handshake_idle"]
        if fields["ssl_start_mode"] in (SSLStartMode.IMPLICIT, SSLStartMode.DETECT)
        and not fields["proxy_protocol"]
        else 0.0
    )
    return ConnectionProfile(**fields)
