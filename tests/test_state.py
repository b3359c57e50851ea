"""Shared state in an SQLite file or in Redis: across processes, across a process's death, never lost.

The tests that hold for any store run over both (the ``state`` fixture gives a store's name:
an SQLite path or a Redis URL with a prefix of the test's own); the SQLite file's own troubles
(corruption, locks) are tested here, Redis's in tests/test_redis_store.py.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from aria2_sync import Aria2Client, Aria2InputError, Aria2StateError, SQLiteStore
from aria2_sync.client import engine_of
from aria2_sync.state import open_store
from tests.conftest import GIVE_UP_AT_ONCE, wait_for
from tests.support.fault_server import OnRangeRequest, ResetAfter, Slow
from tests.support.redis_server import stored_rows
from tests.test_client import daemon_gids
from tests.test_restarts import _drain, _HeldRestart, bring_scheduled_restarts_due

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "redis"])
def state(request, tmp_path):
    """``state(name)``: the state= of a store of this test's own (the same name: the same store)."""
    if request.param == "sqlite":
        return lambda name: tmp_path / name
    url = request.getfixturevalue("redis_url")
    return lambda name: url.replace("?prefix=", f"?prefix={Path(name).stem}-")


def worker(mode: str, db: Path | str, daemon, arg: str) -> subprocess.Popen:
    env = {**os.environ, "ARIA2_RPC_SECRET": daemon.secret, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.state_worker", mode, str(db), daemon.rpc_url, arg],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def first_line(process: subprocess.Popen, timeout: float = 60.0) -> str:
    """The first line ``process`` prints, read on a helper thread: fails after ``timeout``, never hangs."""
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no line from the worker process within {timeout:g} s (exit code {process.poll()})")


def stored_retries(db: Path | str) -> int:
    """The retry counters of every stored download, summed, read past the store."""
    return sum(int(row["retry_count"]) for row in stored_rows(db))


def test_a_batch_outlives_the_process_that_added_it(daemon, fault_server, tmp_path, state):
    db = state("state.db")
    items = []
    for i in range(4):
        url = fault_server.add_file(f"p{i}.bin", size=1_500_000)
        fault_server.set_default_fault(f"p{i}.bin", Slow(500_000))
        items.append((url, str(tmp_path / f"p{i}.bin")))
    flaky = fault_server.add_file("flaky.bin", size=400_000)
    fault_server.add_faults("flaky.bin", ResetAfter(100_000))
    items.append((flaky, str(tmp_path / "flaky.bin")))
    (tmp_path / "items.json").write_text(json.dumps(items))

    adder = worker("add", db, daemon, str(tmp_path / "items.json"))
    watcher = None
    try:
        batch_id = first_line(adder).strip()
        assert batch_id, f"the adder printed no batch id (exit code {adder.poll()})"
        watcher = worker("watch", db, daemon, batch_id)  # process B watches what A added
        wait_for(lambda: stored_retries(db) >= 1, timeout=30, what="process A to restart the flaky file")
        adder.send_signal(signal.SIGKILL)  # A dies mid-batch
        adder.wait(10)
        out, err = watcher.communicate(timeout=120)
    finally:
        for process in (adder, watcher):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
    assert watcher.returncode == 0, err
    report = json.loads(out)
    assert report["is_completed"] and report["completed"] == 5 and report["failed"] == 0

    # A fresh process (this one) finds the same batch, with the retry counter A left.
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=db) as fresh:
        progress = fresh.get_batch_progress(batch_id)
        assert progress.is_completed and progress.completed_count == 5
        by_path = {p.file_path: p for p in progress.downloads}
        assert by_path[str(tmp_path / "flaky.bin")].retry_count == 1
        info = fresh.get_retry_info(by_path[str(tmp_path / "flaky.bin")].gid)
        assert info["retry_count"] == 1 and len(info["attempts"]) == 1
        assert sorted(daemon_gids(fresh)) == sorted(p.gid for p in progress.downloads)
    for url, path in items:
        assert open(path, "rb").read() == fault_server.content(url.rsplit("/", 1)[1])


