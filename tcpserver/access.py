"""AllowedClients / BlockedClients: parsing and matching client addresses.

Pure and sans-IO: no DNS, no sockets.  An access list is a comma-separated
string of entries:

* ``*`` - every address;
* an IPv4 or IPv6 address: ``10.1.2.3``, ``::1``;
* a CIDR block: ``10.0.0.0/8``, ``2001:db8::/32``;
* the manual's octet wildcards: ``192.168.*.*``, ``10.*.0.1``;
* ``localhost`` - ``127.0.0.0/8`` and ``::1``.

IPv4-mapped IPv6 addresses (``::ffff:10.1.2.3``, what a dual-stack socket
reports for IPv4 clients) are matched as IPv4.  Host names other than
``localhost`` are refused: matching them would need a blocking reverse DNS
lookup per connection.

This module also owns the one spelling of a client address
(:func:`canonical_host`): socket peers and PROXY header sources are both
put in it before any access or admission decision, so one client is one
address however it was written.

Matching costs one set lookup per distinct netmask in the list, so it does not
grow with the number of entries.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from tcpserver import errors
from tcpserver.errors import TCPServerError

__all__ = ["AddressMatcher", "canonical_host", "normalize_address", "parse_ip"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4_ALL = (1 << 32) - 1
#: what a DNS host name looks like (letters somewhere, dots between labels)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.*[A-Za-z]){_LABEL}(?:\.{_LABEL})*\.?")
_V6_ALL = (1 << 128) - 1


def parse_ip(host: str, version: int | None = None) -> IPAddress:
    """
    ``host`` as an IP address, IPv4-mapped IPv6 (``::ffff:10.1.2.3``) folded
    to IPv4.

    :param version: 4 or 6: ``host`` must be written as an address of that
        version (an IPv4-mapped IPv6 address is a version 6 one).
    :raises ValueError: not an IP address (of that version).  Octets with
        leading zeros (``01.2.3.4``) are not an IPv4 address.
    """
    if version == 4:
        address: IPAddress = ipaddress.IPv4Address(host)
    elif version == 6:
        address = ipaddress.IPv6Address(host)
    else:
        address = ipaddress.ip_address(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def canonical_host(host: str) -> str:
    """
    The one spelling of a client address, which access lists, admission
    limits, ``remote_host`` and logs see: IPv4-mapped IPv6 folded to IPv4,
    IPv6 compressed and in lower case (``2001:DB8:0:0:0:0:0:1`` ->
    ``2001:db8::1``), a ``%scope`` kept.  Anything that is not an IP address
    (a UNIX socket path, say) is returned as it is.
    """
    try:
        return str(parse_ip(host))
    except ValueError:
        return host


def normalize_address(host: str) -> tuple[int, int] | None:
    """
    ``(version, integer)`` for an IP address string, IPv4-mapped IPv6 folded
    to IPv4 and any ``%scope`` dropped; ``None`` if ``host`` is not an IP
    address (a UNIX socket path, say).
    """
    try:
        address = parse_ip(host.split("%", 1)[0])
    except ValueError:
        return None
    return address.version, int(address)


def _parse_wildcard_v4(entry: str) -> tuple[int, int]:
    """``10.*.0.1`` -> (mask, value) with whole-octet wildcards."""
    octets = entry.split(".")
    if len(octets) > 4:
        raise ValueError("an IPv4 pattern has at most four parts")
    # "192.168.*" is short for "192.168.*.*"
    if len(octets) < 4:
        if octets[-1] != "*":
            raise ValueError("a short IPv4 pattern must end with '*'")
        octets += ["*"] * (4 - len(octets))
    mask = value = 0
    for octet in octets:
        mask <<= 8
        value <<= 8
        if octet == "*":
            continue
        if not octet.isdigit() or int(octet) > 255:
            raise ValueError("'*' must replace a whole octet")
        mask |= 0xFF
        value |= int(octet)
    return mask, value


@dataclass(slots=True)
class AddressMatcher:
    """
    A compiled access list.

    :ivar text: the list as given.
    :ivar match_all: the list contains ``*``.
    """

    text: str
    match_all: bool = False
    # (version, mask) -> set of (address & mask) values
    _tables: dict[tuple[int, int], set[int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, setting: str = "access list") -> AddressMatcher:
        """
        Compile ``text`` (the value of ``setting``, named in errors).

        :raises TCPServerError: 10022 naming the setting and the first bad entry.
        """
        matcher = cls(text)
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                matcher.add(entry)
            except ValueError as exc:
                raise TCPServerError(
                    errors.INVALID_ARGUMENT,
                    f"{setting}: bad entry {entry!r} in {text!r}: {exc}",
                ) from None
        return matcher

    def add(self, entry: str) -> None:
        """Match ``entry`` too (raises ``ValueError`` if it is not an address, range or mask)."""
        if entry == "*":
            self.match_all = True
            return
        if entry.lower() == "localhost":
            self._put(4, (_V4_ALL << 24) & _V4_ALL, 127 << 24)
            self._put(6, _V6_ALL, 1)
            return
        if "*" in entry:
            if ":" in entry:
                raise ValueError("wildcards work for IPv4 only; use a prefix like 2001:db8::/32")
            mask, value = _parse_wildcard_v4(entry)
            self._put(4, mask, value)
            return
        try:
            network = ipaddress.ip_network(entry.split("%", 1)[0], strict=False)
        except ValueError:
            if _HOST_NAME.fullmatch(entry):
                raise ValueError(
                    "a host name: access lists take no names, since a lookup "
                    "would block config() and, made once, would go stale when "
                    "DNS changes; write its addresses or a CIDR block (for "
                    f"example from 'getent ahosts {entry}')"
                ) from None
            raise ValueError("not an IP address, CIDR block or '*' pattern") from None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                prefix = network.prefixlen - 96
                mask = (_V4_ALL << (32 - prefix)) & _V4_ALL
                self._put(4, mask, int(mapped) & mask)
                return
        self._put(network.version, int(network.netmask), int(network.network_address))

    def _put(self, version: int, mask: int, value: int) -> None:
        self._tables.setdefault((version, mask), set()).add(value & mask)

    @property
    def empty(self) -> bool:
        """Whether the list matches nothing at all."""
        return not self.match_all and not self._tables

    def matches(self, host: str) -> bool:
        """
        Whether ``host`` (an IP address string) is on the list.

        Something that is not an IP address (a UNIX socket peer) matches only
        ``*``.
        """
        if self.match_all:
            return True
        normalized = normalize_address(host)
        if normalized is None:
            return False
        version, number = normalized
        for (table_version, mask), values in self._tables.items():
            if table_version == version and (number & mask) in values:
                return True
        return False
