"""Batches, the background monitor and futures, against a real aria2c and the fault server."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import random
import threading

import pytest
import websocket  # noqa: F401 - in the test extra: a dropped one must fail, not skip

from aria2_sync import (
    Aria2Client,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2Error,
    Aria2InputError,
    DownloadFailed,
    DownloadResult,
    as_completed,
    wait,
)
from aria2_sync.client import engine_of
from aria2_sync.daemon.process import Aria2Daemon
from tests.conftest import GIVE_UP_AT_ONCE, wait_for, wait_for_status
from tests.support.fault_server import ResetAfter, Slow
from tests.support.rpc_proxy import RpcProxy
from tests.test_client import daemon_gids


@pytest.fixture
def proxied(daemon, client_factory):
    """A client whose every request (monitor included) goes through a counting proxy."""
    with RpcProxy(daemon.rpc_url) as proxy:
        yield (
            proxy,
            client_factory(rpc_url=proxy.url, retry_delay=0.02, poll_interval=0.05, notifications=False),
        )


def adds_in(proxy) -> int:
    return sum(b"aria2.addUri" in body for body in proxy.bodies)


def test_a_batch_with_transient_failures_and_404s(proxied, fault_server, tmp_path):
    proxy, client = proxied
    items = []
    for i in range(20):
        if i in (4, 11):
            items.append((fault_server.base_url + f"/missing-{i}.bin", str(tmp_path / f"f{i}.bin")))
            continue
        url = fault_server.add_file(f"f{i}.bin", size=50_000 + i * 1000)
        if i in (2, 7, 15):
            fault_server.add_faults(f"f{i}.bin", ResetAfter(20_000))
        items.append((url, str(tmp_path / f"f{i}.bin")))
    proxy.reset_counts()
    batch_id = client.add_batch_downloads(items, options=GIVE_UP_AT_ONCE)
    assert adds_in(proxy) == 1, "20 adds must go in one multicall round trip"

    snapshots = []

    def finished():
        progress = client.get_batch_progress(batch_id)
        snapshots.append(progress)
        return progress if progress.is_completed else None

    final = wait_for(finished, timeout=30, what="the batch to complete")
    assert (final.completed_count, final.failed_count) == (18, 2)
    assert final.retrying_count == 0 and final.total_count == 20
    assert final.progress_percent == 100.0
    for snapshot in snapshots:
        if snapshot.is_completed:
            assert snapshot.completed_count + snapshot.failed_count == 20 and snapshot.retrying_count == 0
        assert snapshot.failed_count <= 2, "a transient failure was counted as final"
    by_gid = {p.gid: p for p in final.downloads}
    assert sum(p.retry_count for p in by_gid.values()) == 3
    for i, (_url, path) in enumerate(items):
        if i not in (4, 11):
            assert open(path, "rb").read() == fault_server.content(f"f{i}.bin")
    assert sorted(daemon_gids(client)) == sorted(p.gid for p in final.downloads)
    as_dict = final.to_dict()
    assert as_dict["completed_count"] == 18 and len(as_dict["downloads"]) == 20


def test_futures_resolve_without_anyone_polling(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=0.02, poll_interval=0.05)
    futures = []
    for i in range(9):
        url = fault_server.add_file(f"ok{i}.bin", size=40_000)
        if i == 0:
            fault_server.add_faults("ok0.bin", ResetAfter(10_000))  # fails once, then completes
        futures.append(client.submit(url, str(tmp_path / f"ok{i}.bin"), GIVE_UP_AT_ONCE))
    missing = client.submit(fault_server.base_url + "/nope.bin", str(tmp_path / "nope.bin"), GIVE_UP_AT_ONCE)
    futures.append(missing)
    assert all(isinstance(f, concurrent.futures.Future) for f in futures)

    done, not_done = wait(futures, timeout=30)
    assert not not_done
    results = [f.result() for f in futures[:9]]
    assert all(isinstance(r, DownloadResult) for r in results)
    assert results[0].retry_count == 1 and len(results[0].attempts) == 1
    for i, result in enumerate(results):
        assert result.path == str(tmp_path / f"ok{i}.bin") and result.size == 40_000
        assert open(result.path, "rb").read() == fault_server.content(f"ok{i}.bin")
    with pytest.raises(DownloadFailed) as info:
        missing.result(timeout=0)
    assert info.value.error_code == "3" and "not restartable" in info.value.reason
    assert len(info.value.attempts) == 1
    assert bool(missing.exception()) is True  # a truthy exception: result() must not return None
    assert len(list(as_completed(futures, timeout=1))) == 10
    assert client.future(futures[3].gid) is futures[3]


def test_cancel_removes_the_download_and_wakes_waiters(client_factory, fault_server, tmp_path):
    client = client_factory()
    url = fault_server.add_file("slow.bin", size=5_000_000)
    fault_server.set_default_fault("slow.bin", Slow(200_000))
    future = client.submit(url, str(tmp_path / "slow.bin"))
    wait_for_status(client, future.gid, "active")
    woke = threading.Event()
    waiter = threading.Thread(target=lambda: (wait([future], timeout=20), woke.set()))
    waiter.start()
    assert future.cancel() is True
    assert woke.wait(10), "wait() was not woken by cancel()"
    waiter.join(10)
    assert not waiter.is_alive()
    assert future.cancelled()
    assert wait_for_status(client, future.gid, "removed").status == "removed"
    assert future.cancel() is True  # cancelling a cancelled future is harmless
    with pytest.raises(concurrent.futures.CancelledError):
        future.result(timeout=0)


def test_cancel_download_also_cancels_its_future(client_factory, fault_server, tmp_path):
    client = client_factory()
    url = fault_server.add_file("slow2.bin", size=5_000_000)
    fault_server.set_default_fault("slow2.bin", Slow(200_000))
    future = client.submit(url, str(tmp_path / "slow2.bin"))
    wait_for_status(client, future.gid, "active")
    assert client.cancel_download(future.gid) is True
    assert not wait([future], timeout=10).not_done
    assert future.cancelled()


def test_callbacks_run_on_workers_and_slow_ones_stall_neither_futures_nor_restarts(
    client_factory, fault_server, tmp_path
):
    client = client_factory(retry_delay=0.02, poll_interval=0.05)
    release = threading.Event()
    progress_seen, restarts_seen, done_seen, callback_threads = [], [], [], set()
    try:
        # Four callbacks stuck in user code: as many as there are callback workers.
        blocked = [
            client.submit(
                fault_server.add_file(f"a{i}.bin", size=100_000),
                str(tmp_path / f"a{i}.bin"),
                on_progress=lambda p: release.wait(30),
            )
            for i in range(4)
        ]
        url = fault_server.add_file("b.bin", size=200_000)
        fault_server.add_faults("b.bin", ResetAfter(50_000))
        future = client.submit(
            url,
            str(tmp_path / "b.bin"),
            GIVE_UP_AT_ONCE,
            on_progress=lambda p: (
                callback_threads.add(threading.current_thread().name),
                progress_seen.append(p),
            ),
            on_restart=restarts_seen.append,
            on_done=done_seen.append,
        )
        # The future resolves and the restart happens although every callback worker is stuck.
        assert isinstance(future.result(timeout=20), DownloadResult)
        assert future.result().retry_count == 1
        assert all(f.result(timeout=20).size == 100_000 for f in blocked)
        assert blocked[0].cancel() is False  # complete: cancelling it changes nothing
    finally:
        release.set()
    wait_for(lambda: done_seen, timeout=10, what="on_done")
    assert done_seen == [future]
    assert len(restarts_seen) == 1 and restarts_seen[0].gid == future.gid
    assert progress_seen and progress_seen[-1].gid == future.gid
    assert callback_threads and all(name.startswith("aria2_sync-callback") for name in callback_threads)


def test_an_add_racing_the_monitor_is_not_taken_for_a_lost_download(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=0.02, poll_interval=0.02)
    first = client.submit(fault_server.add_file("warm.bin", size=10), str(tmp_path / "warm.bin"))
    first.result(timeout=10)
    monitor = engine_of(client).monitor
    real = client.rpc.add_many_once

    def add_after_two_ticks(*args, **kwargs):
        # The records are in the ledger, the daemon does not have them yet, and the monitor
        # ticks twice in that window (each tick finds the GIDs "not found").
        start = monitor.ticks
        monitor.wake()
        wait_for(lambda: monitor.ticks >= start + 2, what="two ticks during the add")
        return real(*args, **kwargs)

    client.rpc.add_many_once = add_after_two_ticks
    items = [
        (fault_server.add_file(f"race{i}.bin", size=20_000), str(tmp_path / f"race{i}.bin"))
        for i in range(10)
    ]
    batch_id = client.add_batch_downloads(items)
    final = client.wait_for_batch(batch_id, timeout=30)
    assert (final.completed_count, final.failed_count) == (10, 0)
    assert sorted(daemon_gids(client)) == sorted([first.gid] + [p.gid for p in final.downloads])
    for _url, path in items:
        assert os.path.exists(path) and not os.path.exists(path.replace(".bin", ".1.bin"))


def test_a_finished_batch_past_the_retention_keeps_its_counts(client_factory, fault_server, tmp_path):
    client = client_factory(keep_finished=3, poll_interval=0.02)
    url = fault_server.add_file("k.bin", size=100)
    batch_id = client.add_batch_downloads([(url, str(tmp_path / f"k{i}.bin")) for i in range(6)])
    assert client.wait_for_batch(batch_id, timeout=20).is_completed
    engine_of(client).ledger.prune()  # what the monitor does at every tick
    assert client.get_batch_progress(batch_id).is_completed  # still there for whoever polls it
    assert sum(r.finished for r in engine_of(client).ledger) <= 3  # a hard bound; the counts remain
    progress = client.get_batch_progress(batch_id)
    assert (progress.total_count, progress.completed_count) == (6, 6)


def test_closing_fails_futures_nothing_would_resolve(daemon, fault_server, tmp_path):
    client = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, poll_interval=0.05)
    url = fault_server.add_file("open.bin", size=3_000_000)
    fault_server.set_default_fault("open.bin", Slow(200_000))
    future = client.submit(url, str(tmp_path / "open.bin"))
    client.close()
    assert isinstance(future.exception(timeout=5), Aria2ClosedError)
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, monitor=False) as other:
        assert other.get_progress(future.gid).status in ("active", "waiting")  # still running


def test_cancel_while_the_daemon_is_down_is_carried_out_when_it_is_back(tmp_path, fault_server):
    state = tmp_path / "state"
    first = Aria2Daemon(download_dir=tmp_path, state_dir=state).start()
    second = client = None
    try:
        client = Aria2Client(
            first.rpc_url, first.secret, verbose=False, poll_interval=0.05, notifications=False
        )
        url = fault_server.add_file("c.bin", size=5_000_000)
        fault_server.set_default_fault("c.bin", Slow(200_000))
        future = client.submit(url, str(tmp_path / "c.bin"))
        wait_for(lambda: future.gid in (state / "aria2.session").read_text(), what="the session file")
        first.kill()
        assert future.cancel() is True and future.cancelled()
        second = Aria2Daemon(
            port=first.port, secret=first.secret, download_dir=tmp_path, state_dir=state
        ).start()
        with Aria2Client(second.rpc_url, second.secret, verbose=False, monitor=False) as other:
            wait_for(lambda: other.get_progress(future.gid).status == "removed", what="the removal")
    finally:
        if client is not None:
            client.close()
        first.stop()
        if second is not None:
            second.stop()


def test_retention_works_without_the_monitor(client_factory, fault_server, tmp_path):
    client = client_factory(monitor=False, keep_finished=2, keep_seconds=None)
    url = fault_server.add_file("nm.bin", size=100)
    gids = [client.add_download(url, str(tmp_path / f"nm{i}.bin")) for i in range(5)]
    for gid in gids:
        wait_for(lambda gid=gid: client.get_progress(gid).status == "complete", what="completion")
    wait_for(
        lambda: client.get_progress(gids[-1]) and len(engine_of(client).ledger) <= 2, what="pruning on calls"
    )


def test_idle_request_rate_does_not_grow_with_watched_downloads(proxied, fault_server, tmp_path):
    proxy, client = proxied
    url = fault_server.add_file("idle.bin", size=1000)

    def requests_per_tick(count: int) -> float:
        client.add_batch_downloads(
            [(url, str(tmp_path / f"idle-{count}-{i}.bin")) for i in range(count)], options={"pause": True}
        )
        monitor = engine_of(client).monitor
        wait_for(lambda: monitor.ticks > 0, what="a first tick")
        start_ticks, start_requests = monitor.ticks, proxy.request_count
        wait_for(lambda: monitor.ticks >= start_ticks + 20, what="20 monitor ticks")
        ticks, requests = monitor.ticks - start_ticks, proxy.request_count - start_requests
        return requests / ticks

    few = requests_per_tick(5)
    many = requests_per_tick(195)  # 200 watched in all
    assert few == pytest.approx(1.0, abs=0.15) and many == pytest.approx(1.0, abs=0.15)


def test_the_batch_survives_a_daemon_crash_and_restart(tmp_path, fault_server, caplog):
    downloads, state = tmp_path / "downloads", tmp_path / "state"
    first = Aria2Daemon(download_dir=downloads, state_dir=state).start()
    second = client = None
    try:
        client = Aria2Client(
            first.rpc_url,
            first.secret,
            verbose=False,
            retry_delay=0.02,
            poll_interval=0.05,
            notifications=False,
        )
        items = []
        for i in range(5):
            url = fault_server.add_file(f"c{i}.bin", size=1_500_000)
            fault_server.set_default_fault(f"c{i}.bin", Slow(1_000_000))
            items.append((url, str(downloads / f"c{i}.bin")))
        # DEBUG, not WARNING: a level above DEBUG here would hide DEBUG lines from the suite-wide
        # secret check (see tests/conftest.py); the assertions below pick the WARNING lines.
        with caplog.at_level(logging.DEBUG, logger="aria2_sync"):
            batch_id = client.add_batch_downloads(items)
            futures = client.batch_futures(batch_id)
            gids = [f.gid for f in futures]
            session = state / "aria2.session"
            wait_for(
                lambda: all(g in session.read_text() for g in gids), what="the session file to list the batch"
            )
            first.kill()
            wait_for(lambda: engine_of(client).monitor.offline, what="the monitor to notice")
            for name in list(fault_server._default_faults):
                fault_server.set_default_fault(name, None)  # the second life of the daemon is fast
            second = Aria2Daemon(
                port=first.port, secret=first.secret, download_dir=downloads, state_dir=state
            ).start()
            done, not_done = wait(futures, timeout=60)
        assert not not_done
        for (url, path), future in zip(items, futures):
            assert future.result().path == path
            assert open(path, "rb").read() == fault_server.content(url.rsplit("/", 1)[1])
        assert sorted(daemon_gids(client)) == sorted(gids)
        messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert sum(m.startswith("lost the connection to aria2") for m in messages) == 1
        assert sum(m.startswith("connection to aria2 restored") for m in messages) == 1
    finally:
        if client is not None:
            client.close()
        first.stop()
        if second is not None:
            second.stop()


class SteppedClock:
    """Stands in for the ``time`` module in aria2_sync.engine.monitor: ``monotonic()`` moves only when told.

    The grace period is then measured in monitor ticks at known clock readings, not in real
    seconds that a loaded machine stretches.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        import time

        return getattr(time, name)


