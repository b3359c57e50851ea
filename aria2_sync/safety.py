"""What a download verifies and what it may turn into: the checks of those options.

Two per-download aria2 options decide whether a download is what the caller meant to get:

* ``checksum`` (``"sha-256=<hex>"``): aria2 hashes the finished file and fails with error 32
  when it differs. A malformed value is not refused by aria2's ``addUri``: the download would
  run unverified, or fail at the end. So it is checked here, before anything is sent.
* ``follow-torrent`` / ``follow-metalink``: aria2's default (``true``) turns a plain URL that
  happens to serve a ``.torrent`` or a metalink into a BitTorrent or Metalink download: it opens
  listening ports on every interface and reports the small ``.torrent`` as the completed
  download (measured). aria2_sync sends both as ``false`` with every plain-URL add unless the
  caller passes ``follow=True``.

The values of the options that make a BitTorrent download seed (``seed-time``, ``seed-ratio``)
are checked too: aria2 would take a negative or non-numeric one without a word.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Callable

from .errors import Aria2InputError

__all__ = [
    "CHECKSUM_HEX_LENGTHS",
    "FOLLOW_OPTIONS",
    "VALUE_CHECKS",
    "check_checksum",
    "with_safety",
]

#: The hash algorithms aria2 1.37 verifies with (``aria2c --version``, "Hash Algorithms"),
#: and the number of hex digits of each one's digest.
CHECKSUM_HEX_LENGTHS: dict[str, int] = {
    "sha-1": 40,
    "sha-224": 56,
    "sha-256": 64,
    "sha-384": 96,
    "sha-512": 128,
    "md5": 32,
    "adler32": 8,
}

#: The per-download options that let a plain URL turn into a BitTorrent or Metalink download.
FOLLOW_OPTIONS = ("follow-torrent", "follow-metalink")

_HEX = re.compile(r"[0-9a-fA-F]+")
_FOLLOW_VALUES = ("true", "false", "mem")


def check_checksum(value: Any) -> str:
    """``value`` as aria2's ``checksum`` option wants it (``"sha-256=<lower-case hex>"``).

    Raises :class:`Aria2InputError`, saying what to fix, for anything else: not a str, no ``=``,
    an algorithm aria2 does not verify with (:data:`CHECKSUM_HEX_LENGTHS`), a digest that is not
    hex or not as long as that algorithm's.
    """
    if not isinstance(value, str):
        raise Aria2InputError(
            f"checksum must be a str like 'sha-256=<hex digest>', not {type(value).__name__}"
        )
    algorithm, sep, digest = value.strip().partition("=")
    algorithm = algorithm.strip().lower()
    digest = digest.strip()
    known = ", ".join(CHECKSUM_HEX_LENGTHS)
    if not sep or not algorithm:
        raise Aria2InputError(
            f"checksum {value!r:.80} must be written ALGORITHM=HEX, like 'sha-256=<64 hex digits>' "
            f"(algorithms: {known})"
        )
    length = CHECKSUM_HEX_LENGTHS.get(algorithm)
    if length is None:
        dashed = f"sha-{algorithm[3:]}"  # (sha256 -> sha-256)
        hint = f" (did you mean {dashed!r}?)" if dashed in CHECKSUM_HEX_LENGTHS else ""
        raise Aria2InputError(
            f"checksum algorithm {algorithm!r:.40} is not one aria2 verifies with{hint}: use one of {known}"
        )
    if not _HEX.fullmatch(digest) or len(digest) != length:
        what = "is not hexadecimal" if not _HEX.fullmatch(digest) else f"has {len(digest)} hex digits"
        raise Aria2InputError(
            f"the {algorithm} digest in checksum {value!r:.160} {what}: a {algorithm} digest is "
            f"{length} hex digits"
        )
    return f"{algorithm}={digest.lower()}"


def _checksum_value(key: str, value: str | list[str]) -> str:
    return check_checksum(value)


def _follow_value(key: str, value: str | list[str]) -> str:
    text = value.strip().lower() if isinstance(value, str) else None
    if text not in _FOLLOW_VALUES:
        raise Aria2InputError(f"option {key!r} takes true, false or mem, got {value!r:.60}")
    return text


def _non_negative_number(key: str, value: str | list[str]) -> str:
    try:
        number = float(value) if isinstance(value, str) else math.nan
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        unit = "minutes" if key == "seed-time" else "uploaded / downloaded"
        raise Aria2InputError(f"option {key!r} takes a number >= 0 ({unit}), got {value!r:.60}")
    return str(value).strip()


#: Option name -> the check of its value (already made a str by the generic option checks):
#: returns the value to send, or raises :class:`Aria2InputError`.
VALUE_CHECKS: dict[str, Callable[[str, str | list[str]], str]] = {
    "checksum": _checksum_value,
    "follow-torrent": _follow_value,
    "follow-metalink": _follow_value,
    "seed-time": _non_negative_number,
    "seed-ratio": _non_negative_number,
}


def _as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def with_safety(options: Any, checksum: Any, follow: Any) -> Any:
    """The caller's ``options`` with the ``checksum=`` and ``follow=`` arguments of a plain-URL add.

    ``checksum`` (None: no check) becomes the ``checksum`` option; ``follow`` (a bool) sets
    ``follow-torrent`` and ``follow-metalink`` to ``true`` or ``false`` unless ``options`` set
    them, which must then agree with it (``mem`` counts as following). Returns a new dict (the
    caller's mapping is never changed); options that are not a mapping are returned as they are,
    for the generic checks to refuse. Raises :class:`Aria2InputError` for a bad ``checksum``, a
    ``follow`` that is not a bool, or a contradiction between an argument and ``options``.
    """
    if not isinstance(follow, bool):
        raise Aria2InputError(f"follow must be True or False, got {follow!r:.40}")
    if options is not None and not isinstance(options, Mapping):
        return options
    merged = dict(options or {})
    if checksum is not None:
        checksum = check_checksum(checksum)
        given = merged.get("checksum")
        if given is not None and check_checksum(given) != checksum:
            raise Aria2InputError("checksum= and options['checksum'] differ: give the checksum once")
        merged["checksum"] = checksum
    for key in FOLLOW_OPTIONS:
        given = _as_text(merged.get(key))
        if given is None:
            merged[key] = "true" if follow else "false"
        elif (_follow_value(key, given) != "false") != follow:
            raise Aria2InputError(
                f"options[{key!r}] is {given!r} but follow={follow}: pass follow=True to follow a "
                ".torrent or metalink found at the URL (options may then say 'mem'), or leave the "
                "option out"
            )
    return merged
