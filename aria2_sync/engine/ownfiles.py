"""Whose file is it: the proofs that a file on disk is a download's own, finished or left over.

aria2 refuses (error 13, "file already exists") a file it has no control file for, and the
client never overwrites or takes a file that is not provably the download's own: another
writer's file stays untouched. What counts as proof is here, in one place, for the restart
engine (:mod:`aria2_sync.engine.restarts`: a leftover it may overwrite) and the tracker
(:mod:`aria2_sync.engine.tracker`: a finished file it takes as the download's completion).
"""

from __future__ import annotations

import os
import stat

from ..models import Progress
from .record import DownloadRecord

__all__ = [
    "FileIdentity",
    "complete_file_on_disk",
    "file_identity",
    "finished_file_on_disk",
    "own_partial_file",
    "target_path",
]


def complete_file_on_disk(record: DownloadRecord) -> str | None:
    """The download's file if it is on this machine, whole, with no control file beside it.

    Asked only when the daemon has forgotten a download: a finished file whose result was
    evicted must not be fetched again.
    """
    path = target_path(record)
    if not path or not os.path.isfile(path) or os.path.exists(path + ".aria2"):
        return None
    size = os.path.getsize(path)
    expected = record.last.total_length if record.last is not None else 0
    if size == 0 or (expected > 0 and size != expected):
        return None
    return path


#: Statuses of a snapshot that shows the download writing its file (or done with it).
_WRITING = frozenset({"active", "waiting", "paused", "complete"})


def finished_file_on_disk(record: DownloadRecord, progress: Progress) -> str | None:
    """The download's file if aria2 refused it (error 13, ``progress``) although this download
    finished it, else None.

    aria2 deletes a download's control file as the download completes, but saves its session
    only once a second: aria2c killed in between comes back with the download listed, finds
    its file whole without a control file, and fails it with error 13. The proof that the file
    is this download's, finished: the client's last snapshot of it (``record.last``, taken
    before this failure is applied) shows it writing that very path (bytes completed, its
    size known), and the file is now a regular file of exactly that size, with no control file
    beside it (aria2c runs with ``file-allocation=none`` here: a partial file is shorter). As
    :func:`complete_file_on_disk` does for a download the daemon forgot; any other error 13
    stays a failure.
    """
    last = record.last
    if (
        progress.error_code != "13"
        or last is None
        or last.status not in _WRITING
        or last.completed_length <= 0
        or last.total_length <= 0
        or not last.file_path
    ):
        return None
    path = last.file_path
    if (progress.file_path and progress.file_path != path) or os.path.lexists(path + ".aria2"):
        return None
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size != last.total_length:
        return None
    return path


#: (device, inode, size, mtime_ns, ctime_ns) of a file: which file a path named, in which
#: state. Inode numbers are reused at once after a delete, so the inode alone proves nothing;
#: together with the times and size it tells a file nobody touched since it was looked at.
FileIdentity = tuple[int, int, int, int, int]


def _identity(info: os.stat_result) -> FileIdentity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def file_identity(path: str) -> FileIdentity | None:
    """The identity of the regular file at ``path`` (not following a link); None if none."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return _identity(info) if stat.S_ISREG(info.st_mode) else None


def own_partial_file(record: DownloadRecord, known: FileIdentity | None = None) -> str | None:
    """The target file if it is provably this download's own leftover, else None.

    aria2 refuses (error 13) a file it cannot resume: one without its control file. That is
    what a crash leaves when aria2 had created the file but not yet its control file; being
    ours, it may be overwritten. Anybody else's file is never touched, so "ours" needs proof,
    not just a recent modification time (another writer may have created the file after the
    add). Proof is one of:

    * ``known``: the identity (device, inode, size, times) the file had when this download
      failed after aria2 had written bytes to it; the file must still be that very file,
      untouched since;
    * the file is empty and was created after the add. aria2 creates the file empty and writes
      its control file about a millisecond later, before any byte of data (measured with
      aria2c 1.37, ``file-allocation=none``), so an empty file is what a crash in that window
      leaves; and an empty file holds no content to lose.
    """
    path = target_path(record)
    if not path or os.path.lexists(path + ".aria2"):
        return None
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if known is not None and _identity(info) == known:
        return path
    if info.st_size == 0 and info.st_mtime >= record.added_at - 0.5:
        return path
    return None


def target_path(record: DownloadRecord) -> str | None:
    """Where the download writes: where aria2 said it did, else where it was asked to."""
    if record.last is not None and record.last.file_path:
        return record.last.file_path
    if "dir" in record.options and "out" in record.options:
        return os.path.join(str(record.options["dir"]), str(record.options["out"]))
    return None
