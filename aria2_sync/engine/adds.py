"""Adding downloads so that a lost answer never loses, nor duplicates, a download.

The client picks each download's GID before the add and puts its record in the ledger first:
if the daemon's answer is lost and cannot be checked, the download may exist, and it stays
watched (the monitor settles it either way). Until the add returns, the record is ``adding``:
the daemon not knowing the GID then means "not yet", not "lost". After the add:

* an add that certainly did not happen is forgotten (its record dropped, also from the store);
* one whose answer was lost (``maybe_applied``) is kept and watched, and the caller's error
  names its GID, so that nobody adds it again;
* an add refused because the GID is taken by this very download (added meanwhile by another
  process acting on the shared state) is an add that happened;
* once the daemon has the download, nothing may lose its GID: trouble with the state file
  afterwards is logged, never raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, Any, Callable

from ..errors import (
    Aria2AuthError,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2Error,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2RPCError,
    redact_text,
    redact_url,
)
from ..logs import logger
from ..rpc.methods import new_gid
from ..safety import check_checksum, with_safety
from ..validation import (
    BatchOptions,
    PathArg,
    UrlArg,
    check_local_directory,
    check_uris,
    download_options,
)
from .following import send_add
from .ledger import Batch
from .record import Callbacks, DownloadRecord

if TYPE_CHECKING:  # pragma: no cover
    from .core import Engine

__all__ = ["Adder"]


def _new_gids(per_read: int = 256) -> Iterator[str]:
    """Random GIDs, as :func:`~aria2_sync.rpc.methods.new_gid` makes them, from one read of
    ``os.urandom`` per ``per_read`` of them (a batch of thousands needs thousands)."""
    while True:
        digits = os.urandom(8 * per_read).hex()
        for start in range(0, 16 * per_read, 16):
            gid = digits[start : start + 16]
            if gid != "0000000000000000":
                yield gid


def _batch_item(index: int, item: Any) -> tuple[Any, Any, Any]:
    """``(url, save_path, checksum)`` from one batch item: a pair, a 1-tuple, a
    ``(url, save_path, checksum)`` triple, or a plain URL."""
    if isinstance(item, str):
        return item, None, None
    if isinstance(item, (tuple, list)) and len(item) in (1, 2, 3):
        return item[0], item[1] if len(item) > 1 else None, item[2] if len(item) == 3 else None
    raise Aria2InputError(
        f"item {index} of the batch must be a (url, save_path) pair, a (url, save_path, checksum) "
        f"triple or a URL, got {item!r:.60}"
    )


class Adder:
    """Adds downloads for one engine (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rpc = engine.rpc
        self.ledger = engine.ledger

    @property
    def _closed(self) -> bool:
        return self.engine.closed

    @property
    def _attempts(self) -> int:
        return self.engine.config.max_retries + 1

    # -- from the caller's arguments --------------------------------------------------------------

    def add_new(
        self,
        url: UrlArg,
        save_path: PathArg | None,
        options: Mapping[str, Any] | None,
        callbacks: Callbacks,
        checksum: str | None = None,
        follow: bool = False,
    ) -> DownloadRecord:
        """Check one download's arguments, give it a GID and add it (:meth:`add_one`).

        ``checksum`` and ``follow`` become options (:func:`~aria2_sync.safety.with_safety`)."""
        uris = check_uris(url)
        merged = self.download_options(save_path, with_safety(options, checksum, follow))
        gid = new_gid()
        record = DownloadRecord(
            gid=gid, uris=uris, options=merged, current_gid=gid, callbacks=callbacks, adding=True
        )
        return self.add_one(record)

    def add_new_batch(
        self,
        urls_with_paths: Iterable[str | Sequence[Any]],
        batch_id: str | None,
        options: Mapping[str, Any] | None,
        follow: bool = False,
    ) -> str:
        """Check every item of a batch before anything is sent, then add them (:meth:`add_batch`).

        What is the same for every item is done once (:class:`BatchOptions`: the shared
        options; here: a directory's existence and write access); the records share one
        options dict, each keeping its own ``dir``/``out``.
        """
        batch_id = self.new_batch_id(batch_id)
        if isinstance(urls_with_paths, (str, bytes)) or not isinstance(urls_with_paths, Iterable):
            raise Aria2InputError("urls_with_paths must be a list of (url, save_path) pairs")
        size = len(urls_with_paths) if isinstance(urls_with_paths, Sized) else 0
        batch = BatchOptions(with_safety(options, None, follow), size)
        local = self.engine.config.daemon_is_local
        checked_dirs: set[str] = set()
        gids = _new_gids()
        now = time.time()  # (one added_at for the batch: before any of it is sent)
        records: list[DownloadRecord] = []
        keep, new_record, of = records.append, DownloadRecord.adding_in_batch, batch.of
        for index, item in enumerate(urls_with_paths):
            checksum = None
            if type(item) is tuple and len(item) == 2:
                url, save_path = item
            else:
                url, save_path, checksum = _batch_item(index, item)
            try:
                uris = check_uris(url)
                shared, place = of(save_path)
                if checksum is not None:  # (its own options: the shared dict is not to be changed)
                    shared = {**shared, "checksum": check_checksum(checksum)}
                directory = place[0] if place is not None else shared.get("dir")
                if local and isinstance(directory, str) and directory not in checked_dirs:
                    check_local_directory(directory)
                    checked_dirs.add(directory)
            except Aria2InputError as error:
                raise Aria2InputError(f"item {index} of the batch: {error}") from None
            gid = next(gids)
            if len(uris) == 1:
                keep(new_record(gid, uris[0], shared, batch_id, now, place))
            else:
                keep(DownloadRecord(gid, uris, shared, gid, batch_id, now, adding=True, place=place))
        return self.add_batch(batch_id, records)

    def download_options(
        self, save_path: PathArg | None, options: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The aria2 options of one download (its directory checked on a daemon on this machine)."""
        merged = download_options(save_path, options)
        directory = merged.get("dir")
        if self.engine.config.daemon_is_local and isinstance(directory, str):
            check_local_directory(directory)
        return merged

    def new_batch_id(self, batch_id: str | None) -> str:
        if batch_id is None:
            return os.urandom(16).hex()
        if not isinstance(batch_id, str) or not batch_id.strip():
            raise Aria2InputError("batch_id must be a non-empty str (or None for a generated one)")
        if self.ledger.has_batch(batch_id):
            raise Aria2InputError(f"batch_id {batch_id!r} is already in use: choose another")
        return batch_id

    # -- to the daemon ------------------------------------------------------------------------------

    def add_one(self, record: DownloadRecord) -> DownloadRecord:
        """Add ``record`` (made ``adding``, with its options checked) to the daemon.

        Returns it once the daemon has it; raises as ``Aria2Client.add_download`` documents.
        """
        gid, uris, merged = record.gid, record.uris, record.options
        # Into the ledger before the add: if the answer is lost and cannot be checked, the
        # download may exist, and it must stay tracked (the monitor settles it either way).
        # Until the add returns, ``adding`` tells the monitor not to take "not found" as lost.
        self.ledger.add(record)
        try:
            send_add(self.rpc, uris, merged, gid, record.source, self._attempts)
        except Aria2ConnectionError as error:
            if not error.maybe_applied:
                self._forget_failed_add([gid])
                if self._closed:
                    raise self._closed_meanwhile(error, None) from error
                raise
            self._after_add([record])  # unknown outcome: from here on, recovery may take over
            error.gid = gid
            error.message += (
                f" The download may have been added as GID {gid}: this client keeps watching it "
                "(get_progress(gid) tells; cancel_download(gid) stops it), so do not add it again."
            )
            if self._closed:
                raise self._closed_meanwhile(error, gid) from error
            raise
        except Aria2ClosedError as error:
            if not error.maybe_applied:
                self._forget_failed_add([gid])
                raise
            self._after_add([record])  # cut off in flight by close(): the download may exist
            raise self._closed_meanwhile(error, gid) from error
        except Aria2RPCError as error:
            if not self._refused_add_exists(gid, error):
                self._forget_failed_add([gid])
                raise
            # Refused because the GID is taken, by this very download: added meanwhile by
            # someone acting on the shared state. It exists; nothing to undo or redo.
        except Aria2Error as error:
            self._forget_failed_add([gid])
            if self._closed:
                raise self._closed_meanwhile(error, None) from error
            raise
        # From here on the daemon has the download: nothing may lose its GID (see add_download).
        self._after_add([record])
        logger.info("added download: %s -> GID %s", redact_url(uris[0]), gid)
        return record

    def add_batch(self, batch_id: str, records: list[DownloadRecord]) -> str:
        """Add ``records`` (checked, ``adding``) as batch ``batch_id`` in multicall chunks.

        Returns the batch's id; raises as ``Aria2Client.add_batch_downloads`` documents.
        """
        # Into the ledger before the adds, for the same reason as in add_download.
        self.ledger.add_batch(Batch(batch_id, [r.gid for r in records]), records)
        try:
            refusals = self.rpc.add_many_once([r.add_arguments() for r in records], attempts=self._attempts)
        except Aria2ConnectionError as error:
            if not error.maybe_applied and getattr(error, "items_done", 0) == 0:
                self._forget_failed_add([], batch_id)  # nothing reached the daemon
                if self._closed:
                    raise self._closed_meanwhile(error, None) from error
                raise
            self._after_add(records)
            error.batch_id = batch_id
            error.message += (
                f" Part of batch {batch_id} may have been added: this client keeps it and adds "
                "the rest when the daemon answers (get_batch_progress tells; close(cancel=True) "
                "stops it), so do not add it again."
            )
            raise
        except Aria2ClosedError as error:
            if not error.maybe_applied:
                self._forget_failed_add([], batch_id)
                raise
            # Cut off in flight by close(): the downloads may exist. The batch id is the
            # caller's handle on them; its futures fail with Aria2ClosedError at once.
            self._after_add(records)
            return batch_id
        except Aria2Error as error:
            self._forget_failed_add([], batch_id)
            if self._closed:
                raise self._closed_meanwhile(error, None) from error
            raise
        all_added = refusals.count(None) == len(refusals)  # (the common case, at C speed)
        denied = None if all_added else next((r for r in refusals if isinstance(r, Aria2AuthError)), None)
        if denied is not None:  # a wrong secret refuses every item: that is the call's error
            self._forget_failed_add([], batch_id)
            raise denied
        # From here on the daemon has (some of) the downloads: nothing may lose the batch's id.
        refused = (
            []
            if all_added
            else self._really_refused([(r, e) for r, e in zip(records, refusals) if e is not None])
        )
        for record, refusal in refused:
            self.engine.tracker.reject(record, refusal)
        self._after_add(records)
        logger.info(
            "added batch %s: %d downloads%s",
            batch_id,
            len(records) - len(refused),
            f", {len(refused)} refused by aria2" if refused else "",
        )
        return batch_id

    def _refused_add_exists(self, gid: str, refusal: Aria2RPCError) -> bool:
        """Whether a download whose add was refused exists all the same (the GID was taken).

        A check that cannot be made counts as "no" (the refusal stands, and is what the caller
        hears about); what went wrong with the check is added to the refusal's message.
        """
        if isinstance(refusal, Aria2AuthError):
            return False
        try:
            return self._exists(gid)
        except Aria2Error as error:
            refusal.message += f" (could not check whether GID {gid} exists anyway: {error})"
            return False

    def _forget_failed_add(self, gids: list[str], batch_id: str | None = None) -> None:
        """Drop the records of adds that did not happen; a store that cannot be told is logged
        (the add's own error is what the caller must hear)."""
        try:
            if batch_id is not None:
                self.ledger.forget_batch(batch_id)
            else:
                for gid in gids:
                    self.ledger.forget(gid)
        except Exception as error:
            logger.warning(
                "could not remove the record of a failed add from the shared state (%s)",
                redact_text(str(error)),
            )

    def _closed_meanwhile(self, error: Aria2Error, gid: str | None) -> Aria2ClosedError:
        """The error of an add interrupted by :meth:`close` (``gid``: it may exist)."""
        maybe = (
            f" Download {gid} may have been added and may be running in the daemon."
            if gid is not None
            else ""
        )
        closed = Aria2ClosedError(
            f"the client was closed during the add ({error}).{maybe}",
            maybe_applied=gid is not None,
            gid=gid,
        )
        closed.__cause__ = error
        return closed

    def _after_add(self, records: list[DownloadRecord]) -> None:
        """The daemon has these downloads: mark them added, watch them, keep the retention.

        Each step that touches the state file may fail (locked by another process for too
        long, a damaged row elsewhere in it); that is logged at WARNING and never raised: the
        downloads exist, their GIDs must reach the caller, and the monitor watches them from
        this process's memory all the same.
        """
        DownloadRecord.all_added(records)
        if self._closed:
            return  # closed during the add: nothing watches any more, and the store is shut
        gids = [record.gid for record in records]
        # (other processes may now take them for lost if they are)
        self._store_step("releasing its lease", gids, lambda: self.ledger.release(*records))
        self._store_step("starting to watch it", gids, self.engine.watch)
        self._store_step("applying the retention", gids, self.ledger.prune_if_due)

    def _store_step(self, what: str, gids: list[str], action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception as error:
            shown = ", ".join(gids[:3]) + (f" and {len(gids) - 3} more" if len(gids) > 3 else "")
            logger.warning(
                "download %s added, but the shared state failed while %s (%s: %s); this "
                "client keeps watching it in memory",
                shown,
                what,
                type(error).__name__,
                redact_text(str(error)),
            )

    def _really_refused(
        self, refused: list[tuple[DownloadRecord, Exception]]
    ) -> list[tuple[DownloadRecord, Exception]]:
        """The refused items of a batch that do not exist all the same (see add_download).

        A GID refused because it already exists is not a refusal; when that cannot be checked,
        every refusal stands (each item fails with aria2's reason; nothing stays half-added).
        """
        if not refused:
            return refused
        try:
            present = self.rpc.multicall([("aria2.tellStatus", [r.gid, ["gid"]]) for r, _ in refused])
        except Aria2Error as error:
            logger.warning(
                "could not check whether %d refused downloads exist anyway (%s); they count as refused",
                len(refused),
                error,
            )
            return refused
        return [(r, e) for (r, e), found in zip(refused, present) if isinstance(found, Aria2RPCError)]

    def _exists(self, gid: str) -> bool:
        try:
            self.rpc.tell_status(gid, ["gid"])
            return True
        except Aria2GIDNotFoundError:
            return False
