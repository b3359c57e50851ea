"""Adding a batch with the checks done once per batch, and records that stay slim.

``add_batch_downloads`` checks what every item shares once (the options, a directory's existence
and write access) and what differs per item cheaply (a directory listed once answers "is this
save path a directory?" for its items). These tests show the per-item rules still hold for every
item, wherever it sits in a batch, and that records sharing one options dict never leak changes
into each other.
"""

from __future__ import annotations

import os
import pickle
import re

import pytest

import aria2_sync.engine.adds as adds_module
import aria2_sync.validation as validation
from aria2_sync import Aria2InputError
from aria2_sync.client import engine_of
from aria2_sync.engine.record import DownloadRecord
from aria2_sync.engine.recordview import RecordView
from aria2_sync.engine.states import Attempt
from aria2_sync.validation import BatchOptions, split_save_path
from tests.test_client import daemon_gids

PAUSED = {"pause": "true"}


def _items(directory: os.PathLike[str] | str, count: int) -> list[tuple[str, str]]:
    return [(f"http://127.0.0.1:1/f{i}.bin", os.path.join(directory, f"f{i}.bin")) for i in range(count)]


@pytest.mark.parametrize("where", [3, 33])  # before and after the directory is listed once
def test_a_directory_among_many_items_is_refused_with_its_index(client, tmp_path, where):
    items = _items(tmp_path, 40)
    os.mkdir(items[where][1])
    with pytest.raises(Aria2InputError, match=rf"item {where} of the batch: save_path .* is a directory"):
        client.add_batch_downloads(items, options=PAUSED)
    assert daemon_gids(client) == []


