"""Where the ledger's state lives beyond one process: the store interface and its SQLite form.

A web app runs several worker processes and a notebook kernel restarts; the bookkeeping of a
download (its URIs and options, its runs, restarts and failures, its batch) must outlive the
process that added it and be shared by every process that opens the same store. The in-memory
:class:`~aria2_sync.engine.ledger.Ledger` stays the working set of each process; a :class:`Store`
behind it is the shared truth:

* rows are written when a download or batch is added, fails, is restarted, finishes or is
  cancelled, and read back when a process is asked about a GID or batch it has not seen;
* a restart is *claimed* in one transaction (the row's run must still be the one that failed,
  and no live lease may be held), so two processes watching the same failure restart it once;
* the monitor refreshes from the store the rows of the downloads it reads from the daemon (every
  tick; a parked one every few), so a restart made by another process is followed (new run,
  new daemon GID, counters).

:class:`~aria2_sync.state.sqlite.SQLiteStore` keeps it in one file (stdlib ``sqlite3``, WAL
mode, a busy timeout), for the processes of one host;
:class:`~aria2_sync.state.redis.RedisStore` keeps it in Redis (a Lua script per
read-modify-write step, leases as keys with a TTL, finished rows expiring), for processes on
several hosts. Both give the guarantees above; a store that cannot be used raises
:class:`~aria2_sync.Aria2StateError`, which the ledger turns into a logged, retried state for
the monitor and an error for new work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["ADD_LEASE_SECONDS", "Row", "Store"]

#: How long a new row is reserved for the process adding it, at most, in every store (released
#: as soon as the add is confirmed; a process that dies mid-add blocks nobody for longer).
ADD_LEASE_SECONDS = 60.0

#: A stored download, as a dict of its columns (see :mod:`aria2_sync.state.sqlite`).
Row = dict[str, Any]


class Store:
    """What the ledger needs from shared state. Every method is atomic on its own.

    ``gid`` is always the handle GID (the one the caller holds); ``find`` also resolves any
    daemon-side GID a download has had.
    """

    #: Identifies this process (and client) in restart leases.
    holder: str

    def add(self, rows: Sequence[Row], batch: tuple[str, list[str]] | None = None) -> None:
        """Insert new downloads, leased to this holder until :meth:`release` (the add is on)."""
        raise NotImplementedError

    def find(self, gid: str) -> Row | None:
        raise NotImplementedError

    def batch(self, batch_id: str) -> list[Row] | None:
        raise NotImplementedError

    def rows(self, gids: Sequence[str]) -> dict[str, Row]:
        raise NotImplementedError

    def unfinished(self) -> list[Row]:
        raise NotImplementedError

    def unfinished_gids(self) -> list[str]:
        """The GIDs of :meth:`unfinished`, without their rows (a monitor looking for downloads it
        does not watch yet asks this often: a store that can list them cheaply should)."""
        return [row["gid"] for row in self.unfinished()]

    def record_failure(self, gid: str, run: int, attempt: dict[str, Any]) -> list[dict[str, Any]]:
        """Append ``attempt`` unless run ``run``'s failure is already recorded; return them all."""
        raise NotImplementedError

    def claim_restart(self, gid: str, run: int, lease_seconds: float) -> bool:
        raise NotImplementedError

    def update(self, gid: str, **fields: Any) -> None:
        raise NotImplementedError

    def release(self, gids: Iterable[str]) -> None:
        """End this holder's leases on ``gids`` (an add confirmed, a restart done)."""
        raise NotImplementedError

    def forget(
        self, gids: Iterable[str], batch_ids: Iterable[str] = (), runs: dict[str, int] | None = None
    ) -> None:
        """Delete rows (with ``runs``: only those still finished at that run) and empty batches."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
