"""What a finished download says (``DownloadResult``) and the errors of BitTorrent/Metalink input.

Unit tests, no daemon: the integration tests (tests/test_chains.py, tests/test_integrity.py)
check the same fields on real downloads.
"""

from __future__ import annotations

import hashlib
import pickle

import pytest

import aria2_sync
from aria2_sync import (
    Aria2InputError,
    BadMagnetError,
    BadMetalinkError,
    BadTorrentError,
    ChecksumMismatch,
    DownloadFailed,
    DownloadResult,
)
from aria2_sync.engine.btinput import parse_metalink
from aria2_sync.engine.futures import BITTORRENT_PIECES
from tests.support.bittorrent import MetalinkFile, metalink

SHA256 = "sha-256=" + "ab" * 32


def test_a_result_built_as_before_names_its_one_path():
    result = DownloadResult(
        "0123456789abcdef", "/d/f.bin", 10, "http://h/f.bin", 1, (), "md5 checksum (aria2)"
    )
    assert result.paths == ("/d/f.bin",) and result.seeding is False
    assert DownloadResult("0123456789abcdef", None, 0, "http://h/f").paths == ()
    several = DownloadResult("0123456789abcdef", "/d/a", 3, "magnet:?", paths=["/d/a", "/d/b"], seeding=True)
    assert several.paths == ("/d/a", "/d/b")  # (a tuple, whatever was given)
    assert several.to_dict()["paths"] == ["/d/a", "/d/b"] and several.to_dict()["seeding"] is True
    assert pickle.loads(pickle.dumps(several)) == several
    with pytest.raises(AttributeError):
        several.paths = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "kind", "verified"),
    [
        ({}, None, None),
        ({"checksum": SHA256}, None, "sha-256 checksum (aria2)"),
        ({"checksum": SHA256}, "metalink", "sha-256 hash from the metalink (aria2)"),
        ({}, "metalink", None),  # a metalink file without a hash: nothing verified
        ({}, "magnet", BITTORRENT_PIECES),
        ({}, "torrent", BITTORRENT_PIECES),
        ({}, "torrent-url", BITTORRENT_PIECES),
        ({"checksum": SHA256}, "torrent", BITTORRENT_PIECES),  # (aria2's checksum is for HTTP/FTP)
    ],
)
def test_verified_says_what_aria2_checked(options, kind, verified):
    assert DownloadResult.verification(options, kind) == verified


def test_the_input_errors_are_public_typed_and_pickle():
    for error in (BadMagnetError, BadTorrentError, BadMetalinkError):
        assert issubclass(error, Aria2InputError)
        assert getattr(aria2_sync, error.__name__) is error and error.__name__ in aria2_sync.__all__
        assert error.__module__ == "aria2_sync.errors" and error.__doc__
        copy = pickle.loads(pickle.dumps(error("what to fix")))
        assert type(copy) is error and str(copy) == "what to fix"
    assert aria2_sync.ChecksumMismatch is ChecksumMismatch and issubclass(ChecksumMismatch, DownloadFailed)
    assert "ChecksumMismatch" in aria2_sync.__all__


def _one(name: str, urls: list[str], **attributes: str) -> bytes:
    file = MetalinkFile(name, tuple(urls), None, tuple(attributes.items()))
    return metalink([file])


def test_a_metalink_is_read_with_every_file_its_mirrors_in_order_and_its_strongest_hash():
    content = b"payload"
    document = metalink(
        [
            MetalinkFile.of("a.bin", content, ["http://h1/a", "http://h2/a"], ("md5", "sha-256")),
            MetalinkFile.of("sub/b.bin", content, ["http://h1/b"], ("sha-1",)),
        ]
    )
    first, second = parse_metalink(document)
    assert first.urls == ("http://h1/a", "http://h2/a")
    assert first.checksum == "sha-256=" + hashlib.sha256(content).hexdigest()
    assert (second.name, second.checksum) == ("sub/b.bin", "sha-1=" + hashlib.sha1(content).hexdigest())


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (metalink([MetalinkFile.of("a", b"x", ["http://h/a"])] * 2), "two files named 'a'"),
        (_one("a", ["http://h/a"], **{"sha-256": "not hex"}), "bad sha-256 hash"),
        (_one("a", ["http://h/a"], md5="0" * 31), "bad md5 hash"),
        (metalink([]), "no file"),
        (_one("../a", ["http://h/a"]), "relative path"),
        (
            b'<metalink xmlns="urn:ietf:params:xml:ns:metalink"><file name="a">'
            b'<url priority="first">http://h/a</url></file></metalink>',
            "priority that is not a number",
        ),
    ],
)
def test_a_bad_metalink_says_what_is_wrong(document, words):
    with pytest.raises(BadMetalinkError, match=words):
        parse_metalink(document)
