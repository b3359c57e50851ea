"""The tracker, restart engine and cancellation on their own: a fake daemon, a manual clock, an
inline executor.

Every job the engine hands to a pool runs at once in the caller's thread (like s3transfer's
``NonThreadedExecutor``), and the scheduler is a list of due times on a clock the test moves,
so a whole life of a download (failures, backoff, restarts, cancels, a daemon that forgets)
runs in a few milliseconds, in an order the test (or hypothesis) picks.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from aria2_sync.engine.cancel import Cancellation
from aria2_sync.engine.ledger import Ledger
from aria2_sync.engine.record import DownloadRecord, Outcome, RestartState
from aria2_sync.engine.restarts import RestartEngine
from aria2_sync.engine.tracker import Tracker
from aria2_sync.engine.workers import Pools
from aria2_sync.errors import Aria2GIDNotFoundError, Aria2RPCError
from aria2_sync.models import Progress
from aria2_sync.policy import RestartPolicy


class InlinePool:
    """A pool that runs each job at once, in the caller's thread."""

    def submit(self, job: Callable[[], None]) -> None:
        job()


class ManualScheduler:
    """The scheduler's interface on a clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.jobs: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, job: Callable[[], None]) -> bool:
        self.jobs.append((self.now + delay, job))
        return True

    def pending(self) -> int:
        return len(self.jobs)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [job for when, job in self.jobs if when <= self.now]
        self.jobs = [(when, job) for when, job in self.jobs if when > self.now]
        for job in due:
            job()


class FakeDaemon:
    """The few aria2 methods the engine calls, over a dict of downloads."""

    resume_lost_on_shared_storage = False  # (one daemon: see Aria2RPC)

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.downloads: dict[str, dict[str, Any]] = {}
        self.adds: list[tuple[str, dict[str, Any]]] = []

    def _missing(self, gid: str, method: str) -> Aria2GIDNotFoundError:
        return Aria2GIDNotFoundError(1, f"GID {gid} is not found", method, gid)

    def add_uri_once(self, uris: list[str], options: dict[str, Any], gid: str, attempts: int = 1) -> str:
        if gid in self.downloads:
            raise Aria2RPCError(1, "No URI to download.", "aria2.addUri")
        out = options.get("out", f"{gid}.bin")
        self.downloads[gid] = {
            "status": "active",
            "errorCode": "0",
            "path": os.path.join(self.directory, out),
        }
        self.adds.append((gid, dict(options)))
        return gid

    def tell_status(self, gid: str, keys: Any = None) -> dict[str, Any]:
        if gid not in self.downloads:
            raise self._missing(gid, "aria2.tellStatus")
        entry = self.downloads[gid]
        path = entry["path"]
        return {
            "gid": gid,
            "status": entry["status"],
            "totalLength": "100",
            "completedLength": "0",
            "downloadSpeed": "0",
            "connections": "0",
            "errorCode": entry["errorCode"],
            "errorMessage": "",
            "dir": self.directory,
            "files": [
                {"index": "1", "path": path, "length": "100", "completedLength": "0", "selected": "true"}
            ],
        }

    def remove_download_result(self, gid: str) -> None:
        if gid not in self.downloads:
            raise self._missing(gid, "aria2.removeDownloadResult")
        del self.downloads[gid]

    def force_remove(self, gid: str) -> str:
        entry = self.downloads.get(gid)
        if entry is None:
            raise self._missing(gid, "aria2.forceRemove")
        if entry["status"] not in ("active", "waiting", "paused"):
            raise Aria2RPCError(1, f"GID {gid} cannot be removed now", "aria2.forceRemove")
        entry["status"] = "removed"
        return gid

    def multicall(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        answers: list[Any] = []
        for method, params in calls:
            try:
                if method == "aria2.tellStatus":
                    answers.append(self.tell_status(*params))
                elif method == "aria2.forceRemove":
                    answers.append(self.force_remove(*params))
                else:  # pragma: no cover
                    raise AssertionError(method)
            except Aria2RPCError as error:
                answers.append(error)
        return answers

    def unreadable(self, method: str, detail: str) -> Exception:  # pragma: no cover
        return AssertionError(f"{method}: {detail}")


class Engine:
    """The engine's parts wired as a client wires them, on the fakes above."""

    def __init__(self, directory: str, policy: RestartPolicy, auto_restart: bool = True) -> None:
        self.daemon = FakeDaemon(directory)
        self.scheduler = ManualScheduler()
        self.ledger = Ledger(keep_finished=1000, keep_seconds=None)
        inline = InlinePool()
        self.pools = Pools(callbacks=inline, settle=inline, jobs=inline)  # type: ignore[arg-type]
        self.restarts = RestartEngine(
            self.daemon,  # type: ignore[arg-type]
            self.ledger,
            policy,
            self.scheduler,  # type: ignore[arg-type]
            add_attempts=1,
            run_job=inline.submit,
            run_callback=inline.submit,
        )
        self.cancellation = Cancellation(self.daemon, self.ledger, inline)  # type: ignore[arg-type]
        self.tracker = Tracker(
            self.ledger, self.restarts, self.pools, lambda: auto_restart, self.cancellation
        )

    def add(self, gid: str, options: dict[str, Any] | None = None) -> DownloadRecord:
        record = DownloadRecord(
            gid=gid, uris=["http://h/f"], options=dict(options or {}), current_gid=gid, adding=True
        )
        self.ledger.add(record)
        self.daemon.add_uri_once(record.uris, record.options, gid)
        record.added()
        return record

    def fail(self, record: DownloadRecord, code: str) -> None:
        entry = self.daemon.downloads.get(record.current_gid)
        if entry is not None and entry["status"] in ("active", "waiting", "paused"):
            entry.update(status="error", errorCode=code)

    def tick(self) -> None:
        self.tracker.read(self.daemon, self.ledger.unfinished(), auto=True)  # type: ignore[arg-type]


