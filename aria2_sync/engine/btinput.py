"""Checking what a caller gives ``add_magnet``, ``add_torrent`` and ``add_metalink``.

Bad input is refused here, before anything reaches the daemon, with an error that says what to
fix: a magnet without a BitTorrent info hash, bytes that are not a bencoded torrent with an info
dict, a ``files=`` entry the torrent does not have, a metalink that is not RFC 5854 XML, or a
URL inside a metalink that the caller could not pass to ``add_download`` either (the same
rules: :func:`~aria2_sync.validation.check_uris`). Only the standard library parses: the
metalink with ``xml.etree`` (which expands no external entity), the torrent with the small
bencode reader below. The errors (:class:`~aria2_sync.errors.BadMagnetError`,
:class:`~aria2_sync.errors.BadTorrentError`, :class:`~aria2_sync.errors.BadMetalinkError`) live in
:mod:`aria2_sync.errors` with the other public errors.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from ..errors import Aria2InputError, BadMagnetError, BadMetalinkError, BadTorrentError
from ..safety import check_checksum
from ..validation import check_uris

__all__ = [
    "MetalinkEntry",
    "TorrentInfo",
    "check_magnet",
    "file_selection",
    "is_torrent_url",
    "parse_metalink",
    "read_input",
    "read_torrent",
]

#: The largest .torrent or metalink document read from a file (a torrent of a few thousand
#: files is well under 1 MiB; aria2's own RPC request limit is a few MiB).
MAX_DOCUMENT = 16 * 1024 * 1024


_BTIH = re.compile(r"^urn:btih:(?:[0-9a-fA-F]{40}|[A-Za-z2-7]{32})$")


def check_magnet(uri: Any) -> str:
    """``uri`` if it is a magnet URI with a BitTorrent info hash; else :class:`BadMagnetError`."""
    if not isinstance(uri, str):
        raise BadMagnetError(f"a magnet URI is a str, not {type(uri).__name__}")
    if not uri.startswith("magnet:?") or any(c in uri for c in "\r\n\x00 "):
        raise BadMagnetError(f"not a magnet URI (it must start with 'magnet:?'): {uri[:60]!r}")
    topics = urllib.parse.parse_qs(uri[len("magnet:?") :]).get("xt", [])
    if not any(_BTIH.match(topic) for topic in topics):
        raise BadMagnetError(
            "the magnet URI has no BitTorrent info hash: it needs xt=urn:btih:<40 hex or 32 base32 "
            "characters>"
        )
    return uri


def is_torrent_url(value: Any) -> bool:
    """Whether ``value`` is an http(s) URL (a .torrent to fetch) rather than a local path."""
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))


def read_input(value: Any, what: str, error: type[Aria2InputError]) -> bytes:
    """The document ``value`` gives: itself (bytes) or a file's content (a path)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, (str, os.PathLike)):
        raise error(f"{what} must be bytes or a path, not {type(value).__name__}")
    path = os.path.expanduser(os.fspath(value))
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_DOCUMENT + 1)
    except OSError as problem:
        raise error(f"cannot read the {what} file {path!r}: {problem.strerror or problem}") from None
    if len(data) > MAX_DOCUMENT:
        raise error(f"the {what} file {path!r} is larger than {MAX_DOCUMENT} bytes")
    return data


# -- torrents ----------------------------------------------------------------------------------


