"""A record and its row in a shared store: what is written when, and how a row becomes a record.

A store (:class:`~aria2_sync.state.base.Store`) keeps plain JSON-able rows; the engine keeps
:class:`~aria2_sync.engine.record.DownloadRecord` objects. These functions are the two-way
translation; :meth:`DownloadRecord.take_shared` applies a row another process wrote to a record
this one holds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..models import Progress
from .record import DownloadRecord
from .states import Attempt, Outcome

if TYPE_CHECKING:  # pragma: no cover
    from ..state.base import Row

__all__ = ["new_row", "outcome_fields", "record_from_row"]


def record_from_row(row: Row) -> DownloadRecord:
    """A working copy of a stored download."""
    record = DownloadRecord(
        gid=row["gid"],
        uris=list(row["uris"]),
        options=dict(row["options"]),
        current_gid=row["current_gid"],
        batch_id=row.get("batch_id"),
        attempts=[Attempt(**a) for a in row.get("attempts") or []],
        retry_count=row.get("retry_count", 0),
        run=row.get("run", 0),
        failed_run=row.get("failed_run", -1),
        gave_up=row.get("gave_up"),
        cancelled=bool(row.get("cancelled")),
        daemon_gids=list(row.get("daemon_gids") or []),
        last=Progress.from_dict(row["last"]) if row.get("last") else None,
    )
    if row.get("outcome") is not None:
        age = max(0.0, time.time() - (row.get("finished_at") or time.time()))
        record.restored(Outcome(row["outcome"]), age)
    return record


def new_row(record: DownloadRecord) -> dict[str, Any]:
    """What a new download looks like in a store."""
    return {
        "gid": record.gid,
        "batch_id": record.batch_id,
        "uris": record.uris,  # (new containers: see RecordView.uris and options)
        "options": record.options,
        "current_gid": record.current_gid,
    }


def outcome_fields(record: DownloadRecord) -> dict[str, Any]:
    """The fields a store keeps of an outcome (JSON-able)."""
    outcome, last = record.outcome, record.last
    return {
        "outcome": outcome.value if outcome is not None else None,
        "finished_at": time.time(),
        "gave_up": record.gave_up,
        "cancelled": record.cancelled,
        "last": last.to_dict() if last is not None else None,
    }
