"""What the rest of the engine may ask of a download record: its fields, read-only, and questions.

:class:`RecordView` holds a record's state and answers questions about it; its subclass
:class:`~aria2_sync.engine.record.DownloadRecord` adds the transitions, the only code that
changes that state. A question that reads several fields reads them together, under the
record's lock (or, for the reads of a refresh, from one attribute the transitions replace whole).
"""

from __future__ import annotations

import _thread
import operator
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar

import attrs

from ..errors import redact_url
from ..models import Progress
from .states import NO_CALLBACKS, Attempt, Callbacks, Outcome, RestartState, Source

if TYPE_CHECKING:  # pragma: no cover
    from .futures import DownloadFuture

__all__ = ["RecordView"]

_T = TypeVar("_T")
_R = TypeVar("_R", bound="RecordView")
_V = TypeVar("_V")


if TYPE_CHECKING:  # pragma: no cover

    class _Read(Generic[_V]):
        """A read-only view of a private field of the record (its transitions alone change it)."""

        def __init__(self, field: str) -> None: ...

        def __get__(self, record: object, owner: type | None = None) -> _V: ...

else:

    def _Read(field: str) -> property:
        """A read-only view of a private field of the record (its transitions alone change it):
        a property whose getter is C code, so that reading one (a tick reads several of each
        download) runs no Python frame."""
        return property(operator.attrgetter(field))


#: A record's own lock until a ledger shares its own (``threading.RLock`` without its wrapper).
_new_lock = _thread.RLock


