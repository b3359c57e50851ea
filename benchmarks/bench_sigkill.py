"""sigkill: what a SIGKILL of aria2c mid-download costs, with the daemon's default settings.

Set-up: a 48 MiB file (24 MiB with ``--quick``) served by ``benchmarks/_fileserver.py`` paced at
12 MiB/s, so that a download lasts about 4 s and can be killed at a known point; the server logs
every byte it hands to the socket. A user's program: ``Aria2Client.local(DIR)`` (a supervised
private aria2c with ``Aria2Daemon``'s default settings), ``client.submit(url, path)``. Once
aria2 reports half the file written (``get_progress``, every 20 ms), aria2c is killed with
SIGKILL (``client.daemon.kill()``); the supervisor starts it again with its session, the monitor
re-syncs, and the future resolves. Downloads go once to tmpfs (``/dev/shm``) and once to the
temporary directory when that is on another filesystem (its type is named in the result); three
runs each (one with ``--quick``), killed at 40%, 48% and 57% of the file: a third of a second
apart in the phase of aria2's once-a-second save. Not judged, to show the trade-off: one run on
the first filesystem with ``auto-save-interval=3`` and one with aria2c's own default (60 s),
killed at 85% (3.4 s into the transfer; ``--quick``: the 60 s one only).

* fetched: every byte the server sent for the file, the restart's abandoned size probe
  included, over the file size. The file is checked byte for byte against the served one.
* lost: the bytes fetched twice (fetched - size), as seconds of transfer at the pacing rate. aria2
  writes its ``.aria2`` control file (what has been written) every ``auto-save-interval`` seconds
  (``Aria2Daemon.DEFAULT_SAVE_INTERVAL``), so a kill may lose up to that much progress, plus
  what was in flight.
* judged: the worst run's lost seconds / the save interval (target <= 1.25: the interval, plus a
  quarter of it for bytes in flight and aria2's size probe on restart). fetched/size is stated,
  and depends on the file: losing at most 1 s costs <= 1.05x only on a download of >= 20 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import HERE, ChildProcesses, Deadline, Ratio, Result, log, workdir

NAME = "sigkill"
TITLE = "a SIGKILL of aria2c mid-way through a 48 MiB download: progress fetched again"
MiB = 1 << 20
RATE = 12 * MiB


def _filesystem(path: str) -> str:
    """The type of the filesystem ``path`` is on (from /proc/mounts), or "unknown"."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts") as handle:
            for line in handle:
                fields = line.split()
                if (
                    len(fields) > 2
                    and os.path.realpath(path).startswith(fields[1])
                    and len(fields[1]) > len(best)
                ):
                    best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * MiB), b""):
            sha.update(block)
    return sha.hexdigest()


def _served(log_path: str, name: str) -> int:
    """The bytes the server sent for ``name``, once every body it began has ended (the last one
    is logged just after aria2 has the last byte; an abandoned one when the server sees it)."""
    deadline = Deadline(10, f"the server's log of {name}")
    while True:
        with open(log_path) as handle:
            entries = [entry for entry in map(json.loads, handle) if entry["file"] == name]
        ended = [entry["sent"] for entry in entries if "sent" in entry]
        if len(ended) * 2 == len(entries):
            return sum(ended)
        deadline.check()
        time.sleep(0.02)


def _one_run(
    port: int, log_path: str, name: str, size: int, directory: str, kill_at: float, interval: int
) -> dict[str, float]:
    from aria2_sync import Aria2Client, Aria2Daemon

    target = os.path.join(directory, name)
    options = {} if interval == Aria2Daemon.DEFAULT_SAVE_INTERVAL else {"auto-save-interval": interval}
    with Aria2Client.local(directory, supervise=True, retry_delay=0, aria2_options=options) as client:
        daemon = client.daemon
        assert daemon is not None
        future = client.submit(f"http://127.0.0.1:{port}/{name}", target)
        deadline = Deadline(60, f"{name} reaching {kill_at:.0%}")
        written = 0
        while written < kill_at * size:
            deadline.check()
            written = client.get_progress(future.gid).completed_length
            time.sleep(0.02)
        daemon.kill()
        killed = time.monotonic()
        result = future.result(timeout=120)
        restarts = daemon.restarts
    if result.size != size:
        raise RuntimeError(f"{name}: {result.size} bytes instead of {size}")
    return {
        "served": _served(log_path, name),
        "written_at_kill": written,
        "restarts": restarts,
        "after_kill": time.monotonic() - killed,
        "interval": float(interval),
    }


