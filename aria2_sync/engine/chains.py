"""Adding magnets, torrents and metalinks, each as one logical download with one handle.

A metalink's file is one download (its mirrors, its name, its hash); a metalink of several
files is added as one batch of those downloads (:meth:`ChainAdder.add_metalink_batch`).

The inputs are checked first (:mod:`aria2_sync.engine.btinput`, imported when first used: it
parses XML and bencode, which plain URL adds never need), then the download goes through the
:class:`~aria2_sync.engine.adds.Adder` like any other: a client-chosen GID, no duplicate after
a lost answer. BitTorrent adds get ``seed-time=0`` unless the caller asks to seed (``seed-time``
or ``seed-ratio``): a script that exits must not leave the daemon uploading.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import Aria2InputError, BadMetalinkError, BadTorrentError
from ..rpc.methods import new_gid
from .following import magnet_info_hash, seed_options
from .record import Callbacks, DownloadRecord
from .states import Source

if TYPE_CHECKING:  # pragma: no cover
    from ..validation import PathArg
    from .adds import Adder
    from .btinput import MetalinkEntry

__all__ = ["ChainAdder"]

#: The source of every metalink file's download (they are added as mirrors: no bytes to keep).
_METALINK = Source("metalink")


class ChainAdder:
    """Adds magnets, torrents and metalinks through an :class:`~aria2_sync.engine.adds.Adder`,
    with its guarantees (a client-chosen GID, no duplicate after a lost answer)."""

    def __init__(self, adder: Adder) -> None:
        self.adder = adder

    def _options(
        self,
        save_dir: PathArg | None,
        options: Mapping[str, Any] | None,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
        *,
        bittorrent: bool = True,
    ) -> dict[str, Any]:
        given = dict(options or {})
        if save_dir is not None:
            if "dir" in given:
                raise Aria2InputError("save_dir and options['dir'] both say where to write: give one of them")
            given["dir"] = os.fspath(save_dir)
        merged: dict[str, Any] = self.adder.download_options(None, given)
        if bittorrent:
            seed_options(merged, seed_time, seed_ratio)
        return merged

    def _add(
        self, uris: list[str], options: dict[str, Any], source: Source, callbacks: Callbacks
    ) -> DownloadRecord:
        gid = new_gid()
        record = DownloadRecord(
            gid=gid,
            uris=uris,
            options=options,
            current_gid=gid,
            callbacks=callbacks,
            adding=True,
            source=source,
        )
        return self.adder.add_one(record)

    def add_magnet(
        self,
        uri: Any,
        save_dir: PathArg | None,
        options: Mapping[str, Any] | None,
        callbacks: Callbacks,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
    ) -> DownloadRecord:
        """A magnet: its metadata under the handle, then its payload (followed)."""
        from .btinput import check_magnet

        uri = check_magnet(uri)
        merged = self._options(save_dir, options, seed_time, seed_ratio)
        merged.setdefault("bt-save-metadata", "true")  # (a restart of the payload resumes from it)
        return self._add([uri], merged, Source("magnet", None, magnet_info_hash(uri)), callbacks)

    def add_torrent(
        self,
        torrent: Any,
        save_dir: PathArg | None,
        files: Iterable[int | str] | None,
        options: Mapping[str, Any] | None,
        callbacks: Callbacks,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
    ) -> DownloadRecord:
        """A ``.torrent`` (bytes, a path, or an http(s) URL fetched by aria2 and followed)."""
        from .btinput import file_selection, is_torrent_url, read_input, read_torrent

        merged = self._options(save_dir, options, seed_time, seed_ratio)
        if is_torrent_url(torrent):
            from ..validation import check_uris

            selection = file_selection(files, None)
            if selection is not None:
                merged["select-file"] = selection
            merged["follow-torrent"] = "mem"  # (the .torrent is not left in the directory)
            merged["follow-metalink"] = "false"  # (a torrent URL is followed as a torrent only)
            return self._add(check_uris(torrent), merged, Source("torrent-url"), callbacks)
        info = read_torrent(read_input(torrent, "torrent", BadTorrentError))
        selection = file_selection(files, info.files)
        if selection is not None:
            merged["select-file"] = selection
        merged.setdefault("rpc-save-upload-metadata", "false")  # (no <info hash>.torrent left behind)
        return self._add([info.magnet()], merged, Source("torrent", info.data, info.info_hash), callbacks)

    def add_metalink(
        self,
        metalink: Any,
        save_dir: PathArg | None,
        options: Mapping[str, Any] | None,
        callbacks: Callbacks,
    ) -> DownloadRecord:
        """The one file a metalink describes, as mirrors of that file, verified by its hash."""
        entries = self._metalink_entries(metalink)
        if len(entries) != 1:
            raise BadMetalinkError(
                f"the metalink describes {len(entries)} files; add_metalink takes a metalink of one "
                "file: add_metalink_batch adds each of its files as a download of one batch"
            )
        return self._add(
            list(entries[0].urls), self._metalink_options(entries[0], save_dir, options), _METALINK, callbacks
        )

    def add_metalink_batch(
        self,
        metalink: Any,
        save_dir: PathArg | None,
        options: Mapping[str, Any] | None,
        batch_id: str | None,
    ) -> str:
        """Every file a metalink describes, each one download (as :meth:`add_metalink` adds its
        one file), together one batch; returns the batch's id (checked first, then the files)."""
        batch_id = self.adder.new_batch_id(batch_id)
        entries = self._metalink_entries(metalink)
        records = []
        now = time.time()  # (one added_at for the batch, as add_batch_downloads gives)
        for entry in entries:
            merged = self._metalink_options(entry, save_dir, options)
            gid = new_gid()
            records.append(
                DownloadRecord(
                    gid, list(entry.urls), merged, gid, batch_id, now, adding=True, source=_METALINK
                )
            )
        return self.adder.add_batch(batch_id, records)

    @staticmethod
    def _metalink_entries(metalink: Any) -> list[MetalinkEntry]:
        from .btinput import parse_metalink, read_input

        return parse_metalink(read_input(metalink, "metalink", BadMetalinkError))

    def _metalink_options(
        self, entry: MetalinkEntry, save_dir: PathArg | None, options: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """One metalink file's options: written as the name it gives, checked by its hash, and
        saved as the file it is (a mirror that serves a ``.torrent`` or a metalink is not followed:
        a metalink's URLs are nobody's choice to turn into a BitTorrent download).

        ``out`` and ``checksum`` are the metalink's to give: a caller's would rename every file
        of a batch alike, or make :attr:`~aria2_sync.engine.futures.DownloadResult.verified`
        claim a hash the metalink did not give."""
        given = dict(options or {})
        for key, says in (("out", "names its files"), ("checksum", "carries its files' hashes")):
            if key in given:
                raise Aria2InputError(f"a metalink {says}: leave options[{key!r}] out")
        given["out"] = entry.name
        if entry.checksum is not None:
            given["checksum"] = entry.checksum
        given["follow-torrent"] = given["follow-metalink"] = "false"
        return self._options(save_dir, given, bittorrent=False)
