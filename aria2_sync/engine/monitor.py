"""The background monitor: one thread that watches every unfinished download of a client.

Each tick reads the status of the watched downloads due (see :meth:`Monitor._due`) through the
:class:`~aria2_sync.engine.tracker.Tracker`, one ``system.multicall`` per
:data:`~aria2_sync.engine.tracker.READ_SLICE` downloads, asking only for the keys that move
(``dir`` and ``files`` are read again only when a download's status or size changes), and the
tracker drives restarts and resolves futures. With no
download to watch the thread sleeps until one is added. An optional
:class:`~aria2_sync.rpc.notifications.NotificationListener` wakes it as soon as aria2 reports an
event, so failures are acted on without waiting for the next tick.

A daemon that cannot be used is a state, not an exception storm, whatever the reason: gone
(connection refused, timeouts), refusing the secret, answering something that is not aria2's
JSON-RPC (a proxy's HTML page), or a bug of ours in a tick. The monitor logs one line when the
trouble starts (one more if it changes kind; a bug's traceback once), keeps all state, polls with
a growing pause, logs one line when a tick works again and re-syncs by GID. Futures still waiting
fail with the trouble's error only after ``disconnect_grace`` seconds of it.
"""

from __future__ import annotations

import functools
import threading
import time
from typing import Callable

from ..errors import (
    Aria2AuthError,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2Error,
    Aria2ProtocolError,
    redact_url,
)
from ..logs import logger
from ..rpc.methods import Aria2RPC
from ..threads import ThreadFactory, daemon_thread
from .ledger import Ledger
from .record import DownloadRecord
from .tracker import Tracker
from .workers import WorkerPool

__all__ = ["Monitor"]


#: Longest pause between ticks while the daemon cannot be reached.
MAX_OFFLINE_PAUSE = 5.0

#: Up to this many parked (paused or queued) downloads are read every tick; past it, each is
#: read every PARKED_SLICES ticks (and at once on an aria2 notification about it).
PARKED_READ_ALL = 500
PARKED_SLICES = 20

#: Every this many ticks, a monitor on a shared store looks for work other processes left.
ADOPT_EVERY = 20


