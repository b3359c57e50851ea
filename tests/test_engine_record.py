"""The download record on its own: its transitions, and invariants under random event sequences.

No daemon and no thread: a :class:`DownloadRecord` is built here and driven through its
transition methods the way the tracker, the restart engine and the cancellation drive it, in
any order hypothesis picks, with stale runs and racing callers included.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from aria2_sync import Progress
from aria2_sync.engine.futures import DownloadFuture
from aria2_sync.engine.record import (
    Callbacks,
    DownloadRecord,
    IllegalTransition,
    Outcome,
    RestartState,
)
from aria2_sync.policy import RestartDecision

GID = "0123456789abcdef"


def _record(**extra: Any) -> DownloadRecord:
    return DownloadRecord(gid=GID, uris=["http://h/f"], options={}, current_gid=GID, **extra)


def _progress(status: str, code: str | None = None, done: int = 0) -> Progress:
    return Progress(gid=GID, status=status, error_code=code, completed_length=done, total_length=100)


def test_a_failure_seen_twice_is_one_attempt():
    record = _record()
    assert record.failed(0, _progress("error", "1")) is not None
    assert record.failed(0, _progress("error", "1")) is None
    assert len(record.attempts) == 1 and record.failure_recorded


def test_a_failure_of_a_run_that_is_over_is_not_recorded():
    record = _record()
    assert record.begin_restart(0)
    record.moved_to_run(1, 1)
    record.restart_done()
    assert record.failed(0, _progress("error", "1")) is None
    assert record.attempts == ()


def test_a_decision_is_made_once_per_failure():
    record = _record()
    calls = []

    def decide() -> RestartDecision:
        calls.append(1)
        return RestartDecision(True, delay=1.0)

    assert record.schedule_restart(0, decide) is not None
    assert record.schedule_restart(0, decide) is None  # scheduled already
    assert len(calls) == 1 and record.restart_state is RestartState.SCHEDULED


def test_cancel_drops_a_scheduled_restart_and_blocks_every_kind_of_restart():
    record = _record()
    record.schedule_restart(0, lambda: RestartDecision(True))
    assert record.cancel()
    assert record.restart_state is RestartState.IDLE
    assert not record.begin_scheduled_restart(0)
    assert not record.begin_restart(0)
    assert not record.begin_recovery(0)


def test_a_finished_download_refuses_a_cancel_from_its_future_but_not_from_cancelled():
    record = _record()
    record.observed(0, _progress("complete"), (), auto_restart=True)
    assert not record.cancel(unless_finished=True)
    other = _record()
    other.cancel()
    assert other.finish_cancelled()
    assert other.cancel(unless_finished=True)


def test_moving_to_a_new_run_needs_a_restart_in_flight_and_goes_forward_only():
    record = _record()
    with pytest.raises(IllegalTransition):
        record.moved_to_run(1, 1)
    assert record.begin_restart(0)
    with pytest.raises(IllegalTransition):
        record.moved_to_run(0, 0)


def test_an_outcome_is_given_once():
    record = _record()
    record.rejected(RuntimeError("no"))
    assert record.outcome is Outcome.REJECTED
    with pytest.raises(IllegalTransition):
        record.rejected(RuntimeError("again"))
    assert not record.finish_cancelled()


def test_an_older_read_never_replaces_the_final_snapshot():
    record = _record()
    final = record.observed(0, _progress("complete", done=100), (), auto_restart=True)
    assert final.outcome is Outcome.COMPLETE
    late = record.observed(0, _progress("active", done=50), (), auto_restart=True)
    assert late.outcome is None and late.progress.status == "complete"


def test_a_future_is_claimed_once_per_outcome_and_a_new_run_gets_a_new_future():
    record = _record()
    future, settle_now = record.future_or_new(lambda: DownloadFuture(GID))
    assert not settle_now
    record.observed(0, _progress("error", "3"), (), auto_restart=False)
    claimed = record.claim_settlement()
    assert claimed == (future, Outcome.FAILED, 0)
    assert record.claim_settlement() is None
    future._settle_exception(RuntimeError("failed"))
    assert record.begin_restart(0)
    record.moved_to_run(1, 1)
    record.restart_done()
    assert not record.finished and record.future is None
    newer, _ = record.future_or_new(lambda: DownloadFuture(GID))
    assert newer is not future


def test_a_progress_callback_is_queued_once_until_it_runs():
    record = _record(callbacks=Callbacks(on_progress=lambda progress: None))
    assert record.observed(0, _progress("active", done=1), (0, 1), auto_restart=True).notify
    assert not record.observed(0, _progress("active", done=2), (0, 2), auto_restart=True).notify
    record.progress_reported()
    assert record.observed(0, _progress("active", done=3), (0, 3), auto_restart=True).notify


def _steady(record: DownloadRecord, run: int = 0) -> Progress:
    """Observe ``record`` paused twice in run ``run``: it is steady, read without its lock."""
    fingerprint = (run, "paused", "100")
    record.observed(run, _progress("paused", done=100), fingerprint, auto_restart=True)
    again = record.observed(run, _progress("paused", done=100), fingerprint, auto_restart=True).progress
    assert record.unchanged(fingerprint) is again is record.last
    return again


def test_a_read_of_a_steady_download_is_planned_and_matched_for_its_run_only():
    record = _record()
    last = _steady(record)
    assert record.read_plan() == (GID, 0, last, (0, "paused", "100"))
    assert record.unchanged((1, "paused", "100")) is None  # another run
    assert record.unchanged((0, "active", "100")) is None  # another answer
    assert record.standing() == (None, False)
    assert record.begin_restart(0)  # a restart: no longer steady, from its first step
    assert record.unchanged((0, "paused", "100")) is None and record.standing() == (None, True)
    record.moved_to_run(1, 1)
    record.rehomed("fedcba9876543210")
    record.restart_done()
    assert record.read_plan() == ("fedcba9876543210", 1, None, None)
    # A read of run 0, answered now, changes nothing of run 1.
    stale = record.observed(0, _progress("paused", done=100), (0, "paused", "100"), auto_restart=True)
    assert stale.outcome is None and record.last is None and record.unchanged((0, "paused", "100")) is None


@pytest.mark.parametrize("change", ["cancel", "read-complete", "complete-on-disk", "rejected"])
def test_a_steady_download_is_looked_at_again_after_a_cancel_or_an_outcome(change: str):
    record = _record()
    _steady(record)
    if change == "cancel":
        record.cancel()
    elif change == "read-complete":
        record.observed(0, _progress("complete", done=100), (0, "complete", "100"), auto_restart=True)
        assert record.standing() == (Outcome.COMPLETE, False)
    elif change == "complete-on-disk":
        record.completed_on_disk(0, "/d/f", _progress("complete", done=100))
    else:
        record.rejected(RuntimeError("refused"))
    assert record.unchanged((0, "paused", "100")) is None
    assert record.read_plan()[3] is None
    assert record.standing() == (record.outcome, False)


def test_a_run_another_process_moved_to_is_the_one_read_next():
    """A restart made by another process (read from the shared store) moves a steady download
    to the new run: the next read is planned for it, not for the run it was steady in."""
    record = _record()
    _steady(record)
    row = {
        "run": 1,
        "current_gid": GID,
        "daemon_gids": [],
        "failed_run": 0,
        "retry_count": 1,
        "attempts": [],
        "gave_up": None,
        "cancelled": False,
        "outcome": None,
        "last": None,
    }
    assert record.take_shared(row) is False
    assert record.read_plan()[:2] == (GID, 1)
    assert record.unchanged((0, "paused", "100")) is None
    observed = record.observed(1, _progress("active", done=5), (1, "active", "5"), auto_restart=True)
    assert record.last is observed.progress and record.last.status == "active"


# -- random event sequences ---------------------------------------------------------------------

_STATUSES = ["active", "waiting", "paused", "error", "complete", "removed"]


class RecordMachine(RuleBasedStateMachine):
    """Random transitions on one record, checked against what must always hold."""

    def __init__(self) -> None:
        super().__init__()
        self.record = _record(adding=True)
        self.in_flight = 0
        self.outcomes: dict[int, Outcome] = {}
        self.claims: set[tuple[int, int, Outcome]] = set()
        self.futures: list[DownloadFuture] = []
        self.high_water = (0, 0, 0)  # run, retry_count, attempts
        self.moved = False

    def _run(self, stale: bool) -> int:
        return self.record.run - 1 if stale else self.record.run

    # -- the daemon speaks

    @rule()
    def added(self) -> None:
        self.record.added()

    @rule(
        stale=st.booleans(), status=st.sampled_from(_STATUSES), code=st.sampled_from([None, "1", "3", "13"])
    )
    def observed(self, stale: bool, status: str, code: str | None) -> None:
        run = self._run(stale)
        self.record.observed(run, _progress(status, code), (run, status, code), auto_restart=True)

    @rule(stale=st.booleans())
    def read_again(self, stale: bool) -> None:
        # A read saying what the last one said: the lock-free path of a refresh.
        last = self.record.last
        if last is None:
            return
        run = self._run(stale)
        again = self.record.unchanged((run, last.status, last.error_code))
        if again is not None:
            assert again is last and run == self.record.run and last.status in ("active", "waiting", "paused")

    @rule(gid=st.sampled_from([GID, "fedcba9876543210"]))
    def rehomed(self, gid: str) -> None:
        self.record.rehomed(gid)

    @rule(stale=st.booleans())
    def vanished(self, stale: bool) -> None:
        self.record.vanished(self._run(stale))

    @rule(stale=st.booleans(), code=st.sampled_from(["1", "3"]))
    def failed(self, stale: bool, code: str) -> None:
        self.record.failed(self._run(stale), _progress("error", code))

    # -- restarts

    @rule(stale=st.booleans(), restart=st.booleans())
    def schedule(self, stale: bool, restart: bool) -> None:
        self.record.schedule_restart(self._run(stale), lambda: RestartDecision(restart, reason="no"))

    @rule()
    def unschedule(self) -> None:
        self.record.unschedule()

    @rule(stale=st.booleans(), kind=st.sampled_from(["scheduled", "explicit", "recovery"]))
    def begin(self, stale: bool, kind: str) -> None:
        cancelled = self.record.cancelled
        begin = {
            "scheduled": self.record.begin_scheduled_restart,
            "explicit": self.record.begin_restart,
            "recovery": self.record.begin_recovery,
        }[kind]
        if begin(self._run(stale)):
            assert not cancelled, "a cancelled download was restarted"
            assert self.in_flight == 0, "two restarts in flight"
            self.in_flight += 1
            self.moved = False

    @precondition(lambda self: self.in_flight == 1 and not self.moved)
    @rule(counted=st.booleans())
    def move(self, counted: bool) -> None:
        planned = self.record.next_run(counted)
        if planned is None:
            assert self.record.cancelled
            return
        self.record.moved_to_run(*planned)
        self.moved = True

    @precondition(lambda self: self.in_flight == 1)
    @rule()
    def restart_done(self) -> None:
        self.record.restart_done()
        self.in_flight = 0

    @rule(reason=st.sampled_from([None, "budget spent"]), replace=st.booleans())
    def give_up(self, reason: str | None, replace: bool) -> None:
        self.record.give_up(reason, replace=replace)

    # -- cancelling

    @rule(removing=st.booleans(), unless_finished=st.booleans())
    def cancel(self, removing: bool, unless_finished: bool) -> None:
        self.record.cancel(removing=removing, unless_finished=unless_finished)

    @rule()
    def uncancel(self) -> None:
        self.record.uncancel()

    @rule()
    def finish_cancelled(self) -> None:
        self.record.finish_cancelled()

    @rule()
    def removal_sent(self) -> None:
        self.record.removal_sent()

    # -- futures

    @rule()
    def ask_future(self) -> None:
        future, _ = self.record.future_or_new(lambda: DownloadFuture(GID))
        if future not in self.futures:
            self.futures.append(future)

    @rule(resolve=st.booleans())
    def settle(self, resolve: bool) -> None:
        claimed = self.record.claim_settlement()
        if claimed is None:
            return
        future, outcome, run = claimed
        key = (id(future), run, outcome)
        assert key not in self.claims, "one outcome settled twice"
        self.claims.add(key)
        if resolve and self.record.resolution(future, outcome, run, lambda record: None) is not None:
            future._settle_exception(RuntimeError(outcome.value))

    # -- what always holds

    @invariant()
    def one_outcome_per_run(self) -> None:
        outcome, run = self.record.outcome, self.record.run
        if outcome is not None:
            assert self.outcomes.setdefault(run, outcome) is outcome, "a run got two outcomes"

    @invariant()
    def at_most_one_restart_in_flight(self) -> None:
        restarting = self.record.restart_state is RestartState.RESTARTING
        assert restarting == (self.in_flight == 1)

    @invariant()
    def counters_never_go_back(self) -> None:
        now = (self.record.run, self.record.retry_count, len(self.record.attempts))
        assert all(a >= b for a, b in zip(now, self.high_water)), (now, self.high_water)
        self.high_water = now

    @invariant()
    def what_is_read_without_the_lock_is_what_the_lock_guards(self) -> None:
        record = self.record
        steady = record._steady
        if steady is not None:  # read_plan, unchanged and standing answer from it, lock-free
            daemon_gid, run, last, fingerprint = steady
            assert (daemon_gid, run, fingerprint[0]) == (record.current_gid, record.run, record.run)
            assert last is record.last and fingerprint[1] in ("active", "waiting", "paused")
            assert record.outcome is None and not record.restart_pending and not record.cancelled
        assert record.read_plan()[:3] == (record.current_gid, record.run, record.last)
        assert record.standing() == (record.outcome, record.restart_pending)

    @invariant()
    def a_cancelled_download_has_no_scheduled_restart(self) -> None:
        if self.record.cancelled:
            assert self.record.restart_state is not RestartState.SCHEDULED


TestRecordMachine = RecordMachine.TestCase
TestRecordMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
