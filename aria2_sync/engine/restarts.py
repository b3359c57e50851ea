"""Restarting downloads that ended in aria2's ``error`` state.

The rules, and how they are kept:

* **The handle stays valid.** A restart re-adds the download under the SAME GID
  (``removeDownloadResult`` frees it, then ``addUri`` with ``gid``). Only when the daemon refuses
  that GID (an evicted unfinished result locks it) does the download get a new one, and the
  ledger keeps the old GID resolving to it.
* **One restart at a time.** Each record has a restart state (idle, scheduled, restarting)
  changed only by its transitions (:mod:`aria2_sync.engine.record`); a failure is recorded once
  per run of the download, however many threads see it.
* **Resume, never re-fetch.** Nothing is deleted: the ``.aria2`` control file stays, and the
  restart pins ``dir`` and ``out`` to the file aria2 was writing, so aria2 continues it with a
  Range request. ``continue=true`` is never added (it corrupts preallocated files).
* **Only what is worth it.** The :class:`~aria2_sync.policy.RestartPolicy` decides, and spaces
  the restarts of one download with exponential backoff, waited out on the scheduler's thread,
  never in the caller's.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable

import attrs

from ..errors import (
    CHECKSUM_ERROR_CODE,
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2RPCError,
    redact_url,
)
from ..logs import logger
from ..models import Progress
from ..policy import RestartDecision, RestartPolicy, describe_error
from ..rpc.methods import Aria2RPC, new_gid
from .following import send_add, torrent_for_restart
from .ledger import Ledger
from .ownfiles import FileIdentity, complete_file_on_disk, file_identity, own_partial_file, target_path
from .record import DownloadRecord
from .scheduler import Scheduler

__all__ = ["RestartEngine"]


#: What a restart reads of the stopped download: enough to pin its file and log its progress.
_RESTART_KEYS = ["status", "dir", "files", "completedLength", "errorCode"]

#: aria2's error code of a checksum mismatch, as ``errorCode`` and the attempts give it.
CHECKSUM_ERROR = CHECKSUM_ERROR_CODE


def _where_last_seen(record: DownloadRecord) -> dict[str, Any] | None:
    """The directory and file of ``record`` as last seen, shaped as ``tellStatus`` gives them.

    For a download lost with its daemon in a pool on shared storage: added at that path on
    another daemon, it resumes the partial file and control file the lost daemon left there.
    """
    last = record.last
    if last is None or not last.dir:
        return None
    files = [{"path": f.path} for f in last.files]
    return {"dir": last.dir, "files": files, "completedLength": str(last.completed_length)}


def _ask(policy: RestartPolicy, record: DownloadRecord, progress: Progress) -> RestartDecision:
    """``policy``'s decision on ``record``'s failure, with its restarts after a checksum
    mismatch counted apart (a mismatch after a network restart is still restarted once)."""
    return policy.decide(
        progress, record.retry_count, checksum_restarts_done=record.restarts_after(CHECKSUM_ERROR)
    )


class RestartEngine:
    """Records failures, asks the policy, and restarts downloads of one client's ledger."""

    def __init__(
        self,
        rpc: Aria2RPC,
        ledger: Ledger,
        policy: RestartPolicy,
        scheduler: Scheduler,
        add_attempts: int,
        run_job: Callable[[Callable[[], None]], object] | None = None,
        run_callback: Callable[[Callable[[], None]], object] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """``run_job`` runs due restarts (the client's job pool, whose ``submit`` says False
        once it is closed; inline without one),
        ``run_callback`` runs ``on_restart`` callbacks (the callback pool), ``wake`` asks the
        monitor to look at once after a restart was issued."""
        self.rpc = rpc
        self.ledger = ledger
        self.policy = policy
        self.scheduler = scheduler
        self.add_attempts = add_attempts
        self._run_job = run_job or (lambda job: job())
        self._run_callback = run_callback or (lambda job: job())
        #: Set by whoever builds the monitor (which comes after this engine).
        self.wake = wake
        # Handle GID -> (path, identity) of the file aria2 was seen writing for that download:
        # the proof that a leftover it later refuses (error 13) is its own. Bounded: the oldest
        # entries go first (a download forgotten here is simply not overwritten).
        self._files: OrderedDict[str, tuple[str, FileIdentity]] = OrderedDict()
        self._files_lock = threading.Lock()

    #: How many downloads' file identities are kept.
    MAX_REMEMBERED_FILES = 10_000

    # -- whose file is it -----------------------------------------------------------------------

    def _note_left_file(self, record: DownloadRecord, progress: Progress | None) -> None:
        """Remember the file a failed run of ``record`` left, if aria2 wrote bytes to it.

        Called when the failure is first seen. aria2 only writes into a file it created (or
        resumes with its control file), since ``auto-file-renaming`` is off: a file it reports
        bytes for is this download's. Once the run has failed aria2 no longer touches it, so
        its identity (inode, size, times) is noted; a later error 13 on that path (the control
        file lost) is then ours only if the file is still exactly that one, not another
        writer's file put there since.
        """
        if (
            progress is None
            or progress.status != "error"
            or progress.error_code == "13"
            or progress.completed_length <= 0
        ):
            return
        path = progress.file_path or target_path(record)
        identity = file_identity(path) if path else None
        if path is None or identity is None:
            return
        with self._files_lock:
            self._files[record.gid] = (path, identity)
            self._files.move_to_end(record.gid)
            while len(self._files) > self.MAX_REMEMBERED_FILES:
                self._files.popitem(last=False)

    def _known_file(self, record: DownloadRecord) -> FileIdentity | None:
        with self._files_lock:
            entry = self._files.get(record.gid)
        if entry is None or entry[0] != target_path(record):
            return None
        return entry[1]

    def own_leftover(self, record: DownloadRecord) -> str | None:
        """The download's target file if it is provably its own unusable leftover."""
        return own_partial_file(record, self._known_file(record))

    # -- noticing failures ----------------------------------------------------------------------

    def note_failure(self, record: DownloadRecord, progress: Progress, run: int, *, auto: bool) -> None:
        """Take note that run ``run`` of ``record`` failed as ``progress`` shows.

        The failure joins the attempt history once, whoever reports it. With ``auto``, a restart
        is scheduled if the policy allows one and none is pending. A report about an older run
        (a poller that read the status just before a restart) is ignored.
        """
        if not record.is_current(run):
            return
        attempt = record.failed(run, progress)
        if attempt is not None:
            # The first sight of this failure: the file is as the run left it (looked at later,
            # it may have been swapped for another writer's while the status stayed the same).
            self._note_left_file(record, progress)
            self.ledger.record_failure(record, run, attempt)  # shared once, whoever saw it
        if not auto:
            return
        decision = record.schedule_restart(run, lambda: self.decide(record, progress))
        if decision is None:
            return
        if not decision.restart:
            self.ledger.persist(record, gave_up=decision.reason)
            logger.warning("download GID %s: %s", record.gid, decision.reason)
            return
        logger.warning(
            "detected failed download (GID %s), restarting in %.1f s: %s",
            record.gid,
            decision.delay,
            describe_error(progress),
        )

        # The scheduler thread only keeps time; the restart itself runs as a job (on the client's
        # worker pool), so a slow daemon never delays other downloads' due restarts. A restart
        # due at once goes straight to the pool.
        def job() -> None:
            self._run_scheduled(record, run)

        def due() -> None:
            self._run_job(job)

        if decision.delay <= 0:
            scheduled = self._run_job(job) is not False
        else:
            scheduled = self.scheduler.call_later(decision.delay, due)
        if not scheduled:  # the client is closing: leave no record waiting for a job
            record.unschedule()

    def _run_scheduled(self, record: DownloadRecord, run: int) -> None:
        if not record.begin_scheduled_restart(run):
            return  # taken over by an explicit restart, a run that is over, or cancelled
        try:
            self._restart(record, run, counted=True)
        except Aria2ConnectionError as error:
            logger.warning("could not restart download GID %s: %s", record.gid, error.reason)
        except Aria2RPCError as error:
            record.give_up(f"aria2 refused the restart: {error}", replace=True)
            logger.warning("could not restart download GID %s: %s", record.gid, error)

    def unschedule_all(self) -> None:
        """Forget every scheduled restart (the client is closing): no record stays SCHEDULED."""
        for record in self.ledger:
            record.unschedule()

    # -- restarting -----------------------------------------------------------------------------

    def decide(self, record: DownloadRecord, progress: Progress) -> RestartDecision:
        """Whether this failure may be restarted now, and after what delay (a question only).

        The policy's word, except for a file-exists error on this download's own leftover
        (a crash before its first control-file save): without a ``predicate``, that one is
        restarted, budget allowing, overwriting the leftover; a user's ``predicate`` is asked
        about it like about any failure.
        """
        if progress.error_code != "13":
            return _ask(self.policy, record, progress)
        if self.own_leftover(record) is not None:
            policy = self.policy
            if policy.predicate is None:
                policy = attrs.evolve(policy, restartable_codes={13})
            return _ask(policy, record, progress)
        decision = _ask(self.policy, record, progress)
        if decision.restart:
            return decision
        return RestartDecision(
            False,
            reason=(
                f"{decision.reason}: the target file already exists and nothing shows this download "
                "wrote it, so it is left untouched (move it away and restart the download, or pass "
                "allow-overwrite=true to replace it)"
            ),
        )

    def restart_if_allowed(self, record: DownloadRecord, run: int, progress: Progress) -> bool:
        """Restart failed run ``run`` now if the policy allows it; else give up on it (the
        reason kept unless one is there). True if restarted."""
        decision = self.decide(record, progress)
        if not decision.restart:
            record.give_up(decision.reason)
            return False
        return self.restart(record, run)

    def restart(self, record: DownloadRecord, run: int) -> bool:
        """Restart run ``run`` of ``record`` now, in this thread.

        False if that run is over (someone restarted it meanwhile), the download was cancelled,
        a restart of it is already running, or it turns out not to be failed. Takes over a
        restart that was waiting out its backoff. Raises the error that stopped it.
        """
        if not record.begin_restart(run):
            return False
        return self._restart(record, run, counted=True)

    def recover(self, record: DownloadRecord, run: int) -> bool:
        """Add again a download whose run ``run`` the daemon no longer has.

        The daemon restarted without its session, or a restart lost its add: not a failure of
        the download, so neither the policy nor the budget is asked.
        """
        if not record.begin_recovery(run):
            return False
        return self._restart(record, run, counted=False)

    def _restart(self, record: DownloadRecord, run: int, *, counted: bool) -> bool:
        """The restart itself; the caller has set the record's state to RESTARTING.

        With a shared store, the restart of run ``run`` is claimed first: if another process
        has claimed it, or already moved the download to a later run, this one stands down and
        takes on the other's view instead.
        """
        claimed = False
        try:
            if not self.ledger.claim(record, run):
                self._stand_down(record)
                return False
            claimed = True
            old_gid = record.current_gid
            try:
                status: dict[str, Any] | None = self.rpc.tell_status(old_gid, _RESTART_KEYS)
            except Aria2GIDNotFoundError:
                status = None  # evicted, lost with a daemon, or removed by a restart that then failed
            if status is not None and status.get("status") not in ("error", "removed"):
                return False  # running or complete: nothing to restart
            if status is None and complete_file_on_disk(record) is not None:
                return False  # finished, and forgotten by the daemon: never fetch it again
            options = self._options_for_restart(record, status)
            if status is not None:
                try:
                    self.rpc.remove_download_result(old_gid)
                except Aria2GIDNotFoundError:
                    pass
            planned = record.next_run(counted)
            if planned is None:
                return False  # cancelled while we were reading: do not bring it back
            number, next_run = planned
            # The old run is over from here on: shared first (a failing write leaves this
            # process's view as it was), then here. If the add below fails, the new run has no
            # daemon-side download, and whoever reads it next finds it gone and recovers it.
            self.ledger.persist(
                record,
                run=next_run,
                retry_count=number,
                gave_up=None,
                last=None,
                outcome=None,
                finished_at=None,
            )
            record.moved_to_run(number, next_run)
            if counted:
                logger.warning(
                    "restarting failed download (attempt %d/%d): %s",
                    number,
                    self.policy.max_restarts,
                    redact_url(record.url),
                )
            else:
                logger.warning(
                    "download GID %s is gone from the daemon; adding it again: %s",
                    record.gid,
                    redact_url(record.url),
                )
            gid = self._add_again(record, options, old_gid)
            if gid != record.current_gid:
                self.ledger.rebind(record, gid)
            if record.cancelled:  # cancelled while the add was in flight
                self._remove_quietly(gid)
                return False
            resumed = int((status or {}).get("completedLength") or 0)
            logger.info(
                "restarted download: %s -> GID %s (resuming after %d bytes)",
                redact_url(record.url),
                gid,
                resumed,
            )
            self._restarted(record)
            return True
        finally:
            record.restart_done()
            if claimed:
                self.ledger.release(record)

    def _restarted(self, record: DownloadRecord) -> None:
        on_restart = record.callbacks.on_restart
        if on_restart is not None:
            progress = record.last_known("waiting")
            self._run_callback(lambda: on_restart(progress))
        if self.wake is not None:
            self.wake()

    def _stand_down(self, record: DownloadRecord) -> None:
        record.restart_done()  # so that refresh may bring the other process's view
        self.ledger.refresh([record])
        logger.debug("restart of GID %s is another process's; following it", record.gid)

    def _remove_quietly(self, gid: str) -> None:
        try:
            self.rpc.force_remove(gid)
        except Aria2RPCError:
            pass

    def _options_for_restart(
        self, record: DownloadRecord, status: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """The download's own options, with its file pinned so aria2 resumes that very file.

        Without ``out``, aria2 names the file after the URL or the server's headers, which may
        differ on the next try; pinning the path aria2 actually used keeps the partial file and
        its control file in play.
        """
        options = dict(record.options)
        if status is None and self.rpc.resume_lost_on_shared_storage:
            status = _where_last_seen(record)
        if str((status or {}).get("errorCode")) == "13" and self.own_leftover(record) is not None:
            # Our own leftover, unusable without its control file (proved just now: a file
            # another writer put there since the decision is not overwritten).
            options["allow-overwrite"] = "true"
        files = (status or {}).get("files") or []
        directory = (status or {}).get("dir")
        if record.source is not None:  # (aria2 names a torrent's files; a metalink's out is pinned)
            if directory and "dir" not in options:
                options["dir"] = directory  # (where a magnet's saved .torrent is, too)
            return options
        if len(files) == 1 and files[0].get("path") and directory and "out" not in options:
            path = files[0]["path"]
            options["dir"] = directory
            options["out"] = os.path.relpath(path, directory)
        return options

    def _add_again(self, record: DownloadRecord, options: Mapping[str, Any], old_gid: str) -> str:
        """Add the download under its old GID; under a new one if the daemon refuses the old."""
        source = torrent_for_restart(record, options.get("dir"))
        try:
            send_add(self.rpc, record.uris, options, old_gid, source, self.add_attempts)
            return old_gid
        except Aria2ConnectionError:
            raise
        except Aria2RPCError as error:
            # aria2 answers "No URI to download." when the GID is taken: by an evicted
            # unfinished result (locked for the daemon's lifetime), or by this very download if
            # someone else added it meanwhile. Only the first case calls for a new GID.
            try:
                self.rpc.tell_status(old_gid, ["gid"])
                return old_gid  # it is there: already added, nothing to duplicate
            except Aria2GIDNotFoundError:
                pass
            gid = new_gid()
            logger.info(
                "GID %s cannot be reused (%s); continuing download GID %s as daemon GID %s",
                old_gid,
                error.rpc_message,
                record.gid,
                gid,
            )
            send_add(self.rpc, record.uris, options, gid, source, self.add_attempts)
            return gid
