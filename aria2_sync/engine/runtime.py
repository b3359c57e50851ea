"""Every thread of one client: made in one place, named, and stopped in one place, by one deadline.

A client runs up to a dozen threads: the monitor (``aria2_sync-monitor``), the scheduler of
delayed restarts (``aria2_sync-scheduler``), three worker pools (``aria2_sync-callback-N`` for
user callbacks, ``aria2_sync-settle-N`` for resolving futures, ``aria2_sync-job-N`` for
restarts and removals), the notification listener (``aria2_sync-notifications``) and the
watchdogs of its two connections (``aria2_sync-rpc-watchdog``). All are daemon threads, started
on first use: creating a client starts none.

:class:`Runtime` makes every one of them (its :meth:`~Runtime.thread` is the factory the
monitor, the scheduler, the pools, the listener and the connections are given) and stops
everything in two phases:
:meth:`~Runtime.stopping_steps` ask every piece to end without waiting, so that the connections can be
closed next (which releases a thread blocked in a call to the daemon); :meth:`~Runtime.join`
then waits for all of them together, at most :attr:`~Runtime.close_timeout` seconds in all. A
thread that does not end by then (a user callback that blocks forever, a call the daemon never
answers that nothing can cut off) is left behind: it is a daemon thread, so it never holds up
the interpreter's exit.

One thread is not the runtime's: the watcher of a private aria2c (``aria2_sync-daemon-watch``)
belongs to its :class:`~aria2_sync.daemon.process.Aria2Daemon`, which a caller may also start
and stop on its own; it ends in the daemon's ``stop()``, which closing the client calls.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable

from .scheduler import Scheduler
from .workers import Pools

if TYPE_CHECKING:  # pragma: no cover
    from ..rpc.notifications import NotificationListener
    from .monitor import Monitor

__all__ = ["CLOSE_TIMEOUT", "Runtime"]

#: How long closing a client waits for its threads, in all (seconds).
CLOSE_TIMEOUT = 5.0


class Runtime:
    """The threads and pools of one client (see the module's docstring)."""

    def __init__(self, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self.close_timeout = close_timeout
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.pools = Pools.made_by(self.thread)
        self.scheduler = Scheduler(thread_factory=self.thread)
        self.monitor: Monitor | None = None
        self.listener: NotificationListener | None = None

    def thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """A daemon thread named ``name`` running ``target``, not started (the caller starts it),
        and waited for by :meth:`join`."""
        made = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            # (threads that ran and ended are dropped: a pool or monitor makes each once)
            self._threads = [t for t in self._threads if t.ident is None or t.is_alive()]
            self._threads.append(made)
        return made

    def threads(self) -> list[threading.Thread]:
        """The threads made here that are running now."""
        with self._lock:
            return [t for t in self._threads if t.is_alive()]

    def attach(
        self,
        monitor: Monitor | None = None,
        listener: NotificationListener | None = None,
    ) -> None:
        """The client's monitor and notification listener, stopped and waited for here."""
        if monitor is not None:
            self.monitor = monitor
        if listener is not None:
            self.listener = listener

    def watch(self) -> None:
        """Make sure the monitor (and the listener that wakes it) runs, and tick now."""
        if self.monitor is not None:
            self.monitor.ensure_started()
            self.monitor.wake()
            if self.listener is not None:
                self.listener.ensure_started()

    def wake(self, gid: str | None = None) -> None:
        """Ask the monitor to tick now (nothing without one)."""
        if self.monitor is not None:
            self.monitor.wake(gid)

    # -- stopping ---------------------------------------------------------------------------------

    def stopping_steps(self) -> list[tuple[str, Callable[[], None]]]:
        """Ask every piece to end, without waiting (each a step of its own: one that fails
        does not keep the others from being asked)."""
        steps: list[tuple[str, Callable[[], None]]] = []
        listener, monitor = self.listener, self.monitor
        if listener is not None:
            steps.append(("stop the notification listener", lambda: listener.close(timeout=0)))
        if monitor is not None:
            steps.append(("tell the monitor to stop", lambda: monitor.close(timeout=0)))
        steps += [
            ("tell the scheduler to stop", lambda: self.scheduler.close(timeout=0)),
            ("tell the worker threads to stop", self.pools.stop),
        ]
        return steps

    def join(self) -> None:
        """Wait for every thread, at most :attr:`close_timeout` seconds in all."""
        deadline = time.monotonic() + self.close_timeout
        current = threading.current_thread()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not current and thread.ident is not None:  # (never started: nothing)
                thread.join(max(0.0, deadline - time.monotonic()))