def _ticks(monitor, count: int) -> None:
    """Make the monitor run ``count`` more complete ticks (woken, not waited for)."""
    for _ in range(count + 1):  # tick n+1 starts only after tick n and its outage handling ended
        start = monitor.ticks
        monitor.wake()
        wait_for(lambda start=start: monitor.ticks > start, what="a monitor tick")


def _drain(pool) -> None:
    """Wait until every job already queued on ``pool`` (a WorkerPool) has run."""
    size = len(pool._threads) or 1
    barrier = threading.Barrier(size + 1)
    for _ in range(size):
        pool.submit(lambda: barrier.wait(20))
    barrier.wait(20)


@pytest.mark.parametrize("grace", [2.0, 0.0])
def test_futures_fail_only_after_the_grace_period(daemon_factory, fault_server, tmp_path, monkeypatch, grace):
    import aria2_sync.engine.monitor as monitor_module

    clock = SteppedClock()
    monkeypatch.setattr(monitor_module, "time", clock)
    daemon = daemon_factory()
    client = Aria2Client(
        daemon.rpc_url,
        daemon.secret,
        verbose=False,
        poll_interval=0.05,
        disconnect_grace=grace,
        notifications=False,
    )
    try:
        url = fault_server.add_file("g.bin", size=5_000_000)
        fault_server.set_default_fault("g.bin", Slow(100_000))
        future = client.submit(url, str(tmp_path / "g.bin"))
        wait_for_status(client, future.gid, "active")
        daemon.kill()
        monitor = engine_of(client).monitor
        wait_for(lambda: monitor.offline, what="the monitor to notice the outage")
        gone_since = clock.now
        # Many ticks while the daemon is gone, all within the grace period by the clock: for a
        # 2 s grace the future waits; without a grace it fails at the first of them.
        clock.now = gone_since + (grace * 0.95 if grace else 0.01)
        _ticks(monitor, 5)
        _drain(engine_of(client).runtime.pools.settle)
        if grace:
            assert not future.done(), "failed before the grace period was over"
            clock.now = gone_since + grace + 0.01
            _ticks(monitor, 1)
        error = future.exception(timeout=20)
        assert isinstance(error, Aria2ConnectionError) and "connection" in str(error)
        assert client.future(future.gid) is not future  # a fresh future follows the download
    finally:
        client.close()


