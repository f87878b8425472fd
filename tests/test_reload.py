"""SIGHUP reload (``TCPServerService.reload``) says exactly what changed.

In process, on a service made by ``makeService`` (not listening): settings
by value, certificates by content (not by object), CA files by content under
the same name, ``--sni-cert`` names.  test_operations has the twistd runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tcpserver.service import TCPServerService
from tcpserver.tap import Options, makeService


def service(*args: str) -> TCPServerService:
    options = Options()
    options.parseOptions(["--port", "0", *args])
    svc = makeService(options)
    assert isinstance(svc, TCPServerService)
    return svc


def reloads(logged: Any) -> list[str]:
    """What each reload so far said it changed."""
    prefix = "tcpserver: reloaded "
    return [m[len(prefix) :] for m in logged.messages() if m.startswith(prefix)]


def test_an_unchanged_reload_says_nothing_changed(logged):
    svc = service("--config", "BlockedClients=10.0.0.1")
    svc.reload()
    svc.reload()
    assert reloads(logged) == ["(nothing changed)", "(nothing changed)"]


def test_a_certificate_is_compared_by_content(logged, tls, tmp_path):
    live = tmp_path / "live.pem"
    shutil.copy(tls.server_pem, live)
    svc = service("--tls-cert", str(live))
    first = svc.server.ssl_cert
    svc.reload()  # the same file: a new Certificate object, the same certificate
    shutil.copy(tls.server_pem, live)  # written again, the same bytes
    svc.reload()
    assert svc.server.ssl_cert is first
    shutil.copy(tls.other_pem, live)
    svc.reload()
    assert svc.server.ssl_cert is not first
    svc.reload()
    assert reloads(logged) == [
        "(nothing changed)",
        "(nothing changed)",
        "(changed: SSLCert)",
        "(nothing changed)",
    ]


def test_sni_certificates_are_named(logged, tls, tmp_path):
    other = tmp_path / "other.pem"
    shutil.copy(tls.other_pem, other)
    svc = service(
        "--tls-cert", str(tls.server_pem), "--sni-cert", f"other.example={other}",
        "--sni-cert", f"www.example={tls.server_pem}",
    )  # fmt: skip
    svc.reload()
    shutil.copy(tls.server_pem, other)
    svc.reload()
    assert reloads(logged) == ["(nothing changed)", "(changed: --sni-cert other.example)"]
    sni: Any = svc.sni_certificates  # type: ignore[attr-defined]
    assert svc.server.ssl_cert is not None
    assert sni["other.example"].content_key == svc.server.ssl_cert.content_key


def test_a_ca_file_is_compared_by_content(logged, tls, tmp_path):
    ca = tmp_path / "ca.pem"
    shutil.copy(tls.ca_pem, ca)
    svc = service("--config", f"OpenSSLCAFile={ca}")
    svc.reload()
    tls.other_ca.cert_pem.write_to_path(str(ca))  # another CA under the same name
    svc.reload()
    svc.reload()
    assert reloads(logged) == [
        "(nothing changed)",
        "(changed: OpenSSLCAFile)",
        "(nothing changed)",
    ]


def test_a_ca_directory_is_compared_by_content(logged, tls, tmp_path):
    directory = tmp_path / "cas"
    directory.mkdir()
    shutil.copy(tls.ca_pem, directory / "a.pem")
    svc = service("--config", f"OpenSSLCADir={directory}")
    svc.reload()
    tls.other_ca.cert_pem.write_to_path(str(directory / "b.pem"))
    svc.reload()
    assert reloads(logged) == ["(nothing changed)", "(changed: OpenSSLCADir)"]


RESTART = "; not applied, they need a restart: MaxConnections"


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        ("BlockedClients = '10.0.0.1'", "BlockedClients = '10.0.0.2'", "changed: BlockedClients"),
        (
            "AllowedClients = '*'\nMaxAcceptRate = 10",
            "AllowedClients = '127.0.0.1'\nMaxAcceptRate = 20",
            "changed: AllowedClients, MaxAcceptRate",
        ),
        (
            "MaxConnections = 10\nBlockedClients = '10.0.0.1'",
            "MaxConnections = 20\nBlockedClients = '10.0.0.2'",
            "changed: BlockedClients" + RESTART,
        ),
        ("MaxConnections = 10", "MaxConnections = 20", "nothing changed" + RESTART),
    ],
)
def test_settings_from_the_config_file_are_named(logged, tmp_path, before, after, said):
    config = tmp_path / "server.toml"
    config.write_text(f"[settings]\n{before}\n")
    svc = service("--config-file", str(config))
    config.write_text(f"[settings]\n{after}\n")
    svc.reload()
    svc.reload()  # (a setting that needs a restart still differs)
    again = "nothing changed" + (RESTART if RESTART in said else "")
    assert reloads(logged) == [f"({said})", f"({again})"]


def test_the_log_event_lists_the_names(logged, tmp_path):
    config = tmp_path / "server.toml"
    config.write_text("[settings]\nMaxConnections = 10\nMaxAcceptRate = 5\n")
    svc = service("--config-file", str(config))
    config.write_text("[settings]\nMaxConnections = 11\nMaxAcceptRate = 6\n")
    svc.reload()
    (event,) = [
        e for e in logged.events if e.get("log_format", "").startswith("tcpserver: reloaded")
    ]
    assert (event["changed"], event["restart"]) == (["MaxAcceptRate"], ["MaxConnections"])


def test_a_failed_reload_changes_nothing_it_reports(logged, tmp_path, tls):
    live = tmp_path / "live.pem"
    shutil.copy(tls.server_pem, live)
    svc = service("--tls-cert", str(live))
    Path(live).write_text("garbage")
    svc.reload()
    shutil.copy(tls.server_pem, live)
    svc.reload()
    messages = logged.messages()
    assert any("reload failed, keeping the current configuration" in m for m in messages)
    assert reloads(logged) == ["(nothing changed)"]
