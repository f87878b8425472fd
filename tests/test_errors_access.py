"""Error-code mapping and the access-list matcher (pure functions)."""

from __future__ import annotations

import errno
import socket

import pytest
from twisted.internet import error
from twisted.python.failure import Failure

from tcpserver.access import AddressMatcher
from tcpserver.errors import MESSAGES, TCPServerError, code_for_errno, code_for_failure


@pytest.mark.parametrize(
    ("number", "code"),
    [
        (errno.EADDRINUSE, 10048),
        (errno.EACCES, 10013),
        (errno.EADDRNOTAVAIL, 10049),
        (errno.ECONNRESET, 10054),
        (errno.ETIMEDOUT, 10060),
        (errno.ECONNREFUSED, 10061),
        (errno.EMFILE, 10024),
        (errno.EWOULDBLOCK, 10035),
    ],
)
def test_errno_to_manual_codes(number, code):
    assert code_for_errno(number) == code
    exc = TCPServerError.from_os_error(OSError(number, "boom"), "context")
    assert exc.code == code
    assert exc.description.startswith("context: ")
    assert MESSAGES[code] in exc.description


def test_unknown_errno_stays_recoverable():
    assert code_for_errno(9999) == 19999


def test_gai_errors_map_to_host_codes():
    exc = TCPServerError.from_os_error(socket.gaierror(socket.EAI_NONAME, "unknown"))
    assert exc.code == 11001


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (error.ConnectionDone(), 0),
        (error.ConnectionLost(), 10054),
        (error.ConnectionAborted(), 10053),
        (OSError(errno.ETIMEDOUT, "t"), 10060),
    ],
)
def test_failures_to_disconnect_codes(exc, code):
    assert code_for_failure(Failure(exc))[0] == code


def test_error_str_and_attributes():
    exc = TCPServerError(126)
    assert (exc.code, exc.description) == (126, "Invalid ConnectionId.")
    assert str(exc) == "[126] Invalid ConnectionId."


@pytest.mark.parametrize(
    ("entries", "allowed", "refused"),
    [
        ("*", ["1.2.3.4", "::1", "/tmp/sock"], []),
        ("", [], ["1.2.3.4"]),
        ("10.0.0.1, 10.0.0.2", ["10.0.0.1", "10.0.0.2"], ["10.0.0.3"]),
        ("192.168.*.*", ["192.168.0.1", "192.168.255.9"], ["192.169.0.1"]),
        ("10.*", ["10.9.8.7"], ["11.0.0.1"]),
        ("10.*.0.1", ["10.5.0.1"], ["10.5.0.2"]),
        ("10.0.0.0/8", ["10.255.0.1", "::ffff:10.1.2.3"], ["11.0.0.0"]),
        ("::1", ["::1"], ["127.0.0.1", "::2"]),
        ("2001:db8::/32", ["2001:db8:1::5"], ["2001:db9::1"]),
        ("::ffff:10.0.0.0/104", ["10.1.1.1"], ["11.1.1.1"]),
        ("localhost", ["127.0.0.1", "127.9.9.9", "::1"], ["10.0.0.1"]),
    ],
)
def test_access_lists(entries, allowed, refused):
    matcher = AddressMatcher.parse(entries)
    for host in allowed:
        assert matcher.matches(host), (entries, host)
    for host in refused:
        assert not matcher.matches(host), (entries, host)


@pytest.mark.parametrize(
    "bad", ["example.com", "10.0.0.0/33", "1.2.3.4.5", "1.2*.3.4", "fe80::*", "300.1.1.1"]
)
def test_bad_access_entries_name_the_entry(bad):
    with pytest.raises(TCPServerError) as caught:
        AddressMatcher.parse(f"10.0.0.1, {bad}")
    assert caught.value.code == 10022
    assert repr(bad) in caught.value.description


def test_matching_cost_does_not_grow_with_the_list():
    entries = ",".join(f"10.{i // 256}.{i % 256}.1" for i in range(20_000))
    matcher = AddressMatcher.parse(entries + ",172.16.0.0/12,192.168.*.*")
    assert len(matcher._tables) == 3  # one table per distinct mask
    assert matcher.matches("10.78.31.1")
    assert matcher.matches("172.20.1.1")
    assert not matcher.matches("10.78.31.2")


@pytest.mark.parametrize("setting", ["AllowedClients", "BlockedClients", "TrustedProxies"])
@pytest.mark.parametrize("name", ["db.example", "gateway", "mail.example.com."])
def test_a_host_name_in_an_access_list_says_why_and_what_to_write(setting, name):
    from tcpserver import TCPServer

    server = TCPServer()
    with pytest.raises(TCPServerError) as caught:
        server.config(f"{setting}=10.0.0.1, {name}")
    message = str(caught.value)
    assert caught.value.code == 10022
    assert message.count(setting) == 1
    assert repr(name) in message
    assert "host name" in message
    assert "CIDR block" in message
    assert f"getent ahosts {name}" in message
