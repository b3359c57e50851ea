"""The shared-state :class:`~aria2_sync.state.base.Store` in one SQLite file.

Kept apart from :mod:`aria2_sync.state.base` so that ``import aria2_sync`` does not load ``sqlite3``
for the many users who keep their state in memory.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..errors import Aria2StateError
from ..logs import logger
from .base import ADD_LEASE_SECONDS, Row, Store

__all__ = ["SQLiteStore"]

_T = TypeVar("_T")


#: The state file holds URL passwords and header tokens in clear: only its owner may read it.
FILE_MODE = 0o600

#: SQLite's companion files in WAL mode (they hold the same data as the file itself).
_COMPANIONS = ("-wal", "-shm")

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS downloads (
    gid TEXT PRIMARY KEY,
    batch_id TEXT,
    uris TEXT NOT NULL,
    options TEXT NOT NULL,
    current_gid TEXT NOT NULL,
    daemon_gids TEXT NOT NULL DEFAULT '[]',
    run INTEGER NOT NULL DEFAULT 0,
    failed_run INTEGER NOT NULL DEFAULT -1,
    retry_count INTEGER NOT NULL DEFAULT 0,
    attempts TEXT NOT NULL DEFAULT '[]',
    gave_up TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0,
    outcome TEXT,
    finished_at REAL,
    last TEXT,
    added_at REAL NOT NULL,
    lease_holder TEXT,
    lease_until REAL,
    daemon TEXT
);
CREATE INDEX IF NOT EXISTS downloads_batch ON downloads (batch_id);
CREATE INDEX IF NOT EXISTS downloads_current ON downloads (current_gid);
CREATE INDEX IF NOT EXISTS downloads_unfinished ON downloads (outcome);
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    gids TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""

#: The JSON columns and the kind of value each holds.
_JSON_KINDS: dict[str, type] = {
    "uris": list,
    "options": dict,
    "daemon_gids": list,
    "attempts": list,
    "last": dict,
}
_JSON_COLUMNS = tuple(_JSON_KINDS)


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file, shared by every process that opens it.

    One connection per store object, guarded by a lock (sqlite3 objects must not be used by two
    threads at once); WAL mode so that readers never block the writer; ``BEGIN IMMEDIATE`` for
    read-modify-write steps so that two processes cannot both win a claim. A file that is not
    an aria2_sync store, is corrupt, or stays locked past ``timeout`` raises
    :class:`~aria2_sync.Aria2StateError`, never a silent loss.
    """

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        directory = os.path.dirname(self.path)
        if directory and not os.path.isdir(directory):
            raise Aria2StateError(
                f"cannot open the state file {self.path!r}: {directory!r} is not a directory"
            )
        self._secure_files()
        try:
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.Error as error:
            raise self._error("open", error) from error

    def __repr__(self) -> str:
        return f"<SQLiteStore {self.path}>"

    # -- plumbing -------------------------------------------------------------------------------

    def _secure_files(self) -> None:
        """Create the file 0600 (never through a symlink) and tighten an existing one's mode.

        The rows hold download credentials in clear (``http://user:pass@...``, ``http-passwd``,
        ``Authorization`` headers). SQLite gives its ``-wal`` and ``-shm`` files the mode of the
        database file, so a 0600 file gets 0600 companions; companions left by an earlier run
        are checked and tightened too.
        """
        self._secure_one(self.path, create=True)
        for suffix in _COMPANIONS:
            self._secure_one(self.path + suffix, create=False)

    def _secure_one(self, path: str, create: bool) -> None:
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        try:
            fd = os.open(path, flags, FILE_MODE)
        except FileNotFoundError:
            return  # (a companion SQLite has not made yet: it will get the file's mode)
        except OSError as error:
            if error.errno == errno.ELOOP or os.path.islink(path):
                raise Aria2StateError(
                    f"state file {self.path!r}: {os.path.basename(path)!r} is a symbolic link; "
                    "refusing to follow it (the file holds download credentials): remove the link "
                    "or choose another path"
                ) from None
            raise Aria2StateError(
                f"cannot open the state file {self.path!r} ({error.strerror}): check the path and "
                "its permissions"
            ) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Aria2StateError(
                    f"state file {self.path!r}: {os.path.basename(path)!r} is not a regular file"
                )
            if stat.S_IMODE(info.st_mode) & ~FILE_MODE:
                try:
                    os.fchmod(fd, FILE_MODE)
                except OSError as error:
                    logger.warning(
                        "state file %s: could not restrict %s to mode 0600 (%s); it holds "
                        "download credentials, so restrict it yourself",
                        self.path,
                        os.path.basename(path),
                        error.strerror,
                    )
        finally:
            os.close(fd)

    def _error(self, action: str, error: sqlite3.Error) -> Aria2StateError:
        text = str(error)
        if "locked" in text or "busy" in text:
            hint = "another process holds it too long; try again, or raise the store's timeout"
        elif "not a database" in text or "malformed" in text or "corrupt" in text:
            hint = "the file is not an aria2_sync state file or is damaged; move it away to start afresh"
        else:
            hint = "check the path and its permissions"
        return Aria2StateError(f"state file {self.path!r}: could not {action} ({text}): {hint}")

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            return
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise Aria2StateError(
                f"state file {self.path!r} has an unreadable schema version ({str(row[0])[:20]!r}): "
                "the file is damaged or not an aria2_sync state file; move it away to start afresh"
            ) from None
        if version == 1:  # (version 2 added the daemon a download lives on, for pools)
            self._db.execute("ALTER TABLE downloads ADD COLUMN daemon TEXT")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            return
        if version != SCHEMA_VERSION:
            raise Aria2StateError(
                f"state file {self.path!r} has schema version {version}, this aria2_sync uses "
                f"{SCHEMA_VERSION}: use another file"
            )

    def _json(self, text: Any, what: str, kind: type = list) -> Any:
        """A JSON cell's value; a damaged cell is an :class:`Aria2StateError` naming the file.

        (The cell's text is not quoted: it may hold a URL password.)
        """
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as error:
            problem = f"is not valid JSON ({type(error).__name__} at {getattr(error, 'pos', '?')})"
        else:
            if isinstance(value, kind):
                return value
            problem = f"is a JSON {type(value).__name__}, not a {kind.__name__}"
        raise Aria2StateError(
            f"state file {self.path!r}: {what} {problem}: the file is damaged; move it away to start afresh"
        )

    def _run(self, action: str, work: Callable[[sqlite3.Connection], _T], write: bool = False) -> _T:
        with self._lock:
            try:
                if write:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(self._db)
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                    return result
                return work(self._db)
            except sqlite3.Error as error:
                raise self._error(action, error) from error

    def _decode(self, cursor: sqlite3.Cursor, values: Sequence[Any]) -> Row:
        row = {description[0]: value for description, value in zip(cursor.description, values)}
        for column in _JSON_COLUMNS:
            if row.get(column) is not None:
                row[column] = self._json(
                    row[column], f"the {column} of download {row.get('gid')}", _JSON_KINDS[column]
                )
        row["cancelled"] = bool(row["cancelled"])
        return row

    def _select(self, db: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[Row]:
        cursor = db.execute(f"SELECT * FROM downloads WHERE {where}", params)
        return [self._decode(cursor, values) for values in cursor.fetchall()]

    # -- the interface --------------------------------------------------------------------------

    def add(self, rows: Sequence[Row], batch: tuple[str, list[str]] | None = None) -> None:
        def work(db: sqlite3.Connection) -> None:
            for row in rows:
                # Held under a lease until the add is confirmed (Store.release): meanwhile the
                # daemon not knowing the GID means "not yet", and no other process may take it
                # for lost and add it itself.
                db.execute(
                    "INSERT OR REPLACE INTO downloads (gid, batch_id, uris, options, current_gid, "
                    "added_at, lease_holder, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        row["gid"],
                        row.get("batch_id"),
                        json.dumps(row["uris"]),
                        json.dumps(row["options"]),
                        row["current_gid"],
                        time.time(),
                        self.holder,
                        time.time() + ADD_LEASE_SECONDS,
                    ),
                )
            if batch is not None:
                db.execute(
                    "INSERT OR REPLACE INTO batches VALUES (?, ?, ?)",
                    (batch[0], json.dumps(batch[1]), time.time()),
                )

        self._run("add downloads", work, write=True)

    def find(self, gid: str) -> Row | None:
        def work(db: sqlite3.Connection) -> Row | None:
            found = self._select(db, "gid = ? OR current_gid = ?", (gid, gid))
            if not found:  # an older daemon GID of a download that fell back to a new one
                found = [
                    r
                    for r in self._select(db, "daemon_gids LIKE ?", (f'%"{gid}"%',))
                    if gid in r["daemon_gids"]
                ]
            return found[0] if found else None

        return self._run("read a download", work)

    def batch(self, batch_id: str) -> list[Row] | None:
        def work(db: sqlite3.Connection) -> list[Row] | None:
            stored = db.execute("SELECT gids FROM batches WHERE batch_id = ?", (batch_id,)).fetchone()
            if stored is None:
                return None
            by_gid = {r["gid"]: r for r in self._select(db, "batch_id = ?", (batch_id,))}
            return [by_gid[g] for g in self._json(stored[0], f"batch {batch_id}") if g in by_gid]

        return self._run("read a batch", work)

    def rows(self, gids: Sequence[str]) -> dict[str, Row]:
        def work(db: sqlite3.Connection) -> dict[str, Row]:
            found: dict[str, Row] = {}
            gids_list = list(gids)
            for start in range(0, len(gids_list), 500):
                chunk = gids_list[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._select(db, f"gid IN ({marks})", chunk):
                    found[row["gid"]] = row
            return found

        return self._run("read downloads", work)

    def unfinished(self) -> list[Row]:
        return self._run("read downloads", lambda db: self._select(db, "outcome IS NULL", ()))

    def unfinished_gids(self) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            # (in the order they were added, as unfinished() reads them)
            return [
                gid for (gid,) in db.execute("SELECT gid FROM downloads WHERE outcome IS NULL ORDER BY rowid")
            ]

        return self._run("read downloads", work)

    def record_failure(self, gid: str, run: int, attempt: dict[str, Any]) -> list[dict[str, Any]]:
        def work(db: sqlite3.Connection) -> list[dict[str, Any]]:
            row = db.execute(
                "SELECT run, failed_run, attempts FROM downloads WHERE gid = ?", (gid,)
            ).fetchone()
            if row is None:
                return [attempt]
            stored_run, failed_run = row[0], row[1]
            attempts: list[dict[str, Any]] = self._json(row[2], f"the attempts of download {gid}")
            if stored_run == run and failed_run < run:
                attempts.append(attempt)
                db.execute(
                    "UPDATE downloads SET failed_run = ?, attempts = ?, gave_up = NULL WHERE gid = ?",
                    (run, json.dumps(attempts), gid),
                )
            return attempts

        return self._run("record a failure", work, write=True)

    def claim_restart(self, gid: str, run: int, lease_seconds: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            now = time.time()
            cursor = db.execute(
                "UPDATE downloads SET lease_holder = ?, lease_until = ? WHERE gid = ? AND run = ? "
                "AND outcome IS NOT 'cancelled' AND cancelled = 0 "
                "AND (lease_holder IS NULL OR lease_until < ?)",
                (self.holder, now + lease_seconds, gid, run, now),
            )
            if (
                cursor.rowcount == 0
                and db.execute("SELECT 1 FROM downloads WHERE gid = ?", (gid,)).fetchone() is None
            ):
                return True  # not stored (added before the store was opened): nobody else has it
            return cursor.rowcount == 1

        return self._run("claim a restart", work, write=True)

    def update(self, gid: str, **fields: Any) -> None:
        if not fields:
            return
        columns = ", ".join(f"{name} = ?" for name in fields)
        values = [
            json.dumps(v) if name in _JSON_COLUMNS and v is not None else v for name, v in fields.items()
        ]
        values = [int(v) if isinstance(v, bool) else v for v in values]
        self._run(
            "update a download",
            lambda db: db.execute(f"UPDATE downloads SET {columns} WHERE gid = ?", (*values, gid)),
            write=True,
        )

    def release(self, gids: Iterable[str]) -> None:
        gid_list = list(gids)

        def work(db: sqlite3.Connection) -> None:
            for gid in gid_list:
                db.execute(
                    "UPDATE downloads SET lease_holder = NULL, lease_until = NULL "
                    "WHERE gid = ? AND lease_holder = ?",
                    (gid, self.holder),
                )

        if gid_list:
            self._run("release downloads", work, write=True)

    def forget(
        self, gids: Iterable[str], batch_ids: Iterable[str] = (), runs: dict[str, int] | None = None
    ) -> None:
        gid_list, batch_list = list(gids), list(batch_ids)

        def work(db: sqlite3.Connection) -> None:
            for gid in gid_list:
                if runs is not None and gid in runs:
                    # Retention: only a row that is still finished at the run this process
                    # knows; another process may have restarted it since.
                    db.execute(
                        "DELETE FROM downloads WHERE gid = ? AND run = ? AND outcome IS NOT NULL",
                        (gid, runs[gid]),
                    )
                else:
                    db.execute("DELETE FROM downloads WHERE gid = ?", (gid,))
            for batch_id in batch_list:
                db.execute(
                    "DELETE FROM batches WHERE batch_id = ? AND NOT EXISTS "
                    "(SELECT 1 FROM downloads WHERE batch_id = ?)",
                    (batch_id, batch_id),
                )

        if gid_list or batch_list:
            self._run("forget downloads", work, write=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()