def test_32_threads_share_one_client(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=0.02, poll_interval=0.05)
    urls = [fault_server.add_file(f"m{i}.bin", size=3000 + i) for i in range(8)]
    errors, added, batches = [], [], []
    lock = threading.Lock()

    def work(n: int) -> None:
        rng = random.Random(n)
        try:
            for step in range(6):
                choice = rng.randrange(4)
                path = str(tmp_path / f"t{n}-{step}.bin")
                if choice == 0:
                    gid = client.add_download(rng.choice(urls), path)
                    with lock:
                        added.append(gid)
                elif choice == 1:
                    future = client.submit(rng.choice(urls), path)
                    with lock:
                        added.append(future.gid)
                elif choice == 2:
                    batch = client.add_batch_downloads(
                        [(rng.choice(urls), path), (rng.choice(urls), path + ".2")]
                    )
                    with lock:
                        batches.append(batch)
                        added.extend(p.gid for p in client.get_batch_progress(batch).downloads)
                else:
                    with lock:
                        known = list(added)
                    if known:
                        assert client.get_progress(rng.choice(known)) is not None
                    for batch in list(batches)[:3]:
                        assert client.get_batch_progress(batch) is not None
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hangs"
    assert errors == []
    assert len(set(added)) == len(added)
    done, not_done = wait([client.future(gid) for gid in added], timeout=60)
    assert not not_done
    results = [client.future(gid).result(timeout=0) for gid in added]
    assert [r for r in results if r.size <= 0] == []
    assert sorted(daemon_gids(client)) == sorted(added)


