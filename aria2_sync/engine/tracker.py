"""From what the daemon says to what a download *is*: snapshot, failure, outcome, future.

Every status read of a download the client owns, whoever reads it (``get_progress``,
``get_batch_progress``, the monitor's tick), goes through :meth:`Tracker.observe`, so that the
rules live in one place:

* a failure is handed to the restart engine (which counts it once and may schedule a restart);
* a status read before a restart cannot overwrite the state of the run after it;
* a download gets an outcome (complete, failed, cancelled, rejected) exactly once per run, and
  its future, callbacks and batch counts follow from that outcome.

Futures are settled on one pool and callbacks run on another (see :class:`~aria2_sync.engine.workers.Pools`):
user code never runs on the monitor's thread or under a record's lock.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Callable

import attrs

from ..errors import (
    Aria2AuthError,
    Aria2Error,
    Aria2GIDNotFoundError,
    Aria2RPCError,
    DownloadFailed,
)
from ..logs import logger
from ..models import (
    STATUS_KEYS,
    TICK_KEYS,
    BatchProgress,
    FileInfo,
    Progress,
    UnreadableStatus,
    status_problem,
)
from ..rpc.methods import Aria2RPC
from .cancel import Cancellation
from .following import follow, result_of
from .futures import DownloadFuture, DownloadResult
from .ledger import Ledger
from .ownfiles import complete_file_on_disk, finished_file_on_disk
from .record import DownloadRecord, Outcome
from .restarts import RestartEngine
from .workers import Pools

__all__ = ["Tracker", "READ_SLICE"]

#: At most this many downloads are read per ``system.multicall``: the answers of one slice
#: (~110 KiB of JSON with the moving keys) are applied and dropped before the next is asked for.
READ_SLICE = 1000

# Tuples, and calls as tuples: the cyclic GC stops tracking a tuple of strings, and a read holds
# one call per download while its slice is in flight (with 50,000 records to traverse, every
# object a tick keeps alive brings the next full collection closer).
_TICK = TICK_KEYS
_TICK_UPLOADING = (*TICK_KEYS, "uploadSpeed", "seeder")
_FULL = STATUS_KEYS
_DICT = frozenset((dict,))


def _keys_for(last: Progress | None) -> tuple[str, ...]:
    """The keys to read of a download whose snapshot of the current run is ``last``.

    All of them when nothing is known of the run yet, while it runs without a known file
    name (aria2 names an HTTP download's file once the server answers), and while it fetches
    its metadata (``followedBy`` comes with the end of that: :mod:`aria2_sync.engine.chains`);
    else the moving ones, with ``uploadSpeed`` and ``seeder`` for a download that may upload
    (BitTorrent: files without URIs).
    """
    if last is None or last.status == "metadata" or (last.status == "active" and last.file_path is None):
        return _FULL
    if not last.files or not last.files[0].uris:
        return _TICK_UPLOADING
    return _TICK


#: Which count of a batch a download with an outcome is in.
_COUNTED_AS = {
    Outcome.COMPLETE: "completed",
    Outcome.FAILED: "failed",
    Outcome.REJECTED: "failed",
    Outcome.CANCELLED: "removed",
}
_PARKED_OR_ACTIVE = frozenset(("active", "waiting", "paused"))
_COUNTED = {"metadata": "active"}  # (a BitTorrent download fetching its metadata is active)


def _whole_file(record: DownloadRecord, path: str, size: int) -> Progress:
    """The snapshot of ``record`` complete with the file at ``path``, ``size`` bytes."""
    return Progress(
        gid=record.gid,
        status="complete",
        total_length=size,
        completed_length=size,
        dir=os.path.dirname(path),
        files=(FileInfo(path=path, length=size, completed_length=size),),
    )


def _fingerprint(status: Mapping[str, Any], run: int) -> tuple[object, ...]:
    """What a read of run ``run`` says that a snapshot shows, for ``record.unchanged``."""
    get = status.get
    return (
        run,
        get("status"),
        get("completedLength"),
        get("totalLength"),
        get("downloadSpeed"),
        get("connections"),
        get("errorCode"),
    )


class Tracker:
    """Applies status reads to the ledger's records and settles their outcomes."""

    def __init__(
        self,
        ledger: Ledger,
        restarts: RestartEngine,
        pools: Pools,
        auto_restart: Callable[[], bool],
        cancellation: Cancellation,
    ) -> None:
        self.ledger = ledger
        self.restarts = restarts
        self.pools = pools
        self._auto_restart = auto_restart
        self.cancellation = cancellation
        cancellation.attach(self)

    # -- observing ------------------------------------------------------------------------------

    def observe(
        self,
        record: DownloadRecord,
        status: Mapping[str, Any],
        run: int,
        auto: bool,
        known: Progress | None = None,
    ) -> Progress:
        """Apply a ``tellStatus`` answer about run ``run`` of ``record``; return the snapshot.

        An answer without ``dir``/``files`` (a read of :data:`~aria2_sync.models.TICK_KEYS`)
        keeps those of ``known``, the snapshot the read was planned with (the record's last
        one when not given).
        """
        fingerprint = _fingerprint(status, run)
        last = record.unchanged(fingerprint)
        if last is not None:
            return last
        return self._changed(record, status, run, auto, record.last if known is None else known, fingerprint)

    def _changed(
        self,
        record: DownloadRecord,
        status: Mapping[str, Any],
        run: int,
        auto: bool,
        known: Progress | None,
        fingerprint: tuple[object, ...],
    ) -> Progress:
        """:meth:`observe` of an answer that changes something (see ``record.unchanged``)."""
        progress = Progress.from_aria2(status, gid=record.gid, known=known)
        if record.source is not None or "followedBy" in status:
            progress = self._in_chain(record, status, run, progress)
        if progress.error_code == "13":
            progress = self._finished_before_a_crash(record, progress)
        if progress.status == "error":
            self.restarts.note_failure(record, progress, run, auto=auto)
        seen = record.observed(run, progress, fingerprint, self._auto_restart())
        if seen.notify:
            self.pools.callbacks.submit(lambda: self._report_progress(record))
        if seen.remove:
            self.pools.jobs.submit(lambda: self.cancellation.remove(record))
        if seen.outcome is not None:
            self.ledger.persist_outcome(record)
            self.settle(record)
        return seen.progress

    @staticmethod
    def _finished_before_a_crash(record: DownloadRecord, progress: Progress) -> Progress:
        """A "file exists" failure (error 13) of a file this download finished is its completion
        (:func:`~aria2_sync.engine.restarts.finished_file_on_disk` says when); else ``progress``."""
        path, last = finished_file_on_disk(record, progress), record.last
        if path is None or last is None:
            return progress
        if last.status != "complete":
            logger.info(
                "download GID %s: aria2 refused its file (error 13), but the file is whole on disk "
                "at the size it was seen downloading, with no control file (finished just before "
                "aria2c stopped, its session saved earlier): taken as complete, %s",
                record.gid,
                path,
            )
        return attrs.evolve(_whole_file(record, path, last.total_length), retry_count=progress.retry_count)

    def _in_chain(
        self, record: DownloadRecord, status: Mapping[str, Any], run: int, progress: Progress
    ) -> Progress:
        """The snapshot of a download whose payload comes under a GID of its own: a complete
        download followed by another moves the record there (:func:`follow`); until the
        payload runs, a ``.torrent`` being fetched shows as ``metadata``."""
        followers = status.get("followedBy")
        if followers and progress.status == "complete":
            return follow(self.ledger, record, run, followers, progress)
        if progress.status == "active" and record.awaiting_payload:
            return attrs.evolve(progress, status="metadata")
        return progress

    def read(
        self, rpc: Aria2RPC, records: list[DownloadRecord], auto: bool, *, collect: bool = True
    ) -> list[tuple[DownloadRecord, int, Progress | None]]:
        """Read ``records`` from the daemon and apply every answer, :data:`READ_SLICE` per request.

        Returns ``(record, run read, snapshot)`` for each (nothing with ``collect=False``: the
        monitor only applies); the snapshot is None for a download the daemon could not report
        (one it no longer has is handed to :meth:`vanished`). Raises :class:`Aria2AuthError`
        when the daemon refuses the secret (then every item says so, and nothing can be read),
        and :class:`Aria2ProtocolError` naming ``aria2.tellStatus`` when an answer is not
        shaped like a status (that answer and the ones after it are not applied).

        A slice's answers are applied and dropped before the next slice is asked for, so the
        memory a read needs is that of one slice's answer, however many downloads are read.
        """
        results: list[tuple[DownloadRecord, int, Progress | None]] = []
        for start in range(0, len(records), READ_SLICE):
            self._read_slice(rpc, records[start : start + READ_SLICE], auto, results if collect else None)
        return results

    def _read_slice(
        self,
        rpc: Aria2RPC,
        records: list[DownloadRecord],
        auto: bool,
        results: list[tuple[DownloadRecord, int, Progress | None]] | None,
    ) -> None:
        """One multicall for ``records``: the moving keys of downloads already known, every key
        of the others (see :func:`_keys_for`). A download whose status or size changed since
        its snapshot (complete, failed, started, or aria2 learnt its file from the server) may
        have a new file list: it is read again in full, in a second multicall, and applied
        after the others."""
        plans = [record.read_plan() for record in records]  # (no lock for a steady download)
        statuses = rpc.multicall([("aria2.tellStatus", (plan[0], _keys_for(plan[2]))) for plan in plans])
        self._check(rpc, statuses)
        moved: list[tuple[int, dict[str, Any]]] = []  # (index in plans, first answer)
        for n, (record, (daemon_gid, run, last, _), status) in enumerate(zip(records, plans, statuses)):
            if type(status) is not dict or last is None:
                self._apply(rpc, record, daemon_gid, run, last, status, auto, results)
                continue
            # The common case, inline: a moving-keys answer of a download already known.
            fingerprint = _fingerprint(status, run)
            progress = record.unchanged(fingerprint)
            if progress is None:
                if last.status != "metadata" and (  # (a metadata phase is read in full)
                    status.get("status") != last.status
                    or status.get("totalLength") != str(last.total_length)
                    or (last.status == "error" and last.error_code is None)
                    or ("seeder" in status and (status["seeder"] == "true") != last.seeding)
                ):
                    moved.append((n, status))  # read in full below: its file list and directory may be new
                    continue
                try:
                    progress = self._changed(record, status, run, auto, last, fingerprint)
                except UnreadableStatus as error:  # raised before anything of it is applied
                    raise rpc.unreadable("aria2.tellStatus", str(error)) from None
            if results is not None:
                results.append((record, run, progress))
        if not moved:
            return
        again = rpc.multicall([("aria2.tellStatus", (plans[n][0], _FULL)) for n, _ in moved])
        self._check(rpc, again)
        for (n, first), status in zip(moved, again):
            if type(status) is not dict and first.get("status") != "error":
                # The first answer stands, with the static keys as known; never for a failure,
                # which is judged by its own error code (the first answer has none).
                status = first
            daemon_gid, run, last, _ = plans[n]
            self._apply(rpc, records[n], daemon_gid, run, last, status, auto, results)

    def _apply(
        self,
        rpc: Aria2RPC,
        record: DownloadRecord,
        daemon_gid: str,
        run: int,
        last: Progress | None,
        status: Any,
        auto: bool,
        results: list[tuple[DownloadRecord, int, Progress | None]] | None,
    ) -> None:
        """Apply one answer of a read (see :meth:`read`)."""
        if type(status) is dict:
            try:
                progress: Progress | None = self.observe(record, status, run, auto, last)
            except UnreadableStatus as error:  # raised before anything of it is applied
                raise rpc.unreadable("aria2.tellStatus", str(error)) from None
        elif isinstance(status, Aria2GIDNotFoundError):
            self.vanished(record, run)
            progress = None
        else:
            logger.debug("could not read GID %s: %s", daemon_gid, status)
            progress = None
        if results is not None:
            results.append((record, run, progress))

    @staticmethod
    def _check(rpc: Aria2RPC, statuses: list[Any]) -> None:
        """Raise what makes ``statuses`` unusable as a whole: a refused secret, or an answer
        that is not a status (before any answer of them is applied)."""
        if set(map(type, statuses)) <= _DICT:  # (all of them statuses, checked at C speed)
            return
        denied = next((s for s in statuses if isinstance(s, Aria2AuthError)), None)
        if denied is not None:
            raise denied
        for status in statuses:
            if not isinstance(status, (dict, Aria2RPCError)):  # (the rest is checked when built)
                raise rpc.unreadable("aria2.tellStatus", status_problem(status) or "")

    def _report_progress(self, record: DownloadRecord) -> None:
        """Call ``on_progress`` with the latest snapshot (queued calls coalesce into one)."""
        progress, on_progress = record.progress_reported()
        if progress is not None and on_progress is not None:
            on_progress(progress)

    def vanished(self, record: DownloadRecord, run: int) -> None:
        """Run ``run`` of ``record`` is unknown to the daemon: recover it on a worker.

        Happens after a daemon restart without its session, when a restart lost its add, or
        when an add whose answer was lost never arrived. A file complete on disk is taken as the
        finished download; anything else is added again.
        """
        cancelled = record.vanished(run)
        if cancelled is None:
            return
        if cancelled:  # gone and not wanted: nothing to bring back
            self.ledger.persist_outcome(record)
            self.settle(record)
            return
        self.pools.jobs.submit(lambda: self._recover(record, run))

    def _recover(self, record: DownloadRecord, run: int) -> None:
        path = complete_file_on_disk(record)
        if path is not None:
            if not record.completed_on_disk(run, path, _whole_file(record, path, os.path.getsize(path))):
                return
            self.ledger.persist_outcome(record)
            self.settle(record)
            return
        try:
            self.restarts.recover(record, run)
        except Aria2Error as error:
            logger.warning("could not add download GID %s again: %s", record.gid, error)

    def annotate(self, record: DownloadRecord, progress: Progress) -> Progress:
        """The snapshot with the client's view added: the handle GID, restarts, reasons."""
        return record.annotate(progress)

    def reject(self, record: DownloadRecord, error: Exception) -> None:
        """Mark a download aria2 refused to add (it never existed in the daemon)."""
        record.rejected(error)
        self.ledger.persist_outcome(record)
        self.settle(record)

    # -- futures --------------------------------------------------------------------------------

    def future_for(self, record: DownloadRecord) -> DownloadFuture:
        """The record's future, made on first request and settled at once if already finished.

        A future that already told an outcome the download has since left behind (failed by
        an outage's grace period, or before an explicit restart) is replaced by a new one that
        follows the download as it is now.
        """
        future, settle_now = record.future_or_new(
            lambda: DownloadFuture(record.gid, self.cancellation.for_future)
        )
        if settle_now:
            self.settle(record)
        return future

    def settle(self, record: DownloadRecord) -> None:
        """Resolve the record's future from its outcome, once per outcome, on the settle pool.

        The value is taken and checked again when the job runs: an outcome the download has
        left meanwhile (it was restarted) is not reported.
        """
        claimed = record.claim_settlement()
        if claimed is None:
            return
        future, outcome, run = claimed

        def resolve() -> None:
            resolution = record.resolution(future, outcome, run, self._value_of)
            if resolution is None:
                return  # stale: the download moved on before this job ran
            value, on_done = resolution
            if outcome is Outcome.CANCELLED:
                future._settle_cancelled()
            elif isinstance(value, DownloadResult):
                future._settle_result(value)
            elif value is not None:
                future._settle_exception(value)
            if on_done is not None:
                self.pools.callbacks.submit(lambda: on_done(future))

        self.pools.settle.submit(resolve)

    def _value_of(self, record: DownloadRecord) -> DownloadResult | DownloadFailed | None:
        last = record.last
        attempts = tuple(a.to_dict() for a in record.attempts)
        if record.outcome is Outcome.COMPLETE and last is not None:
            return result_of(record, last, attempts)
        if record.outcome in (Outcome.FAILED, Outcome.REJECTED):
            reason = record.gave_up or "automatic restart is off"
            return DownloadFailed.of(
                record.gid,
                record.url,
                last.error_code if last else None,
                last.error_message if last else None,
                reason,
                attempts,
                retry_count=record.retry_count,
                options=record.options,
            )
        return None

    # -- batches --------------------------------------------------------------------------------

    def batch_progress(
        self, batch_id: str | None, records: list[tuple[DownloadRecord, Progress]]
    ) -> BatchProgress:
        """Count a batch's downloads by what they are, not just by aria2's status word."""
        counts = dict.fromkeys(
            ("completed", "failed", "active", "waiting", "paused", "retrying", "removed"), 0
        )
        unresolved = 0
        for record, progress in records:
            outcome, pending = record.standing()
            if outcome is not None:
                key = _COUNTED_AS[outcome]
                unresolved += pending
            else:
                unresolved += 1  # (a pending restart or not: no outcome yet)
                status = progress.status
                if pending or status == "error":
                    key = "retrying"
                elif status in _PARKED_OR_ACTIVE or status in _COUNTED:
                    key = _COUNTED.get(status, status)
                else:
                    key = "waiting"  # added, not yet seen by the daemon's status
            counts[key] += 1
        return BatchProgress(
            batch_id=batch_id,
            downloads=tuple(progress for _, progress in records),
            completed_count=counts["completed"],
            failed_count=counts["failed"],
            active_count=counts["active"],
            waiting_count=counts["waiting"],
            paused_count=counts["paused"],
            retrying_count=counts["retrying"],
            removed_count=counts["removed"],
            is_completed=unresolved == 0,
        )
