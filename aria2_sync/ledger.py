"""Bookkeeping of the logical downloads a client added.

A *logical download* is what the caller holds a GID for. Behind it, the daemon-side download may
be replaced (a restart that had to take a new GID); the ledger keeps the caller's GID as the
handle, remembers every daemon-side GID it had, and keeps what is needed to add it again: URIs,
options, attempt history. Counters belong here, to the logical download, never to a daemon GID.

Thread-safe: one lock guards the maps; a record's mutable fields are changed only under it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .futures import DownloadFuture

import attrs

from .models import Progress

__all__ = [
    "Attempt",
    "Batch",
    "Callbacks",
    "DownloadRecord",
    "Ledger",
    "IDLE",
    "SCHEDULED",
    "RESTARTING",
    "COMPLETE",
    "FAILED",
    "CANCELLED",
    "REJECTED",
]


@attrs.frozen
class Attempt:
    """One failed run of a download: when it failed, how, and how far it had got."""

    time: float
    error_code: Optional[str]
    error_message: Optional[str]
    completed_length: int
    gid: str

    def to_dict(self) -> Dict[str, Any]:
        return attrs.asdict(self)


#: Restart states of a record: nothing going on, a restart waiting out its backoff, one running.
IDLE, SCHEDULED, RESTARTING = "idle", "scheduled", "restarting"

#: Final outcomes of a logical download. A record without one is still being watched.
COMPLETE, FAILED, CANCELLED, REJECTED = "complete", "failed", "cancelled", "rejected"


@attrs.frozen
class Callbacks:
    """Functions a UI attaches to one download; each is called on the client's worker pool.

    ``on_progress(progress)`` when a watched download's snapshot changes, ``on_restart(progress)``
    when a restart of it is issued, ``on_done(future)`` once it has an outcome.
    """

    on_progress: Optional[Callable[[Progress], Any]] = None
    on_restart: Optional[Callable[[Progress], Any]] = None
    on_done: Optional[Callable[["DownloadFuture"], Any]] = None


@attrs.define(eq=False)
class DownloadRecord:
    """Mutable state of one logical download (guarded by the ledger's lock).

    ``run`` numbers the daemon-side runs of the download (0 for the first add, +1 per restart);
    ``failed_run`` is the last run whose failure was recorded, so that one failure seen by many
    pollers is counted once. ``gave_up`` says why a failure of the current run will not be
    restarted (None while it may be).
    """

    gid: str
    uris: List[str]
    options: Dict[str, Any]
    current_gid: str
    batch_id: Optional[str] = None
    added_at: float = attrs.field(factory=time.time)
    attempts: List[Attempt] = attrs.field(factory=list)
    retry_count: int = 0
    last: Optional[Progress] = None
    run: int = 0
    failed_run: int = -1
    restart_state: str = IDLE
    gave_up: Optional[str] = None
    cancelled: bool = False
    outcome: Optional[str] = None
    finished_at: Optional[float] = None
    rejected_error: Optional[Exception] = None
    future: Optional["DownloadFuture"] = None
    callbacks: Callbacks = attrs.field(factory=Callbacks)
    daemon_gids: List[str] = attrs.field(factory=list)
    #: True while the add that creates this download is in flight: until it returns, the
    #: daemon not knowing the GID means "not yet", not "lost".
    adding: bool = False
    #: (run, outcome) whose future resolution was queued, so one outcome settles once.
    settled: Optional[tuple] = None
    progress_callback_queued: bool = False
    removal_queued: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.finished_at = time.monotonic()

    def reopen(self) -> None:
        """Back to watched: a finished (failed or cancelled) download was restarted.

        A future that already told its outcome stays as it was; the next one asked for
        (``Aria2Client.future``) follows the new run.
        """
        self.outcome = None
        self.finished_at = None
        self.settled = None
        if self.future is not None and self.future.done():
            self.future = None

    @property
    def failure_recorded(self) -> bool:
        return self.failed_run == self.run

    @property
    def restart_pending(self) -> bool:
        return self.restart_state != IDLE

    @property
    def url(self) -> str:
        return self.uris[0]


#: How long a finished batch is safe from the count rule of the retention.
BATCH_GRACE_SECONDS = 60.0


@attrs.define(eq=False)
class Batch:
    """A named group of downloads, in the order they were given."""

    batch_id: str
    gids: List[str]
    created_at: float = attrs.field(factory=time.monotonic)


class Ledger:
    """The logical downloads of one client, by handle GID and by every daemon GID they had.

    Bounded: :meth:`prune` forgets finished downloads (and batches whose downloads are all
    finished) beyond ``keep_finished`` of them or older than ``keep_seconds``.
    """

    def __init__(self, keep_finished: int = 1000, keep_seconds: Optional[float] = 3600.0) -> None:
        self.lock = threading.RLock()
        self.keep_finished = keep_finished
        self.keep_seconds = keep_seconds
        self._records: Dict[str, DownloadRecord] = {}
        self._by_daemon_gid: Dict[str, str] = {}
        self._batches: "OrderedDict[str, Batch]" = OrderedDict()
        self._last_prune = 0.0

    def add(self, record: DownloadRecord) -> None:
        with self.lock:
            self._records[record.gid] = record
            self._by_daemon_gid[record.current_gid] = record.gid

    def add_batch(self, batch: Batch, records: List[DownloadRecord]) -> None:
        with self.lock:
            for record in records:
                self.add(record)
            self._batches[batch.batch_id] = batch

    def has_batch(self, batch_id: str) -> bool:
        with self.lock:
            return batch_id in self._batches

    def batch_records(self, batch_id: str) -> Optional[List[DownloadRecord]]:
        """The records of a batch in its order, or None for an unknown (or forgotten) batch."""
        with self.lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            return [self._records[gid] for gid in batch.gids if gid in self._records]

    def unfinished(self) -> List[DownloadRecord]:
        with self.lock:
            return [r for r in self._records.values() if r.outcome is None]

    def prune_if_due(self, interval: float = 1.0) -> None:
        """:meth:`prune` at most once per ``interval`` seconds (cheap to call on every API call)."""
        now = time.monotonic()
        with self.lock:
            if now - self._last_prune < interval:
                return
            self._last_prune = now
        self.prune(now)

    def prune(self, now: Optional[float] = None) -> int:
        """Forget finished downloads and batches past the retention; returns how many records.

        A download in a batch is forgotten with its batch, once every download of the batch has
        finished, so that a batch never reports on a partial membership.
        """
        now = time.monotonic() if now is None else now
        with self.lock:
            in_batch = {}
            for batch in self._batches.values():
                for gid in batch.gids:
                    in_batch[gid] = batch.batch_id
            units: List[tuple] = []  # (finished_at, batch_id or None, [gids])
            for batch in self._batches.values():
                members = [self._records[g] for g in batch.gids if g in self._records]
                if all(r.finished and not r.restart_pending for r in members):
                    done_at = max((r.finished_at or 0.0 for r in members), default=batch.created_at)
                    units.append((done_at, batch.batch_id, [r.gid for r in members]))
            for record in self._records.values():
                if record.finished and not record.restart_pending and record.gid not in in_batch:
                    units.append((record.finished_at or 0.0, None, [record.gid]))
            units.sort(key=lambda unit: unit[0])
            finished_total = sum(len(unit[2]) for unit in units)
            forgotten = 0
            for done_at, batch_id, gids in units:
                # A batch someone may still be polling is not dropped by the count rule the
                # moment it completes (a batch larger than keep_finished would be, at once).
                recent_batch = batch_id is not None and now - done_at < BATCH_GRACE_SECONDS
                too_many = finished_total - forgotten > self.keep_finished and not recent_batch
                too_old = self.keep_seconds is not None and now - done_at > self.keep_seconds
                if not (too_many or too_old):
                    continue
                for gid in gids:
                    self._forget(gid)
                forgotten += len(gids)
                if batch_id is not None:
                    self._batches.pop(batch_id, None)
            return forgotten

    def forget_batch(self, batch_id: str) -> None:
        """Drop a batch and its records now (adds that certainly did not happen)."""
        with self.lock:
            batch = self._batches.pop(batch_id, None)
            for gid in batch.gids if batch else ():
                self._forget(gid)

    def forget(self, gid: str) -> None:
        """Drop one record now (an add that certainly did not happen)."""
        with self.lock:
            self._forget(gid)

    def _forget(self, gid: str) -> None:
        record = self._records.pop(gid, None)
        if record is None:
            return
        for daemon_gid in [record.gid, *record.daemon_gids]:
            self._by_daemon_gid.pop(daemon_gid, None)

    def get(self, gid: str) -> Optional[DownloadRecord]:
        """The record for a handle GID or for any daemon GID it ever had."""
        with self.lock:
            record = self._records.get(gid)
            if record is None:
                handle = self._by_daemon_gid.get(gid)
                record = self._records.get(handle) if handle else None
            return record

    def rebind(self, record: DownloadRecord, daemon_gid: str) -> None:
        """Point ``record`` at a new daemon-side GID; the old one keeps resolving to it."""
        with self.lock:
            record.current_gid = daemon_gid
            self._by_daemon_gid[daemon_gid] = record.gid
            record.daemon_gids.append(daemon_gid)

    def __iter__(self) -> Iterator[DownloadRecord]:
        with self.lock:
            return iter(list(self._records.values()))

    def __len__(self) -> int:
        with self.lock:
            return len(self._records)
