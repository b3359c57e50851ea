"""pool: a client over three aria2 daemons: one refresh of 3 x 1000 downloads, and failover time.

Set-up: three aria2c processes (``Aria2Daemon``, each its own port on 127.0.0.1, its own download
and state directory, ``max-concurrent-downloads=100``), as three hosts would run them, and one
client over them: ``Aria2Client.pool([daemon1, daemon2, daemon3], ...)``.

Refresh (judged): 3000 downloads added paused (``pause=true``) by the pool client in one batch
of plain URLs (the pool places them; where each one landed is read back with ``daemon_of`` and
printed), so all 3000 stay watched and every daemon's state is the same for every contender.
Interleaved repeats, medians.

* ours: ``engine_of(client).monitor.tick()`` (the pool's whole refresh: one ``system.multicall``
  per daemon, sent concurrently, the snapshots, the state machine), called in the foreground
  while the monitor thread sleeps (``poll_interval=3600``); and ``get_batch_progress`` of the
  batch (the same read plus the counts and a ``BatchProgress``). Both are judged.
* floor (judged): the sum of three raw ``system.multicall``\\ s, one per daemon, of one
  ``aria2.tellStatus`` per download that daemon holds asking for the 7 keys a progress view
  needs (gid, status, totalLength, completedLength, downloadSpeed, errorCode, errorMessage),
  each on its own ``http.client`` keep-alive connection to 127.0.0.1, ``json.dumps`` of the
  request, the answer read whole and decoded with ``json.loads``; sent one after the other and
  timed as a whole (what a client that reads the daemons in turn must spend at least).
* context, not judged: the same three raw multicalls sent at once from three threads (what
  reading the daemons concurrently could gain on this machine, where the three aria2c and the
  client share two cores); and one daemon holding all 3000 (a plain ``Aria2Client``, its tick,
  and one raw multicall of 3000) for comparison with the pool.

Failover (judged): ``benchmarks/_fileserver.py`` in its own process serves sparse files paced at
32 KiB/s per connection, so downloads stay active; the pool client (``failover_after=3``, the
default ``poll_interval``) adds 30 of them (12 with ``--quick``) and every one is seen active on
some daemon (each daemon's own ``aria2.tellActive``). Then the daemon holding the most is lost:

* SIGKILL (``Aria2Daemon.kill``: the process is gone, connections are refused), with the client's
  default timeout: judged, the time from the signal to every one of its downloads being
  ``active`` on one of the two other daemons under the same GID, read with those daemons' own
  ``aria2.tellActive`` on raw connections every 20 ms; the target is ``failover_after`` + 2 s
  (the pool waits ``failover_after`` by design; the 2 s are for noticing, at the next tick, and
  adding again). 3 runs (1 with ``--quick``); the worst is judged.
* SIGSTOP (a hung host: the kernel still accepts connections and nothing answers), with
  ``timeout=2``: the same time, judged against the same target, 2 runs (1 with ``--quick``). A
  call to a hung daemon is given up after the client's ``timeout``, so the timeout is set below
  ``failover_after`` here; one more run with the default timeout (10 s) is not judged: it shows
  how long a hang takes then, and the monitor's longest pause between ticks meanwhile.
* After each SIGSTOP: SIGCONT, the time until the woken daemon holds none of the re-homed
  downloads active or waiting (the pool sweeps it when it reaches it again), and how many bytes
  its copies had fetched by the last read before they went (its ``completedLength`` over the
  value read just before SIGSTOP); "not seen" when they were gone by the first read.

Each run also checks that no GID is active on two of the surviving daemons at once, and that the
pool's ``daemons()`` does not report the lost daemon as ``up``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
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
    interleaved,
    log,
    median,
    workdir,
)
from bench_refresh import VIEW_KEYS

NAME = "pool"
TITLE = "a pool of 3 daemons: refresh of 3 x 1000 downloads; failover time"
TARGET = (
    "refresh <= 1.25x the floor; every download of a lost daemon active elsewhere within failover_after + 2 s"
)
PER_DAEMON = 1000
REFRESH_LIMIT = 1.25
FAILOVER_AFTER = 3.0
FAILOVER_SLACK = 2.0
#: The client timeout of the judged SIGSTOP runs: below failover_after (see the docstring).
STOP_TIMEOUT = 2.0
RATE = 32 * 1024
DAEMON_OPTIONS = {"max-concurrent-downloads": 100, "max-download-result": 5000}


@contextlib.contextmanager
def _daemons(root: str, count: int) -> Iterator[list[Any]]:
    """``count`` private aria2c processes, each with its own directories under ``root``."""
    with contextlib.ExitStack() as stack:
        started = []
        for n in range(count):
            base = os.path.join(root, f"host{n}")
            os.makedirs(base)
            started.append(stack.enter_context(daemon(base, **DAEMON_OPTIONS)))
        yield started


def _raw(daemons: Sequence[Any]) -> list[RawRPC]:
    return [RawRPC(d.port, d.secret, timeout=10.0) for d in daemons]


# -- refresh ------------------------------------------------------------------------------------


def _refresh(quick: bool) -> dict[str, Any]:
    import aria2_sync.engine.monitor as monitor_module
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of

    total = 3 * PER_DAEMON
    repeats = 3 if quick else 9
    kept = monitor_module.PARKED_READ_ALL
    # The monitor reads many parked (paused) downloads in slices; this benchmark is about reading
    # all of them, so the slicing is off for it (as in the refresh benchmark).
    monitor_module.PARKED_READ_ALL = total + 1
    out: dict[str, Any] = {}
    try:
        with workdir(NAME) as root, fault_server() as server, _daemons(root, 4) as started:
            three, single = started[:3], started[3]
            client = Aria2Client.pool(three, verbose=False, poll_interval=3600.0)
            alone = Aria2Client(
                single.rpc_url, single.secret, verbose=False, poll_interval=3600.0, notifications=False
            )
            raws = _raw(three)
            raw_single = RawRPC(single.port, single.secret)
            try:
                urls = [server.url(f"p{i}.bin") for i in range(total)]
                batch_id = client.add_batch_downloads(urls, options={"pause": "true"})
                alone_batch = alone.add_batch_downloads(
                    [server.url(f"s{i}.bin") for i in range(total)], options={"pause": "true"}
                )
                gids = [future.gid for future in client.batch_futures(batch_id)]
                alone_gids = [future.gid for future in alone.batch_futures(alone_batch)]
                # Where each download landed: the pool's answer, checked against the daemons'.
                by_url = {d.rpc_url: n for n, d in enumerate(three)}
                held: list[list[str]] = [[] for _ in three]
                for gid in gids:
                    where = client.daemon_of(gid)
                    if where not in by_url:
                        raise RuntimeError(f"daemon_of({gid}) = {where!r}: not one of the pool's daemons")
                    held[by_url[where]].append(gid)
                for n, raw in enumerate(raws):
                    stat = raw.call("aria2.getGlobalStat")
                    if int(stat["numWaiting"]) != len(held[n]):
                        raise RuntimeError(
                            f"daemon {n} holds {stat['numWaiting']} paused downloads, the pool says {len(held[n])}"
                        )
                out["spread"] = [len(h) for h in held]
                monitor = engine_of(client).monitor
                alone_monitor = engine_of(alone).monitor
                assert monitor is not None and alone_monitor is not None
                for m in (monitor, alone_monitor):  # a first tick each: every download read in full once
                    m.tick()

                def tick_of(m: Any) -> Any:
                    def tick() -> float:
                        started = time.perf_counter()
                        watched = m.tick()
                        elapsed = time.perf_counter() - started
                        assert watched == total, watched
                        return elapsed

                    return tick

                def batch() -> float:
                    started = time.perf_counter()
                    progress = client.get_batch_progress(batch_id)
                    elapsed = time.perf_counter() - started
                    assert progress is not None and progress.paused_count == total, progress
                    return elapsed

                def floor() -> float:
                    started = time.perf_counter()
                    for raw, mine in zip(raws, held):
                        if mine:
                            answers = raw.multicall([("aria2.tellStatus", [gid, VIEW_KEYS]) for gid in mine])
                            assert len(answers) == len(mine)
                    return time.perf_counter() - started

                def floor_concurrent() -> float:
                    threads = [
                        threading.Thread(
                            target=raw.multicall,
                            args=([("aria2.tellStatus", [gid, VIEW_KEYS]) for gid in mine],),
                        )
                        for raw, mine in zip(raws, held)
                        if mine
                    ]
                    started = time.perf_counter()
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    return time.perf_counter() - started

                def floor_single() -> float:
                    started = time.perf_counter()
                    answers = raw_single.multicall(
                        [("aria2.tellStatus", [gid, VIEW_KEYS]) for gid in alone_gids]
                    )
                    assert len(answers) == total
                    return time.perf_counter() - started

                log(
                    f"{NAME}: 3 daemons holding {out['spread']} paused downloads; {repeats} interleaved rounds"
                )
                out["samples"] = interleaved(
                    {
                        "tick": tick_of(monitor),
                        "batch": batch,
                        "floor": floor,
                        "floor_concurrent": floor_concurrent,
                        "single_tick": tick_of(alone_monitor),
                        "single_floor": floor_single,
                    },
                    repeats * 3,
                )
            finally:
                client.close()
                alone.close()
                for raw in [*raws, raw_single]:
                    raw.close()
    finally:
        monitor_module.PARKED_READ_ALL = kept
    return out


# -- failover -----------------------------------------------------------------------------------


def _file_server(children: ChildProcesses, served: str) -> int:
    server = children.start(
        [sys.executable, os.path.join(HERE, "_fileserver.py"), served, "--rate", str(RATE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = server.stdout.readline() if server.stdout else ""
    if not line.startswith("PORT "):
        raise RuntimeError(f"the file server did not start: {line!r}")
    return int(line.split()[1])


def _active(raw: RawRPC) -> set[str]:
    return {item["gid"] for item in raw.call("aria2.tellActive", ["gid"])}


def _running(raw: RawRPC, gids: set[str]) -> dict[str, int]:
    """Those of ``gids`` the daemon holds active or waiting (able to write), with their bytes."""
    answers = raw.multicall([("aria2.tellStatus", [gid, ["status", "completedLength"]]) for gid in gids])
    return {
        gid: int(answer[0]["completedLength"])
        for gid, answer in zip(gids, answers)
        if isinstance(answer, list) and answer[0]["status"] in ("active", "waiting", "paused")
    }


def _one_failover(
    root: str, port: int, names: list[str], how: str, timeout: float | None
) -> dict[str, float]:
    """One pool of three, ``len(names)`` paced downloads, one daemon lost by ``how`` (kill/stop);
    ``timeout``: the client's (None: its default)."""
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of

    options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    with _daemons(root, 3) as three:
        client = Aria2Client.pool(three, failover_after=FAILOVER_AFTER, verbose=False, **options)
        monitor = engine_of(client).monitor
        assert monitor is not None
        raws = _raw(three)
        victim_index = -1
        try:
            client.add_batch_downloads([f"http://127.0.0.1:{port}/{name}" for name in names])
            deadline = Deadline(30, "every download to be active on some daemon")
            while True:
                where = [_active(raw) for raw in raws]
                if sum(len(w) for w in where) == len(names):
                    break
                deadline.check()
                time.sleep(0.02)
            victim_index = max(range(3), key=lambda n: len(where[n]))
            victim, lost = three[victim_index], where[victim_index]
            others = [raw for n, raw in enumerate(raws) if n != victim_index]
            pid = victim.pid
            assert pid is not None
            before = _running(raws[victim_index], lost)
            started = time.monotonic()
            if how == "kill":
                victim.kill()
            else:
                os.kill(pid, signal.SIGSTOP)
            deadline = Deadline(
                FAILOVER_AFTER + 60, f"the downloads of the {how}ed daemon to be active elsewhere"
            )
            twice = 0
            ticks, last_tick, stall = monitor.ticks, started, 0.0
            while True:
                now_active = [_active(raw) for raw in others]
                twice = max(twice, len(now_active[0] & now_active[1]))
                now = time.monotonic()
                if monitor.ticks != ticks:
                    ticks, last_tick = monitor.ticks, now
                stall = max(stall, now - last_tick)
                if lost <= now_active[0] | now_active[1]:
                    break
                deadline.check()
                time.sleep(0.02)
            rehomed = time.monotonic() - started
            health = client.daemons()
            lost_state = next(h.state for h in health if h.rpc_url == victim.rpc_url)
            result = {"seconds": rehomed, "lost": float(len(lost)), "twice": float(twice), "stall": stall}
            if lost_state == "up":
                raise RuntimeError(f"daemons() still reports the {how}ed daemon as up: {health}")
            if how == "stop":
                # Wake it: its copies of the re-homed downloads must go before they write on.
                woken = time.monotonic()
                os.kill(pid, signal.SIGCONT)
                deadline = Deadline(60, "the woken daemon to drop the re-homed downloads")
                grown = -1  # -1: its copies were gone by the first read that answered
                first_read = 0.0
                while True:
                    kept = _running(raws[victim_index], lost)
                    first_read = first_read or time.monotonic() - woken
                    if kept:
                        grown = max(grown, sum(max(0, kept[gid] - before.get(gid, 0)) for gid in kept))
                    if not kept:
                        break
                    deadline.check()
                    time.sleep(0.02)
                result["failback"] = time.monotonic() - woken
                result["grown"] = float(grown)
                result["first_read"] = first_read
            return result
        finally:
            if victim_index >= 0 and how == "stop" and three[victim_index].pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(three[victim_index].pid, signal.SIGCONT)
            client.close()
            for raw in raws:
                raw.close()


