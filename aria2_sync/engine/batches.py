"""Batches: a named group of downloads, and what is left of one once its downloads are forgotten.

Value types of the :class:`~aria2_sync.engine.ledger.Ledger`, kept apart from its bookkeeping.
"""

from __future__ import annotations

import time
from typing import Any

import attrs

from ..models import BatchProgress
from .record import DownloadRecord
from .states import FrozenValue, Outcome

__all__ = [
    "BATCH_GRACE_SECONDS",
    "MAX_BATCH_SUMMARIES",
    "Batch",
    "BatchSummary",
    "summarize",
]


#: How long the counts of a finished batch whose downloads the count rule of the retention
#: forgot remain answerable (``get_batch_progress`` of a batch that just completed).
BATCH_GRACE_SECONDS = 60.0

#: At most this many such batch summaries are kept (the oldest go first).
MAX_BATCH_SUMMARIES = 1000


class Batch:
    """A named group of downloads, in the order they were given."""

    __slots__ = ("batch_id", "gids", "created_at")

    def __init__(self, batch_id: str, gids: list[str], created_at: float | None = None) -> None:
        self.batch_id = batch_id
        self.gids = gids
        self.created_at = time.monotonic() if created_at is None else created_at

    def __repr__(self) -> str:
        return f"Batch({self.batch_id!r}, {len(self.gids)} downloads)"


class BatchSummary(FrozenValue):
    """What is left of a finished batch once its downloads were forgotten: its counts.

    A batch that completes in a busy process may be pushed out of memory by the count rule
    (``keep_finished``) at once; whoever polls it a moment later still gets its outcome from
    this summary, for :data:`BATCH_GRACE_SECONDS`, without keeping every record.
    """

    __slots__ = (
        "batch_id",
        "total",
        "completed",
        "failed",
        "removed",
        "total_length",
        "completed_length",
        "done_at",
    )

    batch_id: str
    total: int
    completed: int
    failed: int
    removed: int
    total_length: int
    completed_length: int
    done_at: float

    def __init__(
        self,
        batch_id: str,
        total: int,
        completed: int,
        failed: int,
        removed: int,
        total_length: int,
        completed_length: int,
        done_at: float,
    ) -> None:
        self._set(
            batch_id=batch_id,
            total=total,
            completed=completed,
            failed=failed,
            removed=removed,
            total_length=total_length,
            completed_length=completed_length,
            done_at=done_at,
        )

    def progress(self) -> BatchProgress:
        """Its counts as a :class:`BatchProgress` (a ``SummaryBatchProgress``)."""
        return _summary_progress_class()(  # type: ignore[call-arg]
            batch_id=self.batch_id,
            downloads=(),
            completed_count=self.completed,
            failed_count=self.failed,
            removed_count=self.removed,
            is_completed=True,
            summary_total=self.total,
            summary_total_length=self.total_length,
            summary_completed_length=self.completed_length,
        )


def _summary_progress_class() -> type[BatchProgress]:
    """:class:`SummaryBatchProgress`, made on first use (an attrs class costs most of a
    millisecond to create, and most programs never ask about a forgotten batch)."""
    made = _made.get("SummaryBatchProgress")
    if made is not None:
        return made

    @attrs.frozen
    class SummaryBatchProgress(BatchProgress):
        """The :class:`BatchProgress` of a batch known only by its :class:`BatchSummary`.

        ``downloads`` is empty (the per-download snapshots were forgotten); the totals are the
        ones the batch had when it was forgotten.
        """

        summary_total: int = 0
        summary_total_length: int = 0
        summary_completed_length: int = 0

        @property
        def total_count(self) -> int:
            return self.summary_total

        @property
        def total_length(self) -> int:
            return self.summary_total_length

        @property
        def completed_length(self) -> int:
            return self.summary_completed_length

    SummaryBatchProgress.__module__ = __name__
    SummaryBatchProgress.__qualname__ = "SummaryBatchProgress"  # (pickled by this name)
    return _made.setdefault("SummaryBatchProgress", SummaryBatchProgress)


_made: dict[str, type[BatchProgress]] = {}


def __getattr__(name: str) -> Any:
    """``SummaryBatchProgress`` on first use (see :func:`_summary_progress_class`)."""
    if name == "SummaryBatchProgress":
        return _summary_progress_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def summarize(batch_id: str, records: list[DownloadRecord], done_at: float) -> BatchSummary:
    outcomes = [r.outcome for r in records]
    lasts = [r.last for r in records if r.last is not None]
    return BatchSummary(
        batch_id=batch_id,
        total=len(records),
        completed=outcomes.count(Outcome.COMPLETE),
        failed=outcomes.count(Outcome.FAILED) + outcomes.count(Outcome.REJECTED),
        removed=outcomes.count(Outcome.CANCELLED),
        total_length=sum(p.total_length for p in lasts),
        completed_length=sum(p.completed_length for p in lasts),
        done_at=done_at,
    )
