"""When to restart a failed download, how often, and how long to wait first.

aria2 reports why a download failed with an error code (``errorCode`` in ``tellStatus``, the
same codes as aria2c's exit status; :data:`ERROR_CODE_NAMES` names them). Some codes
are weather (a reset connection, a timeout, an overloaded server) and worth another try; others
are facts that another try will not change (404, disk full, file exists, bad option). Restarting
those wastes the budget and hides the real problem, so by default they are not restarted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Callable

from .errors import Aria2InputError
from .models import Progress
from .values import Frozen

__all__ = [
    "RestartPolicy",
    "RestartDecision",
    "TRANSIENT_ERROR_CODES",
    "PERMANENT_ERROR_CODES",
    "ERROR_CODE_NAMES",
]

#: aria2 error codes that are transient in practice: unknown network error, timeout, too slow,
#: network problem, name resolution failed, bad HTTP response header (a 5xx), server overloaded.
TRANSIENT_ERROR_CODES: frozenset[int] = frozenset({1, 2, 5, 6, 19, 22, 29})

#: Codes that another try will not fix (not found, disk full, file exists, auth, bad option...).
PERMANENT_ERROR_CODES: frozenset[int] = frozenset({3, 4, 8, 9, 13, 16, 24, 28, 32})

#: Short names of aria2's error codes, for messages.
ERROR_CODE_NAMES = {
    1: "unknown error",
    2: "timeout",
    3: "resource not found",
    4: "max file-not-found reached",
    5: "download too slow",
    6: "network problem",
    7: "unfinished at shutdown",
    8: "server has no resume support",
    9: "not enough disk space",
    10: "piece length differs",
    11: "same file already downloading",
    12: "same info hash already downloading",
    13: "file already exists",
    14: "renaming failed",
    15: "could not open existing file",
    16: "could not create or truncate file",
    17: "file I/O error",
    18: "could not create directory",
    19: "name resolution failed",
    20: "could not parse Metalink",
    21: "FTP command failed",
    22: "bad HTTP response header",
    23: "too many redirects",
    24: "HTTP authorization failed",
    25: "could not parse bencoded file",
    26: "corrupted .torrent file",
    27: "bad magnet URI",
    28: "bad or unrecognized option",
    29: "server overloaded",
    30: "could not parse JSON-RPC request",
    31: "reserved",
    32: "checksum validation failed",
}


def _non_negative_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Aria2InputError(f"{name} must be an int >= 0, got {value!r}")


def _non_negative_number(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise Aria2InputError(f"{name} must be a number >= 0, got {value!r}")


def _codes(value: object) -> frozenset[int]:
    try:
        return frozenset(int(code) for code in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise Aria2InputError(
            f"restartable_codes must be a collection of aria2 error codes (ints), got {value!r}"
        ) from None


def _callable_or_none(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise Aria2InputError(f"{name} must be callable(progress) -> bool, or None")


class RestartDecision(Frozen):
    """What the policy says about one failure: restart after ``delay`` s, or not, and why."""

    __slots__ = ("restart", "delay", "reason")
    restart: bool
    delay: float
    reason: str | None

    def __init__(self, restart: bool, delay: float = 0.0, reason: str | None = None) -> None:
        object.__setattr__(self, "restart", restart)
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "reason", reason)


class RestartPolicy(Frozen):
    """Which failures are restarted, how many times, and the backoff between restarts.

    ``max_restarts`` is the budget per download. The k-th restart of a download waits
    ``base_delay * 2**(k-1)`` seconds (at most ``max_delay``). ``restartable_codes`` lists the
    aria2 error codes worth another try; ``predicate``, when given, replaces that test: it gets
    the failed :class:`~aria2_sync.Progress` and returns True to restart (the budget still holds).
    """

    __slots__ = ("max_restarts", "base_delay", "max_delay", "restartable_codes", "predicate")
    max_restarts: int
    base_delay: float
    max_delay: float
    restartable_codes: frozenset[int]
    predicate: Callable[[Progress], bool] | None

    def __init__(
        self,
        max_restarts: int = 3,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        restartable_codes: Iterable[int] = TRANSIENT_ERROR_CODES,
        predicate: Callable[[Progress], bool] | None = None,
    ) -> None:
        codes = _codes(restartable_codes)
        _non_negative_int("max_restarts", max_restarts)
        _non_negative_number("base_delay", base_delay)
        _non_negative_number("max_delay", max_delay)
        _callable_or_none("predicate", predicate)
        object.__setattr__(self, "max_restarts", max_restarts)
        object.__setattr__(self, "base_delay", base_delay)
        object.__setattr__(self, "max_delay", max_delay)
        object.__setattr__(self, "restartable_codes", codes)
        object.__setattr__(self, "predicate", predicate)

    def delay(self, restart_number: int) -> float:
        """Seconds to wait before restart number ``restart_number`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * (2 ** max(0, restart_number - 1))))

    def is_restartable(self, progress: Progress) -> bool:
        """Whether this failure is worth another try, budget aside."""
        if self.predicate is not None:
            return bool(self.predicate(progress))
        code = progress.error_code_number
        return code is not None and code in self.restartable_codes

    def decide(self, progress: Progress, restarts_done: int) -> RestartDecision:
        """Restart or not, for a download that failed after ``restarts_done`` restarts."""
        if not self.is_restartable(progress):
            return RestartDecision(False, reason=f"{describe_error(progress)} is not restartable")
        if restarts_done >= self.max_restarts:
            return RestartDecision(
                False,
                reason=f"reached max retries ({self.max_restarts}); last error: {describe_error(progress)}",
            )
        return RestartDecision(True, delay=self.delay(restarts_done + 1))


def describe_error(progress: Progress) -> str:
    """``error 3 (resource not found: Resource not found)`` style text for a failed snapshot."""
    code = progress.error_code_number
    name = ERROR_CODE_NAMES.get(code, "unknown code") if code is not None else "no error code"
    detail = f": {progress.error_message}" if progress.error_message else ""
    return f"error {progress.error_code or '?'} ({name}{detail})"
