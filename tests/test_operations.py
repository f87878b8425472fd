"""Operations: twistd as a real subprocess - config files, TLS flags,
endpoints, socket activation, PROXY protocol behind a real HAProxy,
draining, reload, metrics, JSON logs, examples."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    TWISTD,
    ServerProcess,
    ServerProcesses,
    client,
    free_port,
    read_line,
    read_until,
    run_twistd,
    tls_client,
    venv_bin,
    wait_for_port,
    wait_until,
)

from tcpserver.settings import REGISTRY

# -- every setting, config files, bad values ----------------------------------------------


def test_help_describes_every_setting_once_in_groups(tmp_path):
    from tcpserver._help import GROUPS

    result = run_twistd(tmp_path, "--help")
    assert result.returncode == 0
    text = result.stdout
    flat = " ".join(text.split())  # (descriptions wrap)
    for setting in REGISTRY:
        if setting.read_only or setting.unsupported is not None or setting.name == "SSLCert":
            assert f"{setting.name}=" not in text, setting.name  # (not for a server)
            continue
        # a flag's help names its setting, or the setting is in the list at the end
        told = flat.count(f"[{setting.name}, default:") + text.count(f"\n  {setting.name}=")
        assert told == 1, (setting.name, told)
    titles = [line for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles[: len(GROUPS)] == [f"{title}:" for title, _ in GROUPS]
    for flag in ("--config-file", "--listen", "--tls-cert", "--sni-cert", "--drain-timeout"):
        assert flag in text
    assert "--worker-" not in text  # (internal)
    assert "Turn off" not in text
    assert "--linger" not in text.replace("--no-linger", "")  # (no such flag)
    assert "--port=PORT" in text
    assert "[LocalPort, default: 9000]" in flat  # (the flag's own default)
    assert max(len(line) for line in text.splitlines()) < 100
    assert len(text.splitlines()) < 250  # (a few screens, not 370 lines)
    # a description cut short says so
    assert "[HandshakeTimeout, default: '10']" in flat
    handshake = text[text.index("--handshake-timeout") : text.index("[HandshakeTimeout")]
    assert "..." in handshake


def test_config_file_with_command_line_winning(processes, tmp_path):
    (tmp_path / "server.toml").write_text(
        textwrap.dedent(
            """
            port = 1          # the command line's --port 0 wins
            handler = "shouty"
            [settings]
            DefaultEOL = "|"
            MaxConnections = 5
            """
        )
    )
    (tmp_path / "shouty.py").write_text(
        "def on_data_in(server, event):\n"
        "    server.send(event.connection_id, event.text.upper() + b'!')\n"
    )
    proc = processes.twistd(
        "--config-file", "server.toml", "--port", "0", "--config", "MaxConnections=7"
    )
    port = proc.port
    assert client(port, b"abc|de|", 7) == b"ABC!DE!"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("port = [1, 2]\n", "port = [1, 2]: bad value"),
        ("nosuch = 1\n", "unknown option 'nosuch'"),
        ("[settings]\nMaxConnections = 0\n", "MaxConnections: bad value '0'"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path, content, message):
    (tmp_path / "bad.toml").write_text(content)
    result = run_twistd(tmp_path, "--config-file", "bad.toml")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_config_file(tmp_path):
    result = run_twistd(tmp_path, "--config-file", "nope.toml")
    assert result.returncode != 0
    assert "--config-file 'nope.toml': No such file or directory" in result.stdout + result.stderr


def test_handler_import_error_shows_its_own_traceback_once(tmp_path):
    (tmp_path / "broken.py").write_text(
        "import os\n\ndef helper():\n    return 1 / 0\n\nhelper()\n"
    )
    result = run_twistd(tmp_path, "--handler", "broken")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert output.count("Traceback") == 1
    assert 'broken.py", line 6' in output
    assert 'broken.py", line 4, in helper' in output
    assert "ZeroDivisionError: division by zero" in output
    assert "importlib" not in output


# -- TLS from the command line -------------------------------------------------------------


def tls_ask(port: int, context: ssl.SSLContext, name: str = "localhost") -> tuple[bytes, Any]:
    """Say hello over TLS: the answer and the server's certificate."""
    got, info = tls_client(port, context, b"hello\n", 6, server_name=name, timeout=10)
    return got, info["peer"]


def subject_cn(cert: Any) -> str:
    return str(next(v for rdn in cert["subject"] for k, v in rdn if k == "commonName"))


