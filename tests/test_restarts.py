"""Automatic and manual restarts against a real aria2c that gives up at once (max-tries=1)."""

from __future__ import annotations

import heapq
import logging
import os
import threading
import time

import pytest

from aria2_sync import Aria2AuthError, Aria2ConnectionError, Aria2GIDNotFoundError, RestartPolicy, wait
from aria2_sync.client import engine_of
from tests.conftest import GIVE_UP_AT_ONCE, wait_for, wait_for_status, wait_until_finished
from tests.support.fault_server import OnRangeRequest, ResetAfter, Status
from tests.test_client import daemon_gids

MiB = 1024 * 1024


def bring_scheduled_restarts_due(client) -> int:
    """Make every restart the client's scheduler holds due now; return how many there were.

    Lets a test hold a restart pending for as long as it likes (a long ``base_delay``), look at
    that moment without racing a clock, and then let it run.
    """
    scheduler = engine_of(client).runtime.scheduler
    with scheduler._cond:
        jobs = [(0.0, order, job) for _, order, job in scheduler._heap]
        scheduler._heap[:] = jobs
        heapq.heapify(scheduler._heap)
        scheduler._cond.notify()
    return len(jobs)


def test_a_download_reset_twice_resumes_under_the_same_gid(client_factory, fault_server, tmp_path, caplog):
    client = client_factory(retry_delay=0.05)
    url = fault_server.add_file("big.bin", size=24 * MiB)
    fault_server.add_faults("big.bin", ResetAfter(6 * MiB), OnRangeRequest(ResetAfter(8 * MiB)))
    target = tmp_path / "big.bin"
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):  # DEBUG: keeps the secret check on
        gid = client.add_download(url, str(target), GIVE_UP_AT_ONCE)
        done = wait_until_finished(client, gid, timeout=60)
    assert done.status == "complete" and done.gid == gid
    assert done.retry_count == 2
    assert target.read_bytes() == fault_server.content("big.bin")
    assert not (tmp_path / "big.bin.aria2").exists()
    served = fault_server.bytes_served("big.bin")
    assert served <= 1.1 * 24 * MiB, f"re-fetched too much: {served / MiB:.1f} MiB for 24 MiB"
    ranged = [r.range_header for r in fault_server.requests("big.bin") if r.range_header]
    assert ranged == ["bytes=6291456-25165823", "bytes=14680064-25165823"]  # resumed, twice
    assert daemon_gids(client) == [gid]
    info = client.get_retry_info(gid)
    assert info["retry_count"] == 2 and info["current_gid"] == gid
    assert [a["error_code"] for a in info["attempts"]] == ["1", "1"]
    assert info["attempts"][0]["completed_length"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"detected failed download (GID {gid}), restarting") for m in messages)
    assert f"restarting failed download (attempt 1/3): {url}" in messages
    assert f"restarting failed download (attempt 2/3): {url}" in messages


def test_a_404_is_not_restarted(client, fault_server, tmp_path):
    gid = client.add_download(
        fault_server.base_url + "/nope.bin", str(tmp_path / "nope.bin"), GIVE_UP_AT_ONCE
    )
    progress = wait_until_finished(client, gid)
    assert progress.status == "error" and progress.error_code == "3"
    assert "not restartable" in progress.gave_up_reason and not progress.restart_pending
    assert engine_of(client).runtime.scheduler.pending() == 0
    assert client.get_progress(gid).retry_count == 0
    assert fault_server.request_count("nope.bin") == 1
    info = client.get_retry_info(gid)
    assert info["can_retry"] is False and info["retry_count"] == 0 and len(info["attempts"]) == 1


def test_a_spent_budget_stops_at_exactly_max_restarts(client_factory, fault_server, tmp_path, caplog):
    client = client_factory(max_retries=2, retry_delay=0.02)
    url = fault_server.add_file("flaky.bin", size=200_000)
    fault_server.set_default_fault("flaky.bin", ResetAfter(50_000))
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):  # DEBUG: keeps the secret check on
        gid = client.add_download(url, str(tmp_path / "flaky.bin"), GIVE_UP_AT_ONCE)
        progress = wait_until_finished(client, gid)
    assert progress.status == "error" and progress.retry_count == 2
    assert "reached max retries (2)" in progress.gave_up_reason
    info = client.get_retry_info(gid)
    assert info["can_retry"] is False and info["max_retries"] == 2 and len(info["attempts"]) == 3
    assert engine_of(client).runtime.scheduler.pending() == 0
    assert daemon_gids(client) == [gid]
    assert any(
        "reached max retries" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )


