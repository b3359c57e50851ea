"""``Aria2Client``: the seed guide's API, synchronous.

A thin facade: each method checks its arguments, then hands over to the engine
(:mod:`aria2_sync.engine.core`). Shareable between threads. Its methods are grouped by job in
mixins beside it, so that each can document its parameters, return value and errors: adding and
the lifecycle here, reading and controlling downloads in :mod:`aria2_sync.client_downloads`,
BitTorrent and Metalink in :mod:`aria2_sync.client_bt`, pools in :mod:`aria2_sync.client_pool`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable

from .client_bt import ChainMethods
from .client_controls import ControlMethods
from .client_downloads import DownloadMethods
from .client_pool import PoolMethods
from .engine.adds import Adder
from .engine.config import ClientConfig, ConfigField
from .engine.core import Engine, failed_future, start_with_private_daemon
from .engine.futures import DownloadFuture
from .engine.operations import Operations, RetryInfo
from .engine.record import Callbacks
from .errors import Aria2ClosedError, redact_url
from .models import Progress
from .policy import RestartPolicy
from .rpc.transport import DEFAULT_MAX_RETRY_DELAY, DEFAULT_TIMEOUT, Timeout
from .state import Store
from .validation import PathArg, UrlArg, check_callables

if TYPE_CHECKING:  # pragma: no cover
    from .daemon.process import Aria2Daemon
    from .rpc.members import DaemonPool

__all__ = ["Aria2Client", "RetryInfo", "engine_of"]

DEFAULT_RPC_URL = "http://localhost:6800/jsonrpc"


class Aria2Client(DownloadMethods, ChainMethods, ControlMethods, PoolMethods):
    """A synchronous client for one aria2 daemon (or several: :meth:`pool`); shareable between threads.

    A background monitor resolves the futures of :meth:`submit` and restarts failed downloads as
    ``restart_policy`` allows. Close it (:meth:`close`, or ``with``) when done.

    Args:
        rpc_url: The daemon's JSON-RPC URL.
        rpc_secret: aria2's ``--rpc-secret``; None: no secret.
        max_retries: Transport retries on connection errors, and the default restart budget of
            a failed download.
        retry_delay: Base of the exponential backoff, in seconds: the n-th retry waits
            ``retry_delay * 2**(n-1)`` s (so does the n-th restart, without ``restart_policy``).
        auto_restart_failed: Whether failures are restarted without being asked (the monitor,
            :meth:`get_progress`); changeable on the instance.
        verbose: Log the seed guide's lines on stderr through the ``aria2_sync`` logger.
        timeout: Bound of every HTTP exchange with the daemon: seconds, or ``(connect, read)``.
        max_retry_delay: Cap of the backoff, in seconds.
        max_restarts: Restart budget per download (default: ``max_retries``); ignored with a
            ``restart_policy``.
        restart_policy: Which failures are restarted, how often, after what wait.
        monitor: Run the background monitor; False: failures are noticed when read.
        poll_interval: Seconds between the monitor's readings.
        disconnect_grace: Seconds of daemon outage after which waiting futures fail.
        keep_finished: Most finished downloads kept in memory (and in the state), oldest forgotten.
        keep_seconds: Finished downloads are forgotten after this many seconds (None: never).
        notifications: Use aria2's WebSocket notifications; None: when websocket-client is installed.
        state: Where the bookkeeping is kept, so that batches, retry counters and restarts work
            across processes and hosts: an SQLite file's path, a ``redis://`` URL, a
            :class:`~aria2_sync.state.base.Store`; None: memory.
        rpc_ca_file: For an ``https://`` ``rpc_url`` (aria2c ``--rpc-secure``): the PEM file of
            the CA that signed the daemon's certificate, or that certificate itself; None: the
            CAs that ``requests`` trusts. Used for the WebSocket notifications too.
        daemon_pool: Made by :meth:`pool` (then ``rpc_url``/``rpc_secret`` are its first daemon's).

    Raises:
        Aria2InputError: An argument is invalid (nothing is started).
        Aria2StateError: ``state`` cannot be opened.
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
        rpc_ca_file: str | os.PathLike[str] | None = None,
        daemon_pool: DaemonPool | None = None,
    ) -> None:
        pool_urls = () if daemon_pool is None else tuple(member.rpc_url for member in daemon_pool.members)
        # fmt: off
        self._config = config = ClientConfig.build(
            rpc_url, rpc_secret, max_retries, retry_delay, auto_restart_failed, verbose, timeout=timeout,
            max_retry_delay=max_retry_delay, max_restarts=max_restarts, restart_policy=restart_policy,
            monitor=monitor, poll_interval=poll_interval, disconnect_grace=disconnect_grace,
            keep_finished=keep_finished, keep_seconds=keep_seconds, notifications=notifications, state=state,
            rpc_ca_file=rpc_ca_file, pool_urls=pool_urls,
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
    rpc_ca_file = ConfigField["str | None"]("The CA file an https daemon's certificate is checked against.")

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
        restarted if it dies (``supervise``)::

            with Aria2Client.local("downloads") as client:
                client.submit("https://example.com/file.zip").result()

        Args:
            download_dir: Where downloads go unless told otherwise; None: the current directory.
            aria2c: The aria2c binary; None: searched as :func:`find_aria2c` does.
            aria2_options: Extra aria2c options (``{"max-download-result": 100}``).
            state_dir: A private directory (mode 700) for aria2c's session and control files;
                None: a temporary one.
            supervise: Start aria2c again, same port and secret, if it dies.
            client_options: The constructor's other arguments (not ``rpc_url``/``rpc_secret``).

        Returns:
            The client; :attr:`daemon` is its aria2c.

        Raises:
            Aria2BinaryNotFoundError: No aria2c was found.
            Aria2DaemonError: aria2c did not start (the message quotes aria2c).
            Aria2InputError: A bad argument.
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

        Idempotent. Pending futures fail with :class:`Aria2ClosedError` (nothing would resolve
        them). A private daemon started by :meth:`local` is stopped gracefully (partial files stay
        resumable). The threads are waited for at most 5 s in all
        (:data:`~aria2_sync.engine.runtime.CLOSE_TIMEOUT`): one still busy then (a hung callback) is left.

        Args:
            cancel: First remove every unfinished download of this client from the daemon (and
                cancel its future); False: they keep running in the daemon.
        """
        self._engine.close(cancel)

    def __enter__(self) -> Aria2Client:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called (then every call raises :class:`Aria2ClosedError`)."""
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

        Once aria2 has the download, its GID is returned whatever goes wrong next: a state file (``state=``)
        that cannot be updated (locked too long, damaged) is logged at WARNING and the download watched in
        memory, so a caller never retries (duplicates) a download that exists.

        Args:
            url: One URL, or a list of mirror URLs of the same file.
            save_path: The full path of the file to write (aria2's ``dir`` + ``out``); None: aria2
                picks the name, in the daemon's download directory (or ``options['dir']``).
            options: aria2 per-download options (``{"max-connection-per-server": 4}``); not modified.
            checksum: ``"sha-256=<hex>"`` (or another algorithm): aria2 verifies the file, and a
                mismatch fails it with :class:`ChecksumMismatch`.
            follow: A ``.torrent`` or metalink found at the URL is followed, not saved as a file.

        Returns:
            The download's GID (16 hex digits), chosen by the client.

        Raises:
            Aria2InputError: A bad argument (nothing was sent).
            Aria2RPCError: aria2 refused the download (it was not added).
            Aria2ConnectionError: The daemon cannot be reached; if its ``gid`` is set, the answer
                was lost: the download may exist, and is watched under that GID.
            Aria2ClosedError: The client is closed.
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

        ``future.result()`` gives a :class:`DownloadResult` or raises :class:`DownloadFailed`
        (complete, or failed for good: never while a restart is pending); ``future.cancel()``
        removes the download from aria2. Callbacks run on the client's worker threads. As in
        :meth:`add_download`, trouble with the state file after aria2 has the download is logged,
        not raised.

        Args:
            url: As in :meth:`add_download`.
            save_path: As in :meth:`add_download`.
            options: As in :meth:`add_download`.
            checksum: As in :meth:`add_download`.
            follow: As in :meth:`add_download`.
            on_progress: Called with the new :class:`Progress` whenever the snapshot changes.
            on_restart: Called with the failed :class:`Progress` after each restart.
            on_done: Called with the future once it has its outcome.

        Returns:
            The download's future (its ``gid`` is the handle); if the client is closed while the
            add is in flight, it has already failed with :class:`Aria2ClosedError` (the download
            may exist in aria2).

        Raises:
            Aria2InputError: A bad argument, or a callback that is not callable (nothing was sent).
            Aria2RPCError: aria2 refused the download.
            Aria2ConnectionError: As in :meth:`add_download`.
            Aria2ClosedError: The client was closed before anything was sent.
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

        All items are checked before anything is sent, then the adds go in ``system.multicall``
        chunks (1000 per round trip). An item aria2 refuses is not dropped: it counts as failed in
        :meth:`get_batch_progress`; its future raises :class:`DownloadFailed` (aria2's reason).

        Args:
            urls_with_paths: ``(url, save_path)`` pairs (``save_path`` may be None), plain URLs,
                or ``(url, save_path, checksum)`` triples.
            batch_id: The batch's id; None: a new one.
            options: aria2 options for every download, as in :meth:`add_download`.
            follow: As in :meth:`add_download`, for every download.

        Returns:
            The batch's id, for :meth:`get_batch_progress`, :meth:`batch_futures`,
            :meth:`wait_for_batch` and :meth:`cancel_batch`.

        Raises:
            Aria2InputError: A bad item (named in the message) or a ``batch_id`` in use; nothing
                was sent.
            Aria2ConnectionError: The daemon cannot be reached.
            Aria2ClosedError: The client is closed.
        """
        self._check_open()
        return self._adder.add_new_batch(urls_with_paths, batch_id, options, follow)

    def _check_open(self) -> None:
        if self.closed:
            raise Aria2ClosedError("this client is closed: create a new Aria2Client")


def engine_of(client: Aria2Client) -> Engine:
    """The :class:`~aria2_sync.engine.core.Engine` behind ``client``: the one introspection door for
    tests, benchmarks and diagnostics (not exported): ``.ledger``, ``.runtime`` (the threads), ``.monitor``,
    ``.connections`` (``.transport``, ``.monitor_transport``), ``.pool``, ``.listener``. Look; do not change.
    """
    return client._engine