def _bdecode(data: bytes) -> tuple[Any, int, int]:
    """The first bencoded value of ``data`` and where the info dict's bytes start and end (for
    the info hash, which is the SHA-1 of exactly those bytes)."""
    span: list[int] = []

    def value(at: int, depth: int) -> tuple[Any, int]:
        if depth > 64:
            raise ValueError("nested too deep")
        kind = data[at : at + 1]
        if kind == b"i":
            end = data.index(b"e", at)
            return int(data[at + 1 : end]), end + 1
        if kind == b"l":
            items, at = [], at + 1
            while data[at : at + 1] != b"e":
                item, at = value(at, depth + 1)
                items.append(item)
            return items, at + 1
        if kind == b"d":
            result, at = {}, at + 1
            while data[at : at + 1] != b"e":
                key, at = value(at, depth + 1)
                if not isinstance(key, bytes):
                    raise ValueError("a dict key that is not a string")
                start = at
                result[key], at = value(at, depth + 1)
                if depth == 0 and key == b"info":
                    span[:] = [start, at]
            return result, at + 1
        if kind.isdigit():
            colon = data.index(b":", at)
            length = int(data[at:colon])
            if length < 0 or colon + 1 + length > len(data):
                raise ValueError("a string longer than the data")
            return data[colon + 1 : colon + 1 + length], colon + 1 + length
        raise ValueError(f"unexpected byte at {at}")

    decoded, _ = value(0, 0)
    start, end = span if span else (-1, -1)
    return decoded, start, end


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@attrs.frozen
class TorrentInfo:
    """What the client needs of a .torrent: its bytes, name, info hash, trackers and files.

    ``files`` are the paths aria2 writes, relative to the download directory, in the torrent's
    order: aria2's ``select-file`` index of ``files[i]`` is ``i + 1``.
    """

    data: bytes
    name: str
    info_hash: str
    trackers: tuple[str, ...]
    files: tuple[str, ...]

    def magnet(self) -> str:
        """A magnet URI of the same torrent (its name and trackers): the download's URL as
        shown (results, logs), and a way to add it again when the bytes are not at hand."""
        query = [("xt", f"urn:btih:{self.info_hash}"), ("dn", self.name)]
        query += [("tr", tracker) for tracker in self.trackers]
        return "magnet:?" + urllib.parse.urlencode(query)


def read_torrent(data: bytes) -> TorrentInfo:
    """Check that ``data`` is a .torrent and read it; :class:`BadTorrentError` if not."""
    try:
        decoded, start, end = _bdecode(data)
    except (ValueError, IndexError) as problem:
        raise BadTorrentError(f"not a .torrent: the bytes are not bencoded ({problem})") from None
    info = decoded.get(b"info") if isinstance(decoded, dict) else None
    if not isinstance(info, dict) or start < 0:
        raise BadTorrentError("not a .torrent: it has no 'info' dictionary")
    name = _text(info.get(b"name", b""))
    if not name or not isinstance(info.get(b"pieces"), bytes):
        raise BadTorrentError("not a .torrent: its 'info' dictionary has no name or no pieces")
    if isinstance(info.get(b"files"), list):
        files = tuple(
            "/".join([name, *(_text(part) for part in entry.get(b"path", []))])
            for entry in info[b"files"]
            if isinstance(entry, dict)
        )
    else:
        files = (name,)
    trackers: list[str] = []
    if isinstance(decoded.get(b"announce"), bytes):
        trackers.append(_text(decoded[b"announce"]))
    for tier in decoded.get(b"announce-list", []) or []:
        for tracker in tier if isinstance(tier, list) else []:
            if _text(tracker) not in trackers:
                trackers.append(_text(tracker))
    return TorrentInfo(
        data=data,
        name=name,
        info_hash=hashlib.sha1(data[start:end]).hexdigest(),
        trackers=tuple(trackers),
        files=files,
    )


