"""PROXY protocol v2 TLVs (Connection.proxy_info) and header auto-detection."""

from __future__ import annotations

import shutil
import socket
import struct
import textwrap
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from helpers import free_port, in_memory, in_thread, listen, read_until, wait_for_port

from tcpserver.testing import MemoryConnection, memory_server

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2_header(tlvs: bytes = b"", source=("198.51.100.7", 40001), local: bool = False) -> bytes:
    if local:
        return SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    addresses = (
        socket.inet_aton(source[0])
        + socket.inet_aton("203.0.113.1")
        + struct.pack("!HH", source[1], 443)
    )
    body = addresses + tlvs
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


#: in_memory(**PROXIED): an echo server behind the PROXY protocol
PROXIED: dict[str, Any] = {"default_eol": b"\n", "echo": True, "ProxyProtocol": True}


def test_every_tlv_is_exposed():
    ssl_value = (
        bytes([0x01 | 0x02])
        + struct.pack("!I", 0)
        + tlv(0x21, b"TLSv1.3")
        + tlv(0x22, b"client.example")
        + tlv(0x23, b"TLS_AES_256_GCM_SHA384")
        + tlv(0x24, b"SHA256")
        + tlv(0x25, b"RSA2048")
    )
    tlvs = (
        tlv(0x01, b"h2")
        + tlv(0x02, b"www.example.com")
        + tlv(0x05, b"\x00\x01unique")
        + tlv(0x20, ssl_value)
        + tlv(0x30, b"blue")
        + tlv(0x04, b"")
        + tlv(0xE0, b"custom")
    )
    server, recorder = in_memory(**PROXIED)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(v2_header(tlvs) + b"hello\n")
    assert client.written() == b"hello\n"
    info = server.connections[client.connection_id].proxy_info
    assert info is not None
    assert info.version == 2
    assert info.source == ("198.51.100.7", 40001)
    assert info.destination == ("203.0.113.1", 443)
    assert info.alpn == b"h2"
    assert info.authority == "www.example.com"
    assert info.unique_id == b"\x00\x01unique"
    assert info.netns == "blue"
    assert (info.ssl, info.ssl_client_cert, info.ssl_verified) == (True, True, True)
    assert info.ssl_version == "TLSv1.3"
    assert info.ssl_cn == "client.example"
    assert info.ssl_cipher == "TLS_AES_256_GCM_SHA384"
    assert (info.ssl_sig_alg, info.ssl_key_alg) == ("SHA256", "RSA2048")
    kinds = [kind for kind, _ in info.tlvs]
    assert kinds == [0x01, 0x02, 0x05, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x30, 0x04, 0xE0]
    assert (0xE0, b"custom") in info.tlvs
    assert recorder.of("connection_request")[0].address == "198.51.100.7"


