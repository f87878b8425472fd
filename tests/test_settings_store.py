"""The settings side of the core: effects, coupled values, record(), the view, layering.

What a change of a setting does is declared on its registry entry
(``Setting.effect``, ``Setting.couples``) and carried out by
:class:`~tcpserver.settings.Settings` alone, without a factory; the
settings modules sit below :mod:`tcpserver.tls`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tcpserver import errors
from tcpserver.errors import TCPServerError
from tcpserver.settings import (
    EFFECTS,
    REGISTRY,
    Setting,
    Settings,
    SSLStartMode,
    lookup,
)

PACKAGE = Path(__file__).resolve().parent.parent / "tcpserver"

#: The factory's old test for "this change must drop cached TLS contexts".
TLS_PREFIXES = ("SSL", "OpenSSL", "TLS1", "ReuseSSL")


def _recording() -> tuple[Settings, list[tuple[str, Any]]]:
    changes: list[tuple[str, Any]] = []
    settings = Settings(on_change=lambda setting, value: changes.append((setting.name, value)))
    return settings, changes


# -- effects ------------------------------------------------------------------------------


def test_effect_names() -> None:
    assert EFFECTS == (
        "access",
        "admission",
        "proxies",
        "codec",
        "max_connections",
        "tls",
        "nodelay",
    )
    assert {s.effect for s in REGISTRY} <= {*EFFECTS, None}


def test_tls_effect_is_exactly_the_old_name_prefix_rule() -> None:
    tagged = {s.name for s in REGISTRY if s.effect == "tls"}
    by_prefix = {s.name for s in REGISTRY if s.name.startswith(TLS_PREFIXES)}
    assert tagged == by_prefix
    assert "LogSSLPackets" not in tagged  # SSL in the middle of the name does not count


def test_other_effects() -> None:
    tagged = {s.name: s.effect for s in REGISTRY if s.effect not in (None, "tls")}
    assert tagged == {
        "AllowedClients": "access",
        "BlockedClients": "access",
        "MaxConnectionsPerAddress": "admission",
        "MaxAcceptRate": "admission",
        "MaxAcceptRatePerAddress": "admission",
        "TrustedProxies": "proxies",
        "CodePage": "codec",
        "MaxConnections": "max_connections",
        "TcpNoDelay": "nodelay",
    }


# -- coupled values -----------------------------------------------------------------------


def test_only_the_ssl_pair_is_coupled() -> None:
    assert {s.name for s in REGISTRY if s.couples is not None} == {"SSLEnabled", "SSLStartMode"}


@pytest.mark.parametrize(
    ("mode", "enabled"),
    [
        (SSLStartMode.AUTOMATIC, True),
        (SSLStartMode.IMPLICIT, True),
        (SSLStartMode.EXPLICIT, True),
    ],
)
def test_a_start_mode_enables_tls_on_a_bare_store(mode: SSLStartMode, enabled: bool) -> None:
    settings, changes = _recording()
    settings.set("SSLStartMode", mode)
    assert settings["SSLEnabled"] is enabled
    assert changes == [("SSLStartMode", mode), ("SSLEnabled", True)]
    changes.clear()
    settings.set("ssl_start_mode", SSLStartMode.NONE)
    assert settings["SSLEnabled"] is False
    assert changes == [("SSLStartMode", SSLStartMode.NONE), ("SSLEnabled", False)]


def test_enabling_tls_without_a_mode_means_implicit() -> None:
    settings, changes = _recording()
    settings.set_string("SSLEnabled", "True")
    assert settings["SSLStartMode"] == SSLStartMode.IMPLICIT
    assert changes == [("SSLEnabled", True), ("SSLStartMode", SSLStartMode.IMPLICIT)]
    changes.clear()
    settings.set("SSLEnabled", False)
    assert settings["SSLStartMode"] == SSLStartMode.NONE
    assert changes == [("SSLEnabled", False), ("SSLStartMode", SSLStartMode.NONE)]


def test_enabling_tls_keeps_a_chosen_mode() -> None:
    settings, changes = _recording()
    settings.set("SSLStartMode", SSLStartMode.EXPLICIT)
    changes.clear()
    settings.set("SSLEnabled", True)  # already True: nothing changes
    assert settings["SSLStartMode"] == SSLStartMode.EXPLICIT
    assert changes == []


def test_on_change_sees_both_values_stored() -> None:
    seen: list[tuple[str, bool, SSLStartMode]] = []

    def on_change(setting: Setting, value: object) -> None:
        seen.append((setting.name, settings["SSLEnabled"], settings["SSLStartMode"]))

    settings = Settings(on_change=on_change)
    settings.set("SSLStartMode", SSLStartMode.AUTOMATIC)
    assert seen == [
        ("SSLStartMode", True, SSLStartMode.AUTOMATIC),
        ("SSLEnabled", True, SSLStartMode.AUTOMATIC),
    ]


def test_the_pair_stays_consistent_through_any_sequence() -> None:
    settings = Settings()
    steps: list[tuple[str, object]] = [
        ("SSLEnabled", True),
        ("SSLStartMode", SSLStartMode.AUTOMATIC),
        ("SSLEnabled", True),
        ("SSLStartMode", SSLStartMode.NONE),
        ("SSLEnabled", False),
        ("SSLStartMode", SSLStartMode.EXPLICIT),
        ("SSLEnabled", False),
    ]
    for name, value in steps:
        settings.set(name, value)
        assert settings["SSLEnabled"] == (settings["SSLStartMode"] != SSLStartMode.NONE)


def test_a_refused_value_changes_nothing() -> None:
    settings, changes = _recording()
    with pytest.raises(TCPServerError) as raised:
        settings.set("SSLStartMode", 7)
    assert raised.value.code == errors.INVALID_ARGUMENT
    assert (settings["SSLStartMode"], settings["SSLEnabled"]) == (SSLStartMode.NONE, False)
    assert changes == []


# -- record() and the view ----------------------------------------------------------------


def test_record_stores_a_learned_value_without_telling_the_owner() -> None:
    settings, changes = _recording()
    with pytest.raises(TCPServerError) as raised:
        settings.set("LocalPort", 4321, listening=True)
    assert raised.value.code == errors.LOCAL_PORT_WHILE_LISTENING
    settings.record("LocalPort", 4321)  # the port bound while listening
    assert settings["LocalPort"] == 4321
    assert settings.get_string("local_port") == "4321"
    assert changes == []


def test_record_still_validates() -> None:
    settings = Settings()
    with pytest.raises(TCPServerError) as raised:
        settings.record("LocalPort", 70000)
    assert raised.value.code == errors.INVALID_ARGUMENT
    with pytest.raises(TCPServerError):
        settings.record("BuildInfo", "x")
    assert settings["LocalPort"] == 0


def test_view_is_live_and_read_only() -> None:
    settings = Settings()
    view = settings.view
    assert view is settings.view
    assert view["MaxConnections"] == lookup("MaxConnections").default
    settings.set("MaxConnections", 5)
    assert view["MaxConnections"] == 5
    assert set(view) == {s.name for s in REGISTRY}
    with pytest.raises(TypeError):
        view["MaxConnections"] = 6  # type: ignore[index]


def test_reset_keeps_the_pair_consistent() -> None:
    settings = Settings()
    settings.set("SSLStartMode", SSLStartMode.AUTOMATIC)
    settings.reset()
    assert (settings["SSLStartMode"], settings["SSLEnabled"]) == (SSLStartMode.NONE, False)


# -- layering ------------------------------------------------------------------------------


def _imports(module: str) -> set[str]:
    """tcpserver modules ``module`` imports anywhere: top level, functions, TYPE_CHECKING."""
    path = PACKAGE / (module.removeprefix("tcpserver.").replace(".", "/") + ".py")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("tcpserver."))
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tcpserver":
                found.update(f"tcpserver.{a.name}" for a in node.names)
            elif node.module.startswith("tcpserver."):
                found.add(node.module)
    return {m for m in found if (PACKAGE / (m.split(".", 1)[1] + ".py")).exists()}


def _reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for imported in _imports(todo.pop()) - seen:
            seen.add(imported)
            todo.append(imported)
    return seen


def test_settings_never_reaches_tls() -> None:
    for module in ("tcpserver.settings", "tcpserver.registry", "tcpserver.settingtypes"):
        reached = _reachable(module)
        assert "tcpserver.tls" not in reached, module
        assert module not in reached, f"{module} is in an import cycle"
    assert _imports("tcpserver._tlsnames") == set()


def test_importing_settings_does_not_load_tls() -> None:
    # tcpserver/__init__.py imports everything: load the package without it.
    code = (
        "import sys, types\n"
        f"package = types.ModuleType('tcpserver'); package.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['tcpserver'] = package\n"
        "import tcpserver.settings\n"
        "assert 'tcpserver.tls' not in sys.modules, sorted(sys.modules)\n"
        "assert 'tcpserver.factory' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_names_importable_before_the_split() -> None:
    import tcpserver.settings as settings_module
    import tcpserver.tls as tls_module

    for name in (
        "READOUTS", "REGISTRY", "SSLStartMode", "Setting", "Settings", "SettingType", "Kind",
        "lookup", "readout_name", "parse_bool", "decode_escapes", "encode_escapes",
        "parse_config_string", "ConfigRequest", "build_info", "LICENSE_INFO",
    ):  # fmt: skip
        assert hasattr(settings_module, name), name
    for name in (
        "protocol_range", "check_protocols", "split_cipher_suites", "check_cipher_suites",
        "check_cipher_list", "cipher_bits", "openssl_sigalgs", "openssl_groups",
        "check_sigalgs", "check_groups", "can_set_sigalgs", "can_set_groups", "ALERTS",
        "SSLStartMode", "negotiated", "verify_client", "TLSContexts",
    ):  # fmt: skip
        assert hasattr(tls_module, name), name