def test_tls_flags_cert_key_and_sni(processes, tmp_path, tls):
    proc = processes.twistd(
        "--port", "0", "--eol", "\\n",
        "--tls-cert", str(tls.server_cert_pem), "--tls-key", str(tls.server_key_pem),
        "--sni-cert", f"other.example={tls.other_pem}",
    )  # fmt: skip
    port = proc.port
    got, cert = tls_ask(port, tls.client_context())
    assert got == b"hello\n"
    assert subject_cn(cert) == "localhost"
    other = ssl.create_default_context(cafile=str(tls.ca_pem))
    _, cert = tls_ask(port, other, "other.example")
    assert "other.example" in str(cert["subjectAltName"])
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_tls_walkthrough_of_the_docs(processes, tmp_path):
    # docs/tls.rst "From an empty directory": openssl's self-signed
    # certificate, examples/shout.py, one twistd command, a Python client.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
         "-keyout", "server.key", "-out", "server.crt", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    key = (tmp_path / "server.key").read_bytes()
    (tmp_path / "server.pem").write_bytes(key + (tmp_path / "server.crt").read_bytes())
    shutil.copy(EXAMPLES / "shout.py", tmp_path / "shout.py")
    proc = processes.twistd("--port", "0", "--handler", "shout", "--tls-cert", "server.pem")
    port = proc.port
    context = ssl.create_default_context(cafile=str(tmp_path / "server.crt"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert read_until(tls, 24) == b"welcome - say something\n"
        tls.sendall(b"hello tls\n")
        assert read_until(tls, 10) == b"HELLO TLS\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_tls_encrypted_key_with_the_password_in_a_file(processes, tmp_path, tls):
    (tmp_path / "pw").write_text(tls.password + "\n")
    proc = processes.twistd(
        "--port", "0", "--eol", "\\n", "--tls-cert", str(tls.encrypted_pem),
        "--tls-password-file", "pw",
    )  # fmt: skip
    got, _ = tls_ask(proc.port, tls.client_context())
    assert got == b"hello\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_tls_pfx_with_password_from_the_environment(processes, tls):
    proc = processes.twistd(
        "--port", "0", "--eol", "\\n", "--tls-cert", str(tls.pfx),
        "--tls-password-env", "PFX_SECRET", env={"PFX_SECRET": tls.password},
    )  # fmt: skip
    got, _ = tls_ask(proc.port, tls.client_context())
    assert got == b"hello\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def tls_answer(port: int, context: ssl.SSLContext) -> bytes:
    """The answer to a hello over TLS, ``b""`` if the server refused the client."""
    try:
        got, _ = tls_ask(port, context)
    except (ssl.SSLError, OSError):
        got = b""
    return got


@pytest.mark.parametrize("required", [False, True])
def test_tls_client_certificates_optional_or_required(processes, tls, required):
    """
    ``--tls-client-ca`` asks for a certificate and refuses one that does not
    verify; only ``--tls-require-client-cert`` refuses a client without one.
    """
    proc = processes.twistd(
        "--port", "0", "--eol", "\\n", "--tls-cert", str(tls.server_pem),
        "--tls-client-ca", str(tls.ca_pem),
        *(["--tls-require-client-cert"] if required else []),
    )  # fmt: skip
    port = proc.port
    assert tls_answer(port, tls.client_context(cert=tls.client_pem)) == b"hello\n"
    assert tls_answer(port, tls.client_context(cert=tls.stranger_pem)) == b""  # unknown CA
    without = tls_answer(port, tls.client_context())
    assert without == (b"" if required else b"hello\n")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    log = proc.drain()
    assert "Client certificate refused" in log
    assert ("No client certificate was presented" in log) == required


def test_explicit_tls_from_flags_with_openssl_s_client(processes, tmp_path, tls):
    proc = processes.twistd(
        "--port", "0", "--handler", str(Path(__file__).parent.parent / "examples" / "starttls.py"),
        "--tls-cert", str(tls.server_pem), "--ssl-start-mode", "EXPLICIT",
    )  # fmt: skip
    port = proc.port
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp",
         "-CAfile", str(tls.ca_pem), "-servername", "localhost", "-crlf", "-ign_eof"],
        input=b"NOOP\nQUIT\n", capture_output=True, timeout=30,
    )  # fmt: skip
    out = (result.stdout + result.stderr).decode("latin-1")
    assert "Verify return code: 0 (ok)" in out
    assert "250 OK (encrypted)" in out
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "missing.pem"], "--tls-cert 'missing.pem'"),
        (["--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["--sni-cert", "nameonly"], "--sni-cert takes NAME=PATH"),
        (["--tls-cert", "x.pem", "--tls-password-env", "NOT_SET_ANYWHERE_X"], "not set"),
        (["--tls-password-env", "X"], "--tls-password-env needs --tls-cert"),
        (["--drain-timeout", "-1"], "--drain-timeout must be >= 0"),
        (["--listen", "nonsense:1"], "nonsense:1"),
    ],
)
def test_bad_operation_flags(tmp_path, args, message):
    result = run_twistd(tmp_path, *args)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output