def test_a_symbolic_link_to_a_directory_is_refused_like_the_directory(client, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    items = _items(tmp_path, 40)
    os.symlink(target, items[25][1])
    with pytest.raises(Aria2InputError, match="item 25 of the batch: .* is a directory"):
        client.add_batch_downloads(items, options=PAUSED)


def test_a_directory_too_big_to_list_is_asked_path_by_path(tmp_path):
    for i in range(20):
        (tmp_path / f"other{i}").write_bytes(b"")
    (tmp_path / "f30.bin").mkdir()
    listing = validation._DirectoryListing(limit=5)  # fewer entries than the directory has
    batch = BatchOptions(PAUSED)
    batch._listing = listing
    for _, path in _items(tmp_path, 30):
        assert batch.of(path)[1] == (str(tmp_path), os.path.basename(path))
    assert listing._subdirectories == {str(tmp_path): None}  # listed once, given up on
    with pytest.raises(Aria2InputError, match="is a directory"):
        batch.of(str(tmp_path / "f30.bin"))


def test_shared_options_and_directories_are_checked_once_per_batch(client, tmp_path, monkeypatch):
    option_checks, directory_checks = [], []
    real_options, real_directory = validation.check_options, adds_module.check_local_directory
    monkeypatch.setattr(validation, "check_options", lambda o: option_checks.append(o) or real_options(o))
    monkeypatch.setattr(
        adds_module, "check_local_directory", lambda d: directory_checks.append(d) or real_directory(d)
    )
    (tmp_path / "b").mkdir()
    items = _items(tmp_path, 30) + _items(tmp_path / "b", 30)
    batch_id = client.add_batch_downloads(items, options=PAUSED)
    assert len(option_checks) == 1
    assert sorted(directory_checks) == [str(tmp_path), str(tmp_path / "b")]
    assert len(client.get_batch_progress(batch_id).downloads) == 60


@pytest.mark.parametrize(
    "options, paths, words",
    [
        ({"out": "../escape.bin"}, False, "climbs out of 'dir'"),
        ({"out": "/etc/x"}, False, "absolute path"),
        ({"index-out": "1=../x"}, True, "climbs out of 'dir'"),
        ({"header": "X-A: 1\r\nX-B: 2"}, True, "line break"),
        ({"out": "x.bin"}, True, "both say where"),
    ],
)
def test_the_security_rules_hold_for_options_shared_by_a_batch(client, tmp_path, options, paths, words):
    items = _items(tmp_path, 5) if paths else [f"http://127.0.0.1:1/f{i}.bin" for i in range(5)]
    with pytest.raises(Aria2InputError, match=re.escape(words)) as caught:
        client.add_batch_downloads(items, options={**options, "dir": str(tmp_path)} if not paths else options)
    assert str(caught.value).startswith("item 0 of the batch: ")
    assert daemon_gids(client) == []


def test_each_url_of_a_batch_is_checked(client, tmp_path):
    items = _items(tmp_path, 10)
    items[7] = ("http://127.0.0.1:1/a b", items[7][1])
    with pytest.raises(Aria2InputError, match="item 7 of the batch: .*white space"):
        client.add_batch_downloads(items, options=PAUSED)


def test_records_of_a_batch_share_their_options_but_hand_out_copies(client, tmp_path):
    items = _items(tmp_path, 3)
    batch_id = client.add_batch_downloads(items, options=PAUSED)
    ledger = engine_of(client).ledger
    records = ledger.batch_records(batch_id)
    assert records is not None and len(records) == 3
    first, second = records[0], records[1]
    assert first._options is second._options  # one dict for the batch
    assert first.options == {
        "pause": "true",
        "follow-torrent": "false",  # (safe by default: a .torrent at a URL is saved, not followed)
        "follow-metalink": "false",
        "auto-file-renaming": "false",
        "dir": str(tmp_path),
        "out": "f0.bin",
    }
    first.options["pause"] = "false"
    first.uris.append("http://elsewhere/f")
    assert first.options["pause"] == "true" and second.options["pause"] == "true"
    assert first.uris == [items[0][0]]
    # What aria2 was given is each item's own place.
    answer = client.rpc.get_option(second.current_gid)
    assert (answer["dir"], answer["out"]) == (str(tmp_path), "f1.bin")


@pytest.mark.parametrize(
    "path",
    [
        "/a/b.bin",
        "/a/./b.bin",
        "/a//b.bin",
        "/a/../b.bin",
        "/.hidden/b.bin",
        "/b.bin",
        "rel/b.bin",
        "~/b.bin",
    ],
)
def test_the_quick_split_of_a_save_path_is_the_full_one(path):
    assert split_save_path(path) == os.path.split(os.path.abspath(os.path.expanduser(path)))


def test_a_record_repr_shows_neither_credentials_nor_options():
    record = DownloadRecord(
        gid="0123456789abcdef",
        uris=["http://user:hunter2@h/f"],
        options={"http-passwd": "hunter2", "header": ["Authorization: Bearer hunter2"]},
        current_gid="0123456789abcdef",
    )
    text = repr(record)
    assert "hunter2" not in text
    assert "0123456789abcdef" in text


def test_a_record_keeps_lists_it_was_given_apart_from_its_own():
    uris, options = ["http://h/a", "http://mirror/a"], {"split": "2"}
    record = DownloadRecord(
        gid="0123456789abcdef", uris=uris, options=options, current_gid="0123456789abcdef"
    )
    uris.append("http://third/a")
    assert record.uris == ["http://h/a", "http://mirror/a"]
    assert record.url == "http://h/a"
    assert record.attempts == () and record.daemon_gids == ()


def test_attempts_are_values():
    attempt = Attempt(time=1.0, error_code="1", error_message="boom", completed_length=5, gid="ab" * 8)
    assert attempt == Attempt(1.0, "1", "boom", 5, "ab" * 8)
    assert pickle.loads(pickle.dumps(attempt)) == attempt
    assert Attempt(**attempt.to_dict()) == attempt
    with pytest.raises(AttributeError):
        attempt.gid = "x"  # type: ignore[misc]


def test_a_record_made_for_a_batch_is_the_one_init_makes():
    options = {"pause": "true"}
    quick = DownloadRecord.adding_in_batch("0123456789abcdef", "http://h/f", options, "b", 5.0, ("/d", "f"))
    full = DownloadRecord(
        "0123456789abcdef",
        ["http://h/f"],
        options,
        "0123456789abcdef",
        "b",
        5.0,
        adding=True,
        place=("/d", "f"),
    )
    assert DownloadRecord.__slots__ == ()  # (every field is a slot of RecordView)
    for name in RecordView.__slots__:
        if name != "_lock":
            assert getattr(quick, name) == getattr(full, name), name
    assert type(quick._lock) is type(full._lock)
