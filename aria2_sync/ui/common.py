"""What every ``aria2-sync`` command shares: the daemon options, the secret, the client for a
daemon of the user's, one-line usage errors, and the redaction and formatting of what is shown.

Kept apart from ``cli.py`` (the parser and the dispatch) so that the command modules beside it
(``commands.py``, ``top.py``) use the same conventions without importing the dispatcher.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Sequence
from typing import Any

from .. import Aria2Client
from ..errors import redact_text
from ..models import Progress

__all__ = [
    "DEFAULT_RPC_URL",
    "PROG",
    "SECRET_ENV",
    "UsageError",
    "key_values",
    "add_ca_argument",
    "add_daemon_arguments",
    "daemon_client",
    "display_name",
    "duration",
    "each_once",
    "gid_argument",
    "redacted",
    "rpc_secret",
]

PROG = "aria2-sync"
SECRET_ENV = "ARIA2_RPC_SECRET"
DEFAULT_RPC_URL = "http://localhost:6800/jsonrpc"

_GID = re.compile(r"[0-9a-fA-F]{16}")


class UsageError(Exception):
    """A command line that cannot be run as given (exit code 2)."""


def rpc_secret(args: argparse.Namespace) -> str | None:
    """The secret for ``--rpc-url``: the option (where the command has one), else ``$ARIA2_RPC_SECRET``.

    The variable only counts when a daemon is named: exported for one daemon, it must not
    stop ``get`` from running on its private aria2c (which has a secret of its own).
    """
    given = getattr(args, "rpc_secret", None)
    if given is not None:
        return str(given)
    if not args.rpc_url:
        return None
    return os.environ.get(SECRET_ENV) or None


def add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    """``--rpc-url`` for the commands that act on a running daemon; the secret comes from
    ``$ARIA2_RPC_SECRET`` only, so that it is never in the process list or a shell history."""
    parser.add_argument(
        "--rpc-url",
        default=DEFAULT_RPC_URL,
        metavar="URL",
        help=f"aria2's JSON-RPC URL (default: {DEFAULT_RPC_URL}); its secret is read from ${SECRET_ENV}",
    )
    add_ca_argument(parser)


def add_ca_argument(parser: argparse.ArgumentParser) -> None:
    """``--rpc-ca-file``: what an ``https://`` daemon's certificate is checked against."""
    parser.add_argument(
        "--rpc-ca-file",
        default=None,
        metavar="PEM",
        help="for an https:// --rpc-url (aria2c --rpc-secure): the CA that signed the daemon's "
        "certificate, or the certificate itself (default: the CAs requests trusts)",
    )


def daemon_client(args: argparse.Namespace) -> Aria2Client:
    """A client on the user's daemon for one command: no monitor (the command watches nothing),
    one quick transport retry, and no log lines (the command says what happened itself)."""
    return Aria2Client(
        args.rpc_url,
        rpc_secret(args),
        verbose=False,
        monitor=False,
        max_retries=1,
        retry_delay=0.2,
        rpc_ca_file=args.rpc_ca_file,
    )


def key_values(words: Sequence[str], what: str, example: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` -> ``{"a": "1", "b": "2"}``; a word without ``=`` is a usage error
    naming ``what`` takes it (``-O``, ``--option``), with ``example``."""
    pairs = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} takes KEY=VALUE (like {example}), got {word!r}")
        pairs[key.strip()] = value
    return pairs


def gid_argument(text: str) -> str:
    """An argparse type: a GID as aria2 writes it (16 hex digits), checked before anything is sent."""
    if not _GID.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a GID (16 hex digits, as `show` lists them)")
    return text.lower()


def redacted(value: Any, secrets: tuple[str | None, ...] = ()) -> Any:
    """``value`` (JSON-like) with every string passed through :func:`redact_text`, and the value
    of every key that names a credential (``*passwd*``, ``*secret*``) masked whatever it looks like."""
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {
            key: "***" if _names_a_credential(key) and value[key] else redacted(item, secrets)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item, secrets) for item in value]
    return value


def _names_a_credential(key: Any) -> bool:
    return isinstance(key, str) and ("passwd" in key.lower() or "secret" in key.lower())


def each_once(downloads: list[Progress]) -> list[Progress]:
    """``downloads`` with each GID once, in the order first seen, as last seen.

    ``Aria2Client.list_downloads`` asks for the active, the waiting and the stopped downloads
    in turn: one that changes state in between (paused just then) is in two of the answers.
    """
    latest = {progress.gid: progress for progress in downloads}
    return list(latest.values())


def display_name(progress: Progress) -> str:
    """What to call a download in a table: its file's name, else its first URI (redacted)."""
    if progress.file_path:
        return os.path.basename(progress.file_path) or progress.file_path
    for info in progress.files:
        if info.uris:
            return redact_text(info.uris[0])
    return "?"


def duration(seconds: float | None) -> str:
    """``3725`` -> ``1h02m``; ``65`` -> ``1m05s``; ``None`` (unknown) -> ``-``."""
    if seconds is None or seconds != seconds or seconds == float("inf") or seconds < 0:
        return "-"
    whole = int(seconds)
    if whole >= 86400:
        return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
