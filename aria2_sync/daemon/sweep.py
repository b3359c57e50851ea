"""Private temporary state directories: made with an owner lock, swept once their owner is gone.

A daemon without a ``state_dir`` of the caller's gets a new 0700 ``aria2_sync-*`` folder in the
temporary directory and removes it when it stops. A host process stopped by SIGTERM never gets to
remove it, and a library installs no signal handlers, so the folder (with the RPC secret in it)
would stay. Instead, the folder holds a locked ``owner.lock`` for its daemon's lifetime: the kernel
releases the lock when its owner dies, however it dies, and the next daemon removes the folders
whose lock it can take, without ever touching a live one. A lock rather than a pid file: a reused
pid cannot make a dead owner look alive.

POSIX only: without ``fcntl`` (Windows) the folders are neither locked nor swept.
"""

from __future__ import annotations

import os
import stat
import tempfile

from ..logs import logger
from .files import SAFE_OPEN, remove_tree

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["OWNER_LOCK", "TEMP_PREFIX", "make_private_dir", "release_private_dir", "sweep_orphaned_dirs"]

#: Name prefix of the private temporary state directories (the sweep looks only at these).
TEMP_PREFIX = "aria2_sync-"
#: The file in a private state directory whose lock says its owner is alive.
OWNER_LOCK = "owner.lock"


def make_private_dir() -> tuple[str, int | None]:
    """A new 0700 ``aria2_sync-*`` temporary folder and the fd of its held owner lock.

    The lock file appears under its final name already locked (created as a temporary name,
    locked, then renamed), so a sweep never sees a live folder with a free lock.
    """
    path = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    fd: int | None = None
    try:
        if fcntl is not None:
            pending = os.path.join(path, OWNER_LOCK + ".new")
            fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE_OPEN, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.rename(pending, os.path.join(path, OWNER_LOCK))
        return path, fd
    except BaseException:
        remove_tree(path)
        if fd is not None:
            os.close(fd)
        raise


def release_private_dir(path: str, lock: int | None) -> None:
    """Remove a folder made by :func:`make_private_dir`, then release its lock (in that order:
    a folder whose lock is free may be swept by anyone)."""
    try:
        if path:
            remove_tree(path)
    finally:
        if lock is not None:
            os.close(lock)


def sweep_orphaned_dirs(root: str | None = None) -> int:
    """Remove the private folders of daemons whose owner process is gone; return how many.

    Looks only at directories named ``aria2_sync-*`` right in the temporary directory, that are
    ours (uid), not symlinks, and hold an ``owner.lock`` file of ours; removes one only when its
    lock can be taken, i.e. no live process holds it. Cheap (one listing, one open per
    candidate) and never raises: a sweep that cannot work leaves things as they are.
    """
    if fcntl is None or not hasattr(os, "geteuid"):
        return 0
    root = root or tempfile.gettempdir()
    removed = 0
    try:
        with os.scandir(root) as entries:
            candidates = [entry for entry in entries if entry.name.startswith(TEMP_PREFIX)]
        for entry in candidates:
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
                removed += _remove_if_orphaned(entry.path)
    except OSError as error:
        logger.debug("sweeping leftover aria2_sync folders in %s stopped: %s", root, error)
    if removed:
        logger.debug("removed %d aria2_sync folder(s) left by processes that are gone", removed)
    return removed


def _remove_if_orphaned(path: str) -> int:
    assert fcntl is not None
    try:
        fd = os.open(os.path.join(path, OWNER_LOCK), os.O_RDONLY | SAFE_OPEN)
    except OSError:
        return 0  # no marker (not ours, or still being made), or a symlink
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # held: its owner is alive
        remove_tree(path)
        return 1
    finally:
        os.close(fd)
