"""Length-prefixed framing (like Netty's LengthFieldBasedFrameDecoder) and send_frame."""

from __future__ import annotations

import itertools
import socket
import struct

import pytest
import pytest_twisted
from helpers import in_memory, in_thread, listen, read_until
from hypothesis import given
from hypothesis import strategies as st

from tcpserver import TCPServerError
from tcpserver.framing import Framer, FrameTooLongError
from tcpserver.testing import MemoryConnection

SIZES = st.sampled_from([1, 2, 4, 8])
ORDERS = st.sampled_from(["big", "little"])


def _encode(payload: bytes, size: int, order: str, adjust: int) -> bytes:
    return (len(payload) - adjust).to_bytes(size, order) + payload


def _cuts(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _frames(framer: Framer, pieces: list[bytes]) -> list[bytes]:
    out = []
    for piece in pieces:
        framer.receive(piece)
        while (frame := framer.next_frame()) is not None:
            out.append(frame[0])
    return out


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=20),
    size=SIZES,
    order=ORDERS,
    strip=st.booleans(),
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_the_same_frames_however_the_input_is_cut(payloads, size, order, strip, points):
    payloads = [p[: (1 << (8 * size)) - 1] for p in payloads]
    adjust = -size if not strip else 0  # a field that counts itself, when delivered whole
    stream = b"".join(_encode(p, size, order, adjust) for p in payloads)
    framer = Framer()
    framer.set_length_prefix(size, order, adjust, strip)
    got = _frames(framer, _cuts(stream, points))
    if strip:
        assert got == payloads
    else:
        assert got == [_encode(p, size, order, adjust) for p in payloads]
    assert framer.buffered == 0


@given(
    payloads=st.lists(st.binary(min_size=0, max_size=50), min_size=1, max_size=10),
    big=st.integers(min_value=101, max_value=5000),
    position=st.integers(min_value=0, max_value=10),
    points=st.lists(st.integers(min_value=0, max_value=20_000), max_size=20),
)
def test_a_too_long_frame_is_skipped_and_the_rest_still_framed(payloads, big, position, points):
    position = min(position, len(payloads))
    frames = [_encode(p, 2, "big", 0) for p in payloads]
    frames.insert(position, _encode(b"x" * big, 2, "big", 0))
    framer = Framer()
    framer.set_length_prefix(2, max_frame_length=100, skip_too_long=True)
    got: list[bytes] = []
    errors: list[tuple[int, int]] = []
    for piece in _cuts(b"".join(frames), points):
        framer.receive(piece)
        while True:
            try:
                frame = framer.next_frame()
            except FrameTooLongError as exc:
                errors.append((exc.length, exc.limit))
                continue
            if frame is None:
                break
            got.append(frame[0])
    assert got == payloads
    assert errors == [(big, 100)]


def test_a_large_frame_in_small_reads_is_linear():
    payload = bytes(range(256)) * 4096  # 1 MiB in 4 KiB reads
    framer = Framer()
    framer.set_length_prefix(4, max_frame_length=2 << 20)
    stream = _encode(payload, 4, "big", 0)
    got = _frames(framer, [stream[i : i + 4096] for i in range(0, len(stream), 4096)])
    assert got == [payload]


def test_bad_arguments():
    framer = Framer()
    with pytest.raises(ValueError, match="3"):
        framer.set_length_prefix(3)
    with pytest.raises(ValueError, match="middle"):
        framer.set_length_prefix(2, "middle")
    framer.set_length_prefix(1)
    with pytest.raises(ValueError, match="does not fit"):
        framer.encode_prefixed(b"x" * 256)


# -- through the server ---------------------------------------------------------------------------


def test_settings_frame_new_connections_and_send_frame_answers():
    server, recorder = in_memory(DefaultLengthPrefix=2)
    server.on("data_in", lambda e: server.send_frame(e.connection_id, e.text.upper()))
    client = MemoryConnection(server)
    client.feed(b"\x00\x05hel")
    client.feed(b"lo\x00\x02ok")
    assert [e.text for e in recorder.of("data_in")] == [b"hello", b"ok"]
    assert client.written() == b"\x00\x05HELLO\x00\x02OK"
    assert server.connections[client.connection_id].length_prefix == 2


