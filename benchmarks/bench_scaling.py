"""scaling: how the cost of watching grows with the number of watched downloads.

Set-up: for each size (100, 1,000, 10,000 and 50,000; 100, 1,000 and 5,000 with ``--quick``) a
fresh aria2c (``max-download-result=100000``, ``rpc-max-request-size=64M`` so that the one-request
floor fits) and a fresh client process (``benchmarks/_scaling_child.py``) that adds that many
downloads paused (``pause=true``) in one batch. Every contender reads the same daemon state, in
interleaved repeats (medians).

* ours: ``Monitor.tick()`` with every parked download due (the monitor's read of all of them:
  the multicalls of the moving keys, ``READ_SLICE`` downloads per request, the snapshots, the
  state machine), after a first tick that read each download in full; reported per download
  (wall time), with the client's CPU time per full tick (``time.process_time``), the CPU of one
  tick on the monitor's own schedule (past 500 parked downloads a twentieth of them per tick),
  the client process's RSS growth per download (adds and ticks included), and the Python heap's
  peak during one full tick (``tracemalloc``) above what it held before.
* floor: raw ``system.multicall`` requests of ``aria2.tellStatus`` with the 7 keys a progress view
  needs (gid, status, totalLength, completedLength, downloadSpeed, errorCode, errorMessage), 1000
  per request, on one ``http.client`` keep-alive connection, ``json.dumps``/``json.loads``, nothing
  more, in the same process with the cyclic GC paused during its calls (a raw client holds no
  records for it to traverse); and, to show what aria2 itself does with size, the same in ONE
  request of all of them. Beside them, aria2c's own CPU over 2 s while nobody asks it anything
  (``Aria2Daemon`` has it save its session every second: work that grows with the downloads it
  holds, and delays the answers).
* judged: the client's own cost per download stays flat from 1,000 to the largest size, within
  1.5x: its CPU time per download in a full tick, and its refresh time per download measured
  against the floor at the same size (ours/floor at the largest size over ours/floor at 1,000).
  The refresh time itself is not judged against a flat line: the floor's own time per download
  grows with size (aria2 answers slower when it holds more downloads; see the table), and that
  part is aria2's, shown beside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _common import HERE, ChildProcesses, Ratio, Result, daemon, fault_server, log, workdir

NAME = "scaling"
TITLE = "refresh cost per download from 100 to 50,000 watched downloads"
TARGET = (
    "client CPU per download and refresh per download against the floor, at the largest size "
    "<= 1.5x the same at 1,000"
)


def _idle_cpu(pid: int | None, seconds: float = 2.0) -> float:
    """The share of a core aria2c uses over ``seconds`` while nobody asks it anything."""

    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    before = cpu()
    time.sleep(seconds)
    return (cpu() - before) / seconds


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} us"


def run(quick: bool) -> Result:
    sizes = [100, 1000, 5000] if quick else [100, 1000, 10_000, 50_000]
    rows: list[dict[str, float]] = []
    with fault_server() as server, ChildProcesses() as children:
        for count in sizes:
            # (small sizes take milliseconds a tick: more rounds, so one collection of the
            # cyclic GC or a neighbour's burst does not move the median the ratio is built on)
            repeats = 3 if quick else 5 if count >= 10_000 else 15
            with (
                workdir(f"{NAME}-{count}") as root,
                daemon(root, **{"max-download-result": 100000, "rpc-max-request-size": "64M"}) as aria2,
            ):
                out = os.path.join(root, "scaling.json")
                log(f"{NAME}: {count} paused downloads, {repeats} interleaved rounds")
                child = children.start(
                    [
                        sys.executable,
                        os.path.join(HERE, "_scaling_child.py"),
                        str(aria2.port),
                        server.base_url,
                        aria2.download_dir,
                        str(count),
                        str(repeats),
                        out,
                    ],
                    env=dict(os.environ, ARIA2_RPC_SECRET=aria2.secret),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                _, errors = child.communicate(timeout=900)
                if child.returncode != 0:
                    raise RuntimeError(f"the {count}-download client failed: {errors[-2000:]}")
                with open(out) as handle:
                    row = json.load(handle)
                row["aria2_idle_cpu"] = _idle_cpu(aria2.pid)
                if row["paused"] != count:
                    raise RuntimeError(f"{row['paused']} of {count} downloads paused at the end")
                rows.append(row)

    by_size = {int(row["count"]): row for row in rows}
    base, top = by_size[1000], by_size[sizes[-1]]
    ours_base, ours_top = base["tick"] / 1000, top["tick"] / top["count"]
    floor_base, floor_top = base["floor"] / 1000, top["floor"] / top["count"]
    one_base, one_top = base["floor_one"] / 1000, top["floor_one"] / top["count"]
    cpu_base, cpu_top = base["tick_cpu"] / 1000, top["tick_cpu"] / top["count"]
    against_floor_base, against_floor_top = base["tick"] / base["floor"], top["tick"] / top["floor"]
    ratios = [
        Ratio(f"client CPU per download {sizes[-1]:,} / 1,000", cpu_top / cpu_base, "<=", 1.5),
        Ratio(f"ours/floor {sizes[-1]:,} / 1,000", against_floor_top / against_floor_base, "<=", 1.5),
    ]
    table = [
        [
            "downloads",
            "ours: refresh per download",
            "floor (1000 per request) per download",
            "ours/floor",
            "floor in one request, per download",
            "client CPU per full tick",
            "client CPU per scheduled tick (downloads read)",
            "client RSS per download",
            "heap peak of a full tick",
            "aria2c's idle CPU",
        ]
    ]
    for row in rows:
        n = row["count"]
        table.append(
            [
                f"{n:,}",
                _us(row["tick"] / n),
                _us(row["floor"] / n),
                f"{row['tick'] / row['floor']:.2f}",
                _us(row["floor_one"] / n),
                f"{row['tick_cpu'] * 1e3:.1f} ms",
                f"{row['default_cpu'] * 1e3:.1f} ms ({row['default_due']:,})",
                f"{row['rss_per_download'] / 1024:.2f} KiB",
                f"{row['tick_peak'] / 1024:.0f} KiB",
                f"{row['aria2_idle_cpu'] * 100:.0f}%",
            ]
        )
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"{_us(ours_base)} per download at 1,000; {_us(ours_top)} at {sizes[-1]:,}",
        baselines=[
            (
                "floor: raw system.multicall of tellStatus with the 7 keys of a progress view, 1000 per "
                "request, http.client keep-alive, json.dumps/json.loads",
                f"{_us(floor_base)} per download at 1,000; {_us(floor_top)} at {sizes[-1]:,}",
            )
        ],
        ratios=ratios,
        target=TARGET,
        notes=[
            f"the floor itself per download: {floor_top / floor_base:.2f}x from 1,000 to {sizes[-1]:,} "
            f"in requests of 1000; {one_top / one_base:.2f}x in one request of all of them "
            f"({_us(one_base)} -> {_us(one_top)}): what aria2 (and one big JSON document) add with size",
            f"ours/floor: {base['tick'] / base['floor']:.2f} at 1,000, {top['tick'] / top['floor']:.2f} at "
            f"{sizes[-1]:,}; refresh per download, not judged: {ours_top / ours_base:.2f}x from 1,000 to "
            f"{sizes[-1]:,} (the floor's: {floor_top / floor_base:.2f}x)",
            f"client CPU per download in a full tick: {_us(cpu_base)} at 1,000, {_us(cpu_top)} at "
            f"{sizes[-1]:,}",
        ],
        table=table,
        data={
            "benchmark": NAME,
            "quick": quick,
            "units": "seconds for a whole tick or floor of `count` downloads; bytes for rss_per_download "
            "and tick_peak; aria2_idle_cpu as a share of one core",
            "rows": rows,
        },
    )
    if not result.passed:
        result.why = [
            f"Client CPU per download: {_us(cpu_base)} at 1,000, {_us(cpu_top)} at {sizes[-1]:,}. "
            f"The floor in requests of 1000 grows {floor_top / floor_base:.2f}x per download over the same "
            f"range, ours {ours_top / ours_base:.2f}x: the rest is the client's per-download work "
            f"({_us((top['tick'] - top['floor']) / top['count'])} above the floor at {sizes[-1]:,}, "
            f"{_us((base['tick'] - base['floor']) / 1000)} at 1,000)."
        ]
    return result
