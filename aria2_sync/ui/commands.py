"""``aria2-sync`` commands that act on a running daemon, as a user of aria2p's CLI expects them.

    aria2-sync add URL... [-d DIR] [--option KEY=VALUE]...    prints the GIDs
    aria2-sync pause GID...|--all        aria2-sync resume GID...|--all
    aria2-sync remove GID... [--delete-files]                  aria2-sync purge
    aria2-sync show [GID...] [--status S] [--json]            a table of what the daemon holds
    aria2-sync call METHOD [PARAM...]                           aria2's answer, as JSON
    aria2-sync options GID [KEY=VALUE...] | --global [KEY=VALUE...] [--json]
    aria2-sync top                                              the live view (ui/top.py)

Each one talks to ``--rpc-url`` with the secret from ``$ARIA2_RPC_SECRET``, through the public
client API only (``cli.py`` turns the errors into one line and the exit code). Everything printed
that came from aria2 is redacted: URL passwords and credential options never reach the terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import Aria2GIDNotFoundError, Aria2RPCError, redact_text
from .common import (
    PROG,
    UsageError,
    add_daemon_arguments,
    daemon_client,
    display_name,
    duration,
    each_once,
    gid_argument,
    key_values,
    redacted,
    rpc_secret,
)
from .formatting import human_size
from .sources import add_all

__all__ = ["add_commands"]

#: ``show --status`` and ``Aria2Client.list_downloads(status=...)``: aria2's status words.
STATES = ("active", "waiting", "paused", "complete", "error", "removed")

#: aria2 methods that live under ``system.``, for ``call`` given a short name.
_SYSTEM_METHODS = ("multicall", "listMethods", "listNotifications")


def add_commands(commands: Any) -> None:
    """Add the daemon commands to ``commands`` (the parser's subparsers)."""
    add = commands.add_parser("add", help="add downloads to a running aria2 daemon; prints their GIDs")
    add.add_argument("urls", nargs="+", metavar="URL", help="URLs, magnet URIs, .torrent or .meta4 files")
    add.add_argument(
        "-d", "--dir", help="directory to save into, on the daemon's host (default: the daemon's)"
    )
    add.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an aria2 option for the downloads, e.g. --option max-download-limit=500K (repeatable)",
    )
    add.set_defaults(run=_add)

    for name, verb in (("pause", "pause"), ("resume", "resume")):
        sub = commands.add_parser(name, help=f"{verb} downloads (or every download with --all)")
        sub.add_argument("gids", nargs="*", type=gid_argument, metavar="GID")
        sub.add_argument("--all", action="store_true", help=f"{verb} every download of the daemon")
        sub.set_defaults(run=_pause if name == "pause" else _resume)

    remove = commands.add_parser("remove", help="stop downloads for good (files stay unless --delete-files)")
    remove.add_argument("gids", nargs="+", type=gid_argument, metavar="GID")
    remove.add_argument(
        "--delete-files",
        action="store_true",
        help="also delete each download's own files and .aria2 control files (a daemon on this machine only)",
    )
    remove.set_defaults(run=_remove)

    purge = commands.add_parser("purge", help="forget the results of finished, failed and removed downloads")
    purge.set_defaults(run=_purge)

    show = commands.add_parser("show", help="a table of the daemon's downloads")
    show.add_argument("gids", nargs="*", type=gid_argument, metavar="GID", help="only these downloads")
    show.add_argument("--status", choices=STATES, help="only the downloads in this state")
    show.add_argument("--json", action="store_true", help="print the downloads as JSON")
    show.set_defaults(run=_show)

    call = commands.add_parser("call", help="call any aria2 RPC method; prints its answer as JSON")
    call.add_argument("method", metavar="METHOD", help="tellStatus, aria2.tellStatus or tell_status")
    call.add_argument(
        "params",
        nargs="*",
        metavar="PARAM",
        help="each parameter as JSON; a word that is not JSON is a string "
        "(quote an all-digits GID: '\"0123...\"')",
    )
    call.set_defaults(run=_call)

    options = commands.add_parser("options", help="show or change the options of a download or of the daemon")
    options.add_argument(
        "words",
        nargs="*",
        metavar="GID [KEY[=VALUE] ...]",
        help="KEY=VALUE changes an option, KEY shows one; none: show them all",
    )
    options.add_argument("--global", dest="is_global", action="store_true", help="the daemon's own options")
    options.add_argument("--json", action="store_true", help="print the options as JSON")
    options.set_defaults(run=_options)

    top = commands.add_parser("top", help="a live, interactive view of the daemon (needs the tui extra)")
    top.add_argument(
        "--interval", type=_interval, default=1.0, metavar="S", help="seconds between refreshes (default: 1)"
    )
    top.set_defaults(run=_top)

    for sub in (
        add,
        *[commands.choices[n] for n in ("pause", "resume")],
        remove,
        purge,
        show,
        call,
        options,
        top,
    ):
        add_daemon_arguments(sub)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("must be between 0.1 and 60 seconds")
    return value


