"""A small pool of daemon threads for callbacks and restarts.

``concurrent.futures.ThreadPoolExecutor`` joins its (non-daemon) workers when the interpreter
exits, so a callback stuck in user code would hang a script's exit, a notebook kernel's shutdown
or a web worker's reload. These workers are daemon threads, started on first use, and a job that
raises is logged, never lost silently and never fatal to the pool.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, List, Optional

__all__ = ["WorkerPool"]

logger = logging.getLogger("aria2_sync")

_STOP = object()


class WorkerPool:
    """Runs submitted callables on ``size`` daemon threads, first come first served."""

    def __init__(self, size: int = 4, name: str = "aria2_sync-worker") -> None:
        self._size = max(1, size)
        self._name = name
        self._queue: "queue.SimpleQueue[object]" = queue.SimpleQueue()
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; ignored once the pool is closed."""
        with self._lock:
            if self._closed:
                return
            if not self._threads:  # first use: start the (few) workers
                for number in range(1, self._size + 1):
                    thread = threading.Thread(
                        target=self._work, name=f"{self._name}-{number}", daemon=True
                    )
                    self._threads.append(thread)
                    thread.start()
        self._queue.put(job)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers after the jobs already queued; wait up to ``timeout`` for them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(_STOP)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(timeout)

    def _work(self) -> None:
        while True:
            job: Optional[object] = self._queue.get()
            if job is _STOP:
                return
            try:
                job()  # type: ignore[operator]
            except Exception:  # noqa: BLE001 - user callbacks may raise anything
                logger.exception("an aria2_sync callback or background job failed")
