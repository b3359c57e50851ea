"""torrent: bytes fetched to finish a torrent whose only seeder dies twice mid-download.

Set-up (all on 127.0.0.1, DHT/LPD/PEX off): our HTTP tracker (tests/support/bittorrent.py), one
seeder aria2c limited to 1 MiB/s (256 KiB/s with ``--quick``) so that it can be killed
mid-transfer, and the daemon under test (``leecher_options()``). A random 8 MiB single-file
torrent (2 MiB with ``--quick``), 16 KiB pieces.

* ours: ``client.submit_torrent(data, dir).result()``; the seeder is SIGKILLed (no ``stopped``
  announce) once the client reports 30% and again at 65%, and started again on the same port
  after each kill (the same data, ``bt-seed-unverified``).
* floor: the torrent's size, the least any client can fetch.

Counted: the payload bytes the seeder's aria2c uploaded for this torrent, its ``uploadLength``
read just before each SIGKILL and at the end, summed over its three lives (one seeder, so every
byte the leecher fetched came from it; BitTorrent protocol overhead and the metadata are not
counted). The final file is checked byte for byte.
"""

from __future__ import annotations

import os
import time

from _common import Ratio, Result, log, wait_until, workdir

NAME = "torrent"
TITLE = "bytes fetched to finish a torrent whose seeder dies twice (8 MiB)"
MiB = 1 << 20


def run(quick: bool) -> Result:
    from pathlib import Path

    from aria2_sync import Aria2Client
    from aria2_sync.daemon.process import Aria2Daemon
    from tests.support.bittorrent import Seeder, Tracker, leecher_options, make_torrent

    size = (2 if quick else 8) * MiB
    limit = (256 * 1024) if quick else MiB
    content = os.urandom(size)
    with workdir(NAME) as root:
        tracker = Tracker()
        tracker.start()
        seeder = Seeder(Path(root) / "seeder", upload_limit=limit)
        state = Path(root) / "state"
        state.mkdir(mode=0o700)
        aria2 = Aria2Daemon(
            download_dir=Path(root) / "dl", state_dir=state, options=leecher_options()
        ).start()
        try:
            torrent = make_torrent(Path(root) / "t", "payload.bin", content, [tracker.announce_url])
            seeder.start()
            seeder.seed(torrent)
            uploaded = 0
            started = time.monotonic()
            with Aria2Client(aria2.rpc_url, aria2.secret, verbose=False, poll_interval=0.1) as client:
                directory = str(aria2.download_dir)
                future = client.submit_torrent(torrent.data, directory)
                for share in (0.30, 0.65):
                    wait_until(
                        lambda share=share: client.get_progress(future.gid).completed_length >= share * size,
                        120,
                        f"{share:.0%} of the payload",
                        pause=0.02,
                    )
                    uploaded += seeder.uploaded(torrent)
                    log(f"{NAME}: killing the seeder at {share:.0%} ({uploaded} bytes uploaded so far)")
                    seeder.kill()
                    seeder.start()
                result = future.result(timeout=180)
                uploaded += seeder.uploaded(torrent)
            seconds = time.monotonic() - started
            with open(os.path.join(directory, "payload.bin"), "rb") as file:
                intact = file.read() == content
        finally:
            seeder.stop()
            aria2.stop()
            tracker.stop()
    ratio = uploaded / size
    return Result(
        name=NAME,
        what=TITLE if not quick else TITLE.replace("8 MiB", f"{size // MiB} MiB"),
        ours=(
            f"{uploaded} bytes uploaded by the seeder over its 3 lives for a {size}-byte payload "
            f"({ratio:.4f}x), {seconds:.1f} s, retry_count {result.retry_count}, "
            f"file {'intact' if intact else 'CORRUPT'}"
        ),
        baselines=[("floor", f"{size} bytes (the payload once)")],
        ratios=[Ratio("bytes fetched / payload size", ratio if intact else float("inf"), "<=", 1.05)],
        target="<= 1.05x the payload, the file intact",
        notes=[
            "counted: the seeder's uploadLength for the torrent, read before each SIGKILL and at the end",
        ],
    )
