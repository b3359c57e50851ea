"""``aria2-sync`` as a user runs it: a subprocess from a fresh virtualenv, no aria2c on PATH."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.support.fault_server import ResetAfter, Slow

ROOT = Path(__file__).resolve().parent.parent

#: The first test here also builds the virtualenv (``pip install .``, up to 15 minutes allowed).
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="session")
def cli_venv(tmp_path_factory) -> Path:
    """A new virtualenv with the project installed the plain way: ``pip install .``, no extras."""
    venv = tmp_path_factory.mktemp("cli-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = venv / "bin" / "pip"
    result = subprocess.run(
        [str(pip), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"pip install . failed:\n{result.stderr[-3000:]}"
    return venv


def _path_without_aria2c() -> str:
    return os.pathsep.join(
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not os.path.exists(os.path.join(d, "aria2c"))
    )


def run_cli(venv: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ARIA2C", "ARIA2_RPC_SECRET", "VIRTUAL_ENV")}
    env["PATH"] = _path_without_aria2c()
    assert shutil.which("aria2c", path=env["PATH"]) is None
    return subprocess.run(
        [str(venv / "bin" / "aria2-sync"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_two_files_one_failing_once_mid_body(cli_venv, fault_server, tmp_path):
    one = fault_server.add_file("one.bin", size=300_000)
    two = fault_server.add_file("two.bin", size=2_000_000)
    fault_server.add_faults("two.bin", ResetAfter(700_000))
    result = run_cli(
        cli_venv,
        "get",
        one,
        two,
        "-d",
        str(tmp_path / "out"),
        "-O",
        "max-tries=1",
        "--retry-delay",
        "0.05",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "one.bin").read_bytes() == fault_server.content("one.bin")
    assert (tmp_path / "out" / "two.bin").read_bytes() == fault_server.content("two.bin")
    assert "2 downloaded" in result.stdout and "0 failed, 1 restarts" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_404_exits_1_with_the_reason(cli_venv, fault_server, tmp_path):
    ok = fault_server.add_file("fine.bin", size=1000)
    result = run_cli(
        cli_venv, "get", ok, fault_server.base_url + "/missing.bin", "-d", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 1
    assert (
        "FAILED" in result.stderr and "missing.bin" in result.stderr and "Resource not found" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert (tmp_path / "fine.bin").exists()


@pytest.mark.parametrize(
    "args, words",
    [
        (["get", "not-a-url"], "has no scheme"),
        (["get", "file:///etc/passwd"], "unsupported scheme"),
        (["get"], "at least one URL"),
        (["get", "http://127.0.0.1:1/a", "http://127.0.0.1:1/b", "-o", "x"], "exactly one URL"),
        (["get", "http://127.0.0.1:1/a", "-O", "nokey"], "KEY=VALUE"),
        (["get", "http://127.0.0.1:1/a", "--max-retries", "-1"], "--max-retries"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_2_without_a_traceback(cli_venv, tmp_path, args, words):
    result = run_cli(cli_venv, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert "Traceback" not in result.stderr


def test_json_output_parses(cli_venv, fault_server, tmp_path):
    url = fault_server.add_file("j.bin", size=12345)
    result = run_cli(cli_venv, "get", url, "-d", str(tmp_path), "-o", "named.bin", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["completed"] == 1 and document["failed"] == 0
    (entry,) = document["downloads"]
    assert entry["path"] == str(tmp_path / "named.bin") and entry["size"] == 12345
    assert entry["status"] == "complete" and entry["retry_count"] == 0


def test_an_unreachable_daemon_or_a_bad_secret_is_one_line(cli_venv, daemon, tmp_path):
    closed = run_cli(
        cli_venv,
        "get",
        "http://127.0.0.1:1/x",
        "--rpc-url",
        "http://127.0.0.1:1/jsonrpc",
        "--max-retries",
        "0",
        cwd=tmp_path,
    )
    assert closed.returncode == 1
    assert "connection" in closed.stderr and "Traceback" not in closed.stderr
    assert len(closed.stderr.strip().splitlines()) == 1
    wrong = run_cli(
        cli_venv, "status", "--rpc-url", daemon.rpc_url, "--rpc-secret", "bad-secret-xyz", cwd=tmp_path
    )
    assert wrong.returncode == 1 and "Unauthorized" in wrong.stderr and "bad-secret-xyz" not in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_status_of_a_running_daemon(cli_venv, daemon, client, fault_server, tmp_path):
    gid = client.add_download(fault_server.add_file("s.bin", size=100), str(tmp_path / "s.bin"))
    wait_for(lambda: client.get_progress(gid).status == "complete", what="the download")
    result = run_cli(
        cli_venv, "status", "--rpc-url", daemon.rpc_url, "--rpc-secret", daemon.secret, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert gid in result.stdout and "complete" in result.stdout
    as_json = run_cli(
        cli_venv, "status", "--rpc-url", daemon.rpc_url, "--rpc-secret", daemon.secret, "--json", cwd=tmp_path
    )
    assert json.loads(as_json.stdout)["downloads"][0]["gid"] == gid
    assert daemon.secret not in result.stdout + result.stderr


def _aria2c_children_of(pid: int):
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"aria2c" in cmdline and f"--stop-with-process={pid}".encode() in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the daemon")
def test_ctrl_c_stops_cleanly_and_the_next_run_resumes(cli_venv, fault_server, tmp_path):
    url = fault_server.add_file("big.bin", size=4_000_000)
    fault_server.set_default_fault("big.bin", Slow(400_000))
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("ARIA2C", "VIRTUAL_ENV")}
    env["PATH"] = _path_without_aria2c()
    process = subprocess.Popen(
        [str(cli_venv / "bin" / "aria2-sync"), "get", url, "-d", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        partial = out / "big.bin"
        wait_for(
            lambda: partial.exists() and partial.stat().st_size > 500_000, timeout=30, what="a partial file"
        )
        wait_for(lambda: _aria2c_children_of(process.pid), what="the private aria2c")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert (out / "big.bin.aria2").exists(), "the control file must stay for the resume"
    assert _aria2c_children_of(process.pid) == []

    fault_server.set_default_fault("big.bin", None)
    again = run_cli(cli_venv, "get", url, "-d", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert partial.read_bytes() == fault_server.content("big.bin")
    ranged = [r.range_header for r in fault_server.requests("big.bin") if r.range_header]
    assert ranged and not ranged[-1].startswith("bytes=0-"), "the second run must resume, not restart"


def test_python_dash_m_is_the_same_command(cli_venv, tmp_path):
    result = subprocess.run(
        [str(cli_venv / "bin" / "python"), "-m", "aria2_sync", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.startswith("aria2-sync ")
