"""Helpers for the real-socket and in-memory tests (imported by conftest)."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor

from tcpserver.events import EVENT_NAMES

Frame = tuple[bytes, bool]


class ModelFramer:
    """The API.md framing rules, written as plainly as possible."""

    def __init__(self, eol=b"", max_line_length=2048, single_line_mode=False, record_length=0):
        self.eol = eol
        self.max_line_length = max_line_length
        self.single_line_mode = single_line_mode
        self.record_length = record_length
        self.pending = b""
        self.skip_lf = False

    def receive(self, data: bytes) -> None:
        if self.skip_lf and data:
            self.skip_lf = False
            data = data[1:] if data[:1] == b"\n" else data
        self.pending += data

    def next_frame(self) -> Frame | None:
        if self.skip_lf and self.pending:
            self.skip_lf = False
            if self.pending[:1] == b"\n":
                self.pending = self.pending[1:]
        p = self.pending
        limit = self.max_line_length
        if self.record_length > 0:
            if len(p) < self.record_length:
                return None
            self.pending = p[self.record_length :]
            return p[: self.record_length], True
        if self.single_line_mode:
            idx = [i for i, b in enumerate(p) if b in (10, 13)]
            if idx:
                i = idx[0]
                if i > limit:
                    self.pending = p[limit:]
                    return p[:limit], False
                end = i + 1
                if p[i] == 13:
                    if end < len(p):
                        if p[end] == 10:
                            end += 1
                    else:
                        self.skip_lf = True
                self.pending = p[end:]
                return p[:i], True
            if len(p) > limit:
                self.pending = p[limit:]
                return p[:limit], False
            return None
        if self.eol:
            i = p.find(self.eol)
            if i >= 0:
                if i > limit:
                    self.pending = p[limit:]
                    return p[:limit], False
                self.pending = p[i + len(self.eol) :]
                return p[:i], True
            if len(p) >= limit + len(self.eol):
                self.pending = p[limit:]
                return p[:limit], False
            return None
        if not p:
            return None
        self.pending = b""
        return p, True

    def flush(self) -> bytes:
        rest, self.pending = self.pending, b""
        self.skip_lf = False
        return rest


class LogCapture:
    """Collects logged failures."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def failures(self) -> list[Any]:
        return [e["log_failure"] for e in self.events if "log_failure" in e]

    def flush(self, *types: type[BaseException]) -> list[Any]:
        """Remove and return the logged failures of the given types."""
        found, kept = [], []
        for event in self.events:
            failure = event.get("log_failure")
            if failure is not None and failure.check(*types):
                found.append(failure)
            else:
                kept.append(event)
        self.events = kept
        return found

    def messages(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events]


class Recorder:
    """Every event of a server, in order, with a way to wait for them."""

    def __init__(self, server: Any) -> None:
        self.events: list[tuple[str, Any]] = []
        self._waiters: list[tuple[Callable[[], bool], defer.Deferred[None]]] = []
        for name in EVENT_NAMES:
            server.on(name, self._make(name))

    def _make(self, name: str) -> Callable[[Any], None]:
        def listener(event: Any) -> None:
            self.events.append((name, event))
            self._check()

        return listener

    def _check(self) -> None:
        for item in list(self._waiters):
            predicate, waiting = item
            if predicate():
                self._waiters.remove(item)
                # resume the test after the event's dispatch has finished
                reactor.callLater(0, waiting.callback, None)

    def of(self, name: str) -> list[Any]:
        return [e for n, e in self.events if n == name]

    def names(self, connection_id: str | None = None) -> list[str]:
        return [
            n
            for n, e in self.events
            if connection_id is None or getattr(e, "connection_id", None) == connection_id
        ]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> defer.Deferred[None]:
        if predicate():
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()
        self._waiters.append((predicate, waiting))
        waiting.addTimeout(timeout, reactor)
        return waiting

    def wait(self, name: str, count: int = 1, timeout: float = 10) -> defer.Deferred[None]:
        return self.wait_for(lambda: len(self.of(name)) >= count, timeout)

    def data(self, connection_id: str | None = None) -> list[tuple[bytes, bool]]:
        return [
            (e.text, e.eol)
            for e in self.of("data_in")
            if connection_id is None or e.connection_id == connection_id
        ]


def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
    """Run a blocking client in a thread while the reactor serves."""
    from twisted.internet.threads import deferToThread

    return deferToThread(function, *args, **kwargs)


def sleep(seconds: float) -> defer.Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def venv_bin(name: str) -> str:
    """An executable installed next to this Python (twistd, ...)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def client(
    port: int,
    send: bytes = b"",
    expect: int = 0,
    *,
    shut: bool = False,
    timeout: float = 5.0,
    host: str = "127.0.0.1",
) -> bytes:
    """
    A blocking client: connect, send, optionally half-close, then read until
    ``expect`` bytes arrived (or EOF when ``expect`` is 0 and ``shut``).
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        if send:
            sock.sendall(send)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        return read_until(sock, expect, timeout, until_eof=shut and not expect)


def read_until(
    sock: socket.socket, expect: int, timeout: float = 5.0, until_eof: bool = False
) -> bytes:
    deadline = time.monotonic() + timeout
    got = b""
    while until_eof or len(got) < expect:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return got


