"""import: ``import aria2_sync`` in a fresh interpreter, against ``import requests``.

Each sample is a new ``python`` process (the interpreter running the benchmarks, bytecode caches
warmed by one untimed import of each) that times only the import statement with
``time.perf_counter``, so interpreter start-up is left out.
The two imports alternate; medians are compared. ``python -X importtime`` of ``import aria2_sync``
names the slowest modules beyond what requests itself imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from _common import REPO, Ratio, Result, fmt_ms, interleaved, log, median

NAME = "import"
TITLE = "import aria2_sync"

_PROGRAM = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


#: The environment the fresh interpreters run in: bytecode caching on, into a private directory
#: (``run`` sets it), so that aria2_sync loads from .pyc files as requests does from the ones pip
#: compiled at install time. An editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise
#: compile aria2_sync's source on every import while requests loads bytecode.
_ENV: dict[str, str] = {}


def _one(module: str, env: dict[str, str] | None = None) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM.format(module=module)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env=env or _ENV or None,
    ).stdout
    return float(out.strip().splitlines()[-1])


def _importtime(module: str) -> list[tuple[int, int, int, str]]:
    """``python -X importtime -c 'import module'`` as (self us, cumulative us, depth, name) rows."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env=_ENV or None,
    ).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or "cumulative" in line:
            continue
        self_us = int(parts[0].split(":", 1)[1])
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip(" "))) // 2
        rows.append((self_us, int(parts[1]), depth, name.strip()))
    return rows


def _breakdown() -> tuple[float, list[tuple[int, str]]]:
    """aria2_sync's own modules' self time, and the largest imports that requests does not make.

    Only the outermost of those are listed (an import made by aria2_sync's own code), so that no
    time is counted twice.
    """
    rows = _importtime("aria2_sync")
    known = {name for _, _, _, name in _importtime("requests")}
    own = sum(self_us for self_us, _, _, name in rows if name.startswith("aria2_sync"))
    extra = []
    for index, (_, cumulative, depth, name) in enumerate(rows):
        if name in known or name.startswith("aria2_sync") or name.startswith("__editable__"):
            continue
        parent = next((r[3] for r in rows[index + 1 :] if r[2] < depth), "")
        if parent.startswith("aria2_sync") or parent == "":
            extra.append((cumulative, name))
    return own / 1e6, sorted(extra, reverse=True)[:6]


def run(quick: bool) -> Result:
    with tempfile.TemporaryDirectory(prefix="aria2_sync-bench-pycache-") as cache:
        _ENV.clear()
        _ENV.update({k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
        _ENV["PYTHONPYCACHEPREFIX"] = cache
        try:
            return _run(quick)
        finally:
            _ENV.clear()


def _run(quick: bool) -> Result:
    repeats = 7 if quick else 21
    for module in ("aria2_sync", "requests", "requests, attrs, urllib3", "aria2_sync.client"):
        _one(module)  # writes the bytecode caches
    cold_env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cold_env.pop("PYTHONPYCACHEPREFIX", None)
    cold = interleaved(
        {"aria2_sync": lambda: _one("aria2_sync", cold_env), "requests": lambda: _one("requests", cold_env)},
        3,
    )
    log(f"{NAME}: {repeats} fresh interpreters each, alternating")
    samples: dict[str, list[float]] = interleaved(
        {
            "aria2_sync": lambda: _one("aria2_sync"),
            "requests": lambda: _one("requests"),
            "deps": lambda: _one("requests, attrs, urllib3"),
            "client": lambda: _one("aria2_sync.client"),
        },
        repeats,
    )
    ours, base = median(samples["aria2_sync"]), median(samples["requests"])
    deps, client_only = median(samples["deps"]), median(samples["client"])
    ratio = Ratio("aria2_sync/requests", ours / base, "<=", 1.3)
    own, top_level = _breakdown()
    listed = ", ".join(f"{name} {us / 1000:.1f} ms" for us, name in top_level)
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"import aria2_sync {fmt_ms(ours)}",
        baselines=[("import requests", fmt_ms(base))],
        ratios=[ratio],
        target="<= 1.3 x import requests",
        notes=[
            "bytecode caches on for both (a private PYTHONPYCACHEPREFIX); with "
            "PYTHONDONTWRITEBYTECODE=1 and this editable install, aria2_sync is compiled from source "
            f"on every import: {fmt_ms(median(cold['aria2_sync']))} against requests' "
            f"{fmt_ms(median(cold['requests']))} (whose .pyc files pip wrote at install)",
            f"import requests, attrs, urllib3 (the runtime dependencies alone): {fmt_ms(deps)} "
            f"({deps / base:.2f}x); import aria2_sync.client: {fmt_ms(client_only)} ({client_only / base:.2f}x)",
            f"python -X importtime: aria2_sync's own modules {fmt_ms(own)} (self time); the largest "
            f"imports requests does not make, made by aria2_sync: {listed}",
        ],
    )
    if not ratio.ok:
        result.why = [
            f"import aria2_sync takes {fmt_ms(ours - base)} more than import requests: its own modules "
            f"{fmt_ms(own)}, and imports requests does not make: {listed} (python -X importtime, "
            "cumulative).",
            f"The dependencies alone (requests, attrs, urllib3) take {deps / base:.2f}x import requests, "
            f"so the target leaves {fmt_ms(max(0.0, 1.3 * base - deps))} for everything aria2_sync "
            "itself does at import; importing only what the client facade needs, and the rest "
            "(the daemon, the progress display, the state store) on first use, is the way there.",
        ]
    return result
