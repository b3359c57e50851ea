"""The ``aria2_sync`` logger and the seed guide's ``verbose`` output.

Library code only ever logs; whether anything is shown is the application's choice. A client
created with ``verbose=True`` (the seed's default) attaches one stderr handler that prints lines
like ``[Aria2Client 16:13:41] added download: ...``; ``verbose=False`` attaches nothing. The
handler is counted: when the last verbose client is closed, it is removed again (and the logger's
level put back), so a process that made a verbose client once is not verbose for ever.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

LOGGER_NAME = "aria2_sync"
logger = logging.getLogger(LOGGER_NAME)
# Libraries log but never configure output: without this, Python's last-resort handler would
# print our warnings to stderr in applications that did not set logging up.
logger.addHandler(logging.NullHandler())


class _VerboseHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    Notebooks and test runners swap ``sys.stderr``; a handler bound to the stream of the moment
    it was made would write to a dead one. Also a marker: at most one is attached.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


_lock = threading.Lock()
#: How many live users asked for verbose output (clients made with ``verbose=True``).
_users = 0
#: The handler this module attached (None when it attached none), and the level it replaced.
_attached: _VerboseHandler | None = None
_previous_level: int | None = None


def enable_verbose_output() -> None:
    """Show INFO and above from ``aria2_sync`` on stderr in the seed guide's format.

    Idempotent: many verbose clients still print each line once. Each call counts as one user;
    :func:`disable_verbose_output` ends it.
    """
    global _users, _attached, _previous_level
    with _lock:
        _users += 1
        if any(isinstance(h, _VerboseHandler) for h in logger.handlers):
            return
        handler = _VerboseHandler()
        handler.setFormatter(logging.Formatter("[Aria2Client %(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        handler.setLevel(logging.INFO)
        logger.addHandler(handler)
        _attached = handler
        _previous_level = None
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            _previous_level = logger.level
            logger.setLevel(logging.INFO)


def disable_verbose_output() -> None:
    """End one :func:`enable_verbose_output`; the last one out removes the handler it added.

    The logger's level is put back only if nobody changed it meanwhile.
    """
    global _users, _attached, _previous_level
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users or _attached is None:
            return
        logger.removeHandler(_attached)
        if _previous_level is not None and logger.level == logging.INFO:
            logger.setLevel(_previous_level)
        _attached, _previous_level = None, None
