"""``python -m tcpserver``: the twistd plugin's options without twistd; the plugin cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import LISTENING, ServerProcess, ServerProcesses, client, twistd_argv

PYTHON = sys.executable


@pytest.fixture
def tcpserver_main(processes: ServerProcesses):
    """``python -m tcpserver ARGS``, started and listening."""

    def start(*args: str) -> ServerProcess:
        proc = processes.start([PYTHON, "-m", "tcpserver", *args])
        proc.wait_for(LISTENING)
        return proc

    return start


def test_serves_with_the_plugin_options_and_drains_on_sigterm(tcpserver_main, tmp_path):
    (tmp_path / "upper.py").write_text(
        "def on_data_in(server, event):\n"
        "    server.send_line(event.connection_id, event.text.upper())\n"
    )
    proc = tcpserver_main("--port", "0", "--eol", "\\n", "--handler", "upper")
    assert client(proc.port, b"quiet\n", 7) == b"QUIET\r\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "drained; stopped" in proc.log()


def test_a_config_file_and_settings_work_as_with_twistd(tcpserver_main, tmp_path):
    (tmp_path / "server.toml").write_text(
        textwrap.dedent(
            """
            port = 0
            [settings]
            DefaultEOL = "\\n"
            MaxConnectionsPerAddress = 1
            """
        )
    )
    proc = tcpserver_main("--config-file", "server.toml")
    assert client(proc.port, b"echo\n", 5) == b"echo\n"
    proc.signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--max-line-length", "12"], "--max-line-length '12'"),
        (["--no-such-flag"], "no-such-flag"),
        (["--config", "MaxFrameLength=-3"], "-3"),
    ],
)
def test_bad_options_exit_2_naming_flag_and_value(tmp_path, args, expected):
    result = subprocess.run(
        [PYTHON, "-m", "tcpserver", *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_every_setting(tmp_path):
    result = subprocess.run(
        [PYTHON, "-m", "tcpserver", "--help"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: python -m tcpserver [options]\n")
    for name in ("[MaxAcceptRate,", "[ReadIdleTimeout,", "[DefaultLengthPrefix,", "SSLKeyLogFile="):
        assert name in result.stdout


READ_ONLY_TWISTD = textwrap.dedent(
    """
    # twistd's plugin scan with dropin.cache unwritable (as in a read-only
    # site-packages; root could write anyway, so writes are made to fail)
    import sys
    from twisted.python import filepath
    real = filepath.FilePath.setContent
    def refuse(self, content, ext=b".new"):
        if self.basename() == "dropin.cache":
            raise PermissionError(13, "Read-only file system")
        return real(self, content, ext)
    filepath.FilePath.setContent = refuse
    from twisted.logger import globalLogBeginner, textFileLogObserver
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    # what twistd does to find its subcommands
    from twisted.application.service import IServiceMaker
    from twisted.plugin import getPlugins
    print("plugins:", sorted(maker.tapname for maker in getPlugins(IServiceMaker)))
    """
)


def test_regenerated_plugin_cache_keeps_twistd_quiet_on_a_read_only_install(tmp_path):
    import twisted.plugins

    plugin = next(
        Path(entry) / "tcpserver_plugin.py"
        for entry in twisted.plugins.__path__
        if (Path(entry) / "tcpserver_plugin.py").exists()
    )
    script = tmp_path / "read_only_twistd.py"
    script.write_text(READ_ONLY_TWISTD)
    # a fresh install: the plugin is newer than any cache
    now = time.time()
    os.utime(plugin, (now, now))
    stale = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60)
    assert "Unable to write to plugin cache" in stale.stdout + stale.stderr
    regenerate = subprocess.run(
        [PYTHON, "-m", "tcpserver", "--regenerate-plugin-cache"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert regenerate.returncode == 0, regenerate.stdout + regenerate.stderr
    assert "fresh" in regenerate.stdout
    quiet = subprocess.run([PYTHON, str(script)], capture_output=True, text=True, timeout=60)
    assert "Unable to write to plugin cache" not in quiet.stdout + quiet.stderr
    assert "'tcpserver'" in quiet.stdout  # the plugin was found


def test_a_cache_missing_our_entry_is_not_fresh():
    import pickle

    from tcpserver.__main__ import _plugin_directory, plugin_cache_is_fresh, regenerate_plugin_cache

    assert regenerate_plugin_cache()
    directory = _plugin_directory()
    assert directory is not None
    cache = directory / "dropin.cache"
    saved = cache.read_bytes()
    try:
        entries = pickle.loads(saved)  # noqa: S301 - Twisted's own cache file
        entries.pop("tcpserver_plugin")
        cache.write_bytes(pickle.dumps(entries))  # newer than every module, but incomplete
        assert not plugin_cache_is_fresh()
        assert regenerate_plugin_cache()
        assert "tcpserver_plugin" in pickle.loads(cache.read_bytes())  # noqa: S301
    finally:
        if not plugin_cache_is_fresh():
            cache.write_bytes(saved)


@pytest.mark.parametrize("runner", ["python -m", "twistd"])
def test_version_names_tcpserver_and_twisted(tmp_path, runner):
    import tcpserver
    import twisted

    argv = [PYTHON, "-m", "tcpserver"] if runner == "python -m" else twistd_argv()
    result = subprocess.run([*argv, "--version"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0
    assert f"tcpserver {tcpserver.__version__} (Twisted {twisted.__version__})" in result.stdout
