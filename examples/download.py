"""Download the URLs given on the command line with a private aria2c, then exit.

    python examples/download.py URL [URL ...] [-d DIR]

The daemon is started for this run and stopped at the end; nothing needs to be running before.
"""

import argparse
import sys
import time

from aria2_sync import Aria2Client, Aria2Daemon, Aria2Error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("-d", "--dir", default=".", help="where to save (default: here)")
    args = parser.parse_args()
    try:
        with Aria2Daemon(download_dir=args.dir) as daemon:
            with Aria2Client(daemon.rpc_url, daemon.secret) as client:
                gids = [client.add_download(url, options={"dir": args.dir}) for url in args.urls]
                failed = 0
                for gid in gids:
                    while True:
                        progress = client.get_progress(gid)
                        if progress is None or progress.status in ("complete", "error", "removed"):
                            break
                        time.sleep(0.5)
                    if progress and progress.status == "complete":
                        print(f"done: {progress.file_path} ({progress.total_length} bytes)")
                    else:
                        failed += 1
                        reason = progress.error_message if progress else "unknown download"
                        print(f"failed: {gid}: {reason}", file=sys.stderr)
                return 1 if failed else 0
    except Aria2Error as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
