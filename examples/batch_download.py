"""Download a list of URLs as one batch: the seed guide's batch scenario as a script for cron.

    python examples/batch_download.py URLS_FILE -d DIR [--rpc-url URL] [--max-retries N]
                                      [--timeout SECONDS] [-q]

URLS_FILE holds one URL per line; blank lines and lines starting with ``#`` are skipped, and
``-`` reads standard input. Every file goes into DIR under its own name.

Without ``--rpc-url`` a private aria2c is started for the run (on 127.0.0.1, with a random
secret) and stopped after it. With ``--rpc-url`` the secret is read from ``$ARIA2_RPC_SECRET``,
never from the command line, where any user can read it in the process list.

Failed downloads are restarted and resumed up to ``--max-retries`` times each (default 3). A run
that is killed or times out keeps its partial files: the next run with the same URLs and DIR
resumes them. ``--timeout`` bounds the whole run, so a stuck server cannot make cron runs pile up.

Everything is logged to stderr with timestamps (stdout stays empty); ``-q`` logs only failures,
so cron mails you only when something went wrong. Exit status: 0 when every file was
downloaded, 1 when any failed (or the daemon could not be used, or the timeout passed), 2 on a
usage error (bad arguments, an unreadable or empty URLs file, a malformed URL), 130 when
interrupted or terminated (SIGTERM).

A crontab line::

    17 3 * * *  cd /srv/mirror && python examples/batch_download.py urls.txt -d data -q
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from aria2_sync import Aria2Client, Aria2Error, Aria2InputError, DownloadFailed
from aria2_sync.errors import redact_text, redact_url

SECRET_ENV = "ARIA2_RPC_SECRET"
#: How often a long run logs where it stands (seconds).
PROGRESS_EVERY = 60.0

log = logging.getLogger("batch_download")


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


class TimedOut(Exception):
    """``--timeout`` passed with downloads unfinished (exit status 1)."""


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Download the URLs listed in a file as one batch, restarting and resuming "
        "failed downloads. Exit status: 0 all downloaded, 1 any failed, 2 usage error.",
    )
    parser.add_argument("urls_file", metavar="URLS_FILE", help="one URL per line ('-' for stdin)")
    parser.add_argument("-d", "--dir", required=True, help="directory to save the files into")
    parser.add_argument(
        "--rpc-url",
        metavar="URL",
        help=f"a running aria2's JSON-RPC URL (secret from ${SECRET_ENV}); "
        "default: start a private aria2c for this run",
    )
    parser.add_argument(
        "--max-retries", type=int, default=3, metavar="N", help="restarts per failed download (default: 3)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up on what is unfinished after this long (default: no limit)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="log failures only")
    args = parser.parse_args(argv)  # exits with status 2 on a malformed command line
    if args.max_retries < 0:
        parser.error("--max-retries must be 0 or more")
    if args.timeout is not None and not args.timeout > 0:
        parser.error("--timeout must be a positive number of seconds")
    return args


def read_urls(path: str) -> list[str]:
    try:
        if path == "-":
            lines = sys.stdin.read().splitlines()
        else:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
    except OSError as error:
        raise UsageError(f"cannot read the URLs file {path!r}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"the URLs file {path!r} is not UTF-8 text") from None
    urls = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not urls:
        raise UsageError(f"no URLs in {path!r}: one URL per line expected")
    return urls


def human_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def open_client(args: argparse.Namespace, directory: str) -> Aria2Client:
    # verbose=False: the library's lines reach stderr through the logging set up in main().
    settings = dict(max_retries=args.max_retries, verbose=False)
    if args.rpc_url:
        return Aria2Client(args.rpc_url, os.environ.get(SECRET_ENV) or None, **settings)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:  # e.g. -d /dev/null/x: a path through a file
        raise UsageError(f"cannot create -d {args.dir!r}: {error.strerror or error}") from None
    return Aria2Client.local(directory, **settings)


def report(future: concurrent.futures.Future, url: str) -> bool:
    """Log how one download ended; True if its file is there."""
    try:
        result = future.result(timeout=0)
    except DownloadFailed as failure:
        log.error("FAILED %s: %s", failure.url, redact_text(failure.reason))
        return False
    except concurrent.futures.CancelledError:
        log.error("FAILED %s: cancelled", redact_url(url))
        return False
    except Aria2Error as error:
        log.error("FAILED %s: %s", redact_url(url), redact_text(str(error)))
        return False
    restarts = f", {result.retry_count} restarts" if result.retry_count else ""
    log.info("ok %s (%s%s)", result.path, human_size(result.size), restarts)
    return True


def download(client: Aria2Client, urls: list[str], directory: str, timeout: float | None) -> int:
    batch_id = client.add_batch_downloads([(url, None) for url in urls], options={"dir": directory})
    futures = client.batch_futures(batch_id)
    log.info("downloading %d files into %s", len(urls), directory)
    url_of: dict[concurrent.futures.Future, str] = dict(zip(futures, urls))
    pending: set[concurrent.futures.Future] = set(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    failed, next_report = 0, time.monotonic() + PROGRESS_EVERY
    while pending:
        wait = PROGRESS_EVERY if deadline is None else min(PROGRESS_EVERY, deadline - time.monotonic())
        if wait <= 0:
            raise TimedOut(
                f"timed out after {timeout:g} s with {len(pending)} of {len(futures)} "
                "downloads unfinished (the next run resumes them)"
            )
        done, pending = concurrent.futures.wait(
            pending, timeout=wait, return_when=concurrent.futures.FIRST_COMPLETED
        )
        failed += sum(not report(future, url_of[future]) for future in done)
        if pending and time.monotonic() >= next_report:
            next_report = time.monotonic() + PROGRESS_EVERY
            progress = client.get_batch_progress(batch_id)
            if progress is not None:
                log.info(
                    "%.0f%% of %s so far, %d/%d files, %s/s",
                    progress.progress_percent,
                    human_size(progress.total_length),
                    progress.completed_count,
                    progress.total_count,
                    human_size(progress.download_speed),
                )
    results = [f.result() for f in futures if not f.cancelled() and f.exception() is None]
    total = sum(result.size for result in results)
    restarts = sum(result.retry_count for result in results)
    (log.error if failed else log.info)(
        "%d downloaded (%s), %d failed, %d restarts", len(results), human_size(total), failed, restarts
    )
    return 1 if failed else 0


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # killed (cron, systemd, timeout): stop cleanly, as for Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(
        level=logging.ERROR if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    signal.signal(signal.SIGTERM, _terminate)
    directory = os.path.abspath(args.dir)
    client = None
    stopped_early = False
    try:
        urls = read_urls(args.urls_file)
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise UsageError(f"-d {args.dir!r} is a file, not a directory")
        client = open_client(args, directory)
        return download(client, urls, directory, args.timeout)
    except (UsageError, Aria2InputError) as error:  # also a malformed URL: nothing was added
        log.error("%s", redact_text(str(error)))
        return 2
    except TimedOut as error:
        stopped_early = True
        log.error("%s", redact_text(str(error)))
        return 1
    except Aria2Error as error:  # no aria2c, or the daemon could not be used (down, wrong secret)
        log.error("%s", redact_text(str(error)))
        return 1
    except KeyboardInterrupt:
        stopped_early = True
        log.error("interrupted: partial files are kept, and the next run resumes them")
        return 130
    finally:
        # A private aria2c is stopped (its control files saved). On a daemon of yours, a run
        # that stops early removes its downloads; their partial files stay, to be resumed.
        if client is not None:
            client.close(cancel=stopped_early and client.daemon is None)


if __name__ == "__main__":
    sys.exit(main())
