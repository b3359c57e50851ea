"""Restarting downloads that ended in aria2's ``error`` state.

The rules (design guarantees 1-3 and 6), and how they are kept:

* **The handle stays valid.** A restart re-adds the download under the SAME GID
  (``removeDownloadResult`` frees it, then ``addUri`` with ``gid``). Only when the daemon refuses
  that GID (an evicted unfinished result locks it) does the download get a new one, and the
  ledger keeps the old GID resolving to it.
* **One restart at a time.** Each record has a restart state (idle, scheduled, restarting)
  changed only under the ledger's lock; a failure is recorded once per run of the download,
  however many threads see it.
* **Resume, never re-fetch.** Nothing is deleted: the ``.aria2`` control file stays, and the
  restart pins ``dir`` and ``out`` to the file aria2 was writing, so aria2 continues it with a
  Range request. ``continue=true`` is never added (it corrupts preallocated files).
* **Only what is worth it.** The :class:`~aria2_sync.policy.RestartPolicy` decides, and spaces
  the restarts of one download with exponential backoff, waited out on the scheduler's thread,
  never in the caller's.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable

from ..errors import (
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2RPCError,
    redact_url,
)
from ..logs import logger
from ..models import Progress
from ..policy import RestartDecision, RestartPolicy, describe_error
from ..rpc.methods import Aria2RPC, new_gid
from .ledger import IDLE, RESTARTING, SCHEDULED, Attempt, DownloadRecord, Ledger
from .scheduler import Scheduler

__all__ = ["RestartEngine", "complete_file_on_disk"]


#: What a restart reads of the stopped download: enough to pin its file and log its progress.
_RESTART_KEYS = ["status", "dir", "files", "completedLength", "errorCode"]


def complete_file_on_disk(record: DownloadRecord) -> str | None:
    """The download's file if it is on this machine, whole, with no control file beside it.

    Asked only when the daemon has forgotten a download: a finished file whose result was
    evicted must not be fetched again.
    """
    path = _target_path(record)
    if not path or not os.path.isfile(path) or os.path.exists(path + ".aria2"):
        return None
    size = os.path.getsize(path)
    expected = record.last.total_length if record.last is not None else 0
    if size == 0 or (expected > 0 and size != expected):
        return None
    return path


#: (device, inode, size, mtime_ns, ctime_ns) of a file: which file a path named, in which
#: state. Inode numbers are reused at once after a delete, so the inode alone proves nothing;
#: together with the times and size it tells a file nobody touched since it was looked at.
FileIdentity = tuple[int, int, int, int, int]


def _identity(info: os.stat_result) -> FileIdentity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def file_identity(path: str) -> FileIdentity | None:
    """The identity of the regular file at ``path`` (not following a link); None if none."""
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return _identity(info) if stat.S_ISREG(info.st_mode) else None


def own_partial_file(record: DownloadRecord, known: FileIdentity | None = None) -> str | None:
    """The target file if it is provably this download's own leftover, else None.

    aria2 refuses (error 13) a file it cannot resume: one without its control file. That is
    what a crash leaves when aria2 had created the file but not yet its control file; being
    ours, it may be overwritten. Anybody else's file is never touched, so "ours" needs proof,
    not just a recent modification time (another writer may have created the file after the
    add). Proof is one of:

    * ``known``: the identity (device, inode, size, times) the file had when this download
      failed after aria2 had written bytes to it; the file must still be that very file,
      untouched since;
    * the file is empty and was created after the add. aria2 creates the file empty and writes
      its control file about a millisecond later, before any byte of data (measured with
      aria2c 1.37, ``file-allocation=none``), so an empty file is what a crash in that window
      leaves; and an empty file holds no content to lose.
    """
    path = _target_path(record)
    if not path or os.path.lexists(path + ".aria2"):
        return None
    try:
        info = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if known is not None and _identity(info) == known:
        return path
    if info.st_size == 0 and info.st_mtime >= record.added_at - 0.5:
        return path
    return None


def _target_path(record: DownloadRecord) -> str | None:
    """Where the download writes: where aria2 said it did, else where it was asked to."""
    if record.last is not None and record.last.file_path:
        return record.last.file_path
    if "dir" in record.options and "out" in record.options:
        return os.path.join(str(record.options["dir"]), str(record.options["out"]))
    return None


class RestartEngine:
    """Records failures, asks the policy, and restarts downloads of one client's ledger."""

    def __init__(
        self,
        rpc: Aria2RPC,
        ledger: Ledger,
        policy: RestartPolicy,
        scheduler: Scheduler,
        add_attempts: int,
        run_job: Callable[[Callable[[], None]], None] | None = None,
        on_restarted: Callable[[DownloadRecord], None] | None = None,
    ) -> None:
        self.rpc = rpc
        self.ledger = ledger
        self.policy = policy
        self.scheduler = scheduler
        self.add_attempts = add_attempts
        self._run_job = run_job or (lambda job: job())
        self._on_restarted = on_restarted
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
        path = progress.file_path or _target_path(record)
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
        if entry is None or entry[0] != _target_path(record):
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
        attempt = None
        with self.ledger.lock:
            if record.cancelled or record.run != run:
                return
        with self.ledger.lock:
            if record.cancelled or record.run != run:
                return
            if not record.failure_recorded:
                record.failed_run = run
                record.gave_up = None
                attempt = Attempt(
                    time=time.time(),
                    error_code=progress.error_code,
                    error_message=progress.error_message,
                    completed_length=progress.completed_length,
                    gid=record.current_gid,
                )
                record.attempts.append(attempt)
        if attempt is not None:
            # The first sight of this failure: the file is as the run left it (looked at later,
            # it may have been swapped for another writer's while the status stayed the same).
            self._note_left_file(record, progress)
            self.ledger.record_failure(record, run, attempt)  # shared once, whoever saw it
        with self.ledger.lock:
            if not auto or record.restart_state != IDLE or record.gave_up is not None or record.run != run:
                return
            decision = self._decide(record, progress)
            if not decision.restart:
                record.gave_up = decision.reason
            else:
                record.restart_state = SCHEDULED
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
        # worker pool), so a slow daemon never delays other downloads' due restarts.
        scheduled = self.scheduler.call_later(
            decision.delay, lambda: self._run_job(lambda: self._run_scheduled(record, run))
        )
        if not scheduled:  # the client is closing: leave no record waiting for a job
            with self.ledger.lock:
                if record.restart_state == SCHEDULED:
                    record.restart_state = IDLE

    def _run_scheduled(self, record: DownloadRecord, run: int) -> None:
        with self.ledger.lock:
            if record.restart_state != SCHEDULED or record.run != run:
                # An explicit restart took over (and reset the state itself), or this job is
                # for a run that is over: a SCHEDULED state now belongs to a newer job.
                return
            if record.cancelled:
                record.restart_state = IDLE
                return
            record.restart_state = RESTARTING
        try:
            self._restart(record, run, counted=True)
        except Aria2ConnectionError as error:
            logger.warning("could not restart download GID %s: %s", record.gid, error.reason)
        except Aria2RPCError as error:
            with self.ledger.lock:
                record.gave_up = f"aria2 refused the restart: {error}"
            logger.warning("could not restart download GID %s: %s", record.gid, error)

    def unschedule_all(self) -> None:
        """Forget every scheduled restart (the client is closing): no record stays SCHEDULED."""
        with self.ledger.lock:
            for record in self.ledger:
                if record.restart_state == SCHEDULED:
                    record.restart_state = IDLE

    # -- restarting -----------------------------------------------------------------------------

    def _decide(self, record: DownloadRecord, progress: Progress) -> RestartDecision:
        """The policy's word, except for a file-exists error on this download's own leftover
        (a crash before its first control-file save): that one is restarted, budget allowing,
        overwriting the leftover."""
        if progress.error_code != "13":
            return self.policy.decide(progress, record.retry_count)
        if self.own_leftover(record) is not None:
            budget = RestartPolicy(
                max_restarts=self.policy.max_restarts,
                restartable_codes={13},
                base_delay=self.policy.base_delay,
                max_delay=self.policy.max_delay,
            )
            return budget.decide(progress, record.retry_count)
        decision = self.policy.decide(progress, record.retry_count)
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

    def allowed(self, record: DownloadRecord, progress: Progress) -> bool:
        """Whether the policy (error code and budget) allows restarting this failure now."""
        with self.ledger.lock:
            decision = self._decide(record, progress)
            if not decision.restart and record.gave_up is None:
                record.gave_up = decision.reason
            return decision.restart

    def restart(self, record: DownloadRecord, run: int) -> bool:
        """Restart run ``run`` of ``record`` now, in this thread.

        False if that run is over (someone restarted it meanwhile), the download was cancelled,
        a restart of it is already running, or it turns out not to be failed. Takes over a
        restart that was waiting out its backoff. Raises the error that stopped it.
        """
        with self.ledger.lock:
            if record.cancelled or record.run != run or record.restart_state == RESTARTING:
                return False
            record.restart_state = RESTARTING
        return self._restart(record, run, counted=True)

    def recover(self, record: DownloadRecord, run: int) -> bool:
        """Add again a download whose run ``run`` the daemon no longer has.

        The daemon restarted without its session, or a restart lost its add: not a failure of
        the download, so neither the policy nor the budget is asked.
        """
        with self.ledger.lock:
            if (
                record.cancelled
                or record.finished
                or record.adding
                or record.run != run
                or record.restart_state != IDLE
            ):
                return False
            record.restart_state = RESTARTING
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
            with self.ledger.lock:
                if record.cancelled:
                    return False  # cancelled while we were reading: do not bring it back
                number = record.retry_count + (1 if counted else 0)
                next_run = record.run + 1
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
            with self.ledger.lock:
                record.retry_count = number
                record.run = next_run
                record.gave_up = None
                record.last = None
                if record.finished:
                    record.reopen()
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
            with self.ledger.lock:
                if gid != record.current_gid:
                    self.ledger.rebind(record, gid)
                cancelled = _is_cancelled(record)  # (set by cancel_download meanwhile)
            if cancelled:  # cancel_download ran while the add was in flight
                self._remove_quietly(gid)
                return False
            resumed = int((status or {}).get("completedLength") or 0)
            logger.info(
                "restarted download: %s -> GID %s (resuming after %d bytes)",
                redact_url(record.url),
                gid,
                resumed,
            )
            if self._on_restarted is not None:
                self._on_restarted(record)
            return True
        finally:
            with self.ledger.lock:
                record.restart_state = IDLE
            if claimed:
                self.ledger.release(record)

    def _stand_down(self, record: DownloadRecord) -> None:
        with self.ledger.lock:
            record.restart_state = IDLE  # so that refresh may bring the other process's view
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
        if str((status or {}).get("errorCode")) == "13" and self.own_leftover(record) is not None:
            # Our own leftover, unusable without its control file (proved just now: a file
            # another writer put there since the decision is not overwritten).
            options["allow-overwrite"] = "true"
        files = (status or {}).get("files") or []
        directory = (status or {}).get("dir")
        if len(files) == 1 and files[0].get("path") and directory and "out" not in options:
            path = files[0]["path"]
            options["dir"] = directory
            options["out"] = os.path.relpath(path, directory)
        return options

    def _add_again(self, record: DownloadRecord, options: Mapping[str, Any], old_gid: str) -> str:
        """Add the download under its old GID; under a new one if the daemon refuses the old."""
        try:
            self.rpc.add_uri_once(record.uris, options, old_gid, attempts=self.add_attempts)
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
            self.rpc.add_uri_once(record.uris, options, gid, attempts=self.add_attempts)
            return gid


def _is_cancelled(record: DownloadRecord) -> bool:
    """Read ``record.cancelled`` afresh: another thread may have set it during a call."""
    return record.cancelled