# -- endpoints -----------------------------------------------------------------------------


def test_listen_on_several_endpoints_sharing_one_factory(processes, tmp_path):
    path = tmp_path / "s.sock"
    proc = processes.twistd(
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", f"unix:{path}",
        "--handler", "ids", "--max-connections", "2",
    )  # fmt: skip
    (tmp_path / "ids.py").write_text(
        "def on_data_in(server, event):\n"
        "    server.send(event.connection_id, event.connection_id.encode() + b'\\r\\n')\n"
    )
    port = proc.port
    proc.wait_for(rf"listening on unix:{re.escape(str(path))}")
    tcp = socket.create_connection(("127.0.0.1", port), timeout=10)
    tcp.sendall(b"x\r\n")
    unix = socket.socket(socket.AF_UNIX)
    unix.settimeout(10)
    unix.connect(str(path))
    unix.sendall(b"x\r\n")
    ids = {read_until(tcp, 3, 10).strip(), read_until(unix, 3, 10).strip()}
    assert ids == {b"1", b"2"}  # one id sequence
    # one MaxConnections for both endpoints: a third connection is refused
    try:
        third = client(port, b"x\r\n", 3, timeout=3)
    except ConnectionResetError:
        third = b""
    assert third == b""
    tcp.close()
    unix.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_listen_with_the_handler_written_first(processes, tmp_path):
    # (the same, with no --port: the default port is not bound)
    proc = processes.twistd("--listen", "tcp:0:interface=127.0.0.1")
    port = proc.port
    assert client(port, b"ping\r\n", 6) == b"ping\r\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert "9000" not in proc.log()


