"""throughput: 1 GiB over loopback, ``aria2-sync get URL`` against bare ``aria2c URL``.

Set-up: a 1 GiB file (128 MiB with ``--quick``) on tmpfs (``/dev/shm`` when there is one), served
by ``benchmarks/_fileserver.py`` in its own process (``socket.sendfile``, Range support), and
downloaded to tmpfs, so that neither the server nor a disk is what is measured. Seven rounds (two
with ``--quick``), the order of the commands rotating; the downloaded file is deleted between runs.
aria2c is CPU-bound here (about one core), so this figure is the most sensitive to other load
on the machine: compare the medians, not single runs.

* ours: ``aria2-sync get URL -d DIR -o NAME -q --no-progress`` (the console script of this
  environment: it starts a private aria2c with ``Aria2Daemon``'s defaults, downloads, stops the
  daemon, exits).
* baseline: ``aria2c -d DIR -o NAME --console-log-level=warn --summary-interval=0 URL`` with the
  same aria2c binary (aria2_sync.find_aria2c()), aria2c's own defaults.
* not judged, to tell the daemon's settings from the wrapper: the same bare aria2c with the
  options ``Aria2Daemon`` sets that change how aria2c writes (file-allocation=none,
  auto-save-interval=1, a session file saved every second, disk-cache=0).

What is measured, per run: the server logs (``time.monotonic()``, one clock for every process)
when it began sending the file and when it handed the last byte to the socket. **transfer** =
last byte - first byte: the download itself, which the daemon's settings and any work the
wrapper does meanwhile (its progress polling) can slow down. **Judged: file size / transfer,
ours over bare aria2c's (medians).** Also reported: the wall time of the whole command (start to
exit) and its two fixed costs: start -> first byte (interpreter, imports, daemon start, add,
aria2's connect) and last byte -> exit (aria2 finishing the file, the wrapper learning of it,
daemon stop, exit).

For the analysis only: once per round (three rounds at most) the same ``aria2-sync get`` run
in-process by ``benchmarks/_cli_phases.py``, which timestamps its phases (imports, daemon
start, add, download complete, daemon stop) and the client process's CPU during the transfer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence

from _common import HERE, ChildProcesses, Deadline, Ratio, Result, fmt_ms, log, median, workdir

NAME = "throughput"
TITLE = "1 GiB over loopback"
MiB = 1 << 20
CONTENDERS = ("ours", "aria2c", "aria2c_daemon_options")


def _run_timed(children: ChildProcesses, argv: Sequence[str], timeout: float) -> dict[str, float]:
    """Run a command to its end: its start and end (``time.monotonic()``), and the CPU seconds
    of it and its reaped children."""
    started = time.monotonic()
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            ended = time.monotonic()
            proc.returncode = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            children.stop(proc)
            raise TimeoutError(f"{argv[0]} did not finish within {timeout:g} s")
        time.sleep(0.002)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited with {proc.returncode}: {err.strip()[-300:]}")
    return {"started": started, "ended": ended, "cpu": usage.ru_utime + usage.ru_stime}


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


class _ServerLog:
    """The file server's log, read run by run: when the body of a file began and ended."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0

    def next_run(self, name: str, size: int) -> tuple[float, float]:
        """(first byte, last byte) of the bodies served for ``name`` since the last call; waits
        (bounded) for the server to log the end of every body it began."""
        deadline = Deadline(10, f"the file server's log of {name}")
        while True:
            with open(self.path) as handle:
                handle.seek(self.offset)
                text = handle.read()
            complete = text[: text.rfind("\n") + 1]
            entries = [json.loads(line) for line in complete.splitlines()]
            mine = [entry for entry in entries if entry["file"] == name]
            ended = [entry for entry in mine if "sent" in entry]
            if mine and len(ended) * 2 == len(mine) and sum(entry["sent"] for entry in ended) >= size:
                self.offset += len(complete.encode())
                first = min(entry["first"] for entry in mine if "first" in entry)
                return first, max(entry["last"] for entry in ended)
            deadline.check()
            time.sleep(0.005)


