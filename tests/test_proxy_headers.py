"""PROXY headers: v1 ``UNKNOWN``, checked address fields, and one spelling of
a client address for access lists and admission limits, whether it came from
the socket or from a header.  In memory, then through real sockets."""

from __future__ import annotations

import re
import socket
import struct
from typing import Any

import pytest
import pytest_twisted
from helpers import client, in_memory, in_thread, listen, read_until

from tcpserver import TCPServer
from tcpserver.access import canonical_host, parse_ip
from tcpserver.testing import MemoryConnection

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

#: in_memory(**PROXIED): an echo server behind the PROXY protocol
PROXIED: dict[str, Any] = {"default_eol": b"\n", "echo": True, "ProxyProtocol": True}


def v1(family: str, source: str, source_port: int | str = 40000) -> bytes:
    destination = "203.0.113.1" if family == "TCP4" else "2001:db8::80"
    return f"PROXY {family} {source} {destination} {source_port} 443\r\n".encode()


def v2_inet6(source: str, source_port: int = 40000) -> bytes:
    body = (
        socket.inet_pton(socket.AF_INET6, source)
        + socket.inet_pton(socket.AF_INET6, "2001:db8::80")
        + struct.pack("!HH", source_port, 443)
    )
    return SIGNATURE + bytes([0x21, 0x21]) + struct.pack("!H", len(body)) + body


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


# -- v1 UNKNOWN -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",  # the spec's short form
        b"PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n",  # the rest of the line is ignored
        b"PROXY UNKNOWN whatever the proxy says\r\n",
    ],
)
@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_v1_unknown_is_the_socket_peer_like_a_v2_local_header(header, byte_by_byte):
    server, recorder = in_memory(**PROXIED)
    conn = MemoryConnection(server, host="127.0.0.1", port=50001)
    data = header + b"ping\n"
    for chunk in [data[i : i + 1] for i in range(len(data))] if byte_by_byte else [data]:
        conn.feed(chunk)
    assert conn.written() == b"ping\n"
    assert not conn.closed
    info = server.connections[conn.connection_id].proxy_info
    assert info is not None
    assert (info.version, info.source, info.destination) == (1, None, None)
    assert server.connections[conn.connection_id].remote_host == "127.0.0.1"
    assert server.connections[conn.connection_id].remote_port == 50001
    assert [(e.address, e.port) for e in recorder.of("connection_request")] == [
        ("127.0.0.1", 50001)
    ]
    assert recorder.of("error") == []
    assert server.stats()["refused"]["proxy"] == 0


@pytest.mark.parametrize("header", [b"PROXY UNKNOWNX\r\n", b"PROXY  UNKNOWN\r\n", b"PROXY\r\n"])
def test_what_only_looks_like_unknown_is_still_refused(header):
    server, recorder = in_memory(**PROXIED)
    conn = MemoryConnection(server, host="127.0.0.1")
    conn.feed(header + b"ping\n")
    assert conn.closed
    assert [e.error_code for e in recorder.of("error")] == [901]


# -- header fields are checked ----------------------------------------------------------------