#: The failover runs: name -> (how the daemon is lost, the client's timeout (None: its default)).
VARIANTS = {
    "kill": ("kill", None),
    "stop": ("stop", STOP_TIMEOUT),
    "stop_default_timeout": ("stop", None),
}


def _failover(quick: bool) -> dict[str, list[dict[str, float]]]:
    count = 12 if quick else 30
    runs = {"kill": 1 if quick else 3, "stop": 1 if quick else 2, "stop_default_timeout": 1}
    out: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
    with workdir(f"{NAME}-failover") as root, ChildProcesses() as children:
        served = os.path.join(root, "served")
        os.makedirs(served)
        names = [f"slow{n}.bin" for n in range(count)]
        for name in names:  # sparse: 256 MiB at 32 KiB/s outlasts the benchmark
            with open(os.path.join(served, name), "wb") as handle:
                handle.truncate(256 << 20)
        port = _file_server(children, served)
        for round_no in range(max(runs.values())):
            for variant, times in runs.items():
                if round_no < times:
                    how, timeout = VARIANTS[variant]
                    log(
                        f"{NAME}: failover, {count} downloads, SIG{how.upper()} of one daemon, "
                        f"timeout={timeout or 'default'} ({round_no + 1}/{times})"
                    )
                    base = os.path.join(root, f"{variant}{round_no}")
                    os.makedirs(base)
                    out[variant].append(_one_failover(base, port, names, how, timeout))
    return out