def test_two_processes_watching_one_failing_download_restart_it_once_per_failure(
    daemon, fault_server, tmp_path, state
):
    db = state("state.db")
    url = fault_server.add_file("twice.bin", size=3_000_000)
    fault_server.add_faults("twice.bin", ResetAfter(500_000), OnRangeRequest(ResetAfter(700_000)))
    client = Aria2Client(
        daemon.rpc_url,
        daemon.secret,
        verbose=False,
        state=db,
        retry_delay=0.0,
        poll_interval=0.02,
        notifications=False,
    )
    watcher = None
    try:
        batch_id = client.add_batch_downloads([(url, str(tmp_path / "twice.bin"))], options=GIVE_UP_AT_ONCE)
        watcher = worker("watch", db, daemon, batch_id)
        final = client.wait_for_batch(batch_id, timeout=60)
        out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, err
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
            watcher.wait(10)
        client.close()
    (download,) = final.downloads
    assert download.status == "complete" and download.retry_count == 2
    assert json.loads(out)["retry_counts"] == {download.gid: 2}
    ranged = [r for r in fault_server.requests("twice.bin") if r.range_header]
    assert len(ranged) == 2, "each failure must be restarted exactly once"
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, monitor=False) as plain:
        assert daemon_gids(plain) == [download.gid]
    assert stored_retries(db) == 2


def test_restarts_are_claimed_once(state):
    first, second = open_store(str(state("s.db"))), open_store(str(state("s.db")))
    try:
        first.add(
            [
                {
                    "gid": "0123456789abcdef",
                    "uris": ["http://h/f"],
                    "options": {},
                    "current_gid": "0123456789abcdef",
                }
            ]
        )
        assert second.claim_restart("0123456789abcdef", 0, 60) is False  # being added by the first
        first.release(["0123456789abcdef"])  # the add is confirmed
        assert first.claim_restart("0123456789abcdef", 0, 60) is True
        assert second.claim_restart("0123456789abcdef", 0, 60) is False  # held by the first
        assert first.claim_restart("0123456789abcdef", 0, 60) is False  # and not twice by it either
        first.update("0123456789abcdef", run=1)
        first.release(["0123456789abcdef"])
        assert second.claim_restart("0123456789abcdef", 0, 60) is False  # run 0 is over
        assert second.claim_restart("0123456789abcdef", 1, 60) is True
        attempt = {"time": 1.0, "error_code": "1", "error_message": "x", "completed_length": 5, "gid": "g"}
        assert len(first.record_failure("0123456789abcdef", 1, attempt)) == 1
        assert len(second.record_failure("0123456789abcdef", 1, attempt)) == 1  # same failure: once
        second.release(["0123456789abcdef"])
        assert second.claim_restart("0123456789abcdef", 1, -1) is True  # a lease that ran out...
        assert first.claim_restart("0123456789abcdef", 1, 60) is True  # ...is free for others
    finally:
        first.close()
        second.close()


def test_a_corrupt_or_foreign_file_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Aria2StateError, match="not an aria2_sync state file"):
        Aria2Client(verbose=False, state=junk)
    with pytest.raises(Aria2StateError, match="not a directory"):
        Aria2Client(verbose=False, state=tmp_path / "missing-dir" / "x.db")
    with pytest.raises(Aria2InputError, match="state must be"):
        Aria2Client(verbose=False, state=42)


def test_a_locked_file_is_a_clear_error_not_a_silent_loss(daemon, fault_server, tmp_path):
    db = tmp_path / "locked.db"
    store = SQLiteStore(str(db), timeout=0.2)
    holder = sqlite3.connect(db, timeout=0.1, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=store) as client:
            with pytest.raises(Aria2StateError, match="locked"):
                client.add_download(fault_server.add_file("l.bin", size=10), str(tmp_path / "l.bin"))
            assert daemon_gids(client) == []  # refused before anything reached the daemon
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()


def test_the_store_is_bounded_like_the_memory(daemon, fault_server, tmp_path, state):
    db = state("bounded.db")
    url = fault_server.add_file("b.bin", size=100)
    with Aria2Client(
        daemon.rpc_url, daemon.secret, verbose=False, state=db, keep_finished=2, poll_interval=0.05
    ) as client:
        futures = [client.submit(url, str(tmp_path / f"b{i}.bin")) for i in range(5)]
        for future in futures:
            future.result(timeout=20)
        wait_for(lambda: len(engine_of(client).ledger) <= 2, what="the retention")
        wait_for(lambda: len(stored_rows(db)) <= 2, what="the store to forget as well")