BAD_HEADERS = {
    "a host name": (v1("TCP4", "evil.example"), "source address 'evil.example'"),
    "leading zeros": (v1("TCP4", "01.2.3.4"), "source address '01.2.3.4'"),
    "three octets": (v1("TCP4", "1.2.3"), "source address"),
    "IPv6 under TCP4": (v1("TCP4", "2001:db8::1"), "not an IPv4 address"),
    "mapped IPv6 under TCP4": (v1("TCP4", "::ffff:1.2.3.4"), "not an IPv4 address"),
    "IPv4 under TCP6": (v1("TCP6", "1.2.3.4"), "not an IPv6 address"),
    "a scope id": (v1("TCP6", "fe80::1%eth0"), "not an IPv6 address"),
    "a bad destination": (
        b"PROXY TCP4 198.51.100.7 localhost 40000 443\r\n",
        "destination address 'localhost'",
    ),
    "port 99999": (v1("TCP4", "198.51.100.7", 99999), "source port 99999"),
    "port 65536": (v1("TCP4", "198.51.100.7", 65536), "source port 65536"),
    "port -5": (v1("TCP4", "198.51.100.7", -5), "source port b'-5'"),
    "port +5": (v1("TCP4", "198.51.100.7", "+5"), "source port b'+5'"),
    "port 080": (v1("TCP4", "198.51.100.7", "080"), "source port b'080'"),
    "port 1_0": (v1("TCP4", "198.51.100.7", "1_0"), "source port b'1_0'"),
    "a bad destination port": (
        b"PROXY TCP4 198.51.100.7 203.0.113.1 40000 70000\r\n",
        "destination port 70000",
    ),
    "an extra field": (
        b"PROXY TCP4 198.51.100.7 203.0.113.1 40000 443 extra\r\n",
        "6 fields after PROXY, not 5",
    ),
    "an empty field": (
        b"PROXY TCP4  198.51.100.7 203.0.113.1 40000 443\r\n",
        "6 fields after PROXY, not 5",
    ),
}


@pytest.mark.parametrize("name", list(BAD_HEADERS))
def test_a_bad_address_or_port_is_a_malformed_header(name):
    header, reason = BAD_HEADERS[name]
    server, recorder = in_memory(**PROXIED)
    conn = MemoryConnection(server, host="127.0.0.1")
    conn.feed(header + b"ping\n")
    assert conn.closed
    assert conn.written() == b""
    (error,) = recorder.of("error")
    assert error.error_code == 901
    assert "bad PROXY protocol header: an invalid v1 header" in error.description
    assert reason in error.description
    assert recorder.of("connection_request") == []
    assert server.stats()["refused"]["proxy"] == 1


def test_a_good_header_with_port_zero_is_served():
    server, recorder = in_memory(**PROXIED)
    conn = MemoryConnection(server, host="127.0.0.1")
    conn.feed(v1("TCP4", "198.51.100.7", 0) + b"ping\n")
    assert conn.written() == b"ping\n"
    assert [(e.address, e.port) for e in recorder.of("connection_request")] == [("198.51.100.7", 0)]


# -- one client, one address ------------------------------------------------------------------

#: (first header, second header): two spellings of one client
SAME_CLIENT = {
    "mapped": (v1("TCP4", "198.51.100.7"), v1("TCP6", "::ffff:198.51.100.7"), "198.51.100.7"),
    "uncompressed": (v1("TCP6", "2001:db8::1"), v1("TCP6", "2001:DB8:0:0:0:0:0:1"), "2001:db8::1"),
    "v2 and v1": (v2_inet6("2001:db8::1"), v1("TCP6", "2001:db8::1"), "2001:db8::1"),
    "v2 mapped": (v2_inet6("::ffff:198.51.100.7"), v1("TCP4", "198.51.100.7"), "198.51.100.7"),
}


@pytest.mark.parametrize("name", list(SAME_CLIENT))
def test_spellings_of_one_client_share_its_per_address_limit(name):
    first_header, second_header, canonical = SAME_CLIENT[name]
    server, recorder = in_memory(**PROXIED, MaxConnectionsPerAddress=1)
    first = MemoryConnection(server, host="127.0.0.1", port=50001)
    first.feed(first_header + b"one\n")
    assert first.written() == b"one\n"
    connection = server.connections[first.connection_id]
    assert connection.remote_host == canonical
    assert connection.proxy_info is not None
    assert connection.proxy_info.source == (canonical, 40000)
    second = MemoryConnection(server, host="127.0.0.1", port=50002)
    second.feed(second_header + b"two\n")
    assert second.closed
    assert second.written() == b""
    assert server.stats()["refused"]["per_address"] == 1
    first.close()
    third = MemoryConnection(server, host="127.0.0.1", port=50003)
    third.feed(second_header + b"three\n")
    assert third.written() == b"three\n"  # the first one's count was released
    assert [e.address for e in recorder.of("connection_request")] == [canonical, canonical]


