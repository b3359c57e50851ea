"""One client's engine: its parts wired together once, the way they are stopped, what they share.

``Aria2Client`` checks its arguments (:class:`~aria2_sync.engine.config.ClientConfig`) and
hands over to an :class:`Engine`, which owns:

* two connections to the daemon (the client's, and the monitor's with a short retry budget);
* the :class:`~aria2_sync.engine.ledger.Ledger` of records (with the shared store, if any);
* the :class:`~aria2_sync.engine.runtime.Runtime` (every thread and pool);
* the :class:`~aria2_sync.engine.restarts.RestartEngine`, the
  :class:`~aria2_sync.engine.cancel.Cancellation`, the
  :class:`~aria2_sync.engine.tracker.Tracker` and the
  :class:`~aria2_sync.engine.monitor.Monitor` (and its notification listener).

Dependencies point one way: the tracker uses the restart engine and the cancellation; the
monitor uses the tracker; nothing here calls back into the client.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import attrs

from ..errors import Aria2ClosedError, Aria2InputError
from ..logs import disable_verbose_output, enable_verbose_output, logger
from ..models import Progress
from ..rpc.methods import Aria2RPC
from ..rpc.transport import Transport
from ..state import Store, open_store
from .cancel import Cancellation
from .futures import DownloadFuture
from .ledger import Ledger
from .monitor import Monitor
from .record import DownloadRecord
from .restarts import RestartEngine
from .runtime import Runtime
from .tracker import Tracker

if TYPE_CHECKING:  # pragma: no cover
    from ..daemon.process import Aria2Daemon
    from ..rpc.members import DaemonPool
    from ..rpc.notifications import NotificationListener
    from ..validation import PathArg
    from .config import ClientConfig

__all__ = ["Engine", "closed_error", "failed_future", "start_with_private_daemon"]

C = TypeVar("C")


def closed_error(gid: str) -> Aria2ClosedError:
    """What the future of a download fails with once its client is closed."""
    return Aria2ClosedError(
        f"the client was closed before download {gid} finished; it may still be running in the daemon"
    )


def failed_future(gid: str, error: BaseException) -> DownloadFuture:
    """A future of download ``gid`` that has already failed with ``error``.

    For an add cut short by closing: the download may exist in aria2, but nothing will watch it.
    """
    future = DownloadFuture(gid)
    future._settle_exception(error)
    return future


class Engine:
    """The parts of one client (see the module's docstring); made without starting a thread."""

    def __init__(
        self,
        config: ClientConfig,
        rpc_secret: str | None,
        store: Store | None,
        auto_restart: Callable[[], bool],
        pool: DaemonPool | None = None,
    ) -> None:
        if pool is not None and not pool.on_this_host:
            config = attrs.evolve(config, daemon_is_local=False)  # (directories are not checked here)
        self.config = config
        self.auto_restart = auto_restart
        self.runtime = Runtime()
        self.pool = pool
        #: Every connection this engine made: the client's and the monitor's, per daemon.
        self.connections: list[Transport] = []
        self.transport = self._connect(config, rpc_secret, monitor=False)
        self.rpc = self._methods(config, rpc_secret, self.transport, monitor=False)
        self.ledger = Ledger(
            keep_finished=config.keep_finished, keep_seconds=config.keep_seconds, store=store
        )
        if pool is not None:
            self.ledger.on_home = self.rpc.note_home  # (where other processes moved downloads)
            self.ledger.on_forget = pool.forget  # (so the pool's map is bounded like the ledger)
        pools = self.runtime.pools
        self.restarts = RestartEngine(
            self.rpc,
            self.ledger,
            config.restart_policy,
            self.runtime.scheduler,
            config.max_retries + 1,
            run_job=pools.jobs.submit,
            run_callback=pools.callbacks.submit,
        )
        self.cancellation = Cancellation(self.rpc, self.ledger, pools.jobs)
        self.tracker = Tracker(self.ledger, self.restarts, pools, auto_restart, self.cancellation)
        # The monitor has its own connection and a short retry budget of its own: a lost answer
        # to its (read-only) tick is absorbed in well under a second, while a daemon that is
        # really gone is noticed just as fast; it must not sit in the client's long backoff.
        self.monitor_transport = self._connect(config, rpc_secret, monitor=True)
        monitor_rpc = self._methods(config, rpc_secret, self.monitor_transport, monitor=True)
        self.monitor: Monitor | None = None
        if config.monitor:
            self.monitor = Monitor(
                monitor_rpc,
                self.ledger,
                self.tracker,
                pools.settle,
                auto_restart=auto_restart,
                interval=config.poll_interval,
                disconnect_grace=config.disconnect_grace,
                thread_factory=self.runtime.thread,
            )
            self.restarts.wake = self.monitor.wake
        self.listener = self._make_listener(config.notifications)
        self.runtime.attach(self.monitor, self.listener)
        #: What closing also releases: the state file if this engine opened it (:meth:`open`),
        #: the verbose output (:meth:`enable_verbose`), a private daemon (set by its starter).
        self.own_store = False
        self.verbose_on = False
        self.daemon: Aria2Daemon | None = None
        self.closed = False
        self._close_lock = threading.Lock()
        self._adopted = False

    def _connect(
        self, config: ClientConfig, rpc_secret: str | None, *, monitor: bool, url: str | None = None
    ) -> Transport:
        """A connection to the daemon at ``url`` (the client's), with the client's retry budget
        or, for the ``monitor``, a short one (see :meth:`__init__`)."""
        transport = Transport(
            url or config.rpc_url,
            rpc_secret or None,
            timeout=config.timeout,
            max_retries=self._monitor_retries(config) if monitor else config.max_retries,
            retry_delay=min(config.retry_delay, 0.05) if monitor else config.retry_delay,
            max_retry_delay=0.2 if monitor else config.max_retry_delay,
            thread_factory=self.runtime.thread,
            ca_file=config.rpc_ca_file,
        )
        self.connections.append(transport)
        return transport

    def _monitor_retries(self, config: ClientConfig) -> int:
        """The monitor's retry budget: a couple of quick retries with one daemon; none over a
        pool, whose daemons in trouble are tried again by the pool itself (a pause of at most a
        second, one quiet try each: no retry log lines every second for a dead host)."""
        return 0 if self.pool is not None else min(2, config.max_retries)

    def _methods(
        self, config: ClientConfig, rpc_secret: str | None, first: Transport, *, monitor: bool
    ) -> Aria2RPC:
        """aria2's methods over ``first``; with a pool, over a connection to each of its daemons."""
        if self.pool is None:
            return Aria2RPC(first)
        from ..rpc.pooled import PooledRPC  # (imported here: only a pool needs it)

        rpcs = [Aria2RPC(first)] + [
            Aria2RPC(self._connect(config, member.secret, monitor=monitor, url=member.rpc_url))
            for member in self.pool.members[1:]
        ]
        wait = float(config.timeout if isinstance(config.timeout, (int, float)) else sum(config.timeout))
        if monitor:  # (a tick waits for a slow daemon a few intervals, not a whole timeout)
            wait = min(wait, max(2.0, 4 * config.poll_interval))
        return PooledRPC(self.pool, rpcs, reply_wait=wait, thread_factory=self.runtime.thread)

    def close_connections(self) -> None:
        """Close every connection (a call in flight on one ends with Aria2ClosedError)."""
        for transport in self.connections:
            transport.close()

    @classmethod
    def open(
        cls,
        config: ClientConfig,
        rpc_secret: str | None,
        state: None | str | os.PathLike[str] | Store,
        auto_restart: Callable[[], bool],
        pool: DaemonPool | None = None,
    ) -> Engine:
        """Open ``state`` (a path: a state file this engine then owns and closes) and build the
        engine on it (over the daemons of ``pool``, if given); if building fails, a file opened
        here is closed again."""
        own_store = state is not None and not isinstance(state, Store)
        store = open_store(state)
        try:
            engine = cls(config, rpc_secret, store, auto_restart, pool)
        except BaseException:
            if own_store and store is not None:
                store.close()
            raise
        engine.own_store = own_store
        return engine

    def enable_verbose(self) -> None:
        """Print the seed guide's log lines on stderr until this engine is closed."""
        enable_verbose_output()
        self.verbose_on = True

    def _make_listener(self, wanted: bool | None) -> NotificationListener | None:
        if wanted is False or self.monitor is None or self.pool is not None:  # (a pool polls)
            return None
        from ..rpc.notifications import NotificationListener, websocket_available

        if not websocket_available():
            return None  # (notifications=True without the package was refused up front)
        return NotificationListener(
            self.config.rpc_url,
            on_event=self.monitor.wake,
            thread_factory=self.runtime.thread,
            ca_file=self.config.rpc_ca_file,
        )

    # -- watching -------------------------------------------------------------------------------

    def watch(self) -> None:
        """Make sure the monitor watches (nothing without one, or once closed).

        The first time, with a shared store, this process also takes on what others (or an
        earlier life of this one) left unfinished: restarts go on even if nobody asks.
        """
        if self.monitor is None or self.closed:
            return
        if not self._adopted:
            self._adopted = True
            self.ledger.adopt_unfinished()
        self.runtime.watch()

    def refresh(self, records: list[DownloadRecord]) -> None:
        """Take in what other processes sharing the store changed (nothing without a store)."""
        for record in self.ledger.refresh(records):
            self.tracker.settle(record)

    def last_known(self, record: DownloadRecord) -> Progress:
        """What we know of a download the daemon no longer reports (the monitor re-adds it)."""
        return record.last_known()

    def future_of(self, record: DownloadRecord) -> DownloadFuture:
        """The record's future; on a closed client, failed at once if it has no outcome.

        ``closed`` is set before closing fails the pending futures, and the future is stored
        in the record before ``closed`` is read here: whichever runs last fails it.
        """
        future = self.tracker.future_for(record)
        if self.closed and not future.done():
            future._settle_exception(closed_error(future.gid))
        return future

    # -- closing --------------------------------------------------------------------------------

    def mark_closed(self) -> bool:
        """Mark the engine closed; False if it already was (closing is done once)."""
        with self._close_lock:
            if self.closed:
                return False
            self.closed = True
            return True

    def close(self, cancel: bool) -> None:
        """Close once (later calls do nothing): every step of :meth:`closing_steps` runs, even
        after one failed (or was interrupted); each failure is logged, the first is raised."""
        if not self.mark_closed():
            return
        errors: list[BaseException] = []
        for step, action in self.closing_steps(cancel):
            try:
                action()
            except BaseException as error:
                logger.warning("while closing the client, could not %s: %s", step, error)
                errors.append(error)
        if errors:
            raise errors[0]

    def closing_steps(self, cancel: bool) -> list[tuple[str, Callable[[], None]]]:
        """What closing does, in order; each step runs even if one before it failed.

        The threads are told to stop first, then the connections are closed, which releases a
        thread blocked in a call to the daemon, and only then are the threads waited for (by
        one deadline). Futures still pending then fail; the state file (if this client opened
        it), the verbose output and a private daemon go last.
        """
        steps: list[tuple[str, Callable[[], None]]] = []
        if cancel:
            steps.append(("remove the unfinished downloads", self.cancellation.cancel_all_closing))
        steps += self.runtime.stopping_steps()
        steps += [
            ("drop the scheduled restarts", self.restarts.unschedule_all),
            ("close the connections", self.close_connections),
            ("wait for the threads", self.runtime.join),
            ("fail the pending futures", self.fail_pending_futures),
        ]
        store = self.ledger.store
        if self.own_store and store is not None:
            steps.append(("close the state file", store.close))
        if self.verbose_on:
            steps.append(("end the verbose output", disable_verbose_output))
        if self.daemon is not None:
            steps.append(("stop the private daemon", self.daemon.stop))
        return steps

    def fail_pending_futures(self) -> None:
        pending = [r.unsettled_future() for r in self.ledger]
        for future in filter(None, pending):
            future._settle_exception(closed_error(future.gid))


def start_with_private_daemon(
    build: Callable[[str, str], C],
    client_options: Mapping[str, Any],
    *,
    download_dir: PathArg | None,
    aria2c: PathArg | None,
    aria2_options: Mapping[str, Any] | None,
    state_dir: PathArg | None,
    supervise: bool,
) -> tuple[C, Aria2Daemon]:
    """Start a private aria2c, then ``build(rpc_url, secret)`` a client on it; the pair.

    ``client_options`` (the caller's other keyword arguments) may not choose the URL or the
    secret (:class:`Aria2InputError`, before anything starts). If ``build`` fails, the daemon is
    stopped again and the error raised: nothing is left running.
    """
    from ..daemon.process import Aria2Daemon  # (imported here: only this needs process handling)

    for reserved in ("rpc_url", "rpc_secret"):
        if reserved in client_options:
            raise Aria2InputError(f"{reserved} is chosen by Aria2Client.local: leave it out")
    daemon = Aria2Daemon(
        aria2c=aria2c,
        download_dir=download_dir,
        state_dir=state_dir,
        options=aria2_options,
        supervise=supervise,
    ).start()
    try:
        client = build(daemon.rpc_url, daemon.secret)
    except BaseException:
        daemon.stop()
        raise
    return client, daemon
