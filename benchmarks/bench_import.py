"""import: ``import aria2_sync`` in a fresh interpreter, against ``import requests``.

Each sample is a new ``python`` process (the interpreter running the benchmarks, bytecode caches
warmed by one untimed import of each) that times only the import statement with
``time.perf_counter``, so interpreter start-up is left out.
The two imports alternate; medians are compared. ``python -X importtime`` of ``import aria2_sync``
names the slowest modules beyond what requests itself imports.

For context (not judged), so that what is deferred to first use stays visible: ``from aria2_sync
import Aria2Client``, and what a program's first ``Aria2Client(rpc_url=...)`` pays on top of the
import. The client is built against a loopback port where nothing listens (building one sends
nothing; its monitor thread starts and is closed again), and the modules that construction loads
are then imported, timed, after ``import aria2_sync`` in another fresh interpreter: that is the
import time deferred to the constructor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from _common import REPO, Ratio, Result, fmt_ms, interleaved, log, median

NAME = "import"
TITLE = "import aria2_sync"

_PROGRAM = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_FROM_IMPORT = (
    "import time; t = time.perf_counter(); from {module} import Aria2Client; print(time.perf_counter() - t)"
)


#: The environment the fresh interpreters run in: bytecode caching on, into a private directory
#: (``run`` sets it), so that aria2_sync loads from .pyc files as requests does from the ones pip
#: compiled at install time. An editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise
#: compile aria2_sync's source on every import while requests loads bytecode.
_ENV: dict[str, str] = {}


def _one(module: str, env: dict[str, str] | None = None, program: str = _PROGRAM) -> float:
    out = subprocess.run(
        [sys.executable, "-c", program.format(module=module)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env=env or _ENV or None,
    ).stdout
    return float(out.strip().splitlines()[-1])


#: A first client against a port where nothing listens: the construction time, and the modules it
#: loaded that ``import aria2_sync`` had not.
_FIRST_CLIENT = """
import json, socket, sys, time
from aria2_sync import Aria2Client
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
before = set(sys.modules)
t = time.perf_counter()
client = Aria2Client(rpc_url=f"http://127.0.0.1:{port}/jsonrpc")
took = time.perf_counter() - t
loaded = sorted(set(sys.modules) - before)
client.close()
print(json.dumps({"construct": took, "loaded": loaded}))
"""

#: The import time of the modules a first construction loads, after ``import aria2_sync``.
_DEFERRED = (
    "import importlib, sys, time; import aria2_sync; t = time.perf_counter()\n"
    "for name in sys.argv[1:]: importlib.import_module(name)\n"
    "print(time.perf_counter() - t)"
)


def _python(program: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
        env=_ENV or None,
    ).stdout


def _first_client() -> tuple[float, list[str]]:
    answer = json.loads(_python(_FIRST_CLIENT).strip().splitlines()[-1])
    return float(answer["construct"]), list(answer["loaded"])


#: The attrs classes that ``import aria2_sync`` defines (each costs about 0.25 ms to define, and
#: one of them is enough to make every program import attrs).
_ATTRS_CLASSES = """
import json, sys
import aria2_sync
found = sorted(
    f"{name.rpartition('.')[2]}.{value.__name__}"
    for name, module in list(sys.modules.items()) if name.startswith("aria2_sync")
    for value in vars(module).values()
    if isinstance(value, type) and value.__module__ == name and hasattr(value, "__attrs_attrs__")
)
print(json.dumps(found))
"""


def _attrs_classes() -> list[str]:
    return list(json.loads(_python(_ATTRS_CLASSES).strip().splitlines()[-1]))


def _deferred_import(modules: list[str]) -> float:
    return float(_python(_DEFERRED, *modules).strip().splitlines()[-1])


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
    _, loaded = _first_client()
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
            "from": lambda: _one("aria2_sync", program=_FROM_IMPORT),
            "construct": lambda: _first_client()[0],
            "deferred": lambda: _deferred_import(loaded),
        },
        repeats,
    )
    from_import, construct = median(samples["from"]), median(samples["construct"])
    deferred = median(samples["deferred"])
    ours, base = median(samples["aria2_sync"]), median(samples["requests"])
    deps, client_only = median(samples["deps"]), median(samples["client"])
    ratio = Ratio("aria2_sync/requests", ours / base, "<=", 1.3)
    own, top_level = _breakdown()
    attrs_classes = _attrs_classes()
    attrs_note = (
        f"attrs classes defined at import: {len(attrs_classes)} ({', '.join(attrs_classes)})"
        if attrs_classes
        else "no attrs class is defined at import (attrs is not imported)"
    )
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
            f"from aria2_sync import Aria2Client: {fmt_ms(from_import)} ({from_import / base:.2f}x); a first "
            f"Aria2Client(rpc_url=...) (a loopback port where nothing listens) takes {fmt_ms(construct)}, "
            f"of which importing what it loads ({', '.join(loaded) or 'nothing'}) is {fmt_ms(deferred)}",
            f"python -X importtime: aria2_sync's own modules {fmt_ms(own)} (self time); the largest "
            f"imports requests does not make, made by aria2_sync: {listed}",
            attrs_note,
        ],
    )
    if not ratio.ok:
        result.why = [
            f"import aria2_sync takes {fmt_ms(ours - base)} more than import requests: its own modules "
            f"{fmt_ms(own)}, and imports requests does not make: {listed} (python -X importtime, "
            "cumulative).",
            f"The dependencies alone (requests, attrs, urllib3) take {deps / base:.2f}x import requests, "
            f"so the target leaves {fmt_ms(max(0.0, 1.3 * base - deps))} for everything aria2_sync "
            "itself does at import while attrs is imported at all. The daemon, the progress display, "
            "the state store and the WebSocket library are already loaded on first use; what is left "
            f"is attrs: {attrs_note}. The public snapshots and policies (Progress, FileInfo, "
            "BatchProgress, GlobalStats, RestartPolicy, DownloadResult) are attrs classes by design; "
            "plain __slots__ classes in their place would leave attrs unimported.",
        ]
    return result
