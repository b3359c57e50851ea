"""``aria2_sync.dashboard``: the live notebook view with buttons, against a real aria2c.

The widget tree is built without a frontend (``display=False``): ipywidgets objects exist and
their buttons' handlers run on ``button.click()`` without a kernel, so these tests click the
buttons as a user would and read the effect back from the daemon. ipywidgets is in the test
extra; the fallback without it is simulated by making its import fail.
"""

from __future__ import annotations

import logging
import sys
import threading

import ipywidgets  # noqa: F401 - in the test extra: a dropped dependency fails, not skips
import pytest

import aria2_sync
from aria2_sync import Aria2InputError, dashboard
from aria2_sync.ui.dashboard import INSTALL_HINT, Dashboard
from tests.conftest import wait_for
from tests.support.fault_server import Slow

pytestmark = pytest.mark.integration

SIZE = 2_000_000
RATE = 200_000  # bytes per second: a download stays active for the length of a test


@pytest.fixture
def boards():
    """Dashboards made by a test; each is closed after it, and its thread must be gone."""
    made: list[Dashboard] = []
    yield made
    for board in made:
        board.close()
        assert not board.running


def _slow_downloads(client, fault_server, tmp_path, count=2, prefix="s"):
    gids = []
    for n in range(count):
        name = f"{prefix}{n}.bin"
        url = fault_server.add_file(name, size=SIZE)
        fault_server.set_default_fault(name, Slow(RATE))
        gids.append(client.add_download(url, str(tmp_path / name)))
    return gids


def _daemon_status(client, gid):
    return client.rpc.tell_status(gid, ["status"])["status"]


def _row_says(board, gid, state):
    row = board.rows.get(gid)
    return row is not None and row.state.value.startswith(state)


def _threads_named(board_thread_prefix="aria2_sync-dashboard-"):
    return [t for t in threading.enumerate() if t.name.startswith(board_thread_prefix)]


def test_it_is_a_lazy_export():
    assert aria2_sync.dashboard is dashboard and "dashboard" in aria2_sync.__all__
    assert dashboard.__module__ == "aria2_sync.ui.dashboard"


def test_rows_show_a_batch_and_clicking_pause_and_resume_acts_on_the_daemon(
    client, fault_server, tmp_path, boards
):
    urls = []
    for n in range(2):
        urls.append(fault_server.add_file(f"b{n}.bin", size=SIZE))
        fault_server.set_default_fault(f"b{n}.bin", Slow(RATE))
    batch_id = client.add_batch_downloads([(url, str(tmp_path / f"b{n}.bin")) for n, url in enumerate(urls)])
    gids = [future.gid for future in client.batch_futures(batch_id)]
    board = dashboard(client, batch_id, interval=0.05, display=False)
    boards.append(board)
    assert board.running and board.widget is not None
    for gid in gids:
        wait_for(lambda gid=gid: _row_says(board, gid, "active"), what=f"row {gid} active")
    assert list(board.rows) == gids
    assert board.last.batch_id == batch_id
    assert [row.name.value for row in board.rows.values()] == ["b0.bin", "b1.bin"]
    assert batch_id in board.widget.children[0].value  # the header names the batch
    row = board.rows[gids[0]]
    assert not row.pause.disabled and row.resume.disabled and not row.cancel.disabled

    row.pause.click()
    wait_for(lambda: _daemon_status(client, gids[0]) == "paused", what="the daemon to pause it")
    wait_for(lambda: _row_says(board, gids[0], "paused"), what="the row to say paused")
    assert row.pause.disabled and not row.resume.disabled
    assert _daemon_status(client, gids[1]) == "active"  # only the clicked one

    row.resume.click()
    wait_for(
        lambda: _daemon_status(client, gids[0]) in ("active", "complete"), what="the daemon to resume it"
    )
    wait_for(lambda: _row_says(board, gids[0], "active"), what="the row to say active")

    board.rows[gids[1]].cancel.click()
    wait_for(lambda: _daemon_status(client, gids[1]) == "removed", what="the daemon to cancel it")
    wait_for(lambda: _row_says(board, gids[1], "removed"), what="the row to say removed")
    assert board.rows[gids[1]].cancel.disabled
    client.cancel_download(gids[0])
    # Every download of the target has an outcome: the view stops by itself, buttons off.
    wait_for(lambda: not board.running, what="the dashboard to stop")
    assert board.message == "not refreshing: every download has an outcome"
    assert all(row.pause.disabled and row.resume.disabled for row in board.rows.values())


def test_the_daemon_s_view_shows_every_download_and_pauses_and_resumes_all(
    client_factory, fault_server, tmp_path, boards
):
    watcher, adder = client_factory(), client_factory()
    gids = _slow_downloads(adder, fault_server, tmp_path)  # another client's downloads
    board = dashboard(watcher, interval=0.05, display=False)
    boards.append(board)
    wait_for(lambda: set(board.rows) == set(gids), what="the daemon's downloads in the rows")
    assert "the daemon" in board.widget.children[0].value
    controls = board.widget.children[1]
    pause_all, resume_all, _stop = controls.children

    pause_all.click()
    for gid in gids:
        wait_for(lambda gid=gid: _daemon_status(adder, gid) == "paused", what=f"{gid} paused")
    wait_for(lambda: all(_row_says(board, gid, "paused") for gid in gids), what="the rows to say paused")
    resume_all.click()
    for gid in gids:
        wait_for(lambda gid=gid: _daemon_status(adder, gid) == "active", what=f"{gid} resumed")

    # A click the daemon refuses is shown under the rows, and the view goes on.
    board.rows[gids[0]].resume.click()  # (it is active: aria2 refuses to unpause it)
    wait_for(lambda: "resume" in board.message and "failed" in board.message, what="the error shown")
    assert board.running
    for gid in gids:
        adder.cancel_download(gid)
    wait_for(lambda: all(_row_says(board, gid, "removed") for gid in gids), what="rows removed")
    assert board.running  # the daemon's view runs until it is closed


