"""sslyze against a real TLS server on 127.0.0.1: what a scanner sees by default.

sslyze (6.x) pins ``cryptography<47``, older than the pyOpenSSL tcpserver is
tested with needs, so it cannot share the test environment (nor the ``test``
extra).  It runs as a subprocess from a virtualenv of its own, made on first
use with pip (about 15 s) and kept in the user's cache
(``~/.cache/tcpserver-tests``); ``TCPSERVER_SSLYZE_PYTHON`` names an
interpreter that already has it.  The test is skipped only when sslyze cannot
be installed (no package index reachable), and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from helpers import in_thread, listen

from tcpserver import SSLStartMode
from tcpserver.handlers import echo, wire_handler

SSLYZE = "sslyze>=6.0,<7"

#: What Mozilla's "intermediate" profile may find wrong here without tcpserver
#: being at fault: the test certificate (a private CA, a long life) and the
#: manual's default groups (TLS13SupportedGroups offers X448 and secp521r1,
#: which the profile leaves out for speed, not for weakness).
NOT_OURS = {
    "certificate_path_validation",
    "maximum_certificate_lifespan",
    "certificate_types",
    "certificate_signatures",
    "certificate_curves",
    "rsa_key_size",
    "ocsp_staple",
    "tls_curves",
}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tcpserver-tests"


def _has_sslyze(python: str) -> bool:
    probe = subprocess.run(
        [python, "-c", "import sslyze"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


def _install_sslyze() -> str:
    """A Python with sslyze: given, cached, or made now; skips if it cannot be installed."""
    given = os.environ.get("TCPSERVER_SSLYZE_PYTHON")
    if given:
        return given
    home = _cache_dir() / f"sslyze6-py{sys.version_info[0]}{sys.version_info[1]}"
    python = home / "bin" / "python"
    if python.exists() and _has_sslyze(str(python)):
        return str(python)
    home.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="sslyze-", dir=home.parent))
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(building)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        install = subprocess.run(
            [
                str(building / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--quiet",
                SSLYZE,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if install.returncode != 0:
            tail = "\n".join(install.stderr.strip().splitlines()[-5:])
            pytest.skip(f"sslyze cannot be installed ({SSLYZE}): pip says\n{tail}")
        shutil.rmtree(home, ignore_errors=True)
        building.rename(home)  # (a half-made one is never found under the final name)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return str(python)


@pytest.fixture(scope="module")
def sslyze_python() -> str:
    return _install_sslyze()


def scan(python: str, port: int, directory: Path) -> tuple[dict[str, Any], str]:
    """sslyze's scan of localhost:port (at 127.0.0.1): its JSON result and console output."""
    out = directory / "scan.json"
    run = subprocess.run(
        # (--mozilla_config=intermediate, the default, queues every scan it needs)
        [python, "-m", "sslyze", f"--json_out={out}", f"localhost:{port}{{127.0.0.1}}"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.exists(), run.stdout + run.stderr
    results = json.loads(out.read_text())["server_scan_results"]
    assert len(results) == 1
    assert results[0]["scan_status"] == "COMPLETED", run.stdout
    return results[0]["scan_result"], run.stdout


def accepted(result: dict[str, Any], version: str) -> list[dict[str, Any]]:
    attempt = result[f"{version}_cipher_suites"]
    assert attempt["status"] == "COMPLETED", attempt
    suites: list[dict[str, Any]] = attempt["result"]["accepted_cipher_suites"]
    return suites


@pytest.mark.timeout(400)  # (the first run installs sslyze)
@pytest_twisted.ensureDeferred
async def test_sslyze_finds_nothing_weak_by_default(server, tls, sslyze_python, tmp_path):
    server.ssl_cert = tls.certificate()  # RSA: static-RSA key exchange would be possible
    server.ssl_start_mode = SSLStartMode.IMPLICIT
    wire_handler(server, echo)
    port = listen(server)
    result, console = await in_thread(scan, sslyze_python, port, tmp_path)

    for old in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1"):
        assert accepted(result, old) == [], f"{old} accepted"
    tls12 = [s["cipher_suite"]["name"] for s in accepted(result, "tls_1_2")]
    assert tls12, "no TLS 1.2 suite accepted"
    assert accepted(result, "tls_1_3"), "no TLS 1.3 suite accepted"
    for suite in accepted(result, "tls_1_2"):
        name = suite["cipher_suite"]["name"]
        assert name.startswith(("TLS_ECDHE_", "TLS_DHE_")), f"{name}: no forward secrecy"
        assert suite["ephemeral_key"] is not None, f"{name}: no ephemeral key"
        assert "GCM" in name or "CHACHA20_POLY1305" in name, f"{name}: not AEAD"
        assert not name.endswith("_CBC_SHA"), f"{name}: CBC with SHA-1"

    def verdict(command: str) -> dict[str, Any]:
        attempt = result[command]
        assert attempt["status"] == "COMPLETED", attempt
        found: dict[str, Any] = attempt["result"]
        return found

    assert verdict("tls_compression")["supports_compression"] is False
    assert verdict("heartbleed")["is_vulnerable_to_heartbleed"] is False
    assert verdict("openssl_ccs_injection")["is_vulnerable_to_ccs_injection"] is False
    assert verdict("robot")["robot_result"].startswith("NOT_VULNERABLE")
    renegotiation = verdict("session_renegotiation")
    assert renegotiation["supports_secure_renegotiation"] is True
    assert renegotiation["is_vulnerable_to_client_renegotiation_dos"] is False
    assert verdict("tls_fallback_scsv")["supports_fallback_scsv"] is True

    # Mozilla's "intermediate" profile: nothing of ours is out of line
    assert "Checking results against Mozilla" in console, console
    issues = set(re.findall(r"^\s+\* (\w+): ", console.split("COMPLIANCE", 1)[-1], re.M))
    assert issues <= NOT_OURS, console