class RecordView:
    """One logical download as the rest may see it: what it is, where it stands (read-only).

    ``run`` numbers the daemon-side runs of the download (0 for the first add, +1 per restart);
    ``failed_run`` is the last run whose failure was recorded, so that one failure seen by many
    pollers is counted once. ``gave_up`` says why a failure of the current run will not be
    restarted (None while it may be). ``adding`` is True while the add that creates the download
    is in flight: until it returns, the daemon not knowing the GID means "not yet", not "lost".

    Slim, because a client may watch tens of thousands of them: ``__slots__``; ``options`` kept
    as the (possibly shared, never changed) options of its batch plus its own ``dir`` and
    ``out`` (``place``), ``uris`` as a bare URL when there is one; empty histories as tuples.
    ``options`` and ``uris`` hand out new containers, which the caller may change.
    """

    __slots__ = (
        "gid",
        "_uris",
        "_options",
        "_dir",
        "_out",
        "_current_gid",
        "batch_id",
        "added_at",
        "callbacks",
        "source",
        "_adding",
        "_attempts",
        "_retry_count",
        "_run",
        "_failed_run",
        "_gave_up",
        "_cancelled",
        "_daemon_gids",
        "_last",
        "_outcome",
        "_finished_at",
        "_restart_state",
        "_future",
        "_settled",
        "_progress_callback_queued",
        "_removal_queued",
        "_steady",
        "_lock",
    )

    gid: str
    batch_id: str | None
    added_at: float
    callbacks: Callbacks
    #: What a BitTorrent or Metalink download was added from (None for URLs): how to add it
    #: again, and whether its payload comes under a GID of its own (set once, at the add).
    source: Source | None
    _uris: str | tuple[str, ...]
    _options: Mapping[str, Any]
    _dir: str | None
    _out: str | None
    _current_gid: str
    _adding: bool
    _attempts: tuple[Attempt, ...]
    _retry_count: int
    _run: int
    _failed_run: int
    _gave_up: str | None
    _cancelled: bool
    _daemon_gids: tuple[str, ...]
    _last: Progress | None
    _outcome: Outcome | None
    _finished_at: float | None
    _restart_state: RestartState
    _future: DownloadFuture | None
    #: (run, outcome) whose future resolution was queued, so one outcome settles once.
    _settled: tuple[int, Outcome] | None
    _progress_callback_queued: bool
    _removal_queued: bool
    #: ``(current daemon GID, run, last snapshot, fingerprint)`` while the download is
    #: *steady*: a read that says the same as the one ``last`` was built from (its
    #: ``fingerprint``, a running or parked status) needs no work, and the download has no
    #: outcome, no restart pending and no cancel; else None. Written under the lock, and set to
    #: None first by every transition that changes one of these fields or ends the steadiness:
    #: replaced whole, so a reader without the lock sees it as before a transition or after.
    _steady: tuple[str, int, Progress, tuple[object, ...]] | None
    _lock: threading.RLock

    def __init__(
        self,
        gid: str,
        uris: Sequence[str],
        options: Mapping[str, Any],
        current_gid: str,
        batch_id: str | None = None,
        added_at: float | None = None,
        callbacks: Callbacks = NO_CALLBACKS,
        adding: bool = False,
        attempts: Iterable[Attempt] = (),
        retry_count: int = 0,
        run: int = 0,
        failed_run: int = -1,
        gave_up: str | None = None,
        cancelled: bool = False,
        daemon_gids: Iterable[str] = (),
        last: Progress | None = None,
        place: tuple[str, str] | None = None,
        source: Source | None = None,
    ) -> None:
        """``options``: kept as given, never changed (a batch's items may share one mapping);
        ``place``: ``(dir, out)`` of this download, added to them (None: ``options`` say)."""
        self.gid = gid
        self._uris = uris[0] if len(uris) == 1 and type(uris[0]) is str else tuple(uris)
        self._options = options
        if place is None:
            self._dir = self._out = None
        else:
            self._dir, self._out = place
        self._current_gid = current_gid
        self.batch_id = batch_id
        self.added_at = time.time() if added_at is None else added_at
        self.callbacks = callbacks
        self.source = source
        self._adding = adding
        self._attempts = attempts if type(attempts) is tuple else tuple(attempts)
        self._retry_count = retry_count
        self._run = run
        self._failed_run = failed_run
        self._gave_up = gave_up
        self._cancelled = cancelled
        self._daemon_gids = daemon_gids if type(daemon_gids) is tuple else tuple(daemon_gids)
        self._last = last
        self._outcome = None
        self._finished_at = None
        self._restart_state = RestartState.IDLE
        self._future = None
        self._settled = None
        self._progress_callback_queued = False
        self._removal_queued = False
        self._steady = None
        self._lock = _new_lock()

    @classmethod
    def adding_in_batch(
        cls: type[_R],
        gid: str,
        url: str,
        options: Mapping[str, Any],
        batch_id: str,
        added_at: float,
        place: tuple[str, str] | None,
    ) -> _R:
        """A new record of one URL being added in a batch: ``__init__``'s result, made faster
        (a batch makes thousands)."""
        record = cls.__new__(cls)
        record.gid = record._current_gid = gid
        record._uris = url
        record._options = options
        if place is None:
            record._dir = record._out = None
        else:
            record._dir, record._out = place
        record.batch_id = batch_id
        record.added_at = added_at
        record.callbacks = NO_CALLBACKS
        record.source = None
        record._adding = True
        record._attempts = record._daemon_gids = ()
        record._retry_count = record._run = 0
        record._failed_run = -1
        record._gave_up = record._last = record._outcome = record._finished_at = None
        record._future = record._settled = record._steady = None
        record._cancelled = record._progress_callback_queued = record._removal_queued = False
        record._restart_state = RestartState.IDLE
        record._lock = _new_lock()
        return record

    def __repr__(self) -> str:
        # No options and no URL as given: either may carry a credential.
        return (
            f"{type(self).__name__}(gid={self.gid!r}, current_gid={self._current_gid!r}, "
            f"url={redact_url(self.url)!r}, batch_id={self.batch_id!r}, run={self._run}, "
            f"retry_count={self._retry_count}, outcome={self._outcome}, "
            f"restart_state={self._restart_state.value!r}, adding={self._adding}, "
            f"cancelled={self._cancelled})"
        )

    @property
    def uris(self) -> list[str]:
        """The download's URIs (mirrors of one file), as a new list."""
        uris = self._uris
        return [uris] if type(uris) is str else list(uris)

    def add_arguments(self) -> tuple[Sequence[str], dict[str, Any], str]:
        """``(uris, options, gid)`` of the add that creates it (new containers, for the caller)."""
        uris = self._uris
        return (uris,) if type(uris) is str else uris, self.options, self.gid

    @property
    def options(self) -> dict[str, Any]:
        """Its aria2 options (without the GID), as a new dict."""
        if self._dir is None and self._out is None:
            return dict(self._options)
        return {**self._options, "dir": self._dir, "out": self._out}

    def option(self, key: str) -> Any:
        """One of its aria2 options (None if not given), without copying them all."""
        return self._options.get(key)

    # -- questions ------------------------------------------------------------------------------

    current_gid: ClassVar[_Read[str]] = _Read("_current_gid")

    daemon_gids: ClassVar[_Read[tuple[str, ...]]] = _Read("_daemon_gids")
    attempts: ClassVar[_Read[tuple[Attempt, ...]]] = _Read("_attempts")

    retry_count: ClassVar[_Read[int]] = _Read("_retry_count")
    run: ClassVar[_Read[int]] = _Read("_run")
    failed_run: ClassVar[_Read[int]] = _Read("_failed_run")
    gave_up: ClassVar[_Read[str | None]] = _Read("_gave_up")
    cancelled: ClassVar[_Read[bool]] = _Read("_cancelled")
    adding: ClassVar[_Read[bool]] = _Read("_adding")
    last: ClassVar[_Read[Progress | None]] = _Read("_last")
    outcome: ClassVar[_Read[Outcome | None]] = _Read("_outcome")
    finished_at: ClassVar[_Read[float | None]] = _Read("_finished_at")
    restart_state: ClassVar[_Read[RestartState]] = _Read("_restart_state")
    future: ClassVar[_Read[DownloadFuture | None]] = _Read("_future")

    @property
    def finished(self) -> bool:
        return self._outcome is not None

    @property
    def failure_recorded(self) -> bool:
        return self._failed_run == self._run

    @property
    def restart_pending(self) -> bool:
        return self._restart_state is not RestartState.IDLE

    @property
    def url(self) -> str:
        uris = self._uris
        return uris if type(uris) is str else uris[0]

    def is_current(self, run: int) -> bool:
        """Whether ``run`` is the download's run now and the download is still wanted."""
        with self._lock:
            return not self._cancelled and self._run == run

    def where(self) -> tuple[str, int]:
        """``(current daemon GID, run)``, read together."""
        with self._lock:
            return self._current_gid, self._run

    def read_plan(self) -> tuple[str, int, Progress | None, object]:
        """``(current daemon GID, run, last snapshot, _)``, read together: what a status read
        of this download is planned with.

        Without taking the lock while the download is steady (see :meth:`unchanged`): a tick
        reading a thousand parked downloads takes no lock for them.
        """
        steady = self._steady
        if steady is not None:
            return steady
        with self._lock:
            return self._current_gid, self._run, self._last, None

    @property
    def awaiting_payload(self) -> bool:
        """Whether this download's payload is still to come under a GID of its own: a magnet
        fetching its metadata, a ``.torrent`` URL being fetched (see :attr:`source`)."""
        with self._lock:
            return self.source is not None and self.source.follows and self._current_gid == self.gid

    @property
    def chain(self) -> tuple[str, ...]:
        """Every daemon GID of this download, the handle first and the current one last."""
        with self._lock:
            return tuple(dict.fromkeys((self.gid, *self._daemon_gids, self._current_gid)))

    def restarts_after(self, error_code: str) -> int:
        """How many of its restarts followed a failure with ``error_code``: its failed runs
        with that code, the current run's failure (if recorded) aside."""
        with self._lock:
            earlier = self._attempts[:-1] if self._failed_run == self._run else self._attempts
            return sum(attempt.error_code == error_code for attempt in earlier)

    def may_retry(self, budget: int) -> bool:
        """Whether a restart may still come of itself: not cancelled, not given up, budget left."""
        with self._lock:
            return not self._cancelled and self._gave_up is None and self._retry_count < budget

    def restart_candidate(self) -> bool:
        """Whether ``restart_all_failed_downloads`` may consider it (not cancelled, not
        complete or rejected, no restart pending)."""
        with self._lock:
            return (
                not self._cancelled
                and self._outcome not in (Outcome.COMPLETE, Outcome.REJECTED)
                and not self.restart_pending
            )

    def unchanged(self, fingerprint: tuple[object, ...]) -> Progress | None:
        """The last snapshot if a read with ``fingerprint`` changes nothing, else None.

        True of the same answer as last time, about the same run, for a download simply moving
        along or parked: rebuilding its snapshot is most of the cost of a refresh, and changes
        nothing. Failures and cancels are always looked at again: they may need acting on.

        No lock: :attr:`_steady` is one attribute, replaced whole under the lock, and cleared
        by every transition after which such a read must be looked at (a cancel, a restart, a
        new run, a new daemon GID). A read of run N answered after the download moved to run
        N+1 carries N in its fingerprint, so it never matches the new run's.
        """
        steady = self._steady
        if steady is not None and steady[3] == fingerprint:
            return steady[2]
        return None

    def annotate(self, progress: Progress) -> Progress:
        """The snapshot with the client's view added: the handle GID, restarts, reasons."""
        with self._lock:
            reason = self._gave_up
            if reason is None and self._outcome is Outcome.FAILED:
                reason = "automatic restart is off; call restart_download() to try again"
            return attrs.evolve(
                progress,
                gid=self.gid,
                retry_count=self._retry_count,
                restart_pending=self.restart_pending,
                gave_up_reason=reason,
            )

    def last_known(self, status: str = "unknown") -> Progress:
        """The last snapshot (annotated), or an empty one with ``status``."""
        with self._lock:
            return self.annotate(self._last or Progress(gid=self.gid, status=status))

    def unsettled_future(self) -> DownloadFuture | None:
        """The future, if there is one and it has no outcome yet."""
        with self._lock:
            future = self._future
        return future if future is not None and not future.done() else None

    def standing(self) -> tuple[Outcome | None, bool]:
        """``(outcome, restart pending)``, read together (no lock needed while it is steady)."""
        if self._steady is not None:
            return None, False
        with self._lock:
            return self._outcome, self.restart_pending

    def resolution(
        self,
        future: DownloadFuture,
        outcome: Outcome,
        run: int,
        value_of: Callable[[Any], _T],
    ) -> tuple[_T, Callable[[DownloadFuture], Any] | None] | None:
        """``(value_of(self), on_done)`` if ``future`` still stands for ``outcome`` of run
        ``run``, read together; None if the download moved on since it was claimed."""
        with self._lock:
            if self._future is not future or self._outcome is not outcome or self._run != run:
                return None
            return value_of(self), self.callbacks.on_done