def test_sixteen_pollers_trigger_exactly_one_restart(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=0, monitor=False)  # the pollers alone drive the restart
    url = fault_server.add_file("race.bin", size=500_000)
    fault_server.add_faults("race.bin", ResetAfter(100_000))
    gid = client.add_download(url, str(tmp_path / "race.bin"), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")
    barrier = threading.Barrier(16)
    errors = []

    def poll():
        try:
            barrier.wait(10)
            for _ in range(25):
                client.get_progress(gid)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=poll) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a poller hangs"
    assert errors == []
    done = wait_until_finished(client, gid)
    assert done.status == "complete" and done.retry_count == 1
    assert len(client.get_retry_info(gid)["attempts"]) == 1
    assert daemon_gids(client) == [gid]
    # One restart: aria2 resumes with a size probe, then one Range request for the rest.
    assert sum(1 for r in fault_server.requests("race.bin") if r.range_header) == 1
    assert (tmp_path / "race.bin").read_bytes() == fault_server.content("race.bin")


def test_without_auto_restart_errors_wait_for_restart_all(client_factory, fault_server, tmp_path):
    client = client_factory(auto_restart_failed=False)
    # The other client does not restart on its own either: its download must stay failed unless
    # `client` wrongly touches it (with auto restart on, its own monitor restarted it under load).
    other_client = client_factory(auto_restart_failed=False)
    url = fault_server.add_file("manual.bin", size=300_000)
    fault_server.add_faults("manual.bin", ResetAfter(10_000))
    foreign_url = fault_server.add_file("foreign.bin", size=1000)
    fault_server.add_faults("foreign.bin", Status(500))
    gid = client.add_download(url, str(tmp_path / "manual.bin"), GIVE_UP_AT_ONCE)
    missing = client.add_download(
        fault_server.base_url + "/gone.bin", str(tmp_path / "gone.bin"), GIVE_UP_AT_ONCE
    )
    foreign = other_client.add_download(
        foreign_url, str(tmp_path / "foreign.bin"), {**GIVE_UP_AT_ONCE, "auto-file-renaming": False}
    )
    wait_for_status(client, gid, "error")
    wait_for_status(client, missing, "error")
    wait_for_status(other_client, foreign, "error")
    for _ in range(5):
        progress = client.get_progress(gid)
        assert progress.status == "error" and not progress.restart_pending and progress.retry_count == 0
    assert engine_of(client).runtime.scheduler.pending() == 0

    assert client.restart_all_failed_downloads() == 1  # not the 404, not the other client's download
    done = wait_for_status(client, gid, "complete")
    assert done.retry_count == 1
    assert (tmp_path / "manual.bin").read_bytes() == fault_server.content("manual.bin")
    assert other_client.get_progress(foreign, auto_restart=False).status == "error"
    assert fault_server.request_count("foreign.bin") == 1
    assert client.restart_all_failed_downloads() == 0


def test_the_seeds_manual_restart_alias(client_factory, fault_server, tmp_path):
    client = client_factory(auto_restart_failed=False)
    url = fault_server.add_file("alias.bin", size=100_000)
    fault_server.add_faults("alias.bin", Status(503))
    gid = client.add_download(url, str(tmp_path / "alias.bin"), GIVE_UP_AT_ONCE)
    progress = wait_for_status(client, gid, "error")
    assert progress.error_code == "29"
    assert client._restart_failed_download(gid) is True
    assert wait_for_status(client, gid, "complete").retry_count == 1
    assert client.restart_download(gid) is False  # complete: nothing to restart


