"""``Aria2Client``: the seed guide's API, synchronous.

The facade owns the pieces below it (transport, RPC wrappers, ledger) and keeps each public
method short: validate at the edge, then delegate. It is safe to share one client between threads.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

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
from .rpc import Aria2RPC
from .transport import DEFAULT_MAX_RETRY_DELAY, DEFAULT_TIMEOUT, Timeout, Transport
from .validation import PathArg, UrlArg, check_gid, check_uris, download_options

__all__ = ["Aria2Client", "new_gid"]

logger = logging.getLogger("aria2_sync")

DEFAULT_RPC_URL = "http://localhost:6800/jsonrpc"


def new_gid() -> str:
    """A random aria2 GID (16 hex digits, never all zeros).

    The client picks GIDs itself so that an ``addUri`` retried after a lost answer can be checked
    for ("is that GID there already?") instead of creating a second download.
    """
    while True:
        gid = secrets.token_hex(8)
        if gid != "0" * 16:
            return gid


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
        self._closed = False
        self._close_lock = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Aria2Client {redact_url(self.rpc_url)} {state}, {len(self._ledger)} downloads>"

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release connections. Idempotent; downloads in the daemon keep running."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
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
        self._add_to_daemon(uris, merged, gid)
        self._ledger.add(record)
        logger.info("added download: %s -> GID %s", redact_url(uris[0]), gid)
        return gid

    def _add_to_daemon(self, uris: Sequence[str], options: Mapping[str, Any], gid: str) -> None:
        """``addUri`` under a GID chosen here, made safe to retry (design guarantee 4).

        When the answer is lost after the request may have reached the daemon, ask whether the
        GID exists before adding again: a retried add must never make a second download.
        """
        options = {**options, "gid": gid}
        last_error: Optional[Aria2ConnectionError] = None
        for _ in range(self.max_retries + 1):
            try:
                self.rpc.add_uri(uris, options)
                return
            except Aria2ConnectionError as error:
                if not error.maybe_applied:
                    raise  # nothing reached the daemon; the transport already retried
                last_error = error
            logger.warning("the answer to addUri for GID %s was lost; checking whether it was added", gid)
            try:
                self.rpc.tell_status(gid, ["gid"])
                return  # the first request did add it
            except Aria2GIDNotFoundError:
                continue
        assert last_error is not None
        raise last_error

    # -- reading --------------------------------------------------------------------------------

    def get_progress(self, gid: str, auto_restart: Optional[bool] = None) -> Optional[Progress]:
        """A snapshot of download ``gid``, or None if neither this client nor the daemon knows it.

        Raises :class:`Aria2ConnectionError` when the daemon cannot be reached (never a silent
        None).
        """
        gid = check_gid(gid)
        record = self._ledger.get(gid)
        daemon_gid = record.current_gid if record else gid
        try:
            status = self.rpc.tell_status(daemon_gid, STATUS_KEYS)
        except Aria2GIDNotFoundError:
            if record is None:
                return None
            return record.last or Progress(gid=record.gid, status="unknown", retry_count=record.retry_count)
        return self._snapshot(record, status, gid)

    def _snapshot(self, record: Optional[DownloadRecord], status: Mapping[str, Any], gid: str) -> Progress:
        if record is None:
            return Progress.from_aria2(status, gid=gid)
        progress = Progress.from_aria2(status, gid=record.gid, retry_count=record.retry_count)
        with self._ledger.lock:
            record.last = progress
        return progress

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
