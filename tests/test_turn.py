"""TurnSends: a reactor turn's sends leave together at its end, in order, bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tcpserver.turn import SEND_AT_ONCE, TURN_LIMIT, TURN_SENDERS, TurnSends


class Peer:
    def __init__(self, sent: list[tuple[str, bytes]] | None = None, name: str = "a") -> None:
        self.name = name
        self.sent = sent if sent is not None else []

    def send_now(self, data: bytes) -> None:
        # (bytes, as a transport takes them - a turn gathers a sender's
        # later pieces in a bytearray)
        assert type(data) is bytes, type(data)
        self.sent.append((self.name, data))


def test_a_turns_sends_leave_at_its_end_one_send_per_connection_in_first_send_order():
    clock = Clock()
    turn = TurnSends(clock)
    log: list[tuple[str, bytes]] = []
    a, b = Peer(log, "a"), Peer(log, "b")
    turn.send(b, b"b1")
    turn.send(a, b"a1")
    turn.send(b, b"b2")
    assert log == []
    assert turn.holds(a)
    assert turn.holds(b)
    assert turn.held == 6
    clock.advance(0)
    assert log == [("b", b"b1b2"), ("a", b"a1")]
    assert not turn.holds(a)
    assert turn.held == 0
    turn.send(a, b"a2")  # a new turn, a new call
    clock.advance(0)
    assert log[-1] == ("a", b"a2")


def test_a_large_send_goes_at_once_behind_what_was_kept():
    clock = Clock()
    turn = TurnSends(clock)
    a = Peer()
    big = b"x" * SEND_AT_ONCE
    turn.send(a, big)
    assert a.sent == [("a", big)]
    assert not turn.holds(a)
    turn.send(a, b"small")
    turn.send(a, big)  # (in order: after what the turn kept)
    assert a.sent[1:] == [("a", b"small" + big)]
    assert turn.held == 0
    clock.advance(0)
    assert len(a.sent) == 2


def test_a_few_large_answers_go_at_once_not_at_the_turns_end():
    # (four 4 KiB lines echoed: the client starts on them while the turn reads on)
    clock = Clock()
    turn = TurnSends(clock)
    a = Peer()
    for _ in range(3):
        turn.send(a, b"x" * 4096)
    assert a.sent == []
    turn.send(a, b"y" * 4096)
    assert a.sent == [("a", b"x" * 12288 + b"y" * 4096)]
    assert not turn.holds(a)


def test_everything_kept_goes_once_the_turn_holds_its_limit():
    clock = Clock()
    turn = TurnSends(clock)
    log: list[tuple[str, bytes]] = []
    peers = [Peer(log, str(i)) for i in range(TURN_LIMIT // 1000 + 1)]
    for peer in peers:
        turn.send(peer, b"y" * 1000)
    assert len(log) == len(peers)
    assert turn.held == 0


def test_take_sends_now_and_drop_forgets():
    clock = Clock()
    turn = TurnSends(clock)
    a, b = Peer(name="a"), Peer(name="b")
    turn.send(a, b"1")
    turn.send(b, b"2")
    turn.take(a)
    assert a.sent == [("a", b"1")]
    turn.drop(b)
    assert turn.held == 0
    clock.advance(0)
    assert a.sent == [("a", b"1")]
    assert b.sent == []
    turn.take(a)  # (nothing kept: nothing sent)
    assert a.sent == [("a", b"1")]


def test_a_sender_that_raises_costs_only_its_own_bytes(logged):
    class Broken(Peer):
        def send_now(self, data: bytes) -> None:
            raise RuntimeError("boom")

    clock = Clock()
    turn = TurnSends(clock)
    good = Peer(name="good")
    turn.send(Broken(name="bad"), b"x")
    turn.send(good, b"y")
    clock.advance(0)
    assert good.sent == [("good", b"y")]
    assert len(logged.flush(RuntimeError)) == 1  # (and it was logged)


operation = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 2), st.integers(1, 3 * SEND_AT_ONCE // 2)),
    st.tuples(st.just("take"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("drop"), st.integers(0, 2), st.just(0)),
    st.tuples(st.just("turn"), st.just(0), st.just(0)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=40))
def test_every_byte_leaves_once_in_order_unless_dropped(operations):
    clock = Clock()
    turn = TurnSends(clock)
    peers = [Peer(name=str(i)) for i in range(3)]
    expected: list[bytes] = [b"", b"", b""]
    kept: list[bytes] = [b"", b"", b""]  # what the model says waits
    counter = 0
    for kind, index, size in operations:
        peer = peers[index]
        if kind == "send":
            counter += 1
            data = bytes([counter % 256]) * size
            turn.send(peer, data)
            kept[index] += data
        elif kind == "take":
            turn.take(peer)
        elif kind == "drop":
            turn.drop(peer)
            kept[index] = b""
        else:
            clock.advance(0)
        for i, p in enumerate(peers):
            out = b"".join(data for _, data in p.sent)
            if not turn.holds(p):
                expected[i] += kept[i]
                kept[i] = b""
            assert out == expected[i]
        assert turn.held == sum(len(k) for k in kept)
        assert turn.held < TURN_LIMIT
        for p, k in zip(peers, kept, strict=True):
            assert len(k) < SEND_AT_ONCE or not turn.holds(p)
    clock.advance(0)
    for i, p in enumerate(peers):
        assert b"".join(data for _, data in p.sent) == expected[i] + kept[i]


def test_a_sender_alone_two_turns_in_a_row_sends_at_once():
    # (a single client in ping-pong: nobody to gather its answers with)
    clock = Clock()
    turn = TurnSends(clock)
    log: list[tuple[str, bytes]] = []
    a, b = Peer(log, "a"), Peer(log, "b")
    turn.send(a, b"1")
    assert log == []  # the first turn gathers
    clock.advance(0)
    assert log == [("a", b"1")]
    turn.send(a, b"2")  # alone again: at once
    assert log[-1] == ("a", b"2")
    assert not turn.holds(a)
    turn.send(a, b"3")  # (still alone in this turn: at once, in order)
    assert log[-1] == ("a", b"3")
    turn.send(b, b"x")  # a second sender in the turn is kept
    assert turn.holds(b)
    clock.advance(0)
    assert log[-1] == ("b", b"x")
    turn.send(a, b"4")  # the turn before had two senders: gathered again
    assert turn.holds(a)
    clock.advance(0)
    assert log[-1] == ("a", b"4")


def test_one_sender_per_turn_each_a_new_one_is_still_gathered():
    # (churn: every connection answers once; the answers still wait for the turn's end)
    clock = Clock()
    turn = TurnSends(clock)
    for i in range(5):
        peer = Peer(name=str(i))
        turn.send(peer, b"z")
        assert turn.holds(peer)
        assert peer.sent == []
        clock.advance(0)
        assert peer.sent == [(str(i), b"z")]


def test_a_closing_or_aborted_sender_is_not_kept_as_the_turns_one_sender():
    for end in ("take", "drop"):
        clock = Clock()
        turn = TurnSends(clock)
        a = Peer(name="a")
        turn.send(a, b"1")
        clock.advance(0)
        getattr(turn, end)(a)  # (its connection closes)
        turn.send(a, b"2")  # gathered, as any sender after a turn without one alone
        assert turn.holds(a), end
        clock.advance(0)
        assert a.sent == [("a", b"1"), ("a", b"2")]


# -- on a real socket: the connection's side ----------------------------------------------


def _socket_client(server):
    from tcpserver.testing import SocketConnection

    client = SocketConnection(server)
    assert client.protocol is not None
    return client


def _received(client) -> bytes:
    import select

    got = b""
    while select.select([client.client], [], [], 0.5)[0]:
        chunk = client.client.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_an_answer_waits_for_the_end_of_the_turn_then_leaves_in_one_send():
    from tcpserver.testing import memory_server

    server = memory_server(default_eol=b"\n")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text.upper() + b"\n"))
    client = _socket_client(server)
    protocol = client.protocol
    protocol.dataReceived(b"one\ntwo\n")  # (a read batch, delivered by hand: no pump)
    assert server.factory.turn.holds(protocol)
    server.reactor.advance(0)  # the turn ends
    assert not server.factory.turn.holds(protocol)
    assert _received(client) == b"ONE\nTWO\n"
    client.dispose()


def test_a_connection_alone_two_turns_in_a_row_gets_its_answer_at_once():
    from tcpserver.testing import memory_server

    server = memory_server(default_eol=b"\n")
    server.on("data_in", lambda e: server.send(e.connection_id, e.text.upper() + b"\n"))
    client = _socket_client(server)
    protocol = client.protocol
    protocol.dataReceived(b"one\n")
    assert server.factory.turn.holds(protocol)  # the first turn gathers
    server.reactor.advance(0)
    assert _received(client) == b"ONE\n"
    protocol.dataReceived(b"two\n")  # alone again: sent on the socket now, no turn's end
    assert not server.factory.turn.holds(protocol)
    assert _received(client) == b"TWO\n"
    client.dispose()


def test_a_close_sends_what_the_turn_kept_before_the_fin():
    from tcpserver.testing import memory_server

    server = memory_server(default_eol=b"\n")

    def answer_and_close(event):
        server.send(event.connection_id, b"bye\n")
        server.disconnect(event.connection_id)

    server.on("data_in", answer_and_close)
    client = _socket_client(server)
    client.protocol.dataReceived(b"quit\n")
    client.pump()
    assert _received(client) == b"bye\n"  # (then EOF: _received stops at it)
    client.dispose()


def test_bytes_sent_at_once_go_behind_what_the_turn_kept():
    from tcpserver.testing import memory_server

    server = memory_server(default_eol=b"\n")
    client = _socket_client(server)
    protocol = client.protocol
    protocol.send_raw(b"kept ")
    protocol.send_at_once(b"now")  # (a TLS handshake flight, an alert)
    assert not server.factory.turn.holds(protocol)
    assert _received(client) == b"kept now"
    client.dispose()


def test_everything_kept_goes_once_the_turn_holds_its_most_senders():
    # (a turn that reads thousands of connections keeps a bounded number of answers)
    clock = Clock()
    turn = TurnSends(clock)
    log: list[tuple[str, bytes]] = []
    peers = [Peer(log, str(i)) for i in range(TURN_SENDERS + 10)]
    for peer in peers[:TURN_SENDERS]:
        turn.send(peer, b"z")
    assert [name for name, _ in log] == [str(i) for i in range(TURN_SENDERS)]
    assert turn.held == 0
    for peer in peers[TURN_SENDERS:]:
        turn.send(peer, b"z")
    assert len(log) == TURN_SENDERS
    clock.advance(0)
    assert [name for name, _ in log] == [peer.name for peer in peers]
