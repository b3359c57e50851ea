"""``Aria2Client``'s BitTorrent and Metalink methods: magnets, torrents and metalinks.

A mixin of :class:`~aria2_sync.client.Aria2Client` (kept beside it so that the facade stays
short): each method checks its arguments and hands over to the engine's
:class:`~aria2_sync.engine.chains.ChainAdder`. The GID returned is the handle of the whole
download, through aria2's follow chain: it reports the payload, and its future resolves when
every selected payload file is complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable

from .engine.chains import ChainAdder
from .engine.core import failed_future
from .engine.futures import DownloadFuture
from .engine.record import Callbacks, DownloadRecord
from .errors import Aria2ClosedError
from .models import Progress
from .validation import check_callables

if TYPE_CHECKING:  # pragma: no cover
    from .engine.adds import Adder
    from .engine.core import Engine

__all__ = ["ChainMethods"]


def _callbacks(
    on_progress: Callable[[Progress], Any] | None,
    on_restart: Callable[[Progress], Any] | None,
    on_done: Callable[[DownloadFuture], Any] | None,
) -> Callbacks:
    return Callbacks(**check_callables(on_progress=on_progress, on_restart=on_restart, on_done=on_done))


class ChainMethods:
    """``add_magnet``/``add_torrent``/``add_metalink`` and their ``submit_*`` twins.

    What they share: ``save_dir`` is the directory to write into (aria2's ``dir``; default: the
    daemon's); ``options`` are aria2 per-download options, checked like ``add_download``'s.
    BitTorrent downloads do not seed unless asked: ``seed-time=0`` is set unless ``seed_time``
    (minutes, aria2's ``seed-time``) or ``seed_ratio`` (aria2's ``seed-ratio``; 0.0 = no limit)
    is given, here or in ``options``. A download that seeds is done for the caller when its
    payload is complete (``Progress.seeding`` is then True while aria2 uploads); cancel it, or
    let aria2's limit end the seeding. A future resolves to a :class:`~aria2_sync.DownloadResult`
    whose ``paths`` are every selected file, ``seeding`` says whether aria2 still uploads, and
    ``verified`` what aria2 checked (a torrent's pieces, a metalink's hash). Errors:
    :class:`Aria2InputError` subclasses for bad input (:class:`~aria2_sync.errors.BadMagnetError`,
    :class:`~aria2_sync.errors.BadTorrentError`, :class:`~aria2_sync.errors.BadMetalinkError`),
    and what ``add_download`` raises once the daemon is asked.
    """

    if TYPE_CHECKING:  # pragma: no cover
        _adder: Adder
        _engine: Engine

        def _check_open(self) -> None: ...

    @property
    def _chains(self) -> ChainAdder:
        return ChainAdder(self._adder)

    def _future(self, add: Callable[[], DownloadRecord]) -> DownloadFuture:
        self._check_open()
        try:
            record = add()
        except Aria2ClosedError as error:
            if error.gid is None:
                raise
            return failed_future(error.gid, error)
        return self._engine.future_of(record)

    # -- magnets --------------------------------------------------------------------------------

    def add_magnet(
        self,
        uri: str,
        save_dir: str | os.PathLike[str] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
    ) -> str:
        """Add a magnet URI and return its GID, the handle of the download through its chain.

        aria2 first fetches the torrent's metadata from peers (``get_progress(gid).status`` is
        ``"metadata"`` meanwhile, never ``"complete"``), then the payload under a GID of its own;
        the handle then reports the payload. The metadata is saved beside the payload as
        ``<info hash>.torrent`` (aria2's ``bt-save-metadata``) so that a restart resumes the
        payload without asking peers again.

        Args:
            uri: A ``magnet:?xt=urn:btih:<info hash>`` URI.
            save_dir: The directory to write into (aria2's ``dir``); None: the daemon's.
            options: aria2 per-download options, checked like ``add_download``'s.
            seed_time: Minutes to seed after the payload is complete (aria2's ``seed-time``);
                None, with no ``seed_ratio``: no seeding.
            seed_ratio: Share ratio at which seeding stops (aria2's ``seed-ratio``; 0.0: no limit).

        Returns:
            The download's GID, the handle through its chain.

        Raises:
            BadMagnetError: A URI without ``xt=urn:btih:<info hash>`` (an :class:`Aria2InputError`).
            Aria2InputError: Bad ``options``.
            Aria2RPCError: aria2 refused the download.
            Aria2ConnectionError: The daemon cannot be reached (with ``gid`` set: the answer was
                lost, and the download is watched under that GID).
            Aria2ClosedError: The client is closed.
        """
        self._check_open()
        return self._chains.add_magnet(uri, save_dir, options, Callbacks(), seed_time, seed_ratio).gid

    def submit_magnet(
        self,
        uri: str,
        save_dir: str | os.PathLike[str] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
        on_progress: Callable[[Progress], Any] | None = None,
        on_restart: Callable[[Progress], Any] | None = None,
        on_done: Callable[[DownloadFuture], Any] | None = None,
    ) -> DownloadFuture:
        """:meth:`add_magnet`, returning a future (as ``submit`` does).

        Args:
            uri: As in :meth:`add_magnet`.
            save_dir: As in :meth:`add_magnet`.
            options: aria2 per-download options, checked like ``add_download``'s.
            seed_time: Minutes to seed after the payload is complete (aria2's ``seed-time``);
                None, with no ``seed_ratio``: no seeding.
            seed_ratio: Share ratio at which seeding stops (aria2's ``seed-ratio``; 0.0: no limit).
            on_progress: Called with the new :class:`~aria2_sync.Progress` when the snapshot changes.
            on_restart: Called with the failed :class:`~aria2_sync.Progress` after each restart.
            on_done: Called with the future once it has its outcome.

        Returns:
            A future that resolves when the payload is complete, to a ``DownloadResult`` whose
            ``paths`` are the payload's files.

        Raises:
            BadMagnetError: As in :meth:`add_magnet`; the other errors too.
        """
        callbacks = _callbacks(on_progress, on_restart, on_done)
        return self._future(
            lambda: self._chains.add_magnet(uri, save_dir, options, callbacks, seed_time, seed_ratio)
        )

    # -- torrents -------------------------------------------------------------------------------

    def add_torrent(
        self,
        torrent: bytes | str | os.PathLike[str],
        save_dir: str | os.PathLike[str] | None = None,
        *,
        files: Iterable[int | str] | None = None,
        options: Mapping[str, Any] | None = None,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
    ) -> str:
        """Add a ``.torrent`` and return its GID: the handle of its payload.

        ``torrent`` is the file's bytes, its path, or an http(s) URL (aria2 fetches it into
        memory, ``follow-torrent=mem``, and the handle follows on to the payload; ``metadata``
        is its status meanwhile). ``files`` selects files of a multi-file torrent: indexes from
        1 (aria2's ``select-file``: the torrent's file order) or paths (``"dir/a.bin"``, with or
        without the torrent's name in front); None: every file. Only the selected files count
        toward completion (aria2 may write the parts of others that share a piece with them).

        Args:
            torrent: The ``.torrent`` file's bytes, its path, or an http(s) URL.
            save_dir: The directory to write into (aria2's ``dir``); None: the daemon's.
            files: Indexes from 1 or paths of the files to download; None: every file.
            options: aria2 per-download options, checked like ``add_download``'s.
            seed_time: Minutes to seed after the payload is complete (aria2's ``seed-time``);
                None, with no ``seed_ratio``: no seeding.
            seed_ratio: Share ratio at which seeding stops (aria2's ``seed-ratio``; 0.0: no limit).

        Returns:
            The download's GID, the handle of its payload.

        Raises:
            BadTorrentError: Bytes that are not a bencoded torrent with an ``info`` dict, a file
                that cannot be read, or a ``files`` entry out of range or unknown (names only for
                bytes or paths); an :class:`Aria2InputError`.
            Aria2InputError: Bad ``options``.
            Aria2RPCError: aria2 refused the download.
            Aria2ConnectionError: The daemon cannot be reached (with ``gid`` set: the answer was
                lost, and the download is watched under that GID).
            Aria2ClosedError: The client is closed.
        """
        self._check_open()
        chains = self._chains
        return chains.add_torrent(torrent, save_dir, files, options, Callbacks(), seed_time, seed_ratio).gid

    def submit_torrent(
        self,
        torrent: bytes | str | os.PathLike[str],
        save_dir: str | os.PathLike[str] | None = None,
        *,
        files: Iterable[int | str] | None = None,
        options: Mapping[str, Any] | None = None,
        seed_time: float | None = None,
        seed_ratio: float | None = None,
        on_progress: Callable[[Progress], Any] | None = None,
        on_restart: Callable[[Progress], Any] | None = None,
        on_done: Callable[[DownloadFuture], Any] | None = None,
    ) -> DownloadFuture:
        """:meth:`add_torrent`, returning a future (as ``submit`` does).

        Args:
            torrent: As in :meth:`add_torrent`.
            save_dir: As in :meth:`add_torrent`.
            files: As in :meth:`add_torrent`.
            options: aria2 per-download options, checked like ``add_download``'s.
            seed_time: Minutes to seed after the payload is complete (aria2's ``seed-time``);
                None, with no ``seed_ratio``: no seeding.
            seed_ratio: Share ratio at which seeding stops (aria2's ``seed-ratio``; 0.0: no limit).
            on_progress: Called with the new :class:`~aria2_sync.Progress` when the snapshot changes.
            on_restart: Called with the failed :class:`~aria2_sync.Progress` after each restart.
            on_done: Called with the future once it has its outcome.

        Returns:
            A future that resolves when every selected file is complete, to a ``DownloadResult``
            (``paths``: the selected files).

        Raises:
            BadTorrentError: As in :meth:`add_torrent`; the other errors too.
        """
        callbacks = _callbacks(on_progress, on_restart, on_done)
        return self._future(
            lambda: self._chains.add_torrent(
                torrent, save_dir, files, options, callbacks, seed_time, seed_ratio
            )
        )

    # -- metalinks ------------------------------------------------------------------------------

    def add_metalink(
        self,
        metalink: bytes | str | os.PathLike[str],
        save_dir: str | os.PathLike[str] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> str:
        """Add the file a metalink (RFC 5854 ``.meta4``, bytes or a path) describes; its GID.

        One logical download per file: the metalink must describe one file (one of several:
        :meth:`add_metalink_batch`), added as the mirrors it lists (best ``priority`` first; a
        dead mirror is passed over), written as the name it gives inside ``save_dir``, and
        verified by its strongest hash (aria2's ``checksum``; the result's ``verified`` says
        ``"sha-256 hash from the metalink (aria2)"``), like ``add_download``'s: the same GID
        handle, restarts and idempotent add. Every URL in it is checked by the rules a caller's
        URL is.

        Args:
            metalink: The metalink's bytes or its path.
            save_dir: The directory to write into (aria2's ``dir``); None: the daemon's.
            options: aria2 per-download options; not ``out`` or ``checksum`` (the metalink
                gives them).

        Returns:
            The download's GID.

        Raises:
            BadMetalinkError: A document that is not a metalink, names a refused URL or a bad
                hash, or describes no file or several; an :class:`Aria2InputError`.
            Aria2InputError: Bad ``options``.
            Aria2RPCError: aria2 refused the download.
            Aria2ConnectionError: The daemon cannot be reached (with ``gid`` set: the answer was
                lost, and the download is watched under that GID).
            Aria2ClosedError: The client is closed.
        """
        self._check_open()
        return self._chains.add_metalink(metalink, save_dir, options, Callbacks()).gid

    def submit_metalink(
        self,
        metalink: bytes | str | os.PathLike[str],
        save_dir: str | os.PathLike[str] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        on_progress: Callable[[Progress], Any] | None = None,
        on_restart: Callable[[Progress], Any] | None = None,
        on_done: Callable[[DownloadFuture], Any] | None = None,
    ) -> DownloadFuture:
        """:meth:`add_metalink`, returning a future (as ``submit`` does).

        Args:
            metalink: As in :meth:`add_metalink`.
            save_dir: As in :meth:`add_metalink`.
            options: As in :meth:`add_metalink`.
            on_progress: Called with the new :class:`~aria2_sync.Progress` when the snapshot changes.
            on_restart: Called with the failed :class:`~aria2_sync.Progress` after each restart.
            on_done: Called with the future once it has its outcome.

        Returns:
            A future that resolves when the file is complete (and verified by its hash).

        Raises:
            BadMetalinkError: As in :meth:`add_metalink`; the other errors too.
        """
        callbacks = _callbacks(on_progress, on_restart, on_done)
        return self._future(lambda: self._chains.add_metalink(metalink, save_dir, options, callbacks))

    def add_metalink_batch(
        self,
        metalink: bytes | str | os.PathLike[str],
        save_dir: str | os.PathLike[str] | None = None,
        *,
        options: Mapping[str, Any] | None = None,
        batch_id: str | None = None,
    ) -> str:
        """Add every file a metalink describes, each as one download of one batch; its id.

        Each file is added as :meth:`add_metalink` adds a metalink's one file (its mirrors, its
        name inside ``save_dir``, its strongest hash), with its own GID; together they are
        batch ``batch_id`` (None: a new id), so ``get_batch_progress``, ``batch_futures``,
        ``wait_for_batch`` and ``cancel_batch`` take it, as for ``add_batch_downloads``. A
        metalink of one file makes a batch of one. Everything is checked before anything is
        sent.

        Args:
            metalink: The metalink's bytes or its path.
            save_dir: The directory to write into; None: the daemon's.
            options: As in :meth:`add_metalink`.
            batch_id: The batch's id; None: a new one.

        Returns:
            The batch's id.

        Raises:
            BadMetalinkError: As :meth:`add_metalink` (several files excepted; two files of one
                name are refused).
            Aria2InputError: Bad ``options``, or a ``batch_id`` in use.
            Aria2ConnectionError: The daemon cannot be reached (as ``add_batch_downloads``).
            Aria2ClosedError: The client is closed.
        """
        self._check_open()
        return self._chains.add_metalink_batch(metalink, save_dir, options, batch_id)
