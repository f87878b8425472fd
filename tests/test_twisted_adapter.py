"""The Twisted adapter: what it reads of tcp.Server / unix.Server exists, and works."""

from __future__ import annotations

import socket

import pytest
from twisted.internet import error, tcp, unix
from twisted.internet.testing import MemoryReactorClock, StringTransport

from tcpserver import _twisted
from tcpserver._twisted import (
    REQUIRED_ATTRIBUTES,
    direct_transport,
    ipv4_client,
    nothing_buffered,
)


class _Quiet:
    """A protocol that does nothing (the transport only needs one)."""

    def makeConnection(self, transport: object) -> None:
        pass

    def dataReceived(self, data: bytes) -> None:
        pass


def _tcp_pair() -> tuple[tcp.Server, socket.socket]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = socket.create_connection(listener.getsockname())
    accepted, address = listener.accept()
    listener.close()
    accepted.setblocking(False)
    port: object = None
    transport = tcp.Server(accepted, _Quiet(), address, port, 1, MemoryReactorClock())
    return transport, client


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_every_attribute_the_adapter_reads_exists_on_the_installed_twisted(kind):
    if kind == "tcp":
        transport, peer = _tcp_pair()
    else:
        left, peer = socket.socketpair()
        left.setblocking(False)
        port: object = None
        transport = unix.Server(left, _Quiet(), "peer", port, 1, MemoryReactorClock())
    try:
        for name in REQUIRED_ATTRIBUTES:
            assert hasattr(transport, name), f"{type(transport).__name__}.{name} is gone"
        direct: object = direct_transport(transport)
        assert direct is transport
        assert nothing_buffered(transport)
    finally:
        transport.socket.close()
        peer.close()


def test_only_the_plain_socket_transports_are_direct():
    assert direct_transport(StringTransport()) is None
    assert ipv4_client(StringTransport()) is None


def test_nothing_buffered_sees_what_the_transport_holds():
    transport, peer = _tcp_pair()
    try:
        assert ipv4_client(transport) == transport.client
        assert nothing_buffered(transport)
        transport.write(b"queued")  # buffered until the reactor writes it
        assert not nothing_buffered(transport)
        transport.doWrite()
        assert peer.recv(6) == b"queued"
        assert nothing_buffered(transport)
        transport.loseConnection()
        assert not nothing_buffered(transport)  # closing: nothing goes around it
    finally:
        transport.socket.close()
        peer.close()


def test_the_adapter_is_the_only_module_that_reads_transport_internals():
    import pathlib

    package = pathlib.Path(_twisted.__file__).parent
    names = ("_tempDataLen", "_writeDisconnecting", "_aborting", "dataBuffer")
    for path in package.rglob("*.py"):
        if path.name == "_twisted.py":
            continue
        text = path.read_text()
        for name in names:
            assert name not in text, f"{path.name} reads {name}"