def test_close_with_cancel_removes_in_flight_downloads_and_stops_threads(daemon, fault_server, tmp_path):
    before = {t.ident for t in threading.enumerate()}
    client = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, poll_interval=0.05)
    url = fault_server.add_file("inflight.bin", size=5_000_000)
    fault_server.set_default_fault("inflight.bin", Slow(100_000))
    future = client.submit(url, str(tmp_path / "inflight.bin"))
    wait_for(lambda: client.get_progress(future.gid).status == "active", what="the download to start")
    client.close(cancel=True)
    client.close(cancel=True)  # idempotent
    assert not wait([future], timeout=10).not_done
    assert future.cancelled()
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, monitor=False) as other:
        assert other.rpc.tell_status(future.gid, ["status"])["status"] == "removed"
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("aria2_sync")]
    assert all(not t.is_alive() for t in leftover)
    with pytest.raises(Aria2ClosedError, match="closed"):
        client.add_download(url)


def test_finished_downloads_are_forgotten_past_the_retention(client_factory, fault_server, tmp_path):
    client = client_factory(keep_finished=3, poll_interval=0.05)
    url = fault_server.add_file("r.bin", size=100)
    futures = [client.submit(url, str(tmp_path / f"r{i}.bin")) for i in range(6)]
    assert not wait(futures, timeout=20).not_done
    wait_for(lambda: len(engine_of(client).ledger) <= 3, what="the ledger to forget old downloads")
    assert client.get_retry_info(futures[0].gid) is None  # forgotten
    assert client.get_progress(futures[0].gid).status == "complete"  # the daemon still knows it


