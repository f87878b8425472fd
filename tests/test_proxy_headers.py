"""PROXY headers: v1 ``UNKNOWN``, checked address fields, and one spelling of
a client address for access lists and admission limits, whether it came from
the socket or from a header.  In memory, then through real sockets."""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
import pytest_twisted
from helpers import in_memory, in_thread, listen, read_until

from tcpserver.access import canonical_host, parse_ip
from tcpserver.testing import MemoryConnection

#: in_memory(**PROXIED): an echo server behind the PROXY protocol
PROXIED: dict[str, Any] = {"default_eol": b"\n", "echo": True, "ProxyProtocol": True}


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
