"""stores: what the shared state costs a monitor tick, SQLite against Redis.

Set-up: one aria2c, one ``redis-server`` of the benchmark's own (Debian's package, on a free port
of 127.0.0.1, no persistence: the cost of the round trips and scripts, not of the disk), and three
clients on the daemon, each with 1000 downloads of its own added paused: one keeps its state in
memory (``state=None``), one in an SQLite file (``state=<path>``), one in Redis
(``state="redis://..."``). Their monitors' ticks run interleaved (medians).

* ours: ``Monitor.tick()`` of the SQLite and of the Redis client: the daemon's multicall, and the
  refresh of the 1000 watched rows from the store (one ``SELECT`` for SQLite, one Lua script for
  Redis) that follows restarts made by other processes;
* baselines: the same tick of the client with SQLite (the store Redis is measured against) and
  without a store (context: what sharing the state costs a tick at all);
* judged: the Redis client's tick over the SQLite client's, <= 1.25 (a networked store, on
  loopback here, may cost a tick a quarter more than a local file); each store's share of a
  tick, per download, is printed beside.

Needs ``redis-server`` on PATH and redis-py (``pip install -e '.[bench,redis]'``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

from _common import Ratio, Result, daemon, fault_server, fmt_ms, interleaved, log, median, workdir

NAME = "stores"
TITLE = "a monitor tick of 1000 downloads with shared state: SQLite and Redis"
LIMIT = 1.25


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_redis(directory: str) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "the stores benchmark needs redis-server on PATH (Debian: apt install redis-server)"
        )
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    command += ["--dir", directory]
    with open(os.path.join(directory, "redis.log"), "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start (see its log in the benchmark's directory)")
        time.sleep(0.02)


def run(quick: bool) -> Result:
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of

    count = 1000
    repeats = 5 if quick else 15
    with (
        workdir(NAME) as root,
        fault_server() as server,
        daemon(root, **{"max-download-result": 5000}) as aria2,
    ):
        redis_process, port = _start_redis(root)
        states = {
            "memory": None,
            "sqlite": os.path.join(root, "state.db"),
            "redis": f"redis://127.0.0.1:{port}/0",
        }
        clients = {}
        try:
            for name, state in states.items():
                clients[name] = Aria2Client(
                    aria2.rpc_url,
                    aria2.secret,
                    verbose=False,
                    poll_interval=3600.0,
                    notifications=False,
                    state=state,
                )
                items = [
                    (server.url(f"{name}{i}.bin"), f"{aria2.download_dir}/{name}{i}.bin")
                    for i in range(count)
                ]
                clients[name].add_batch_downloads(items, options={"pause": "true"})
            import aria2_sync.engine.monitor as monitor_module

            monitor_module.PARKED_READ_ALL = count + 1  # every download read at every tick

            def tick_of(name: str):  # type: ignore[no-untyped-def]
                monitor = engine_of(clients[name]).monitor
                assert monitor is not None

                def tick() -> float:
                    started = time.perf_counter()
                    watched = monitor.tick()
                    elapsed = time.perf_counter() - started
                    assert watched == count, (name, watched)
                    return elapsed

                return tick

            for name in states:  # a first tick each: every download read in full once
                tick_of(name)()
            log(f"{NAME}: 3 clients x {count} paused downloads; {repeats} interleaved rounds")
            samples = interleaved({name: tick_of(name) for name in states}, repeats)
        finally:
            for client in clients.values():
                client.close()
            redis_process.terminate()
            try:
                redis_process.wait(10)
            except subprocess.TimeoutExpired:
                redis_process.kill()
                redis_process.wait(10)

    memory, sqlite, redis = (median(samples[name]) for name in states)
    ratios = [Ratio("redis tick / sqlite tick", redis / sqlite, "<=", LIMIT)]
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"tick with Redis {fmt_ms(redis)}",
        baselines=[
            ("tick with SQLite", fmt_ms(sqlite)),
            ("not judged: tick without a store (state=None)", fmt_ms(memory)),
        ],
        ratios=ratios,
        target=f"<= {LIMIT} x the tick with SQLite",
        notes=[
            f"the store's share of a tick: SQLite {fmt_ms(sqlite - memory)} "
            f"({(sqlite - memory) / count * 1e6:.1f} us per download), Redis {fmt_ms(redis - memory)} "
            f"({(redis - memory) / count * 1e6:.1f} us per download); with a store a tick costs "
            f"{sqlite / memory:.2f}x (SQLite) and {redis / memory:.2f}x (Redis) the tick without one",
            "redis-server on 127.0.0.1 without persistence; SQLite in WAL mode on this machine's disk",
        ],
    )
    if not result.passed:
        result.why = [
            "Both stores refresh the 1000 watched rows every tick (so that restarts made by other "
            "processes are followed): one SELECT for SQLite, one Lua script and its JSON reply "
            "for Redis; the shares above say how much more Redis's costs."
        ]
    return result
