"""What the client's reading, waiting and restarting calls do, on one engine.

``Aria2Client`` checks the arguments of ``get_progress``, ``get_batch_progress``, ``future``,
``batch_futures``, ``wait_for_batch``, ``get_retry_info``, ``restart_download`` and
``restart_all_failed_downloads`` and hands over to
:class:`Operations`, which reads the daemon (one round trip per call, whatever the number of
downloads), hands every answer to the tracker, and asks the restart engine.
"""

from __future__ import annotations

import concurrent.futures
import copy
from typing import TYPE_CHECKING, Any, TypedDict

from ..errors import Aria2ClosedError, Aria2GIDNotFoundError, Aria2InputError, Aria2UnknownBatchError
from ..models import STATUS_KEYS, BatchProgress, Progress
from .record import DownloadRecord

if TYPE_CHECKING:  # pragma: no cover
    from .core import Engine
    from .futures import DownloadFuture

__all__ = ["Operations", "RetryInfo"]


class RetryInfo(TypedDict):
    """What :meth:`Aria2Client.get_retry_info` returns (a plain dict)."""

    gid: str
    retry_count: int
    max_retries: int
    can_retry: bool
    url: str
    uris: list[str]
    options: dict[str, Any]
    current_gid: str
    restart_pending: bool
    gave_up_reason: str | None
    attempts: list[dict[str, Any]]


class Operations:
    """The reading and restarting calls of one engine (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rpc = engine.rpc
        self.ledger = engine.ledger
        self.tracker = engine.tracker

    # -- reading --------------------------------------------------------------------------------

    def progress(self, gid: str, auto: bool) -> Progress | None:
        """A snapshot of ``gid`` (a checked GID), acted on as ``Aria2Client.get_progress`` says."""
        self.ledger.prune_if_due()
        record = self.ledger.get(gid)
        if record is None:
            try:
                return Progress.from_aria2(self.rpc.tell_status(gid, STATUS_KEYS), gid=gid)
            except Aria2GIDNotFoundError:
                return None
        self.engine.refresh([record])
        daemon_gid, run = record.where()
        try:
            status = self.rpc.tell_status(daemon_gid, STATUS_KEYS)
        except Aria2GIDNotFoundError:
            self.tracker.vanished(record, run)
            return record.last_known()
        return self.tracker.observe(record, status, run, auto)

    def batch_progress(self, batch_id: str) -> BatchProgress | None:
        """Where a batch stands (None if unknown; its counts alone if lately forgotten)."""
        self.ledger.prune_if_due()
        records = self.ledger.batch_records(batch_id)
        if records is None:
            summary = self.ledger.batch_summary(batch_id)
            return summary.progress() if summary is not None else None
        return self.group_progress(batch_id, records)

    def group_progress(self, batch_id: str | None, records: list[DownloadRecord]) -> BatchProgress:
        """Read the unfinished ones of ``records`` in one round trip and count them all."""
        self.engine.refresh([r for r in records if not r.finished])
        live = [r for r in records if not r.finished]
        fresh = {
            record.gid: progress
            for record, _, progress in self.tracker.read(self.rpc, live, self.engine.auto_restart())
            if progress is not None
        }
        pairs = [(record, fresh.get(record.gid) or record.last_known()) for record in records]
        return self.tracker.batch_progress(batch_id, pairs)

    def known_batch_progress(self, batch_id: str) -> BatchProgress | None:
        """A batch's progress from memory alone (a closed client asks nothing of the daemon)."""
        records = self.ledger.batch_records(batch_id, local_only=True)
        if records is None:
            summary = self.ledger.batch_summary(batch_id)
            return summary.progress() if summary is not None else None
        return self.tracker.batch_progress(batch_id, [(r, r.last_known()) for r in records])

    # -- futures --------------------------------------------------------------------------------

    def future(self, gid: str) -> DownloadFuture:
        """The future of download ``gid`` (see ``Aria2Client.future``)."""
        if self.engine.closed:
            record = self.ledger.get_local(gid)
            if record is None:
                raise Aria2ClosedError(f"this client is closed: it can no longer look up GID {gid}")
            return self.engine.future_of(record)
        record = self.ledger.get(gid)
        if record is None:
            raise Aria2InputError(f"GID {gid} was not added by this client (or was forgotten)")
        self.engine.watch()
        return self.engine.future_of(record)

    def batch_futures(self, batch_id: str) -> list[DownloadFuture]:
        """The futures of a batch's downloads, in its order (see ``Aria2Client.batch_futures``)."""
        if self.engine.closed:
            records = self.ledger.batch_records(batch_id, local_only=True)
            if records is None:
                raise Aria2ClosedError(f"this client is closed: it can no longer look up batch {batch_id!r}")
        else:
            records = self.ledger.batch_records(batch_id)
            if records is None:
                raise Aria2UnknownBatchError(batch_id)
            self.engine.watch()
        return [self.engine.future_of(record) for record in records]

    def wait_for_batch(self, batch_id: str, timeout: float | None) -> BatchProgress | None:
        """Wait on the batch's futures (nothing polls), then tell where it stands."""
        if not self.engine.closed and self.ledger.batch_summary(batch_id) is not None:
            return self.batch_progress(batch_id)  # finished, and only its counts are left
        futures = self.batch_futures(batch_id)
        concurrent.futures.wait(futures, timeout=timeout)
        if self.engine.closed:
            return self.known_batch_progress(batch_id)
        return self.batch_progress(batch_id)

    def retry_info(self, record: DownloadRecord) -> RetryInfo:
        budget = self.engine.config.restart_policy.max_restarts
        return {
            "gid": record.gid,
            "retry_count": record.retry_count,
            "max_retries": budget,
            "can_retry": record.may_retry(budget),
            "url": record.url,
            "uris": list(record.uris),
            "options": copy.deepcopy(record.options),
            "current_gid": record.current_gid,
            "restart_pending": record.restart_pending,
            "gave_up_reason": record.gave_up,
            "attempts": [attempt.to_dict() for attempt in record.attempts],
        }

    # -- restarting -----------------------------------------------------------------------------

    def restart(self, record: DownloadRecord) -> bool:
        """An explicit restart of a failed (or removed) download, whatever the policy says."""
        run = record.run
        progress = self.progress(record.gid, auto=False)
        if progress is None or progress.status not in ("error", "removed", "unknown"):
            return False
        record.uncancel()  # an explicit restart revives a cancelled download
        self.ledger.persist(record, cancelled=False, outcome=None)  # (shared state: first there)
        return self.engine.restarts.restart(record, run)

    def restart_failed(self, pool: list[DownloadRecord], force: bool) -> int:
        """Restart the failed ones of ``pool`` the policy allows (all with ``force``)."""
        candidates = [record for record in pool if record.restart_candidate()]
        restarts = self.engine.restarts
        restarted = 0
        for record, run, progress in self.tracker.read(self.rpc, candidates, auto=False):
            if progress is None or record.run != run or progress.status != "error":
                continue  # unreadable, restarted meanwhile (a stale read), or not failed
            if force:
                restarted += restarts.restart(record, run)
            else:
                restarted += restarts.restart_if_allowed(record, run, progress)
        return restarted
