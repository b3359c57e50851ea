"""The SQLite state file holds download credentials: private files, clear errors when damaged."""

from __future__ import annotations

import os
import sqlite3
import stat

import pytest

from aria2_sync import Aria2StateError
from aria2_sync.state.sqlite import SQLiteStore

ROW = {
    "gid": "00000000000000a1",
    "uris": ["http://user:pass@h/f"],
    "options": {"header": ["Authorization: Bearer t"]},
    "current_gid": "00000000000000a1",
}


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(autouse=True)
def usual_umask():
    previous = os.umask(0o022)  # what most users have: new files 0644 unless asked otherwise
    try:
        yield
    finally:
        os.umask(previous)


def test_the_file_and_its_companions_are_private(tmp_path):
    db = tmp_path / "s.db"
    store = SQLiteStore(str(db))
    try:
        store.add([ROW])
        store.update(ROW["gid"], retry_count=1)
        assert _mode(db) == 0o600
        companions = [p for p in (tmp_path / "s.db-wal", tmp_path / "s.db-shm") if p.exists()]
        assert companions  # (WAL mode: there are some while the store is open)
        assert all(_mode(p) == 0o600 for p in companions)
    finally:
        store.close()


def test_an_existing_file_is_tightened(tmp_path):
    db = tmp_path / "old.db"
    SQLiteStore(str(db)).close()
    os.chmod(db, 0o644)
    wal = tmp_path / "old.db-wal"
    wal.write_bytes(b"")
    os.chmod(wal, 0o666)
    SQLiteStore(str(db)).close()
    assert _mode(db) == 0o600
    if wal.exists():
        assert _mode(wal) == 0o600


@pytest.mark.parametrize("name", ["s.db", "s.db-wal"])
def test_a_planted_symlink_is_not_followed(tmp_path, name):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    os.chmod(target, 0o644)
    if name != "s.db":
        SQLiteStore(str(tmp_path / "s.db")).close()
        for leftover in ("s.db-wal", "s.db-shm"):
            if (tmp_path / leftover).exists():
                os.unlink(tmp_path / leftover)
    os.symlink(target, tmp_path / name)
    with pytest.raises(Aria2StateError, match="symbolic link") as caught:
        SQLiteStore(str(tmp_path / "s.db"))
    assert str(tmp_path / "s.db") in str(caught.value)
    assert target.read_bytes() == b"" and _mode(target) == 0o644


def test_a_version_1_state_file_is_upgraded_in_place(tmp_path):
    """Version 2 added the daemon a download lives on (pools); a version-1 file keeps its rows."""
    db = tmp_path / "v1.db"
    store = SQLiteStore(str(db))
    store.add(
        [
            {
                "gid": "00000000000000e5",
                "batch_id": None,
                "uris": ["http://h/f"],
                "options": {},
                "current_gid": "00000000000000e5",
            }
        ]
    )
    store.close()
    with sqlite3.connect(db) as connection:  # as version 1 wrote it: no daemon column
        connection.execute("ALTER TABLE downloads DROP COLUMN daemon")
        connection.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    store = SQLiteStore(str(db))
    try:
        store.update("00000000000000e5", daemon="http://127.0.0.1:6800/jsonrpc")
        assert store.find("00000000000000e5")["daemon"] == "http://127.0.0.1:6800/jsonrpc"
    finally:
        store.close()
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)


def test_a_tampered_schema_version_is_a_state_error(tmp_path):
    db = tmp_path / "v.db"
    SQLiteStore(str(db)).close()
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE meta SET value = 'one' WHERE key = 'schema'")
    with pytest.raises(Aria2StateError, match="schema version") as caught:
        SQLiteStore(str(db))
    assert str(db) in str(caught.value)


@pytest.mark.parametrize(
    "column, value",
    [("uris", '["http://user:pass@h/'), ("options", "[1, 2]"), ("attempts", "{oops"), ("last", "7")],
)
def test_a_damaged_cell_is_a_state_error_naming_the_file(tmp_path, column, value):
    db = tmp_path / "c.db"
    store = SQLiteStore(str(db))
    try:
        store.add([ROW])
        with sqlite3.connect(db) as connection:
            connection.execute(f"UPDATE downloads SET {column} = ?", (value,))
        for read in (lambda: store.find(ROW["gid"]), lambda: store.rows([ROW["gid"]]), store.unfinished):
            with pytest.raises(Aria2StateError) as caught:
                read()
            assert str(db) in str(caught.value) and column in str(caught.value)
            assert "pass" not in str(caught.value)  # the cell itself is never quoted
    finally:
        store.close()


def test_a_damaged_batch_or_attempts_cell_is_a_state_error(tmp_path):
    db = tmp_path / "b.db"
    store = SQLiteStore(str(db))
    try:
        store.add([dict(ROW, batch_id="B")], ("B", [ROW["gid"]]))
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE batches SET gids = '[\"x'")
        with pytest.raises(Aria2StateError, match="batch B"):
            store.batch("B")
        with sqlite3.connect(db) as connection:
            connection.execute("UPDATE downloads SET attempts = 'nope'")
        with pytest.raises(Aria2StateError, match="attempts"):
            store.record_failure(ROW["gid"], 0, {"time": 0})
    finally:
        store.close()