@pytest.mark.parametrize("name", list(SAME_CLIENT))
def test_spellings_of_one_client_are_one_address_for_access_decisions(name):
    first_header, second_header, canonical = SAME_CLIENT[name]
    # BlockedClients written one way blocks every spelling
    server, _ = in_memory(**PROXIED, BlockedClients=canonical)
    for port, header in ((50001, first_header), (50002, second_header)):
        conn = MemoryConnection(server, host="127.0.0.1", port=port)
        conn.feed(header + b"x\n")
        assert conn.closed
    assert server.stats()["refused"]["access"] == 2
    # a connection_request listener sees the one spelling it can compare
    server, _ = in_memory(**PROXIED)
    seen: list[str] = []

    def only_others(event: Any) -> None:
        seen.append(event.address)
        event.accept = event.address != canonical

    server.on("connection_request", only_others)
    for port, header in ((50001, first_header), (50002, second_header)):
        conn = MemoryConnection(server, host="127.0.0.1", port=port)
        conn.feed(header + b"x\n")
        assert conn.closed
    assert seen == [canonical, canonical]


# -- through real sockets ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_v1_unknown_over_a_real_socket(server, recorder):
    server.default_eol = b"\n"
    server.config("ProxyProtocol=True")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)

    def talk(header: bytes) -> tuple[bytes, int]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(header + b"ping\n")
            return read_until(sock, 5), sock.getsockname()[1]

    short, short_port = await in_thread(talk, b"PROXY UNKNOWN\r\n")
    long, long_port = await in_thread(talk, b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 9 10\r\n")
    assert (short, long) == (b"ping\n", b"ping\n")
    requests = [(e.address, e.port) for e in recorder.of("connection_request")]
    assert requests == [("127.0.0.1", short_port), ("127.0.0.1", long_port)]
    assert recorder.of("error") == []
    assert server.stats()["refused"]["proxy"] == 0


@pytest_twisted.ensureDeferred
async def test_bad_fields_are_refused_over_a_real_socket(server, recorder):
    server.default_eol = b"\n"
    server.config("ProxyProtocol=True")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    for header in (v1("TCP4", "evil.example"), v1("TCP4", "198.51.100.7", 99999)):
        assert await in_thread(client, port, header + b"ping\n", 5, timeout=3) == b""
    assert server.stats()["refused"]["proxy"] == 2
    assert [e.error_code for e in recorder.of("error")] == [901, 901]
    assert recorder.of("connection_request") == []


@pytest_twisted.ensureDeferred
async def test_a_socket_peer_and_a_header_spell_one_client_alike():
    """
    A dual-stack socket reports an IPv4 client as ``::ffff:127.0.0.1``; a
    header may name it so too.  Both are 127.0.0.1, one address under
    MaxConnectionsPerAddress.
    """
    srv = TCPServer()
    srv.default_eol = b"\n"
    srv.config("UseIPv6=2")
    srv.config("ProxyProtocol=True")
    srv.config("ProxyProtocolDetect=True")  # direct clients too
    srv.config("MaxConnectionsPerAddress=1")
    addresses: list[str] = []
    srv.on("connection_request", lambda e: addresses.append(e.address))
    srv.on("data_in", lambda e: srv.send(e.connection_id, e.text + b"\n"))
    port = listen(srv)
    direct = await in_thread(socket.create_connection, ("127.0.0.1", port), 5)
    try:
        direct.sendall(b"direct\n")
        assert await in_thread(read_until, direct, 7) == b"direct\n"
        header = v1("TCP6", "::ffff:127.0.0.1")
        assert await in_thread(client, port, header + b"proxied\n", 8, timeout=3) == b""
        assert srv.stats()["refused"]["per_address"] == 1
        other = v1("TCP6", "2001:DB8:0:0:0:0:0:1")
        assert await in_thread(client, port, other + b"other\n", 6) == b"other\n"
    finally:
        direct.close()
        await srv.shutdown(timeout=2)
    assert addresses == ["127.0.0.1", "2001:db8::1"]