def test_a_batch_refused_by_aria2_reports_every_item(client_factory, fault_server, tmp_path):
    client = client_factory()
    url = fault_server.add_file("x.bin", size=100)
    batch_id = client.add_batch_downloads(
        [(url, str(tmp_path / "x1.bin")), (url, str(tmp_path / "x2.bin"))],
        options={"max-connection-per-server": "0"},
    )
    progress = client.get_batch_progress(batch_id)
    assert progress.failed_count == 2 and progress.is_completed
    assert all("refused" in p.gave_up_reason for p in progress.downloads)
    for future in client.batch_futures(batch_id):
        with pytest.raises(DownloadFailed, match="max-connection-per-server"):
            future.result(timeout=5)
    assert daemon_gids(client) == []


@pytest.mark.parametrize(
    "items, kwargs, words",
    [
        ("http://h/f", {}, "list of (url, save_path) pairs"),
        (None, {}, "list of (url, save_path) pairs"),
        ([("http://h/f", "a", "b")], {}, "item 0"),
        ([("http://h/f", "a"), ("nope", "b")], {}, "item 1"),
        ([("http://h/f", "a")], {"batch_id": ""}, "batch_id"),
        ([("http://h/f", "a")], {"options": {"out": "x"}}, "item 0"),
    ],
)
def test_bad_batches_are_refused_whole(client, items, kwargs, words):
    with pytest.raises(Aria2InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
        client.add_batch_downloads(items, **kwargs)
    assert daemon_gids(client) == []


def test_batch_ids_are_unique_and_unknown_ones_are_none(client, fault_server, tmp_path):
    url = fault_server.add_file("u.bin", size=10)
    assert client.add_batch_downloads([(url, str(tmp_path / "u.bin"))], batch_id="mine") == "mine"
    with pytest.raises(Aria2InputError, match="already in use"):
        client.add_batch_downloads([(url, str(tmp_path / "u2.bin"))], batch_id="mine")
    assert client.get_batch_progress("nope") is None
    with pytest.raises(Aria2InputError):
        client.batch_futures("nope")
    assert client.wait_for_batch("mine", timeout=20).is_completed


def test_notifications_wake_the_monitor_long_before_its_next_poll(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=0, poll_interval=60.0, notifications=True)
    url = fault_server.add_file("push.bin", size=300_000)
    fault_server.add_faults("push.bin", ResetAfter(100_000))
    future = client.submit(url, str(tmp_path / "push.bin"), GIVE_UP_AT_ONCE)
    # The first tick ran when the download was added; the next poll is a minute away, so only
    # aria2's notifications (error, then complete) can get this future resolved in time.
    result = future.result(timeout=20)
    assert result.retry_count == 1
    assert engine_of(client).listener.events_seen >= 1  # at least the completion was pushed


def test_notifications_on_demand_need_the_extra(monkeypatch, daemon):
    import aria2_sync.rpc.notifications as notifications

    monkeypatch.setattr(notifications, "websocket_available", lambda: False)
    with pytest.raises(Aria2InputError, match="websocket-client"):
        Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, notifications=True)
    quiet = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False)  # default: polling only
    assert engine_of(quiet).listener is None
    quiet.close()