def test_a_transient_failure_is_restarted_after_its_backoff_under_the_same_gid(tmp_path):
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=2, base_delay=1.0))
    record = engine.add("00000000000000a1")
    engine.fail(record, "1")
    engine.tick()
    assert record.restart_state is RestartState.SCHEDULED and engine.scheduler.pending() == 1
    engine.scheduler.advance(0.5)
    assert record.retry_count == 0  # still waiting out its backoff
    engine.scheduler.advance(0.5)
    assert record.retry_count == 1 and record.run == 1 and record.current_gid == record.gid
    assert record.restart_state is RestartState.IDLE
    assert engine.daemon.downloads[record.gid]["status"] == "active"


def test_the_budget_spent_fails_the_future_once(tmp_path):
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=1, base_delay=0.0))
    record = engine.add("00000000000000a2")
    future = engine.tracker.future_for(record)
    for _ in range(2):
        engine.fail(record, "1")
        engine.tick()
        engine.scheduler.advance(0.0)
    assert record.outcome is Outcome.FAILED and "max retries (1)" in (record.gave_up or "")
    assert future.done() and record.claim_settlement() is None


def test_a_cancel_while_a_restart_waits_drops_it(tmp_path):
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=3, base_delay=5.0))
    record = engine.add("00000000000000a3")
    future = engine.tracker.future_for(record)
    engine.fail(record, "1")
    engine.tick()
    assert future.cancel()
    engine.scheduler.advance(60)
    assert record.outcome is Outcome.CANCELLED and record.retry_count == 0
    assert len(engine.daemon.adds) == 1


def _own_leftover_13(tmp_path, predicate: Callable[[Progress], bool] | None) -> tuple[Engine, DownloadRecord]:
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=2, base_delay=0.0, predicate=predicate))
    (tmp_path / "f.bin").write_bytes(b"")  # aria2 made it, then crashed before its control file
    record = engine.add("00000000000000b1", {"dir": str(tmp_path), "out": "f.bin"})
    return engine, record


def test_a_user_predicate_is_consulted_for_an_error_13_on_the_downloads_own_leftover(tmp_path):
    asked: list[Progress] = []

    def predicate(progress: Progress) -> bool:
        asked.append(progress)
        return False

    engine, record = _own_leftover_13(tmp_path, predicate)
    engine.fail(record, "13")
    engine.tick()
    assert [p.error_code for p in asked] == ["13"]
    assert record.outcome is Outcome.FAILED and "not restartable" in (record.gave_up or "")
    assert engine.scheduler.pending() == 0


