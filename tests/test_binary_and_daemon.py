"""Finding aria2c, and the private daemon the tests (and users) run."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from aria2_sync import Aria2BinaryNotFoundError, Aria2Client, Aria2InputError, find_aria2c
from aria2_sync.daemon import binary as binary_module
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.errors import Aria2DaemonError


def make_executable(path, text="#!/bin/sh\nexit 0\n"):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """An empty PATH and no ARIA2C, so each test sets up exactly the candidates it means."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("ARIA2C", raising=False)
    return bin_dir


def test_explicit_path_wins(fake_bin, tmp_path, monkeypatch):
    explicit = make_executable(tmp_path / "mine")
    monkeypatch.setenv("ARIA2C", make_executable(tmp_path / "env"))
    make_executable(fake_bin / "aria2c")
    assert find_aria2c(explicit) == explicit


def test_then_the_environment_variable(fake_bin, tmp_path, monkeypatch):
    env = make_executable(tmp_path / "env")
    monkeypatch.setenv("ARIA2C", env)
    make_executable(fake_bin / "aria2c")
    assert find_aria2c() == env


def test_then_path(fake_bin):
    on_path = make_executable(fake_bin / "aria2c")
    assert find_aria2c() == on_path


def test_then_the_bundled_binary(fake_bin, tmp_path, monkeypatch):
    bundled = make_executable(tmp_path / "bundled-aria2c")
    monkeypatch.setattr(binary_module, "_bundled", lambda: bundled)
    assert find_aria2c() == bundled


def test_the_bundled_packages_launcher_script_resolves_to_its_binary(fake_bin, tmp_path, monkeypatch):
    bundled = make_executable(tmp_path / "bundled-aria2c")
    monkeypatch.setattr(binary_module, "_bundled", lambda: bundled)
    make_executable(fake_bin / "aria2c", "#!/usr/bin/python3\nimport sys\nfrom aria2c import main\n")
    assert find_aria2c() == bundled


def test_nothing_found_says_where_it_looked_and_how_to_install(fake_bin, monkeypatch):
    monkeypatch.setattr(binary_module, "_bundled", lambda: None)
    with pytest.raises(Aria2BinaryNotFoundError) as info:
        find_aria2c()
    text = str(info.value)
    assert "PATH" in text and "ARIA2C" in text and "pip install" in text


@pytest.mark.parametrize("how", ["explicit", "env"])
def test_a_wrong_explicit_choice_is_an_error_not_a_fallback(fake_bin, tmp_path, monkeypatch, how):
    make_executable(fake_bin / "aria2c")
    missing = str(tmp_path / "nope")
    if how == "env":
        monkeypatch.setenv("ARIA2C", missing)
    with pytest.raises(Aria2BinaryNotFoundError, match="nope"):
        find_aria2c(missing if how == "explicit" else None)


def test_the_test_extra_provides_a_working_aria2c():
    path = find_aria2c()
    assert os.access(path, os.X_OK)


def test_daemon_starts_answers_and_stops_without_leftovers(tmp_path):
    daemon = Aria2Daemon(download_dir=tmp_path / "dl").start()
    pid = daemon.pid
    state_dir = daemon.state_dir
    try:
        assert daemon.rpc_url.startswith("http://127.0.0.1:")
        conf = os.path.join(state_dir, "aria2.conf")
        assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            assert daemon.secret.encode() not in handle.read(), "the secret must not be in the process list"
        with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False) as client:
            assert client.get_version()["version"]
    finally:
        daemon.stop()
    assert not daemon.running
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert not os.path.exists(state_dir)
    daemon.stop()  # idempotent


def test_a_failed_start_reports_aria2cs_reason(tmp_path):
    daemon = Aria2Daemon(download_dir=tmp_path, options={"max-tries": "not-a-number"})
    with pytest.raises(Aria2DaemonError) as info:
        daemon.start()
    assert "max-tries" in str(info.value)
    assert daemon.secret not in str(info.value)
    daemon.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def test_a_supervised_daemon_survives_sigkill_and_the_batch_completes(tmp_path, fault_server):
    from aria2_sync import wait
    from tests.conftest import wait_for
    from tests.support.fault_server import Slow
    from tests.test_client import daemon_gids

    items = []
    for i in range(4):
        url = fault_server.add_file(f"s{i}.bin", size=1_000_000)
        fault_server.set_default_fault(f"s{i}.bin", Slow(700_000))
        items.append((url, str(tmp_path / "dl" / f"s{i}.bin")))
    client = Aria2Client.local(tmp_path / "dl", verbose=False, poll_interval=0.05, retry_delay=0.02)
    try:
        daemon = client.daemon
        batch_id = client.add_batch_downloads(items)
        futures = client.batch_futures(batch_id)
        session = daemon.session_file
        wait_for(lambda: all(f.gid in open(session).read() for f in futures), what="the session file")
        first_pid = daemon.pid
        os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: daemon.restarts == 1 and daemon.running, what="the supervisor to restart aria2c")
        assert daemon.pid != first_pid and daemon.port == int(client.rpc_url.rsplit(":", 1)[1].split("/")[0])
        done, not_done = wait(futures, timeout=60)
        assert not not_done
        for (url, _path), future in zip(items, futures):
            assert open(future.result().path, "rb").read() == fault_server.content(url.rsplit("/", 1)[1])
        assert sorted(daemon_gids(client)) == sorted(f.gid for f in futures)
        last_pid = daemon.pid
    finally:
        client.close()
    assert not daemon.running and not _alive(last_pid)


def test_local_client_owns_its_daemon(tmp_path):
    client = Aria2Client.local(tmp_path, verbose=False)
    daemon = client.daemon
    pid = daemon.pid
    assert client.get_version()["version"] and daemon.secret not in repr(client)
    client.close()
    assert not daemon.running and not _alive(pid)
    with pytest.raises(Aria2InputError, match="rpc_url"):
        Aria2Client.local(tmp_path, rpc_url="http://127.0.0.1:1/jsonrpc")


@pytest.mark.parametrize(
    "options, words",
    [
        ({"rpc-secret": "x"}, "set by Aria2Daemon"),
        ({"rpc-listen-port": 1}, "set by Aria2Daemon"),
        ({"--dir": "x"}, "option names"),
        ({"split": None}, "takes a str"),
        (["split=2"], "must be a dict"),
    ],
)
def test_daemon_options_are_checked(tmp_path, options, words):
    with pytest.raises(Aria2InputError, match=words):
        Aria2Daemon(download_dir=tmp_path, options=options)