def _pair(daemon, db, **kwargs):
    """Two clients on one state file, each with its own connection (as two processes have)."""
    options = dict(
        verbose=False, state=db, retry_delay=0.0, poll_interval=0.02, notifications=False, **kwargs
    )
    return Aria2Client(daemon.rpc_url, daemon.secret, **options), Aria2Client(
        daemon.rpc_url, daemon.secret, **options
    )


def test_a_download_being_added_is_not_taken_for_lost_by_another_process(
    daemon, fault_server, tmp_path, state
):
    db = state("adding.db")
    a, b = _pair(daemon, db)
    try:
        url = fault_server.add_file("slowadd.bin", size=50_000)
        real = a.rpc.add_uri_once
        seen = {}

        def add_while_b_watches(uris, options, gid, attempts=4):
            # The row is in the store, the daemon does not have the GID yet, and B watches it.
            seen["future"] = b.future(gid)
            start = engine_of(b).monitor.ticks
            wait_for(lambda: engine_of(b).monitor.ticks >= start + 3, what="B's monitor to look at it")
            return real(uris, options, gid, attempts)

        a.rpc.add_uri_once = add_while_b_watches
        gid = a.add_download(url, str(tmp_path / "slowadd.bin"))
        assert seen["future"].result(timeout=20).size == 50_000
        with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, monitor=False) as plain:
            assert daemon_gids(plain) == [gid]
        assert not (tmp_path / "slowadd.1.bin").exists()
    finally:
        a.close()
        b.close()


def test_a_restart_in_one_process_reopens_the_download_in_the_other(daemon, fault_server, tmp_path, state):
    db = state("reopen.db")
    a, b = _pair(daemon, db)
    try:
        gid = a.add_download(fault_server.base_url + "/late.bin", str(tmp_path / "late.bin"), GIVE_UP_AT_ONCE)
        wait_for(lambda: a.get_progress(gid).gave_up_reason, what="the 404 to be given up")
        assert b.get_progress(gid).gave_up_reason  # B agrees: failed for good
        fault_server.add_file("late.bin", size=30_000)  # the file appears; A retries explicitly
        assert a.restart_download(gid) is True
        assert a.future(gid).result(timeout=20).size == 30_000
        wait_for(lambda: b.get_progress(gid).status == "complete", what="B to follow the restart")
        assert b.future(gid).result(timeout=20).retry_count == 1
    finally:
        a.close()
        b.close()


def test_a_cancelled_download_can_be_restarted_with_shared_state(daemon, fault_server, tmp_path, state):
    db = state("cancel.db")
    client = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=db, poll_interval=0.05)
    try:
        url = fault_server.add_file("c.bin", size=2_000_000)
        fault_server.set_default_fault("c.bin", Slow(200_000))
        gid = client.add_download(url, str(tmp_path / "c.bin"))
        wait_for(lambda: client.get_progress(gid).status == "active", what="the download to start")
        assert client.cancel_download(gid) is True, client.get_progress(gid)
        wait_for(lambda: client.get_progress(gid).status == "removed", what="the removal")
        fault_server.set_default_fault("c.bin", None)
        assert client.restart_download(gid) is True
        assert client.future(gid).result(timeout=30).size == 2_000_000
    finally:
        client.close()


def test_a_restart_claimed_by_one_process_is_not_done_again_by_the_other(
    daemon, fault_server, tmp_path, state
):
    """Both processes see the failure and schedule a restart; whichever runs it, it runs once.

    A's restart is held in flight (claimed, not finished) while B's comes due: B must stand down,
    however its own guards see the record, and re-add nothing.
    """
    db = state("claim.db")
    options = dict(verbose=False, state=db, retry_delay=3600.0, monitor=False, notifications=False)
    a = Aria2Client(daemon.rpc_url, daemon.secret, **options)
    b = None
    try:
        b = Aria2Client(daemon.rpc_url, daemon.secret, **options)
        url = fault_server.add_file("claimed.bin", size=200_000)
        fault_server.add_faults("claimed.bin", ResetAfter(50_000))
        gid = a.add_download(url, str(tmp_path / "claimed.bin"), GIVE_UP_AT_ONCE)
        wait_for(lambda: a.get_progress(gid).restart_pending, what="A to schedule a restart")
        wait_for(lambda: b.get_progress(gid).restart_pending, what="B to schedule one as well")
        with (
            _HeldRestart(a, hold_in=lambda: True) as held_a,
            _HeldRestart(b, hold_in=lambda: False) as held_b,
        ):
            assert bring_scheduled_restarts_due(a) == 1
            assert held_a.held.wait(20), "A's restart did not reach its removal"
            assert bring_scheduled_restarts_due(b) == 1
            wait_for(lambda: engine_of(b).runtime.scheduler.pending() == 0, what="B's restart to come due")
            _drain(engine_of(b).runtime.pools.jobs)
            assert held_b.adds == [], "B restarted a download whose restart A had claimed"
            held_a.release.set()
            wait_for(lambda: held_a.adds, what="A's re-add")
            wait_for(lambda: a.get_progress(gid).status == "complete", what="A's restart to complete")
            assert a.future(gid).result(timeout=30).retry_count == 1
            wait_for(lambda: b.get_progress(gid).status == "complete", what="B to follow A's restart")
            assert held_a.adds == [gid] and held_b.adds == []
        assert b.get_progress(gid).retry_count == 1
        assert daemon_gids(a) == [gid]
        assert stored_retries(db) == 1
        ranged = [r for r in fault_server.requests("claimed.bin") if r.range_header]
        assert len(ranged) == 1, "one failure, one restart"
        assert (tmp_path / "claimed.bin").read_bytes() == fault_server.content("claimed.bin")
    finally:
        a.close()
        if b is not None:
            b.close()


