"""Shared plumbing of the benchmarks: results, medians, raw JSON-RPC, daemons, servers, cleanup.

Every benchmark measures ratios against baselines taken in the same run, on the same daemon and
the same HTTP server, with repeats interleaved so that machine noise hits every contender alike.
Absolute times are printed for context only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:  # tests.support.fault_server and an un-installed aria2_sync
    sys.path.insert(0, REPO)

from aria2_sync import Aria2Daemon  # noqa: E402

__all__ = [
    "Result",
    "Ratio",
    "median",
    "fmt_ms",
    "RawRPC",
    "daemon",
    "fault_server",
    "workdir",
    "Deadline",
    "ChildProcesses",
    "purge_daemon",
    "log",
]


def log(message: str) -> None:
    """Progress lines go to stderr so that the table on stdout stays clean."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Ratio:
    """One judged ratio: ``value`` compared with ``limit`` (``>=`` or ``<=``)."""

    label: str
    value: float
    op: str  # ">=" or "<="
    limit: float

    @property
    def ok(self) -> bool:
        return self.value >= self.limit if self.op == ">=" else self.value <= self.limit

    def text(self) -> str:
        return f"{self.label} = {self.value:.4g} (target {self.op} {self.limit:g})"


@dataclasses.dataclass
class Result:
    """What one benchmark prints: what, ours, baselines, ratios, target, PASS/MISS."""

    name: str
    what: str
    ours: str
    baselines: list[tuple[str, str]]
    ratios: list[Ratio]
    target: str
    notes: list[str] = dataclasses.field(default_factory=list)
    why: list[str] = dataclasses.field(default_factory=list)  # measured reasons for a MISS
    table: list[list[str]] = dataclasses.field(default_factory=list)  # header row, then rows
    error: str | None = None  # the benchmark could not run
    #: Machine-readable figures; ``run.py --write`` saves them as ``benchmarks/results/NAME.json``
    #: (the docs plot the scaling curve from that file at build time).
    data: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and all(r.ok for r in self.ratios)

    @property
    def verdict(self) -> str:
        if self.error is not None:
            return "ERROR"
        return "PASS" if self.passed else "MISS"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


class Deadline:
    """A time budget for a loop: ``while not deadline.expired``; raises on ``check()``."""

    def __init__(self, seconds: float, what: str) -> None:
        self.end = time.monotonic() + seconds
        self.what = what
        self.seconds = seconds

    @property
    def expired(self) -> bool:
        return time.monotonic() > self.end

    def check(self) -> None:
        if self.expired:
            raise TimeoutError(f"gave up after {self.seconds:g} s waiting for {self.what}")


def wait_until(predicate: Callable[[], Any], seconds: float, what: str, pause: float = 0.005) -> Any:
    deadline = Deadline(seconds, what)
    while True:
        value = predicate()
        if value:
            return value
        deadline.check()
        time.sleep(pause)


class RawRPC:
    """aria2 JSON-RPC on one raw ``http.client`` keep-alive connection: the floor of the floors.

    No retries, no validation, no models: encode, send, read, decode. Used both as the "floor"
    baseline and as the benchmarks' own back door to the daemon (set-up and clean-up).
    """

    def __init__(self, port: int, secret: str, timeout: float = 60.0) -> None:
        self.port = port
        self.token = f"token:{secret}"
        self.timeout = timeout
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def _post(self, payload: dict[str, Any]) -> Any:
        body = json.dumps(payload)
        for attempt in (1, 2):
            try:
                self.conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
                data = self.conn.getresponse().read()
                break
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()  # a keep-alive connection the daemon closed: reconnect once
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt == 2:
                    raise
        answer = json.loads(data)
        if answer.get("error"):
            raise RuntimeError(f"aria2 error: {answer['error']}")
        return answer["result"]

    def call(self, method: str, *params: Any) -> Any:
        return self._post({"jsonrpc": "2.0", "id": 1, "method": method, "params": [self.token, *params]})

    def multicall(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        inner = [{"methodName": m, "params": [self.token, *p]} for m, p in calls]
        return self._post({"jsonrpc": "2.0", "id": 1, "method": "system.multicall", "params": [inner]})

    def close(self) -> None:
        self.conn.close()


def purge_daemon(rpc: RawRPC, seconds: float = 30.0) -> None:
    """Remove every download the daemon has (not their files) and wait until it is empty."""
    deadline = Deadline(seconds, "the daemon to empty")
    keys = ["gid"]
    while True:
        active, waiting = rpc.multicall(
            [("aria2.tellActive", [keys]), ("aria2.tellWaiting", [0, 100000, keys])]
        )
        gids = [item["gid"] for item in active[0] + waiting[0]]
        if gids:
            rpc.multicall([("aria2.forceRemove", [gid]) for gid in gids])
        rpc.call("aria2.purgeDownloadResult")
        stat = rpc.call("aria2.getGlobalStat")
        if stat["numActive"] == stat["numWaiting"] == stat["numStopped"] == "0":
            return
        deadline.check()
        time.sleep(0.02)


@contextlib.contextmanager
def workdir(prefix: str, base: str | None = None) -> Iterator[str]:
    path = tempfile.mkdtemp(prefix=f"aria2_sync-bench-{prefix}-", dir=base)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def daemon(root: str, **options: Any) -> Iterator[Aria2Daemon]:
    """A private aria2c (stopped by PID on exit) with downloads in ``root/downloads``."""
    instance = Aria2Daemon(
        download_dir=os.path.join(root, "downloads"),
        state_dir=os.path.join(root, "state"),
        options=options or None,
    ).start()
    try:
        yield instance
    finally:
        instance.stop()


@contextlib.contextmanager
def fault_server(server_class: type | None = None) -> Iterator[Any]:
    from tests.support.fault_server import FaultServer

    server = (server_class or FaultServer)()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class ChildProcesses:
    """Processes a benchmark starts; each is stopped by its own PID (TERM, then KILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv), **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout)

    def close(self) -> None:
        for proc in self.procs:
            self.stop(proc)
        self.procs.clear()

    def __enter__(self) -> ChildProcesses:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def interleaved(contenders: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run each contender ``repeats`` times, rotating the order each round; collect the times."""
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(contenders[name]())
    return samples
