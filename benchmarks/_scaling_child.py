"""The client process of the ``scaling`` benchmark (run by bench_scaling.py, not by hand).

    ARIA2_RPC_SECRET=... python benchmarks/_scaling_child.py RPC_PORT BASE_URL DIR COUNT REPEATS OUT.json

A fresh interpreter (so that its RSS is this size's alone): a client whose monitor thread is
stopped (its ticks are this script's), notes its RSS, adds COUNT paused downloads in one batch,
then interleaves REPEATS of: one full monitor tick (``Monitor.tick`` with every parked download
due: the monitor's read of all of them), and the raw floors. Notes each tick's wall and CPU time
(``time.process_time``: this process, all threads), the raw floors (with the cyclic GC paused:
a raw client holds no records for it to traverse), one default tick (the parked schedule on),
the RSS after the ticks and, under ``tracemalloc``, the Python heap's peak during one full tick
above what it held before it. Writes the figures to OUT.json.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _common import RawRPC  # noqa: E402

#: The keys a progress view needs (the refresh benchmark's judged floor).
VIEW_KEYS = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode", "errorMessage"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    port, base_url, directory, count, repeats, out = sys.argv[1:7]
    count, repeats = int(count), int(repeats)
    secret = os.environ["ARIA2_RPC_SECRET"]
    import aria2_sync.engine.monitor as monitor_module
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of

    client = Aria2Client(
        f"http://127.0.0.1:{port}/jsonrpc", secret, verbose=False, poll_interval=3600.0, notifications=False
    )
    monitor = engine_of(client).monitor
    assert monitor is not None
    raw = RawRPC(int(port), secret, timeout=300)
    gc.collect()
    rss_before = rss_bytes()
    items = [(f"{base_url}/s{i}.bin", os.path.join(directory, f"s{i}.bin")) for i in range(count)]
    started = time.perf_counter()
    batch_id = client.add_batch_downloads(items, options={"pause": "true"})
    add_seconds = time.perf_counter() - started
    del items
    monitor.close()  # the thread stops; every tick below is this script's
    gids = [record.current_gid for record in engine_of(client).ledger.unfinished()]
    assert len(gids) == count

    default_read_all = monitor_module.PARKED_READ_ALL

    def full_tick() -> tuple[float, float]:
        monitor_module.PARKED_READ_ALL = count + 1  # every parked download is due
        try:
            cpu, wall = time.process_time(), time.perf_counter()
            watched = monitor.tick()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            monitor_module.PARKED_READ_ALL = default_read_all
        assert watched == count, watched
        return wall, cpu

    def floor(slice_size: int) -> float:
        gc.disable()  # a raw client holds no records for the cyclic GC to traverse
        try:
            return _floor(slice_size)
        finally:
            gc.enable()

    def _floor(slice_size: int) -> float:
        started = time.perf_counter()
        for start in range(0, count, slice_size):
            answer = raw.multicall(
                [("aria2.tellStatus", [gid, VIEW_KEYS]) for gid in gids[start : start + slice_size]]
            )
            del answer
        return time.perf_counter() - started

    full_tick()  # the first full read of each download (all keys) is not a refresh
    ticks: list[float] = []
    tick_cpu: list[float] = []
    floors: list[float] = []
    floors_one: list[float] = []
    for round_no in range(repeats):
        steps = ["tick", "floor", "floor_one"]
        steps = steps[round_no % 3 :] + steps[: round_no % 3]
        for step in steps:
            if step == "tick":
                wall, cpu = full_tick()
                ticks.append(wall)
                tick_cpu.append(cpu)
            elif step == "floor":
                floors.append(floor(1000))
            else:
                floors_one.append(floor(count))
    cpu = time.process_time()
    due = monitor.tick()  # the monitor's own schedule: a share of the parked downloads
    default_cpu = time.process_time() - cpu
    gc.collect()
    rss_after = rss_bytes()

    import tracemalloc

    tracemalloc.start()
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    full_tick()
    peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()

    progress = client.get_batch_progress(batch_id)
    paused = progress.paused_count if progress is not None else -1
    client.close()
    raw.close()
    with open(out, "w") as handle:
        json.dump(
            {
                "count": count,
                "paused": paused,
                "add_seconds": add_seconds,
                "tick": statistics.median(ticks),
                "tick_cpu": statistics.median(tick_cpu),
                "floor": statistics.median(floors),
                "floor_one": statistics.median(floors_one),
                "default_due": due,
                "default_cpu": default_cpu,
                "rss_per_download": (rss_after - rss_before) / count,
                "tick_peak": peak,
            },
            handle,
        )


if __name__ == "__main__":
    main()
