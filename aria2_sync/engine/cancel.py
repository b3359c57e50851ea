"""Cancelling downloads: the one place that marks, removes and settles a cancelled download.

A cancel has three parts, always in this order (for a download whose payload comes under a GID
of its own, a magnet's, the removal reaches every GID of its chain still running, whichever way
it is cancelled: ``cancel_download``, ``cancel_batch``, ``DownloadFuture.cancel()`` or
``close(cancel=True)``):

1. the record is marked cancelled (:meth:`DownloadRecord.cancel`): from then on no restart may
   bring it back, and a scheduled one is dropped; with a shared store the mark is written
   through, so other processes do not restart it either;
2. the daemon is told (``aria2.forceRemove``): now for ``cancel_download`` and
   ``cancel_batch``, in the background for ``DownloadFuture.cancel()`` (which must not wait on
   the network), and again by the tracker when a download cancelled while the daemon could not
   hear it shows up running;
3. the record gets the outcome CANCELLED and its future is cancelled (once, whoever gets there
   first: the removal's answer, or a status read that shows it removed).

Files stay on disk: only what aria2 wrote for the download could ever be removed, and removing
it is the caller's decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ..errors import Aria2AuthError, Aria2ConnectionError, Aria2Error, Aria2GIDNotFoundError, Aria2RPCError
from ..logs import logger
from ..safety import FOLLOW_OPTIONS
from .ledger import Ledger
from .record import DownloadRecord

if TYPE_CHECKING:  # pragma: no cover
    from ..rpc.methods import Aria2RPC
    from .workers import WorkerPool

__all__ = ["Cancellation", "may_be_followed"]


def may_be_followed(record: DownloadRecord) -> bool:
    """Whether aria2 may run ``record``'s payload under a GID of its own after the first one.

    A magnet or a ``.torrent`` URL added as such (its :class:`~aria2_sync.engine.states.Source`
    says so), or a download added without a source whose options do not turn aria2's
    ``follow-torrent`` and ``follow-metalink`` off (``follow=True``, or a record read from a
    shared store, which keeps no source): aria2 follows by default.
    """
    source = record.source
    if source is not None:
        return source.follows
    return any(str(record.option(key)).strip().lower() != "false" for key in FOLLOW_OPTIONS)


class Settler(Protocol):
    """What cancellation needs of the tracker: settling a cancelled download's future.

    A protocol rather than the tracker's class, because the tracker asks this module in turn:
    the two would otherwise import each other.
    """

    def settle(self, record: DownloadRecord) -> None: ...


class Cancellation:
    """Cancels the downloads of one ledger on one daemon (see the module's docstring)."""

    def __init__(self, rpc: Aria2RPC, ledger: Ledger, jobs: WorkerPool) -> None:
        self.rpc = rpc
        self.ledger = ledger
        self.jobs = jobs
        self._tracker: Settler | None = None

    def attach(self, tracker: Settler) -> None:
        """The tracker that settles the futures of cancelled downloads (it asks here in turn)."""
        self._tracker = tracker

    def _refresh(self, records: list[DownloadRecord]) -> None:
        """Take in what other processes changed of ``records`` before acting on their daemon GIDs
        (the monitor refreshes parked downloads only now and then)."""
        for record in self.ledger.refresh(records):
            if self._tracker is not None:
                self._tracker.settle(record)

    def _mark(self, record: DownloadRecord, *, removing: bool = False, unless_finished: bool = False) -> bool:
        if not record.cancel(removing=removing, unless_finished=unless_finished):
            return False
        self.ledger.persist(record, cancelled=True)
        return True

    def finish(self, record: DownloadRecord) -> None:
        """Give ``record`` the outcome CANCELLED (unless it has one) and settle its future."""
        if not record.finish_cancelled():
            return
        self.ledger.persist_outcome(record)
        if self._tracker is not None:
            self._tracker.settle(record)

    # -- one download ---------------------------------------------------------------------------

    def cancel_download(self, record: DownloadRecord | None, daemon_gid: str) -> bool:
        """Stop a download now. True if it was running, False if it had stopped.

        ``record`` is None for a GID this client did not add (it is removed all the same).
        """
        if record is not None:
            # No restart may bring it back, and this call removes it: the monitor must not send
            # a removal of its own, which would make this one fail as if it had already stopped.
            self._mark(record, removing=True)
        try:
            running = self._force_remove(record, daemon_gid)
            return self._remove_followers(record, daemon_gid) or running
        finally:
            if record is not None:
                record.removal_sent()

    def _remove_followers(self, record: DownloadRecord | None, removed: str) -> bool:
        """Remove what followed ``removed`` in a chain (a magnet's payload, which aria2 may
        have started just as the metadata was removed); True if something was running."""
        if record is None:
            return False
        stopped = self._sweep([(record, removed)])
        if stopped:
            self.finish(record)
        return bool(stopped)

    def _sweep(self, removed: list[tuple[DownloadRecord, str]]) -> list[DownloadRecord]:
        """Remove the followers of each removed daemon GID (``(record, GID)`` pairs): the GIDs
        aria2 names in its ``followedBy``. Returns the records one of whose followers ran.

        A payload begins under a GID of aria2's own as its metadata completes; the client
        learns of it only at its next read, so a removal sent to the metadata's GID may come
        too late, and the payload would run on unwatched. Its ``followedBy`` is set as it
        completes, so asking after the removal finds every follower. Only downloads that may
        have followers are asked (:func:`may_be_followed`): a batch of plain downloads costs
        nothing more. Two round trips at most, whatever the number; a daemon that cannot be
        asked is logged (the removals of the GIDs themselves went out already).
        """
        chained = [(record, gid) for record, gid in removed if may_be_followed(record)]
        if not chained:
            return []
        try:
            statuses = self.rpc.multicall([("aria2.tellStatus", [gid, ["followedBy"]]) for _, gid in chained])
            followers = [
                (record, str(follower))
                for (record, _), status in zip(chained, statuses)
                if isinstance(status, dict)
                for follower in status.get("followedBy") or []
            ]
            answers = self.rpc.multicall([("aria2.forceRemove", [gid]) for _, gid in followers])
        except Aria2Error as error:
            logger.warning("could not remove what followed %d cancelled downloads: %s", len(chained), error)
            return []
        # (a refusal: that follower had stopped already)
        ran = [
            record for (record, _), answer in zip(followers, answers) if not isinstance(answer, Aria2Error)
        ]
        return list({id(record): record for record in ran}.values())

    def _force_remove(self, record: DownloadRecord | None, daemon_gid: str) -> bool:
        try:
            self.rpc.force_remove(daemon_gid)
        except Aria2GIDNotFoundError:
            if record is None or record.finished:
                raise
            # Between a restart's removal and its add (the restart sees the flag and removes
            # what it adds), or gone from the daemon: either way it will not run again.
            self.finish(record)
            return True
        except Aria2RPCError:
            # Already stopped (complete, error, removed): nothing is running to cancel.
            status = self.rpc.tell_status(daemon_gid, ["status"])
            if status.get("status") in ("complete", "error", "removed"):
                if record is not None and status.get("status") != "complete":
                    self.finish(record)
                return False
            raise
        if record is not None:
            self.finish(record)
        return True

    def for_future(self, gid: str) -> bool:
        """``DownloadFuture.cancel()`` asks here first: False if the download has an outcome.

        Marks the download cancelled at once and sends the removal in the background, so
        ``cancel()`` never waits on the network.
        """
        record = self.ledger.get(gid)
        if record is None:
            return True
        self._refresh([record])  # (finished, or restarted under another GID, by another process?)
        if not self._mark(record, removing=True, unless_finished=True):
            return False
        self.jobs.submit(lambda: self.remove(record))
        return True

    def remove(self, record: DownloadRecord) -> None:
        """Remove a cancelled download from aria2 (again when the daemon was unreachable)."""
        daemon_gid = record.removal_sent()
        try:
            self.rpc.force_remove(daemon_gid)
        except Aria2ConnectionError as error:
            logger.warning(
                "could not remove cancelled download GID %s now (%s); will when aria2 answers",
                record.gid,
                error.reason,
            )
            return
        except Aria2RPCError:
            pass  # already stopped or gone: cancelled all the same
        self._remove_followers(record, daemon_gid)
        self.finish(record)

    # -- many -----------------------------------------------------------------------------------

    def cancel_many(self, records: list[DownloadRecord]) -> int:
        """Cancel the unfinished ones of ``records`` in one round trip; returns how many.

        Raises :class:`Aria2AuthError` if the daemon refuses the secret.
        """
        self._refresh([r for r in records if not r.finished])
        live = [r for r in records if not r.finished]
        for record in live:
            self._mark(record)
        gids = [record.current_gid for record in live]
        answers = self.rpc.multicall([("aria2.forceRemove", [gid]) for gid in gids])
        denied = next((a for a in answers if isinstance(a, Aria2AuthError)), None)
        if denied is not None:
            raise denied
        self._sweep(list(zip(live, gids)))
        for record in live:
            self.finish(record)
        return len(live)

    def cancel_all_closing(self) -> None:
        """Cancel every unfinished download of the ledger while the client closes.

        The futures are cancelled directly (the pools are about to stop); a daemon that cannot
        be told is logged, not raised.
        """
        records = self.ledger.unfinished()
        for record in records:
            record.cancel()
        gids = [record.current_gid for record in records]
        try:
            self.rpc.multicall([("aria2.forceRemove", [gid]) for gid in gids])
        except Aria2Error as error:
            logger.warning("could not remove %d downloads while closing: %s", len(gids), error)
        else:
            self._sweep(list(zip(records, gids)))
        for record in records:
            if not record.finish_cancelled():
                continue
            self.ledger.persist_outcome(record)
            future = record.future
            if future is not None:
                future._settle_cancelled()