class _RowsRead:
    """Counts what a real store is asked for by ``rows``, ``unfinished`` and ``unfinished_gids``."""

    def __init__(self, store, monkeypatch) -> None:
        self.rows: list[int] = []
        self.unfinished = 0
        rows, unfinished = store.rows, store.unfinished

        def counted_rows(gids):
            self.rows.append(len(gids))
            return rows(gids)

        def counted_unfinished():
            self.unfinished += 1
            return unfinished()

        monkeypatch.setattr(store, "rows", counted_rows)
        monkeypatch.setattr(store, "unfinished", counted_unfinished)


def test_a_tick_reads_from_the_store_only_the_downloads_it_reads_from_the_daemon(
    client_factory, fault_server, tmp_path, state, monkeypatch
):
    """Many parked downloads are read a share per tick, from the daemon and from the store alike
    (a store read of every row, every tick, cost 10,000 paused downloads a fifth of a core)."""
    import aria2_sync.engine.monitor as monitor_module

    monkeypatch.setattr(monitor_module, "PARKED_READ_ALL", 10)
    client = client_factory(state=state("parked.db"), notifications=False, poll_interval=3600)
    items = [(fault_server.url(f"p{i}.bin"), str(tmp_path / f"p{i}.bin")) for i in range(60)]
    client.add_batch_downloads(items, options={"pause": "true"})
    engine = engine_of(client)
    assert engine.monitor is not None
    engine.monitor.close()  # (its ticks are this test's)

    def all_read_as_paused() -> bool:
        engine.monitor.tick()
        return all(r.last is not None and r.last.status == "paused" for r in engine.ledger.unfinished())

    wait_for(all_read_as_paused, what="every download read as paused")
    read = _RowsRead(engine.ledger.store, monkeypatch)
    due = engine.monitor.tick()
    assert due < 60  # a share of the parked downloads
    assert sum(read.rows) == due


def test_looking_for_work_left_by_others_reads_only_rows_this_process_does_not_watch(
    client_factory, fault_server, tmp_path, state, monkeypatch
):
    mine = client_factory(state=state("adopt.db"), notifications=False, poll_interval=3600)
    theirs = client_factory(state=state("adopt.db"), notifications=False, monitor=False)
    for i in range(5):
        mine.add_download(
            fault_server.url(f"m{i}.bin"), str(tmp_path / f"m{i}.bin"), options={"pause": "true"}
        )
    ledger = engine_of(mine).ledger
    engine_of(mine).monitor.close()  # (no tick of its own reads the store meanwhile)
    read = _RowsRead(ledger.store, monkeypatch)
    assert ledger.adopt_unfinished() == 0
    assert read.rows == [] and read.unfinished == 0  # nothing new: no row read at all
    gid = theirs.add_download(fault_server.url("t.bin"), str(tmp_path / "t.bin"), options={"pause": "true"})
    assert ledger.adopt_unfinished() == 1
    assert read.rows == [1] and read.unfinished == 0
    assert mine.get_progress(gid) is not None


