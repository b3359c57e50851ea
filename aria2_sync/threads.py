"""How the package makes its threads: one factory type, so that one owner can make them all.

A client's :class:`~aria2_sync.engine.runtime.Runtime` makes every thread the client runs (the
monitor, the scheduler, the worker pools, the notification listener, the connections'
watchdogs) and waits for them when the client closes. Each piece takes a ``thread_factory``
for that; used on its own (a bare :class:`~aria2_sync.rpc.transport.Transport`, say), it makes
plain daemon threads with :func:`daemon_thread`.
"""

from __future__ import annotations

import threading
from typing import Callable

__all__ = ["ThreadFactory", "daemon_thread"]

#: Makes a daemon thread (not started) named ``name`` running ``target``.
ThreadFactory = Callable[[str, Callable[[], None]], threading.Thread]


def daemon_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """The default :data:`ThreadFactory`: a plain daemon thread, owned by no one."""
    return threading.Thread(target=target, name=name, daemon=True)
