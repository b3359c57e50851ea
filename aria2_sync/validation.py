"""Checks at the API edge: bad input fails here, with a message that says what to fix.

Everything is checked before anything is sent, so a bad call never half-happens and never
disturbs downloads already running.
"""

from __future__ import annotations

import os
import posixpath
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Union

from .aria2_options import ALL_OPTIONS, DOWNLOAD_OPTIONS, GLOBAL_ONLY_OPTIONS
from .errors import Aria2InputError, redact_text, redact_url
from .safety import VALUE_CHECKS

__all__ = [
    "SUPPORTED_SCHEMES",
    "check_gid",
    "check_uris",
    "check_options",
    "check_callables",
    "check_daemon_options",
    "check_gids",
    "split_save_path",
    "download_options",
    "check_local_directory",
    "BatchOptions",
]

#: URI schemes aria2's addUri downloads from.
SUPPORTED_SCHEMES = frozenset({"http", "https", "ftp", "sftp"})

_GID = re.compile(r"^[0-9a-fA-F]{16}$")
#: Characters an option value must not hold: aria2 would split a header (or a line of its
#: input/session file) there, so one option could smuggle in another header or option.
_LINE_BREAKS = re.compile(r"[\r\n\x00]")

UrlArg = Union[str, Sequence[str]]
PathArg = Union[str, "os.PathLike[str]"]


def check_gid(gid: Any) -> str:
    """Return ``gid`` lower-cased if it is an aria2 GID (16 hex digits), else raise."""
    if not isinstance(gid, str):
        raise Aria2InputError(f"gid must be a str of 16 hex digits, not {type(gid).__name__}")
    if not _GID.fullmatch(gid):
        raise Aria2InputError(f"gid {gid!r:.40} is not an aria2 GID: expected 16 hex digits")
    return gid.lower()