def file_selection(files: Iterable[int | str] | None, names: Sequence[str] | None) -> str | None:
    """aria2's ``select-file`` value for ``files=``: indexes from 1 (as aria2 counts) or paths as
    :attr:`TorrentInfo.files` names them (with or without the torrent's top directory).

    ``names`` None (a torrent not yet fetched, at a URL) allows indexes only.
    """
    if files is None:
        return None
    if isinstance(files, (str, bytes, int)) or not isinstance(files, Iterable):
        raise BadTorrentError("files must be a list of file indexes (from 1) or names")
    chosen: list[int] = []
    for entry in files:
        if isinstance(entry, bool) or not isinstance(entry, (int, str)):
            raise BadTorrentError(f"files holds {entry!r}: give indexes (from 1) or names")
        if isinstance(entry, int):
            if entry < 1 or (names is not None and entry > len(names)):
                count = "" if names is None else f" (the torrent has {len(names)} files)"
                raise BadTorrentError(f"files holds index {entry}, out of range: indexes start at 1{count}")
            index = entry
        else:
            if names is None:
                raise BadTorrentError("a torrent at a URL takes files by index (from 1), not by name")
            matches = [n for n, path in enumerate(names, 1) if entry in (path, path.split("/", 1)[-1])]
            if not matches:
                raise BadTorrentError(f"the torrent has no file named {entry!r}; it has {list(names)[:10]}")
            index = matches[0]
        if index not in chosen:
            chosen.append(index)
    if not chosen:
        raise BadTorrentError("files is empty: leave it out (None) to get every file")
    return ",".join(str(index) for index in sorted(chosen))


# -- metalinks ---------------------------------------------------------------------------------

_NS = "{urn:ietf:params:xml:ns:metalink}"
_HASH_STRENGTH = ("sha-512", "sha-384", "sha-256", "sha-224", "sha-1", "md5")


@attrs.frozen
class MetalinkEntry:
    """One ``<file>`` of a metalink: its name, URLs (best priority first), size and hash."""

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    checksum: str | None = None  # aria2's ``checksum`` option: "sha-256=<hex>"


def _priority(name: str, url: ElementTree.Element) -> int:
    """A ``<url>``'s ``priority`` (1 is the best; none: after every ranked one)."""
    given = (url.get("priority") or "").strip()
    if not given:
        return 999999
    if not given.isdigit():
        raise BadMetalinkError(
            f"the metalink's file {name!r} has a URL priority that is not a number: {given!r}"
        )
    return int(given)


def parse_metalink(data: bytes) -> list[MetalinkEntry]:
    """The files a metalink (RFC 5854 ``.meta4``) describes, each URL checked as a caller's."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as problem:
        raise BadMetalinkError(f"not a metalink: the XML cannot be read ({problem})") from None
    if root.tag != f"{_NS}metalink":
        raise BadMetalinkError(f"not an RFC 5854 metalink: the root element is {root.tag!r}")
    entries: list[MetalinkEntry] = []
    for element in root.iter(f"{_NS}file"):
        name = element.get("name") or ""
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise BadMetalinkError(
                f"a metalink file name must be a relative path inside the directory: {name!r}"
            )
        ranked = sorted(
            enumerate(element.iter(f"{_NS}url")), key=lambda item: (_priority(name, item[1]), item[0])
        )
        urls = tuple((url.text or "").strip() for _, url in ranked)
        if not urls:
            raise BadMetalinkError(f"the metalink's file {name!r} has no URL")
        try:
            checked = tuple(check_uris(list(urls)))
        except Aria2InputError as problem:
            raise BadMetalinkError(
                f"the metalink's file {name!r} names a URL that is refused: {problem}"
            ) from None
        hashes = {
            (h.get("type") or "").lower(): (h.text or "").strip().lower() for h in element.iter(f"{_NS}hash")
        }
        kind = next((k for k in _HASH_STRENGTH if hashes.get(k)), None)
        checksum = None
        if kind is not None:
            try:
                checksum = check_checksum(f"{kind}={hashes[kind]}")
            except Aria2InputError as problem:
                raise BadMetalinkError(
                    f"the metalink's file {name!r} has a bad {kind} hash: {problem}"
                ) from None
        size = element.findtext(f"{_NS}size")
        if any(entry.name == name for entry in entries):
            raise BadMetalinkError(
                f"the metalink describes two files named {name!r}: each needs its own name"
            )
        entries.append(
            MetalinkEntry(
                name=name,
                urls=checked,
                size=int(size) if size and size.strip().isdigit() else None,
                checksum=checksum,
            )
        )
    if not entries:
        raise BadMetalinkError("the metalink describes no file")
    return entries