def test_a_batch_is_not_completed_while_a_restart_is_pending(client_factory, fault_server, tmp_path):
    # A restart delay of an hour: the pending window lasts until the test ends it.
    client = client_factory(
        restart_policy=RestartPolicy(base_delay=3600.0, max_delay=3600.0), poll_interval=0.05
    )
    url = fault_server.add_file("pending.bin", size=200_000)
    fault_server.add_faults("pending.bin", ResetAfter(50_000))
    good = fault_server.add_file("fine.bin", size=20_000)
    batch_id = client.add_batch_downloads(
        [(url, str(tmp_path / "pending.bin")), (good, str(tmp_path / "fine.bin"))], options=GIVE_UP_AT_ONCE
    )

    def pending_moment():
        batch = client.get_batch_progress(batch_id)
        return batch if batch.completed_count == 1 and batch.retrying_count == 1 else None

    pending = wait_for(pending_moment, what="the good file done and the failed one's restart pending")
    # Everything in the batch has an aria2 end state (complete, error), but a restart is pending.
    assert sorted(p.status for p in pending.downloads) == ["complete", "error"]
    failed = next(p for p in pending.downloads if p.status == "error")
    assert failed.restart_pending and failed.gave_up_reason is None
    assert engine_of(client).runtime.scheduler.pending() == 1
    for _ in range(3):  # however often it is asked, and through every entry point
        assert client.get_batch_progress(batch_id).is_completed is False
        assert client.get_downloads_progress([p.gid for p in pending.downloads]).is_completed is False
        assert client.wait_for_batch(batch_id, timeout=0).is_completed is False
        assert not all(f.done() for f in client.batch_futures(batch_id))

    assert bring_scheduled_restarts_due(client) == 1
    final = client.wait_for_batch(batch_id, timeout=30)
    assert final.is_completed and (final.completed_count, final.retrying_count, final.failed_count) == (
        2,
        0,
        0,
    )
    assert [f.result(timeout=10).retry_count for f in client.batch_futures(batch_id)] == [1, 0]
    assert (tmp_path / "pending.bin").read_bytes() == fault_server.content("pending.bin")


