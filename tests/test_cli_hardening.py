"""The command line's output and errors (issue 10, item 9): no URL password ever printed, one
line and exit 2 for a bad ``-i`` or ``-d``, and ``$ARIA2_RPC_SECRET`` only for ``--rpc-url``.

The real CLI in a subprocess (``python -m aria2_sync``), a real aria2c, the real fault server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import wait_for_status

PASSWORD = "S3cretPassw0rd"


def run_cli(
    *args: str, cwd: Path, env_extra: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ARIA2_RPC_SECRET"}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "aria2_sync", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def with_password(url: str) -> str:
    return url.replace("http://", f"http://alice:{PASSWORD}@", 1)


def assert_one_line_error(result: subprocess.CompletedProcess, words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


def test_get_never_prints_a_url_password(fault_server, tmp_path):
    missing = with_password(fault_server.url("missing.bin"))
    good = with_password(fault_server.add_file("good.bin", size=1000))
    for extra in ((), ("--json",)):
        result = run_cli(
            "get",
            good,
            missing,
            "-d",
            str(tmp_path / f"out{len(extra)}"),
            "--max-retries",
            "0",
            "--no-progress",
            *extra,
            cwd=tmp_path,
        )
        assert result.returncode == 1, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert "alice:***@" in result.stdout + result.stderr  # which URL failed is still said
    document = json.loads(result.stdout)
    failed = [d for d in document["downloads"] if d["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["url"].startswith("http://alice:***@")


def test_status_never_prints_a_url_password(daemon, client, fault_server, tmp_path):
    host_only = with_password(f"http://127.0.0.1:{fault_server.port}")  # no path: the name is the URL
    gid = client.add_download(host_only, None, {"dir": str(tmp_path), "max-tries": 1, "retry-wait": 0})
    wait_for_status(client, gid, "error")
    paused = client.add_download(
        with_password(fault_server.add_file("p.bin", size=10)), None, {"dir": str(tmp_path), "pause": True}
    )
    wait_for_status(client, paused, "paused")
    env = {"ARIA2_RPC_SECRET": daemon.secret}
    for extra in ((), ("--json",)):
        result = run_cli("status", "--rpc-url", daemon.rpc_url, *extra, cwd=tmp_path, env_extra=env)
        assert result.returncode == 0, result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert gid in result.stdout and paused in result.stdout
        if not extra:
            assert "alice:***@" in result.stdout  # the URL stands for the missing file name


def test_a_binary_url_file_is_a_usage_error(tmp_path):
    binary = tmp_path / "urls.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01" * 50)
    assert_one_line_error(run_cli("get", "-i", str(binary), cwd=tmp_path), "is not text")
    assert_one_line_error(run_cli("get", "-i", str(tmp_path), cwd=tmp_path), "cannot read URL file")


def test_a_directory_through_a_file_is_a_usage_error(fault_server, tmp_path):
    url = fault_server.add_file("d.bin", size=10)
    assert_one_line_error(run_cli("get", url, "-d", "/dev/null/x", cwd=tmp_path), "/dev/null")
    (tmp_path / "plain").write_text("x")
    assert_one_line_error(
        run_cli("get", url, "-d", str(tmp_path / "plain" / "sub"), cwd=tmp_path), "which is a file"
    )
    assert fault_server.requests("d.bin") == []


def test_an_exported_secret_does_not_break_the_embedded_mode(fault_server, tmp_path):
    url = fault_server.add_file("e.bin", size=5000)
    result = run_cli(
        "get",
        url,
        "-d",
        str(tmp_path / "out"),
        "--no-progress",
        cwd=tmp_path,
        env_extra={"ARIA2_RPC_SECRET": "for-another-daemon"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "e.bin").read_bytes() == fault_server.content("e.bin")
    # An explicit --rpc-secret without --rpc-url is still a usage error.
    assert_one_line_error(run_cli("get", url, "--rpc-secret", "x", cwd=tmp_path), "--rpc-url")


def test_the_exported_secret_still_serves_rpc_url(daemon, fault_server, tmp_path):
    url = fault_server.add_file("r.bin", size=5000)
    result = run_cli(
        "get",
        url,
        "-d",
        str(tmp_path / "out"),
        "--rpc-url",
        daemon.rpc_url,
        "--no-progress",
        cwd=tmp_path,
        env_extra={"ARIA2_RPC_SECRET": daemon.secret},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "r.bin").read_bytes() == fault_server.content("r.bin")


def test_the_batch_script_refuses_a_directory_through_a_file_in_one_line(fault_server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(with_password(fault_server.add_file("b.bin", size=10)) + "\n")
    script = Path(__file__).resolve().parent.parent / "examples" / "batch_download.py"
    env = {k: v for k, v in os.environ.items() if k != "ARIA2_RPC_SECRET"}
    result = subprocess.run(
        [sys.executable, str(script), str(urls), "-d", "/dev/null/x"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "/dev/null/x" in result.stderr
    assert PASSWORD not in result.stderr
