"""``aria2-sync add/pause/resume/remove/purge/show/call/options`` against a real aria2c (issue 18).

The commands run in this process (``main(argv)``: the console script's own entry point) with the
secret in ``$ARIA2_RPC_SECRET``, as a user gives it; one run goes through ``python -m aria2_sync``
to see the same from a subprocess. What each command did is checked on the daemon itself, through
a separate client (``client.list_downloads``), not only from what the command printed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from aria2_sync.ui.cli import main
from aria2_sync.ui.commands import method_name
from tests.conftest import wait_for

PASSWORD = "Pa55wordXyz"


@pytest.fixture
def cli(daemon, monkeypatch, capsys):
    """``cli("show", "--json")`` -> (exit code, stdout, stderr), on the test's daemon."""
    monkeypatch.setenv("ARIA2_RPC_SECRET", daemon.secret)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main([*args, "--rpc-url", daemon.rpc_url])
        except SystemExit as exit:  # (argparse, and UsageError through parser.exit)
            code = int(exit.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def statuses(client) -> dict[str, str]:
    return {p.gid: p.status for p in client.list_downloads()}


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_add_show_pause_resume_and_remove_with_its_files(cli, client, fault_server, tmp_path):
    url = fault_server.add_file("slow.bin", size=4_000_000)
    code, out, err = cli("add", url, "-d", str(tmp_path), "--option", "max-download-limit=40K")
    assert code == 0, err
    [gid] = out.split()
    assert statuses(client)[gid] in ("active", "waiting")
    wait_for(lambda: (tmp_path / "slow.bin.aria2").exists(), what="aria2 to start writing")

    code, out, err = cli("show")
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["GID", "STATUS", "DONE"]
    assert row.startswith(gid) and row.endswith("slow.bin")

    assert cli("pause", gid)[:2] == (0, f"paused {gid}\n")
    wait_for(lambda: statuses(client)[gid] == "paused", what="the download to be paused")
    code, out, _ = cli("show", gid, "--json")
    [shown] = json.loads(out)
    assert (code, shown["gid"], shown["status"]) == (0, gid, "paused")
    assert shown["file_path"] == str(tmp_path / "slow.bin")

    assert cli("resume", gid)[:2] == (0, f"resumed {gid}\n")
    assert statuses(client)[gid] in ("active", "waiting")

    code, out, err = cli("remove", gid, "--delete-files")
    assert (code, out) == (0, f"removed (files deleted) {gid}\n"), err
    assert statuses(client)[gid] == "removed"
    assert sorted(os.listdir(tmp_path)) == []

    code, out, err = cli("show", gid, "--status", "active")
    assert code == 1 and out.splitlines() == [out.splitlines()[0]]
    assert f"no download {gid} with status active" in one_line(err)


def test_pause_all_resume_all_then_purge(cli, client, fault_server, tmp_path):
    urls = [fault_server.add_file(f"f{n}.bin", size=3_000_000) for n in range(2)]
    code, out, err = cli("add", *urls, "-d", str(tmp_path), "--option", "max-download-limit=30K")
    assert code == 0, err
    gids = out.split()
    assert len(gids) == 2

    assert cli("pause", "--all")[:2] == (0, "paused every download\n")
    wait_for(lambda: all(statuses(client)[g] == "paused" for g in gids), what="both paused")
    code, out, _ = cli("show", "--status", "paused", "--json")
    assert sorted(p["gid"] for p in json.loads(out)) == sorted(gids)

    assert cli("resume", "--all")[:2] == (0, "resumed every download\n")
    wait_for(lambda: all(statuses(client)[g] != "paused" for g in gids), what="both resumed")

    assert cli("remove", *gids)[0] == 0  # (files kept)
    kept = set(os.listdir(tmp_path))  # (aria2 may be just saving a control file: f1.bin.aria2__temp)
    assert {"f0.bin", "f1.bin"} <= kept and all(
        any(n.startswith(f"f{i}.bin.aria2") for n in kept) for i in (0, 1)
    )
    assert cli("purge")[:2] == (0, "purged 2 finished downloads\n")
    assert statuses(client) == {}
    assert cli("show")[1].splitlines()[1:] == []


def test_call_any_method_and_print_the_answer_as_json(cli, client, fault_server, tmp_path):
    code, out, err = cli("call", "getVersion")
    assert code == 0, err
    assert json.loads(out)["version"].startswith("1.")
    code, out, _ = cli("call", "system.listMethods")
    assert "aria2.addUri" in json.loads(out)

    gid = client.add_download(fault_server.add_file("c.bin", size=1000), str(tmp_path / "c.bin"))
    code, out, _ = cli("call", "tell_status", gid, '["gid", "totalLength"]')
    assert code == 0 and set(json.loads(out)) == {"gid", "totalLength"}
    assert json.loads(out)["gid"] == gid

    code, out, err = cli("call", "tellStatus", "0123456789abcdef")
    assert code == 1 and out == ""
    assert "not found" in one_line(err)
    code, _, err = cli("call", "no such method")
    assert code == 2 and "not an aria2 method name" in one_line(err)


def test_method_names_in_three_spellings():
    assert method_name("tellStatus") == method_name("tell_status") == "aria2.tellStatus"
    assert method_name("aria2.tellStatus") == "aria2.tellStatus"
    assert method_name("listMethods") == method_name("list_methods") == "system.listMethods"
    assert method_name("system.multicall") == method_name("multicall") == "system.multicall"


def test_options_of_a_download_and_of_the_daemon(cli, client, fault_server, tmp_path):
    url = fault_server.add_file("o.bin", size=2_000_000)
    secret_url = url.replace("http://", f"http://alice:{PASSWORD}@", 1)
    code, out, err = cli(
        "add",
        secret_url,
        "-d",
        str(tmp_path),
        "--option",
        "pause=true",
        "--option",
        f"http-passwd={PASSWORD}",
    )
    assert code == 0, err
    [gid] = out.split()

    assert cli("options", gid, "max-download-limit=100K")[:2] == (0, "max-download-limit=102400\n")
    assert client.get_options(gid)["max-download-limit"] == "102400"
    code, out, _ = cli("options", gid, "max-download-limit", "split", "--json")
    assert json.loads(out) == {"max-download-limit": "102400", "split": client.get_options(gid)["split"]}

    code, out, _ = cli("options", gid)
    assert code == 0 and "http-passwd=***" in out.splitlines()
    shown = cli("show", "--json")[1] + cli("show")[1] + cli("call", "getUris", gid)[1]
    assert PASSWORD not in out + shown and "alice:***@" in shown

    assert cli("options", "--global", "max-overall-download-limit=2M")[:2] == (
        0,
        "max-overall-download-limit=2097152\n",
    )
    assert client.get_global_options()["max-overall-download-limit"] == "2097152"
    code, out, _ = cli("options", "--global", "--json")
    assert json.loads(out)["dir"] == client.get_global_options()["dir"]

    code, _, err = cli("options", "--global", "no-such-option=1")
    assert code == 2 and "no-such-option" in one_line(err)
    code, _, err = cli("options", gid, "dir=/elsewhere")
    assert code == 2 and "cannot change under a download" in one_line(err)


def test_usage_errors_are_one_line_and_exit_2(cli):
    for args, words in (
        (("pause",), "or --all"),
        (("resume", "0123456789abcdef", "--all"), "not both"),
        (("pause", "nothex"), "not a GID"),
        (("options",), "give a GID"),
        (("options", "0123456789abcdef", "novalue=1"), "unknown aria2 option 'novalue'"),
        (("options", "0123456789abcdef", "max-tries=1"), None),
        (("add", "http://127.0.0.1:9/a", "--option", "split"), "KEY=VALUE"),
        (("show", "--status", "sleeping"), "invalid choice"),
    ):
        code, out, err = cli(*args)
        if words is None:  # (a well-formed line for a GID the daemon does not have: exit 1)
            assert code == 1, err
            continue
        assert code == 2 and out == "", (args, err)
        assert words in err.strip().splitlines()[-1], (args, err)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_no_daemon_or_a_wrong_secret_is_one_line_and_exit_1(daemon, tmp_path):
    """From a subprocess, as a user runs it: the secret only from the environment."""

    def run(*args: str, secret: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "ARIA2_RPC_SECRET": secret}
        return subprocess.run(
            [sys.executable, "-m", "aria2_sync", *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
        )

    ok = run("show", "--rpc-url", daemon.rpc_url, secret=daemon.secret)
    assert ok.returncode == 0 and ok.stdout.startswith("GID"), ok.stderr
    wrong = run("pause", "--all", "--rpc-url", daemon.rpc_url, secret="wrong-secret-123")
    assert wrong.returncode == 1 and "wrong-secret-123" not in wrong.stderr + wrong.stdout
    assert "secret" in one_line(wrong.stderr).lower()
    nobody = run("show", "--rpc-url", f"http://127.0.0.1:{_free_port()}/jsonrpc", secret="s")
    assert nobody.returncode == 1 and "connection" in one_line(nobody.stderr).lower()
