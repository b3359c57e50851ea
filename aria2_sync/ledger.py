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
from typing import Any, Dict, Iterator, List, Optional

import attrs

from .models import Progress

__all__ = ["Attempt", "DownloadRecord", "Ledger", "IDLE", "SCHEDULED", "RESTARTING"]


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

    @property
    def failure_recorded(self) -> bool:
        return self.failed_run == self.run

    @property
    def restart_pending(self) -> bool:
        return self.restart_state != IDLE

    @property
    def url(self) -> str:
        return self.uris[0]


class Ledger:
    """The logical downloads of one client, by handle GID and by every daemon GID they had."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._records: Dict[str, DownloadRecord] = {}
        self._by_daemon_gid: Dict[str, str] = {}

    def add(self, record: DownloadRecord) -> None:
        with self.lock:
            self._records[record.gid] = record
            self._by_daemon_gid[record.current_gid] = record.gid

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

    def __iter__(self) -> Iterator[DownloadRecord]:
        with self.lock:
            return iter(list(self._records.values()))

    def __len__(self) -> int:
        with self.lock:
            return len(self._records)