def _print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


# -- add -------------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    extra = key_values(args.option, "--option", "max-download-limit=500K")
    if "dir" in extra:
        raise UsageError("give the directory with -d DIR, not --option dir=...")
    with daemon_client(args) as client:
        # Without -d the downloads go where the daemon saves by default (magnets, torrents and
        # metalinks are given a directory explicitly, so it is asked for).
        directory = os.path.abspath(args.dir) if args.dir else client.get_global_options().get("dir", "")
        items: list[tuple[str, str | None, str | None]] = [(url, None, None) for url in args.urls]
        futures = add_all(client, items, {"dir": directory, **extra}, directory, extra)
        for future in futures:
            print(future.gid)
    return 0


# -- pause, resume, remove, purge ------------------------------------------------------------------


def _each(args: argparse.Namespace, act: Any, done: str) -> int:
    """Apply ``act(client, gid)`` to every GID given; a GID the daemon does not have (or refuses)
    is one line on stderr and exit 1, the others are still acted on."""
    failed = 0
    with daemon_client(args) as client:
        for gid in args.gids:
            try:
                act(client, gid)
            except (Aria2GIDNotFoundError, Aria2RPCError) as error:
                failed += 1
                print(f"{PROG}: {gid}: {redact_text(str(error))}", file=sys.stderr)
            else:
                print(f"{done} {gid}")
    return 1 if failed else 0


def _gids_or_all(args: argparse.Namespace, verb: str) -> None:
    if args.all and args.gids:
        raise UsageError(f"{verb} takes GIDs or --all, not both")
    if not args.all and not args.gids:
        raise UsageError(f"give the GIDs to {verb} (see `{PROG} show`), or --all")


def _switch(args: argparse.Namespace, verb: str) -> int:
    """``pause``/``resume``: the GIDs given, or with ``--all`` every download of the daemon."""
    _gids_or_all(args, verb)
    if args.all:
        with daemon_client(args) as client:
            if verb == "pause":
                client.pause_all()
            else:
                client.resume_all()
        print(f"{verb}d every download")
        return 0
    if verb == "pause":
        return _each(args, lambda client, gid: client.pause_download(gid), "paused")
    return _each(args, lambda client, gid: client.resume_download(gid), "resumed")


def _pause(args: argparse.Namespace) -> int:
    return _switch(args, "pause")


def _resume(args: argparse.Namespace) -> int:
    return _switch(args, "resume")


def _remove(args: argparse.Namespace) -> int:
    done = "removed (files deleted)" if args.delete_files else "removed"
    return _each(args, lambda client, gid: client.cancel_download(gid, delete_files=args.delete_files), done)


def _purge(args: argparse.Namespace) -> int:
    with daemon_client(args) as client:
        finished = client.get_global_stats().num_stopped
        client.purge()
    print(f"purged {finished} finished download{'s' if finished != 1 else ''}")
    return 0


# -- show ------------------------------------------------------------------------------------------

_HEADER = ("GID", "STATUS", "DONE", "SIZE", "SPEED", "ETA", "NAME")


