"""The life of one logical download, written down once: its states, outcomes and transitions.

A *logical download* is what the caller holds a GID for. Behind it, the daemon-side download
may be replaced (a restart that had to take a new GID), so the record keeps the caller's GID as
the handle, every daemon-side GID it had, what is needed to add it again (URIs, options) and its
history (attempts, restart count). Counters belong to the record, never to a daemon GID.

Two state variables describe where a download stands:

* :class:`RestartState`: ``IDLE`` (nothing going on), ``SCHEDULED`` (a restart waits out its
  backoff), ``RESTARTING`` (one restart is running; no second one may start);
* :class:`Outcome` (or None while it is watched): ``COMPLETE``, ``FAILED``, ``CANCELLED``,
  ``REJECTED``, at most one per *run* (the daemon-side runs of the download: 0 for the first
  add, +1 per restart). Only a new run, or a restart another process made (read from a shared
  store), takes an outcome back.

Every change goes through a method of :class:`DownloadRecord` that checks the change is legal
from the current state and makes it under the record's lock; the fields are read-only
properties. A method that may lose a race (another thread restarted or cancelled the download
meanwhile) says so by its return value; one called where it can never be legal raises
:class:`IllegalTransition` (a bug in the engine). The lock is shared with the
:class:`~aria2_sync.engine.ledger.Ledger` that keeps the record, and is private to the engine.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

import attrs

from ..models import Progress
from .recordview import RecordView
from .states import Attempt, Callbacks, IllegalTransition, Observation, Outcome, RestartState

if TYPE_CHECKING:  # pragma: no cover
    import threading

    from ..policy import RestartDecision
    from ..state.base import Row
    from .futures import DownloadFuture


#: aria2 statuses of a download that is running or parked (what a steady download may show).
_MOVING = ("active", "waiting", "paused")

__all__ = [
    "Attempt",
    "Callbacks",
    "DownloadRecord",
    "IllegalTransition",
    "Observation",
    "Outcome",
    "RestartState",
]


class DownloadRecord(RecordView):
    """One logical download: the questions of :class:`RecordView`, and the transitions.

    Each transition takes the record's lock, checks that it is legal from the current state
    (see the module's docstring), and makes its change.
    """

    __slots__ = ()

    # -- transitions: adding --------------------------------------------------------------------

    def added(self) -> None:
        """The add that creates the download returned: "not found" now means lost."""
        with self._lock:
            self._adding = False

    @staticmethod
    def all_added(records: Sequence[DownloadRecord]) -> None:
        """:meth:`added` for many records; those sharing one lock (a ledger's) under one
        acquisition of it."""
        if not records:
            return
        lock = records[0]._lock
        with lock:
            for record in records:
                if record._lock is lock:
                    record._adding = False
                else:
                    record.added()

    def options_changed(self, changes: Mapping[str, Any]) -> None:
        """Its options were changed in the daemon: a restart adds it again with them.

        A new mapping (a batch's records may share the one they were added with)."""
        with self._lock:
            self._options = {**self._options, **changes}

    def rejected(self, error: Exception) -> None:
        """aria2 refused to add it: it never existed in the daemon."""
        with self._lock:
            if self._outcome is not None:
                raise IllegalTransition(f"download {self.gid} was rejected after its outcome")
            self._steady = None
            self._gave_up = f"aria2 refused to add it: {error}"
            self._last = Progress(
                gid=self.gid, status="error", error_message=str(error), gave_up_reason=self._gave_up
            )
            self._finish(Outcome.REJECTED)

    # -- transitions: what the daemon says ------------------------------------------------------

    def observed(
        self,
        run: int,
        progress: Progress,
        fingerprint: tuple[object, ...],
        auto_restart: bool,
    ) -> Observation:
        """Apply a status read of run ``run`` (``progress``) and give the run its outcome.

        A read of a run that is over changes nothing. Once the run has an outcome, an older
        read must not replace the final snapshot; one from before the end (still running) is
        not handed out either, so that counts by outcome and the statuses listed beside them
        agree. Queues at most one ``on_progress`` call, and at most one removal of a cancelled
        download the daemon runs again.
        """
        with self._lock:
            progress = self.annotate(progress)
            if self._run != run:
                return Observation(progress)
            if self._outcome is not None:
                final = self._last
                if final is not None and final.status in ("complete", "error") and progress.is_active:
                    return Observation(final)
                return Observation(progress)
            previous = self._last
            self._last = progress
            outcome = self._outcome_of(progress, auto_restart)
            if outcome is not None:
                self._finish(outcome)  # (which ends its being steady)
            elif fingerprint[1] in _MOVING and not self._cancelled and not self.restart_pending:
                self._steady = (self._current_gid, run, progress, fingerprint)
            else:
                self._steady = None
            changed = previous is None or (previous.status, previous.completed_length) != (
                progress.status,
                progress.completed_length,
            )
            notify = changed and self.callbacks.on_progress is not None and not self._progress_callback_queued
            if notify:
                self._progress_callback_queued = True
            remove = self._cancelled and progress.is_active and not self._removal_queued
            if remove:
                self._removal_queued = True
            return Observation(progress, outcome, notify, remove)

    def _outcome_of(self, progress: Progress, auto_restart: bool) -> Outcome | None:
        if progress.status == "complete" or progress.seeding:  # (seeding: its payload is whole)
            return Outcome.COMPLETE
        if progress.status == "removed" or (self._cancelled and progress.status == "error"):
            return Outcome.CANCELLED
        if progress.status == "error" and not self.restart_pending:
            if self._gave_up is not None or not auto_restart:
                return Outcome.FAILED
        return None

    def progress_reported(self) -> tuple[Progress | None, Callable[[Progress], Any] | None]:
        """The queued ``on_progress`` call runs now: ``(latest snapshot, callback)``."""
        with self._lock:
            self._progress_callback_queued = False
            return self._last, self.callbacks.on_progress

    def vanished(self, run: int) -> bool | None:
        """The daemon no longer has run ``run``: None if nothing is to be done (still being
        added, a restart pending, a run that is over, finished); True if it was cancelled (it
        is finished as such now); False if it must be brought back."""
        with self._lock:
            if self._adding or self.restart_pending or self._run != run or self._outcome is not None:
                return None
            if self._cancelled:
                self._finish(Outcome.CANCELLED)
                return True
            return False

    def completed_on_disk(self, run: int, path: str, progress: Progress) -> bool:
        """Run ``run``, forgotten by the daemon, left its file whole on disk: it is complete."""
        with self._lock:
            if self._run != run or self._outcome is not None:
                return False
            self._steady = None
            self._last = attrs.evolve(progress, retry_count=self._retry_count)
            self._finish(Outcome.COMPLETE)
            return True

    # -- transitions: failures and restarts -----------------------------------------------------

    def failed(self, run: int, progress: Progress, gid: str | None = None) -> Attempt | None:
        """Record the failure of run ``run`` once (the first report); the new attempt, or None
        (already recorded, a run that is over, or cancelled)."""
        with self._lock:
            if self._cancelled or self._run != run or self.failure_recorded:
                return None
            self._failed_run = run
            self._gave_up = None
            attempt = Attempt(
                time=time.time(),
                error_code=progress.error_code,
                error_message=progress.error_message,
                completed_length=progress.completed_length,
                gid=self._current_gid if gid is None else gid,
            )
            self._attempts += (attempt,)
            return attempt

    def shared_attempts(self, attempts: list[Attempt]) -> None:
        """The shared store's history replaces this process's (it holds this one's too)."""
        with self._lock:
            self._attempts = tuple(attempts)

    def schedule_restart(self, run: int, decide: Callable[[], RestartDecision]) -> RestartDecision | None:
        """Schedule a restart of failed run ``run`` or give up on it, as ``decide()`` says.

        None (nothing decided) unless the run is current, its failure not given up on, no
        restart is pending and the download is not cancelled: so a failure seen by many threads
        is decided once, and a cancelled download never gets a scheduled restart.
        """
        with self._lock:
            if (
                self._cancelled
                or self._restart_state is not RestartState.IDLE
                or self._gave_up is not None
                or self._run != run
            ):
                return None
            decision = decide()
            if decision.restart:
                self._steady = None
                self._restart_state = RestartState.SCHEDULED
            else:
                self._gave_up = decision.reason
            return decision

    def give_up(self, reason: str | None, *, replace: bool = False) -> None:
        """No restart will come of itself; ``reason`` says why (kept if one is there, unless
        ``replace``)."""
        with self._lock:
            if replace or self._gave_up is None:
                self._gave_up = reason

    def unschedule(self) -> bool:
        """Drop a scheduled restart (the client closes, or the scheduler refused it)."""
        with self._lock:
            if self._restart_state is not RestartState.SCHEDULED:
                return False
            self._restart_state = RestartState.IDLE
            return True

    def begin_scheduled_restart(self, run: int) -> bool:
        """A scheduled restart of run ``run`` comes due: True if it may run now.

        False if an explicit restart took it over, or its run is over (a SCHEDULED state then
        belongs to a newer job), or the download was cancelled (the schedule is dropped).
        """
        with self._lock:
            if self._restart_state is not RestartState.SCHEDULED or self._run != run:
                return False
            if self._cancelled:
                self._restart_state = RestartState.IDLE
                return False
            self._steady = None
            self._restart_state = RestartState.RESTARTING
            return True

    def begin_restart(self, run: int) -> bool:
        """An explicit restart of run ``run`` starts (taking over a scheduled one): False if the
        download is cancelled, that run is over, or a restart of it is running."""
        with self._lock:
            if self._cancelled or self._run != run or self._restart_state is RestartState.RESTARTING:
                return False
            self._steady = None
            self._restart_state = RestartState.RESTARTING
            return True

    def begin_recovery(self, run: int) -> bool:
        """Adding again run ``run``, which the daemon lost, starts: False if it is cancelled,
        finished, still being added, not current, or a restart of it is pending."""
        with self._lock:
            if (
                self._cancelled
                or self._outcome is not None
                or self._adding
                or self._run != run
                or self._restart_state is not RestartState.IDLE
            ):
                return False
            self._steady = None
            self._restart_state = RestartState.RESTARTING
            return True

    def next_run(self, counted: bool) -> tuple[int, int] | None:
        """``(restart number, next run)`` of the restart in flight; None if cancelled meanwhile."""
        with self._lock:
            self._check_restarting("plan the next run")
            if self._cancelled:
                return None
            return self._retry_count + (1 if counted else 0), self._run + 1

    def moved_to_run(self, retry_count: int, run: int) -> None:
        """The restart in flight ends the old run: the new one starts with no snapshot and no
        outcome. A future that already told the old outcome stays as it was; the next one
        asked for follows the new run."""
        with self._lock:
            self._check_restarting("move to a new run")
            if run <= self._run or retry_count < self._retry_count:
                raise IllegalTransition(f"download {self.gid} cannot go back to run {run}")
            self._steady = None
            self._retry_count = retry_count
            self._run = run
            self._gave_up = None
            self._last = None
            if self._outcome is not None:
                self._reopen()

    def rehomed(self, daemon_gid: str) -> None:
        """The download now lives under ``daemon_gid`` in the daemon (the old GIDs stay its)."""
        with self._lock:
            self._steady = None
            self._current_gid = daemon_gid
            if daemon_gid not in self._daemon_gids:
                self._daemon_gids += (daemon_gid,)

    def restart_done(self) -> None:
        """The restart in flight is over, whatever became of it."""
        with self._lock:
            self._restart_state = RestartState.IDLE

    def _check_restarting(self, what: str) -> None:
        if self._restart_state is not RestartState.RESTARTING:
            raise IllegalTransition(f"cannot {what} of download {self.gid} without a restart in flight")

    # -- transitions: cancelling ----------------------------------------------------------------

    def cancel(self, *, removing: bool = False, unless_finished: bool = False) -> bool:
        """Mark it cancelled: no restart may bring it back, a scheduled one is dropped.

        ``removing``: the caller sends the removal (the monitor must not send one of its own);
        ``unless_finished``: refuse (False) if it already has an outcome other than cancelled.
        """
        with self._lock:
            if unless_finished and self._outcome is not None and self._outcome is not Outcome.CANCELLED:
                return False
            self._steady = None
            self._cancelled = True
            if self._restart_state is RestartState.SCHEDULED:
                self._restart_state = RestartState.IDLE  # its job finds it cancelled and stops
            if removing:
                self._removal_queued = True
            return True

    def removal_sent(self) -> str:
        """The queued removal goes out now; returns the daemon GID to remove."""
        with self._lock:
            self._removal_queued = False
            return self._current_gid

    def uncancel(self) -> None:
        """An explicit restart revives a cancelled download."""
        with self._lock:
            self._cancelled = False

    def finish_cancelled(self) -> bool:
        """Give it the outcome CANCELLED, unless it has an outcome already."""
        with self._lock:
            if self._outcome is not None:
                return False
            self._finish(Outcome.CANCELLED)
            return True

    # -- transitions: futures -------------------------------------------------------------------

    def future_or_new(self, make: Callable[[], DownloadFuture]) -> tuple[DownloadFuture, bool]:
        """``(future, settle now)``: the record's future, a new one (``make()``) on first request
        or when the one there told an outcome the download has since left behind."""
        with self._lock:
            future = self._future
            if future is None or (future.done() and self._outcome is None):
                future = self._future = make()
                self._settled = None
                return future, self._outcome is not None
            return future, False

    def claim_settlement(self) -> tuple[DownloadFuture, Outcome, int] | None:
        """``(future, outcome, run)`` to resolve, once per outcome of a run; else None."""
        with self._lock:
            future, outcome, run = self._future, self._outcome, self._run
            if future is None or outcome is None or self._settled == (run, outcome):
                return None
            self._settled = (run, outcome)
            return future, outcome, run

    # -- the shared store -----------------------------------------------------------------------

    def take_shared(self, row: Row) -> bool | None:
        """Take in the stored row other processes wrote; True if that gave it an outcome.

        None when this process is ahead (the row is of an older run, or a restart is in flight
        here: its writes are on the way). A cancel is sticky until an explicit restart lifts it
        (in the store first); a download restarted by another process after it finished here is
        watched again.
        """
        with self._lock:
            if row["run"] < self._run or self.restart_pending:
                return None
            self._steady = None
            if row["current_gid"] != self._current_gid:
                self._daemon_gids = tuple(row["daemon_gids"])
                self.rehomed(row["current_gid"])
            moved_on = row["run"] > self._run
            self._run = row["run"]
            self._failed_run = row["failed_run"]
            self._retry_count = row["retry_count"]
            self._attempts = tuple(Attempt(**a) for a in row["attempts"])
            self._gave_up = row["gave_up"]
            self._cancelled = bool(row["cancelled"]) or (self._cancelled and not moved_on)
            if self._outcome is not None and moved_on:
                self._reopen()
                self._last = None
            if row["outcome"] is not None and self._outcome is None:
                if row["last"] is not None:
                    self._last = Progress.from_dict(row["last"])
                self._finish(Outcome(row["outcome"]))
                return True
            return False

    def restored(self, outcome: Outcome, age: float) -> None:
        """It had ``outcome`` ``age`` seconds ago, as a store says (a record just read from it)."""
        with self._lock:
            self._finish(outcome)
            self._finished_at = time.monotonic() - age

    # -- engine plumbing ------------------------------------------------------------------------

    def _share_lock(self, lock: threading.RLock) -> None:
        """Take ``lock`` as this record's lock (the ledger's, when the ledger keeps it).

        Called before any other thread can see the record.
        """
        self._lock = lock

    def _finish(self, outcome: Outcome) -> None:
        if self._outcome is not None:
            raise IllegalTransition(f"download {self.gid} already has the outcome {self._outcome.value}")
        self._steady = None
        self._outcome = outcome
        self._finished_at = time.monotonic()

    def _reopen(self) -> None:
        self._outcome = None
        self._finished_at = None
        self._settled = None
        if self._future is not None and self._future.done():
            self._future = None
