"""Admission control: MaxConnectionsPerAddress, MaxAcceptRate(PerAddress).

The sans-IO core (tcpserver.admission) with properties, then real sockets:
plaintext, TLS (refused before any handshake work, which Twisted's
LimitTotalConnectionsFactory gets wrong under listenSSL, twisted#6640) and
behind a PROXY header (the real client is what is limited).
"""

from __future__ import annotations

import socket
import ssl

import pytest
import pytest_twisted
from helpers import client, in_thread, listen, read_until, until
from hypothesis import given
from hypothesis import strategies as st

from tcpserver import SSLStartMode, TCPServerError
from tcpserver.admission import PER_ADDRESS, RATE, Admission, TokenBucket

# -- the core -------------------------------------------------------------------------------


@given(
    rate=st.floats(min_value=0.1, max_value=1000),
    steps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_a_bucket_never_gives_more_than_its_burst_plus_its_rate(rate, steps):
    bucket = TokenBucket(rate, 0.0)
    now = 0.0
    taken = 0
    for step in steps:
        now += step
        taken += bucket.take(now)
    assert taken <= max(rate, 1.0) + rate * now + 1e-6


@given(rate=st.floats(min_value=1, max_value=100))
def test_a_full_bucket_gives_its_burst_at_once(rate):
    bucket = TokenBucket(rate, 5.0)
    given_now = sum(bucket.take(5.0) for _ in range(int(rate) + 5))
    assert given_now == int(max(rate, 1.0))


@given(
    cap=st.integers(min_value=1, max_value=5),
    ops=st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=100),
)
def test_per_address_cap_holds_and_release_frees(cap, ops):
    admission = Admission(per_address=cap)
    open_: dict[str, int] = {}
    for address, connect in ops:
        if connect:
            reason = admission.admit(address, 0.0)
            if open_.get(address, 0) < cap:
                assert reason is None
                open_[address] = open_.get(address, 0) + 1
            else:
                assert reason == PER_ADDRESS
        elif open_.get(address):
            admission.release(address)
            open_[address] -= 1
        assert admission.open_from(address) == open_.get(address, 0) <= cap


def test_rates_global_and_per_address():
    admission = Admission(rate=3, rate_per_address=2)
    assert [admission.admit("a", 0.0) for _ in range(3)] == [None, None, RATE]
    assert admission.admit("b", 0.0) is None  # the global bucket's third token
    assert admission.admit("c", 0.0) == RATE  # the global bucket is empty
    assert admission.admit("a", 0.5) is None  # half a second: one more each
    assert admission.admit("a", 0.5) == RATE


def test_per_address_buckets_are_pruned_when_idle(monkeypatch):
    monkeypatch.setattr("tcpserver.admission.PRUNE_AT", 3)
    admission = Admission(rate_per_address=1)
    for index in range(3):
        assert admission.admit(f"10.0.0.{index}", 0.0) is None
    assert admission.admit("10.0.0.9", 10.0) is None  # the others are full again
    assert set(admission._buckets) == {"10.0.0.9"}


def test_bad_values_are_10022_showing_the_value(server):
    for setting in ("MaxConnectionsPerAddress=-1", "MaxAcceptRate=fast", "MaxAcceptRate=-2"):
        with pytest.raises(TCPServerError) as caught:
            server.config(setting)
        assert caught.value.code == 10022
        assert setting.split("=")[1] in str(caught.value)


# -- real sockets ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_per_address_cap_refuses_the_extra_connection_only(server, recorder):
    server.default_eol = b"\n"
    server.config("MaxConnectionsPerAddress=2")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    first = socket.create_connection(("127.0.0.1", port))
    second = socket.create_connection(("127.0.0.1", port))
    try:
        await recorder.wait_for(lambda: len(recorder.of("connected")) == 2)
        # a third from the same address: closed, no events, counted
        assert await in_thread(client, port, b"x\n", 2, timeout=3) == b""
        await until(lambda: server.stats()["refused"]["per_address"] == 1)
        assert len(recorder.of("connection_request")) == 2
        # another address is not limited by this one's connections
        other = socket.socket()
        other.bind(("127.0.0.2", 0))
        other.connect(("127.0.0.1", port))
        with other:
            other.sendall(b"hi\n")
            assert await in_thread(read_until, other, 3) == b"hi\n"
        # the two first still work, and a closed one frees a place
        second.sendall(b"still\n")
        assert await in_thread(read_until, second, 6) == b"still\n"
    finally:
        first.close()
    await recorder.wait_for(lambda: len(recorder.of("disconnected")) >= 2)
    assert await in_thread(client, port, b"again\n", 6) == b"again\n"
    second.close()


