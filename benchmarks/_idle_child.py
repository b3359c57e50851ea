"""The client process of the ``idle`` benchmark (run by bench_idle_watch.py, not by hand).

    ARIA2_RPC_SECRET=... python benchmarks/_idle_child.py RPC_URL BASE_URL DIR COUNT WINDOW OUT.json [trace]

A fresh interpreter: imports aria2_sync, makes a client with the default monitor (poll_interval
0.5 s; notifications when websocket-client is installed), notes its RSS, adds COUNT paused
downloads in one batch, lets the monitor settle, then measures this process's CPU time
(``resource.getrusage``, all threads) over WINDOW seconds of wall time, and its RSS before and
after. Writes the figures to OUT.json. With ``trace``, it runs under ``tracemalloc`` instead
and reports the Python heap kept per download right after the add (the ledger's records) and
after the first ticks (with the snapshots), and its peaks during the add and during the ticks
(no CPU figures: tracing slows everything down). With ``$IDLE_STATE``, the client keeps its
state in that SQLite file (``state=``).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import sys
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    rpc_url, base_url, directory, count, window, out = sys.argv[1:7]
    count, window = int(count), float(window)
    trace = sys.argv[7:8] == ["trace"]
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of

    state = os.environ.get("IDLE_STATE") or None  # (the SQLite file of the not-judged run)
    client = Aria2Client(rpc_url, os.environ["ARIA2_RPC_SECRET"], verbose=False, state=state)
    monitor = engine_of(client).monitor
    tick_times = []
    real_tick = monitor.tick

    def timed_tick() -> int:
        started = time.perf_counter()
        try:
            return real_tick()
        finally:
            tick_times.append(time.perf_counter() - started)

    monitor.tick = timed_tick
    gc.collect()
    rss_before = rss_bytes()
    if trace:
        import tracemalloc

        tracemalloc.start()
    items = [(f"{base_url}/idle{i}.bin", os.path.join(directory, f"idle{i}.bin")) for i in range(count)]
    started = time.perf_counter()
    batch_id = client.add_batch_downloads(items, options={"pause": "true"})
    add_seconds = time.perf_counter() - started
    del items
    if trace:
        gc.collect()
        records_kept, add_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()  # from here: the peak of the ticks alone
    deadline = time.monotonic() + 60
    while monitor.ticks < 4 and time.monotonic() < deadline:  # settle: a few full ticks
        time.sleep(0.05)
    gc.collect()
    rss_settled = rss_bytes()
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        client.close()
        with open(out, "w") as handle:
            json.dump(
                {
                    "heap_kept": current / count,
                    "heap_peak": max(peak, add_peak) / count,
                    "heap_after_add": records_kept / count,
                    "add_peak": add_peak / count,
                    "tick_peak": peak / count,
                    "rss_settled": (rss_settled - rss_before) / count,
                },
                handle,
            )
        return
    ticks_before = len(tick_times)
    print("WINDOW START", flush=True)  # the parent samples the daemon's CPU time here
    cpu_before, wall_before = cpu_seconds(), time.monotonic()
    time.sleep(window)
    cpu_after, wall_after = cpu_seconds(), time.monotonic()
    print("WINDOW END", flush=True)
    ticks_in_window = len(tick_times) - ticks_before
    gc.collect()
    rss_after = rss_bytes()
    progress = client.get_batch_progress(batch_id)
    paused = progress.paused_count if progress is not None else -1
    notifications = engine_of(client).listener is not None
    client.close()
    with open(out, "w") as handle:
        json.dump(
            {
                "count": count,
                "paused": paused,
                "add_seconds": add_seconds,
                "rss_before": rss_before,
                "rss_settled": rss_settled,
                "rss_after": rss_after,
                "cpu_seconds": cpu_after - cpu_before,
                "wall_seconds": wall_after - wall_before,
                "ticks_in_window": ticks_in_window,
                "tick_seconds": sorted(tick_times[ticks_before:])[len(tick_times[ticks_before:]) // 2]
                if ticks_in_window
                else None,
                "notifications": notifications,
            },
            handle,
        )


if __name__ == "__main__":
    main()