def test_without_a_predicate_an_own_leftover_13_is_restarted_overwriting_it(tmp_path):
    engine, record = _own_leftover_13(tmp_path, None)
    engine.fail(record, "13")
    engine.tick()
    engine.scheduler.advance(0.0)
    assert record.retry_count == 1
    assert engine.daemon.adds[-1][1].get("allow-overwrite") == "true"


def test_decide_is_a_question(tmp_path):
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=0))
    record = engine.add("00000000000000c1")
    failed = Progress(gid=record.gid, status="error", error_code="1")
    assert not engine.restarts.decide(record, failed).restart
    assert record.gave_up is None  # asking changed nothing
    assert not engine.restarts.restart_if_allowed(record, record.run, failed)
    assert "max retries" in (record.gave_up or "")


# -- random event sequences ---------------------------------------------------------------------


class EngineMachine(RuleBasedStateMachine):
    """Random failures, ticks, clock moves, restarts, cancels and daemon losses on two downloads."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = tempfile.mkdtemp(prefix="aria2_sync-engine-")
        self.engine = Engine(self.tmp, RestartPolicy(max_restarts=2, base_delay=1.0))
        self.records = [self.engine.add(f"{n:016x}") for n in (0xD1, 0xD2)]
        self.futures = [self.engine.tracker.future_for(r) for r in self.records]
        self.explicit = [0, 0]
        self.adds_at_cancel: dict[int, int] = {}
        self.seen: dict[tuple[int, int], Outcome] = {}
        self.high = [(0, 0, 0), (0, 0, 0)]

    def teardown(self) -> None:
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)

    def _adds(self, index: int) -> int:
        record = self.records[index]
        gids = {record.gid, *record.daemon_gids}
        return sum(gid in gids for gid, _ in self.engine.daemon.adds)

    @rule(index=st.integers(0, 1), code=st.sampled_from(["1", "3"]))
    def fail(self, index: int, code: str) -> None:
        self.engine.fail(self.records[index], code)

    @rule(index=st.integers(0, 1))
    def complete(self, index: int) -> None:
        entry = self.engine.daemon.downloads.get(self.records[index].current_gid)
        if entry is not None and entry["status"] == "active":
            entry["status"] = "complete"

    @rule(index=st.integers(0, 1))
    def forget(self, index: int) -> None:
        self.engine.daemon.downloads.pop(self.records[index].current_gid, None)

    @rule()
    def tick(self) -> None:
        self.engine.tick()

    @rule(seconds=st.sampled_from([0.0, 1.0, 3.0]))
    def advance(self, seconds: float) -> None:
        self.engine.scheduler.advance(seconds)

    @rule(index=st.integers(0, 1))
    def restart(self, index: int) -> None:
        record = self.records[index]
        if self.engine.restarts.restart(record, record.run):
            assert index not in self.adds_at_cancel, "a cancelled download was restarted"
            self.explicit[index] += 1

    @rule(index=st.integers(0, 1), through_future=st.booleans())
    def cancel(self, index: int, through_future: bool) -> None:
        record = self.records[index]
        if through_future:
            self.engine.tracker.future_for(record).cancel()
        else:
            try:
                self.engine.cancellation.cancel_download(record, record.current_gid)
            except Aria2RPCError:
                pass  # gone from the daemon after it finished: the caller hears it
        if record.cancelled:
            self.adds_at_cancel.setdefault(index, self._adds(index))

    @invariant()
    def holds(self) -> None:
        for index, record in enumerate(self.records):
            # never two restarts in flight: with an inline executor none is left running
            assert record.restart_state is not RestartState.RESTARTING
            # a cancelled download is never added again
            if index in self.adds_at_cancel:
                assert self._adds(index) == self.adds_at_cancel[index]
            # automatic restarts stay within the budget; counters never go back
            assert record.retry_count <= 2 + self.explicit[index]
            now = (record.run, record.retry_count, len(record.attempts))
            assert all(a >= b for a, b in zip(now, self.high[index]))
            self.high[index] = now
            # one outcome per run, and a future that follows it
            if record.outcome is not None:
                assert self.seen.setdefault((index, record.run), record.outcome) is record.outcome
                future = record.future
                if future is not None:
                    assert future.done()
            # no second copy of the download in the daemon
            live = [
                g
                for g in {record.gid, *record.daemon_gids}
                if self.engine.daemon.downloads.get(g, {}).get("status") in ("active", "waiting", "paused")
            ]
            assert len(live) <= 1


TestEngineMachine = EngineMachine.TestCase
TestEngineMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)


def test_a_failure_is_judged_by_its_own_error_code_even_when_its_full_read_fails(tmp_path):
    """A tick reads a known download's moving keys only (no ``errorCode``: aria2 leaves out keys
    not asked for); a new status is read again in full. If that second read fails, the failure
    must wait for a read that has its code, not be judged without one (which gave up on a
    restartable failure as "error ? (no error code) is not restartable")."""
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=2, base_delay=0.0))
    record = engine.add("00000000000000a9")
    real_tell = engine.daemon.tell_status

    def tell_only_asked(gid: str, keys: Any = None) -> dict[str, Any]:
        answer = real_tell(gid, keys)
        return answer if keys is None else {k: v for k, v in answer.items() if k in keys}

    engine.daemon.tell_status = tell_only_asked  # type: ignore[method-assign]
    engine.tick()  # first seen: read in full, active
    assert record.last is not None and record.last.status == "active"
    engine.fail(record, "1")
    real_multicall, calls = engine.daemon.multicall, []

    def second_read_fails(batch: list[tuple[str, list[Any]]]) -> list[Any]:
        calls.append(batch)
        if len(calls) == 2:  # the full read of the download whose status moved
            return [Aria2RPCError(1, "the daemon could not answer now", "aria2.tellStatus") for _ in batch]
        return real_multicall(batch)

    engine.daemon.multicall = second_read_fails  # type: ignore[method-assign]
    engine.tick()
    assert len(calls) == 2
    assert record.gave_up is None and record.attempts == ()
    engine.tick()  # read again: the failure, with its code, is restartable
    assert [attempt.error_code for attempt in record.attempts] == ["1"]
    assert record.gave_up is None
    engine.scheduler.advance(0.0)
    assert record.retry_count == 1 and record.run == 1


@pytest.mark.parametrize("read_meanwhile", [False, True], ids=["then-a-tick", "new-run-read-meanwhile"])
@pytest.mark.parametrize("stale", ["paused", "removed", "error"])
def test_a_read_planned_for_a_run_and_answered_after_a_restart_changes_nothing(
    tmp_path, stale: str, read_meanwhile: bool
):
    """A steady download's read is planned and matched without its lock (``read_plan``,
    ``unchanged``). A restart landing between the plan and the answer moves it to run 1: the
    answer about run 0, even one saying exactly what the last one said, changes nothing of
    run 1, and the next tick plans for run 1."""
    engine = Engine(str(tmp_path), RestartPolicy(max_restarts=2, base_delay=0.0))
    record = engine.add("00000000000000e1")
    engine.daemon.downloads[record.gid]["status"] = "paused"
    engine.tick()
    engine.tick()  # seen paused twice: steady, read without the lock
    assert record.read_plan()[3] is not None
    real_multicall = engine.daemon.multicall
    new_run: list[Progress | None] = []
    restarted: list[bool] = []

    def restart_before_the_answer_is_applied(calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if restarted:
            return real_multicall(calls)
        restarted.append(True)
        answers = real_multicall(calls)  # what the daemon says of run 0...
        for answer in answers:
            answer.update(status=stale, errorCode="1" if stale == "error" else "0")
        engine.fail(record, "1")  # ... then it fails, and is restarted explicitly
        assert engine.restarts.restart(record, 0)
        assert record.run == 1 and record.restart_state is RestartState.IDLE
        if read_meanwhile:  # someone reads run 1 (get_progress) before run 0's answer lands
            engine.tracker.read(engine.daemon, [record], auto=True)  # type: ignore[arg-type]
        new_run.append(record.last)
        return answers

    engine.daemon.multicall = restart_before_the_answer_is_applied  # type: ignore[method-assign]
    results = engine.tracker.read(engine.daemon, [record], auto=True)  # type: ignore[arg-type]

    assert [(r, run) for r, run, _ in results] == [(record, 0)]
    assert record.run == 1 and record.last is new_run[0]
    assert record.outcome is None and record.attempts == () and engine.scheduler.pending() == 0
    assert record.restart_state is RestartState.IDLE and not record.cancelled
    engine.daemon.multicall = real_multicall  # type: ignore[method-assign]
    engine.tick()
    assert record.read_plan()[:2] == (record.current_gid, 1)
    assert record.last is not None and record.last.status == "active" and record.outcome is None
