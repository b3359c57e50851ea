"""A private aria2c kept running: started again when it dies without being asked to stop.

The watcher thread of an :class:`~aria2_sync.daemon.process.Aria2Daemon` made with
``supervise=True`` runs :func:`restart_when_it_dies`. Before each start after a crash, the
session file is made ready (:func:`~aria2_sync.daemon.sessions.drop_finished`); failed starts are
retried with a growing pause, up to ``Aria2Daemon.MAX_FAILED_RESTARTS`` in a row.
"""

from __future__ import annotations

import subprocess
import threading
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ..errors import Aria2DaemonError
from ..logs import logger
from . import sessions

__all__ = ["Supervised", "restart_when_it_dies"]


class Supervised(Protocol):
    """What the watcher needs of an :class:`~aria2_sync.daemon.process.Aria2Daemon` (which it
    may not import: the daemon imports this module)."""

    restarts: int

    @property
    def MAX_FAILED_RESTARTS(self) -> int: ...  # (the daemon's class constant)

    @property
    def _lock(self) -> AbstractContextManager[Any]: ...

    @property
    def _stopping(self) -> threading.Event: ...

    @property
    def _process(self) -> subprocess.Popen[bytes] | None: ...

    @property
    def rpc_url(self) -> str: ...

    @property
    def session_file(self) -> str: ...

    def _launch(self) -> None: ...


def restart_when_it_dies(daemon: Supervised, process: subprocess.Popen[bytes]) -> None:
    """Wait for aria2c (``process``) to exit; start ``daemon`` again unless its ``stop()``
    asked it to go (or someone else started it again meanwhile)."""
    process.wait()
    pause = 0.2
    current = process
    for attempt in range(1, daemon.MAX_FAILED_RESTARTS + 1):
        with daemon._lock:
            if daemon._stopping.is_set() or daemon._process is not current:
                return  # stopped on purpose, or someone else started it again
            if attempt == 1:
                logger.warning(
                    "aria2c (pid %s) exited unexpectedly with code %s; restarting it on %s",
                    process.pid,
                    process.returncode,
                    daemon.rpc_url,
                )
            try:
                sessions.drop_finished(daemon.session_file)  # (else each is an error 13)
                daemon._launch()
                daemon.restarts += 1
                return
            except Aria2DaemonError as error:
                current = daemon._process  # the attempt that failed
                logger.warning("restarting aria2c failed (attempt %d): %s", attempt, error)
        if daemon._stopping.wait(pause):
            return
        pause = min(pause * 2, 5.0)
    logger.error("aria2c could not be restarted after %d attempts; giving up", daemon.MAX_FAILED_RESTARTS)