def _show(args: argparse.Namespace) -> int:
    with daemon_client(args) as client:
        downloads = each_once(client.list_downloads(args.status))
    if args.gids:
        held = {p.gid: p for p in downloads}
        missing = [gid for gid in args.gids if gid not in held]
        for gid in missing:
            where = f" with status {args.status}" if args.status else ""
            print(f"{PROG}: the daemon has no download {gid}{where}", file=sys.stderr)
        downloads = [held[gid] for gid in dict.fromkeys(args.gids) if gid in held]
    else:
        missing = []
    if args.json:
        _print_json([redacted(p.to_dict()) for p in downloads])
        return 1 if missing else 0
    rows = [
        (
            p.gid,
            p.status,
            f"{p.progress_percent:.1f}%",
            human_size(p.total_length),
            f"{human_size(p.download_speed)}/s" if p.status == "active" else "-",
            duration(p.eta_seconds) if p.status == "active" else "-",
            redact_text(display_name(p))
            + (f"  (error {p.error_code}: {redact_text(p.error_message or '')})" if p.error_code else ""),
        )
        for p in downloads
    ]
    widths = [max(len(row[n]) for row in [_HEADER, *rows]) for n in range(len(_HEADER) - 1)]
    for row in [_HEADER, *rows]:
        cells = [
            cell.rjust(w) if n in (2, 3, 4, 5) else cell.ljust(w)
            for n, (cell, w) in enumerate(zip(row, widths))
        ]
        print("  ".join([*cells, row[-1]]))
    return 1 if missing else 0


# -- call ------------------------------------------------------------------------------------------


def method_name(name: str) -> str:
    """``tellStatus``, ``tell_status`` and ``aria2.tellStatus`` all mean ``aria2.tellStatus``;
    ``listMethods``, ``multicall`` and ``listNotifications`` are ``system.`` methods."""
    if "." in name:
        return name
    head, *rest = name.split("_")
    camel = head + "".join(word[:1].upper() + word[1:] for word in rest)
    return f"{'system' if camel in _SYSTEM_METHODS else 'aria2'}.{camel}"


def _param(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _call(args: argparse.Namespace) -> int:
    if not args.method.strip() or any(c.isspace() for c in args.method):
        raise UsageError(f"{args.method!r} is not an aria2 method name (like tellStatus)")
    params = [_param(text) for text in args.params]
    with daemon_client(args) as client:
        answer = client.rpc.call(method_name(args.method), *params)
    _print_json(redacted(answer, (rpc_secret(args),)))
    return 0


# -- options ---------------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> int:
    words = list(args.words)
    if args.is_global:
        gid = None
    elif not words:
        raise UsageError("give a GID (see `aria2-sync show`), or --global for the daemon's options")
    else:
        try:
            gid = gid_argument(words.pop(0))
        except argparse.ArgumentTypeError as error:
            raise UsageError(str(error)) from None
    changes = key_values([word for word in words if "=" in word], "options", "max-download-limit=500K")
    asked = [word for word in words if "=" not in word]
    with daemon_client(args) as client:
        if changes:
            if gid is None:
                client.change_global_options(changes)
            else:
                client.change_options(gid, changes)
        held = client.get_global_options() if gid is None else client.get_options(gid)
    # Only what was named (changed or asked for) when anything was; else every option, sorted.
    named = [*asked, *changes]
    shown = {key: held.get(key, "") for key in named} if named else dict(sorted(held.items()))
    shown = redacted(shown, (rpc_secret(args),))
    if args.json:
        _print_json(shown)
    else:
        for key, value in shown.items():
            print(f"{key}={value}")
    return 0


# -- top -------------------------------------------------------------------------------------------


def _top(args: argparse.Namespace) -> int:
    try:
        from . import top
    except ImportError as error:
        if (error.name or "").split(".")[0] not in ("textual", "rich"):
            raise
        raise UsageError("`top` needs the tui extra: pip install 'aria2_sync[tui]'") from None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("`top` is interactive: run it in a terminal (`show` prints the same table once)")
    with daemon_client(args) as client:
        client.get_global_stats()  # (an unreachable daemon or a wrong secret: one line, exit 1)
        return top.run(client, interval=args.interval)
