"""aria2_sync: a synchronous aria2 JSON-RPC client that makes downloads survive failure.

Start with :class:`Aria2Client`; every error it raises is an :class:`Aria2Error`.
"""

from typing import Any as _Any

from ._version import __version__
from .client import Aria2Client, RetryInfo
from .engine.futures import DownloadFuture, DownloadResult, as_completed, wait
from .errors import (
    Aria2AuthError,
    Aria2BinaryNotFoundError,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2DaemonError,
    Aria2Error,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2ProtocolError,
    Aria2RPCError,
    Aria2StateError,
    Aria2TimeoutError,
    Aria2UnknownBatchError,
    BadMagnetError,
    BadMetalinkError,
    BadTorrentError,
    ChecksumMismatch,
    DownloadFailed,
)
from .models import BatchProgress, FileInfo, GlobalStats, Progress
from .policy import PERMANENT_ERROR_CODES, TRANSIENT_ERROR_CODES, RestartPolicy
from .state import Store

#: Exports loaded on first use: they bring subprocess, sqlite3, tqdm or ipywidgets handling, or
#: the search for an aria2c binary, that most programs never need, and ``import aria2_sync`` should
#: stay cheap (no work at import time; tests/test_import_cost.py lists what it must not load).
_LAZY = {
    "Aria2Daemon": ".daemon.process",
    "find_aria2c": ".daemon.binary",
    "SQLiteStore": ".state.sqlite",
    "progress": ".ui.progress_display",
    "dashboard": ".ui.dashboard",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aria2_sync' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))


__all__ = [
    "__version__",
    "Aria2Client",
    "Aria2Error",
    "Aria2InputError",
    "BadMagnetError",
    "BadTorrentError",
    "BadMetalinkError",
    "Aria2ConnectionError",
    "Aria2TimeoutError",
    "Aria2ProtocolError",
    "Aria2RPCError",
    "Aria2StateError",
    "Aria2UnknownBatchError",
    "Aria2AuthError",
    "Aria2GIDNotFoundError",
    "Aria2BinaryNotFoundError",
    "Aria2ClosedError",
    "Aria2DaemonError",
    "Aria2Daemon",
    "DownloadFailed",
    "ChecksumMismatch",
    "DownloadFuture",
    "DownloadResult",
    "BatchProgress",
    "wait",
    "as_completed",
    "FileInfo",
    "GlobalStats",
    "Progress",
    "RestartPolicy",
    "SQLiteStore",
    "Store",
    "RetryInfo",
    "TRANSIENT_ERROR_CODES",
    "PERMANENT_ERROR_CODES",
    "find_aria2c",
    "progress",
    "dashboard",
]