@pytest_twisted.ensureDeferred
async def test_accept_rate_refuses_before_any_tls_work(server, recorder, tls):
    server.default_eol = b"\n"
    server.ssl_cert = tls.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    server.config("MaxAcceptRate=2")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    context = tls.client_context()

    def burst() -> list[bytes | str]:
        results: list[bytes | str] = []
        for _ in range(6):
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    context.wrap_socket(raw, server_hostname="localhost") as sock,
                ):
                    sock.sendall(b"ping\n")
                    results.append(read_until(sock, 5))
            except (ssl.SSLError, OSError) as exc:
                results.append(type(exc).__name__)
        return results

    results = await in_thread(burst)
    answered = [r for r in results if r == b"ping\n"]
    assert 2 <= len(answered) <= 3  # the burst, plus at most one refilled token
    stats = server.stats()
    assert stats["refused"]["rate"] == 6 - len(answered)
    assert stats["tls_handshakes"] == len(answered)
    assert stats["tls_failures"] == 0  # refused before the handshake began
    assert recorder.of("error") == []


@pytest_twisted.ensureDeferred
async def test_limits_apply_to_the_real_client_behind_a_proxy(server, recorder):
    server.default_eol = b"\n"
    server.config("ProxyProtocol=True")
    server.config("MaxConnectionsPerAddress=1")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)

    def via_proxy(source: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(f"PROXY TCP4 {source} 127.0.0.1 40000 {port}\r\n".encode())
        return sock

    first = via_proxy("198.51.100.7")
    try:
        first.sendall(b"one\n")
        assert await in_thread(read_until, first, 4) == b"one\n"
        # same real client through the same proxy: refused
        second = via_proxy("198.51.100.7")
        with second:
            second.sendall(b"two\n")
            assert await in_thread(read_until, second, 1, 3) == b""
        # another real client through the same proxy address: served
        third = via_proxy("198.51.100.8")
        with third:
            third.sendall(b"three\n")
            assert await in_thread(read_until, third, 6) == b"three\n"
    finally:
        first.close()
    assert server.stats()["refused"]["per_address"] == 1
    hosts = [event.address for event in recorder.of("connection_request")]
    assert hosts == ["198.51.100.7", "198.51.100.8"]


@pytest_twisted.ensureDeferred
async def test_limits_change_at_runtime(server, recorder):
    server.default_eol = b"\n"
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    port = listen(server)
    held = socket.create_connection(("127.0.0.1", port))
    try:
        await recorder.wait_for(lambda: len(recorder.of("connected")) == 1)
        server.config("MaxConnectionsPerAddress=1")
        # the connection accepted before the limit is not counted under it
        assert await in_thread(client, port, b"a\n", 2) == b"a\n"
        server.config("MaxConnectionsPerAddress=0")
        assert await in_thread(client, port, b"b\n", 2) == b"b\n"
    finally:
        held.close()


def test_a_clock_stepped_back_does_not_starve_a_bucket():
    admission = Admission(rate=10)
    for _ in range(10):
        assert admission.admit("a", 1000.0) is None
    assert admission.admit("a", 1000.0) == RATE
    # the wall clock steps back a minute (NTP): refilling restarts from there
    assert admission.admit("a", 940.0) == RATE
    assert admission.admit("a", 941.0) is None


def test_pruning_runs_at_most_once_per_interval(monkeypatch):
    monkeypatch.setattr("tcpserver.admission.PRUNE_AT", 3)
    passes: list[float] = []
    admission = Admission(rate_per_address=0.1)  # buckets refill slowly: none is full
    real = admission._prune

    def counted(now: float) -> None:
        passes.append(now)
        real(now)

    monkeypatch.setattr(admission, "_prune", counted)
    for index in range(200):
        admission.admit(f"10.0.{index // 250}.{index % 250}", 5.0 + index / 1000)
    assert len(passes) == 1  # 200 new addresses in 0.2 s: one pass


def test_workers_share_the_global_accept_rate():
    from tcpserver.tap import Options

    options = Options()
    options.parseOptions(
        ["--worker-fd", "3", "--worker-count", "4", "--max-accept-rate", "100",
         "--max-accept-rate-per-address", "5"]
    )  # fmt: skip
    settings = options["server"].settings
    assert settings["MaxAcceptRate"] == 25
    assert settings["MaxAcceptRatePerAddress"] == 5  # per worker, as documented
