"""Run ``aria2-sync`` in this process and time its phases (for the throughput benchmark's analysis).

    python benchmarks/_cli_phases.py OUT.json get URL -d DIR -o NAME -q --no-progress

Same code path as the console script (``aria2_sync.ui.cli.main``), with timestamps taken around the
daemon's start and stop, the add, and the client's close. Writes them to OUT.json as seconds
since the interpreter started running this file. Used only to explain the judged figure, which
is measured on the real console script.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import functools  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402

import aria2_sync.ui.cli as cli  # noqa: E402
from aria2_sync import Aria2Client, Aria2Daemon  # noqa: E402

stamps = {"imported": time.perf_counter() - STARTED}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process only, all its threads
    return usage.ru_utime + usage.ru_stime


def _wrap(owner: type, name: str) -> None:
    real = getattr(owner, name)

    @functools.wraps(real)
    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        stamps.setdefault(f"{name}_enter", time.perf_counter() - STARTED)
        stamps.setdefault(f"{name}_enter_cpu", _cpu())
        try:
            return real(*args, **kwargs)
        finally:
            stamps.setdefault(f"{name}_leave", time.perf_counter() - STARTED)
            stamps.setdefault(f"{name}_leave_cpu", _cpu())

    setattr(owner, name, timed)


for _owner, _name in (
    (Aria2Daemon, "start"),
    (Aria2Daemon, "stop"),
    (Aria2Client, "add_batch_downloads"),
    (Aria2Client, "close"),
):
    _wrap(_owner, _name)

code = cli.main(sys.argv[2:])
stamps["exit"] = time.perf_counter() - STARTED
with open(sys.argv[1], "w") as handle:
    json.dump(stamps, handle)
sys.exit(code)
