"""The ``aria2_sync`` logger and the seed guide's ``verbose`` output.

Library code only ever logs; whether anything is shown is the application's choice. A client
created with ``verbose=True`` (the seed's default) attaches one stderr handler that prints lines
like ``[Aria2Client 16:13:41] added download: ...``; ``verbose=False`` attaches nothing.
"""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "aria2_sync"
logger = logging.getLogger(LOGGER_NAME)


class _VerboseHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted.

    Notebooks and test runners swap ``sys.stderr``; a handler bound to the stream of the moment
    it was made would write to a dead one. Also a marker: at most one is attached.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401 - property
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def enable_verbose_output() -> None:
    """Show INFO and above from ``aria2_sync`` on stderr in the seed guide's format.

    Idempotent: many verbose clients still print each line once.
    """
    if any(isinstance(h, _VerboseHandler) for h in logger.handlers):
        return
    handler = _VerboseHandler()
    handler.setFormatter(
        logging.Formatter("[Aria2Client %(asctime)s] %(message)s", datefmt="%H:%M:%S")
    )
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
