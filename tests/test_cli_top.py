"""``aria2-sync top`` (issue 18): the live view, driven by keys, against a real aria2c.

The view runs headless under textual's test pilot (``App.run_test``), which presses keys as a
user would and lets the test read the table the user would see. Two downloads are held slow
by aria2's own ``max-download-limit``, so that they are still running when the keys act; each
effect is checked on the daemon itself, through a separate client. The console script is also run
in a real terminal (tmux) where tmux is installed; without textual, ``top`` says what to install.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

import pytest

import aria2_sync.ui
from aria2_sync.ui.cli import main
from tests.conftest import wait_for

textual = pytest.importorskip("textual", reason="aria2-sync top needs the tui extra (in the test extra)")

from aria2_sync.ui.top import TopApp  # noqa: E402  (after the skip: it imports textual)


def start_two(client, fault_server, tmp_path) -> tuple[str, str]:
    """A slow download (20 KiB/s) and a faster one (200 KiB/s), both far from done."""
    slow = client.add_download(
        fault_server.add_file("slow.bin", size=8_000_000),
        str(tmp_path / "slow.bin"),
        {"max-download-limit": "20K"},
    )
    fast = client.add_download(
        fault_server.add_file("fast.bin", size=8_000_000),
        str(tmp_path / "fast.bin"),
        {"max-download-limit": "200K"},
    )
    return slow, fast


async def until(pilot, predicate, what: str, timeout: float = 15.0) -> None:
    """Let the app run until ``predicate()`` holds (bounded: fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.05)


async def select(pilot, app: TopApp, gid: str) -> None:
    """Move the cursor onto ``gid``'s row with the arrow keys, as a user reading the screen would."""
    for _ in range(10):
        if app.selected_gid == gid:
            return
        rows = app.shown_gids()
        await pilot.press("down" if rows.index(gid) > rows.index(app.selected_gid) else "up")
    assert app.selected_gid == gid


def status_cell(app: TopApp, gid: str) -> str:
    return str(app.table.get_row(gid)[2])


def test_top_shows_the_downloads_sorts_them_and_pauses_the_selected_one(
    client, client_factory, fault_server, tmp_path
):
    slow, fast = start_two(client, fault_server, tmp_path)
    viewer = client_factory(monitor=False, max_retries=1)  # (as `aria2-sync top` makes its own)
    wait_for(
        lambda: all(p.download_speed > 0 for p in client.list_downloads()),
        what="both downloads to be running",
    )

    async def drive() -> None:
        app = TopApp(viewer, interval=0.2)
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: set(app.shown_gids()) == {slow, fast}, "both downloads in the table")
            assert app.table.get_row(slow)[1] == "slow.bin"
            assert status_cell(app, slow) == status_cell(app, fast) == "active"

            await pilot.press("s")  # sort by speed: the fastest first
            assert "sorted by speed" in app.sub_title
            speeds = {p.gid: p.download_speed for p in app.downloads}  # (both active here)
            assert app.shown_gids() == sorted(speeds, key=lambda gid: -speeds[gid])
            await pilot.press("percent_sign")  # sort by progress: the furthest first
            assert "sorted by progress" in app.sub_title
            done = {p.gid: p.progress_percent for p in app.downloads}
            assert app.shown_gids() == sorted(done, key=lambda gid: -done[gid])

            await select(pilot, app, slow)
            await pilot.press("p")  # pause the selected download
            await until(pilot, lambda: status_cell(app, slow) == "paused", "the row to say paused")
            statuses = {p.gid: p.status for p in client.list_downloads()}
            assert statuses == {slow: "paused", fast: "active"}
            assert app.selected_gid == slow  # (the cursor stays on its download across refreshes)

            await pilot.press("r")
            await until(pilot, lambda: status_cell(app, slow) != "paused", "the row to be resumed")
            assert client.get_progress(slow, auto_restart=False).status in ("active", "waiting")

            await pilot.press("o")  # aria2's order again: the rows stop moving with the speeds
            assert "sorted by aria2's order" in app.sub_title
            await select(pilot, app, fast)
            await pilot.press("x")  # remove the fast one (its files stay)
            await until(pilot, lambda: status_cell(app, fast) == "removed", "the row to say removed")
            assert (tmp_path / "fast.bin").exists()

            await pilot.press("q")
        assert app.return_code == 0

    asyncio.run(drive())


def test_top_without_textual_says_what_to_install(daemon, monkeypatch, capsys):
    monkeypatch.setenv("ARIA2_RPC_SECRET", daemon.secret)
    for name in [name for name in sys.modules if name.split(".")[0] == "textual"]:
        monkeypatch.setitem(sys.modules, name, None)  # (import textual... -> ImportError)
    monkeypatch.delitem(sys.modules, "aria2_sync.ui.top")
    monkeypatch.delattr(aria2_sync.ui, "top")
    with pytest.raises(SystemExit) as exit:
        main(["top", "--rpc-url", daemon.rpc_url])
    assert exit.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'aria2_sync[tui]'" in line


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux runs the console script in a real terminal")
def test_top_in_a_real_terminal(daemon, client, fault_server, tmp_path):
    slow, fast = start_two(client, fault_server, tmp_path)
    session = f"aria2-sync-top-{os.getpid()}"
    script = os.path.join(os.path.dirname(sys.executable), "aria2-sync")
    command = [sys.executable, "-m", "aria2_sync"] if not os.path.exists(script) else [script]
    # (a server of its own, started by new-session with this environment: the secret is not in argv)
    env = {**os.environ, "ARIA2_RPC_SECRET": daemon.secret, "TERM": "xterm-256color"}
    tmux = ["tmux", "-L", session]
    subprocess.run(
        [*tmux, "new-session", "-d", "-s", session, "-x", "150", "-y", "30"]
        + [*command, "top", "--rpc-url", daemon.rpc_url, "--interval", "0.3"],
        check=True,
        timeout=30,
        env=env,
    )
    try:

        def screen() -> str:
            return subprocess.run(
                [*tmux, "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=30
            ).stdout

        wait_for(lambda: slow in screen() and fast in screen(), what="both GIDs on the screen")
        assert "slow.bin" in screen() and daemon.secret not in screen()
        subprocess.run([*tmux, "send-keys", "-t", session, "p"], check=True, timeout=30)
        wait_for(
            lambda: "paused" in {p.status for p in client.list_downloads()},
            what="the selected download paused",
        )
        [paused] = [p.gid for p in client.list_downloads() if p.status == "paused"]
        wait_for(
            lambda: "paused" in next(line for line in screen().splitlines() if paused in line),
            what="it on screen",
        )
        subprocess.run([*tmux, "send-keys", "-t", session, "q"], check=True, timeout=30)
        wait_for(
            lambda: (
                subprocess.run([*tmux, "has-session", "-t", session], capture_output=True).returncode != 0
            ),
            what="top to quit on q",
        )
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True, timeout=30)
