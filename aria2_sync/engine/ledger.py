"""Bookkeeping of the logical downloads a client added.

A *logical download* is what the caller holds a GID for. Behind it, the daemon-side download may
be replaced (a restart that had to take a new GID); the ledger keeps the caller's GID as the
handle, remembers every daemon-side GID it had, and keeps what is needed to add it again: URIs,
options, attempt history. Counters belong here, to the logical download, never to a daemon GID.

Thread-safe: one lock guards the maps, and the records kept share it (their transitions take
it); nobody outside the engine takes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..state.base import Store


from ..errors import Aria2StateError
from ..logs import logger
from .batches import BATCH_GRACE_SECONDS, MAX_BATCH_SUMMARIES, Batch, BatchSummary, summarize
from .record import DownloadRecord
from .states import Attempt
from .storesync import new_row, outcome_fields, record_from_row

__all__ = ["Batch", "BatchSummary", "Ledger", "STORE_REST"]

#: Seconds after a store failure during which reads of other processes' changes are not tried.
STORE_REST = 2.0


class Ledger:
    """The logical downloads of one client, by handle GID and by every daemon GID they had.

    Bounded: :meth:`prune` forgets finished downloads (and batches whose downloads are all
    finished) beyond ``keep_finished`` of them or older than ``keep_seconds``. It runs on every
    monitor tick, at most once a second from API calls, and as soon as more than
    ``keep_finished`` finished downloads are kept (:meth:`persist_outcome` counts them), so
    ``keep_finished`` is a hard bound on the finished downloads kept. A batch still running
    keeps all its downloads (its futures and counts need them), so only a running batch larger
    than the bound can exceed it; a finished batch forgotten by the count rule leaves a
    :class:`BatchSummary` for a minute.

    With a :class:`~aria2_sync.state.base.Store`, the ledger is this process's working set of a
    shared state: changes are written through (``persist``), unknown GIDs and batches are
    looked up there, restarts are claimed there, and ``refresh`` brings in what other
    processes changed. Without one, the ``persist``/``claim`` family does nothing.
    """

    #: How long a claimed restart is reserved for its process (a process dying mid-restart
    #: blocks nobody for longer than this).
    LEASE_SECONDS = 60.0

    def __init__(
        self,
        keep_finished: int = 1000,
        keep_seconds: float | None = 3600.0,
        store: Store | None = None,
    ) -> None:
        self.store = store
        #: Guards the maps, and the records kept (they share it): private to the engine.
        self._lock = threading.RLock()
        self.keep_finished = keep_finished
        self.keep_seconds = keep_seconds
        self._records: dict[str, DownloadRecord] = {}
        #: Daemon GIDs other than the handle (a restart's new GID) -> the handle.
        self._by_daemon_gid: dict[str, str] = {}
        self._batches: OrderedDict[str, Batch] = OrderedDict()
        self._summaries: OrderedDict[str, BatchSummary] = OrderedDict()
        self._last_prune = 0.0
        #: Finished downloads kept, as far as :meth:`note_finished` knows between prunes, and
        #: the count past which it prunes.
        self._finished_hint = 0
        self._prune_at = keep_finished
        self._store_failing = False
        #: While the store fails: when reads of other processes' changes may try it again.
        self._store_rest_until = 0.0
        #: Told ``(daemon GID, daemon)`` for every stored download another process (or this
        #: one) moved to another daemon of a pool, at each :meth:`refresh`; None without a pool.
        self.on_home: Callable[[str, str], None] | None = None
        #: Told the daemon GIDs of every record forgotten (a pool forgets where they lived).
        self.on_forget: Callable[[list[str]], None] | None = None

    def add(self, record: DownloadRecord) -> None:
        if self.store is not None:
            self.store.add([new_row(record)])
        self._keep(record)

    def _keep(self, record: DownloadRecord) -> None:
        with self._lock:
            record._share_lock(self._lock)
            gid = record.gid
            self._records[gid] = record
            for daemon_gid in (record.current_gid, *record.daemon_gids):
                if daemon_gid != gid:  # (a handle is found in _records itself)
                    self._by_daemon_gid[daemon_gid] = gid

    def add_batch(self, batch: Batch, records: list[DownloadRecord]) -> None:
        if self.store is not None:
            self.store.add([new_row(r) for r in records], (batch.batch_id, list(batch.gids)))
        lock, kept = self._lock, self._records
        with lock:
            for record in records:
                if record.daemon_gids or record.current_gid != record.gid:
                    self._keep(record)
                else:  # (the common case, _keep in short: a new download under its handle)
                    record._share_lock(lock)
                    kept[record.gid] = record
            self._batches[batch.batch_id] = batch

    def has_batch(self, batch_id: str) -> bool:
        with self._lock:
            if batch_id in self._batches or self.batch_summary(batch_id) is not None:
                return True
        return self.store is not None and self.store.batch(batch_id) is not None

    def batch_records(self, batch_id: str, local_only: bool = False) -> list[DownloadRecord] | None:
        """The records of a batch in its order, or None for an unknown (or forgotten) batch.

        ``local_only``: from memory alone, without asking the store.
        """
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is not None:
                return [self._records[gid] for gid in batch.gids if gid in self._records]
        if self.store is None or local_only:
            return None
        rows = self.store.batch(batch_id)
        if rows is None:
            return None
        with self._lock:  # first seen here: another process (or an earlier life) added it
            records = [self._records.get(row["gid"]) or record_from_row(row) for row in rows]
            for record in records:
                if record.gid not in self._records:
                    self._keep(record)
            self._batches[batch_id] = Batch(batch_id, [r.gid for r in records])
            return records

    def batch_summary(self, batch_id: str) -> BatchSummary | None:
        """The counts of a finished batch whose downloads were forgotten lately, else None."""
        with self._lock:
            summary = self._summaries.get(batch_id)
            if summary is not None and time.monotonic() - summary.done_at > BATCH_GRACE_SECONDS:
                del self._summaries[batch_id]
                return None
            return summary

    # -- the shared store -----------------------------------------------------------------------

    def persist(self, record: DownloadRecord, **fields: Any) -> None:
        """Write ``fields`` of ``record`` through to the store (JSON-able values)."""
        if self.store is not None:
            self.store.update(record.gid, **fields)

    def persist_outcome(self, record: DownloadRecord) -> None:
        """Write a new outcome through; then keep the retention's bound (:meth:`note_finished`).

        A store that cannot be written is logged, not raised: the outcome must still resolve
        the download's future in this process.
        """
        if self.store is not None:
            try:
                self.store.update(record.gid, **outcome_fields(record))
            except Aria2StateError as error:
                # The outcome stands in this process (its future must still be resolved);
                # other processes read it from the daemon themselves.
                self._store_trouble(f"write the outcome of download {record.gid}", error)
        self.note_finished(record)

    def note_finished(self, record: DownloadRecord) -> None:
        """Count a download that got an outcome; prune at once past ``keep_finished``.

        The count is an estimate kept between prunes (each prune sets it right), so that the
        bound holds between monitor ticks without a scan of every record per outcome. A prune
        started here forgets down to 90% of the bound, and when running batches alone hold
        more finished downloads than the bound (they cannot be forgotten yet), the next one
        waits for another tenth of it: a busy process does not scan its records per outcome.
        """
        if not record.finished:
            return
        with self._lock:
            self._finished_hint += 1
            over = self._finished_hint > self._prune_at
        if over:
            self.prune(low_water=True)

    def record_failure(self, record: DownloadRecord, run: int, attempt: Attempt) -> None:
        """Share a failure; afterwards ``record.attempts`` is the shared history."""
        if self.store is None:
            return
        attempts = self.store.record_failure(record.gid, run, attempt.to_dict())
        record.shared_attempts([Attempt(**a) for a in attempts])

    def claim(self, record: DownloadRecord, run: int) -> bool:
        """Reserve the restart of run ``run`` for this process; False if another has it."""
        return self.store is None or self.store.claim_restart(record.gid, run, self.LEASE_SECONDS)

    def release(self, *records: DownloadRecord) -> None:
        """End this process's leases on ``records`` (their add is confirmed, or a restart done)."""
        if self.store is not None and records:
            self.store.release([r.gid for r in records])

    def refresh(self, records: list[DownloadRecord]) -> list[DownloadRecord]:
        """Bring in what other processes changed; returns the records that got an outcome."""
        if self.store is None or not records or self._store_resting():
            return []
        try:
            rows = self.store.rows([r.gid for r in records])
        except Aria2StateError as error:
            self._store_trouble("read what other processes changed", error)
            return []  # this process goes on with what it knows
        self._store_ok()
        settled = []
        homes: list[tuple[str, str]] = []
        with self._lock:
            for record in records:
                row = rows.get(record.gid)
                if row is None:
                    continue  # not stored
                gid_before = record.current_gid
                outcome = record.take_shared(row)
                if record.current_gid != gid_before and record.current_gid != record.gid:
                    self._by_daemon_gid[record.current_gid] = record.gid
                if outcome:
                    settled.append(record)
                if row.get("daemon") and self.on_home is not None:
                    homes.append((record.current_gid, str(row["daemon"])))
        for record in settled:
            self.note_finished(record)
        for gid, daemon in homes:  # (outside the lock: a pool takes its own)
            assert self.on_home is not None
            self.on_home(gid, daemon)
        return settled

    def _store_resting(self) -> bool:
        """Whether reads of other processes' changes leave the store alone for now: for
        :data:`STORE_REST` seconds after it failed, so that a store that cannot be reached (a
        host that drops packets: each read waits out its timeouts) holds up one tick or call
        in a while, not every one; what this process knows carries on meanwhile."""
        return self._store_failing and time.monotonic() < self._store_rest_until

    def _store_trouble(self, action: str, error: Aria2StateError) -> None:
        """Log a store that cannot be read once (WARNING), then quietly until it works again."""
        with self._lock:
            first, self._store_failing = not self._store_failing, True
            self._store_rest_until = time.monotonic() + STORE_REST
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "could not %s (%s); downloads are still watched in this process's memory",
            action,
            error,
        )

    def _store_ok(self) -> None:
        if self._store_failing:
            with self._lock:
                self._store_failing = False
            logger.warning("the shared state (state=) can be used again")

    def adopt_unfinished(self) -> int:
        """Watch the store's unfinished downloads: new ones, and finished ones restarted since."""
        if self.store is None:
            return 0
        try:  # (the GIDs first: the rows of downloads watched and unfinished here are not read)
            gids = self.store.unfinished_gids()
            with self._lock:
                wanted = [g for g in gids if g not in self._records or self._records[g].finished]
            rows = self.store.rows(wanted) if wanted else {}
        except Aria2StateError as error:
            self._store_trouble("look for downloads other processes left unfinished", error)
            return 0
        self._store_ok()
        unfinished = [rows[g] for g in wanted if g in rows and rows[g].get("outcome") is None]  # (in order)
        with self._lock:
            fresh = [record_from_row(row) for row in unfinished if row["gid"] not in self._records]
            for record in fresh:
                self._keep(record)
            stale = [
                self._records[row["gid"]]
                for row in unfinished
                if row["gid"] in self._records and self._records[row["gid"]].finished
            ]
        self.refresh(stale)
        return len(fresh)

    def unfinished(self) -> list[DownloadRecord]:
        with self._lock:
            return [r for r in self._records.values() if r.outcome is None]

    def prune_if_due(self, interval: float = 1.0) -> None:
        """:meth:`prune` at most once per ``interval`` seconds (cheap to call on every API call)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last_prune < interval:
                return
            self._last_prune = now
        self.prune(now)

    def prune(self, now: float | None = None, low_water: bool = False, all_finished: bool = False) -> int:
        """Forget finished downloads and batches past the retention; returns how many records.

        A download in a batch is forgotten with its batch, once every download of the batch has
        finished, so that a batch never reports on a partial membership. The count rule is a
        hard bound on all finished downloads kept (``keep_finished``; with ``low_water``, 90%
        of it), those of running batches included, which only running batches larger than the
        bound can exceed: a finished batch it forgets within :data:`BATCH_GRACE_SECONDS` of its
        end leaves its counts (:meth:`batch_summary`). ``all_finished``: everything that may go,
        goes (``Aria2Client.purge``).
        """
        now = time.monotonic() if now is None else now
        limit = self.keep_finished - (self.keep_finished // 10 if low_water else 0)
        with self._lock:
            units = self._finished_units()
            # Finished downloads of batches still running count too, but cannot go yet.
            finished_total = sum(record.finished for record in self._records.values())
            forgotten = 0
            gone_gids: list[str] = []
            gone_batches: list[str] = []
            runs: dict[str, int] = {}
            for done_at, batch_id, gids in units:
                too_many = finished_total - forgotten > limit
                expired = self.keep_seconds is not None and now - done_at > self.keep_seconds
                too_old = all_finished or expired
                if not (too_many or too_old):
                    continue
                if batch_id is not None and not too_old and now - done_at <= BATCH_GRACE_SECONDS:
                    # Someone may still be polling it: keep its counts, not its records.
                    records = [self._records[gid] for gid in gids]
                    self._summaries[batch_id] = summarize(batch_id, records, done_at)
                for gid in gids:
                    # (for the store: delete a row only if it is still finished at this run)
                    runs[gid] = self._records[gid].run
                    self._forget(gid)
                forgotten += len(gids)
                gone_gids.extend(gids)
                if batch_id is not None:
                    self._batches.pop(batch_id, None)
                    gone_batches.append(batch_id)
            self._finished_hint = finished_total - forgotten
            self._prune_at = max(self.keep_finished, self._finished_hint + max(1, self.keep_finished // 10))
            self._prune_summaries(now)
        if self.store is not None and (gone_gids or gone_batches):
            self.store.forget(gone_gids, gone_batches, runs=runs)
        return forgotten

    def _finished_units(self) -> list[tuple[float, str | None, list[str]]]:
        """``(finished_at, batch_id or None, gids)`` of what may be forgotten, oldest first
        (under the lock)."""
        in_batch: set[str] = set()
        units: list[tuple[float, str | None, list[str]]] = []
        for batch in self._batches.values():
            in_batch.update(batch.gids)
            members = [self._records[g] for g in batch.gids if g in self._records]
            if all(r.finished and not r.restart_pending for r in members):
                done_at = max((r.finished_at or 0.0 for r in members), default=batch.created_at)
                units.append((done_at, batch.batch_id, [r.gid for r in members]))
        for record in self._records.values():
            if record.finished and not record.restart_pending and record.gid not in in_batch:
                units.append((record.finished_at or 0.0, None, [record.gid]))
        units.sort(key=lambda unit: unit[0])
        return units

    def _prune_summaries(self, now: float) -> None:
        """Drop batch summaries past their minute, and the oldest past the cap (under the lock)."""
        for batch_id, summary in list(self._summaries.items()):
            if now - summary.done_at > BATCH_GRACE_SECONDS:
                del self._summaries[batch_id]
        while len(self._summaries) > MAX_BATCH_SUMMARIES:
            self._summaries.popitem(last=False)

    def forget_batch(self, batch_id: str) -> None:
        """Drop a batch and its records now (adds that certainly did not happen)."""
        with self._lock:
            batch = self._batches.pop(batch_id, None)
            self._summaries.pop(batch_id, None)
            gids = list(batch.gids) if batch else []
            for gid in gids:
                self._forget(gid)
        if self.store is not None:
            self.store.forget(gids, [batch_id])

    def forget(self, gid: str) -> None:
        """Drop one record now (an add that certainly did not happen)."""
        with self._lock:
            self._forget(gid)
        if self.store is not None:
            self.store.forget([gid])

    def _forget(self, gid: str) -> None:
        record = self._records.pop(gid, None)
        if record is None:
            return
        daemon_gids = [record.gid, *record.daemon_gids]
        for daemon_gid in daemon_gids:
            self._by_daemon_gid.pop(daemon_gid, None)
        if self.on_forget is not None:
            self.on_forget(daemon_gids)

    def get_local(self, gid: str) -> DownloadRecord | None:
        """The record for a GID from memory alone (without asking the store)."""
        with self._lock:
            record = self._records.get(gid)
            if record is None:
                handle = self._by_daemon_gid.get(gid)
                record = self._records.get(handle) if handle else None
            return record

    def get(self, gid: str) -> DownloadRecord | None:
        """The record for a handle GID or for any daemon GID it ever had."""
        with self._lock:
            record = self._records.get(gid)
            if record is None:
                handle = self._by_daemon_gid.get(gid)
                record = self._records.get(handle) if handle else None
            if record is not None or self.store is None:
                return record
        row = self.store.find(gid)
        if row is None:
            return None
        with self._lock:
            record = self._records.get(row["gid"])
            if record is None:
                record = record_from_row(row)
                self._keep(record)
            return record

    def named(self, gids: Iterable[str]) -> list[DownloadRecord]:
        """The unfinished records that ``gids`` name (handles or daemon GIDs, looked up in the
        store for those this process has not seen); a store that cannot be read names none."""
        found: dict[str, DownloadRecord] = {}
        for gid in gids:
            try:
                record = self.get_local(gid) if self._store_resting() else self.get(gid)
            except Aria2StateError as error:
                self._store_trouble("look up the downloads aria2 reported events for", error)
                return list(found.values())
            if record is not None and not record.finished:
                found[record.gid] = record
        return list(found.values())

    def rebind(self, record: DownloadRecord, daemon_gid: str, persist: bool = True) -> None:
        """Point ``record`` at a new daemon-side GID; the old one keeps resolving to it."""
        with self._lock:
            record.rehomed(daemon_gid)
            if daemon_gid != record.gid:
                self._by_daemon_gid[daemon_gid] = record.gid
        if persist:
            self.persist(record, current_gid=daemon_gid, daemon_gids=list(record.daemon_gids))

    def __iter__(self) -> Iterator[DownloadRecord]:
        with self._lock:
            return iter(list(self._records.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
