"""Helpers shared by the tests (the fixtures built on them are in conftest).

* Waiting: :func:`until` (a real-reactor test waits for a condition),
  :func:`wait_until` (the same, blocking, for tests without a reactor),
  :class:`Recorder` (every event of a server, and a wait for them).
* Servers: :func:`listen` (a real one on port 0), :func:`in_memory` (one on a
  clock, with a recorder), :func:`advance` (let a clock's time pass).
* Clients: :func:`client`, :func:`read_until`, :func:`read_line`,
  :func:`tls_client`, :class:`MemoryTLSClient`, :func:`wait_for_port`.
* Processes: :class:`ServerProcess` (a long-running child and its output,
  read by a thread) and :class:`ServerProcesses` (the ``processes``
  fixture: starts them, kills what is left at the end); :data:`TWISTD`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.interfaces import IReactorTime

from tcpserver.events import EVENT_NAMES
from tcpserver.testing import MemoryServer, memory_server

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
    """
    Every event of a server (or factory), in order, with a way to wait for them.

    One recorder serves both tiers: with a real server, ``wait``/``wait_for``
    return Deferreds that fire on the global reactor; with an in-memory one
    (:func:`in_memory`, a factory on a ``Clock``) they fire on its clock, and
    trial's ``SynchronousTestCase`` tests simply read ``events``.

    :param events: the event names to listen to (all by default).  Listening
        changes what a server does (a quiet connection opens in one step, a
        ClientHello is parsed only for an ``ssl_connection_request``
        listener), so tests of those paths name only the events they need.
    """

    def __init__(self, server: Any, events: Iterable[str] = EVENT_NAMES) -> None:
        self.events: list[tuple[str, Any]] = []
        self._clock: IReactorTime = getattr(server, "reactor", None) or reactor
        self._waiters: list[tuple[Callable[[], bool], defer.Deferred[None]]] = []
        for name in events:
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
                self._clock.callLater(0, waiting.callback, None)

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
        waiting.addTimeout(timeout, self._clock)
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


async def until(
    predicate: Callable[[], object], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Let the reactor run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        await sleep(interval)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> None:
    """:func:`until` for a blocking test (no reactor runs meanwhile): poll ``predicate()``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s")
        time.sleep(interval)


def venv_bin(name: str) -> str:
    """An executable installed next to this Python (twistd, ...)."""
    return os.path.join(os.path.dirname(sys.executable), name)


TWISTD = venv_bin("twistd")


def listen(server: Any) -> int:
    """Start a real server listening (port 0 unless set); return its port."""
    server.start_listening()
    port: int = server.local_port
    return port


def in_memory(
    *, default_eol: bytes = b"", echo: bool = False, **settings: object
) -> tuple[MemoryServer, Recorder]:
    """
    A server on a clock (:func:`tcpserver.testing.memory_server`) and its
    :class:`Recorder`; ``settings`` are applied in order with ``config``
    (``Name=value``).  ``echo`` answers every ``data_in`` with its text and
    ``\\n``.
    """
    server = memory_server(default_eol=default_eol)
    for name, value in settings.items():
        server.config(f"{name}={value}")
    recorder = Recorder(server)
    if echo:
        server.on("data_in", lambda e: server.send(e.connection_id, e.text + b"\n"))
    return server, recorder


def advance(server: MemoryServer, seconds: float, step: float = 0.1) -> None:
    """Let ``seconds`` pass on an in-memory server's clock, in steps as a real clock would."""
    server.reactor.pump([step] * round(seconds / step))


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
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                # A server that refuses the connection may have closed it
                # already (FIN, then a reset for the unread bytes): nothing
                # is left to half-close, what it sent is still read below.
                if exc.errno != errno.ENOTCONN:
                    raise
        return read_until(sock, expect, timeout, until_eof=shut and not expect)


def read_until(
    sock: socket.socket, expect: int, timeout: float = 5.0, until_eof: bool = False
) -> bytes:
    deadline = time.monotonic() + timeout
    got = bytearray()  # (bytes += would copy everything read so far, every time)
    while until_eof or len(got) < expect:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


def read_line(sock: socket.socket, timeout: float = 10) -> bytes:
    """Read up to and including the next CRLF (less if the connection closes)."""
    sock.settimeout(timeout)
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        got += chunk
    return got


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> None:
    """Wait until something (a child process) accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for a child that cannot be told to use port 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


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
        if alpn:
            context.set_alpn_protocols(alpn)
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
                self.error = exc.with_traceback(None)  # (no cycle through _step's frame)
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
                    self.error = exc.with_traceback(None)  # (no cycle through _step's frame)
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


# -- long-running child processes -------------------------------------------------------------

#: The line a tcpserver logs when it listens (twistd, ``python -m tcpserver``, workers).
LISTENING = re.compile(r"tcpserver listening on .*? \(port (\d+)\)")


def twistd_argv(*args: str) -> list[str]:
    """``twistd -n --pidfile= tcpserver ARGS``: in the foreground, no pid file."""
    return [TWISTD, "-n", "--pidfile=", "tcpserver", *args]


def run_twistd(cwd: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``twistd -n --pidfile= tcpserver ARGS`` to completion (``--help``, usage errors)."""
    return subprocess.run(twistd_argv(*args), cwd=cwd, capture_output=True, text=True, timeout=60)


