"""Futures that resolve when a download is really done.

:class:`DownloadFuture` is a real :class:`concurrent.futures.Future`, so ``wait``,
``as_completed``, ``add_done_callback`` and ``result(timeout)`` work as everywhere else. It
resolves to a :class:`DownloadResult` once the file is complete (every selected file, for a
torrent), raises :class:`~aria2_sync.DownloadFailed` once the download has failed for good (a
permanent error, or its restart budget spent), and ``cancel()`` removes the download from aria2.

A future stays PENDING (never RUNNING) until it resolves: a running ``concurrent.futures.Future``
cannot be cancelled, and cancelling a download in flight is the point of ``cancel()`` here.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    as_completed,
    wait,
)
from typing import Any, Callable

import attrs

__all__ = [
    "DownloadFuture",
    "DownloadResult",
    "wait",
    "as_completed",
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
]


def _the_one_path(result: DownloadResult) -> tuple[str, ...]:
    return (result.path,) if result.path else ()


def _as_tuple(paths: Iterable[str]) -> tuple[str, ...]:
    return tuple(paths)


#: :attr:`DownloadResult.verified` of a BitTorrent payload: aria2 checks every piece it receives
#: against the torrent's SHA-1 of that piece, and keeps none that does not match.
BITTORRENT_PIECES = "sha-1 of every bittorrent piece (aria2)"

#: The :class:`~aria2_sync.engine.states.Source` kinds of BitTorrent downloads.
_BITTORRENT_KINDS = ("magnet", "torrent", "torrent-url")


@attrs.frozen
class DownloadResult:
    """A finished download: where its files are, how big, what it took, and what vouches for it.

    ``path`` is the file (for a torrent of several files, the first selected one); ``paths``
    every file the download was asked for: the one ``path`` of a plain download, each selected
    payload file of a torrent or magnet (defaults to ``(path,)``). ``size`` is their total in
    bytes. ``seeding`` is True when aria2 still uploads the payload (seeding was asked for:
    ``seed_time``/``seed_ratio``); the download is complete all the same.

    ``verified`` says what was checked before the download counted as complete, and by whom,
    or is None when nothing was (the file is what the server sent): ``"sha-256 checksum
    (aria2)"`` for a ``checksum``, ``"sha-256 hash from the metalink (aria2)"`` for a metalink's
    file, :data:`BITTORRENT_PIECES` for a BitTorrent payload. :meth:`verification` derives it.
    """

    gid: str
    path: str | None
    size: int
    url: str
    retry_count: int = 0
    attempts: tuple[dict[str, Any], ...] = ()
    verified: str | None = None
    paths: tuple[str, ...] = attrs.field(
        default=attrs.Factory(_the_one_path, takes_self=True), converter=_as_tuple
    )
    seeding: bool = False

    @staticmethod
    def verification(options: Mapping[str, Any], kind: str | None = None) -> str | None:
        """What aria2 verified for a download with these aria2 ``options`` (None: nothing).

        ``kind`` is what the download was added from: None for a URL, ``"magnet"``,
        ``"torrent"`` or ``"torrent-url"`` for BitTorrent (aria2 checks every piece against the
        torrent's SHA-1: :data:`BITTORRENT_PIECES`, whatever the options say), ``"metalink"``
        for a metalink's file (added with its strongest hash as ``checksum``). A ``checksum``
        option (``"sha-256=<hex>"``, checked by :func:`~aria2_sync.safety.check_checksum`) means
        aria2 hashed the whole file and it matched: a download with one cannot complete
        otherwise (a mismatch fails it with error 32).
        """
        if kind in _BITTORRENT_KINDS:
            return BITTORRENT_PIECES
        checksum = options.get("checksum")
        if isinstance(checksum, str) and "=" in checksum:
            algorithm = checksum.partition("=")[0]
            if kind == "metalink":
                return f"{algorithm} hash from the metalink (aria2)"
            return f"{algorithm} checksum (aria2)"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "gid": self.gid,
            "path": self.path,
            "size": self.size,
            "url": self.url,
            "retry_count": self.retry_count,
            "attempts": [dict(a) for a in self.attempts],
            "verified": self.verified,
            "paths": list(self.paths),
            "seeding": self.seeding,
        }


class DownloadFuture(concurrent.futures.Future[Any]):
    """The future outcome of one download (``gid``); made by ``Aria2Client.submit`` and friends."""

    def __init__(self, gid: str, canceller: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.gid = gid
        self._canceller = canceller
        self._cancel_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DownloadFuture gid={self.gid} {self._state.lower()}>"

    def cancel(self) -> bool:
        """Cancel the download: it is removed from aria2, and everyone waiting here wakes up.

        Returns False if the download already has an outcome (a download that just completed
        stays completed). Does not wait for the daemon: the removal is sent in the background,
        and again when the daemon answers if it cannot be reached now. Files stay on disk.
        """
        if self.cancelled():
            return True
        if self.done():
            return False
        if self._canceller is not None and not self._canceller(self.gid):
            return False  # finished meanwhile: its result is on its way
        self._cancel_once()
        return self.cancelled()

    # The monitor settles futures from worker threads; a future cancelled meanwhile must not
    # turn that into an InvalidStateError in a worker.
    def _settle_result(self, result: DownloadResult) -> None:
        try:
            self.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass

    def _settle_exception(self, error: BaseException) -> None:
        try:
            self.set_exception(error)
        except concurrent.futures.InvalidStateError:
            pass

    def _settle_cancelled(self) -> None:
        self._cancel_once()

    def _cancel_once(self) -> bool:
        """Cancel and wake waiters, exactly once; False if already done or cancelled."""
        with self._cancel_lock:
            if self.done() or not super().cancel():
                return False
            # A cancelled future that never ran does not wake wait()/as_completed() by itself.
            self.set_running_or_notify_cancel()
            return True
