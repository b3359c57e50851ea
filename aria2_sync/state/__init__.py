"""Where the bookkeeping of downloads lives beyond one process: the :class:`Store` interface
(``base``) and its SQLite form (``sqlite``, loaded only by those who use it).
"""

from __future__ import annotations

import os
from typing import Any

from .base import Row, Store

__all__ = ["Row", "Store", "open_store"]


def open_store(state: Any) -> Store | None:
    """``state=`` of :class:`~aria2_sync.Aria2Client`: None (memory only), a path, or a Store."""
    if state is None or isinstance(state, Store):
        return state
    if isinstance(state, (str, os.PathLike)):
        from .sqlite import SQLiteStore  # (sqlite3 is loaded only by those who use it)

        return SQLiteStore(os.fspath(state))
    from ..errors import Aria2InputError

    raise Aria2InputError(
        f"state must be None, a path to an SQLite file, or a Store, not {type(state).__name__}"
    )