def _a_parked_download_moved_by_another_process(client_factory, fault_server, tmp_path, state, monkeypatch):
    """60 parked downloads watched by ``mine`` (each read every 20th tick); ``theirs`` moves one
    that is not due next to a new daemon GID, as a restart under a new GID does: the old one goes,
    a new one (paused) comes, and the shared row says so. Returns (mine, its engine, the moved
    download's record, the new GID, theirs' RPC)."""
    import aria2_sync.engine.monitor as monitor_module
    from aria2_sync.errors import Aria2GIDNotFoundError
    from aria2_sync.rpc.methods import new_gid

    monkeypatch.setattr(monitor_module, "PARKED_READ_ALL", 10)
    mine = client_factory(state=state("moved.db"), notifications=False, poll_interval=3600)
    theirs = client_factory(state=state("moved.db"), notifications=False, monitor=False)
    items = [(fault_server.url(f"p{i}.bin"), str(tmp_path / f"p{i}.bin")) for i in range(60)]
    mine.add_batch_downloads(items, options={"pause": "true"})
    engine = engine_of(mine)
    engine.monitor.close()  # (its ticks are this test's)

    def all_read_as_paused() -> bool:
        engine.monitor.tick()
        return all(r.last is not None and r.last.status == "paused" for r in engine.ledger.unfinished())

    wait_for(all_read_as_paused, what="every download read as paused")
    turn = (engine.monitor.ticks + 1) % monitor_module.PARKED_SLICES
    record = next(
        r for r in engine.ledger.unfinished() if int(r.gid[-4:], 16) % monitor_module.PARKED_SLICES != turn
    )
    old, rpc = record.current_gid, engine_of(theirs).rpc
    rpc.force_remove(old)

    def removed() -> bool:
        try:
            return rpc.tell_status(old, ["status"])["status"] == "removed"
        except Aria2GIDNotFoundError:
            return True

    wait_for(removed, what="the old daemon GID removed")
    moved = new_gid()
    rpc.add_uri([fault_server.url("moved.bin")], {"gid": moved, "pause": "true", "dir": str(tmp_path)})
    engine_of(theirs).ledger.store.update(
        record.gid, current_gid=moved, daemon_gids=[record.gid, moved], run=record.run + 1
    )
    return mine, engine, record, moved, rpc


def test_an_aria2_event_for_a_gid_another_process_gave_a_parked_download_reads_it_at_once(
    client_factory, fault_server, tmp_path, state, monkeypatch
):
    mine, engine, record, moved, rpc = _a_parked_download_moved_by_another_process(
        client_factory, fault_server, tmp_path, state, monkeypatch
    )
    engine.monitor.wake(moved)  # what the listener does with aria2's event for it
    engine.monitor.tick()
    assert record.current_gid == moved


def test_a_control_reaches_the_gid_another_process_gave_a_parked_download(
    client_factory, fault_server, tmp_path, state, monkeypatch
):
    """The monitor has not refreshed it (not due): the control takes in the shared row first."""
    from aria2_sync.errors import Aria2GIDNotFoundError

    mine, engine, record, moved, rpc = _a_parked_download_moved_by_another_process(
        client_factory, fault_server, tmp_path, state, monkeypatch
    )
    engine.monitor.tick()
    assert mine.get_options(record.gid)["dir"] == str(tmp_path)  # (asked of the old GID: not found)
    mine.cancel_download(record.gid)
    try:
        status = rpc.tell_status(moved, ["status"])["status"]
    except Aria2GIDNotFoundError:
        status = "gone"
    assert status in ("removed", "gone")


def test_a_store_that_fails_is_left_alone_for_a_while_by_the_calls_that_read_it(
    client_factory, fault_server, tmp_path, monkeypatch
):
    """A store host that drops packets makes each read wait out its timeouts: after a failure,
    controls and ticks go on with what this process knows, and try the store again later."""
    import aria2_sync.engine.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "STORE_REST", 60.0)
    client = client_factory(state=tmp_path / "resting.db", notifications=False, poll_interval=3600)
    gid = client.add_download(fault_server.url("r.bin"), str(tmp_path / "r.bin"), options={"pause": "true"})
    engine = engine_of(client)
    engine.monitor.close()  # (its ticks are this test's)
    asked: list[int] = []

    def unreachable(gids):
        asked.append(len(gids))
        raise Aria2StateError("the store cannot be reached (injected)")

    monkeypatch.setattr(engine.ledger.store, "rows", unreachable)
    for _ in range(3):
        assert client.get_options(gid)["dir"] == str(tmp_path)  # (the daemon still answers)
        engine.monitor.tick()
    assert asked == [1]
