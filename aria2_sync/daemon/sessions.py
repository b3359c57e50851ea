"""A private aria2c's session file, made ready for the restart after a crash.

aria2c saves its session (every unfinished download, with its GID and options) once a second,
and deletes a download's control file the moment the download completes. Killed in between, it
comes back listing a download that is in fact finished, finds the whole file without a control
file, and fails it with "file exists" (error 13), which nothing can restart. Before
:class:`~aria2_sync.daemon.process.Aria2Daemon` starts aria2c again after a crash,
:func:`drop_finished` takes such downloads out of the session: the client then finds them gone
from the daemon and, their file being whole on disk, takes them as complete
(:func:`~aria2_sync.engine.ownfiles.complete_file_on_disk`), never fetching them again.

A download is taken out only on evidence that it finished after the session was last saved: its
``dir`` and ``out`` name a regular file (never through a symlink) with no control file beside it,
last written no earlier than the session file. A file that was there before (another writer's)
is older than a session saved since, and stays listed: aria2 refuses it, as it would have.
"""

from __future__ import annotations

import os
import stat

from ..logs import logger
from .files import SAFE_OPEN, write_private_atomically

__all__ = ["drop_finished"]


def _entries(text: str) -> list[list[str]]:
    """The session's entries: each a URI line followed by its indented option lines."""
    entries: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line[:1] in (" ", "\t") and entries:
            entries[-1].append(line)
        elif line.strip():
            entries.append([line])
    return entries


def _option(entry: list[str], name: str) -> str | None:
    for line in entry[1:]:
        key, _, value = line.strip().partition("=")
        if key == name:
            return value
    return None


def _finished(entry: list[str], saved_at: float) -> str | None:
    """The entry's file if it is whole and was finished after ``saved_at``, else None."""
    directory, out = _option(entry, "dir"), _option(entry, "out")
    if not directory or not out:
        return None
    path = os.path.join(directory, out)
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0 or os.path.lexists(path + ".aria2"):
        return None
    return path if info.st_mtime >= saved_at else None


def drop_finished(session_file: str) -> int:
    """Take the downloads that finished after the last save out of ``session_file`` (see the
    module); how many. The file is rewritten 0600 and never followed through a symlink."""
    try:
        fd = os.open(session_file, os.O_RDONLY | SAFE_OPEN)
    except OSError:
        return 0
    with os.fdopen(fd, "r", encoding="utf-8", errors="surrogateescape") as handle:
        saved_at = os.fstat(handle.fileno()).st_mtime
        text = handle.read()
    kept: list[list[str]] = []
    dropped = 0
    for entry in _entries(text):
        path = _finished(entry, saved_at)
        if path is None:
            kept.append(entry)
        else:
            dropped += 1
            logger.info("aria2c's session lists %s, finished since it was saved: not restored", path)
    if dropped:
        try:
            write_private_atomically(session_file, "".join(line for entry in kept for line in entry))
        except OSError as error:  # (then aria2c fails them with error 13, as it would have)
            logger.warning("could not rewrite aria2c's session file: %s", error)
            return 0
    return dropped
