"""``Aria2Client``'s methods that read and control the downloads it added.

A mixin of :class:`~aria2_sync.client.Aria2Client` (kept beside it so that the facade stays
short and each method can document its parameters, return value and errors): each method checks
its arguments and hands over to the engine (:class:`~aria2_sync.engine.operations.Operations`
for reading, waiting and restarting; the cancellation for cancelling). Errors every method that
asks the daemon may raise: :class:`~aria2_sync.errors.Aria2ConnectionError` (the daemon cannot be
reached; :class:`~aria2_sync.errors.Aria2TimeoutError` when it does not answer in time),
:class:`~aria2_sync.errors.Aria2AuthError` (the secret is refused),
:class:`~aria2_sync.errors.Aria2ProtocolError` (what answers is not aria2).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .engine.config import check_batch_id, check_number
from .engine.operations import RetryInfo
from .errors import Aria2InputError, Aria2UnknownBatchError
from .models import BatchProgress, GlobalStats, Progress
from .validation import check_gid, check_gids

if TYPE_CHECKING:  # pragma: no cover
    from .engine.cancel import Cancellation
    from .engine.futures import DownloadFuture
    from .engine.ledger import Ledger
    from .engine.operations import Operations
    from .engine.record import DownloadRecord
    from .rpc.methods import Aria2RPC

__all__ = ["DownloadMethods"]


class DownloadMethods:
    """Reading, waiting for, restarting, pausing and cancelling downloads (see the module)."""

    if TYPE_CHECKING:  # pragma: no cover
        auto_restart_failed: bool
        rpc: Aria2RPC
        _ledger: Ledger
        _operations: Operations
        _cancellation: Cancellation

    # -- reading --------------------------------------------------------------------------------

    def get_progress(self, gid: str, auto_restart: bool | None = None) -> Progress | None:
        """A snapshot of download ``gid``: status, sizes, speed, ETA, error, restarts.

        When the download has failed and auto restart is on, a restart is scheduled if the
        policy allows one (never waited for here).

        Args:
            gid: A GID this client added, or any GID the daemon knows.
            auto_restart: Whether a failure seen here may be restarted; None: the client's
                ``auto_restart_failed``.

        Returns:
            The snapshot, or None if neither this client nor the daemon knows ``gid``.

        Raises:
            Aria2InputError: ``gid`` is not a GID (16 hex digits).
            Aria2ConnectionError: The daemon cannot be reached (never a silent None).
        """
        gid = check_gid(gid)
        auto = self.auto_restart_failed if auto_restart is None else bool(auto_restart)
        return self._operations.progress(gid, auto)

    def future(self, gid: str) -> DownloadFuture:
        """The future of a download this client added (the same object on every call).

        Args:
            gid: A GID this client added.

        Returns:
            The download's future; after :meth:`close`, one without an outcome has failed with
            :class:`Aria2ClosedError` (nothing would resolve it).

        Raises:
            Aria2InputError: ``gid`` is not a GID, or not one of this client's.
            Aria2ClosedError: The client is closed and ``gid`` is not in this process's memory
                (the state file is closed).
        """
        return self._operations.future(check_gid(gid))

    def get_batch_progress(self, batch_id: str) -> BatchProgress | None:
        """Where a batch stands, in one round trip whatever its size.

        Failures seen here are acted on as in :meth:`get_progress` (restarts scheduled).

        Args:
            batch_id: An id returned by :meth:`add_batch_downloads` (or
                :meth:`add_metalink_batch`).

        Returns:
            The batch's counts and snapshots, or None for a batch this client does not know.

        Raises:
            Aria2InputError: ``batch_id`` is not a str.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return self._operations.batch_progress(check_batch_id(batch_id))

    def get_downloads_progress(self, gids: Iterable[str]) -> BatchProgress:
        """Any group of this client's downloads, counted like a batch, in one round trip.

        For the futures of several ``submit`` calls, say (``[f.gid for f in futures]``).

        Args:
            gids: GIDs this client added.

        Returns:
            Their progress as a batch's, whose ``batch_id`` is None.

        Raises:
            Aria2InputError: A GID this client did not add (or has forgotten).
            Aria2ConnectionError: The daemon cannot be reached.
        """
        records = [self._own_record(gid, " (or was forgotten)") for gid in check_gids(gids)]
        return self._operations.group_progress(None, records)

    def batch_futures(self, batch_id: str) -> list[DownloadFuture]:
        """One future per download of the batch, in the batch's order.

        Args:
            batch_id: An id returned by :meth:`add_batch_downloads`.

        Returns:
            The futures; after :meth:`close`, those without an outcome have failed with
            :class:`Aria2ClosedError`.

        Raises:
            Aria2UnknownBatchError: No batch has that id in this client.
            Aria2ClosedError: The client is closed and the batch is not in this process's memory.
        """
        return self._operations.batch_futures(check_batch_id(batch_id))

    def wait_for_batch(self, batch_id: str, timeout: float | None = None) -> BatchProgress | None:
        """Block until every download of the batch has an outcome, or ``timeout`` seconds pass.

        Waits on the futures, which the monitor resolves (no polling); on a client closed
        meanwhile (or before), it returns at once with what is known, without asking the daemon.

        Args:
            batch_id: An id returned by :meth:`add_batch_downloads`.
            timeout: Seconds to wait at most; None: no limit.

        Returns:
            The batch's progress either way (check ``is_completed``); None for an unknown batch.

        Raises:
            Aria2InputError: A negative ``timeout`` or a ``batch_id`` that is not a str.
            Aria2ConnectionError: The daemon cannot be reached for the final reading.
        """
        if timeout is not None:
            check_number("timeout", timeout, minimum=0)
        return self._operations.wait_for_batch(check_batch_id(batch_id), timeout)

    def get_retry_info(self, gid: str) -> RetryInfo | None:
        """The restart history of a download this client added.

        Args:
            gid: A GID this client added.

        Returns:
            A dict with ``gid``, ``retry_count``, ``max_retries`` (the restart budget),
            ``can_retry``, ``url``, ``options``, ``uris``, ``current_gid`` (the daemon-side GID,
            which differs from ``gid`` only after a fallback), ``restart_pending``,
            ``gave_up_reason`` and ``attempts`` (one dict per failure: ``time``, ``error_code``,
            ``error_message``, ``completed_length``, ``gid``); None for another GID.

        Raises:
            Aria2InputError: ``gid`` is not a GID.
        """
        record = self._ledger.get(check_gid(gid))
        return None if record is None else self._operations.retry_info(record)

    def get_global_stats(self) -> GlobalStats:
        """The daemon's overall speeds and queue sizes (aria2's ``getGlobalStat``).

        Returns:
            Download and upload speeds, and the numbers of active, waiting and stopped downloads.

        Raises:
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return GlobalStats.from_aria2(self.rpc.get_global_stat())

    def get_version(self) -> dict[str, Any]:
        """The daemon's version and features (aria2's ``getVersion``).

        Returns:
            ``{"version": "1.37.0", "enabledFeatures": ["BitTorrent", ...]}``, as aria2 sends it.

        Raises:
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return self.rpc.get_version()

    # -- restarting -----------------------------------------------------------------------------

    def restart_download(self, gid: str) -> bool:
        """Restart a failed (or removed) download now, resuming its partial file.

        An explicit request, done whatever the error code and the budget say; it counts as a restart.

        Args:
            gid: A GID this client added.

        Returns:
            True if it was restarted; False when there is nothing to restart (running or
            complete, or already being restarted).

        Raises:
            Aria2InputError: A GID this client did not add.
            Aria2ConnectionError: The daemon cannot be reached.
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
        ``gave_up_reason`` says why) unless ``force=True``; downloads added by other clients are
        never touched. One round trip reads all statuses.

        Args:
            batch_id: Only the downloads of this batch; None: all of this client's.
            force: Restart every failed one, whatever the policy says (a user's "try again").

        Returns:
            How many downloads were restarted.

        Raises:
            Aria2UnknownBatchError: No batch has that id in this client.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        pool = list(self._ledger) if batch_id is None else self._batch_records(batch_id)
        return self._operations.restart_failed(pool, force)

    # -- controlling ----------------------------------------------------------------------------

    def cancel_batch(self, batch_id: str) -> int:
        """Cancel every unfinished download of a batch, in one round trip.

        Their futures are cancelled; files stay on disk, resumable. Finished ones are left.

        Args:
            batch_id: An id returned by :meth:`add_batch_downloads`.

        Returns:
            How many downloads were cancelled.

        Raises:
            Aria2UnknownBatchError: No batch has that id in this client.
            Aria2ConnectionError: The daemon cannot be reached.
        """
        return self._cancellation.cancel_many(self._batch_records(batch_id))

    def _batch_records(self, batch_id: str) -> list[DownloadRecord]:
        records = self._ledger.batch_records(check_batch_id(batch_id))
        if records is None:
            raise Aria2UnknownBatchError(batch_id)
        return records