class TLSFiles:
    """Test certificates, made fresh by trustme (nothing opaque is checked in)."""

    def __init__(self, directory: Any) -> None:
        import trustme
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12

        self.directory = directory
        self.ca = trustme.CA(organization_name="tcpserver test CA")
        self.other_ca = trustme.CA(organization_name="someone else's CA")
        self.ca_pem = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        server = self.ca.issue_cert(
            "localhost", "127.0.0.1", "::1", common_name="localhost", key_type=trustme.KeyType.RSA
        )
        self.server_pem = directory / "server.pem"  # key + certificate chain
        server.private_key_and_cert_chain_pem.write_to_path(str(self.server_pem))
        self.server_cert_pem = directory / "server.crt"
        server.cert_chain_pems[0].write_to_path(str(self.server_cert_pem))
        self.server_key_pem = directory / "server.key"
        server.private_key_pem.write_to_path(str(self.server_key_pem))
        other = self.ca.issue_cert("other.example", common_name="other.example")
        self.other_pem = directory / "other.pem"
        other.private_key_and_cert_chain_pem.write_to_path(str(self.other_pem))
        client = self.ca.issue_cert("client@example.org", common_name="test client")
        self.client_pem = directory / "client.pem"
        client.private_key_and_cert_chain_pem.write_to_path(str(self.client_pem))
        self.client_cert_pem = directory / "client.crt"
        client.cert_chain_pems[0].write_to_path(str(self.client_cert_pem))
        self.client_key_pem = directory / "client.key"
        client.private_key_pem.write_to_path(str(self.client_key_pem))
        stranger = self.other_ca.issue_cert("stranger@example.org", common_name="stranger")
        self.stranger_pem = directory / "stranger.pem"
        stranger.private_key_and_cert_chain_pem.write_to_path(str(self.stranger_pem))
        # an encrypted key and a PFX, both with a password
        key = serialization.load_pem_private_key(server.private_key_pem.bytes(), None)
        self.password = "s3cret"
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self.password.encode()),
        )
        self.encrypted_pem = directory / "encrypted.pem"
        self.encrypted_pem.write_bytes(encrypted + server.cert_chain_pems[0].bytes())
        from cryptography import x509

        certificate = x509.load_pem_x509_certificate(server.cert_chain_pems[0].bytes())
        ca_certificate = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        self.pfx = directory / "server.pfx"
        self.pfx.write_bytes(
            pkcs12.serialize_key_and_certificates(
                b"server",
                key,
                certificate,
                [ca_certificate],
                serialization.BestAvailableEncryption(self.password.encode()),
            )
        )
        self.server_der = directory / "server.der"
        self.server_der.write_bytes(certificate.public_bytes(serialization.Encoding.DER))

    def certificate(self, path: Any = None, **kw: Any) -> Any:
        from tcpserver import Certificate, CertStoreType

        return Certificate(CertStoreType.PEM_KEY_FILE, str(path or self.server_pem), **kw)

    def client_context(self, *, cert: Any = None, alpn: Any = None) -> Any:
        import ssl

        context = ssl.create_default_context(cafile=str(self.ca_pem))
        if cert is not None:
            context.load_cert_chain(str(cert))
        return context


def tls_client(
    port: int,
    context: Any,
    send: bytes = b"",
    expect: int = 0,
    *,
    server_name: str = "localhost",
    timeout: float = 5.0,
) -> tuple[bytes, Any]:
    """Connect with TLS, send, read ``expect`` bytes; return them and the SSL socket info."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as sock,
    ):
        if send:
            sock.sendall(send)
        got = read_until(sock, expect, timeout) if expect else b""
        info = {
            "version": sock.version(),
            "cipher": sock.cipher(),
            "peer": sock.getpeercert(),
            "session_reused": sock.session_reused,
            "session": sock.session,
        }
        return got, info


class MemoryTLSClient:
    """
    A Python ``ssl`` client (MemoryBIO) on a :class:`tcpserver.testing.MemoryConnection`:
    real OpenSSL on both sides, no sockets, the server's clock under test control.
    """

    def __init__(self, connection: Any, context: Any, server_name: str = "localhost") -> None:
        import ssl

        self.connection = connection
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_name)
        self.received = b""
        self.handshake_done = False
        self.error: Exception | None = None
        self._unread = b""  # sent, not yet read by the server

    def _step(self) -> bool:
        import ssl

        moved = False
        if not self.handshake_done and self.error is None:
            try:
                self.ssl.do_handshake()
                self.handshake_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                self.error = exc
        # like a socket: the server gets bytes only while it reads
        self._unread += self.outgoing.read()
        if self._unread and self.connection.reading and not self.connection.closed:
            data, self._unread = self._unread, b""
            self.connection.feed(data)
            moved = True
        written = self.connection.written()
        if written:
            self.incoming.write(written)
            moved = True
        if self.handshake_done:
            while True:
                try:
                    got = self.ssl.read(1 << 20)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLError as exc:
                    self.error = exc
                    break
                if not got:
                    break
                self.received += got
                moved = True
        return moved

    def pump(self, rounds: int = 50) -> None:
        """Move bytes both ways until nothing moves (the clock ticks in between)."""
        clock = self.connection.protocol.factory.reactor
        for _ in range(rounds):
            if not self._step():
                clock.advance(0)
                if not self._step():
                    return

    def hello_only(self) -> bytes:
        """Start the handshake and hand the server only the ClientHello."""
        import contextlib
        import ssl

        with contextlib.suppress(ssl.SSLWantReadError):
            self.ssl.do_handshake()
        hello: bytes = self.outgoing.read()
        self.connection.feed(hello)
        return hello

    def send(self, data: bytes) -> None:
        self.ssl.write(data)
        self.connection.feed(self.outgoing.read())
