"""``Aria2Daemon``: a private aria2c on loopback, started and stopped by this process.

Choices, each for a reason (see aria2-facts):

* bound to 127.0.0.1 on a free port with a random secret; the secret goes in a 0600 config file,
  not on the command line, where any local user could read it from the process list;
* ``--stop-with-process=<our pid>``: if this process dies, aria2c follows (no orphans);
* ``--file-allocation=none``: a preallocated file without its control file can be mistaken for a
  complete one on resume;
* a session file saved every second and control files every second, so that a crash loses
  (almost) nothing and a restarted daemon resumes every unfinished download under its GID;
* optional supervision: if aria2c dies, it is started again on the same port with the same
  secret and session, and a client's monitor re-syncs by GID as soon as it answers.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Union

from .binary import find_aria2c
from .errors import Aria2DaemonError, Aria2Error, Aria2InputError
from .transport import Transport
from .validation import check_local_directory

__all__ = ["Aria2Daemon"]

logger = logging.getLogger("aria2_sync")

PathArg = Union[str, "os.PathLike[str]"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with losing a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _wait_exit(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class Aria2Daemon:
    """A private aria2c process with JSON-RPC on ``127.0.0.1:<port>``.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. ``download_dir`` defaults
    to the current directory; ``state_dir`` (config, session file, log) defaults to a private
    temporary directory removed on stop. ``options`` are extra aria2c options
    (``{"max-download-result": 10}``). With ``supervise=True`` a watcher thread starts aria2c
    again whenever it dies without :meth:`stop` (``restarts`` counts how often).
    """

    #: Options the daemon sets itself; pass the matching constructor argument instead.
    RESERVED_OPTIONS = frozenset(
        {"enable-rpc", "rpc-listen-port", "rpc-listen-all", "rpc-secret", "conf-path",
         "stop-with-process", "save-session", "input-file", "daemon"}
    )
    #: Consecutive failed restarts after which supervision gives up.
    MAX_FAILED_RESTARTS = 5

    def __init__(
        self,
        *,
        aria2c: Optional[PathArg] = None,
        port: Optional[int] = None,
        secret: Optional[str] = None,
        download_dir: Optional[PathArg] = None,
        state_dir: Optional[PathArg] = None,
        options: Optional[Mapping[str, Any]] = None,
        startup_timeout: float = 15.0,
        supervise: bool = False,
    ) -> None:
        self.options: Dict[str, str] = _check_options(options, self.RESERVED_OPTIONS)
        self.aria2c = find_aria2c(aria2c)
        self.host = "127.0.0.1"
        self._fixed_port = port
        self.port: Optional[int] = port
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise Aria2InputError("secret must be a non-empty str (or None for a random one)")
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
        self.startup_timeout = startup_timeout
        self.supervise = supervise
        self.restarts = 0
        self._process: Optional[subprocess.Popen] = None
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
    def pid(self) -> Optional[int]:
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

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> "Aria2Daemon":
        """Start aria2c and return once its RPC answers; raise :class:`Aria2DaemonError` if not."""
        with self._lock:
            if self.running:
                return self
            self._stopping.clear()
            if not self.state_dir:
                self.state_dir = tempfile.mkdtemp(prefix="aria2_sync-")
            os.makedirs(self.state_dir, mode=0o700, exist_ok=True)
            os.makedirs(self.download_dir, exist_ok=True)
            if not os.path.exists(self.session_file):
                open(self.session_file, "a").close()  # aria2c exits if --input-file is missing
            tries = 1 if self._fixed_port else 3  # a free port can be taken before aria2c binds it
            for attempt in range(1, tries + 1):
                self.port = self._fixed_port or free_port(self.host)
                try:
                    self._launch()
                    return self
                except Aria2DaemonError:
                    if attempt == tries or self._process is None:
                        raise
                    logger.debug("aria2c did not start on port %s; trying another port", self.port)
            return self

    def _write_config(self) -> str:
        path = os.path.join(self.state_dir, "aria2.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"rpc-secret={self.secret}\n")
        return path

    def _command(self, config: str) -> List[str]:
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
        options.update(self.options)
        return [self.aria2c] + [f"--{key}={value}" for key, value in options.items()]

    def _launch(self) -> None:
        config = self._write_config()
        log = open(self.log_file, "ab")
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
            log.close()
        self._wait_ready()
        self._fixed_port = self.port  # a restart must come back where clients look for it
        logger.debug("aria2c started: pid %s, %s", self.pid, self.rpc_url)
        if self.supervise:
            process = self._process
            threading.Thread(
                target=self._supervise, args=(process,), name="aria2_sync-daemon-watch", daemon=True
            ).start()

    def _supervise(self, process: subprocess.Popen) -> None:
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
                        process.pid, process.returncode, self.rpc_url,
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
        """Poll ``getVersion`` until it answers, aria2c exits, or the startup deadline passes."""
        probe = Transport(self.rpc_url, self.secret, timeout=2.0, max_retries=0)
        deadline = time.monotonic() + self.startup_timeout
        pause = 0.005
        try:
            while True:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise Aria2DaemonError(
                        f"aria2c ({self.aria2c}) exited with code {self._process.returncode} "
                        "while starting",
                        self.log_tail(),
                    )
                try:
                    probe.call("aria2.getVersion")
                    return
                except Aria2Error as error:
                    if time.monotonic() > deadline:
                        self._kill()
                        raise Aria2DaemonError(
                            f"aria2c did not answer on {self.rpc_url} within "
                            f"{self.startup_timeout:g} s ({error})",
                            self.log_tail(),
                        ) from error
                _wait_exit(self._process, pause)  # returns at once if aria2c exits
                pause = min(pause * 2, 0.1)
        finally:
            probe.close()

    def log_tail(self, lines: int = 20) -> str:
        """The last lines aria2c wrote (empty if none)."""
        try:
            with open(self.log_file, "rb") as handle:
                text = handle.read()[-8192:].decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:]).replace(self.secret, "***")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop aria2c gracefully, then by force, each step with a deadline. Idempotent.

        On POSIX the graceful step is SIGTERM: aria2c saves its session and exits within about
        a second, where ``aria2.shutdown``/``forceShutdown`` take about four. On Windows, where
        terminating a process gives it no chance to save, it is ``aria2.forceShutdown``. SIGKILL
        comes last. A daemon started later with the same ``state_dir`` resumes what was unfinished.
        """
        self._stopping.set()
        with self._lock:
            process = self._process
            if process is None:
                return
            if process.poll() is None:
                self._stop_process(process, timeout)
            self._process = None
            if self._own_state_dir and self.state_dir:
                _remove_tree(self.state_dir)
                self.state_dir = ""

    def _stop_process(self, process: subprocess.Popen, timeout: float) -> None:
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
            socket.create_connection((self.host, self.port), timeout=0.5).close()
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

    def __enter__(self) -> "Aria2Daemon":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _check_options(options: Optional[Mapping[str, Any]], reserved: frozenset) -> Dict[str, str]:
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise Aria2InputError(f"options must be a dict of aria2c options, not {type(options).__name__}")
    out = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key or key.startswith("-"):
            raise Aria2InputError(f"aria2c option names are like 'max-download-result', got {key!r}")
        if key in reserved:
            raise Aria2InputError(
                f"option {key!r} is set by Aria2Daemon itself: use its constructor arguments"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise Aria2InputError(f"aria2c option {key!r} takes a str, int, float or bool")
        out[key] = str(value)
    return out


def _remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