def test_systemd_socket_activation(processes, tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    script = (
        f"import os; os.dup2({fd}, 3); os.environ['LISTEN_PID'] = str(os.getpid()); "
        "os.environ['LISTEN_FDS'] = '1'; os.environ['LISTEN_FDNAMES'] = 'tcpserver'; "
        f"os.execv({TWISTD!r}, [{TWISTD!r}, '-n', '--pidfile=', 'tcpserver', "
        "'--listen', 'systemd:domain=INET:index=0'])"
    )
    proc = processes.start([sys.executable, "-c", script], pass_fds=(fd,))
    proc.wait_for(r"listening on systemd:domain=INET:index=0")
    listener.close()  # the server holds its own copy
    assert client(port, b"activated\r\n", 11) == b"activated\r\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


# -- draining -------------------------------------------------------------------------------


BIG = textwrap.dedent(
    """
    def on_data_in(server, event):
        server.send(event.connection_id, b"x" * 4_000_000 + b"END")
    """
)


def test_sigterm_drains_a_large_send_to_a_slow_reader(processes, tmp_path):
    (tmp_path / "big.py").write_text(BIG)
    proc = processes.twistd("--port", "0", "--handler", "big", "--drain-timeout", "30")
    port = proc.port
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sock.sendall(b"go\r\n")
    # the answer is on its way (the first byte is here: the rest is queued, though
    # most of it fits in the kernel's buffers, ~2 MB); peeked, not read
    assert sock.recv(1, socket.MSG_PEEK) == b"x"
    proc.signal(signal.SIGTERM)
    proc.wait_for(r"SIGTERM: draining 1 connection")
    time.sleep(0.5)  # still not reading: the drain waits for us
    got = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    assert len(got) == 4_000_003
    assert got.endswith(b"END")
    assert proc.wait() == 0
    assert "drained" in proc.log()


def test_drain_timeout_resets_a_reader_that_never_reads(processes, tmp_path):
    (tmp_path / "big.py").write_text(BIG)
    proc = processes.twistd("--port", "0", "--handler", "big", "--drain-timeout", "1")
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (keeps data queued)
    sock.sendall(b"go\r\n")
    assert sock.recv(1, socket.MSG_PEEK) == b"x"  # the answer is queued (peeked, not read)
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    assert time.monotonic() - started < 15
    sock.close()


def test_a_second_sigterm_exits_at_once(processes, tmp_path):
    (tmp_path / "big.py").write_text(BIG)
    proc = processes.twistd("--port", "0", "--handler", "big", "--drain-timeout", "60")
    sock = socket.create_connection(("127.0.0.1", proc.port), timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"go\r\n")
    assert sock.recv(1, socket.MSG_PEEK) == b"x"  # the answer is queued (peeked, not read)
    proc.signal(signal.SIGTERM)
    proc.wait_for("draining 1 connection")
    started = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(timeout=20)
    assert time.monotonic() - started < 10
    assert code == 1
    assert "again: exiting without draining" in proc.log()
    sock.close()


# -- reload ----------------------------------------------------------------------------------


#: a reload's log line; group 1 is what it says changed
RELOADED = r"tcpserver: reloaded \((.*)\)$"


def test_sighup_swaps_the_certificate_and_keeps_connections(processes, tmp_path, tls):
    live = tmp_path / "live.pem"
    shutil.copy(tls.server_pem, live)
    proc = processes.twistd("--port", "0", "--eol", "\\n", "--tls-cert", str(live))
    port = proc.port
    context = ssl.create_default_context(cafile=str(tls.ca_pem))
    context.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    old = context.wrap_socket(raw, server_hostname="localhost")
    first = old.getpeercert(binary_form=True)
    old.sendall(b"one\n")
    assert read_until(old, 4, 10) == b"one\n"
    # nothing changed: it says so (not "changed: SSLCert" for a new object)
    proc.signal(signal.SIGHUP)
    assert proc.wait_for(RELOADED).group(1) == "nothing changed"
    # a bad certificate next: kept the old one, and said why
    live.write_text("garbage")
    proc.signal(signal.SIGHUP)
    proc.wait_for("reload failed, keeping the current configuration")
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw2,
        context.wrap_socket(raw2, server_hostname="localhost") as sock,
    ):
        assert sock.getpeercert(binary_form=True) == first
    # then a good new one: new handshakes see it; the old connection stays up
    shutil.copy(tls.other_pem, live)
    proc.signal(signal.SIGHUP)
    assert proc.wait_for(RELOADED, count=2).group(1) == "changed: SSLCert"
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw2,
        context.wrap_socket(raw2, server_hostname="localhost") as sock,
    ):
        assert sock.getpeercert(binary_form=True) != first
    old.sendall(b"two\n")
    assert read_until(old, 4, 10) == b"two\n"
    old.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_sighup_rereads_access_lists_from_the_config_file(processes, tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('[settings]\nBlockedClients = "127.0.0.1"\n')
    proc = processes.twistd("--port", "0", "--config-file", str(config))
    port = proc.port
    assert client(port, b"x\r\n", 3, timeout=3) == b""  # blocked
    config.write_text('[settings]\nBlockedClients = ""\n')
    proc.signal(signal.SIGHUP)
    assert proc.wait_for(RELOADED).group(1) == "changed: BlockedClients"
    assert client(port, b"x\r\n", 3) == b"x\r\n"
    proc.signal(signal.SIGHUP)
    assert proc.wait_for(RELOADED, count=2).group(1) == "nothing changed"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


# -- metrics and logs ---------------------------------------------------------------------------


def test_metrics_are_served_over_http(processes, tmp_path):
    proc = processes.twistd("--port", "0", "--metrics", "tcp:0:interface=127.0.0.1")
    port = proc.port
    metrics_port = int(proc.wait_for(r"metrics on \S+ \(port (\d+)\)").group(1))
    assert client(port, b"abc\r\n", 5) == b"abc\r\n"
    scraped: list[str] = []

    def closed() -> bool:  # (the server has seen our close when nothing is open)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        scraped.append(urllib.request.urlopen(url, timeout=10).read().decode())
        return "tcpserver_connections_open 0.0" in scraped[-1]

    wait_until(closed)
    text = scraped[-1]
    assert "tcpserver_connections_accepted_total 1.0" in text
    assert 'tcpserver_events_total{event="data_in"} 1.0' in text
    assert "tcpserver_received_bytes_total 5.0" in text
    assert "tcpserver_sent_bytes_total 5.0" in text
    assert 'tcpserver_connections_refused_total{reason="access"} 0.0' in text
    assert "tcpserver_connections_open 0.0" in text
    assert "tcpserver_connections_paused 0.0" in text
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_json_logs(processes, tmp_path):
    proc = processes.start(
        [TWISTD, "--logger", "tcpserver.logs.json_observer", "-n", "--pidfile=",
         "tcpserver", "--port", "0"],
    )  # fmt: skip
    match = proc.wait_for(r'"message": "tcpserver listening on')
    record = json.loads(match.string)
    assert record["level"] == "info"
    assert record["namespace"].startswith("tcpserver")
    port = record["port"]
    assert client(port, b"hi\r\n", 4) == b"hi\r\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0
    for line in proc.lines:
        if line.strip():
            json.loads(line)  # every line is JSON


# -- PROXY protocol behind a real HAProxy ------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def haproxy(
    processes: ServerProcesses, tmp_path: Path, backend_port: int, send_proxy: str
) -> tuple[ServerProcess, int]:
    """A real HAProxy in front of ``backend_port``: the process and its front port."""
    front_port = free_port()
    config = tmp_path / f"haproxy-{send_proxy}.cfg"
    config.write_text(
        textwrap.dedent(
            f"""
            global
                log stdout format raw local0 debug
            defaults
                mode tcp
                timeout connect 5s
                timeout client 30s
                timeout server 30s
            frontend front
                bind 127.0.0.1:{front_port}
                default_backend back
            backend back
                server s1 127.0.0.1:{backend_port} {send_proxy}
            """
        )
    )
    proc = processes.start([HAPROXY, "-db", "-f", str(config)])
    wait_for_port(front_port)
    return proc, front_port


