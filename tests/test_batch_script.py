"""``examples/batch_download.py`` as cron runs it: a subprocess, judged by its exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.support.fault_server import ResetAfter, Slow

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "batch_download.py"

pytestmark = pytest.mark.integration


def run_script(
    *args: str, cwd: Path, secret: str = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ARIA2_RPC_SECRET"}
    if secret is not None:
        env["ARIA2_RPC_SECRET"] = secret
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def write_urls(path: Path, *urls: str) -> Path:
    path.write_text("# files for the nightly run\n\n" + "\n".join(urls) + "\n", encoding="utf-8")
    return path


def test_all_downloaded_exits_0(fault_server, tmp_path):
    names = ["a.bin", "b.bin", "c.bin"]
    urls = [fault_server.add_file(name, size=150_000 * (i + 1)) for i, name in enumerate(names)]
    urls_file = write_urls(tmp_path / "urls.txt", *urls)
    result = run_script(str(urls_file), "-d", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in names:
        assert (tmp_path / "out" / name).read_bytes() == fault_server.content(name)
    assert result.stdout == ""  # everything is logged to stderr
    assert "downloading 3 files into" in result.stderr
    assert f"ok {tmp_path / 'out' / 'a.bin'} (146.5 KiB)" in result.stderr
    assert "3 downloaded (878.9 KiB), 0 failed, 0 restarts" in result.stderr


def test_quiet_success_prints_nothing(fault_server, tmp_path):
    urls_file = write_urls(tmp_path / "urls.txt", fault_server.add_file("q.bin", size=10_000))
    result = run_script(str(urls_file), "-d", str(tmp_path / "out"), "-q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")  # cron mails nothing
    assert (tmp_path / "out" / "q.bin").exists()


def test_one_404_exits_1_and_the_rest_still_arrives(fault_server, tmp_path):
    good = fault_server.add_file("good.bin", size=200_000)
    missing = fault_server.url("missing.bin")
    urls_file = write_urls(tmp_path / "urls.txt", good, missing)
    result = run_script(str(urls_file), "-d", str(tmp_path / "out"), "-q", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "out" / "good.bin").read_bytes() == fault_server.content("good.bin")
    assert f"FAILED {missing}: error 3" in result.stderr and "not restartable" in result.stderr
    assert "1 downloaded (195.3 KiB), 1 failed, 0 restarts" in result.stderr
    assert "ok " not in result.stderr  # -q: failures only
    assert fault_server.request_count("missing.bin") == 1  # a 404 is not retried


def test_a_missing_urls_file_exits_2_at_once(tmp_path):
    result = run_script(str(tmp_path / "nope.txt"), "-d", str(tmp_path / "out"), cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "cannot read the URLs file" in result.stderr and "nope.txt" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # nothing was started: no daemon, no download dir


@pytest.mark.parametrize(
    "args, message",
    [
        (["{empty}", "-d", "out"], "no URLs in"),
        (["{urls}"], "the following arguments are required: -d/--dir"),
        (["{urls}", "-d", "out", "--max-retries", "-1"], "--max-retries must be 0 or more"),
        (["{urls}", "-d", "out", "--timeout", "0"], "--timeout must be a positive number"),
        (["{urls}", "-d", "out", "--rpc-url", "localhost:6800"], "rpc_url"),
        (["{bad}", "-d", "out"], "item 0 of the batch"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args, message):
    files = {
        "{empty}": write_urls(tmp_path / "empty.txt"),
        "{urls}": write_urls(tmp_path / "urls.txt", "http://127.0.0.1:9/x.bin"),
        "{bad}": write_urls(tmp_path / "bad.txt", "not a url"),
    }
    result = run_script(*[str(files.get(a, a)) for a in args], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_running_daemon_with_the_secret_from_the_environment(daemon_factory, fault_server, tmp_path):
    daemon = daemon_factory(**{"max-tries": 1})  # aria2 gives up at once: the script restarts
    url = fault_server.add_file("flaky.bin", size=1_000_000)
    fault_server.add_faults("flaky.bin", ResetAfter(300_000))
    urls_file = write_urls(tmp_path / "urls.txt", url)
    args = [str(urls_file), "-d", str(tmp_path / "out"), "--rpc-url", daemon.rpc_url, "--max-retries", "2"]
    result = run_script(*args, cwd=tmp_path, secret=daemon.secret)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "flaky.bin").read_bytes() == fault_server.content("flaky.bin")
    assert "restarting failed download (attempt 1/2)" in result.stderr
    assert "1 downloaded (976.6 KiB), 0 failed, 1 restarts" in result.stderr
    assert daemon.secret not in result.stderr + result.stdout

    wrong = run_script(*args, cwd=tmp_path, secret="not-the-secret")
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert "not-the-secret" not in wrong.stderr


def test_a_timed_out_run_exits_1_and_the_next_run_resumes(fault_server, tmp_path):
    url = fault_server.add_file("big.bin", size=3_000_000)
    fault_server.set_default_fault("big.bin", Slow(300_000))
    urls_file = write_urls(tmp_path / "urls.txt", url)
    first = run_script(str(urls_file), "-d", "out", "--timeout", "1.5", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    assert "timed out after 1.5 s with 1 of 1 downloads unfinished" in first.stderr
    partial = (tmp_path / "out" / "big.bin").stat().st_size
    assert (tmp_path / "out" / "big.bin.aria2").exists()  # aria2's control file: resumable

    fault_server.clear_faults("big.bin")
    second = run_script(str(urls_file), "-d", "out", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "out" / "big.bin").read_bytes() == fault_server.content("big.bin")
    ranges = [r.range_header for r in fault_server.requests("big.bin") if r.range_header]
    assert ranges and int(ranges[-1].split("=")[1].split("-")[0]) > 0, ranges  # resumed
    assert partial > 0


def test_sigterm_stops_cleanly_and_keeps_the_partial_file(fault_server, tmp_path):
    url = fault_server.add_file("term.bin", size=3_000_000)
    fault_server.set_default_fault("term.bin", Slow(300_000))
    urls_file = write_urls(tmp_path / "urls.txt", url)
    env = {k: v for k, v in os.environ.items() if k != "ARIA2_RPC_SECRET"}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(urls_file), "-d", "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(
            lambda: fault_server.bytes_served("term.bin") > 100_000, timeout=30, what="the download to start"
        )
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:  # pragma: no cover - only if the script hung
            process.kill()
            process.wait(10)
    assert process.returncode == 130, stderr
    assert "interrupted: partial files are kept" in stderr and "Traceback" not in stderr
    assert (tmp_path / "out" / "term.bin.aria2").exists()
    wait_for(lambda: not aria2c_of(process.pid), timeout=10, what="the script's aria2c to exit")


def aria2c_of(pid: int) -> list:
    """PIDs of the aria2c processes tied to process ``pid`` (Linux /proc; empty elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"aria2c") and f"--stop-with-process={pid}".encode() in cmdline:
            found.append(int(entry.name))
    return found
