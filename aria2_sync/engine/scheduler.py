"""A single background thread that runs callables at a given time.

Restarts wait out a backoff; the caller that noticed the failure must not wait with them (a Flask
view polling progress has to return at once). One daemon thread with a heap serves every delayed
job of a client; it starts on first use, so creating a client starts no thread.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable

from ..logs import logger
from ..threads import ThreadFactory, daemon_thread

__all__ = ["Scheduler"]


class Scheduler:
    """Runs jobs after a delay, in order of due time, one at a time, on a daemon thread."""

    def __init__(
        self, name: str = "aria2_sync-scheduler", thread_factory: ThreadFactory = daemon_thread
    ) -> None:
        self._name = name
        self._new_thread = thread_factory
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def call_later(self, delay: float, job: Callable[[], None]) -> bool:
        """Run ``job()`` after ``delay`` seconds; False (and nothing queued) once closed."""
        with self._cond:
            if self._closed:
                return False
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._order), job))
            if self._thread is None or self._thread.ident is None:
                # (again if an interrupt came between the thread's creation and its start)
                self._thread = self._new_thread(self._name, self._run)
                self._thread.start()
            self._cond.notify()
            return True

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def close(self, timeout: float = 5.0) -> None:
        """Drop pending jobs and stop the thread (waits for a running job up to ``timeout``).

        A thread never started (a KeyboardInterrupt between its creation and its start) is not
        waited for: joining it would raise.
        """
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.ident is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap:
                        wait = self._heap[0][0] - time.monotonic()
                        if wait <= 0:
                            break
                        self._cond.wait(wait)
                    else:
                        self._cond.wait()
                if self._closed:
                    return
                _, _, job = heapq.heappop(self._heap)
            try:
                job()
            except Exception:
                logger.exception("a scheduled aria2_sync job failed")
