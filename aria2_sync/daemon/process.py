"""``Aria2Daemon``: a private aria2c on loopback, started and stopped by this process.

Choices, each for a reason (see aria2-facts):

* bound to 127.0.0.1 on a free port with a random secret; the secret goes in a 0600 config file,
  not on the command line, where any local user could read it from the process list;
* the first call carrying the secret is sent only once the listening socket on 127.0.0.1:<port>
  is proven to be aria2c's own (see :func:`_rpc_listener_owner`): aria2c stays up on ``[::1]``
  when another process holds the IPv4 port, and that process would otherwise get the secret;
* ``--stop-with-process=<our pid>``: if this process dies, aria2c follows (no orphans);
* ``--file-allocation=none``: a preallocated file without its control file can be mistaken for a
  complete one on resume;
* a session file saved every second and control files every second, so that a crash loses
  (almost) nothing and a restarted daemon resumes every unfinished download under its GID;
* the state directory (config, session, log) holds credentials: it must be private (0700,
  ours); our files in it are opened without following symbolic links and kept 0600;
* a private temporary state directory is locked (``owner.lock``) for the daemon's lifetime, so
  that a later daemon can remove the folders of owners that died without cleaning up (a host
  process stopped by SIGTERM) without ever touching a live one; a library installs no signal
  handlers;
* optional supervision: if aria2c dies, it is started again on the same port with the same
  secret and session, and a client's monitor re-syncs by GID as soon as it answers.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from typing import Any, Union

from ..errors import (
    Aria2AuthError,
    Aria2DaemonError,
    Aria2Error,
    Aria2InputError,
    redact_text,
)
from ..logs import logger
from ..rpc.transport import Transport
from ..validation import check_daemon_options, check_local_directory
from .binary import find_aria2c

try:  # POSIX only; without it (Windows) private folders are not locked nor swept
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["Aria2Daemon"]


PathArg = Union[str, "os.PathLike[str]"]

#: Name prefix of the private temporary state directories (the orphan sweep looks only at these).
TEMP_PREFIX = "aria2_sync-"
#: The file in a private state directory whose lock says its owner is alive.
OWNER_LOCK = "owner.lock"

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with losing a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class _PortTaken(Aria2DaemonError):
    """Another process holds the RPC port (a free port may be retried, a fixed one may not)."""


class Aria2Daemon:
    """A private aria2c process with JSON-RPC on ``127.0.0.1:<port>``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``download_dir`` defaults
    to the current directory; ``state_dir`` (config, session file, log) defaults to a private
    temporary directory removed on stop; a ``state_dir`` of your own must be yours and closed to
    group and others (``chmod 700``), since it holds the secret and download credentials.
    ``options`` are extra aria2c options (``{"max-download-result": 10}``). With
    ``supervise=True`` a watcher thread starts aria2c again whenever it dies without
    :meth:`stop` (``restarts`` counts how often).
    """

    #: Options the daemon sets itself; pass the matching constructor argument instead.
    RESERVED_OPTIONS = frozenset(
        {
            "enable-rpc",
            "rpc-listen-port",
            "rpc-listen-all",
            "rpc-secret",
            "conf-path",
            "stop-with-process",
            "save-session",
            "input-file",
            "daemon",
        }
    )
    #: Consecutive failed restarts after which supervision gives up.
    MAX_FAILED_RESTARTS = 5

    def __init__(
        self,
        *,
        aria2c: PathArg | None = None,
        port: int | None = None,
        secret: str | None = None,
        download_dir: PathArg | None = None,
        state_dir: PathArg | None = None,
        options: Mapping[str, Any] | None = None,
        startup_timeout: float = 15.0,
        supervise: bool = False,
    ) -> None:
        self.options: dict[str, str] = check_daemon_options(options, self.RESERVED_OPTIONS)
        self.aria2c = find_aria2c(aria2c)
        self.host = "127.0.0.1"
        self._fixed_port = port
        self.port: int | None = port
        _check_secret(secret)
        self.secret = secret if secret is not None else secrets.token_urlsafe(24)
        for name, value in (("download_dir", download_dir), ("state_dir", state_dir)):
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise Aria2InputError(f"{name} must be a path, not {type(value).__name__}")
            if value is not None:
                check_local_directory(os.fspath(value))
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
            raise Aria2InputError(f"port must be an int from 1 to 65535, got {port!r}")
        self.download_dir = os.path.abspath(os.fspath(download_dir or os.getcwd()))
        self._own_state_dir = state_dir is None
        self.state_dir = os.fspath(state_dir) if state_dir else ""
        if self.state_dir and os.path.isdir(self.state_dir):
            _check_state_dir(self.state_dir)  # early, where the caller can see it; again in start()
        self.startup_timeout = startup_timeout
        self.supervise = supervise
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._owner_lock: int | None = None  # fd holding the lock of a private state directory
        self._lock = threading.RLock()
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<Aria2Daemon {self.rpc_url if self.port else '(no port yet)'} {state}>"

    # -- properties -----------------------------------------------------------------------------

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}/jsonrpc"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def session_file(self) -> str:
        return os.path.join(self.state_dir, "aria2.session")

    @property
    def log_file(self) -> str:
        return os.path.join(self.state_dir, "aria2c.log")

    @property
    def config_file(self) -> str:
        return os.path.join(self.state_dir, "aria2.conf")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Aria2Daemon:
        """Start aria2c and return once its RPC answers; raise :class:`Aria2DaemonError` if not.

        Whatever interrupts it (an error, Ctrl-C, any exception), a start that does not finish
        leaves nothing behind: no aria2c, no private folder, none of the files it created.
        """
        with self._lock:
            if self.running:
                return self
            self._stopping.clear()
            created: list[str] = []  # what this start made, removed again if it fails
            try:
                self._prepare_state(created)
                self._launch_on_a_port()
            except BaseException:
                self._undo_start(created)
                raise
            return self

    def _prepare_state(self, created: list[str]) -> None:
        """The state directory and the session and log files, private and ours."""
        if self._own_state_dir:
            _sweep_orphaned_dirs()
            self.state_dir, self._owner_lock = _make_private_dir()
        else:
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir, mode=0o700)
                created.append(self.state_dir)
            _check_state_dir(self.state_dir)
        os.makedirs(self.download_dir, exist_ok=True)
        created.append(self.config_file)  # written at each launch; never left by a failed start
        for path in (self.session_file, self.log_file):  # aria2c exits if --input-file is missing
            if _ensure_private_file(path):
                created.append(path)

    def _launch_on_a_port(self) -> None:
        tries = 1 if self._fixed_port else 3  # a free port can be taken before aria2c binds it
        for attempt in range(1, tries + 1):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._launch()
                return
            except Aria2DaemonError as error:
                if attempt == tries or isinstance(error.__cause__, Aria2AuthError):
                    raise
                logger.debug("aria2c did not start on port %s; trying another port", self.port)

    def _undo_start(self, created: list[str]) -> None:
        """Remove what a failed :meth:`start` made; each step runs whatever the others do."""
        try:
            self._kill()
        finally:
            self._process = None
            if self._own_state_dir:
                self._remove_private_dir()
            else:
                for path in reversed(created):
                    _remove_quietly(path)

    def _remove_private_dir(self) -> None:
        """Remove the private state directory, then release its lock (in that order: a folder
        whose lock is free may be swept by anyone)."""
        try:
            if self.state_dir:
                _remove_tree(self.state_dir)
        finally:
            self.state_dir = ""
            lock, self._owner_lock = self._owner_lock, None
            if lock is not None:
                os.close(lock)

    def _write_config(self) -> str:
        """The config file with the secret: a new 0600 file put in place atomically, so that a
        leftover file keeps neither its mode nor its inode and a symlink in its place is replaced,
        never followed."""
        _write_private_atomically(self.config_file, f"rpc-secret={self.secret}\n")
        return self.config_file

    def _command(self, config: str) -> list[str]:
        options = {
            "conf-path": config,
            "enable-rpc": "true",
            "rpc-listen-all": "false",
            "rpc-listen-port": str(self.port),
            "dir": self.download_dir,
            "file-allocation": "none",
            "stop-with-process": str(os.getpid()),
            "save-session": self.session_file,
            "input-file": self.session_file,
            "save-session-interval": "1",
            "auto-save-interval": "1",
            "console-log-level": "warn",
            "summary-interval": "0",
            "show-console-readout": "false",
            "rpc-max-request-size": "64M",
        }
        if not _can_prove_listener_owner():
            # Without /proc the socket's owner cannot be checked: make aria2c exit when it
            # cannot bind 127.0.0.1 instead of serving on [::1] only (costs IPv6 downloads).
            options["disable-ipv6"] = "true"
        options.update(self.options)
        return [self.aria2c] + [f"--{key}={value}" for key, value in options.items()]

    def _launch(self) -> None:
        assert self.port is not None
        if _port_in_use(self.host, self.port):
            raise _PortTaken(self._port_taken_message())
        config = self._write_config()
        log = _open_private(self.log_file, os.O_WRONLY | os.O_APPEND)
        try:
            self._process = subprocess.Popen(
                self._command(config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.state_dir,
                start_new_session=True,  # Ctrl-C in a terminal must not reach the daemon first
            )
        finally:
            os.close(log)
        try:
            self._wait_ready()
        except BaseException:
            self._kill()
            raise
        self._fixed_port = self.port  # a restart must come back where clients look for it
        logger.debug("aria2c started: pid %s, %s", self.pid, self.rpc_url)
        if self.supervise:
            process = self._process
            threading.Thread(
                target=self._supervise, args=(process,), name="aria2_sync-daemon-watch", daemon=True
            ).start()

    def _port_taken_message(self) -> str:
        return (
            f"another process is listening on {self.host}:{self.port}; aria2c would not get that "
            "port (and the RPC secret must not go to someone else): choose another port, or "
            "leave port=None for a free one"
        )

    def _supervise(self, process: subprocess.Popen[bytes]) -> None:
        """Wait for aria2c to exit; start it again unless :meth:`stop` asked it to go."""
        process.wait()
        pause = 0.2
        current = process
        for attempt in range(1, self.MAX_FAILED_RESTARTS + 1):
            with self._lock:
                if self._stopping.is_set() or self._process is not current:
                    return  # stopped on purpose, or someone else started it again
                if attempt == 1:
                    logger.warning(
                        "aria2c (pid %s) exited unexpectedly with code %s; restarting it on %s",
                        process.pid,
                        process.returncode,
                        self.rpc_url,
                    )
                try:
                    self._launch()
                    self.restarts += 1
                    return
                except Aria2DaemonError as error:
                    current = self._process  # the attempt that failed
                    logger.warning("restarting aria2c failed (attempt %d): %s", attempt, error)
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, 5.0)
        logger.error("aria2c could not be restarted after %d attempts; giving up", self.MAX_FAILED_RESTARTS)

    def _wait_ready(self) -> None:
        """Poll ``getVersion`` until it answers, aria2c exits, or the startup deadline passes.

        No call carries the secret before the socket on 127.0.0.1:<port> is proven to be
        aria2c's (where /proc tells); a foreign listener fails the start at once, and so does
        an ``Unauthorized`` answer (a wrong secret does not become right by waiting).
        """
        probe = Transport(self.rpc_url, self.secret, timeout=2.0, max_retries=0)
        deadline = time.monotonic() + self.startup_timeout
        pause = 0.005
        proven = not _can_prove_listener_owner()
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise Aria2DaemonError(
                        f"aria2c ({self.aria2c}) exited with code {self._process.returncode} while starting",
                        self.log_tail(),
                    )
                problem: Exception | None = None
                if not proven:
                    owner = _rpc_listener_owner(self._process.pid, self.port or 0)
                    if owner == "foreign":
                        raise _PortTaken(self._port_taken_message())
                    proven = owner == "ours"
                    problem = None if proven else Aria2DaemonError("aria2c is not listening yet")
                if proven:
                    try:
                        probe.call("aria2.getVersion")
                        return
                    except Aria2AuthError as error:
                        raise Aria2DaemonError(
                            f"aria2c on {self.rpc_url} refused our RPC secret (Unauthorized)",
                            self.log_tail(),
                        ) from error
                    except Aria2Error as error:
                        problem = error
                if time.monotonic() > deadline:
                    raise Aria2DaemonError(
                        f"aria2c did not answer on {self.rpc_url} within "
                        f"{self.startup_timeout:g} s ({problem})",
                        self.log_tail(),
                    ) from problem
                _wait_exit(self._process, pause)  # returns at once if aria2c exits
                pause = min(pause * 2, 0.1)
        finally:
            probe.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines aria2c wrote (empty if none), with credentials masked.

        aria2c quotes URIs, passwords included, in its log; this text ends up in exception
        messages, so the RPC secret, URL passwords and auth headers are replaced by ``***``.
        """
        if not self.state_dir:
            return ""
        try:
            fd = os.open(self.log_file, os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
        except OSError:
            return ""
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(fd).st_size
            handle.seek(max(0, size - 8192))
            text = handle.read().decode("utf-8", "replace")
        tail = "\n".join(text.strip().splitlines()[-lines:])
        return redact_text(tail, [self.secret])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop aria2c gracefully, then by force, each step with a deadline. Idempotent.

        On POSIX the graceful step is SIGTERM: aria2c saves its session and exits within about
        a second, where ``aria2.shutdown``/``forceShutdown`` take about four. On Windows, where
        terminating a process gives it no chance to save, it is ``aria2.forceShutdown``. SIGKILL
        comes last. A daemon started later with the same ``state_dir`` resumes what was unfinished.
        The config file (the secret) is removed; a private state directory entirely.
        """
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is None:
                return
            try:
                if process.poll() is None:
                    self._stop_process(process, timeout)
            finally:
                if process.poll() is None:  # interrupted (Ctrl-C) before it was gone
                    process.kill()
                self._process = None
                if self._own_state_dir:
                    self._remove_private_dir()
                elif self.state_dir:
                    _remove_quietly(self.config_file)

    def _stop_process(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        if os.name == "nt":
            try:
                Transport(self.rpc_url, self.secret, timeout=min(timeout, 2.0), max_retries=0).call(
                    "aria2.forceShutdown"
                )
            except Aria2Error:
                pass
        else:
            process.terminate()
            self._nudge()
        if _wait_exit(process, timeout):
            return
        logger.warning("aria2c (pid %s) did not stop within %.0f s; killing it", process.pid, timeout)
        self._kill()

    def _nudge(self) -> None:
        """Wake aria2c's event loop so that it acts on the SIGTERM now.

        An idle aria2c looks at signals only when its loop wakes, once a second; a connection
        to its RPC port wakes it at once (measured: 1 s -> 4 ms), and it still saves its
        session as it exits.
        """
        try:
            socket.create_connection((self.host, self.port or 0), timeout=0.5).close()
        except OSError:
            pass

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            _wait_exit(process, 5.0)

    def kill(self) -> None:
        """SIGKILL aria2c at once (what a crash looks like; a supervised daemon comes back)."""
        with self._lock:
            self._kill()

    def __enter__(self) -> Aria2Daemon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# -- input checks ---------------------------------------------------------------------------------


def _check_secret(secret: object) -> None:
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


def _check_state_dir(path: str) -> None:
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


# -- private files ---------------------------------------------------------------------------------


def _open_private(path: str, flags: int) -> int:
    """Open our existing file ``path`` without following a symlink; make it 0600."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC)
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


def _ensure_private_file(path: str) -> bool:
    """Create ``path`` as an empty 0600 file, or make our existing one 0600 (the session file
    must persist across restarts). Never follows a symlink. True if this call created it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
        created = True
    except FileExistsError:
        fd = _open_private(path, os.O_RDONLY)
        created = False
    os.close(fd)
    return created


def _write_private_atomically(path: str, text: str) -> None:
    """Write ``text`` to a new 0600 file (O_EXCL, in the same directory) and rename it onto
    ``path``: the rename replaces whatever was there, a symlink included, without following it."""
    fd, temporary = tempfile.mkstemp(prefix=".aria2.conf-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        _remove_quietly(temporary)
        raise


def _remove_quietly(path: str) -> None:
    """Remove a file (not following a symlink) or a directory tree; never raises OSError."""
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            _remove_tree(path)
        else:
            os.unlink(path)
    except OSError:
        pass


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- private temporary folders: owner lock and orphan sweep --------------------------------------


def _make_private_dir() -> tuple[str, int | None]:
    """A new 0700 ``aria2_sync-*`` temporary folder and the fd of its held owner lock.

    The lock file appears under its final name already locked (created as a temporary name,
    locked, then renamed), so a sweep never sees a live folder with a free lock. A lock rather
    than a pid file: the kernel releases it when its owner dies, however it dies, and a reused
    pid cannot make a dead owner look alive.
    """
    path = tempfile.mkdtemp(prefix=TEMP_PREFIX)
    fd: int | None = None
    try:
        if fcntl is not None:
            pending = os.path.join(path, OWNER_LOCK + ".new")
            fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.rename(pending, os.path.join(path, OWNER_LOCK))
        return path, fd
    except BaseException:
        _remove_tree(path)
        if fd is not None:
            os.close(fd)
        raise


def _sweep_orphaned_dirs(root: str | None = None) -> int:
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
        fd = os.open(os.path.join(path, OWNER_LOCK), os.O_RDONLY | _NOFOLLOW | _CLOEXEC)
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
        _remove_tree(path)
        return 1
    finally:
        os.close(fd)


# -- who listens on the RPC port -----------------------------------------------------------------


def _port_in_use(host: str, port: int) -> bool:
    """True if some socket listens on ``host:port`` now (a quick refusal before launching).

    SO_REUSEADDR so that connections of an earlier aria2c in TIME_WAIT do not count (on Linux
    a listening socket still does). Not on Windows, where SO_REUSEADDR means "take it over".
    """
    if os.name == "nt":
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


_proof_works: bool | None = None


def _can_prove_listener_owner() -> bool:
    """True where /proc tells who holds a listening socket (Linux), checked once per process
    on a socket of our own: a /proc that exists but does not tell (a sandbox) must not make
    every start wait for a proof that cannot come."""
    global _proof_works
    if _proof_works is None:
        _proof_works = _proof_self_test()
    return _proof_works


def _proof_self_test() -> bool:
    if not (os.path.exists("/proc/net/tcp") and os.path.isdir("/proc/self/fd")):
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            works = _rpc_listener_owner(os.getpid(), sock.getsockname()[1]) == "ours"
    except (OSError, ValueError):
        works = False
    if not works:
        logger.debug("/proc does not show who listens on a port; aria2c runs with --disable-ipv6")
    return works


def _proc_hex(address: str, family: int) -> str:
    """An address as /proc/net/tcp{,6} prints it: each 32-bit word in host byte order."""
    packed = socket.inet_pton(family, address)
    return "".join(f"{word:08X}" for word in struct.unpack(f"={len(packed) // 4}I", packed))


def _listening_inodes(port: int) -> tuple[set[int], set[int]]:
    """Inodes of TCP sockets listening on ``port``: (on 127.0.0.1 exactly, on any address that
    also takes connections to 127.0.0.1: 0.0.0.0, ::, ::ffff:127.0.0.1)."""
    loopback = _proc_hex("127.0.0.1", socket.AF_INET)
    covering = {
        _proc_hex("0.0.0.0", socket.AF_INET),
        _proc_hex("::", socket.AF_INET6),
        _proc_hex("::ffff:127.0.0.1", socket.AF_INET6),
    }
    exact: set[int] = set()
    other: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                        continue
                    address, _, hex_port = fields[1].partition(":")
                    if int(hex_port, 16) != port:
                        continue
                    if address == loopback:
                        exact.add(int(fields[9]))
                    elif address in covering:
                        other.add(int(fields[9]))
        except OSError:
            continue
    return exact, other


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets open in ``pid`` and its descendants (an aria2c started through
    a launcher holds its sockets in a child process)."""
    inodes: set[int] = set()
    pending: list[int] = [pid]
    seen: set[int] = set()
    while pending and len(seen) < 64:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        fd_dir = f"/proc/{current}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        pending.extend(_children(current))
    return inodes


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return out


def _rpc_listener_owner(pid: int, port: int) -> str:
    """``"ours"`` if process ``pid`` (or a descendant) holds the socket listening on
    127.0.0.1:``port``, ``"foreign"`` if another process listens where 127.0.0.1:``port``
    connections would go (or would keep aria2c from binding), ``"none"`` if nobody listens yet.

    The tables are read before the process's descriptors: a socket is a descriptor before it
    listens, so a listener of the child's never looks foreign.
    """
    exact, other = _listening_inodes(port)
    if not exact and not other:
        return "none"
    mine = _socket_inodes(pid)
    if (exact | other) - mine:
        return "foreign"
    return "ours" if exact else "none"