def test_a_listener_switches_from_lines_to_frames_at_the_next_byte():
    server, recorder = in_memory(DefaultEOL="\\r\\n")

    def on_data(event):
        if event.text == b"BINARY":
            server.change_length_prefix(event.connection_id, 4, "little")

    server.on("data_in", on_data)
    client = MemoryConnection(server)
    client.feed(b"BINARY\r\n" + struct.pack("<I", 4) + b"a\r\nb" + struct.pack("<I", 0))
    assert [e.text for e in recorder.of("data_in")] == [b"BINARY", b"a\r\nb", b""]


def test_a_too_long_frame_fires_907_and_closes():
    server, recorder = in_memory(DefaultLengthPrefix=4, MaxFrameLength=1000)
    client = MemoryConnection(server)
    client.feed(struct.pack(">I", 1001) + b"x" * 10)
    (error,) = recorder.of("error")
    assert error.error_code == 907
    assert "1001" in error.description
    assert client.transport.aborted
    server.reactor.advance(0)
    assert recorder.of("disconnected")[0].status_code == 907
    assert recorder.of("data_in") == []


def test_a_too_long_frame_is_skipped_when_asked():
    server, recorder = in_memory(DefaultLengthPrefix=1, MaxFrameLength=3, SkipTooLongFrames=True)
    client = MemoryConnection(server)
    client.feed(b"\x02ab\x05xyz")
    client.feed(b"vw\x01c")
    assert [e.text for e in recorder.of("data_in")] == [b"ab", b"c"]
    assert [e.error_code for e in recorder.of("error")] == [907]
    assert not client.closed


def test_bad_values_are_10022_showing_the_value():
    server, _ = in_memory()
    client = MemoryConnection(server)
    cid = client.connection_id
    for args in [(3,), (2, "middle"), (True,), (2, "big", 0.5)]:
        with pytest.raises(TCPServerError) as caught:
            server.change_length_prefix(cid, *args)
        assert caught.value.code == 10022
        assert repr(args[-1]).strip("'") in str(caught.value)
    with pytest.raises(TCPServerError) as caught:
        server.send_frame(cid, b"no prefix set")
    assert caught.value.code == 10022
    for setting in ("DefaultLengthPrefix=3", "LengthPrefixByteOrder=middle", "MaxFrameLength=-1"):
        with pytest.raises(TCPServerError) as caught:
            server.config(setting)
        assert caught.value.code == 10022


@pytest_twisted.ensureDeferred
async def test_frames_through_a_real_socket(server, recorder):
    server.config("DefaultLengthPrefix=2")
    server.on("data_in", lambda e: server.send_frame(e.connection_id, e.text[::-1]))
    port = listen(server)
    payloads = [b"", b"a", b"hello", bytes(range(256)) * 40]
    stream = b"".join(_encode(p, 2, "big", 0) for p in payloads)

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for i in range(0, len(stream), 7):  # cut everywhere
                sock.sendall(stream[i : i + 7])
            return read_until(sock, len(stream))

    answer = await in_thread(talk)
    assert answer == b"".join(_encode(p[::-1], 2, "big", 0) for p in payloads)


def test_a_pending_skip_does_not_outlive_its_framing():
    framer = Framer()
    framer.set_length_prefix(1, max_frame_length=3, skip_too_long=True)
    framer.receive(b"\x09")  # a too-long frame announced: 9 bytes to skip
    with pytest.raises(FrameTooLongError):
        framer.next_frame()
    framer.set_length_prefix(0)  # the application switches framing: from the next byte
    framer.set_length_prefix(1, max_frame_length=3, skip_too_long=True)
    assert _frames(framer, [b"\x02hi\x01!"]) == [b"hi", b"!"]


def test_change_length_prefix_uses_the_limits_the_connection_was_accepted_with():
    server, recorder = in_memory(MaxFrameLength=10)
    client = MemoryConnection(server)
    server.config("MaxFrameLength=1000")  # for connections accepted from now on
    server.change_length_prefix(client.connection_id, 1)
    client.feed(b"\x14" + b"y" * 20)
    assert [e.error_code for e in recorder.of("error")] == [907]