class Monitor:
    """Watches a ledger's unfinished downloads on a daemon thread (started on first use)."""

    def __init__(
        self,
        rpc: Aria2RPC,
        ledger: Ledger,
        tracker: Tracker,
        settle_pool: WorkerPool,
        auto_restart: Callable[[], bool],
        interval: float = 0.5,
        disconnect_grace: float = 60.0,
        thread_factory: ThreadFactory = daemon_thread,
    ) -> None:
        self.rpc = rpc
        self.ledger = ledger
        self.tracker = tracker
        self.settle_pool = settle_pool
        self._auto_restart = auto_restart
        self.interval = interval
        self.disconnect_grace = disconnect_grace
        self._new_thread = thread_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._offline_since: float | None = None
        self._offline_pause = 0.0
        self._trouble_kind: str | None = None
        #: The clock of the grace period (a seam: tests count the grace without waiting it out).
        self._clock: Callable[[], float] = time.monotonic
        self._futures_failed_offline = False
        self._urgent: set[str] = set()
        self.ticks = 0
        #: Whether a daemon of a pool is in trouble while nothing is watched (see :meth:`tick`).
        self._probing = False

    # -- control --------------------------------------------------------------------------------

    def ensure_started(self) -> None:
        """Start the thread unless it runs (or ran): also when an interrupt (KeyboardInterrupt)
        kept the previous one from starting, which then left a thread object never started."""
        with self._lock:
            if (self._thread is None or self._thread.ident is None) and not self._stop.is_set():
                self._thread = self._new_thread("aria2_sync-monitor", self._run)
                self._thread.start()

    def wake(self, gid: str | None = None) -> None:
        """Tick now instead of at the end of the current pause; ``gid``: read that one for sure."""
        if gid is not None:
            with self._lock:
                self._urgent.add(gid)
        self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it (0: only ask). Idempotent."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        # A thread never started (an interrupt in ensure_started) has nothing to wait for.
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def offline(self) -> bool:
        return self._offline_since is not None

    # -- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            pause = self._step()
            self._wake.wait(pause)  # None: nothing to watch, sleep until a download is added
            self._wake.clear()

    def _step(self) -> float | None:
        """One tick, with whatever goes wrong in it handled; returns the pause before the next."""
        try:
            watched = self.tick()
        except Aria2ClosedError:
            logger.debug("the monitor's connection was closed; the monitor stops")
            self._stop.set()
            return 0.0
        except Exception as error:
            return self._went_offline(error)
        return self.interval if watched else self._idle_pause()

    def tick(self) -> int:
        """One refresh of every watched download; returns how many were watched."""
        self.ticks += 1
        if self.ticks % ADOPT_EVERY == 0:
            # With a shared store: downloads other processes added, or restarted after they
            # finished here, join this process's watch (nothing to do without a store).
            self.ledger.adopt_unfinished()
        records = self.ledger.unfinished()
        if not records:
            self._back_online()
            self.ledger.prune()
            # A pool's daemon in trouble is asked again even with nothing to read: one that is
            # back is swept of the downloads that moved away from it while it was gone.
            self._probing = self.rpc.probe()
            return 0
        with self._lock:
            urgent, self._urgent = self._urgent, set()
        try:
            due = self._refreshed_due(records, urgent)
            # A refused secret raises here: the daemon is there, but it is an outage all the same.
            self.tracker.read(self.rpc, due, self._auto_restart(), collect=False)
        except Exception:
            with self._lock:
                self._urgent |= urgent  # not read: still to be read first next time
            raise
        self._back_online()
        self.ledger.prune()  # O(records), about a millisecond per 10,000
        return len(due)

    def _refreshed_due(self, records: list[DownloadRecord], urgent: set[str]) -> list[DownloadRecord]:
        """The records to read this tick (:meth:`_due`), with other processes' changes taken in
        first when the state is shared.

        Only those: a parked download costs a store read when it costs a daemon read (every
        PARKED_SLICES ticks), not every tick. The downloads an aria2 event names are refreshed
        before the choice, so that an event for a GID another process gave one of them (a
        restart under a new GID) finds it; the client's own calls refresh what they act on.
        """
        named = self.ledger.named(urgent) if urgent and self.ledger.store is not None else []
        settled = self.ledger.refresh(named)
        due = self._due(records, urgent)
        fresh = {record.gid for record in named}  # (not read from the store twice)
        settled += self.ledger.refresh([record for record in due if record.gid not in fresh])
        for record in settled:
            self.tracker.settle(record)
        return [record for record in due if not record.finished] if settled else due

    def _due(self, records: list[DownloadRecord], urgent: set[str]) -> list[DownloadRecord]:
        """The records to read this tick.

        Every one, unless many are parked (paused, or waiting in the queue): those change
        only when something happens to them, and reading 10,000 of them twice a second would
        cost a core. Past :data:`PARKED_READ_ALL` parked downloads, each is read every
        :data:`PARKED_SLICES` ticks, and at once when aria2 notifies an event for its GID.
        """
        live = [record for record in records if not record.finished]
        if len(live) <= PARKED_READ_ALL:
            return live  # (not more parked than that)
        parked = [
            r
            for r in live
            if r.last is not None and r.last.status in ("paused", "waiting") and r.current_gid not in urgent
        ]
        if len(parked) <= PARKED_READ_ALL:
            return live
        turn = self.ticks % PARKED_SLICES
        skipped = {id(r) for r in parked if int(r.gid[-4:], 16) % PARKED_SLICES != turn}
        return [r for r in live if id(r) not in skipped]

    def _idle_pause(self) -> float | None:
        """Nothing to watch: sleep until woken, or until finished records are due to go (or a
        pool's daemon in trouble is to be asked again)."""
        if self._probing:
            return max(self.interval, 0.5)
        if not len(self.ledger):
            return None
        keep = self.ledger.keep_seconds
        return 60.0 if keep is None else min(60.0, max(self.interval, keep))

    # -- the daemon going away ------------------------------------------------------------------

    def _went_offline(self, error: Exception) -> float:
        """Note the trouble (one log line per kind), fail futures past the grace; return the pause.

        Any failed tick means nothing can be watched until it changes: a daemon that cannot be
        reached, one that refuses the secret (restarted with another one), something that is
        not aria2 answering, or a bug in a tick. All are an outage: the same backoff, the same
        grace period, and one line when it starts (another if its kind changes), not one per tick.
        """
        now = self._clock()
        kind = _trouble_kind(error)
        if self._offline_since is None:
            self._offline_since = now
            self._offline_pause = max(self.interval, 0.05)
        if kind != self._trouble_kind:
            self._trouble_kind = kind
            self._log_trouble(error)
        else:
            logger.debug("the monitor's tick failed again: %s", error)
        if now - self._offline_since > self.disconnect_grace:
            self._fail_waiting_futures(_outage_error(error, self.disconnect_grace))
        pause = self._offline_pause
        self._offline_pause = min(MAX_OFFLINE_PAUSE, pause * 2)
        return pause

    def _log_trouble(self, error: Exception) -> None:
        keeping = f"keeping {len(self.ledger.unfinished())} downloads and retrying until it answers"
        if isinstance(error, Aria2ConnectionError):
            logger.warning(
                "lost the connection to aria2 at %s (%s); %s",
                redact_url(error.rpc_url),
                error.reason,
                keeping,
            )
        elif isinstance(error, Aria2AuthError):
            logger.warning("aria2 refuses this client's RPC secret (%s); %s", error, keeping)
        elif isinstance(error, Aria2ProtocolError):
            logger.warning(
                "aria2 at %s does not answer like aria2 (%s); %s", error.rpc_url, error.detail, keeping
            )
        elif isinstance(error, Aria2Error):
            logger.warning("the monitor cannot watch downloads (%s); %s", error, keeping)
        else:
            logger.error(
                "aria2_sync monitor tick failed (a bug: please report it); %s", keeping, exc_info=error
            )

    def _back_online(self) -> None:
        if self._offline_since is not None:
            what = (
                "connection to aria2 restored"
                if self._trouble_kind in ("connection", "auth")
                else "aria2 usable again"
            )
            logger.warning(
                "%s after %.1f s; re-syncing %d downloads",
                what,
                self._clock() - self._offline_since,
                len(self.ledger.unfinished()),
            )
            self._offline_since = None
            self._trouble_kind = None
            self._futures_failed_offline = False

    def _fail_waiting_futures(self, error: Exception) -> None:
        """Fail the futures still waiting (every offline tick past the grace: new ones too).

        The records stay: when the daemon answers again they are re-synced, and
        ``Aria2Client.future(gid)`` gives a fresh future that follows the download.
        """
        waiting = [f for f in (r.unsettled_future() for r in self.ledger.unfinished()) if f is not None]
        if not waiting:
            return
        if not self._futures_failed_offline:
            self._futures_failed_offline = True
            logger.warning(
                "aria2 has been unusable for over %.0f s; failing %d waiting futures",
                self.disconnect_grace,
                len(waiting),
            )
        for future in waiting:
            self.settle_pool.submit(functools.partial(future._settle_exception, error))


def _trouble_kind(error: Exception) -> str:
    """What a failed tick says about the daemon, for logging each kind of trouble once."""
    if isinstance(error, Aria2ConnectionError):
        return "connection"
    if isinstance(error, Aria2AuthError):
        return "auth"
    return type(error).__name__


def _outage_error(error: Exception, grace: float) -> Exception:
    """The error futures fail with after the grace: the trouble's own, if it is ours."""
    if isinstance(error, Aria2Error):
        return error
    outage = Aria2Error(
        f"the monitor could not watch this download for over {grace:g} s because of a bug "
        f"({type(error).__name__}: {error}); please report it"
    )
    outage.__cause__ = error
    return outage