def test_restart_waits_out_its_backoff_without_blocking_the_poller(client_factory, fault_server, tmp_path):
    # A long backoff, so that the restart is still pending however slow this machine is; the
    # test brings it due itself once the explicit restart has taken over.
    client = client_factory(retry_delay=3600.0, monitor=False)
    url = fault_server.add_file("later.bin", size=100_000)
    fault_server.add_faults("later.bin", ResetAfter(1000))
    gid = client.add_download(url, str(tmp_path / "later.bin"), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")
    progress = client.get_progress(gid)  # returns at once; the restart waits 1 s elsewhere
    assert progress.status == "error" and progress.restart_pending
    assert client.get_retry_info(gid)["restart_pending"] is True
    # An explicit restart takes over the scheduled one ...
    assert client.restart_download(gid) is True
    assert wait_for_status(client, gid, "complete").retry_count == 1
    # ... and when the scheduled one comes due, it finds nothing to do.
    assert engine_of(client).runtime.scheduler.pending() == 1
    assert bring_scheduled_restarts_due(client) == 1
    wait_for(
        lambda: engine_of(client).runtime.scheduler.pending() == 0, what="the scheduled restart to come due"
    )
    wait_for(lambda: not client.get_progress(gid).restart_pending, what="the scheduled job to finish")
    assert client.get_progress(gid).retry_count == 1
    assert daemon_gids(client) == [gid]


def test_cancel_and_close_leave_no_restart_pending(client_factory, fault_server, tmp_path):
    client = client_factory(retry_delay=60.0)
    url = fault_server.add_file("pend.bin", size=100_000)
    fault_server.set_default_fault("pend.bin", ResetAfter(1000))
    cancelled = client.submit(url, str(tmp_path / "pend.bin"), GIVE_UP_AT_ONCE)
    other = client.add_download(url, str(tmp_path / "pend2.bin"), GIVE_UP_AT_ONCE)
    wait_for(lambda: client.get_progress(cancelled.gid).restart_pending, what="a scheduled restart")
    wait_for(lambda: client.get_progress(other).restart_pending, what="a second scheduled restart")
    assert client.cancel_download(cancelled.gid) is False  # it was not running
    progress = client.get_progress(cancelled.gid)
    assert not progress.restart_pending and progress.status == "error"
    assert not wait([cancelled], timeout=10).not_done
    assert cancelled.cancelled()
    client.close()
    assert all(not record.restart_pending for record in engine_of(client).ledger)


def test_a_restart_whose_add_fails_is_recovered(client_factory, fault_server, tmp_path, monkeypatch):
    client = client_factory(retry_delay=0.02, poll_interval=0.05)
    url = fault_server.add_file("lost.bin", size=200_000)
    fault_server.add_faults("lost.bin", ResetAfter(50_000))
    real_add = client.rpc.add_uri_once
    failures = []

    def add_failing_once(uris, options, gid, attempts=4):
        if not failures:  # the restart's add: the daemon went away after the removal
            failures.append(gid)
            raise Aria2ConnectionError(client.rpc_url, "Connection refused")
        return real_add(uris, options, gid, attempts)

    gid = client.add_download(url, str(tmp_path / "lost.bin"), GIVE_UP_AT_ONCE)
    monkeypatch.setattr(client.rpc, "add_uri_once", add_failing_once)
    future = client.future(gid)
    result = future.result(timeout=30)
    assert failures == [gid]
    assert result.retry_count == 1  # the recovery is not counted as a restart
    assert (tmp_path / "lost.bin").read_bytes() == fault_server.content("lost.bin")
    assert daemon_gids(client) == [gid]


def test_restart_all_raises_an_auth_error_instead_of_restarting_nothing(
    client_factory, fault_server, tmp_path
):
    client = client_factory(auto_restart_failed=False)
    gid = client.add_download(fault_server.base_url + "/x.bin", str(tmp_path / "x.bin"), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")
    engine_of(client).transport._secret = "not-the-secret"
    with pytest.raises(Aria2AuthError):
        client.restart_all_failed_downloads()


def test_an_evicted_result_falls_back_to_a_new_gid_and_old_handles_keep_working(
    daemon_factory, client_factory, fault_server, tmp_path
):
    daemon = daemon_factory(**{"max-download-result": 1})
    client = client_factory(rpc_url=daemon.rpc_url, rpc_secret=daemon.secret, auto_restart_failed=False)
    url = fault_server.add_file("evict.bin", size=400_000)
    fault_server.add_faults("evict.bin", ResetAfter(100_000))
    gid = client.add_download(url, str(tmp_path / "evict.bin"), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")
    pusher = client.add_download(fault_server.add_file("push.bin", size=10), str(tmp_path / "push.bin"))
    wait_for_status(client, pusher, "complete")
    with pytest.raises(Aria2GIDNotFoundError):
        client.rpc.tell_status(gid)  # evicted: the daemon forgot it, and keeps its GID locked

    assert client.restart_download(gid) is True
    info = client.get_retry_info(gid)
    assert info["gid"] == gid and info["current_gid"] != gid and info["retry_count"] == 1
    done = wait_for_status(client, gid, "complete")
    assert done.gid == gid
    assert client.get_progress(info["current_gid"]).gid == gid  # the new GID resolves to the same download
    assert client.get_retry_info(info["current_gid"])["gid"] == gid
    assert (tmp_path / "evict.bin").read_bytes() == fault_server.content("evict.bin")
    ranged = [r.range_header for r in fault_server.requests("evict.bin") if r.range_header]
    assert len(ranged) == 1 and not ranged[0].startswith("bytes=0-")  # resumed under the new GID


def test_restart_policy_argument(client_factory, fault_server, tmp_path):
    client = client_factory(restart_policy=RestartPolicy(max_restarts=1, base_delay=0, restartable_codes={3}))
    gid = client.add_download(
        fault_server.base_url + "/missing.bin", str(tmp_path / "m.bin"), GIVE_UP_AT_ONCE
    )
    progress = wait_until_finished(client, gid)
    assert progress.retry_count == 1 and "reached max retries (1)" in progress.gave_up_reason
    assert fault_server.request_count("missing.bin") == 2
    assert client.get_retry_info(gid)["max_retries"] == 1


def test_a_crash_leftover_without_its_control_file_is_overwritten_never_renamed(
    client_factory, fault_server, tmp_path
):
    client = client_factory(retry_delay=0.02, monitor=False)
    url = fault_server.add_file("left.bin", size=400_000)
    fault_server.add_faults("left.bin", ResetAfter(100_000))
    target = tmp_path / "left.bin"
    gid = client.add_download(url, str(target), {**GIVE_UP_AT_ONCE, "auto-file-renaming": False})
    wait_for_status(client, gid, "error")
    (tmp_path / "left.bin.aria2").unlink()  # what a crash before the first control-file save leaves
    assert client.restart_download(gid) is True
    failed = wait_for_status(client, gid, "error")  # aria2 refuses the unresumable file: error 13
    assert failed.error_code == "13"
    done = wait_for(
        lambda: client.get_progress(gid).status == "complete" and client.get_progress(gid),
        what="the restart that overwrites the leftover",
    )
    assert done.retry_count == 2 and done.file_path == str(target)
    assert target.read_bytes() == fault_server.content("left.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["left.bin"]


def test_somebody_elses_file_is_never_overwritten_or_renamed_around(client, fault_server, tmp_path):
    url = fault_server.add_file("theirs.bin", size=1000)
    target = tmp_path / "theirs.bin"
    target.write_bytes(b"precious")
    os.utime(target, (time.time() - 3600, time.time() - 3600))
    gid = client.add_download(url, str(target), GIVE_UP_AT_ONCE)
    failed = wait_until_finished(client, gid)
    assert failed.error_code == "13" and "not restartable" in failed.gave_up_reason
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.bin"]


class _HeldRestart:
    """Holds one thread's restart inside ``removeDownloadResult`` and counts every re-add.

    A restart removes the failed result, then adds the download again under its GID: holding
    it between the two keeps it in flight (its state RESTARTING, its run not yet moved on) for as
    long as the test wants, so another restart can be tried at exactly that moment.
    """

    def __init__(self, client, hold_in) -> None:
        self.client = client
        self.hold_in = hold_in  # called in the removing thread: True for the one to hold
        self.held = threading.Event()
        self.release = threading.Event()
        self.adds = []
        self._remove, self._add = client.rpc.remove_download_result, client.rpc.add_uri_once

    def __enter__(self):
        def remove(gid):
            if self.hold_in() and not self.held.is_set():
                self.held.set()
                assert self.release.wait(30), "the test never released the held restart"
            return self._remove(gid)

        def add(uris, options, gid, attempts=4):
            self.adds.append(gid)
            return self._add(uris, options, gid, attempts)

        self.client.rpc.remove_download_result = remove
        self.client.rpc.add_uri_once = add
        return self

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.client.rpc.remove_download_result = self._remove
        self.client.rpc.add_uri_once = self._add


def _drain(pool) -> None:
    """Wait until every job already queued on ``pool`` (a WorkerPool) has run."""
    size = len(pool._threads) or 1
    barrier = threading.Barrier(size + 1)
    for _ in range(size):
        pool.submit(lambda: barrier.wait(20))
    barrier.wait(20)


def _failed_with_a_restart_scheduled(client, fault_server, tmp_path, name):
    url = fault_server.add_file(name, size=200_000)
    fault_server.add_faults(name, ResetAfter(50_000))
    gid = client.add_download(url, str(tmp_path / name), GIVE_UP_AT_ONCE)
    wait_for(lambda: client.get_progress(gid).restart_pending, what="a scheduled restart")
    assert engine_of(client).runtime.scheduler.pending() == 1
    return gid


def test_a_scheduled_restart_coming_due_during_an_explicit_one_does_nothing(
    client_factory, fault_server, tmp_path
):
    client = client_factory(retry_delay=3600.0, monitor=False)
    gid = _failed_with_a_restart_scheduled(client, fault_server, tmp_path, "due.bin")
    explicit = threading.current_thread()
    with _HeldRestart(client, hold_in=lambda: threading.current_thread() is not explicit) as held:
        restarter_result = []
        restarter = threading.Thread(target=lambda: restarter_result.append(client.restart_download(gid)))
        restarter.start()
        try:
            assert held.held.wait(20), "the explicit restart did not reach its removal"
            # The explicit restart is in flight; now the scheduled one comes due and runs.
            assert bring_scheduled_restarts_due(client) == 1
            wait_for(
                lambda: engine_of(client).runtime.scheduler.pending() == 0,
                what="the scheduled restart to come due",
            )
            _drain(engine_of(client).runtime.pools.jobs)
            assert held.adds == [], "the scheduled restart ran while the explicit one was in flight"
        finally:
            held.release.set()
            restarter.join(30)
        assert not restarter.is_alive() and restarter_result == [True]
    assert held.adds == [gid]  # one restart: one re-add
    done = wait_for_status(client, gid, "complete")
    assert done.retry_count == 1 and len(client.get_retry_info(gid)["attempts"]) == 1
    assert daemon_gids(client) == [gid]
    assert (tmp_path / "due.bin").read_bytes() == fault_server.content("due.bin")


def test_an_explicit_restart_during_a_running_scheduled_one_does_nothing(
    client_factory, fault_server, tmp_path
):
    client = client_factory(retry_delay=3600.0, monitor=False)
    gid = _failed_with_a_restart_scheduled(client, fault_server, tmp_path, "busy.bin")
    test_thread = threading.current_thread()
    with _HeldRestart(client, hold_in=lambda: threading.current_thread() is not test_thread) as held:
        assert bring_scheduled_restarts_due(client) == 1
        assert held.held.wait(20), "the scheduled restart did not reach its removal"
        # The scheduled restart is in flight (on a job worker): explicit ones must stand back.
        assert client.restart_download(gid) is False
        assert client.restart_all_failed_downloads(force=True) == 0
        assert held.adds == []
        held.release.set()
        wait_for(lambda: held.adds, what="the scheduled restart's re-add")
    done = wait_for_status(client, gid, "complete")
    assert held.adds == [gid]
    assert done.retry_count == 1 and len(client.get_retry_info(gid)["attempts"]) == 1
    assert daemon_gids(client) == [gid]
    assert (tmp_path / "busy.bin").read_bytes() == fault_server.content("busy.bin")
