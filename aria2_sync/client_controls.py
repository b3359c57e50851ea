"""The everyday controls of a download manager, on ``Aria2Client``: options, queue, everything at once.

A mixin of :class:`~aria2_sync.client.Aria2Client` (the facade stays short). Each method checks
its arguments, then asks the daemon (every daemon of a pool) through ``client.rpc``; the ones
about one download follow it through restarts by its handle GID, and a changed option stays
with the download when it is restarted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import Aria2Error, Aria2GIDNotFoundError, Aria2InputError
from .logs import logger
from .models import STATUS_KEYS, Progress
from .validation import check_daemon_options, check_gid, check_options

if TYPE_CHECKING:  # pragma: no cover
    from .engine.cancel import Cancellation
    from .engine.core import Engine
    from .engine.ledger import Ledger
    from .engine.record import DownloadRecord
    from .rpc.methods import Aria2RPC

__all__ = ["ControlMethods", "DOWNLOAD_STATES"]

#: What ``list_downloads(status=...)`` takes: aria2's status words.
DOWNLOAD_STATES = ("active", "waiting", "paused", "complete", "error", "removed")

#: Where a download goes in the queue: ``move(gid, pos, how)``.
_HOW = {"set": "POS_SET", "cur": "POS_CUR", "end": "POS_END"}

#: Options that say where a download's files are: changing them under a running download would
#: leave its partial file behind (cancel it and add it again instead).
_PLACEMENT = frozenset({"dir", "out", "index-out"})

#: How long ``cancel_download(delete_files=True)`` waits for aria2 to let go of the files.
_RELEASE_WAIT = 10.0


class ControlMethods:
    """``Aria2Client``'s everyday controls (see the module's docstring)."""

    _engine: Engine
    _ledger: Ledger
    _cancellation: Cancellation
    rpc: Aria2RPC

    def _record(self, gid: str) -> DownloadRecord | None:
        """This client's record of ``gid`` (a checked GID), with what other processes sharing the
        state changed taken in first: the monitor refreshes a parked download only now and then,
        and a control must reach the daemon GID it runs under now."""
        record = self._ledger.get(gid)
        if record is not None and not record.finished:
            self._engine.refresh([record])
        return record

    def _daemon_gid(self, gid: str) -> str:
        gid = check_gid(gid)
        record = self._record(gid)
        return record.current_gid if record else gid

    def pause_download(self, gid: str) -> bool:
        """Pause an active or waiting download (it keeps its place and its partial file).

        Args:
            gid: A GID this client added, or any GID the daemon knows.

        Returns:
            True (aria2 accepted the pause).

        Raises:
            Aria2GIDNotFoundError: The daemon does not know the download.
            Aria2RPCError: aria2 refused (e.g. the download has stopped).
            Aria2ConnectionError: The daemon cannot be reached.
        """
        self.rpc.pause(self._daemon_gid(gid))
        return True

    def resume_download(self, gid: str) -> bool:
        """Resume a paused download.

        Args:
            gid: A GID this client added, or any GID the daemon knows.

        Returns:
            True (aria2 accepted it).

        Raises:
            Aria2GIDNotFoundError: The daemon does not know the download.
            Aria2RPCError: aria2 refused (e.g. the download is not paused).
            Aria2ConnectionError: The daemon cannot be reached.
        """
        self.rpc.unpause(self._daemon_gid(gid))
        return True

    # -- options ----------------------------------------------------------------------------------

    def change_options(self, gid: str, options: Mapping[str, Any]) -> None:
        """Change options of a download while it runs; the download keeps them when restarted.

        Args:
            gid: A GID this client added, or any GID the daemon knows.
            options: aria2 per-download options: ``{"max-download-limit": "500K"}``; ints are
                taken as they are, sizes as aria2 writes them (``"2M"``). ``dir``, ``out`` and
                ``index-out`` cannot change under a download (cancel it and add it again).

        Raises:
            Aria2InputError: An unknown option name, a value of several lines, or a placement
                option (nothing is sent).
            Aria2RPCError: aria2 refused (some options cannot change while a download is active).
            Aria2GIDNotFoundError: The daemon does not know the download.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        checked = check_options(options)
        placed = sorted(_PLACEMENT & set(checked))
        if placed:
            raise Aria2InputError(
                f"option {placed[0]!r} says where the files are and cannot change under a download: "
                "cancel it and add it again"
            )
        gid = check_gid(gid)
        record = self._record(gid)
        self.rpc.change_option(record.current_gid if record else gid, checked)
        if record is not None:
            record.options_changed(checked)
            try:
                self._ledger.persist(record, options=record.options)
            except Aria2Error as error:  # (the daemon has them; only a restart in another process would not)
                logger.warning(
                    "could not keep the new options of download %s in the shared state: %s", gid, error
                )

    def get_options(self, gid: str) -> dict[str, str]:
        """The download's options as aria2 holds them now.

        Args:
            gid: A GID this client added, or any GID the daemon knows.

        Returns:
            Option name to aria2's string (``{"max-download-limit": "102400", ...}``).

        Raises:
            Aria2GIDNotFoundError: The daemon does not know the download.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return self.rpc.get_option(self._daemon_gid(gid))

    def change_global_options(self, options: Mapping[str, Any]) -> None:
        """Change the daemon's own options while it runs (every daemon of a pool).

        Args:
            options: aria2c options, such as ``{"max-overall-download-limit": "2M",
                "max-concurrent-downloads": 8}``.

        Raises:
            Aria2InputError: A name that is not an aria2c option, or a value of several lines.
            Aria2RPCError: aria2 refused (an option it cannot change at run time).
            Aria2ConnectionError: A daemon cannot be reached (on a pool: after the others
                changed).
        """
        self.rpc.change_global_option(check_daemon_options(options))

    def get_global_options(self) -> dict[str, str]:
        """The daemon's options as it holds them now.

        Returns:
            Option name to aria2's string (a pool: its first daemon that answers).

        Raises:
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return self.rpc.get_global_option()

    # -- the queue --------------------------------------------------------------------------------

    def move(self, gid: str, pos: int, how: str = "set") -> int:
        """Move a waiting download in the queue.

        Args:
            gid: A GID this client added, or any GID the daemon knows.
            pos: Where to, as ``how`` says.
            how: ``"set"``: to position ``pos``; ``"cur"``: by ``pos`` places (negative:
                forward); ``"end"``: ``pos`` places from the end (0 or negative).

        Returns:
            Its new position (0: the next to start).

        Raises:
            Aria2InputError: ``how`` or ``pos`` is not one of those.
            Aria2RPCError: aria2 refused (the download is not waiting).
            Aria2ConnectionError: The daemon cannot be reached.
        """
        if how not in _HOW:
            raise Aria2InputError(f"how must be one of {sorted(_HOW)}, got {how!r}")
        if isinstance(pos, bool) or not isinstance(pos, int):
            raise Aria2InputError(f"pos must be an int, got {pos!r}")
        return self.rpc.change_position(self._daemon_gid(gid), pos, _HOW[how])

    def pause_all(self) -> None:
        """Pause every download of the daemon (every daemon of a pool), not only this client's.

        Active downloads stop and keep their partial files; :meth:`resume_all` starts them again.

        Raises:
            Aria2ConnectionError: A daemon cannot be reached (on a pool: after the others paused).
        """
        self.rpc.pause_all()

    def resume_all(self) -> None:
        """Resume every paused download of the daemon (every daemon of a pool).

        Raises:
            Aria2ConnectionError: A daemon cannot be reached (on a pool: after the others resumed).
        """
        self.rpc.unpause_all()

    def purge(self) -> int:
        """Forget finished downloads: the daemon's results (complete, failed, removed) and this
        client's records of them (and their rows in a shared state); their futures keep their
        outcome.

        Returns:
            How many records this client forgot.

        Raises:
            Aria2ConnectionError: The daemon cannot be reached (nothing is forgotten here).
        """
        self.rpc.purge_download_result()
        return self._ledger.prune(all_finished=True)

    def list_downloads(self, status: str | None = None) -> list[Progress]:
        """Every download the daemon holds (every daemon of a pool), not only this client's.

        Args:
            status: Keep only those in this state (one of :data:`DOWNLOAD_STATES`); None: all.

        Returns:
            Snapshots of aria2's own view, active, waiting (and paused), then stopped (a
            restarted download shows under its daemon GID).

        Raises:
            Aria2InputError: ``status`` is not one of :data:`DOWNLOAD_STATES`.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        if status is not None and status not in DOWNLOAD_STATES:
            raise Aria2InputError(f"status must be one of {list(DOWNLOAD_STATES)} or None, got {status!r}")
        snapshots = [Progress.from_aria2(s, gid=str(s.get("gid"))) for s in self.rpc.tell_all(STATUS_KEYS)]
        return snapshots if status is None else [p for p in snapshots if p.status == status]

    # -- cancelling -------------------------------------------------------------------------------

    def cancel_download(self, gid: str, delete_files: bool = False) -> bool:
        """Stop a download for good; its future, if any, is cancelled.

        Files stay on disk unless ``delete_files=True``: then, once aria2 has let go of them,
        the download's own files (as aria2 lists them) and their ``.aria2`` control files are
        deleted; never a file outside the download's directory, never through a symlink's
        target, never a directory.

        Args:
            gid: A GID this client added, or any GID the daemon knows.
            delete_files: Also delete the download's files and control files.

        Returns:
            True if it was running, False if it had stopped already.

        Raises:
            Aria2InputError: ``gid`` is not a GID, or ``delete_files=True`` with a daemon that is
                not on this machine (a loopback ``rpc_url``), before anything is cancelled.
            Aria2GIDNotFoundError: The daemon does not know the download (and this client
                does not hold it unfinished).
            Aria2ConnectionError: The daemon cannot be reached.
        """
        if not isinstance(delete_files, bool):
            raise Aria2InputError(f"delete_files must be True or False, got {delete_files!r}")
        if delete_files and not self._engine.config.daemon_is_local:
            raise Aria2InputError(
                "delete_files=True needs the daemon on this machine: its files are on another host"
            )
        daemon_gid = self._daemon_gid(gid)
        owned = _files_of(self.rpc, daemon_gid) if delete_files else None
        running = self._cancellation.cancel_download(self._ledger.get(daemon_gid), daemon_gid)
        if owned is not None:
            _wait_released(self.rpc, daemon_gid)
            _delete(*owned)
        return running


def _files_of(rpc: Aria2RPC, gid: str) -> tuple[str, list[str]] | None:
    """``(directory, paths)`` of download ``gid`` as aria2 holds them (None if it is gone)."""
    try:
        status = rpc.tell_status(gid, ["dir", "files"])
    except Aria2GIDNotFoundError:
        return None
    paths = [str(f.get("path")) for f in status.get("files") or [] if f.get("path")]
    return str(status.get("dir") or ""), paths


def _wait_released(rpc: Aria2RPC, gid: str) -> None:
    """Wait (bounded) until aria2 reports ``gid`` stopped: it has closed the files."""
    deadline = time.monotonic() + _RELEASE_WAIT
    while time.monotonic() < deadline:
        try:
            if rpc.tell_status(gid, ["status"]).get("status") in ("removed", "complete", "error"):
                return
        except Aria2GIDNotFoundError:
            return
        time.sleep(0.05)  # (polling the daemon: it tells nobody when it lets go)
    logger.warning("download %s did not stop within %.0f s; its files are deleted anyway", gid, _RELEASE_WAIT)


def _delete(directory: str, paths: list[str]) -> None:
    """Delete ``paths`` and their control files, each only if it lies inside ``directory``."""
    if not directory:
        return
    root = os.path.realpath(directory)
    for path in paths:
        parent = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        if os.path.commonpath([root, parent]) != root:
            logger.warning("not deleting %s: it is outside the download's directory %s", path, directory)
            continue
        for target in (path, path + ".aria2"):
            target = os.path.join(parent, os.path.basename(target))
            if os.path.islink(target) or os.path.isfile(target):
                os.unlink(target)  # (a symlink itself, never what it points to)
                logger.info("deleted %s", target)