def test_the_private_twisted_modules_tcpserver_uses_are_still_there():
    """A Twisted release that moves them fails here, loudly, not in a handshake."""
    from tcpserver._twisted import default_minimum_tls_version, haproxy_parsers

    v1, v2, invalid = haproxy_parsers()
    assert issubclass(invalid, Exception)
    parsed = v1.parse(b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80")
    assert (parsed.source.host, parsed.source.port) == ("192.0.2.1", 1234)
    assert callable(v2.parse)
    assert default_minimum_tls_version().name.startswith("TLSv1_")  # (a TLSVersion constant)


def test_what_the_tls_engine_reads_of_twisted_exists_on_the_installed_twisted():
    from twisted.internet.ssl import CertificateOptions
    from twisted.internet.testing import StringTransport
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from tcpserver._twisted import TLS_ENGINE_ATTRIBUTES, LeanTLSEngine

    tls_factory = TLSMemoryBIOFactory(CertificateOptions(), False, None)
    engine = LeanTLSEngine(tls_factory, _Quiet(), print, print)
    engine.makeConnection(StringTransport())
    for name in TLS_ENGINE_ATTRIBUTES:
        holder: object = engine
        for part in name.split("."):
            assert hasattr(holder, part), f"TLSMemoryBIOProtocol's {name} is gone"
            holder = getattr(holder, part)
    assert not engine.lean()  # (no handshake yet)


def test_what_the_record_path_reads_of_pyopenssl_exists_on_the_installed_release():
    from OpenSSL import SSL

    from tcpserver import _openssl

    assert _openssl.BINDINGS is not None, "pyOpenSSL's cffi bindings moved"
    connection = SSL.Connection(SSL.Context(SSL.TLS_METHOD), None)
    for name in _openssl.REQUIRED_ATTRIBUTES:
        assert hasattr(connection, name), f"OpenSSL.SSL.Connection.{name} is gone"
    assert isinstance(_openssl.record_io(connection), _openssl.RecordIO)


def _listener(family: int, tmp_path: object) -> tuple[socket.socket, object]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_UNIX:
        address: object = str(tmp_path / f"l{id(sock)}.sock")  # type: ignore[operator]
    else:
        address = ("::1" if family == socket.AF_INET6 else "127.0.0.1", 0)
    sock.bind(address)
    sock.listen(4)
    return sock, sock.getsockname()


def _families() -> list[int]:
    families: list[int] = [socket.AF_INET, socket.AF_UNIX]
    if socket.has_ipv6:
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
            families.append(socket.AF_INET6)
        except OSError:
            pass
    return families


@pytest.mark.parametrize("family", _families())
@pytest.mark.parametrize("timeout", [0.0, None, 3.0])
@pytest.mark.parametrize("default_timeout", [None, 7.0])
def test_a_quick_accept_makes_the_socket_the_standard_accept_makes(
    family, timeout, default_timeout, tmp_path
):
    """Same class, family, type, protocol, timeout and addresses as socket.accept's."""
    old_default = socket.getdefaulttimeout()
    socket.setdefaulttimeout(default_timeout)
    made = []
    try:
        for quick in (False, True):
            listener, address = _listener(family, tmp_path)
            listener.settimeout(timeout)
            port = type("Port", (), {"socket": listener})()
            if quick:
                assert _twisted.quick_accept(port)
                assert type(listener) is _twisted.QuickAcceptSocket
            peer = socket.socket(family, socket.SOCK_STREAM)
            peer.connect(address)
            accepted, peer_address = listener.accept()
            made.append(
                (
                    type(accepted),
                    accepted.family,
                    accepted.type,
                    accepted.proto,
                    accepted.gettimeout(),
                    accepted.getsockname() == listener.getsockname(),
                    peer_address == peer.getsockname(),
                )
            )
            peer.sendall(b"ping")
            accepted.settimeout(5)
            assert accepted.recv(4) == b"ping"  # (it is the connection)
            for sock in (accepted, peer, listener):
                sock.close()
    finally:
        socket.setdefaulttimeout(old_default)
    assert made[0] == made[1]
    assert made[1][0] is socket.socket  # (only the listening socket changes class)


def test_a_quick_accept_builds_no_enum_member(monkeypatch, tmp_path):
    """What it saves: socket.accept converts family and type to enums on every accept."""
    calls = []
    convert = socket._intenum_converter  # type: ignore[attr-defined]

    def counting(value: int, enum_class: type) -> object:
        calls.append(enum_class)
        return convert(value, enum_class)

    monkeypatch.setattr(socket, "_intenum_converter", counting)
    for quick in (False, True):
        listener, address = _listener(socket.AF_INET, tmp_path)
        if quick:
            _twisted.quick_accept(type("Port", (), {"socket": listener})())
        with socket.create_connection(address):
            calls.clear()
            accepted, _ = listener.accept()
            built = list(calls)
            accepted.close()
        listener.close()
        assert built == ([] if quick else [socket.AddressFamily, socket.SocketKind])


def test_quick_accept_leaves_other_ports_alone():
    assert not _twisted.quick_accept(object())  # (no socket)
    assert not _twisted.quick_accept(type("Port", (), {"socket": None})())

    class Wrapped(socket.socket):
        __slots__ = ()

    with Wrapped() as sock:
        assert not _twisted.quick_accept(type("Port", (), {"socket": sock})())
        assert type(sock) is Wrapped


def test_a_listening_tcp_socket_passes_tcp_nodelay_to_what_it_accepts(tmp_path):
    for on in (True, False):
        listener, address = _listener(socket.AF_INET, tmp_path)
        port = type("Port", (), {"socket": listener})()
        assert _twisted.listen_nodelay(port, on)
        with socket.create_connection(address):
            accepted, _ = listener.accept()
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == int(on)
            accepted.close()
        listener.close()


def test_only_listening_tcp_sockets_take_tcp_nodelay(tmp_path):
    unix_listener, _ = _listener(socket.AF_UNIX, tmp_path)
    with unix_listener:
        assert not _twisted.listen_nodelay(type("Port", (), {"socket": unix_listener})(), True)
    assert not _twisted.listen_nodelay(object(), True)  # (no socket)
    closed, _ = _listener(socket.AF_INET, tmp_path)
    closed.close()
    assert not _twisted.listen_nodelay(type("Port", (), {"socket": closed})(), True)


class _Named:
    """A protocol with a log prefix (what Server.__init__ asks of it)."""

    def logPrefix(self) -> str:
        return "named"

    def makeConnection(self, transport: object) -> None:
        pass


class _Port:
    _realPortNumber = 9000

    def getHost(self) -> object:
        return type("Address", (), {"port": self._realPortNumber})()


@pytest.mark.parametrize("client", [("127.0.0.1", 4000), ("::1", 4000, 0, 0)])
def test_a_quick_server_is_the_tcp_server_twisted_makes(client):
    """Every attribute Twisted's three __init__ methods set, with the same value, and its repr."""
    reactor = MemoryReactorClock()
    port = _Port()
    made = []
    for kind in (tcp.Server, _twisted.QuickServer):
        sock = socket.socket(socket.AF_INET6 if len(client) == 4 else socket.AF_INET)
        protocol = _Named()
        transport = kind(sock, protocol, client, port, 7, reactor)
        state = dict(vars(transport))
        state["repr"] = repr(transport)
        state.pop("repstr", None)  # (tcp.Server keeps it made; QuickServer makes it when asked)
        for name in ("socket", "protocol", "fileno"):
            assert state.pop(name) in (sock, protocol, sock.fileno)
        made.append((state, transport.getPeer(), transport.getHost(), transport in reactor.readers))
        assert sock.gettimeout() == 0.0  # (non-blocking, as Connection.__init__ leaves it)
        sock.close()
    assert made[0] == made[1]
    assert made[1][0]["repr"] == "<_Named #7 on 9000>"


def test_a_quick_accept_makes_the_tcp_ports_transports_quick_servers():
    port = tcp.Port(0, None)
    assert port.transport is tcp.Server
    _twisted.quick_accept(port)
    assert port.transport is _twisted.QuickServer
    assert tcp.Port.transport is tcp.Server  # (the class is left alone)


@pytest.mark.parametrize(
    "types",
    [
        (),
        (error.ConnectionAborted,),
        (error.ConnectionDone,),
        (error.ConnectionLost, error.ConnectionDone),
        (Exception,),
        (BaseException,),
        (KeyboardInterrupt,),
        (ValueError, error.ConnectionClosed),
        ("twisted.internet.error.ConnectionDone",),
        ("builtins.Exception",),
        ("twisted.internet.error.ConnectionAborted",),
    ],
)
def test_a_clean_close_answers_check_as_twisteds_connection_done(types):
    from twisted.internet.protocol import connectionDone

    assert _twisted.CLEAN_CLOSE.check(*types) == connectionDone.check(*types)
    assert _twisted.CLEAN_CLOSE.type is connectionDone.type


def test_closing_at_once_closes_the_socket_as_twisted_does():
    transport, client = _tcp_pair()
    lost: list[object] = []
    transport.protocol.connectionLost = lost.append  # type: ignore[assignment]
    _twisted.close_at_once(transport)
    assert lost == [_twisted.CLEAN_CLOSE]
    assert not transport.connected
    client.settimeout(5)
    assert client.recv(10) == b""  # (an orderly close: a FIN, not a reset)
    client.close()