def run(quick: bool) -> Result:
    from aria2_sync import Aria2Daemon

    size = (24 if quick else 48) * MiB
    repeats = 1 if quick else 3
    others = [60] if quick else [3, 60]  # not judged: other intervals, on the first filesystem
    interval = Aria2Daemon.DEFAULT_SAVE_INTERVAL
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    places = {}
    if shm:
        places[_filesystem(shm)] = shm
    disk = tempfile.gettempdir()
    places.setdefault(_filesystem(disk), disk)
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in places}
    with workdir(NAME, shm) as root, ChildProcesses() as children:
        served = os.path.join(root, "served")
        os.makedirs(served)
        names = [f"file{n}.bin" for n in range(repeats * len(places) + len(others))]
        block = os.urandom(MiB)
        for n, name in enumerate(names):
            with open(os.path.join(served, name), "wb") as handle:
                for index in range(size // MiB):
                    handle.write(n.to_bytes(4, "big") + index.to_bytes(4, "big") + block[8:])
        digest = {name: _digest(os.path.join(served, name)) for name in names}
        log_path = os.path.join(root, "served.log")
        server = children.start(
            [
                sys.executable,
                os.path.join(HERE, "_fileserver.py"),
                served,
                "--log",
                log_path,
                "--rate",
                str(RATE),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the file server did not start: {line!r}")
        port = int(line.split()[1])
        todo = iter(names)

        def one(kind: str, base: str, kill_at: float, every: int) -> dict[str, float]:
            name = next(todo)
            log(f"{NAME}: {kind}, auto-save-interval={every}, kill at {kill_at:.0%}")
            with workdir(f"{NAME}-dl", base) as directory:
                stats = _one_run(port, log_path, name, size, directory, kill_at, every)
                if _digest(os.path.join(directory, name)) != digest[name]:
                    raise RuntimeError(f"{kind}: the resumed file differs from the served one")
                if stats["restarts"] < 1:
                    raise RuntimeError(f"{kind}: the supervisor did not restart aria2c")
            return stats

        for repeat in range(repeats):
            for kind, base in places.items():
                # 12 MiB/s: 1/4 of the file a second, so the kills fall a third of a second apart
                # in the phase of aria2's once-a-second save.
                runs[kind].append(one(kind, base, 0.4 + 0.25 * repeat / repeats, interval))
        first_kind, first_base = next(iter(places.items()))
        other_runs = {every: one(first_kind, first_base, 0.85, every) for every in others}
        children.stop(server)

    def lost_seconds(stats: dict[str, float]) -> float:
        return (stats["served"] - size) / RATE

    every = [stats for kind in runs for stats in runs[kind]]
    worst = max(lost_seconds(stats) for stats in every)
    ratio = Ratio("worst progress lost / save interval", worst / interval, "<=", 1.25)
    per_fs = "; ".join(
        f"{kind}: fetched "
        + ", ".join(f"{stats['served'] / size:.3f}x" for stats in runs[kind])
        + " of the size (lost "
        + ", ".join(f"{lost_seconds(stats):.2f} s" for stats in runs[kind])
        + ")"
        for kind in runs
    )
    total = sum(stats["served"] for stats in every) / (size * len(every))
    return Result(
        name=NAME,
        what=TITLE if not quick else f"a SIGKILL of aria2c mid-way through a {size // MiB} MiB download",
        ours=(
            f"default settings (auto-save-interval={interval}): fetched {total:.3f}x of the size on "
            f"average, worst loss {worst:.2f} s of transfer at {RATE // MiB} MiB/s; every file intact"
        ),
        baselines=[
            ("the save interval (what a kill may lose, by aria2's design)", f"{interval} s"),
        ]
        + [
            (
                f"not judged: auto-save-interval={every}"
                + (" (aria2c's own default)" if every == 60 else "")
                + f", {first_kind}, kill at 85%",
                f"fetched {stats['served'] / size:.3f}x of the size (lost {lost_seconds(stats):.2f} s)",
            )
            for every, stats in other_runs.items()
        ],
        ratios=[ratio],
        target="<= 1.25 x the save interval lost per SIGKILL, the file intact",
        notes=[
            per_fs,
            "resume after the kill (restart, re-sync, rest of the file): "
            + ", ".join(f"{stats['after_kill']:.2f} s" for stats in every),
            f"filesystems: {', '.join(f'{kind} ({path})' for kind, path in places.items())}",
        ],
    )