WHO = textwrap.dedent(
    """
    def on_connection_request(server, event):
        print("request from", event.address, event.port, flush=True)

    def on_data_in(server, event):
        connection = server.connections[event.connection_id]
        server.send_line(event.connection_id, f"{connection.remote_host} {connection.remote_port}")
    """
)


@pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")
@pytest.mark.parametrize("send_proxy", ["send-proxy", "send-proxy-v2"])
def test_proxy_protocol_behind_haproxy(processes, tmp_path, send_proxy):
    (tmp_path / "who.py").write_text(WHO)
    proc = processes.twistd("--port", "0", "--handler", "who", "--proxy-protocol")
    port = proc.port
    balancer, front = haproxy(processes, tmp_path, port, send_proxy)
    try:
        with socket.create_connection(("127.0.0.1", front), timeout=10) as sock:
            mine = sock.getsockname()[1]
            sock.sendall(b"who\r\n")
            host, client_port = read_line(sock).split()
            assert host == b"127.0.0.1"
            assert int(client_port) == mine  # the real client, not haproxy
        # connection_request already saw the real client
        proc.wait_for(rf"request from 127.0.0.1 {mine}")
    finally:
        balancer.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


@pytest.mark.skipif(not os.path.exists(HAPROXY), reason="haproxy is not installed")
def test_proxy_headers_from_an_untrusted_source_are_refused(processes, tmp_path):
    (tmp_path / "who.py").write_text(WHO)
    proc = processes.twistd(
        "--port", "0", "--handler", "who", "--proxy-protocol", "--trusted-proxies", "10.9.9.9",
        "--metrics", "tcp:0:interface=127.0.0.1",
    )  # fmt: skip
    port = proc.port
    metrics_port = int(proc.wait_for(r"metrics on \S+ \(port (\d+)\)").group(1))
    balancer, front = haproxy(processes, tmp_path, port, "send-proxy-v2")
    try:
        with socket.create_connection(("127.0.0.1", front), timeout=10) as sock:
            sock.sendall(b"who\r\n")
            assert read_until(sock, 1, 10) == b""  # closed, unanswered
    finally:
        balancer.close()
    proc.wait_for("127.0.0.1 is not one")
    # haproxy() probes its front before the test connects, which may or may not reach us:
    # every refusal is both logged once and counted once.
    seen: dict[str, float] = {}

    def settled() -> bool:
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/", timeout=10).read()
        found = re.search(rb'tcpserver_connections_refused_total\{reason="proxy"\} (\S+)', text)
        assert found is not None
        seen["counted"], seen["logged"] = float(found.group(1)), proc.drain().count("is not one")
        return seen["counted"] == seen["logged"]

    wait_until(settled, timeout=10, interval=0.1)
    counted, logged = seen["counted"], seen["logged"]
    assert counted == logged >= 1
    assert "request from" not in proc.log()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_proxy_protocol_without_a_header_is_refused(processes, tmp_path):
    proc = processes.twistd("--port", "0", "--proxy-protocol")
    port = proc.port
    assert client(port, b"GET / HTTP/1.0\r\n\r\n", 1, timeout=5) == b""
    proc.wait_for("bad PROXY protocol header")
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


