"""The built and the installed wheel: the plugin ships, the namespace stays open."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tcpserver

ROOT = Path(__file__).resolve().parent.parent


def test_tests_run_against_the_installed_package():
    if os.environ.get("TCPSERVER_TEST_INSTALLED") != "1":
        pytest.skip("set TCPSERVER_TEST_INSTALLED=1 (tox and CI do) to require the wheel")
    assert "site-packages" in tcpserver.__file__, tcpserver.__file__


def test_installed_distribution_has_the_plugin_and_no_twisted_init():
    files = {str(f) for f in importlib.metadata.files("tcpserver") or []}
    assert "twisted/plugins/tcpserver_plugin.py" in files
    assert "twisted/__init__.py" not in files
    assert "twisted/plugins/__init__.py" not in files
    assert "tcpserver/py.typed" in files
    assert importlib.metadata.version("tcpserver") == tcpserver.__version__


def test_twisted_finds_the_plugin():
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins

    from twisted import plugins

    names = [p.tapname for p in getPlugins(IServiceMaker, plugins)]
    assert "tcpserver" in names


def test_built_wheel_file_list(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "--outdir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("tcpserver-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/tcpserver_plugin.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert not any(n.endswith("dropin.cache") for n in names)
    assert "tcpserver/py.typed" in names
    modules = {n for n in names if n.startswith("tcpserver/") and n.endswith(".py")}
    for module in (
        "framing",
        "protocol",
        "factory",
        "server",
        "tls",
        "settings",
        "errors",
        "events",
        "handlers",
        "tap",
        "testing",
    ):
        assert f"tcpserver/{module}.py" in modules
    assert not any(n.startswith("tests/") for n in names)


def test_the_tcpserver_console_script_is_installed_and_runs():
    scripts = [
        ep
        for ep in importlib.metadata.entry_points(group="console_scripts")
        if ep.name == "tcpserver"
    ]
    assert [ep.value for ep in scripts] == ["tcpserver.__main__:console"]
    script = Path(sys.executable).parent / "tcpserver"
    assert script.exists(), script
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    import twisted

    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip()
        == f"tcpserver {tcpserver.__version__} (Twisted {twisted.__version__})"
    )
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.stdout.startswith("Usage: tcpserver [options]\n")


def test_the_lowest_versions_tested_are_the_lower_bounds_declared():
    """ci/lowest-constraints.txt (tox -e lowest) pins exactly pyproject's lower bounds."""
    import re
    import tomllib

    declared = {}
    for requirement in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement)
        assert match is not None, requirement
        declared[match.group(1).lower()] = match.group(2)
    pinned = {}
    for line in (ROOT / "ci" / "lowest-constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    assert pinned == declared