def test_close_and_the_stop_button_stop_the_refresh_thread(client, fault_server, tmp_path, boards):
    gids = _slow_downloads(client, fault_server, tmp_path, count=1)
    before = set(_threads_named())
    board = dashboard(client, interval=0.05, display=False)
    boards.append(board)
    (thread,) = set(_threads_named()) - before
    wait_for(lambda: _row_says(board, gids[0], "active"), what="the row")
    board.close()
    assert not board.running and not thread.is_alive()
    assert board.message == "not refreshing: closed"
    assert board.rows[gids[0]].pause.disabled
    board.rows[gids[0]].pause.click()  # ignored: nothing runs it any more
    board.close()  # (twice is fine)
    assert _daemon_status(client, gids[0]) == "active"

    other = dashboard(client, interval=0.05, display=False)
    boards.append(other)
    other.widget.children[1].children[2].click()  # Stop
    wait_for(lambda: not other.running, what="the Stop button to end the thread")
    assert other.message == "not refreshing: stopped"
    client.cancel_download(gids[0])


def test_the_client_closing_or_a_timeout_ends_the_thread(client_factory, fault_server, tmp_path, boards):
    client = client_factory()
    _slow_downloads(client, fault_server, tmp_path, count=1)
    timed = dashboard(client, interval=0.05, timeout=0.3, display=False)
    boards.append(timed)
    wait_for(lambda: not timed.running, what="the timeout to end the thread")
    assert timed.message == "not refreshing: timeout"
    board = dashboard(client, interval=0.05, display=False)
    boards.append(board)
    client.close()
    wait_for(lambda: not board.running, what="the closed client to end the thread")
    assert board.message == "not refreshing: the client was closed"


def test_max_rows_bounds_what_is_shown(client, fault_server, tmp_path, boards):
    futures = [
        client.submit(fault_server.add_file(f"m{n}.bin", size=1_000), str(tmp_path / f"m{n}.bin"))
        for n in range(3)
    ]
    board = dashboard(client, futures, interval=0.05, max_rows=2, display=False)
    boards.append(board)
    wait_for(lambda: not board.running, what="the downloads to finish")
    assert list(board.rows) == [future.gid for future in futures[:2]]
    assert board.last.completed_count == 3
    assert "3 downloads (the first 2 shown)" in board.widget.children[0].value
    assert all(row.bar.value == 100.0 and row.bar.bar_style == "success" for row in board.rows.values())


def test_without_ipywidgets_it_falls_back_to_the_progress_bars(
    client, fault_server, tmp_path, monkeypatch, caplog, capsys
):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` raises ImportError
    futures = [
        client.submit(fault_server.add_file(f"f{n}.bin", size=100_000), str(tmp_path / f"f{n}.bin"))
        for n in range(2)
    ]
    with caplog.at_level(logging.WARNING, logger="aria2_sync"):
        board = dashboard(client, futures, interval=0.05, display=False)
    assert board.widget is None and not board.running
    assert board.message == "no widgets: progress bars were shown instead"
    assert board.last.is_completed and board.last.completed_count == 2  # it blocked until done
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "needs ipywidgets" in line and INSTALL_HINT in line
    assert "2/2 files" in capsys.readouterr().err  # the tqdm bars of aria2_sync.progress

    # The daemon's view falls back to the same bars over everything it holds.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aria2_sync"):
        board = dashboard(client, interval=0.05, display=False)
    assert board.widget is None and board.last.is_completed
    assert board.last.completed_count == 2 and board.last.batch_id is None
    assert INSTALL_HINT in caplog.text
    assert "2/2 files" in capsys.readouterr().err


def test_display_outside_a_kernel_falls_back_too(client, fault_server, tmp_path, caplog):
    future = client.submit(fault_server.add_file("k.bin", size=1_000), str(tmp_path / "k.bin"))
    with caplog.at_level(logging.WARNING, logger="aria2_sync"):
        board = dashboard(client, future, interval=0.05)  # display=True, but no Jupyter kernel here
    assert board.widget is None and board.last.completed_count == 1
    assert "need a Jupyter kernel" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(client=None), "client must be an Aria2Client"),
        (dict(interval=0), "interval must be a number of seconds > 0"),
        (dict(interval=float("nan")), "interval must be"),
        (dict(timeout=-1), "timeout must be None or"),
        (dict(max_rows=0), "max_rows must be an int >= 1"),
        (dict(display="yes"), "display must be True or False"),
        (dict(target=42), "target must be a DownloadFuture"),
        (dict(target="0123456789abcdef"), "neither a batch id nor a GID"),
    ],
)
def test_wrong_arguments_are_refused_before_anything_is_shown(client, kwargs, message):
    arguments = dict(client=client, display=False) | kwargs
    with pytest.raises(Aria2InputError, match=message):
        dashboard(**arguments)
    assert not [t for t in threading.enumerate() if t.name.startswith("aria2_sync-dashboard-")]


def test_a_closed_client_is_refused(client_factory):
    client = client_factory()
    client.close()
    with pytest.raises(Aria2InputError, match="client is closed"):
        dashboard(client, display=False)
