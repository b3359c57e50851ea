"""``Aria2Client``: the seed guide's API, synchronous.

The facade owns the pieces below it (transport, RPC wrappers, ledger) and keeps each public
method short: validate at the edge, then delegate. It is safe to share one client between threads.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Any, Dict, List, Mapping, Optional, TypedDict

import attrs

from .errors import (
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2RPCError,
    redact_url,
)
from .ledger import DownloadRecord, Ledger
from .logs import enable_verbose_output
from .models import STATUS_KEYS, GlobalStats, Progress
from .policy import RestartPolicy
from .restarts import RestartEngine
from .rpc import Aria2RPC, new_gid
from .scheduler import Scheduler
from .transport import DEFAULT_MAX_RETRY_DELAY, DEFAULT_TIMEOUT, Timeout, Transport
from .validation import PathArg, UrlArg, check_gid, check_uris, download_options

__all__ = ["Aria2Client", "RetryInfo"]

logger = logging.getLogger("aria2_sync")

DEFAULT_RPC_URL = "http://localhost:6800/jsonrpc"


class RetryInfo(TypedDict):
    """What :meth:`Aria2Client.get_retry_info` returns (a plain dict)."""

    gid: str
    retry_count: int
    max_retries: int
    can_retry: bool
    url: str
    uris: List[str]
    options: Dict[str, Any]
    current_gid: str
    restart_pending: bool
    gave_up_reason: Optional[str]
    attempts: List[Dict[str, Any]]


def _check_number(name: str, value: Any, *, minimum: float, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise Aria2InputError(f"{name} must be {kind}, not {type(value).__name__}")
    if value < minimum:
        raise Aria2InputError(f"{name} must be >= {minimum:g}, got {value!r}")


def _check_timeout(timeout: Any) -> Timeout:
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if len(values) not in (1, 2):
        raise Aria2InputError("timeout must be a number or a (connect, read) pair of numbers")
    for value in values:
        _check_number("timeout", value, minimum=0)
        if value == 0:
            raise Aria2InputError("timeout must be > 0 seconds")
    return timeout


def _check_rpc_url(rpc_url: Any) -> str:
    if not isinstance(rpc_url, str) or not rpc_url.strip():
        raise Aria2InputError("rpc_url must be a non-empty str like http://127.0.0.1:6800/jsonrpc")
    if not rpc_url.lower().startswith(("http://", "https://")):
        raise Aria2InputError(
            f"rpc_url {redact_url(rpc_url)!r} must start with http:// or https:// "
            "(aria2's JSON-RPC endpoint, e.g. http://127.0.0.1:6800/jsonrpc)"
        )
    return rpc_url.strip()


class Aria2Client:
    """A synchronous client for one aria2 daemon.

    ``max_retries`` is both the number of transport retries on connection errors and the default
    restart budget of a failed download; ``retry_delay`` is the base of the exponential backoff
    (the n-th retry waits ``retry_delay * 2**(n-1)`` s). ``verbose=True`` prints the seed guide's
    log lines on stderr through the ``aria2_sync`` logger. ``timeout`` bounds every HTTP exchange
    with the daemon (seconds, or a ``(connect, read)`` pair).

    Restarts of failed downloads follow ``restart_policy`` (a :class:`RestartPolicy`); without
    one, the budget is ``max_restarts`` (default: ``max_retries``, as the seed guide says) and
    the k-th restart of a download waits ``retry_delay * 2**(k-1)`` s.
    """

    def __init__(
        self,
        rpc_url: str = DEFAULT_RPC_URL,
        rpc_secret: Optional[str] = None,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        auto_restart_failed: bool = True,
        verbose: bool = True,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        max_restarts: Optional[int] = None,
        restart_policy: Optional[RestartPolicy] = None,
    ) -> None:
        self.rpc_url = _check_rpc_url(rpc_url)
        if rpc_secret is not None and not isinstance(rpc_secret, str):
            raise Aria2InputError(f"rpc_secret must be a str or None, not {type(rpc_secret).__name__}")
        _check_number("max_retries", max_retries, minimum=0, integer=True)
        _check_number("retry_delay", retry_delay, minimum=0)
        _check_number("max_retry_delay", max_retry_delay, minimum=0)
        self.max_retries = max_retries
        self.retry_delay = float(retry_delay)
        self.auto_restart_failed = bool(auto_restart_failed)
        self.verbose = bool(verbose)
        self.timeout = _check_timeout(timeout)
        if self.verbose:
            enable_verbose_output()
        self._transport = Transport(
            self.rpc_url,
            rpc_secret or None,
            timeout=self.timeout,
            max_retries=max_retries,
            retry_delay=self.retry_delay,
            max_retry_delay=float(max_retry_delay),
        )
        self.rpc = Aria2RPC(self._transport)
        self._ledger = Ledger()
        self.restart_policy = self._make_policy(restart_policy, max_restarts, max_retry_delay)
        self._scheduler = Scheduler()
        self._restarts = RestartEngine(
            self.rpc, self._ledger, self.restart_policy, self._scheduler, max_retries + 1
        )
        self._closed = False
        self._close_lock = threading.Lock()

    def _make_policy(
        self, policy: Optional[RestartPolicy], max_restarts: Optional[int], max_delay: float
    ) -> RestartPolicy:
        if policy is not None:
            if not isinstance(policy, RestartPolicy):
                raise Aria2InputError(
                    f"restart_policy must be a RestartPolicy, not {type(policy).__name__}"
                )
            if max_restarts is not None:
                raise Aria2InputError("give max_restarts or restart_policy, not both")
            return policy
        budget = self.max_retries if max_restarts is None else max_restarts
        return RestartPolicy(max_restarts=budget, base_delay=self.retry_delay, max_delay=max_delay)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Aria2Client {redact_url(self.rpc_url)} {state}, {len(self._ledger)} downloads>"

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop scheduled restarts and release connections. Idempotent.

        Downloads in the daemon keep running; only this client's own work stops.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._scheduler.close()
        self._transport.close()

    def __enter__(self) -> "Aria2Client":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- adding ---------------------------------------------------------------------------------

    def add_download(
        self,
        url: UrlArg,
        save_path: Optional[PathArg] = None,
        options: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Add a download and return its GID, a handle that stays valid across restarts.

        ``url`` is one URL, or a list of mirror URLs of the same file. ``save_path`` is the full
        path of the file to write (aria2's ``dir`` + ``out``); without it aria2 picks the name
        and the daemon's download directory (or ``options['dir']``). ``options`` are aria2
        per-download options (``{"max-connection-per-server": 4}``); the dict is not modified.
        """
        uris = check_uris(url)
        merged = download_options(save_path, options)
        gid = new_gid()
        record = DownloadRecord(gid=gid, uris=uris, options=merged, current_gid=gid)
        self.rpc.add_uri_once(uris, merged, gid, attempts=self.max_retries + 1)
        self._ledger.add(record)
        logger.info("added download: %s -> GID %s", redact_url(uris[0]), gid)
        return gid

    # -- reading --------------------------------------------------------------------------------

    def get_progress(self, gid: str, auto_restart: Optional[bool] = None) -> Optional[Progress]:
        """A snapshot of download ``gid``, or None if neither this client nor the daemon knows it.

        When the download has failed and auto restart is on (``auto_restart=None`` means the
        client's ``auto_restart_failed``), a restart is scheduled if the policy allows one; the
        call itself never waits for it. Raises :class:`Aria2ConnectionError` when the daemon
        cannot be reached (never a silent None).
        """
        gid = check_gid(gid)
        auto = self.auto_restart_failed if auto_restart is None else bool(auto_restart)
        record = self._ledger.get(gid)
        if record is None:
            try:
                return Progress.from_aria2(self.rpc.tell_status(gid, STATUS_KEYS), gid=gid)
            except Aria2GIDNotFoundError:
                return None
        with self._ledger.lock:
            daemon_gid, run = record.current_gid, record.run
        try:
            status = self.rpc.tell_status(daemon_gid, STATUS_KEYS)
        except Aria2GIDNotFoundError:
            return self._annotated(record, record.last or Progress(gid=record.gid, status="unknown"))
        return self._observe(record, status, run, auto)

    def _observe(self, record: DownloadRecord, status: Mapping[str, Any], run: int, auto: bool) -> Progress:
        """Turn a status of ``record``'s run ``run`` into a snapshot; act on a failure."""
        progress = Progress.from_aria2(status, gid=record.gid)
        if progress.status == "error":
            self._restarts.note_failure(record, progress, run, auto=auto)
        progress = self._annotated(record, progress)
        with self._ledger.lock:
            if record.run == run:
                record.last = progress
        return progress

    def _annotated(self, record: DownloadRecord, progress: Progress) -> Progress:
        with self._ledger.lock:
            return attrs.evolve(
                progress,
                gid=record.gid,
                retry_count=record.retry_count,
                restart_pending=record.restart_pending,
                gave_up_reason=record.gave_up,
            )

    def get_retry_info(self, gid: str) -> Optional[RetryInfo]:
        """The restart history of a download this client added, or None for another GID.

        A dict with ``gid``, ``retry_count``, ``max_retries`` (the restart budget),
        ``can_retry``, ``url``, ``options`` (as the seed guide shows), plus ``uris``,
        ``current_gid`` (the daemon-side GID, which differs from ``gid`` only after a fallback),
        ``restart_pending``, ``gave_up_reason`` and ``attempts``: one dict per failure with
        ``time``, ``error_code``, ``error_message``, ``completed_length`` and ``gid``.
        """
        record = self._ledger.get(check_gid(gid))
        if record is None:
            return None
        with self._ledger.lock:
            budget = self.restart_policy.max_restarts
            return {
                "gid": record.gid,
                "retry_count": record.retry_count,
                "max_retries": budget,
                "can_retry": (
                    not record.cancelled and record.gave_up is None and record.retry_count < budget
                ),
                "url": record.url,
                "uris": list(record.uris),
                "options": copy.deepcopy(record.options),
                "current_gid": record.current_gid,
                "restart_pending": record.restart_pending,
                "gave_up_reason": record.gave_up,
                "attempts": [attempt.to_dict() for attempt in record.attempts],
            }

    # -- restarting -----------------------------------------------------------------------------

    def restart_download(self, gid: str) -> bool:
        """Restart failed (or removed) download ``gid`` now, resuming its partial file.

        An explicit request: it is done whatever the error code and the budget say, and counts
        as a restart. Returns False when there is nothing to restart (the download is running or
        complete, or a restart of it is already running). Raises :class:`Aria2InputError` for a
        GID this client did not add.
        """
        record = self._ledger.get(check_gid(gid))
        if record is None:
            raise Aria2InputError(
                f"GID {gid} was not added by this client: only its own downloads can be restarted"
            )
        with self._ledger.lock:
            run = record.run
        progress = self.get_progress(record.gid, auto_restart=False)
        if progress is None or progress.status not in ("error", "removed", "unknown"):
            return False
        with self._ledger.lock:
            if record.run != run:
                return False  # restarted by someone else meanwhile
            record.cancelled = False
        return self._restarts.restart(record)

    #: The seed guide's example calls this name; it is :meth:`restart_download`.
    _restart_failed_download = restart_download

    def restart_all_failed_downloads(self) -> int:
        """Restart, now, every failed download of this client that the policy allows.

        Failures with a permanent error, or whose budget is spent, are left alone (their
        ``gave_up_reason`` says why); downloads added by other clients are never touched. One
        round trip reads all statuses. Returns how many downloads were restarted.
        """
        candidates = []
        with self._ledger.lock:
            for record in self._ledger:
                done = record.last is not None and record.last.status == "complete"
                if not record.cancelled and not done and not record.restart_pending:
                    candidates.append((record, record.current_gid, record.run))
        statuses = self.rpc.multicall(
            [("aria2.tellStatus", [daemon_gid, list(STATUS_KEYS)]) for _, daemon_gid, _ in candidates]
        )
        restarted = 0
        for (record, _, run), status in zip(candidates, statuses):
            if isinstance(status, Aria2RPCError):
                continue
            progress = self._observe(record, status, run, auto=False)
            if progress.status != "error" or not self._restarts.allowed(record, progress):
                continue
            if self._restarts.restart(record):
                restarted += 1
        return restarted

    def get_global_stats(self) -> GlobalStats:
        """The daemon's overall speeds and queue sizes."""
        return GlobalStats.from_aria2(self.rpc.get_global_stat())

    def get_version(self) -> Dict[str, Any]:
        """aria2's ``getVersion`` answer: ``{"version": ..., "enabledFeatures": [...]}``."""
        return self.rpc.get_version()

    # -- controlling ----------------------------------------------------------------------------

    def _daemon_gid(self, gid: str) -> str:
        gid = check_gid(gid)
        record = self._ledger.get(gid)
        return record.current_gid if record else gid

    def pause_download(self, gid: str) -> bool:
        """Pause an active or waiting download (it keeps its place and its partial file)."""
        self.rpc.pause(self._daemon_gid(gid))
        return True

    def resume_download(self, gid: str) -> bool:
        """Resume a paused download."""
        self.rpc.unpause(self._daemon_gid(gid))
        return True

    def cancel_download(self, gid: str) -> bool:
        """Stop a download for good. Returns True if it was running, False if it had stopped.

        Files are left on disk: only what aria2 wrote for this download could ever be removed,
        and removing it is the caller's decision (``Progress.file_paths`` names them).
        """
        daemon_gid = self._daemon_gid(gid)
        record = self._ledger.get(daemon_gid)
        if record is not None:
            with self._ledger.lock:
                record.cancelled = True  # no restart may bring it back
        try:
            self.rpc.force_remove(daemon_gid)
            return True
        except Aria2GIDNotFoundError:
            raise
        except Aria2RPCError:
            # Already stopped (complete, error, removed): nothing is running to cancel.
            status = self.rpc.tell_status(daemon_gid, ["status"])
            if status.get("status") in ("complete", "error", "removed"):
                return False
            raise
