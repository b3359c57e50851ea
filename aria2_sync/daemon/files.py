"""The daemon's private files: a state directory closed to others, files kept 0600 and ours.

A daemon's state directory holds credentials: the config file holds the RPC secret, the session
file holds download URIs with their passwords (aria2c rewrites it with the process umask), and
aria2c's log quotes them. So the directory must be ours and closed to group and others, and our
files in it are opened without following symbolic links (another local user must not be able to
point one of them elsewhere) and kept 0600.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile

from ..errors import Aria2DaemonError, Aria2InputError

__all__ = [
    "SAFE_OPEN",
    "check_secret",
    "check_state_dir",
    "ensure_private_file",
    "open_private",
    "read_tail",
    "remove_quietly",
    "remove_tree",
    "write_private_atomically",
]

#: Flags for opening our files: never through a symbolic link, never inherited by aria2c.
SAFE_OPEN = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def check_secret(secret: object) -> None:
    """Refuse a secret that could not be written as one config line.

    The secret goes into ``rpc-secret=<secret>`` in aria2c's config file: a newline would start
    a line of the caller's choosing (``on-download-complete=<command>``), and whitespace or
    control characters are trimmed or mangled by aria2c's parser. The message never quotes it.
    """
    if secret is None:
        return
    if not isinstance(secret, str) or not secret:
        raise Aria2InputError("secret must be a non-empty str (or None for a random one)")
    if any(char.isspace() or not char.isprintable() for char in secret):
        raise Aria2InputError(
            "secret must not contain whitespace or control characters (newlines, tabs, ...): "
            "use printable characters only, or None for a random one"
        )


def check_state_dir(path: str) -> None:
    """Refuse a state directory that others could read or change: it holds the RPC secret
    (config), download URIs with their credentials (session file, rewritten by aria2c with the
    process umask) and a log quoting them."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise Aria2InputError(f"state_dir {path!r} cannot be used: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise Aria2InputError(f"state_dir {path!r} is not a directory")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise Aria2InputError(
            f"state_dir {path!r} belongs to another user (uid {info.st_uid}); it will hold the "
            "RPC secret and download credentials: use a directory of your own"
        )
    if os.name != "nt" and stat.S_IMODE(info.st_mode) & 0o077:
        raise Aria2InputError(
            f"state_dir {path!r} is open to group or others (mode "
            f"{stat.S_IMODE(info.st_mode):04o}); it will hold the RPC secret and download "
            f"credentials: run chmod 700 on it, or use another directory"
        )


def open_private(path: str, flags: int) -> int:
    """Open our existing file ``path`` without following a symlink; make it 0600."""
    try:
        fd = os.open(path, flags | SAFE_OPEN)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Aria2DaemonError(
                f"{path} is a symbolic link; it must be a plain file of yours: remove it"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "geteuid") and info.st_uid != os.geteuid()):
            raise Aria2DaemonError(f"{path} is not a plain file of yours: remove it")
        if os.name != "nt" and stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
        return fd
    except BaseException:
        os.close(fd)
        raise


def ensure_private_file(path: str) -> bool:
    """Create ``path`` as an empty 0600 file, or make our existing one 0600 (the session file
    must persist across restarts). Never follows a symlink. True if this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | SAFE_OPEN, 0o600)
        created = True
    except FileExistsError:
        fd = open_private(path, os.O_RDONLY)
        created = False
    os.close(fd)
    return created


def write_private_atomically(path: str, text: str) -> None:
    """Write ``text`` to a new 0600 file (O_EXCL, in the same directory) and rename it onto
    ``path``: the rename replaces whatever was there, a symlink included, without following it."""
    fd, temporary = tempfile.mkstemp(prefix=".aria2.conf-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        remove_quietly(temporary)
        raise


def read_tail(path: str, size: int) -> str:
    """The last ``size`` bytes of ``path`` as text (not through a symlink); "" if it cannot be
    opened."""
    try:
        fd = os.open(path, os.O_RDONLY | SAFE_OPEN)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as handle:
        end = os.fstat(fd).st_size
        handle.seek(max(0, end - size))
        return handle.read().decode("utf-8", "replace")


def remove_quietly(path: str) -> None:
    """Remove a file (not following a symlink) or a directory tree; never raises OSError."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            remove_tree(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