#: The common shape, checked in one regex match: scheme://host[:port][/path?query#fragment]
#: with a plain host name or IPv4 address, in printable ASCII (no space, no control character).
#: Anything else (user info, IPv6, odd ports, non-ASCII text, errors) takes the full check
#: below, which says exactly what is wrong.
_PLAIN_URL = re.compile(
    r"(?:https?|s?ftp)://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"(?::(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?:[/?#][!-~]*)?",
    re.IGNORECASE | re.ASCII,  # (ASCII: no Unicode case folding, e.g. "ſ" is not an "s")
)


def _check_url(url: Any) -> str:
    if type(url) is str and _PLAIN_URL.fullmatch(url):
        return url  # the fast path: a batch of thousands checks each URL in a microsecond
    if not isinstance(url, str):
        raise Aria2InputError(f"url must be a str, not {type(url).__name__}")
    text = url.strip()
    if not text:
        raise Aria2InputError("url is empty: give an http(s), ftp or sftp URL")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError as error:
        raise Aria2InputError(f"url {redact_url(text)!r} cannot be parsed: {error}") from None
    if not parts.scheme:
        raise Aria2InputError(
            f"url {redact_url(text)!r} has no scheme: write it in full, like http://host/file"
        )
    if parts.scheme.lower() not in SUPPORTED_SCHEMES:
        raise Aria2InputError(
            f"url {redact_url(text)!r} uses the unsupported scheme {parts.scheme!r}: "
            f"use one of {', '.join(sorted(SUPPORTED_SCHEMES))}"
        )
    if not parts.hostname:
        raise Aria2InputError(f"url {redact_url(text)!r} has no host")
    try:
        _ = parts.port  # (parsed on access: an out-of-range port raises)
    except ValueError:
        raise Aria2InputError(f"url {redact_url(text)!r} has an invalid port (1-65535)") from None
    bad = _first_unsafe_char(text)
    if bad is not None:
        raise Aria2InputError(f"url {redact_url(text)!r} contains {bad}: percent-encode it")
    return text


def _first_unsafe_char(text: str) -> str | None:
    """Describe the first white-space or control character of ``text`` (None if it has none).

    White space is what ``str.isspace()`` says (Unicode's too: U+0085, U+00A0, U+2028...);
    control characters are Unicode's category Cc (NUL, C0, DEL, C1). Either would be cut,
    kept or reinterpreted differently by aria2 and by the server.
    """
    for char in text:
        if char.isspace():
            return f"white space (U+{ord(char):04X})"
        if unicodedata.category(char) == "Cc":
            return f"a control character (U+{ord(char):04X})"
    return None


def check_uris(url: Any) -> list[str]:
    """Accept one URL or a sequence of mirror URLs of the same file; return the list."""
    if type(url) is str and _PLAIN_URL.fullmatch(url):
        return [url]  # (the fast path of _check_url, without a call)
    if isinstance(url, (list, tuple)):
        if not url:
            raise Aria2InputError("url is an empty list: give at least one URL")
        return [_check_url(u) for u in url]
    return [_check_url(url)]


def _option_value(key: str, value: Any) -> str | list[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return _one_line(key, value)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return _one_line(key, path)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        # aria2 takes repeatable options (header, index-out) as lists
        return [_one_line(key, v) for v in value]
    raise Aria2InputError(
        f"option {key!r} has a value of type {type(value).__name__}: aria2 options take "
        "str, int, float, bool, or a list of str"
    )


def _one_line(key: str, value: str) -> str:
    """``value`` if it holds no CR, LF or NUL; else a clear error (header injection)."""
    found = _LINE_BREAKS.search(value)
    if found is not None:
        secret = any(word in key for word in ("passwd", "secret", "token"))
        shown = "" if secret else f": {redact_text(value)!r:.80}"
        raise Aria2InputError(
            f"option {key!r} contains a line break or NUL (U+{ord(found.group()):04X}), which "
            f"would split it into more headers or options{shown}. Give one value per list "
            "item instead (e.g. header=['A: 1', 'B: 2'])"
        )
    return value


def _check_option_name(key: Any, known: AbstractSet[str], where: str) -> str:
    """``key`` if aria2 applies an option of that name ``where``; else an error that says why.

    aria2 accepts unknown option names silently, so a typo (``max-trys``) or an option that
    only the daemon's command line takes would be lost without a word.
    """
    if not isinstance(key, str) or not key:
        raise Aria2InputError(f"option names must be non-empty str, got {key!r}")
    if key in known:
        return key
    if key in GLOBAL_ONLY_OPTIONS:
        raise Aria2InputError(
            f"option {key!r} is a daemon-wide aria2c option, which aria2 ignores per download: "
            "set it on the daemon (its command line, Aria2Daemon(options=...) or "
            "Aria2Client.local(aria2_options=...))"
        )
    wanted = key.strip().lstrip("-").replace("_", "-").lower()
    import difflib  # (only for this message: most programs never need it)

    close = difflib.get_close_matches(wanted, sorted(known), n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise Aria2InputError(
        f"unknown aria2 option {key!r:.60} {where}: {hint}aria2 would ignore it silently. "
        "Option names are aria2c's long options without the dashes, like 'max-tries'"
    )


def check_options(options: Mapping[str, Any] | None) -> dict[str, str | list[str]]:
    """Return a new dict of aria2 options with values as aria2 wants them (strings).

    The caller's mapping is never modified.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise Aria2InputError(f"options must be a dict of aria2 options, not {type(options).__name__}")
    out: dict[str, str | list[str]] = {}
    for key, value in options.items():
        if key == "gid":
            raise Aria2InputError(
                "option 'gid' is chosen by aria2_sync (so that retries never duplicate a "
                "download): leave it out"
            )
        key = _check_option_name(key, DOWNLOAD_OPTIONS, "for a download")
        text = _option_value(key, value)
        check = VALUE_CHECKS.get(key)  # (checksum, follow-*, seed-*: aria2_sync.safety checks them)
        out[key] = text if check is None else check(key, text)
    return out


def check_gids(gids: Any) -> Any:
    """``gids`` itself if it is an iterable of GIDs (not a str); else :class:`Aria2InputError`."""
    if isinstance(gids, (str, bytes)) or not isinstance(gids, Iterable):
        raise Aria2InputError("gids must be a list of GIDs")
    return gids


def check_callables(**named: Any) -> dict[str, Any]:
    """``named`` itself once each value is callable or None; else :class:`Aria2InputError`."""
    for name, value in named.items():
        if value is not None and not callable(value):
            raise Aria2InputError(f"{name} must be callable or None")
    return named


def check_daemon_options(
    options: Mapping[str, Any] | None, reserved: AbstractSet[str] = frozenset()
) -> dict[str, str]:
    """Return the aria2c command-line options of a private daemon, as strings, or raise.

    Names must be aria2c options (any of ``aria2c --help=#all``, written without the dashes)
    and not in ``reserved`` (those the daemon sets itself). Values must be one line: a line
    break in a value would add a line (another option) to the daemon's configuration file.
    Meant for :class:`~aria2_sync.daemon.process.Aria2Daemon`.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise Aria2InputError(f"options must be a dict of aria2c options, not {type(options).__name__}")
    out: dict[str, str] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key or key.startswith("-"):
            raise Aria2InputError(f"aria2c option names are like 'max-download-result', got {key!r:.60}")
        if key in reserved:
            raise Aria2InputError(
                f"option {key!r} is set by Aria2Daemon itself: use its constructor arguments"
            )
        _check_option_name(key, ALL_OPTIONS, "for aria2c")
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)):
            raise Aria2InputError(f"aria2c option {key!r} takes a str, int, float or bool")
        out[key] = _one_line(key, str(value))
    return out


def split_save_path(save_path: Any, listing: _DirectoryListing | None = None) -> tuple[str, str]:
    """Split a target file path into aria2's ``dir`` and ``out``.

    Relative paths are made absolute against this process's working directory: aria2 would
    resolve them against its own, which is rarely what the caller meant. A path that is an
    existing directory is refused (``listing`` answers that for many paths at once).
    """
    if type(save_path) is not str:
        if not isinstance(save_path, (str, os.PathLike)):
            raise Aria2InputError(f"save_path must be a str or os.PathLike, not {type(save_path).__name__}")
        save_path = os.fspath(save_path)
        if not isinstance(save_path, str):
            raise Aria2InputError("save_path must be a text path, not bytes")
    text: str = save_path
    if not text or text.isspace():
        raise Aria2InputError("save_path is empty: give the path of the file to write")
    if "\x00" in text:
        raise Aria2InputError("save_path contains a NUL character")
    if text.endswith(("/", os.sep)):
        raise Aria2InputError(_IS_A_DIRECTORY.format(text=text))
    if text[:1] == "/" == os.sep and "//" not in text and "/." not in text:
        # Already what abspath makes of it (absolute, nothing to normalise): the common case.
        directory, _, name = text.rpartition("/")
        directory = directory or "/"
        full = text
    else:
        full = os.path.abspath(os.path.expanduser(text))
        directory, name = os.path.split(full)
    if listing.is_dir(full, directory, name) if listing is not None else os.path.isdir(full):
        raise Aria2InputError(_IS_A_DIRECTORY.format(text=text))
    return directory, name


_IS_A_DIRECTORY = (
    "save_path {text!r} is a directory: give the full path of the file to write "
    "(directory and file name), or pass options={{'dir': ...}} to keep the server's name"
)


def check_local_directory(directory: str) -> None:
    """Refuse a target directory that this machine can tell will never be writable.

    Only meaningful when the daemon runs here (a remote daemon's paths are its own). Walks up
    to the first part of the path that exists: it must be a directory we may write in. Missing
    directories below it are fine: aria2 creates them.
    """
    probe = os.path.abspath(directory)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        raise Aria2InputError(f"cannot save into {directory!r}: {probe!r} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise Aria2InputError(
            f"cannot save into {directory!r}: no permission to write in {probe!r} "
            "(choose another directory or fix its permissions)"
        )


def download_options(
    save_path: PathArg | None, options: Mapping[str, Any] | None
) -> dict[str, str | list[str]]:
    """The aria2 options for one download: the caller's options plus ``dir``/``out``.

    ``auto-file-renaming`` is off unless the caller turns it on: by default aria2 writes to
    ``name.1`` when ``name`` exists, which would leave a result where nobody looks for it and
    a partial file behind. With it off, an existing file is a clear error instead, and the
    restart engine can tell its own leftover partial file from somebody else's file.
    """
    merged = check_options(options)
    merged.setdefault("auto-file-renaming", "false")
    if save_path is not None:
        clash = sorted({"dir", "out"} & merged.keys())
        if clash:
            raise Aria2InputError(f"save_path and options {clash} both say where to write: give one of them")
        merged["dir"], merged["out"] = split_save_path(save_path)
    elif "dir" in merged and isinstance(merged["dir"], str):
        merged["dir"] = os.path.abspath(os.path.expanduser(merged["dir"]))
    if "out" in merged and save_path is None:  # (a save_path's own base name is inside dir)
        merged["out"] = _inside_dir("out", merged["out"])
    if "index-out" in merged:
        merged["index-out"] = _index_out(merged["index-out"])
    return merged


class BatchOptions:
    """:func:`download_options` for the many downloads of a batch that share ``options``.

    What depends on the shared options alone is checked and converted once: the options
    themselves, ``out``/``index-out`` confinement, ``dir`` made absolute. Per item there is
    left the part that differs, the save path: its split into ``dir`` and ``out`` (each
    distinct ``dir`` string is kept once and shared) and the refusal of a path that is an
    existing directory, answered for the items of one directory from one listing of it
    (:class:`_DirectoryListing`). Errors are the ones :func:`download_options` raises, in the
    same order for the first item.
    """

    def __init__(self, options: Mapping[str, Any] | None, expected_items: int = 0) -> None:
        self._options = options
        self._shared: dict[str, str | list[str]] | None = None
        self._without_path: dict[str, str | list[str]] | None = None
        self._checked = False  # (the options' own checks for items with a save path)
        self._dirs: dict[str, str] = {}
        self._listing = _DirectoryListing(max(1024, 4 * expected_items))

    @property
    def shared(self) -> dict[str, str | list[str]]:
        """The checked options every item with a save path shares (to add ``dir``/``out`` to)."""
        if self._shared is None:
            merged = check_options(self._options)
            merged.setdefault("auto-file-renaming", "false")
            self._shared = merged
        return self._shared

    def of(self, save_path: PathArg | None) -> tuple[dict[str, str | list[str]], tuple[str, str] | None]:
        """``(options, place)`` of a download with ``save_path``: the shared options (not to be
        changed) and its ``(dir, out)``; without a save path, :attr:`without_path` and None."""
        if save_path is None:
            return self.without_path, None
        checked = self._checked
        if not checked:
            shared = self.shared
            if "dir" in shared or "out" in shared:
                clash = sorted({"dir", "out"} & shared.keys())
                raise Aria2InputError(
                    f"save_path and options {clash} both say where to write: give one of them"
                )
        directory, name = split_save_path(save_path, self._listing)
        if not checked:  # (after the save path, in download_options' order)
            if "index-out" in self.shared:
                _index_out(self.shared["index-out"])
            self._checked = True
        return self.shared, (self._dirs.setdefault(directory, directory), name)

    @property
    def without_path(self) -> dict[str, str | list[str]]:
        """The options, checked, of the batch's items that have no save path."""
        if self._without_path is None:
            self._without_path = download_options(None, self._options)
        return self._without_path


class _DirectoryListing:
    """Whether paths are existing directories, from one listing per directory.

    A batch's items mostly go to one directory: listing it once (``os.scandir``, whose entries
    know their type without a ``stat`` each) answers for all of them. A directory with more
    than ``limit`` entries is not listed: its paths are asked one by one
    (``os.path.isdir``), so a small batch into a huge directory costs no more than before.
    """

    _FIRST = 16  #: paths asked one by one before a directory is worth listing

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._asked: dict[str, int] = {}
        self._subdirectories: dict[str, frozenset[str] | None] = {}

    def is_dir(self, path: str, parent: str, name: str) -> bool:
        """Whether ``path`` (``name`` in directory ``parent``) is an existing directory."""
        if parent in self._subdirectories:
            names = self._subdirectories[parent]
        else:
            asked = self._asked[parent] = self._asked.get(parent, 0) + 1
            if asked < self._FIRST:
                return os.path.isdir(path)
            names = self._subdirectories[parent] = self._list(parent)
        if names is None:
            return os.path.isdir(path)
        return name in names

    def _list(self, directory: str) -> frozenset[str] | None:
        found = []
        try:
            with os.scandir(directory) as entries:
                for count, entry in enumerate(entries):
                    if count >= self.limit:
                        return None
                    try:
                        if entry.is_dir():  # (follows symbolic links, as os.path.isdir does)
                            found.append(entry.name)
                    except OSError:
                        continue
        except (FileNotFoundError, NotADirectoryError):
            return frozenset()  # nothing in it can be a directory
        except OSError:
            return None  # (not readable, say: ask each path)
        return frozenset(found)


def _inside_dir(key: str, value: str | list[str]) -> str:
    """``value`` if it names a file inside aria2's ``dir``; else a clear error.

    aria2 joins ``dir`` and ``out`` as they are: ``out='../x'`` or ``out='/etc/x'`` would write
    outside the directory the caller (or a web form) chose. Sub-folders (``a/b.bin``) stay
    inside and are kept.
    """
    if not isinstance(value, str):
        raise Aria2InputError(f"option {key!r} takes one file name, not a list")
    if not value.strip():
        raise Aria2InputError(f"option {key!r} is empty: give the name of the file to write")
    if value.startswith(("/", "\\")) or os.path.isabs(value) or re.match(r"[A-Za-z]:", value):
        raise Aria2InputError(
            f"option {key!r} is the absolute path {value!r:.80}: it must be a name inside "
            "'dir' (give save_path for a full path)"
        )
    parts = re.split(r"[/\\]", value)
    if ".." in parts:
        raise Aria2InputError(
            f"option {key!r} = {value!r:.80} climbs out of 'dir' with '..': give a name inside it"
        )
    if value.endswith(("/", "\\")) or posixpath.basename(value) in ("", "."):
        raise Aria2InputError(f"option {key!r} = {value!r:.80} names a directory, not a file")
    return value


def _index_out(value: str | list[str]) -> str | list[str]:
    """Each ``INDEX=PATH`` of aria2's ``index-out`` with PATH confined to ``dir`` like ``out``."""
    items = [value] if isinstance(value, str) else value
    for item in items:
        index, sep, path = item.partition("=")
        if not sep or not index.strip().isdigit():
            raise Aria2InputError(f"option 'index-out' takes INDEX=PATH items, got {item!r:.80}")
        _inside_dir("index-out", path)
    return value