# -- examples, each with one twistd command -----------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_example_echo(processes):
    proc = processes.twistd("--port", "0", "--handler", str(EXAMPLES / "echo.py"))
    assert client(proc.port, b"one\r\ntwo\r\n", 10) == b"one\r\ntwo\r\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_example_chat_broadcasts(processes):
    proc = processes.twistd("--port", "0", "--handler", str(EXAMPLES / "chat.py"))
    port = proc.port
    alice = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert b"welcome" in read_line(alice)
    bob = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert b"welcome" in read_line(bob)
    assert b"joined" in read_line(alice)
    alice.sendall(b"/nick alice\r\n")
    assert read_line(bob).endswith(b"is now alice\r\n")
    read_line(alice)
    alice.sendall(b"hello all\r\n")
    assert read_line(bob) == b"<alice> hello all\r\n"
    assert read_line(alice) == b"<alice> hello all\r\n"
    alice.close()
    assert read_line(bob) == b"* alice left\r\n"
    bob.close()
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_example_kvstore_with_async_setup(processes, tmp_path):
    seed = tmp_path / "seed.txt"
    seed.write_text("greeting=hello\n")
    proc = processes.twistd(
        "--port", "0", "--handler", f"{EXAMPLES / 'kvstore.py'}:KVStore",
        env={"KVSTORE_SEED": str(seed)},
    )  # fmt: skip
    port = proc.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET greeting\nSET a 1\nGET a\nDEL a\nGET a\nBOGUS\n")
        answers = b""
        while answers.count(b"\r\n") < 6:
            answers += sock.recv(1000)
    assert answers.split(b"\r\n")[:6] == [
        b"VALUE hello", b"OK", b"VALUE 1", b"OK", b"NOT_FOUND", b"ERROR unknown command 'BOGUS'",
    ]  # fmt: skip
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_async_setup_runs_before_listening(processes, tmp_path):
    (tmp_path / "slow.py").write_text(
        textwrap.dedent(
            """
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            async def setup(server):
                await deferLater(reactor, 0.5, lambda: None)
                print("setup done; listening:", server.listening, flush=True)

            def on_data_in(server, event):
                server.send(event.connection_id, b"ok")
            """
        )
    )
    proc = processes.twistd("--port", "0", "--handler", "slow")
    proc.wait_for(r"setup done; listening: False")
    assert client(proc.port, b"x\r\n", 2) == b"ok"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_failing_async_setup_stops_with_status_1(processes, tmp_path):
    (tmp_path / "bad.py").write_text(
        "async def setup(server):\n    raise RuntimeError('no database')\n"
        "def on_data_in(server, event):\n    pass\n"
    )
    proc = processes.twistd("--port", "0", "--handler", "bad")
    assert proc.wait() == 1
    assert "RuntimeError: no database" in proc.log()


# -- embedding -------------------------------------------------------------------------------------


def test_embedding_in_an_application_with_make_service(processes, tmp_path):
    (tmp_path / "app.tac").write_text(
        textwrap.dedent(
            """
            from twisted.application import service
            from tcpserver.tap import Options, makeService

            application = service.Application("embedded")
            options = Options()
            options.parseOptions(["--port", "0", "--eol", "\\\\n"])
            makeService(options).setServiceParent(application)
            """
        )
    )
    proc = processes.start([TWISTD, "-n", "--pidfile=", "-y", "app.tac"])
    port = proc.port
    assert client(port, b"tac\n", 4) == b"tac\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait() == 0


def test_the_factory_with_server_from_string(processes, tmp_path):
    code = textwrap.dedent(
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import serverFromString
        from tcpserver import TCPServerFactory
        from tcpserver.handlers import echo, wire_handler

        factory = TCPServerFactory(default_eol=b"\\n")
        wire_handler(factory, echo)
        def listening(port):
            print("port", port.getHost().port, flush=True)
        endpoint = serverFromString(reactor, "tcp:0:interface=127.0.0.1")
        endpoint.listen(factory).addCallback(listening)
        reactor.run()
        """
    )
    proc = processes.start([sys.executable, "-c", code])
    port = int(proc.wait_for(r"port (\d+)").group(1))
    assert client(port, b"sfs\n", 4) == b"sfs\n"


def test_venv_has_twistd():
    assert os.path.exists(venv_bin("twistd"))