def run(quick: bool) -> Result:
    from aria2_sync import find_aria2c

    size = (128 if quick else 1024) * MiB
    rounds = 2 if quick else 7
    aria2c = find_aria2c()
    script = shutil.which("aria2-sync", path=os.path.dirname(sys.executable)) or shutil.which("aria2-sync")
    if script is None:
        raise RuntimeError("the aria2-sync console script is not installed: pip install -e .")
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    runs: dict[str, list[dict[str, float]]] = {who: [] for who in CONTENDERS}
    phases: list[dict[str, float]] = []
    with workdir(NAME, base) as root, ChildProcesses() as children:
        served, out = os.path.join(root, "served"), os.path.join(root, "out")
        os.makedirs(served)
        os.makedirs(out)
        log(f"{NAME}: writing a {size // MiB} MiB file to {'tmpfs' if base else 'the temp dir'}")
        _make_file(os.path.join(served, "big.bin"), size)
        server_log = _ServerLog(os.path.join(root, "served.log"))
        server = children.start(
            [sys.executable, os.path.join(HERE, "_fileserver.py"), served, "--log", server_log.path],
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
        url = f"http://127.0.0.1:{port}/big.bin"
        bare = [aria2c, "-d", out, "-o", "big.bin", "--console-log-level=warn", "--summary-interval=0"]
        commands = {
            "ours": [script, "get", url, "-d", out, "-o", "big.bin", "-q", "--no-progress"],
            "aria2c": bare + [url],
            # What Aria2Daemon changes in how aria2c writes (not judged; for the analysis).
            "aria2c_daemon_options": bare
            + [
                "--file-allocation=none",
                "--auto-save-interval=1",
                f"--save-session={session}",
                "--save-session-interval=1",
                "--disk-cache=0",
                url,
            ],
        }

        def clean() -> None:
            for entry in os.listdir(out):
                os.remove(os.path.join(out, entry))

        log(f"{NAME}: {rounds} rounds, the order rotating")
        verified = set()
        for round_no in range(rounds):
            shift = round_no % len(CONTENDERS)
            for who in CONTENDERS[shift:] + CONTENDERS[:shift]:
                clean()
                stats = _run_timed(children, commands[who], timeout=300)
                stats["first"], stats["last"] = server_log.next_run("big.bin", size)
                runs[who].append(stats)
                if who not in verified:
                    if not _same(os.path.join(out, "big.bin"), os.path.join(served, "big.bin")):
                        raise RuntimeError(f"{who} produced a file that differs from the served one")
                    verified.add(who)
            if round_no >= 3:
                continue  # the analysis runs below need no more than three samples
            # The same aria2-sync command once more, in-process with timestamps (analysis only).
            clean()
            stamps_file = os.path.join(root, "phases.json")
            argv = [sys.executable, os.path.join(HERE, "_cli_phases.py"), stamps_file] + commands["ours"][1:]
            _run_timed(children, argv, timeout=300)
            server_log.next_run("big.bin", size)
            with open(stamps_file) as handle:
                phases.append(json.load(handle))
        clean()
        children.stop(server)
    return _result(runs, phases, size, quick)


def _result(
    runs: dict[str, list[dict[str, float]]], phases: list[dict[str, float]], size: int, quick: bool
) -> Result:
    mb = size / 1e6

    def med(who: str, what: str) -> float:
        values = {
            "transfer": [r["last"] - r["first"] for r in runs[who]],
            "wall": [r["ended"] - r["started"] for r in runs[who]],
            "head": [r["first"] - r["started"] for r in runs[who]],
            "tail": [r["ended"] - r["last"] for r in runs[who]],
            "cpu": [r["cpu"] for r in runs[who]],
        }[what]
        return median(values)

    def phase(a: str, b: str) -> float:
        values = [p[b] - p[a] for p in phases if a in p and b in p]
        return median(values) if values else float("nan")

    ours, bare, options = (med(who, "transfer") for who in CONTENDERS)
    ratio = Ratio("throughput ours/aria2c (transfer, first to last byte)", bare / ours, ">=", 0.95)

    def line(who: str) -> str:
        return (
            f"transfer {med(who, 'transfer'):.2f} s ({mb / med(who, 'transfer'):.0f} MB/s); whole command "
            f"{med(who, 'wall'):.2f} s = start -> first byte {fmt_ms(med(who, 'head'))} + transfer + last "
            f"byte -> exit {fmt_ms(med(who, 'tail'))} (CPU {med(who, 'cpu'):.2f} s)"
        )

    wall_ratio = med("aria2c", "wall") / med("ours", "wall")
    imported = median([p["imported"] for p in phases if "imported" in p]) if phases else float("nan")
    breakdown = (
        f"aria2-sync get in-process, timestamps (median of {len(phases)}): imports {fmt_ms(imported)}, "
        f"daemon start {fmt_ms(phase('start_enter', 'start_leave'))}, add -> download known complete "
        f"{fmt_ms(phase('add_batch_downloads_enter', 'close_enter'))}, close "
        f"{fmt_ms(phase('close_enter', 'close_leave'))} of which daemon stop "
        f"{fmt_ms(phase('stop_enter', 'stop_leave'))}; the client process used "
        f"{phase('add_batch_downloads_enter_cpu', 'close_enter_cpu'):.3f} CPU s from the add to the close"
    )
    result = Result(
        name=NAME,
        what=TITLE if not quick else f"{size // MiB} MiB over loopback",
        ours=f"aria2-sync get: {line('ours')}",
        baselines=[
            ("bare aria2c", line("aria2c")),
            (
                "not judged: bare aria2c with the options Aria2Daemon sets (file-allocation=none, "
                "auto-save-interval=1, session saved every 1 s, disk-cache=0)",
                line("aria2c_daemon_options"),
            ),
        ],
        ratios=[ratio],
        target=">= 0.95 x the throughput of bare aria2c (transfer: first to last byte; fixed costs stated)",
        notes=[
            "transfer per run (s): aria2-sync "
            + ", ".join(f"{r['last'] - r['first']:.2f}" for r in runs["ours"])
            + "; aria2c "
            + ", ".join(f"{r['last'] - r['first']:.2f}" for r in runs["aria2c"])
            + "; aria2c with the daemon's options "
            + ", ".join(f"{r['last'] - r['first']:.2f}" for r in runs["aria2c_daemon_options"]),
            f"whole command, start to exit: ours/aria2c throughput {wall_ratio:.3f} (medians); "
            f"the wrapper against aria2c with the same options, transfer only: {options / ours:.3f}",
            breakdown,
        ],
    )
    if not ratio.ok:
        result.why = [
            f"aria2c with the daemon's options transferred in {options:.2f} s against bare aria2c's "
            f"{bare:.2f} s ({bare / options:.2f}x its throughput), aria2-sync get in {ours:.2f} s: the "
            f"settings cost {'nothing' if options <= bare else f'{options - bare:.2f} s'}, the "
            f"wrapper's work during the transfer {ours - options:+.2f} s."
        ]
    return result
