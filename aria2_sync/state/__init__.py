"""Where the bookkeeping of downloads lives beyond one process: the :class:`Store` interface
(``base``), its SQLite form (``sqlite``) and its Redis form (``redis``), each loaded only by
those who use it.
"""

from __future__ import annotations

import os
from typing import Any

from .base import Row, Store

__all__ = ["Row", "Store", "open_store"]


def open_store(state: Any) -> Store | None:
    """``state=`` of :class:`~aria2_sync.Aria2Client`: None (memory only), a path, a Redis URL,
    or a Store.

    A ``redis://``, ``rediss://`` or ``unix://`` URL opens a
    :class:`~aria2_sync.state.redis.RedisStore` (redis-py is imported then, not before); any
    other str or path an :class:`~aria2_sync.state.sqlite.SQLiteStore`. Raises
    :class:`~aria2_sync.Aria2InputError` for another type (or a Redis URL without redis-py) and
    :class:`~aria2_sync.Aria2StateError` for a store that cannot be opened.
    """
    if state is None or isinstance(state, Store):
        return state
    if isinstance(state, str) and state.lower().startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore  # (redis-py is loaded only by those who use it)

        return RedisStore(state)
    if isinstance(state, (str, os.PathLike)):
        from .sqlite import SQLiteStore  # (sqlite3 is loaded only by those who use it)

        return SQLiteStore(os.fspath(state))
    from ..errors import Aria2InputError

    raise Aria2InputError(
        "state must be None, a path to an SQLite file, a redis:// URL, or a Store, "
        f"not {type(state).__name__}"
    )
