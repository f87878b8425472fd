"""PROXY headers: v1 ``UNKNOWN``, checked address fields, and one spelling of
a client address for access lists and admission limits, whether it came from
the socket or from a header.  In memory, then through real sockets."""

from __future__ import annotations

import re

import pytest

from tcpserver.access import canonical_host, parse_ip

# -- the normaliser ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("0:0:0:0:0:ffff:c633:6407", "198.51.100.7"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8::1", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("/run/server.sock", "/run/server.sock"),  # not an IP address: as it is
        ("", ""),
    ],
)
def test_one_spelling_of_an_address(written, canonical):
    assert canonical_host(written) == canonical


@pytest.mark.parametrize(
    ("text", "version"),
    [("01.2.3.4", 4), ("1.2.3", 4), ("evil.example", None), ("::ffff:1.2.3.4", 4), ("1.2.3.4", 6)],
)
def test_parse_ip_refuses_what_is_not_an_address_of_its_version(text, version):
    with pytest.raises(ValueError, match=re.escape(repr(text))):  # (ipaddress's own message)
        parse_ip(text, version)
