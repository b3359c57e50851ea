"""idle: 10,000 watched paused downloads: the client's CPU and memory.

Set-up: one aria2c, one FaultServer (never contacted: the downloads are paused), and a client
in a fresh interpreter (``benchmarks/_idle_child.py``) with the default monitor
(``poll_interval=0.5``, notifications on). It adds 10,000 downloads with ``pause=true`` in one
batch, lets the monitor tick a few times, then sleeps for 30 s (5 s with ``--quick``) while the
monitor runs.

* ours: the client process's CPU time over that window (``getrusage``, all threads) divided by
  the window's wall time, i.e. the share of one core it keeps busy; and its RSS growth from
  before the adds to the end of the window, per download.
* baseline: one idle core (1.0 CPU second per second).
* also reported: the daemon's CPU over the same window, one raw multicall of 10,000
  ``tellStatus`` (the floor of one monitor tick), and, not judged, the client's CPU with its
  state in SQLite (``state=``) over a third of the window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from _common import (
    HERE,
    ChildProcesses,
    Deadline,
    Ratio,
    RawRPC,
    Result,
    daemon,
    fault_server,
    fmt_ms,
    log,
    median,
    workdir,
)

NAME = "idle"
TITLE = "10,000 watched paused downloads"
KiB = 1024


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of a process, from /proc (0.0 when unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _child_command(aria2: Any, server: Any, count: int, window: float, out: str, *extra: str) -> list[str]:
    """The command line of the client process (``_idle_child.py``)."""
    return [
        sys.executable,
        os.path.join(HERE, "_idle_child.py"),
        aria2.rpc_url,
        server.base_url,
        aria2.download_dir,
        str(count),
        f"{window:g}",
        out,
        *extra,
    ]


def _child_figures(
    aria2: Any, server: Any, count: int, window: float, out: str, env: dict[str, str], *extra: str
) -> dict[str, Any]:
    """One more run of the client process (``_idle_child.py``) to its end; its figures."""
    subprocess.run(
        _child_command(aria2, server, count, window, out, *extra),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=window + 180,
        check=True,
    )
    with open(out) as handle:
        figures: dict[str, Any] = json.load(handle)
    return figures


def run(quick: bool) -> Result:
    from aria2_sync.models import STATUS_KEYS

    count = 10_000
    window = 5.0 if quick else 30.0
    with workdir(NAME) as root, fault_server() as server, daemon(root) as aria2, ChildProcesses() as children:
        out = os.path.join(root, "idle.json")
        env = dict(os.environ, ARIA2_RPC_SECRET=aria2.secret)
        log(f"{NAME}: a fresh client adds {count} paused downloads, then {window:g} s of watching")
        child = children.start(
            _child_command(aria2, server, count, window, out),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = Deadline(window + 180, "the idle client")
        daemon_cpu: dict[str, float] = {}
        assert child.stdout is not None
        for line in child.stdout:  # bounded: the child prints two lines and exits
            if line.startswith("WINDOW START"):
                daemon_cpu["start"], daemon_cpu["t0"] = _proc_cpu(aria2.pid), time.monotonic()
            elif line.startswith("WINDOW END"):
                daemon_cpu["end"], daemon_cpu["t1"] = _proc_cpu(aria2.pid), time.monotonic()
            deadline.check()
        try:
            child.wait(max(1.0, deadline.end - time.monotonic()))
        except subprocess.TimeoutExpired:
            children.stop(child)
            raise
        if child.returncode != 0:
            raise RuntimeError(
                f"the idle client failed: {child.stderr.read()[-500:] if child.stderr else ''}"
            )
        with open(out) as handle:
            figures = json.load(handle)
        raw = RawRPC(aria2.port, aria2.secret)
        try:
            gids_now = [d["gid"] for d in raw.call("aria2.tellWaiting", 0, count + 10, ["gid"])]
            assert len(gids_now) == count, len(gids_now)
            # Again under tracemalloc, on a daemon emptied of the first run's downloads.
            from _common import purge_daemon

            purge_daemon(raw)
            log(f"{NAME}: the same adds under tracemalloc (Python heap kept and peak)")
            traced = _child_figures(aria2, server, count, 0, os.path.join(root, "traced.json"), env, "trace")
            gids = [d["gid"] for d in raw.call("aria2.tellWaiting", 0, count + 10, ["gid"])]
            keys = list(STATUS_KEYS)
            floor_times: list[float] = []
            for _ in range(3):
                started = time.perf_counter()
                answer = raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])
                floor_times.append(time.perf_counter() - started)
            text = json.dumps(answer)
            decode_times: list[float] = []
            for _ in range(3):
                started = time.perf_counter()
                json.loads(text)
                decode_times.append(time.perf_counter() - started)
            answer_size = len(text)
            # Not judged: the same watch with shared state in SQLite (state=), a shorter window.
            purge_daemon(raw)
            log(f"{NAME}: the same watch with state= in SQLite")
            stored_env = dict(env, IDLE_STATE=os.path.join(root, "state.db"))
            stored = _child_figures(
                aria2, server, count, window / 3, os.path.join(root, "stored.json"), stored_env
            )
        finally:
            raw.close()

    share = figures["cpu_seconds"] / figures["wall_seconds"]
    growth = (figures["rss_after"] - figures["rss_before"]) / count
    settled = (figures["rss_settled"] - figures["rss_before"]) / count
    ticks = figures["ticks_in_window"]
    per_tick_cpu = figures["cpu_seconds"] / ticks if ticks else float("nan")
    daemon_share = (
        (daemon_cpu["end"] - daemon_cpu["start"]) / (daemon_cpu["t1"] - daemon_cpu["t0"])
        if {"start", "end"} <= daemon_cpu.keys()
        else float("nan")
    )
    floor = median(floor_times)
    decode = median(decode_times)
    ratios = [
        Ratio("client CPU / one core", share, "<=", 0.05),
        Ratio("RSS growth per download (KiB)", growth / KiB, "<=", 2.0),
    ]
    result = Result(
        name=NAME,
        what=TITLE + ("" if not quick else f" ({window:g} s window)"),
        ours=f"{figures['cpu_seconds']:.2f} CPU s in {figures['wall_seconds']:.1f} s ({share * 100:.1f}% of a core); "
        f"RSS +{growth / KiB:.2f} KiB per download",
        baselines=[
            ("one idle core", f"{figures['wall_seconds']:.1f} CPU s in {figures['wall_seconds']:.1f} s")
        ],
        ratios=ratios,
        target="<= 5% of a core; <= 2 KiB per download",
        notes=[
            f"{ticks} monitor ticks in the window ({ticks / figures['wall_seconds']:.2f} per s), median tick "
            f"{fmt_ms(figures['tick_seconds'] or float('nan'))}, {fmt_ms(per_tick_cpu)} of client CPU per tick",
            f"RSS per download right after the adds settled: {settled / KiB:.2f} KiB; "
            f"adding the {count} took {figures['add_seconds']:.2f} s; notifications "
            f"{'on' if figures['notifications'] else 'off'}; {figures['paused']} still paused at the end",
            f"the daemon meanwhile: {daemon_share * 100:.0f}% of a core; one raw multicall of {count} "
            f"tellStatus (the floor of one tick) takes {fmt_ms(floor)}; json.loads of its answer "
            f"{fmt_ms(decode)}",
        ],
    )
    if not ratios[0].ok:
        result.why = [
            f"Every tick (every {0.5:g} s plus the tick's own duration) asks the daemon for the status of "
            f"all {count} downloads and rebuilds a snapshot of each, although paused downloads do not "
            f"change: {fmt_ms(per_tick_cpu)} of client CPU per tick, {ticks / figures['wall_seconds']:.2f} "
            f"ticks per second. The daemon spends {daemon_share * 100:.0f}% of a core answering them.",
            f"Reading them all cannot meet the target however fast the code: the answer is "
            f"{answer_size / 2**20:.1f} MiB of JSON and json.loads alone takes {fmt_ms(decode)} of it, "
            f"{decode / 0.5 * 100:.0f}% of a core at one tick per 0.5 s. Only not re-reading downloads "
            "that cannot have changed (paused, waiting) on every tick can.",
        ]
    result.notes.append(
        f"not judged: with state= in SQLite, {stored['cpu_seconds'] / stored['wall_seconds'] * 100:.1f}% of a "
        f"core over {stored['wall_seconds']:.0f} s ({stored['ticks_in_window']} ticks; a tick reads from the "
        "store the rows of the downloads it reads from the daemon)"
    )
    result.notes.append(
        f"under tracemalloc: the Python heap keeps {traced['heap_after_add'] / KiB:.2f} KiB per download "
        f"right after the add (the ledger's records) and {traced['heap_kept'] / KiB:.2f} KiB after the "
        f"first ticks (with the snapshots); its peak is {traced['add_peak'] / KiB:.2f} KiB per download "
        f"during the add and {traced['tick_peak'] / KiB:.2f} KiB during the ticks"
    )
    if not ratios[1].ok:
        result.why.append(
            f"RSS grows {growth / KiB:.2f} KiB per download ({settled / KiB:.2f} KiB right after the adds), "
            f"but the Python heap keeps only {traced['heap_kept'] / KiB:.2f} KiB per download: "
            f"{traced['heap_after_add'] / KiB:.2f} KiB for the ledger's record, the rest for the last "
            "snapshot (a Progress with its FileInfo and the strings decoded from aria2's answer). The "
            f"rest of the RSS is a high-water mark the allocator keeps: the peak of a tick "
            f"({traced['tick_peak'] / KiB:.2f} KiB per download under tracemalloc), when the decoded "
            "answer for all the downloads read at once and their new snapshots are alive beside the "
            "old ones; it grows with the number of downloads read per request."
        )
    return result
