"""Following a download through aria2's chain of GIDs, and adding it again the same way.

aria2 runs a magnet as two downloads: the metadata under the GID the client chose, then the
payload under a GID of aria2's own, which the first one names in ``followedBy`` in the same
snapshot where it turns ``complete`` (a ``.torrent`` at a URL, fetched with
``follow-torrent=mem``, does the same). Its ``onDownloadComplete`` is the metadata's. A client
that watched the first GID would call a magnet done when only its metadata is. Here:

* the record keeps every GID of the chain (:attr:`~aria2_sync.engine.recordview.RecordView.chain`);
  a read of the current one that shows ``followedBy`` moves the record to the payload
  (:func:`follow`) and shows the snapshot as ``metadata``, never as ``complete``; the caller's
  GID then reports the payload, and its future resolves with the payload's files;
* the payload is done when it is complete or seeding (aria2's ``seeder``): a download that
  seeds on is done for the caller all the same (:func:`result_of`: its
  :class:`~aria2_sync.engine.futures.DownloadResult` names its files and says it seeds);
* a restart re-adds the payload under its own GID from the ``.torrent`` bytes (kept in the
  record's :class:`~aria2_sync.engine.states.Source`, or saved by aria2 beside a magnet's
  payload with ``bt-save-metadata``), so aria2 resumes from its control file (:func:`send_add`).
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..logs import logger
from ..models import Progress
from ..rpc.methods import Aria2RPC
from .futures import DownloadResult
from .record import DownloadRecord
from .states import Source

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import Ledger

__all__ = ["follow", "magnet_info_hash", "result_of", "seed_options", "send_add", "torrent_for_restart"]


def result_of(record: DownloadRecord, last: Progress, attempts: tuple[dict[str, Any], ...]) -> DownloadResult:
    """The :class:`DownloadResult` of ``record``, complete as ``last`` (its final read) shows.

    A BitTorrent payload names every selected file in ``paths`` (``path`` is the first) and
    says whether aria2 seeds on (asked to: ``seed_time``/``seed_ratio``); ``verified`` says what aria2 checked
    (:meth:`DownloadResult.verification`: a torrent's pieces, a metalink's hash, a checksum).
    """
    source = record.source
    if source is None:
        paths: tuple[str, ...] = (last.file_path,) if last.file_path else ()
    else:
        paths = tuple(f.path for f in last.files if f.path and f.selected)
    return DownloadResult(
        gid=record.gid,
        path=paths[0] if paths else last.file_path,
        size=last.total_length,
        url=record.url,
        retry_count=record.retry_count,
        attempts=attempts,
        verified=DownloadResult.verification(record.options, source.kind if source is not None else None),
        paths=paths,
        seeding=last.seeding and _seeds_on(record.options),
    )


def _seeds_on(options: Mapping[str, Any]) -> bool:
    """Whether aria2 goes on seeding a complete payload: not with ``seed-time=0`` (the client's
    default), which aria2 still shows as ``seeder`` for a moment before it stops."""
    value = options.get("seed-time")
    try:
        return value is None or float(value) > 0
    except (TypeError, ValueError):
        return True


# -- following the chain -----------------------------------------------------------------------


def follow(ledger: Ledger, record: DownloadRecord, run: int, followers: Any, progress: Progress) -> Progress:
    """A read of run ``run`` of ``record`` says its current download is followed by
    ``followers`` (aria2's ``followedBy``): move the record to the first of them, the payload.

    Returns the snapshot to show for it: ``metadata`` (the payload has only just begun). A read
    of a run that is over moves nothing. A metalink found at a URL is followed by one download
    per file: the handle follows the first one (the others run on in the daemon, unwatched).
    """
    gids = [str(gid) for gid in followers] if isinstance(followers, list) else []
    current, current_run = record.where()
    if gids and current_run == run and gids[0] not in record.chain:
        ledger.rebind(record, gids[0])
        logger.info("download GID %s: %s is followed by GID %s (the payload)", record.gid, current, gids[0])
        if len(gids) > 1:
            logger.warning(
                "download GID %s is followed by %d downloads; its handle follows the first, %s",
                record.gid,
                len(gids),
                gids[0],
            )
    return attrs.evolve(progress, status="metadata", total_length=0, completed_length=0, files=())


def seed_options(options: dict[str, Any], seed_time: float | None, seed_ratio: float | None) -> None:
    """Seeding is opt-in: ``seed-time=0`` unless ``seed_time``/``seed_ratio`` (or the options'
    ``seed-time``/``seed-ratio``) ask for it. Changes ``options`` in place."""
    if seed_time is not None:
        options["seed-time"] = str(seed_time)
    if seed_ratio is not None:
        options["seed-ratio"] = str(seed_ratio)
    if "seed-time" not in options and "seed-ratio" not in options:
        options["seed-time"] = "0"


def send_add(
    rpc: Aria2RPC,
    uris: Sequence[str],
    options: Mapping[str, Any],
    gid: str,
    source: Source | None,
    attempts: int,
) -> None:
    """Add a download under ``gid``: from its ``.torrent`` bytes when known, else its URIs."""
    if source is not None and source.torrent is not None:
        rpc.add_torrent_once(source.torrent, options, gid, attempts=attempts)
    else:
        rpc.add_uri_once(uris, options, gid, attempts=attempts)


def magnet_info_hash(uri: str) -> str | None:
    """The info hash (hex) of a magnet URI, if it names one."""
    for topic in urllib.parse.parse_qs(uri.partition("?")[2]).get("xt", []):
        digest = topic[len("urn:btih:") :] if topic.startswith("urn:btih:") else ""
        if len(digest) == 40:
            return digest.lower()
        if len(digest) == 32:
            try:
                return base64.b32decode(digest.upper()).hex()
            except binascii.Error:
                return None
    return None


def torrent_for_restart(record: DownloadRecord, directory: str | None) -> Source | None:
    """The source to add ``record``'s payload again from: its own, or for a magnet whose payload
    has begun, the ``.torrent`` aria2 saved (``bt-save-metadata``) as ``<dir>/<info hash>.torrent``
    (re-adding the payload, not the magnet, resumes at once without asking peers again)."""
    source = record.source
    if source is None or source.torrent is not None or source.kind != "magnet" or record.awaiting_payload:
        return source
    if not source.info_hash or not directory:
        return source
    try:
        with open(os.path.join(directory, f"{source.info_hash}.torrent"), "rb") as file:
            return Source("magnet", file.read(), source.info_hash)
    except OSError:
        return source  # (not on this machine: the magnet is added again, and followed again)
