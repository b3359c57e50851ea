"""A small pool of daemon threads for callbacks and restarts.

``concurrent.futures.ThreadPoolExecutor`` joins its (non-daemon) workers when the interpreter
exits, so a callback stuck in user code would hang a script's exit, a notebook kernel's shutdown
or a web worker's reload. These workers are daemon threads, started on first use, and a job that
raises is logged, never lost silently and never fatal to the pool.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

from ..logs import logger
from ..threads import ThreadFactory, daemon_thread

__all__ = ["WorkerPool", "Pools"]

_STOP = object()


class WorkerPool:
    """Runs submitted callables on ``size`` daemon threads, first come first served."""

    def __init__(
        self, size: int = 4, name: str = "aria2_sync-worker", thread_factory: ThreadFactory = daemon_thread
    ) -> None:
        self._size = max(1, size)
        self._name = name
        self._new_thread = thread_factory
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue ``job``; ignored (False) once the pool is closed."""
        with self._lock:
            if self._closed:
                return False
            if not self._threads:  # first use: start the (few) workers
                self._threads = [
                    self._new_thread(f"{self._name}-{number}", self._work)
                    for number in range(1, self._size + 1)
                ]
            for thread in self._threads:
                if thread.ident is None:  # (again if an interrupt stopped the first start)
                    thread.start()
        self._queue.put(job)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the jobs already queued; wait ``timeout`` for all of them."""
        self.stop()
        self.join(time.monotonic() + timeout)

    def stop(self) -> None:
        """Ask the workers to end once the queue is done (does not wait)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = len(self._threads)
        for _ in range(count):
            self._queue.put(_STOP)

    def join(self, deadline: float) -> None:
        """Wait for the workers until ``deadline`` (a ``time.monotonic()`` value), no longer.

        A thread that was never started (a KeyboardInterrupt between its creation and its
        start) is skipped: there is nothing to wait for, and joining it would raise.
        """
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is not current and thread.ident is not None:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP or not callable(job):
                return
            try:
                job()
            except Exception:
                logger.exception("an aria2_sync callback or background job failed")


class Pools:
    """The client's three worker pools, kept apart so that none can starve another.

    ``callbacks`` runs user code (``on_progress``, ``on_restart``, ``on_done``); ``settle``
    resolves futures (and so runs ``add_done_callback`` functions); ``jobs`` runs restarts,
    recoveries and removals. A user callback that blocks can delay only its own kind.
    """

    __slots__ = ("callbacks", "settle", "jobs")

    def __init__(
        self,
        callbacks: WorkerPool | None = None,
        settle: WorkerPool | None = None,
        jobs: WorkerPool | None = None,
    ) -> None:
        self.callbacks = WorkerPool(4, "aria2_sync-callback") if callbacks is None else callbacks
        self.settle = WorkerPool(2, "aria2_sync-settle") if settle is None else settle
        self.jobs = WorkerPool(2, "aria2_sync-job") if jobs is None else jobs

    def __repr__(self) -> str:
        return f"Pools(callbacks={self.callbacks!r}, settle={self.settle!r}, jobs={self.jobs!r})"

    @classmethod
    def made_by(cls, thread_factory: ThreadFactory) -> Pools:
        """The three pools, their threads made by ``thread_factory``."""
        return cls(
            callbacks=WorkerPool(4, "aria2_sync-callback", thread_factory),
            settle=WorkerPool(2, "aria2_sync-settle", thread_factory),
            jobs=WorkerPool(2, "aria2_sync-job", thread_factory),
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop all three, waiting at most ``timeout`` seconds in all."""
        self.stop()
        self.join(timeout)

    def stop(self) -> None:
        """Ask all three to end once their queued jobs are done (does not wait)."""
        for pool in (self.jobs, self.settle, self.callbacks):
            pool.stop()

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the three to end, at most ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        for pool in (self.jobs, self.settle, self.callbacks):
            pool.join(deadline)