# -- the result ---------------------------------------------------------------------------------


def _kib(values: list[float]) -> str:
    return ", ".join("not seen" if v < 0 else f"{v / 1024:.0f} KiB" for v in values)


def _seconds(values: list[float], minus: float = 0.0) -> str:
    return ", ".join(f"{v - minus:.2f} s" for v in values)


def run(quick: bool) -> Result:
    from aria2_sync import Aria2Client
    from aria2_sync.rpc.transport import DEFAULT_TIMEOUT

    if not hasattr(Aria2Client, "pool"):
        raise RuntimeError("Aria2Client.pool does not exist in this version of aria2_sync")
    refresh = _refresh(quick)
    failover = _failover(quick)
    samples = refresh["samples"]
    tick, batch, fl = median(samples["tick"]), median(samples["batch"]), median(samples["floor"])
    fl_conc = median(samples["floor_concurrent"])
    one_tick, one_floor = median(samples["single_tick"]), median(samples["single_floor"])
    bound = FAILOVER_AFTER + FAILOVER_SLACK
    kills = [r["seconds"] for r in failover["kill"]]
    stops = [r["seconds"] for r in failover["stop"]]
    hung = failover["stop_default_timeout"]
    ratios = [
        Ratio("pool tick/floor", tick / fl, "<=", REFRESH_LIMIT),
        Ratio("pool get_batch_progress/floor", batch / fl, "<=", REFRESH_LIMIT),
        Ratio("SIGKILL -> all re-homed, worst run (s)", max(kills), "<=", bound),
        Ratio(f"SIGSTOP (timeout={STOP_TIMEOUT:g}) -> all re-homed, worst run (s)", max(stops), "<=", bound),
    ]
    every = [r for runs in failover.values() for r in runs]
    woken = [r for r in every if "failback" in r]
    result = Result(
        name=NAME,
        what=TITLE,
        ours=(
            f"pool tick {fmt_ms(tick)}; get_batch_progress {fmt_ms(batch)}; all of a lost daemon's "
            f"downloads active elsewhere after SIGKILL in {_seconds(kills)}, after SIGSTOP in "
            f"{_seconds(stops)}"
        ),
        baselines=[
            (
                "floor: three raw system.multicalls, one per daemon, of tellStatus with the 7 keys of a "
                "progress view for the downloads it holds, each on its own http.client keep-alive "
                "connection, json.dumps/json.loads, one after the other",
                fmt_ms(fl),
            ),
            (f"failover bound: failover_after ({FAILOVER_AFTER:g} s) + {FAILOVER_SLACK:g} s", f"{bound:g} s"),
        ],
        ratios=ratios,
        target=(
            f"pool tick and get_batch_progress <= {REFRESH_LIMIT}x the floor; every download of a "
            f"lost daemon active on another within failover_after + {FAILOVER_SLACK:g} s"
        ),
        notes=[
            f"the pool placed the 3000 downloads as {refresh['spread']} on the three daemons",
            f"the three raw multicalls sent at once from three threads: {fmt_ms(fl_conc)} "
            f"({fl_conc / fl:.2f}x the floor; the pool tick is {tick / fl_conc:.2f}x it)",
            f"one daemon holding all 3000 (a plain Aria2Client): tick {fmt_ms(one_tick)}, one raw "
            f"multicall of 3000 {fmt_ms(one_floor)}; the pool tick is {tick / one_tick:.2f}x the "
            f"one-daemon tick",
            f"failover: {', '.join(str(int(r['lost'])) for r in failover['kill'])} downloads on the "
            f"SIGKILLed daemon (the one holding the most); the time beyond failover_after: "
            f"SIGKILL {_seconds(kills, FAILOVER_AFTER)}; SIGSTOP {_seconds(stops, FAILOVER_AFTER)}",
            f"not judged: SIGSTOP with the client's default timeout ({DEFAULT_TIMEOUT:g} s): all "
            f"re-homed in {_seconds([r['seconds'] for r in hung])}, because a tick waits up to "
            f"the timeout for a daemon's answer before it counts the daemon as unreachable; while "
            f"it waited the monitor did not tick for {_seconds([r['stall'] for r in hung])} "
            f"(its longest pause between ticks; after SIGKILL: "
            f"{_seconds([r['stall'] for r in failover['kill']])})",
            f"most GIDs seen active on two surviving daemons at once during a failover: "
            f"{max(int(r['twice']) for r in every)}",
            "after SIGCONT, the woken daemon held none of the re-homed downloads active or waiting "
            f"within {_seconds([r['failback'] for r in woken])}; meanwhile its copies had fetched "
            f"{_kib([r['grown'] for r in woken])} (all of them together, as last read before "
            f"they went: what the sockets buffered while it was frozen, and more; 'not seen': "
            f"gone by the benchmark's first read, which answered after "
            f"{_seconds([r['first_read'] for r in woken])})",
        ],
    )
    if not result.passed:
        result.why = [
            f"The floor reads the daemons one after the other; read at once they take {fmt_ms(fl_conc)}. "
            f"One daemon holding all 3000: tick {fmt_ms(one_tick)} against its raw multicall "
            f"{fmt_ms(one_floor)} ({one_tick / one_floor:.2f}x).",
            "A SIGSTOPped daemon is counted unreachable when a call to it has had no answer for "
            "the client's timeout; re-homing then starts once failover_after has passed since "
            "its last answer, so after a hang it takes max(failover_after, timeout) + a tick.",
        ]
    return result
