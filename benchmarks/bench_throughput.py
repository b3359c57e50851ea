"""throughput: 1 GiB over loopback, ``aria2-sync get URL`` against bare ``aria2c URL``.

Set-up: a 1 GiB file (128 MiB with ``--quick``) on tmpfs (``/dev/shm`` when there is one), served
by ``benchmarks/_fileserver.py`` in its own process (``socket.sendfile``, Range support), and
downloaded to tmpfs, so that neither the server nor a disk is what is measured. Seven rounds (two
with ``--quick``), the order of the commands rotating; the downloaded file is deleted between runs.
aria2c is CPU-bound here (about one core), so this figure is the most sensitive to other load
on the machine: compare the two medians, not single runs.

* ours: ``aria2-sync get URL -d DIR -o NAME -q --no-progress`` (the console script of this
  environment: it starts a private aria2c, downloads, stops the daemon, exits).
* baseline: ``aria2c -d DIR -o NAME --console-log-level=warn --summary-interval=0 URL`` with the
  same aria2c binary (aria2_sync.find_aria2c()).
* throughput = file size / wall time of the whole command, from start to exit.

For the analysis only: the same two commands on a 1 KiB file, and once per round the same
``aria2-sync get`` run in-process by ``benchmarks/_cli_phases.py``, which timestamps its phases
(imports, daemon start, add, download complete, daemon stop).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import HERE, ChildProcesses, Ratio, Result, fmt_ms, log, median, workdir

NAME = "throughput"
TITLE = "1 GiB over loopback"
MiB = 1 << 20


def _run_timed(children: ChildProcesses, argv: Sequence[str], timeout: float) -> tuple[float, float]:
    """Run a command to its end; (wall seconds, CPU seconds of it and its reaped children)."""
    started = time.perf_counter()
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            elapsed = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.perf_counter() > deadline:
            children.stop(proc)
            raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} s")
        time.sleep(0.002)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited with {proc.returncode}: {err.strip()[-300:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _make_file(path: str, size: int) -> None:
    block = os.urandom(MiB)
    with open(path, "wb") as handle:
        for index in range(size // MiB):
            handle.write(index.to_bytes(8, "big") + block[8:])  # no two blocks alike
        handle.write(block[: size % MiB])


def _same(a: str, b: str) -> bool:
    if os.path.getsize(a) != os.path.getsize(b):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(4 * MiB), fb.read(4 * MiB)
            if x != y:
                return False
            if not x:
                return True


def _stop_times(root: str, rounds: int) -> dict[str, list[float]]:
    """Aria2Daemon.stop() on an idle daemon, against SIGTERM followed by a connect to the RPC port."""
    import socket

    from aria2_sync import Aria2Daemon

    times: dict[str, list[float]] = {"stop": [], "poke": []}
    for _ in range(rounds):
        for how in ("stop", "poke"):
            aria2 = Aria2Daemon(
                download_dir=os.path.join(root, "idle-dl"), state_dir=os.path.join(root, "idle-st")
            )
            aria2.start()
            try:
                time.sleep(0.3)  # idle, as at the end of a download
                started = time.perf_counter()
                if how == "stop":
                    aria2.stop()
                else:
                    process = aria2._process
                    assert process is not None
                    process.terminate()
                    try:
                        socket.create_connection(("127.0.0.1", aria2.port), timeout=1).close()
                    except OSError:
                        pass
                    process.wait(10)
                times[how].append(time.perf_counter() - started)
            finally:
                aria2.stop()
    return times


def run(quick: bool) -> Result:
    from aria2_sync import find_aria2c

    size = (128 if quick else 1024) * MiB
    rounds = 2 if quick else 7
    aria2c = find_aria2c()
    script = shutil.which("aria2-sync", path=os.path.dirname(sys.executable)) or shutil.which("aria2-sync")
    if script is None:
        raise RuntimeError("the aria2-sync console script is not installed: pip install -e .")
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    samples: dict[str, list[float]] = {
        "ours": [],
        "aria2c": [],
        "aria2c_daemon_options": [],
        "ours_tiny": [],
        "aria2c_tiny": [],
    }
    cpu: dict[str, list[float]] = {"ours": [], "aria2c": [], "aria2c_daemon_options": []}
    phases: list[dict[str, float]] = []
    with workdir(NAME, base) as root, ChildProcesses() as children:
        served, out = os.path.join(root, "served"), os.path.join(root, "out")
        os.makedirs(served)
        os.makedirs(out)
        log(f"{NAME}: writing a {size // MiB} MiB file to {'tmpfs' if base else 'the temp dir'}")
        _make_file(os.path.join(served, "big.bin"), size)
        _make_file(os.path.join(served, "tiny.bin"), 1024)
        server = children.start(
            [sys.executable, os.path.join(HERE, "_fileserver.py"), served],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = server.stdout.readline() if server.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the file server did not start: {line!r}")
        port = int(line.split()[1])
        session = os.path.join(root, "session.txt")
        open(session, "w").close()

        def commands(name: str) -> dict[str, list[str]]:
            url = f"http://127.0.0.1:{port}/{name}"
            return {
                "ours": [script, "get", url, "-d", out, "-o", name, "-q", "--no-progress"],
                "aria2c": [
                    aria2c,
                    "-d",
                    out,
                    "-o",
                    name,
                    "--console-log-level=warn",
                    "--summary-interval=0",
                    url,
                ],
                # What Aria2Daemon changes in how aria2c writes (not judged; for the analysis).
                "aria2c_daemon_options": [
                    aria2c,
                    "-d",
                    out,
                    "-o",
                    name,
                    "--console-log-level=warn",
                    "--summary-interval=0",
                    "--file-allocation=none",
                    "--auto-save-interval=1",
                    f"--save-session={session}",
                    "--save-session-interval=1",
                    url,
                ],
            }

        def clean() -> None:
            for entry in os.listdir(out):
                os.remove(os.path.join(out, entry))

        log(f"{NAME}: {rounds} rounds, the order rotating")
        verified = set()
        contenders = ["ours", "aria2c", "aria2c_daemon_options"]
        for round_no in range(rounds):
            shift = round_no % len(contenders)
            for who in contenders[shift:] + contenders[:shift]:
                clean()
                wall, used = _run_timed(children, commands("big.bin")[who], timeout=300)
                samples[who].append(wall)
                cpu[who].append(used)
                if who not in verified:
                    if not _same(os.path.join(out, "big.bin"), os.path.join(served, "big.bin")):
                        raise RuntimeError(f"{who} produced a file that differs from the served one")
                    verified.add(who)
            if round_no >= 3:
                continue  # the analysis runs below need no more than three samples
            for who in ("ours", "aria2c"):
                clean()
                wall, _ = _run_timed(children, commands("tiny.bin")[who], timeout=60)
                samples[f"{who}_tiny"].append(wall)
            # The same aria2-sync command once more, in-process with timestamps (analysis only).
            clean()
            stamps_file = os.path.join(root, "phases.json")
            argv = [sys.executable, os.path.join(HERE, "_cli_phases.py"), stamps_file] + commands("big.bin")[
                "ours"
            ][1:]
            wall, _ = _run_timed(children, argv, timeout=300)
            with open(stamps_file) as handle:
                phases.append(json.load(handle))
        clean()
        children.stop(server)
        stops = _stop_times(root, 2 if quick else 3)

    ours, base_t = median(samples["ours"]), median(samples["aria2c"])
    _ours_tiny, base_tiny = median(samples["ours_tiny"]), median(samples["aria2c_tiny"])
    mb = size / 1e6
    ratio = Ratio("throughput ours/aria2c", base_t / ours, ">=", 0.95)

    def phase(a: str, b: str) -> float:
        values = [p[b] - p[a] for p in phases if a in p and b in p]
        return median(values) if values else float("nan")

    imported = median([p["imported"] for p in phases if "imported" in p])
    starting = phase("start_enter", "start_leave")
    transfer = phase("add_batch_downloads_enter", "close_enter")
    stopping = phase("stop_enter", "stop_leave")
    closing = phase("close_enter", "close_leave")
    client_cpu = phase("add_batch_downloads_enter_cpu", "close_enter_cpu")
    with_options = median(samples["aria2c_daemon_options"])
    total = median([p["exit"] for p in phases if "exit" in p])
    breakdown = (
        f"aria2-sync get of the big file, in-process timestamps (median of {len(phases)}): imports "
        f"{fmt_ms(imported)}, daemon start {fmt_ms(starting)}, add -> download known complete "
        f"{fmt_ms(transfer)} (bare aria2c's whole run: {fmt_ms(base_t)}), close {fmt_ms(closing)} of which "
        f"daemon stop {fmt_ms(stopping)}; all {fmt_ms(total)} (without interpreter start-up)"
    )
    per_run_stops = ", ".join(fmt_ms(p["stop_leave"] - p["stop_enter"]) for p in phases if "stop_leave" in p)
    stop_note = (
        "Aria2Daemon.stop() at the end: aria2c acts on SIGTERM only when its event loop next wakes "
        "up, which an idle daemon does once a second, so the stop takes from a few ms to 1 s "
        f"(timed runs: {per_run_stops}; 1 KiB runs of aria2-sync: "
        f"{', '.join(fmt_ms(x) for x in samples['ours_tiny'])} against aria2c's {fmt_ms(base_tiny)}). "
        f"On an idle daemon stop() took {fmt_ms(median(stops['stop']))} (median), SIGTERM followed "
        f"by a connect to the RPC port {fmt_ms(median(stops['poke']))}, aria2c still exiting through "
        "its graceful path (session saved)."
    )
    result = Result(
        name=NAME,
        what=TITLE if not quick else f"{size // MiB} MiB over loopback",
        ours=f"aria2-sync get: {ours:.2f} s, {mb / ours:.0f} MB/s (CPU {median(cpu['ours']):.2f} s)",
        baselines=[
            ("bare aria2c", f"{base_t:.2f} s, {mb / base_t:.0f} MB/s (CPU {median(cpu['aria2c']):.2f} s)"),
            (
                "not judged: bare aria2c with the options Aria2Daemon sets (file-allocation=none, "
                "auto-save-interval=1, save-session every 1 s)",
                f"{with_options:.2f} s, {mb / with_options:.0f} MB/s (CPU "
                f"{median(cpu['aria2c_daemon_options']):.2f} s)",
            ),
        ],
        ratios=[ratio],
        target=">= 0.95 x the throughput of bare aria2c",
        notes=[
            "each run (s): aria2-sync "
            + ", ".join(f"{x:.2f}" for x in samples["ours"])
            + "; aria2c "
            + ", ".join(f"{x:.2f}" for x in samples["aria2c"]),
            breakdown,
            stop_note,
        ],
    )
    fastest = min(samples["ours"])
    slow_runs = [x for x in samples["ours"] if x > fastest + 0.5]
    fast_runs = [x for x in samples["ours"] if x <= fastest + 0.5]
    if not ratio.ok:
        result.why = [
            f"{len(slow_runs)} of the {len(samples['ours'])} aria2-sync runs took about 1 s more than the "
            f"others ({', '.join(f'{x:.2f}' for x in slow_runs)} s against "
            f"{', '.join(f'{x:.2f}' for x in fast_runs)} s): that second is Aria2Daemon.stop() waiting "
            "for an idle aria2c to act on its SIGTERM (see the note on Aria2Daemon.stop()); waking it with a connect "
            f"removes it. Without those runs the ratio is {base_t / median(fast_runs):.3f}."
            if slow_runs and fast_runs
            else f"The {ours - base_t:.2f} s between the two medians is not the stop (see the note on Aria2Daemon.stop()).",
            f"What remains is a fixed start-up cost: imports {fmt_ms(imported)} (plus the interpreter's "
            f"own start), starting the private daemon {fmt_ms(starting)}. The download itself (add -> "
            f"complete, {fmt_ms(transfer)}) took {transfer / base_t:.2f}x bare aria2c's whole run "
            f"(bare aria2c with the daemon's options: {with_options / base_t:.2f}x), and the client "
            f"process used {client_cpu:.2f} CPU s meanwhile: the wrapper costs nothing during the "
            "transfer. At 0.95 the target allows "
            f"{fmt_ms(base_t / 0.95 - base_t)} of fixed cost on this {size // MiB} MiB transfer.",
        ]
    return result
