"""What the command line and the progress display both say: sizes, and how a download ended.

The two used to carry a copy each of the same size formatter and of the same reading of a
resolved future; a fix made to one copy was easy to miss in the other. Both now come from here.
A future is read once, by :func:`future_outcome`, and turned into what each caller shows: a
JSON-ready entry for ``aria2-sync get`` (:func:`outcome_entry`), or a :class:`Progress`
snapshot for a display that has no client to ask (:func:`outcome_snapshot`).
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Literal, NamedTuple

from .. import DownloadFuture, DownloadResult
from ..errors import Aria2Error, DownloadFailed, redact_text, redact_url
from ..models import FileInfo, Progress

__all__ = ["human_size", "Outcome", "future_outcome", "outcome_entry", "outcome_snapshot"]


def human_size(size: float) -> str:
    """``1536`` -> ``1.5 KiB``: whole bytes below 1 KiB, one decimal above, GiB at most."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


class Outcome(NamedTuple):
    """How a resolved future ended: its result when ``complete``, its error when ``failed``."""

    status: Literal["complete", "failed", "cancelled"]
    result: DownloadResult | None = None
    error: BaseException | None = None


def future_outcome(future: DownloadFuture) -> Outcome:
    """Read a future that is done, without waiting.

    Raises :class:`concurrent.futures.TimeoutError` when it is not done yet: callers ask only
    once it is, and a caller that asks too early should hear of it, not get a made-up outcome.
    """
    if future.cancelled():
        return Outcome("cancelled")
    try:
        error = future.exception(timeout=0)
    except concurrent.futures.CancelledError:  # cancelled between the two questions
        return Outcome("cancelled")
    if error is None:
        return Outcome("complete", result=future.result(timeout=0))
    return Outcome("failed", error=error)


def outcome_entry(url: str, future: DownloadFuture) -> dict[str, Any]:
    """One download of ``aria2-sync get --json`` (and of its text report), secrets redacted.

    Every entry has ``paths`` (every file of a complete download: the selected files of a
    torrent; else empty) and ``verified`` (what aria2 checked, :attr:`DownloadResult.verified`;
    None when nothing was, or the download did not complete).
    An error that is not an :class:`Aria2Error` is a bug, not an outcome: it is raised again.
    """
    entry: dict[str, Any] = {"url": redact_url(url), "gid": future.gid, "paths": [], "verified": None}
    outcome = future_outcome(future)
    if outcome.status == "cancelled":
        entry.update(status="cancelled", path=None, size=0, retry_count=0, error="cancelled")
        return entry
    error = outcome.error
    if isinstance(error, DownloadFailed):
        entry.update(
            status="failed",
            path=None,
            size=0,
            retry_count=error.retry_count,
            error=redact_text(error.error_message or error.reason),
            reason=redact_text(error.reason),
            error_code=error.error_code,
        )
        return entry
    if isinstance(error, Aria2Error):
        entry.update(status="failed", path=None, size=0, retry_count=0, error=redact_text(str(error)))
        return entry
    if error is not None:
        raise error
    result = outcome.result
    assert result is not None  # complete
    entry.update(
        status="complete",
        path=result.path,
        size=result.size,
        retry_count=result.retry_count,
        error=None,
        paths=list(result.paths),
        verified=result.verified,
    )
    return entry


def outcome_snapshot(future: DownloadFuture) -> tuple[Literal["completed", "failed", "removed"], Progress]:
    """How a resolved future counts in a :class:`BatchProgress`, and a snapshot of what it tells.

    For a display without a client: the future is all there is, so sizes are the result's and
    a failure shows the error the future carries.
    """
    outcome = future_outcome(future)
    if outcome.status == "cancelled":
        return "removed", Progress(gid=future.gid, status="removed")
    result, error = outcome.result, outcome.error
    if outcome.status == "complete":
        assert result is not None
        files = (
            FileInfo(
                path=result.path or "", length=result.size, completed_length=result.size, uris=(result.url,)
            ),
        )
        return "completed", Progress(
            gid=result.gid,
            status="complete",
            total_length=result.size,
            completed_length=result.size,
            files=files,
            retry_count=result.retry_count,
        )
    if isinstance(error, DownloadFailed):
        return "failed", Progress(
            gid=future.gid,
            status="error",
            error_code=error.error_code,
            error_message=error.error_message,
            files=(FileInfo(path="", length=0, completed_length=0, uris=(error.url,)),),
            retry_count=error.retry_count,
            gave_up_reason=error.reason,
        )
    return "failed", Progress(gid=future.gid, status="unknown", gave_up_reason=str(error))
