"""``Aria2Client``: the seed guide's API, synchronous.

A thin facade (BitTorrent and Metalink methods: :mod:`aria2_sync.client_bt`): each method checks its
arguments, then hands over to the engine (:mod:`aria2_sync.engine.core`). Shareable between threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from .client_bt import ChainMethods
from .client_controls import ControlMethods
from .client_pool import PoolMethods
from .engine.adds import Adder
from .engine.config import ClientConfig, ConfigField, check_batch_id, check_number
from .engine.core import Engine, failed_future, start_with_private_daemon
from .engine.futures import DownloadFuture
from .engine.operations import Operations, RetryInfo
from .engine.record import Callbacks, DownloadRecord
from .errors import Aria2ClosedError, Aria2InputError, Aria2UnknownBatchError, redact_url
from .models import BatchProgress, GlobalStats, Progress
from .policy import RestartPolicy
from .rpc.transport import DEFAULT_MAX_RETRY_DELAY, DEFAULT_TIMEOUT, Timeout
from .state import Store
from .validation import PathArg, UrlArg, check_callables, check_gid, check_gids

if TYPE_CHECKING:  # pragma: no cover
    from .daemon.process import Aria2Daemon
    from .rpc.members import DaemonPool

__all__ = ["Aria2Client", "RetryInfo", "engine_of"]

DEFAULT_RPC_URL = "http://localhost:6800/jsonrpc"


class Aria2Client(ChainMethods, ControlMethods, PoolMethods):
    """A synchronous client for one aria2 daemon (or several: :meth:`pool`).

    ``max_retries`` is both the number of transport retries on connection errors and the default
    restart budget of a failed download; ``retry_delay`` is the base of the exponential backoff
    (the n-th retry waits ``retry_delay * 2**(n-1)`` s). ``verbose=True`` prints the seed guide's
    log lines on stderr through the ``aria2_sync`` logger. ``timeout`` bounds every HTTP exchange
    with the daemon (seconds, or a ``(connect, read)`` pair). Restarts of failed downloads follow
    ``restart_policy`` (a :class:`RestartPolicy`); without one, the budget is ``max_restarts``
    (default: ``max_retries``, as the seed guide says) and the k-th restart of a download waits
    ``retry_delay * 2**(k-1)`` s.

    ``state`` (an SQLite file's path, a ``redis://`` URL, a :class:`~aria2_sync.state.base.Store`; None:
    memory) keeps the bookkeeping, so batches, retry counters and restarts work across processes and hosts.
    ``daemon_pool`` is made by :meth:`pool` (then ``rpc_url``/``rpc_secret`` are its first daemon's).
    """

    def __init__(
        self,
        rpc_url: str = DEFAULT_RPC_URL,
        rpc_secret: str | None = None,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        auto_restart_failed: bool = True,
        verbose: bool = True,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        max_restarts: int | None = None,
        restart_policy: RestartPolicy | None = None,
        monitor: bool = True,
        poll_interval: float = 0.5,
        disconnect_grace: float = 60.0,
        keep_finished: int = 1000,
        keep_seconds: float | None = 3600.0,
        notifications: bool | None = None,
        state: None | str | os.PathLike[str] | Store = None,
        daemon_pool: DaemonPool | None = None,
    ) -> None:
        # fmt: off
        self._config = config = ClientConfig.build(
            rpc_url, rpc_secret, max_retries, retry_delay, auto_restart_failed, verbose, timeout=timeout,
            max_retry_delay=max_retry_delay, max_restarts=max_restarts, restart_policy=restart_policy,
            monitor=monitor, poll_interval=poll_interval, disconnect_grace=disconnect_grace,
            keep_finished=keep_finished, keep_seconds=keep_seconds, notifications=notifications, state=state,
        )
        # fmt: on
        self.auto_restart_failed = config.auto_restart_failed  # (live: ``engine.config`` says why)
        auto = lambda: self.auto_restart_failed  # noqa: E731  (the engine reads it live)
        self._engine = engine = Engine.open(config, rpc_secret, state, auto, daemon_pool)
        self.rpc, self._ledger, self._cancellation = engine.rpc, engine.ledger, engine.cancellation
        self._adder, self._operations = Adder(engine), Operations(engine)
        if config.verbose:  # last: nothing after it can fail
            engine.enable_verbose()

    # -- the configuration, fixed at construction (``aria2_sync.engine.config`` says why) -------

    rpc_url = ConfigField[str]("The daemon's JSON-RPC URL.")
    max_retries = ConfigField[int]("Transport retries per call, and the default restart budget.")
    retry_delay = ConfigField[float]("Base of the exponential backoff, in seconds.")
    verbose = ConfigField[bool]("Whether the seed guide's log lines go to stderr.")
    timeout = ConfigField[Timeout]("Bound of each HTTP exchange with the daemon (s, or (connect, read)).")
    restart_policy = ConfigField[RestartPolicy]("Which failures are restarted, how often, after what wait.")

    @classmethod
    def local(
        cls,
        download_dir: PathArg | None = None,
        *,
        aria2c: PathArg | None = None,
        aria2_options: Mapping[str, Any] | None = None,
        state_dir: PathArg | None = None,
        supervise: bool = True,
        **client_options: Any,
    ) -> Aria2Client:
        """A client on a private aria2c that it starts now and stops on :meth:`close`.

        The embedded default for users who have no daemon running: aria2c is found as
        :func:`find_aria2c` says, bound to 127.0.0.1 on a free port with a random secret, and
        restarted if it dies (``supervise``). ``download_dir`` defaults to the current directory;
        ``aria2_options`` are extra aria2c options; ``client_options`` go to the constructor::

            with Aria2Client.local("downloads") as client:
                client.submit("https://example.com/file.zip").result()
        """
        client, daemon = start_with_private_daemon(
            lambda url, secret: cls(url, secret, **client_options),
            client_options,
            download_dir=download_dir,
            aria2c=aria2c,
            aria2_options=aria2_options,
            state_dir=state_dir,
            supervise=supervise,
        )
        client._engine.daemon = daemon
        return client

    @property
    def daemon(self) -> Aria2Daemon | None:
        """The private daemon this client started (:meth:`local`), else None."""
        return self._engine.daemon

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Aria2Client {redact_url(self.rpc_url)} {state}, {len(self._ledger)} downloads>"

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self, cancel: bool = False) -> None:
        """Stop the monitor, scheduled restarts and worker threads; release connections.

        Idempotent. Downloads in the daemon keep running unless ``cancel=True``, which first removes every
        unfinished download of this client (and cancels its future). Other pending futures fail with
        :class:`Aria2ClosedError` (nothing would resolve them). A private daemon started by :meth:`local` is
        stopped gracefully (partial files stay resumable). The threads are waited for at most 5 s in all
        (:data:`~aria2_sync.engine.runtime.CLOSE_TIMEOUT`): one still busy then (a hung callback) is left.
        """
        self._engine.close(cancel)

    def __enter__(self) -> Aria2Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._engine.closed

    # -- adding ---------------------------------------------------------------------------------

    def add_download(
        self,
        url: UrlArg,
        save_path: PathArg | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        checksum: str | None = None,
        follow: bool = False,
    ) -> str:
        """Add a download and return its GID, a handle that stays valid across restarts.

        ``url`` is one URL, or a list of mirror URLs of the same file. ``save_path`` is the full
        path of the file to write (aria2's ``dir`` + ``out``); without it aria2 picks the name
        and the daemon's download directory (or ``options['dir']``). ``options`` are aria2
        per-download options (``{"max-connection-per-server": 4}``); the dict is not modified.
        ``checksum="sha-256=<hex>"``: aria2 verifies the file (a mismatch is a :class:`ChecksumMismatch`);
        ``follow=True``: a ``.torrent`` or metalink found at the URL is followed, not saved as a file.

        Once aria2 has the download, its GID is returned whatever goes wrong next: a state file (``state=``)
        that cannot be updated (locked too long, damaged) is logged at WARNING and the download watched in
        memory, so a caller never retries (duplicates) a download that exists. An error raised here means
        the download was not added, except an :class:`Aria2ConnectionError` whose ``gid`` is set (the
        answer was lost: it may exist, and is watched).
        """
        self._check_open()
        return self._adder.add_new(url, save_path, options, Callbacks(), checksum, follow).gid

    def submit(
        self,
        url: UrlArg,
        save_path: PathArg | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        checksum: str | None = None,
        follow: bool = False,
        on_progress: Callable[[Progress], Any] | None = None,
        on_restart: Callable[[Progress], Any] | None = None,
        on_done: Callable[[DownloadFuture], Any] | None = None,
    ) -> DownloadFuture:
        """Add a download and return a future that resolves when it is really done.

        ``future.result()`` gives a :class:`DownloadResult` (gid, path, size, url, retry_count, attempts,
        verified) or raises :class:`DownloadFailed`; ``future.cancel()`` removes the download from aria2.
        Callbacks run on the client's worker threads: ``on_progress(progress)`` when the snapshot changes,
        ``on_restart(progress)`` after a restart, ``on_done(future)`` once. ``checksum`` and ``follow`` are
        :meth:`add_download`'s. As there, trouble with the state file after aria2 has the download is
        logged, not raised. If the client is closed while the add is in flight, the future returned fails
        with :class:`Aria2ClosedError` at once (the download may exist in aria2).
        """
        named = check_callables(on_progress=on_progress, on_restart=on_restart, on_done=on_done)
        self._check_open()
        try:
            record = self._adder.add_new(url, save_path, options, Callbacks(**named), checksum, follow)
        except Aria2ClosedError as error:
            if error.gid is None:
                raise  # closed before anything was sent
            return failed_future(error.gid, error)
        return self._engine.future_of(record)

    def add_batch_downloads(
        self,
        urls_with_paths: Iterable[str | Sequence[Any]],
        batch_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        follow: bool = False,
    ) -> str:
        """Add many downloads in a few round trips and return the batch's id.

        ``urls_with_paths`` holds ``(url, save_path)`` pairs (``save_path`` may be None), plain URLs, or
        ``(url, save_path, checksum)`` triples; ``options`` and ``follow`` apply to every download (both
        as in :meth:`add_download`). All items are checked before anything is sent, then the adds go in
        ``system.multicall`` chunks (1000 per round trip). An item aria2 refuses is not dropped: it counts
        as failed in :meth:`get_batch_progress`; its future raises :class:`DownloadFailed` (aria2's reason).
        """
        self._check_open()
        return self._adder.add_new_batch(urls_with_paths, batch_id, options, follow)

    def _check_open(self) -> None:
        if self.closed:
            raise Aria2ClosedError("this client is closed: create a new Aria2Client")

    # -- reading --------------------------------------------------------------------------------

    def get_progress(self, gid: str, auto_restart: bool | None = None) -> Progress | None:
        """A snapshot of download ``gid``, or None if neither this client nor the daemon knows it.

        When the download has failed and auto restart is on (``auto_restart=None``: the client's
        ``auto_restart_failed``), a restart is scheduled if the policy allows one (never waited for
        here). Raises :class:`Aria2ConnectionError` if the daemon cannot be reached (no silent None).
        """
        gid = check_gid(gid)
        auto = self.auto_restart_failed if auto_restart is None else bool(auto_restart)
        return self._operations.progress(gid, auto)

    def future(self, gid: str) -> DownloadFuture:
        """The future of a download this client added (the same object on every call).

        After :meth:`close`, a future without an outcome fails at once with :class:`Aria2ClosedError`
        (nothing would resolve it); a GID not in this process's memory raises it (the state file is closed).
        """
        return self._operations.future(check_gid(gid))

    def get_batch_progress(self, batch_id: str) -> BatchProgress | None:
        """Where batch ``batch_id`` stands, in one round trip whatever its size; None if unknown.

        Failures seen here are acted on like in :meth:`get_progress` (restarts scheduled).
        """
        return self._operations.batch_progress(check_batch_id(batch_id))

    def get_downloads_progress(self, gids: Iterable[str]) -> BatchProgress:
        """Any group of this client's downloads, counted like a batch, in one round trip.

        For the futures of several ``submit`` calls, say (``[f.gid for f in futures]``); the result's
        ``batch_id`` is None. Raises :class:`Aria2InputError` for a GID this client did not add (or forgot).
        """
        records = [self._own_record(gid, " (or was forgotten)") for gid in check_gids(gids)]
        return self._operations.group_progress(None, records)

    def batch_futures(self, batch_id: str) -> list[DownloadFuture]:
        """One future per download of the batch, in the batch's order.

        After :meth:`close`, those without an outcome fail with :class:`Aria2ClosedError` at
        once; a batch this process does not hold in memory raises :class:`Aria2ClosedError`.
        """
        return self._operations.batch_futures(check_batch_id(batch_id))

    def wait_for_batch(self, batch_id: str, timeout: float | None = None) -> BatchProgress | None:
        """Block until every download of the batch has an outcome, or ``timeout`` seconds pass.

        Returns the batch's progress either way (check ``is_completed``). Waits on the futures,
        which the monitor resolves (no polling); on a client closed meanwhile (or before), it
        returns at once with what is known, without asking the daemon.
        """
        if timeout is not None:
            check_number("timeout", timeout, minimum=0)
        return self._operations.wait_for_batch(check_batch_id(batch_id), timeout)

    def get_retry_info(self, gid: str) -> RetryInfo | None:
        """The restart history of a download this client added, or None for another GID.

        A dict with ``gid``, ``retry_count``, ``max_retries`` (the restart budget),
        ``can_retry``, ``url``, ``options`` (as the seed guide shows), plus ``uris``,
        ``current_gid`` (the daemon-side GID, which differs from ``gid`` only after a fallback),
        ``restart_pending``, ``gave_up_reason`` and ``attempts``: one dict per failure with
        ``time``, ``error_code``, ``error_message``, ``completed_length`` and ``gid``.
        """
        record = self._ledger.get(check_gid(gid))
        return None if record is None else self._operations.retry_info(record)

    def restart_download(self, gid: str) -> bool:
        """Restart failed (or removed) download ``gid`` now, resuming its partial file.

        An explicit request, done whatever the error code and the budget say; it counts as a restart.
        Returns False when there is nothing to restart (running or complete, or already being restarted).
        Raises :class:`Aria2InputError` for a GID this client did not add.
        """
        return self._operations.restart(self._own_record(gid, ": only its own downloads can be restarted"))

    def _own_record(self, gid: str, why: str) -> DownloadRecord:
        record = self._ledger.get(check_gid(gid))
        if record is None:
            raise Aria2InputError(f"GID {gid} was not added by this client{why}")
        return record

    #: The seed guide's example calls this name; it is :meth:`restart_download`.
    _restart_failed_download = restart_download

    def restart_all_failed_downloads(self, batch_id: str | None = None, force: bool = False) -> int:
        """Restart, now, every failed download of this client that the policy allows.

        Failures with a permanent error, or whose budget is spent, are left alone (their
        ``gave_up_reason`` says why) unless ``force=True`` (a user's explicit "try again");
        downloads added by other clients are never touched. ``batch_id`` limits it to one batch.
        One round trip reads all statuses. Returns how many downloads were restarted.
        """
        pool = list(self._ledger) if batch_id is None else self._batch_records(batch_id)
        return self._operations.restart_failed(pool, force)

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished download of a batch (one round trip); returns how many.

        Their futures are cancelled; files stay on disk, resumable. Finished ones are left.
        """
        return self._cancellation.cancel_many(self._batch_records(batch_id))

    def _batch_records(self, batch_id: str) -> list[DownloadRecord]:
        records = self._ledger.batch_records(check_batch_id(batch_id))
        if records is None:
            raise Aria2UnknownBatchError(batch_id)
        return records

    def get_global_stats(self) -> GlobalStats:
        """The daemon's overall speeds and queue sizes."""
        return GlobalStats.from_aria2(self.rpc.get_global_stat())

    def get_version(self) -> dict[str, Any]:
        """aria2's ``getVersion`` answer: ``{"version": ..., "enabledFeatures": [...]}``."""
        return self.rpc.get_version()

    # -- controlling ----------------------------------------------------------------------------

    def pause_download(self, gid: str) -> bool:
        """Pause an active or waiting download (it keeps its place and its partial file)."""
        self.rpc.pause(self._daemon_gid(gid))
        return True

    def resume_download(self, gid: str) -> bool:
        """Resume a paused download."""
        self.rpc.unpause(self._daemon_gid(gid))
        return True

    # (cancel_download, options, the queue, everything at once: aria2_sync.client_controls)


def engine_of(client: Aria2Client) -> Engine:
    """The :class:`~aria2_sync.engine.core.Engine` behind ``client``: the one introspection door for
    tests, benchmarks and diagnostics (not exported): ``.ledger``, ``.runtime`` (the threads), ``.monitor``,
    ``.connections`` (``.transport``, ``.monitor_transport``), ``.pool``, ``.listener``. Look; do not change.
    """
    return client._engine
