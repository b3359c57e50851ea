"""``Aria2Daemon``: a private aria2c on loopback, started, supervised and stopped by this process.

Choices, each for a reason:

* bound to 127.0.0.1 on a free port with a random secret; the secret goes in a 0600 config file,
  not on the command line, where any local user could read it from the process list;
* the first call carrying the secret is sent only once the listening socket on 127.0.0.1:<port>
  is proven to be aria2c's own (:mod:`aria2_sync.daemon.ownership`);
* ``--stop-with-process=<our pid>``: if this process dies, aria2c follows (no orphans);
* ``--file-allocation=none``: aria2c preallocates files over 5 MiB by default, and a
  preallocated file without its ``.aria2`` control file, resumed with ``continue=true``, is
  taken for a complete one;
* a session file saved every second and control files every ``save_interval`` seconds (1 by
  default), so that a crash (SIGKILL) loses at most that much progress and a restarted daemon
  resumes every unfinished download under its GID. A control-file save also makes aria2c fsync
  the file being written: free on tmpfs, a pause of the transfer on a disk (measured on ext4:
  20-60 ms a second at 400 MB/s), which a larger interval spreads out;
* ``--disk-cache=0``: aria2c's own write cache (16 MiB by default) cost it 40-50% of its CPU
  on a fast HTTP transfer (measured on loopback, to tmpfs and to ext4), where the kernel's page
  cache already gathers the writes; without it no written data waits in aria2c's memory when
  aria2c is killed (``options={"disk-cache": "16M"}`` brings it back, for BitTorrent say);
* the state directory (config, session, log) holds credentials: it must be private
  (:mod:`aria2_sync.daemon.files`); a private temporary one is locked for the daemon's lifetime
  so that a later daemon can remove it if this process dies without cleaning up
  (:mod:`aria2_sync.daemon.sweep`);
* BitTorrent peer discovery off (:attr:`Aria2Daemon.PEER_DISCOVERY_OFF`): DHT would open UDP
  ports on every interface and tell the world which torrents we fetch, local peer discovery
  would multicast them on the LAN; ``options`` turn them back on;
* optional supervision: if aria2c dies, it is started again on the same port with the same
  secret and session, and a client's monitor re-syncs by GID as soon as it answers.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

from ..errors import Aria2AuthError, Aria2DaemonError, Aria2Error, Aria2InputError, redact_text
from ..logs import logger
from ..rpc.transport import Transport
from ..validation import PathArg, check_daemon_options, check_local_directory
from . import files, ownership, supervise, sweep
from .binary import find_aria2c

__all__ = ["Aria2Daemon"]


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


class _PortTaken(Aria2DaemonError):
    """Another process holds the RPC port (a free port may be retried, a fixed one may not)."""


class Aria2Daemon:
    """A private aria2c process with JSON-RPC on ``127.0.0.1:<port>``: a context manager, or
    :meth:`start` and :meth:`stop`.

    Args:
        aria2c: The aria2c binary (default: what :func:`~aria2_sync.daemon.binary.find_aria2c` finds).
        port: A fixed port on 127.0.0.1 (default: a free one).
        secret: The RPC secret (default: a random one).
        download_dir: Where downloads go (default: the current directory).
        state_dir: Config, session file and log (default: a private temporary directory removed on
            stop); one of your own must be yours and closed to group and others (``chmod 700``):
            it holds the secret and download credentials.
        options: Extra aria2c options (``{"max-download-result": 10}``), over the daemon's defaults
            (``{"disk-cache": "16M"}``; ``{"enable-dht": True}``: see :attr:`PEER_DISCOVERY_OFF`).
        startup_timeout: Seconds :meth:`start` waits for aria2c to answer.
        supervise: A watcher thread starts aria2c again whenever it dies without :meth:`stop`
            (``restarts`` counts).
        save_interval: Seconds between control-file saves: what a SIGKILL of aria2c (or a power cut)
            may lose, and on a disk an fsync each time (0: only when aria2c stops gracefully).

    Raises:
        Aria2InputError: A bad argument: an option the daemon sets itself, a secret that is not
            one line of text, an interval out of 0-600, a state directory others may read.
        Aria2BinaryNotFoundError: No aria2c binary.
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
    #: aria2's BitTorrent peer discovery, off unless ``options`` set these (``{"enable-dht": True}``):
    #: DHT over IPv4 and IPv6 (UDP ports on every interface), local peer discovery (LAN multicast)
    #: and peer exchange. Trackers still find peers; the listening TCP port opens (on every
    #: interface) with the first BitTorrent download, as aria2 does.
    PEER_DISCOVERY_OFF: Mapping[str, str] = {
        "enable-dht": "false",
        "enable-dht6": "false",
        "bt-enable-lpd": "false",
        "enable-peer-exchange": "false",
    }
    #: Consecutive failed restarts after which supervision gives up.
    MAX_FAILED_RESTARTS = 5
    #: Seconds between control-file saves (``--auto-save-interval``) unless told otherwise.
    DEFAULT_SAVE_INTERVAL = 1

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
        save_interval: int = DEFAULT_SAVE_INTERVAL,
    ) -> None:
        self.options: dict[str, str] = check_daemon_options(options, self.RESERVED_OPTIONS)
        if (
            isinstance(save_interval, bool)
            or not isinstance(save_interval, int)
            or not 0 <= save_interval <= 600
        ):
            raise Aria2InputError(
                f"save_interval must be an int from 0 to 600 (seconds), got {save_interval!r}"
            )
        self.save_interval = save_interval
        self.aria2c = find_aria2c(aria2c)
        self.host = "127.0.0.1"
        self._fixed_port = port
        self.port: int | None = port
        files.check_secret(secret)
        # Hex: a random secret must never start with "-", or `aria2-sync --rpc-secret <it>` (and
        # any command line it is pasted into) would read it as an option.
        self.secret = secret if secret is not None else secrets.token_hex(24)
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
            files.check_state_dir(self.state_dir)  # early, where the caller can see it; again in start()
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
        """The JSON-RPC endpoint to give :class:`~aria2_sync.Aria2Client` (``http://host:port/jsonrpc``)."""
        return f"http://{self.host}:{self.port}/jsonrpc"

    @property
    def pid(self) -> int | None:
        """aria2c's process ID while started (after a crash, the restarted process's), else None."""
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        """Whether the aria2c this object started is alive now."""
        return self._process is not None and self._process.poll() is None

    @property
    def session_file(self) -> str:
        """Where aria2c saves its session (unfinished downloads, restored when it starts again)."""
        return os.path.join(self.state_dir, "aria2.session")

    @property
    def log_file(self) -> str:
        """aria2c's own log, whose tail is quoted (redacted) when it fails to start."""
        return os.path.join(self.state_dir, "aria2c.log")

    @property
    def config_file(self) -> str:
        """The 0600 file that passes the RPC secret to aria2c, never on its command line."""
        return os.path.join(self.state_dir, "aria2.conf")

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Aria2Daemon:
        """Start aria2c and return this daemon once its RPC answers (a running one: at once).

        Whatever interrupts it (an error, Ctrl-C, any exception), a start that does not finish
        leaves nothing behind: no aria2c, no private folder, none of the files it created.

        Raises:
            Aria2DaemonError: aria2c did not start, or its RPC did not answer in ``startup_timeout`` s.
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
            sweep.sweep_orphaned_dirs()
            self.state_dir, self._owner_lock = sweep.make_private_dir()
        else:
            if not os.path.isdir(self.state_dir):
                os.makedirs(self.state_dir, mode=0o700)
                created.append(self.state_dir)
            files.check_state_dir(self.state_dir)
        os.makedirs(self.download_dir, exist_ok=True)
        created.append(self.config_file)  # written at each launch; never left by a failed start
        for path in (self.session_file, self.log_file):  # aria2c exits if --input-file is missing
            if files.ensure_private_file(path):
                created.append(path)

    def _launch_on_a_port(self) -> None:
        tries = 1 if self._fixed_port else 3  # a free port can be taken before aria2c binds it
        for attempt in range(1, tries + 1):
            self.port = self._fixed_port or ownership.free_port(self.host)
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
                    files.remove_quietly(path)

    def _remove_private_dir(self) -> None:
        """Remove the private state directory and release its owner lock."""
        path, lock = self.state_dir, self._owner_lock
        self.state_dir, self._owner_lock = "", None
        sweep.release_private_dir(path, lock)

    def _write_config(self) -> str:
        """The config file with the secret: a new 0600 file put in place atomically, so that a
        leftover file keeps neither its mode nor its inode and a symlink in its place is replaced,
        never followed."""
        files.write_private_atomically(self.config_file, f"rpc-secret={self.secret}\n")
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
            "save-session-interval": "1",  # written only when it changed: costs nothing
            "auto-save-interval": str(self.save_interval),
            "disk-cache": "0",
            "console-log-level": "warn",
            "summary-interval": "0",
            "show-console-readout": "false",
            "rpc-max-request-size": "64M",
        }
        if not ownership.can_prove_listener_owner():
            # Without /proc the socket's owner cannot be checked: make aria2c exit when it
            # cannot bind 127.0.0.1 instead of serving on [::1] only (costs IPv6 downloads).
            options["disable-ipv6"] = "true"
        options.update(self.PEER_DISCOVERY_OFF)
        options.update(self.options)
        return [self.aria2c] + [f"--{key}={value}" for key, value in options.items()]

    def _launch(self) -> None:
        assert self.port is not None
        if ownership.port_in_use(self.host, self.port):
            raise _PortTaken(self._port_taken_message())
        config = self._write_config()
        log = files.open_private(self.log_file, os.O_WRONLY | os.O_APPEND)
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
                target=lambda: supervise.restart_when_it_dies(self, process),
                name="aria2_sync-daemon-watch",
                daemon=True,
            ).start()

    def _port_taken_message(self) -> str:
        return (
            f"another process is listening on {self.host}:{self.port}; aria2c would not get that "
            "port (and the RPC secret must not go to someone else): choose another port, or "
            "leave port=None for a free one"
        )

    def _wait_ready(self) -> None:
        """Poll ``getVersion`` until it answers, aria2c exits, or the startup deadline passes.

        No call carries the secret before the socket on 127.0.0.1:<port> is proven to be
        aria2c's (where /proc tells); a foreign listener fails the start at once, and so does
        an ``Unauthorized`` answer (a wrong secret does not become right by waiting).
        """
        probe = Transport(self.rpc_url, self.secret, timeout=2.0, max_retries=0)
        deadline = time.monotonic() + self.startup_timeout
        pause = 0.005
        proven = not ownership.can_prove_listener_owner()
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
                    # Reading /proc/net/tcp costs 25-40 ms on a busy machine: only once something
                    # listens (a bind test, microseconds), or when the pauses are long anyway.
                    listening = pause >= 0.1 or ownership.port_in_use(self.host, self.port or 0)
                    owner = (
                        ownership.rpc_listener_owner(self._process.pid, self.port or 0)
                        if listening
                        else "none"
                    )
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
        text = files.read_tail(self.log_file, 8192)
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
                    files.remove_quietly(self.config_file)

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
