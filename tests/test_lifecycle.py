"""The lifecycle table: every state reachable, every state can end, no way back."""

from __future__ import annotations

import pytest

from tcpserver.lifecycle import (
    DELIVERING,
    ENDED,
    MOVES,
    SENDABLE,
    WAS_OPEN,
    LifecycleError,
    State,
    check_move,
)
from tcpserver.testing import MemoryConnection, memory_server


def _reachable(start: State) -> set[State]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in MOVES[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_state_is_reachable_and_every_state_can_end():
    assert set(MOVES) == set(State)
    assert _reachable(State.NEW) == set(State)
    for state in State:
        assert State.CLOSED in _reachable(state), state


def test_closed_is_final_and_nothing_goes_back_to_new():
    assert MOVES[State.CLOSED] == frozenset()
    assert all(State.NEW not in targets for targets in MOVES.values())
    # once the transport is gone, only the end remains
    for state in ENDED:
        assert _reachable(state) <= ENDED, state


def test_a_connection_that_never_opened_never_owes_events():
    never_open = {State.NEW, State.REQUESTING, State.HANDSHAKING, State.REFUSED}
    assert not never_open & WAS_OPEN
    # REFUSED leads only to CLOSED: no connected, no disconnected
    assert MOVES[State.REFUSED] == {State.CLOSED}


def test_state_sets_agree():
    assert not SENDABLE & ENDED
    assert State.DRAINING not in SENDABLE  # closing: no new sends
    assert State.UPGRADING not in DELIVERING  # STARTTLS: no data_in until TLS is up


def test_an_illegal_move_raises_at_once():
    check_move(State.OPEN, State.DRAINING)
    with pytest.raises(LifecycleError, match="from CLOSED to OPEN"):
        check_move(State.CLOSED, State.OPEN)


def test_a_connection_walks_the_table():
    server = memory_server(default_eol=b"\n")
    seen: list[State] = []
    server.on("data_in", lambda e: seen.append(server.connections[e.connection_id].protocol.state))
    server.on(
        "disconnected", lambda e: seen.append(server.connections[e.connection_id].protocol.state)
    )
    client = MemoryConnection(server)
    protocol = client.protocol
    assert protocol is not None
    assert protocol.state is State.REQUESTING or protocol.state is State.OPEN
    client.feed(b"hello\n")
    client.half_close()  # delivered, answered, closed
    assert protocol.state in (State.DRAINING, State.CLOSING)
    server.reactor.advance(0)
    assert seen == [State.OPEN, State.FAREWELL]
    assert protocol.state is State.CLOSED
    protocol.check_invariants()
