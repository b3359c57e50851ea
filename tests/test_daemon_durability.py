"""What a SIGKILL of the private aria2c may lose, and the settings that decide it (issue 14).

``Aria2Daemon`` runs aria2c with ``--auto-save-interval=<save_interval>`` (1 s by default) and
``--disk-cache=0``; a killed aria2c, started again with its session, resumes from the control
file it last saved. The integration test kills a real aria2c mid-download with SIGKILL and
counts the bytes the real file server sends again.
"""

from __future__ import annotations

import os

import pytest

from aria2_sync import Aria2Client, Aria2Daemon, Aria2InputError
from aria2_sync.ui import cli
from tests.conftest import wait_for
from tests.support.fault_server import Slow

MiB = 1 << 20


def _options(daemon: Aria2Daemon) -> dict[str, str]:
    words = daemon._command("conf")[1:]
    return dict(word[2:].split("=", 1) for word in words)


def test_the_defaults_save_every_second_without_aria2cs_write_cache(tmp_path):
    options = _options(Aria2Daemon(download_dir=tmp_path))
    assert options["auto-save-interval"] == "1" == str(Aria2Daemon.DEFAULT_SAVE_INTERVAL)
    assert options["save-session-interval"] == "1"
    assert options["disk-cache"] == "0"
    assert options["file-allocation"] == "none"


def test_save_interval_sets_the_control_file_interval_and_options_override_the_cache(tmp_path):
    daemon = Aria2Daemon(download_dir=tmp_path, save_interval=5, options={"disk-cache": "16M"})
    options = _options(daemon)
    assert (options["auto-save-interval"], options["disk-cache"]) == ("5", "16M")
    assert options["save-session-interval"] == "1"  # the session keeps its own second


@pytest.mark.parametrize("bad", [-1, 601, True, "5", 1.5, None])
def test_a_save_interval_aria2c_would_refuse_is_refused_here(tmp_path, bad):
    with pytest.raises(Aria2InputError, match="save_interval"):
        Aria2Daemon(download_dir=tmp_path, save_interval=bad)


@pytest.mark.parametrize("seconds", [0.5, 3.0])
def test_a_sigkilled_daemon_resumes_losing_at_most_about_the_save_interval(fault_server, tmp_path, seconds):
    """Killed after 3 s of transfer: with the 1 s interval at most ~1 s of progress is fetched
    again (here 1.5 s is allowed, for what was in flight and aria2's size probe on restart); an
    interval of 60 s (aria2c's default) would lose all 3 s. Killed after 0.5 s, perhaps before
    the first save, it may start over from the control file aria2c wrote as it began. Either
    way the file must be intact."""
    rate, size = 2 * MiB, 8 * MiB
    url = fault_server.add_file("k.bin", size=size)
    fault_server.set_default_fault("k.bin", Slow(rate))
    target = tmp_path / "downloads" / "k.bin"
    daemon = Aria2Daemon(download_dir=tmp_path / "downloads", state_dir=tmp_path / "state", supervise=True)
    daemon.start()
    try:
        with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, retry_delay=0.05) as client:
            future = client.submit(url, str(target))
            wait_for(
                lambda: client.get_progress(future.gid).completed_length >= seconds * rate,
                timeout=20,
                what=f"{seconds} s of transfer",
            )
            daemon.kill()
            result = future.result(timeout=60)
        assert daemon.restarts == 1
    finally:
        daemon.stop()
    assert result.size == size
    assert target.read_bytes() == fault_server.content("k.bin")
    assert not os.path.exists(str(target) + ".aria2")
    fetched_again = fault_server.bytes_served("k.bin") - size
    assert fetched_again <= 1.5 * rate, f"{fetched_again / rate:.2f} s of progress fetched again"


def test_cli_save_interval_reaches_the_private_daemon(fault_server, tmp_path, monkeypatch, capsys):
    seen: list[dict[str, str]] = []
    real = Aria2Daemon._command

    def recording(self: Aria2Daemon, config: str) -> list[str]:
        words = real(self, config)
        seen.append(dict(word[2:].split("=", 1) for word in words[1:]))
        return words

    monkeypatch.setattr(Aria2Daemon, "_command", recording)
    url = fault_server.add_file("s.bin", size=1000)
    code = cli.main(["get", url, "-d", str(tmp_path), "-q", "--no-progress", "--save-interval", "7"])
    assert code == 0 and (tmp_path / "s.bin").read_bytes() == fault_server.content("s.bin")
    assert seen and seen[0]["auto-save-interval"] == "7"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--save-interval", "601"], "600"),
        (["--save-interval", "-1"], "0 or more"),
        (["--save-interval", "2", "--rpc-url", "http://127.0.0.1:9/jsonrpc"], "private aria2c"),
    ],
)
def test_cli_save_interval_usage_errors(tmp_path, capsys, args, words):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["get", "http://127.0.0.1:9/x", "-d", str(tmp_path), *args])
    assert exit_info.value.code == 2
    assert words in capsys.readouterr().err