class ServerProcess:
    """
    A long-running child process (a server) and its output.

    A thread reads the child's output (stdout, with stderr merged into it
    unless ``merge_stderr=False``; then another thread collects stderr), so
    :meth:`wait_for` and :meth:`next_line` never block past their deadline and
    nothing the child writes is lost.  ``env`` adds to this process's
    environment.  The child leads a process group of its own, so :meth:`close`
    also ends what it started (twistd's workers).  Start one with the
    ``processes`` fixture (:class:`ServerProcesses`), which closes it when the
    test ends.

    :ivar lines: the output lines read so far, with their line ends.
    :ivar err_lines: stderr's lines, when not merged.
    """

    def __init__(
        self,
        argv: Sequence[str],
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        *,
        merge_stderr: bool = True,
        **popen: Any,
    ) -> None:
        self.argv = list(argv)
        self.proc: subprocess.Popen[str] = subprocess.Popen(
            self.argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # its own process group: close() ends its children too
            **popen,
        )
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._eof = False
        self._cursor = 0  # next_line()'s place in lines
        self._port: int | None = None
        self._readers = [threading.Thread(target=self._read_output, daemon=True)]
        if not merge_stderr:
            self._readers.append(threading.Thread(target=self._read_errors, daemon=True))
        for reader in self._readers:
            reader.start()

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)  # the end

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err_lines.append(line)

    def _take(self, timeout: float) -> str | None:
        """The next line, waiting at most ``timeout`` s; ``None`` at the end of the output."""
        if self._eof:
            return None
        try:
            line = self._queue.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if line is None:
            self._eof = True
        else:
            self.lines.append(line)
        return line

    def _fail(self, what: str) -> AssertionError:
        status = "running" if self.running else f"exited with {self.proc.returncode}"
        errors = f"\nand on stderr:\n{self.err_log()}" if self.err_lines else ""
        return AssertionError(
            f"{what}; {self.argv!r} ({status}) wrote so far:\n{self.drain()}{errors}"
        )

    def wait_for(
        self, pattern: str | re.Pattern[str], timeout: float = 30, count: int = 1
    ) -> re.Match[str]:
        """The ``count``-th output line matching ``pattern`` (already read or still to come)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        found = 0
        for line in self.lines:
            match = regex.search(line)
            if match:
                found += 1
                if found == count:
                    return match
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            taken = self._take(remaining)
            if taken is None:
                break
            match = regex.search(taken)
            if match:
                found += 1
                if found == count:
                    return match
        raise self._fail(f"{regex.pattern!r} not seen {count} time(s)")

    def next_line(self, timeout: float = 30) -> str:
        """The next output line in order (like ``readline``, with a deadline)."""
        deadline = time.monotonic() + timeout
        while self._cursor >= len(self.lines):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._take(remaining) is None:
                raise self._fail("no next line")
        self._cursor += 1
        return self.lines[self._cursor - 1]

    @property
    def port(self) -> int:
        """The port from the "tcpserver listening on ... (port N)" line (waits for it)."""
        if self._port is None:
            self._port = int(self.wait_for(LISTENING).group(1))
        return self._port

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, number: int) -> None:
        self.proc.send_signal(number)

    def terminate(self) -> None:
        self.proc.terminate()

    def kill(self) -> None:
        if self.running:
            self.proc.kill()

    def wait(self, timeout: float = 60) -> int:
        """Wait for the child to exit; return its exit status (``-N`` for signal N)."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        self.drain()
        return code

    def stop(self, number: int = SIGTERM, timeout: float = 60) -> int:
        """
        Signal the child and wait: 0 for a clean shutdown, else the exit status.
        (twistd re-raises the stopping signal after a clean "Server Shut Down.")
        """
        self.signal(number)
        code = self.wait(timeout)
        if code == -number and "Server Shut Down." in self.log():
            return 0
        return code

    def drain(self) -> str:
        """Take what the child has written so far without waiting; return the whole log."""
        while self._take(0) is not None:
            pass
        return self.log()

    def log(self) -> str:
        """The output read so far (stdout, and stderr unless kept apart)."""
        return "".join(self.lines)

    def err_log(self) -> str:
        """stderr, when kept apart (``merge_stderr=False``)."""
        return "".join(self.err_lines)

    def close(self) -> None:
        """Kill the child and whatever it started (twistd's workers) if still running."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, SIGKILL)  # (its group: it leads it, see start_new_session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.wait(timeout=30)


class ServerProcesses:
    """
    The ``processes`` fixture: starts :class:`ServerProcess` children (in the
    test's ``tmp_path`` unless told otherwise) and kills every one still
    running when the test ends, so a failing test never leaks a process;
    their output is shown with the failure.
    """

    def __init__(self, cwd: str | Path) -> None:
        self.cwd = cwd
        self.started: list[ServerProcess] = []

    def start(
        self,
        argv: Sequence[str],
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ServerProcess:
        process = ServerProcess(argv, self.cwd if cwd is None else cwd, env, **options)
        self.started.append(process)
        return process

    def twistd(
        self,
        *args: str,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> ServerProcess:
        """``twistd -n --pidfile= tcpserver ARGS``."""
        return self.start(twistd_argv(*args), cwd, env, **options)

    def close(self) -> None:
        for process in self.started:
            process.close()
            # pytest shows a test's captured output only when it fails
            errors = f"stderr:\n{process.err_log()}" if process.err_lines else ""
            print(
                f"--- {' '.join(process.argv)}: exit status {process.proc.returncode}\n"
                f"{process.log()}{errors}"
            )