def test_the_notification_socket_reconnects_after_the_daemon_comes_back(tmp_path, fault_server):
    first = Aria2Daemon(download_dir=tmp_path, state_dir=tmp_path / "state").start()
    second = client = None
    try:
        client = Aria2Client(
            first.rpc_url, first.secret, verbose=False, notifications=True, poll_interval=0.05
        )
        client.add_download(fault_server.add_file("n.bin", size=10), str(tmp_path / "n.bin"))
        listener = engine_of(client).listener
        assert listener.connected.wait(10)
        first.kill()
        wait_for(lambda: not listener.connected.is_set(), what="the socket to drop")
        second = Aria2Daemon(
            port=first.port, secret=first.secret, download_dir=tmp_path, state_dir=tmp_path / "state"
        ).start()
        assert listener.connected.wait(20), "the listener did not reconnect"
    finally:
        if client is not None:
            client.close()
        first.stop()
        if second is not None:
            second.stop()


def test_a_daemon_refusing_the_secret_is_an_outage_not_silence(
    client_factory, fault_server, tmp_path, caplog
):
    client = client_factory(poll_interval=0.05, disconnect_grace=0.5, notifications=False)
    url = fault_server.add_file("sec.bin", size=5_000_000)
    fault_server.set_default_fault("sec.bin", Slow(100_000))
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):  # DEBUG: keeps the secret check on
        future = client.submit(url, str(tmp_path / "sec.bin"))
        engine_of(client).monitor_transport._secret = "rotated-elsewhere"  # as if the daemon's secret changed
        error = future.exception(timeout=30)
    assert isinstance(error, Aria2Error) and "Unauthorized" in str(error)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("refuses this client's RPC secret" in m for m in warnings) == 1