def test_failed_client_verification_and_v1_and_local():
    server, _ = in_memory(**PROXIED)
    failed = MemoryConnection(server, host="127.0.0.1")
    failed.feed(v2_header(tlv(0x20, bytes([0x05]) + struct.pack("!I", 1))))
    info = server.connections[failed.connection_id].proxy_info
    assert info is not None
    assert (info.ssl, info.ssl_client_cert, info.ssl_verified) == (True, True, False)
    v1 = MemoryConnection(server, host="127.0.0.1", port=50001)
    v1.feed(b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 9000\r\n")
    info = server.connections[v1.connection_id].proxy_info
    assert info is not None
    assert (info.version, info.source, info.tlvs) == (1, ("192.0.2.9", 5555), ())
    local = MemoryConnection(server, host="127.0.0.1", port=50002)
    local.feed(v2_header(local=True) + b"ping\n")
    info = server.connections[local.connection_id].proxy_info
    assert info is not None
    assert info.source is None
    assert server.connections[local.connection_id].remote_host == "127.0.0.1"
    direct = memory_server()
    assert MemoryConnection(direct).protocol.proxy_info is None  # type: ignore[union-attr]


def test_a_truncated_tlv_is_a_bad_header():
    server, recorder = in_memory(**PROXIED)
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(v2_header(b"\x01\x00\x09h2") + b"x\n")
    assert client.closed
    (error,) = recorder.of("error")
    assert error.error_code == 901
    assert "TLV" in error.description
    assert recorder.of("connection_request") == []


def test_detection_serves_clients_without_a_header():
    server, recorder = in_memory(**PROXIED, ProxyProtocolDetect=True)
    proxied = MemoryConnection(server, host="127.0.0.1")
    proxied.feed(b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 9000\r\nvia proxy\n")
    assert proxied.written() == b"via proxy\n"
    direct = MemoryConnection(server, host="192.0.2.50", port=4000)
    direct.feed(b"PRO")  # could still be a header: wait
    assert direct.written() == b""
    direct.feed(b"BE\n")
    assert direct.written() == b"PROBE\n"
    assert server.connections[direct.connection_id].proxy_info is None
    addresses = [(e.address, e.port) for e in recorder.of("connection_request")]
    assert addresses == [("192.0.2.9", 5555), ("192.0.2.50", 4000)]


def test_detection_refuses_a_header_from_an_untrusted_address():
    server, recorder = in_memory(**PROXIED, ProxyProtocolDetect=True)
    spoof = MemoryConnection(server, host="192.0.2.66")
    spoof.feed(b"PROXY TCP4 10.0.0.1 127.0.0.1 5555 9000\r\n")
    assert spoof.closed
    assert recorder.of("error")[0].error_code == 10013
    assert server.stats()["refused"]["proxy"] == 1


def test_detection_serves_a_silent_client_after_the_header_timeout():
    server, recorder = in_memory(**PROXIED, ProxyProtocolDetect=True, ProxyHeaderTimeout=2)
    server.on("connected", lambda e: server.send(e.connection_id, b"220 hello\n"))
    client = MemoryConnection(server, host="192.0.2.50")
    assert client.written() == b""
    server.reactor.advance(2)
    assert client.written() == b"220 hello\n"  # a server-speaks-first protocol
    assert not client.closed
    assert recorder.of("error") == []


# -- a real HAProxy sending TLVs ----------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
OPTIONS = "proxy-v2-options unique-id,authority,crc32c"


@pytest.mark.skipif(not Path(HAPROXY).exists(), reason="haproxy is not installed")
@pytest_twisted.ensureDeferred
async def test_tlvs_from_a_real_haproxy(server, recorder, processes, tmp_path):
    server.default_eol = b"\n"
    server.config("ProxyProtocol=True")
    seen = []

    def on_data(event):
        seen.append(server.connections[event.connection_id].proxy_info)
        server.send(event.connection_id, event.text + b"\n")

    server.on("data_in", on_data)
    backend = listen(server)
    front = free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(
        textwrap.dedent(
            f"""
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend front
                bind 127.0.0.1:{front}
                unique-id-format conn-%{{+X}}o%ci-%cp
                default_backend back
            backend back
                server s1 127.0.0.1:{backend} send-proxy-v2 {OPTIONS}
            """
        )
    )
    balancer = processes.start([HAPROXY, "-db", "-f", str(config)])
    try:
        await in_thread(wait_for_port, front)

        def talk() -> tuple[bytes, int]:
            with socket.create_connection(("127.0.0.1", front), timeout=5) as sock:
                mine = sock.getsockname()[1]
                sock.sendall(b"tlv\n")
                return read_until(sock, 4), mine

        answer, mine = await in_thread(talk)
    finally:
        balancer.close()
    assert answer == b"tlv\n"
    info = seen[-1]
    assert info is not None
    assert info.version == 2
    assert info.source == ("127.0.0.1", mine)
    assert info.unique_id is not None
    assert info.unique_id.startswith(b"conn-")
    assert 0x03 in [kind for kind, _ in info.tlvs]  # the CRC32C TLV is passed on raw


def test_no_client_certificate_is_never_verified():
    server, _ = in_memory(**PROXIED)
    for client_flags in (0x00, 0x01):  # plaintext to the proxy; TLS without a certificate
        client = MemoryConnection(server, host="127.0.0.1", port=51000 + client_flags)
        client.feed(v2_header(tlv(0x20, bytes([client_flags]) + struct.pack("!I", 0))))
        info = server.connections[client.connection_id].proxy_info
        assert info is not None
        assert (info.ssl, info.ssl_client_cert, info.ssl_verified) == (
            bool(client_flags), False, False,
        )  # fmt: skip


def test_a_local_header_with_an_address_block_is_accepted():
    server, recorder = in_memory(**PROXIED)
    addresses = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2") + b"\x00\x01\x00\x02"
    body = addresses + tlv(0x05, b"health")
    header = SIGNATURE + bytes([0x20, 0x11]) + struct.pack("!H", len(body)) + body
    client = MemoryConnection(server, host="127.0.0.1")
    client.feed(header + b"ping\n")
    assert client.written() == b"ping\n"
    info = server.connections[client.connection_id].proxy_info
    assert info is not None
    assert info.unique_id == b"health"
    assert recorder.of("error") == []


def test_a_connection_gone_before_its_header_leaves_no_timer():
    server, _ = in_memory(**PROXIED)
    for port in range(3):
        client = MemoryConnection(server, host="127.0.0.1", port=52000 + port)
        client.close()
    assert server.reactor.getDelayedCalls() == []
