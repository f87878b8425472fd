"""The lifecycle table: every state reachable, every state can end, no way back."""

from __future__ import annotations

import contextlib
import gc
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import MemoryTLSClient, TLSFiles
from twisted.internet.defer import Deferred

from tcpserver import SSLStartMode, TCPServerError
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
from tcpserver.testing import MemoryConnection, SocketConnection, memory_server


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


# -- a closed connection is freed at once ------------------------------------------------


@contextlib.contextmanager
def _left_to_the_collector() -> Iterator[list[object]]:
    """
    Run the body with the garbage collector off; the list it yields is then
    filled with the tcpserver objects that only the collector would free
    (those in, or held by, reference cycles).
    """
    found: list[object] = []
    gc.collect()
    gc.disable()
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found.extend(o for o in gc.garbage if type(o).__module__.startswith("tcpserver."))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _echo(server):
    server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))


def _line_then_close(server, client):
    client.feed(b"hello\n")
    client.close()


def _server_disconnects(server, client):
    client.feed(b"hello\n")
    server.disconnect(client.connection_id)
    client.pump()


def _half_close(server, client):
    client.feed(b"hello\n")
    client.half_close()
    client.pump()


def _idle_timeout_fires(server, client):
    server.reactor.advance(2)
    client.pump()


def _async_listener(server, client):
    waiting: Deferred[None] = Deferred()
    server.on("data_in", lambda e: waiting)
    client.feed(b"hello\n")
    waiting.callback(None)
    client.close()


@pytest.mark.parametrize(
    ("settings", "extra", "drive"),
    [
        ((), None, _line_then_close),  # the one-step open and close
        ((), "disconnected", _line_then_close),
        ((), None, _server_disconnects),
        ((), None, _half_close),
        (("DefaultIdleTimeout=1",), None, _idle_timeout_fires),
        (("ReadIdleTimeout=30", "WriteIdleTimeout=30", "DefaultTimeout=5"), None, _line_then_close),
        (("CloseGracePeriod=5",), None, _server_disconnects),
        (("ProxyProtocol=True", "ProxyHeaderTimeout=5"), None, _line_then_close),
        (("SSLStartMode=detect",), None, _line_then_close),
        ((), None, _async_listener),
    ],
)
def test_a_closed_connection_leaves_no_reference_cycle(settings, extra, drive):
    """
    Nothing the connection's parts hold refers back to it once it is CLOSED
    (no reference cycles): reference counting frees it as soon as nobody
    holds it, so short connections cost the garbage collector nothing.
    """
    server = memory_server(default_eol=b"\n")
    _echo(server)
    for setting in settings:
        server.config(setting)
    if extra:
        server.on(extra, lambda e: None)
    with _left_to_the_collector() as cycles:
        client = SocketConnection(server)
        protocol = client.protocol
        assert protocol is not None
        if "ProxyProtocol=True" in settings:
            client.feed(b"PROXY TCP4 192.0.2.1 192.0.2.2 4000 80\r\n")
        drive(server, client)
        server.reactor.advance(10)
        client.pump()
        client.dispose()
        assert protocol.state is State.CLOSED
        connection_id = protocol.connection_id
        out = protocol.out()  # (its parts may have gone back to the pool at rest)
        with pytest.raises(TCPServerError) as raised:  # (the Outbound still names it)
            out.send(b"late\n")
        assert raised.value.code == 126
        assert repr(connection_id) in str(raised.value)
        del client, protocol, out, raised
    assert cycles == []


# -- and so is a TLS connection ----------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return TLSFiles(Path(tmp_path_factory.mktemp("lifecycle-tls")))


def _handshake(client, files, context=None):
    tls = MemoryTLSClient(client, context or files.client_context())
    tls.pump()
    assert tls.handshake_done, tls.error
    return tls


def _tls_echo_then_client_closes(server, client, files):
    tls = _handshake(client, files)
    tls.send(b"hello\n")
    tls.pump()
    assert tls.received == b"hello\n"
    client.close()


def _tls_server_disconnects(server, client, files):
    tls = _handshake(client, files)
    tls.send(b"hello\n")
    tls.pump()
    server.disconnect(client.connection_id)
    tls.pump()


def _tls_client_leaves_mid_handshake(server, client, files):
    MemoryTLSClient(client, files.client_context()).hello_only()
    client.close()


def _tls_client_sends_close_notify(server, client, files):
    tls = _handshake(client, files)
    tls.send(b"hello\n")
    tls.pump()
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.ssl.unwrap()
    client.feed(tls.outgoing.read())
    tls.pump()
    client.close()


def _starttls_echo_then_client_closes(server, client, files):
    client.feed(b"STARTTLS\n")
    tls = _handshake(client, files)
    tls.send(b"hello\n")
    tls.pump()
    assert tls.received == b"hello\n"
    client.close()


@pytest.mark.parametrize(
    ("settings", "extra", "drive"),
    [
        ((), None, _tls_echo_then_client_closes),
        ((), "disconnected", _tls_echo_then_client_closes),
        ((), None, _tls_server_disconnects),
        (("LogSSLPackets=True",), "ssl_status", _tls_echo_then_client_closes),
        ((), None, _tls_client_leaves_mid_handshake),
        ((), None, _tls_client_sends_close_notify),
        (("SSLStartMode=explicit",), None, _starttls_echo_then_client_closes),
    ],
)
def test_a_closed_tls_connection_leaves_no_reference_cycle(tls_files, settings, extra, drive):
    """
    The TLS session, its engine and OpenSSL's connection let go of each
    other and of the connection once it is CLOSED: a TLS accept costs the
    garbage collector nothing either (each used to leave a cycle of a
    dozen objects for it to find).
    """
    server = memory_server(default_eol=b"\n")
    server.ssl_cert = tls_files.certificate()
    server.ssl_start_mode = SSLStartMode.IMPLICIT

    def on_data(event):
        if event.text == b"STARTTLS":
            server.start_ssl(event.connection_id)
        else:
            server.send(event.connection_id, event.text + b"\n")

    server.on("data_in", on_data)
    for setting in settings:
        server.config(setting)
    if extra:
        server.on(extra, lambda e: None)
    with _left_to_the_collector() as cycles:
        client = SocketConnection(server)
        protocol = client.protocol
        assert protocol is not None
        drive(server, client, tls_files)
        server.reactor.advance(10)
        client.pump()
        client.dispose()
        assert protocol.state is State.CLOSED
        del client, protocol
    assert cycles == []