def test_restart_and_cancel_one_batch(client_factory, fault_server, tmp_path):
    client = client_factory(auto_restart_failed=False, poll_interval=0.05)
    flaky = fault_server.add_file("fl.bin", size=100_000)
    fault_server.add_faults("fl.bin", ResetAfter(1_000))
    slow = fault_server.add_file("sl.bin", size=5_000_000)
    fault_server.set_default_fault("sl.bin", Slow(100_000))
    first = client.add_batch_downloads([(flaky, str(tmp_path / "fl.bin"))], options=GIVE_UP_AT_ONCE)
    second = client.add_batch_downloads([(slow, str(tmp_path / "sl.bin"))])
    wait_for(lambda: client.get_batch_progress(first).failed_count == 1, what="the failure")
    assert client.restart_all_failed_downloads(batch_id=second) == 0
    assert client.restart_all_failed_downloads(batch_id=first, force=True) == 1
    assert client.wait_for_batch(first, timeout=20).completed_count == 1
    assert client.cancel_batch(second) == 1
    progress = client.wait_for_batch(second, timeout=20)
    assert progress.removed_count == 1 and progress.is_completed
    assert all(f.cancelled() for f in client.batch_futures(second))
    with pytest.raises(Aria2InputError):
        client.cancel_batch("nope")


def test_progress_of_any_group_of_downloads(client_factory, fault_server, tmp_path):
    client = client_factory(poll_interval=0.05)
    futures = [
        client.submit(fault_server.add_file(f"g{i}.bin", size=1000 * (i + 1)), str(tmp_path / f"g{i}.bin"))
        for i in range(3)
    ]
    assert not wait(futures, timeout=20).not_done
    group = client.get_downloads_progress([f.gid for f in futures])
    assert group.batch_id is None and group.completed_count == 3 and group.is_completed
    assert group.total_length == 6000
    with pytest.raises(Aria2InputError):
        client.get_downloads_progress(["0123456789abcdef"])
    with pytest.raises(Aria2InputError):
        client.get_downloads_progress(futures[0].gid)


def test_an_unknown_batch_has_its_own_error(client):
    from aria2_sync import Aria2UnknownBatchError

    for call in (
        client.batch_futures,
        client.cancel_batch,
        lambda b: client.restart_all_failed_downloads(batch_id=b),
    ):
        with pytest.raises(Aria2UnknownBatchError) as info:
            call("missing-batch")
        assert info.value.batch_id == "missing-batch" and isinstance(info.value, LookupError)
