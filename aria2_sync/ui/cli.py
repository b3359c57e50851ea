"""``aria2-sync``: download files from the command line, surviving failures.

    aria2-sync get URL [URL ...] [-d DIR] [-o NAME] [-i FILE] [--max-retries N] ...
    aria2-sync status [--rpc-url URL] [--json]
    aria2-sync add|pause|resume|remove|purge|show|call|options|top ...   (ui/commands.py)

``get`` runs on a private aria2c started for the run (the embedded default) unless ``--rpc-url``
names a daemon. Exit codes: 0 when every download succeeded, 1 when any failed (or the daemon
could not be used), 2 for usage errors, 130 when interrupted. Expected errors are one line on
stderr, never a traceback. Built only on the public library API. This module is the parser and
the dispatch; the commands on a running daemon are in ``commands.py`` (the live view in ``top.py``),
and what they all share in ``common.py``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .. import Aria2Client, __version__
from ..errors import Aria2Error, Aria2InputError, redact_text
from ..models import STATUS_KEYS, Progress
from .commands import add_commands
from .common import (
    PROG,
    SECRET_ENV,
    UsageError,
    add_ca_argument,
    daemon_client,
    key_values,
    redacted,
    rpc_secret,
)
from .formatting import human_size, outcome_entry
from .progress_display import make_display
from .sources import add_all

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``aria2-sync`` command line, as :mod:`argparse` sees it: what :func:`main` parses, and
    what the documentation's CLI reference is generated from (``docs/_ext/cli_reference.py``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Download files with aria2, restarting failed downloads and resuming them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    get = commands.add_parser("get", help="download URLs (on a private aria2c unless --rpc-url)")
    get.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        help="http(s), ftp or sftp URLs, magnet URIs, .torrent and .meta4/.metalink files or URLs",
    )
    get.add_argument("-d", "--dir", default=".", help="directory to save into (default: here)")
    get.add_argument("-o", "--output", metavar="NAME", help="file name (with a single URL only)")
    get.add_argument(
        "--checksum",
        metavar="ALGO=HEX",
        help="verify the file (one URL only), e.g. sha-256=<64 hex digits>; a mismatch fails it "
        "(algorithms: sha-1, sha-224, sha-256, sha-384, sha-512, md5, adler32)",
    )
    get.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        help="read URLs from FILE, one per line ('-' for stdin; # starts a comment)",
    )
    get.add_argument(
        "--max-retries",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="restarts per download and transport retries (default: 3)",
    )
    get.add_argument(
        "--retry-delay",
        type=_non_negative_float,
        default=1.0,
        metavar="S",
        help="base of the exponential backoff in seconds (default: 1.0)",
    )
    get.add_argument(
        "-O",
        "--aria2-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an aria2 option for every download, e.g. -O max-connection-per-server=4",
    )
    get.add_argument(
        "--save-interval",
        type=_save_interval,
        default=None,
        metavar="S",
        help="the private aria2c saves what each download has written every S seconds: what "
        "killing it may lose (default: 1; more spares a disk an fsync a second; 0: only on exit)",
    )
    _add_rpc_arguments(get)
    get.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    get.add_argument("-q", "--quiet", action="store_true", help="print nothing but failures")
    get.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show progress bars even when stderr is not a terminal",
    )
    get.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    get.set_defaults(run=_get)

    status = commands.add_parser("status", help="what a running aria2 daemon is doing")
    _add_rpc_arguments(status, default_url="http://localhost:6800/jsonrpc")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(run=_status)
    add_commands(commands)
    return parser


def _add_rpc_arguments(parser: argparse.ArgumentParser, default_url: str | None = None) -> None:
    parser.add_argument(
        "--rpc-url",
        default=default_url,
        metavar="URL",
        help="aria2's JSON-RPC URL, e.g. http://127.0.0.1:6800/jsonrpc"
        + ("" if default_url else " (default: start a private aria2c)"),
    )
    parser.add_argument(
        "--rpc-secret",
        default=None,
        metavar="S",
        help=f"aria2's --rpc-secret (default: ${SECRET_ENV} when a daemon is named "
        "with --rpc-url; the variable keeps it out of the process list)",
    )
    add_ca_argument(parser)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _save_interval(text: str) -> int:
    value = _non_negative_int(text)
    if value > 600:
        raise argparse.ArgumentTypeError("must be 600 (seconds) or less")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number, 0 or more")
    return value


# -- get -------------------------------------------------------------------------------------------


def _read_urls(path: str | None) -> list[str]:
    if path is None:
        return []
    try:
        handle = sys.stdin if path == "-" else open(path, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read URL file {path!r}: {error.strerror}") from None
    try:
        with handle if handle is not sys.stdin else _NoClose(handle) as lines:
            return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise UsageError(
            f"URL file {path!r} is not text (UTF-8): give a file with one URL per line"
        ) from None
    except OSError as error:  # a directory, an unreadable device...
        raise UsageError(f"cannot read URL file {path!r}: {error.strerror or error}") from None


class _NoClose:
    def __init__(self, handle: TextIO) -> None:
        self.handle = handle

    def __enter__(self) -> TextIO:
        return self.handle

    def __exit__(self, *exc_info: Any) -> None:
        pass


def _get(args: argparse.Namespace) -> int:
    urls = list(args.urls) + _read_urls(args.input_file)
    if not urls:
        raise UsageError("give at least one URL, or -i FILE")
    if args.output and len(urls) != 1:
        raise UsageError("-o NAME names one file: give exactly one URL with it")
    if args.checksum and len(urls) != 1:
        raise UsageError("--checksum is the hash of one file: give exactly one URL with it")
    if args.rpc_secret and not args.rpc_url:
        raise UsageError("--rpc-secret goes with --rpc-url (a private aria2c has its own secret)")
    if args.rpc_ca_file and not args.rpc_url:
        raise UsageError(
            "--rpc-ca-file goes with an https:// --rpc-url (a private aria2c speaks http on loopback)"
        )
    if args.save_interval is not None and args.rpc_url:
        raise UsageError("--save-interval is for the private aria2c; a daemon of yours has its own settings")
    directory = os.path.abspath(args.dir)
    _check_directory(directory, args.dir)
    extra = key_values(args.aria2_option, "-O", "max-connection-per-server=4")
    if args.output:
        items = [(urls[0], os.path.join(directory, args.output), args.checksum)]
        options = extra
    else:
        items = [(url, None, args.checksum) for url in urls]
        options = {"dir": directory, **extra}

    settings: dict[str, Any] = dict(max_retries=args.max_retries, retry_delay=args.retry_delay, verbose=False)
    if args.rpc_url:
        client = Aria2Client(args.rpc_url, rpc_secret(args), rpc_ca_file=args.rpc_ca_file, **settings)
    else:
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create -d {args.dir!r}: {error.strerror or error}") from None
        daemon_options = {} if args.save_interval is None else {"auto-save-interval": args.save_interval}
        client = Aria2Client.local(directory, aria2_options=daemon_options, **settings)
    interrupted = False
    try:
        futures = add_all(client, items, options, directory, extra)
        gids = [future.gid for future in futures]
        show = args.progress if args.progress is not None else sys.stderr.isatty()
        display = make_display(enabled=show and not args.quiet and not args.json, stream=sys.stderr)
        try:
            while True:
                done, pending = concurrent.futures.wait(futures, timeout=0.25)
                display.update(client.get_downloads_progress(gids))
                if not pending:
                    break
        finally:
            display.close()
        outcomes = [outcome_entry(url, future) for (url, *_), future in zip(items, futures)]
    except KeyboardInterrupt:
        interrupted = True
        print(
            f"{PROG}: interrupted; stopping. Partial files are kept and resume when you run "
            "the same command again.",
            file=sys.stderr,
        )
        return 130
    finally:
        # A private daemon is stopped gracefully (control files saved); on a daemon of yours,
        # an interrupted run removes its downloads (their partial files stay resumable).
        client.close(cancel=interrupted and client.daemon is None)
    return _report(outcomes, args)


def _check_directory(directory: str, given: str) -> None:
    """Refuse a ``-d`` that can never be a directory (a file, or a path through a file)."""
    probe = directory
    while not os.path.lexists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent
    if not os.path.isdir(probe):
        what = "is a file" if probe == directory else f"goes through {probe!r}, which is a file"
        raise UsageError(f"-d {given!r} {what}, not a directory")


def _report(outcomes: list[dict[str, Any]], args: argparse.Namespace) -> int:
    failed = [o for o in outcomes if o["status"] != "complete"]
    if args.json:
        document = {
            "ok": not failed,
            "completed": len(outcomes) - len(failed),
            "failed": len(failed),
            "downloads": outcomes,
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for outcome in outcomes:
            if outcome["status"] == "complete" and not args.quiet:
                restarts = f", {outcome['retry_count']} restarts" if outcome["retry_count"] else ""
                print(f"ok      {outcome['path']} ({human_size(outcome['size'])}{restarts})")
        for outcome in failed:
            print(f"FAILED  {outcome['url']}: {outcome['error']}", file=sys.stderr)
        if not args.quiet:
            total = sum(o["size"] for o in outcomes)
            restarts = sum(o["retry_count"] for o in outcomes)
            print(
                f"{len(outcomes) - len(failed)} downloaded ({human_size(total)}), "
                f"{len(failed)} failed, {restarts} restarts"
            )
    return 1 if failed else 0


# -- status ----------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    keys = list(STATUS_KEYS)
    with daemon_client(args) as client:
        answers: list[Any] = client.rpc.multicall(
            [
                ("aria2.getVersion", []),
                ("aria2.getGlobalStat", []),
                ("aria2.tellActive", [keys]),
                ("aria2.tellWaiting", [0, 1000, keys]),
                ("aria2.tellStopped", [0, 1000, keys]),
            ]
        )
    for answer in answers:
        if isinstance(answer, Aria2Error):
            raise answer
    version, stats, active, waiting, stopped = answers
    for method, answer in (("aria2.getVersion", version), ("aria2.getGlobalStat", stats)):
        if not isinstance(answer, dict):
            raise client.rpc.unreadable(method, f"a {type(answer).__name__} instead of a JSON object")
    downloads = []
    for method, items in (
        ("aria2.tellActive", active),
        ("aria2.tellWaiting", waiting),
        ("aria2.tellStopped", stopped),
    ):
        if not isinstance(items, list):
            raise client.rpc.unreadable(method, f"a {type(items).__name__} instead of a list")
        downloads += [Progress.from_aria2(client.rpc.checked_status(method, item)) for item in items]
    if args.json:
        json.dump(
            {
                "version": version.get("version"),
                "download_speed": int(stats.get("downloadSpeed", 0)),
                "num_active": int(stats.get("numActive", 0)),
                "num_waiting": int(stats.get("numWaiting", 0)),
                "num_stopped": int(stats.get("numStopped", 0)),
                "downloads": [redacted(p.to_dict()) for p in downloads],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    print(
        f"aria2 {version.get('version')}: {stats.get('numActive')} active, "
        f"{stats.get('numWaiting')} waiting, {stats.get('numStopped')} stopped, "
        f"{human_size(int(stats.get('downloadSpeed', 0)))}/s"
    )
    for p in downloads:
        name = (
            os.path.basename(p.file_path)
            if p.file_path
            else (p.files[0].uris[0] if p.files and p.files[0].uris else "?")
        )
        name = redact_text(name)
        error = f"  error {p.error_code}: {redact_text(p.error_message or '')}" if p.error_code else ""
        print(
            f"{p.gid}  {p.status:<8} {p.progress_percent:5.1f}%  {human_size(p.total_length):>10}  "
            f"{human_size(p.download_speed):>9}/s  {name}{error}"
        )
    return 0


# -- entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on a malformed command line
    # An application may set up logging; this one keeps urllib3's retry chatter off the
    # terminal (the command reports connection problems itself, in one line).
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        return int(args.run(args))
    except UsageError as error:
        parser.exit(2, f"{PROG}: error: {error}\n")
    except Aria2InputError as error:
        parser.exit(2, f"{PROG}: error: {redact_text(str(error))}\n")
    except Aria2Error as error:
        print(f"{PROG}: {redact_text(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
