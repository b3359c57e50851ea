"""When to restart a failed download, how often, and how long to wait first.

aria2 reports why a download failed with an error code (``errorCode`` in ``tellStatus``, the
same codes as aria2c's exit status; :data:`ERROR_CODE_NAMES` names them). Some codes
are weather (a reset connection, a timeout, an overloaded server) and worth another try; others
are facts that another try will not change (404, disk full, file exists, bad option). Restarting
those wastes the budget and hides the real problem, so by default they are not restarted.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import attrs

from .errors import CHECKSUM_ERROR_CODE, Aria2InputError
from .models import Progress

__all__ = [
    "RestartPolicy",
    "RestartDecision",
    "TRANSIENT_ERROR_CODES",
    "PERMANENT_ERROR_CODES",
    "ERROR_CODE_NAMES",
    "CHECKSUM_MISMATCH_CODE",
]

#: aria2 error codes that are transient in practice: unknown network error, timeout, too slow,
#: network problem, name resolution failed, bad HTTP response header (a 5xx), server overloaded.
TRANSIENT_ERROR_CODES: frozenset[int] = frozenset({1, 2, 5, 6, 19, 22, 29})

#: Codes that another try will not fix (not found, disk full, file exists, auth, bad option...).
PERMANENT_ERROR_CODES: frozenset[int] = frozenset({3, 4, 8, 9, 13, 16, 24, 28, 32})

#: aria2's "checksum validation failed": restarted as ``RestartPolicy.checksum_restarts`` says.
CHECKSUM_MISMATCH_CODE = int(CHECKSUM_ERROR_CODE)

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


def _non_negative_int(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Aria2InputError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _non_negative_number(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise Aria2InputError(f"{attribute.name} must be a number >= 0, got {value!r}")


def _codes(value: object) -> frozenset[int]:
    try:
        return frozenset(int(code) for code in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise Aria2InputError(
            f"restartable_codes must be a collection of aria2 error codes (ints), got {value!r}"
        ) from None


def _callable_or_none(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise Aria2InputError(f"{attribute.name} must be callable(progress) -> bool, or None")


@attrs.frozen
class RestartDecision:
    """What the policy says about one failure: restart after ``delay`` s, or not, and why."""

    restart: bool
    delay: float = 0.0
    reason: str | None = None


@attrs.frozen
class RestartPolicy:
    """Which failures are restarted, how many times, and the backoff between restarts.

    ``max_restarts`` is the budget per download. The k-th restart of a download waits
    ``base_delay * 2**(k-1)`` seconds (at most ``max_delay``). ``restartable_codes`` lists the
    aria2 error codes worth another try; ``predicate``, when given, replaces that test: it gets
    the failed :class:`~aria2_sync.Progress` and returns True to restart (the budget still holds).

    ``checksum_restarts`` bounds the restarts of a checksum mismatch (aria2's error 32: the file
    arrived whole but its hash is not the expected one; see :class:`~aria2_sync.errors.ChecksumMismatch`).
    Such a download is restarted only while fewer than ``checksum_restarts`` of its restarts
    followed a mismatch (and ``max_restarts`` allows one more restart in all), so by default once,
    whatever restarted it before for other reasons: a transfer garbled on the way may come right,
    a wrong hash or a changed file never will. ``restartable_codes`` is not asked about code 32;
    a ``predicate`` is, like about any failure. The restart starts from scratch: aria2 keeps no
    verified part of a file that failed its check (measured: the whole file is fetched again),
    so no bad byte is kept.
    """

    max_restarts: int = attrs.field(default=3, validator=_non_negative_int)
    base_delay: float = attrs.field(default=1.0, validator=_non_negative_number)
    max_delay: float = attrs.field(default=60.0, validator=_non_negative_number)
    restartable_codes: frozenset[int] = attrs.field(default=TRANSIENT_ERROR_CODES, converter=_codes)
    predicate: Callable[[Progress], bool] | None = attrs.field(default=None, validator=_callable_or_none)
    checksum_restarts: int = attrs.field(default=1, validator=_non_negative_int)

    def delay(self, restart_number: int) -> float:
        """Seconds to wait before restart number ``restart_number`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * (2 ** max(0, restart_number - 1))))

    def is_restartable(self, progress: Progress) -> bool:
        """Whether this failure is worth another try, budget aside."""
        if self.predicate is not None:
            return bool(self.predicate(progress))
        code = progress.error_code_number
        return code is not None and code in self.restartable_codes

    def decide(
        self, progress: Progress, restarts_done: int, *, checksum_restarts_done: int | None = None
    ) -> RestartDecision:
        """Restart or not, for a download that failed after ``restarts_done`` restarts.

        ``checksum_restarts_done``: how many of those restarts followed a checksum mismatch
        (the client counts them in the download's attempts); None (the default) counts all
        ``restarts_done`` against ``checksum_restarts``. Returns the decision; raises nothing.
        """
        if self.predicate is None and progress.error_code_number == CHECKSUM_MISMATCH_CODE:
            done = restarts_done if checksum_restarts_done is None else checksum_restarts_done
            allowed = min(self.checksum_restarts, self.max_restarts)
            if done >= allowed:
                why = (
                    f"a checksum mismatch gets at most {allowed} restart(s) from scratch, and this "
                    f"download had {done}{'' if checksum_restarts_done is None else ' after one'}"
                    if allowed
                    else "checksum mismatches are not restarted (checksum_restarts or max_restarts is 0)"
                )
                return RestartDecision(False, reason=f"{why}; last error: {describe_error(progress)}")
            if restarts_done < self.max_restarts:  # (and the budget of all restarts holds)
                return RestartDecision(True, delay=self.delay(restarts_done + 1))
            return RestartDecision(False, reason=self._spent(progress))
        if not self.is_restartable(progress):
            return RestartDecision(False, reason=f"{describe_error(progress)} is not restartable")
        if restarts_done >= self.max_restarts:
            return RestartDecision(False, reason=self._spent(progress))
        return RestartDecision(True, delay=self.delay(restarts_done + 1))

    def _spent(self, progress: Progress) -> str:
        return f"reached max retries ({self.max_restarts}); last error: {describe_error(progress)}"


def describe_error(progress: Progress) -> str:
    """``error 3 (resource not found: Resource not found)`` style text for a failed snapshot."""
    code = progress.error_code_number
    name = ERROR_CODE_NAMES.get(code, "unknown code") if code is not None else "no error code"
    detail = f": {progress.error_message}" if progress.error_message else ""
    return f"error {progress.error_code or '?'} ({name}{detail})"
