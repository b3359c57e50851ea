"""refresh: one refresh of 1000 watched downloads.

Set-up: one aria2c, one FaultServer, 1000 downloads added paused (``pause=true``) by our client in
one batch, so all 1000 stay watched and the daemon's state is the same for every contender.

* ours: ``engine_of(client).monitor.tick()`` (the monitor's whole refresh: the multicall of the
  keys that move, ``aria2_sync.models.TICK_KEYS``, the snapshots, the state machine), called in the foreground while the monitor
  thread sleeps (``poll_interval=3600``); and ``get_batch_progress`` of the batch (the same read
  plus the counts and a ``BatchProgress``). Both are judged against the floor.
* floor (judged): one raw ``system.multicall`` of 1000 ``aria2.tellStatus`` asking for the 7 keys
  a progress view needs (gid, status, totalLength, completedLength, downloadSpeed, errorCode,
  errorMessage), sent on an ``http.client`` keep-alive connection to 127.0.0.1 as ``json.dumps``
  of the request, the answer read whole and decoded with ``json.loads``; nothing more.
* context: the same raw multicall with the 13 keys the library used to read every tick (the 7,
  uploadSpeed, connections, followedBy, following, dir, files): the old floor.
* baselines: one ``aria2.tellStatus`` per GID on one ``requests.Session`` with the same 7 keys
  (the reference implementation's way), and aria2p's ``API.get_downloads(gids)`` (all keys).
"""

from __future__ import annotations

import json
import time
from typing import Any

from _common import Ratio, RawRPC, Result, daemon, fault_server, fmt_ms, interleaved, log, median, workdir

NAME = "refresh"
TITLE = "refresh 1000 watched downloads"


#: What a progress view needs: the judged floor's keys.
VIEW_KEYS = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode", "errorMessage"]

#: The keys the library read every tick before it read only what changes (the old floor).
OLD_KEYS = [
    "gid",
    "status",
    "totalLength",
    "completedLength",
    "downloadSpeed",
    "uploadSpeed",
    "connections",
    "errorCode",
    "errorMessage",
    "dir",
    "files",
    "followedBy",
    "following",
]


def run(quick: bool) -> Result:
    import requests

    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of
    from aria2_sync.models import TICK_KEYS

    count = 1000
    repeats = 3 if quick else 9
    with workdir(NAME) as root, fault_server() as server, daemon(root) as aria2:
        client = Aria2Client(
            aria2.rpc_url, aria2.secret, verbose=False, poll_interval=3600.0, notifications=False
        )
        raw = RawRPC(aria2.port, aria2.secret)
        session = requests.Session()
        session.trust_env = False
        try:
            items = [(server.url(f"r{i}.bin"), f"{aria2.download_dir}/r{i}.bin") for i in range(count)]
            batch_id = client.add_batch_downloads(items, options={"pause": "true"})
            gids = [future.gid for future in client.batch_futures(batch_id)]
            monitor = engine_of(client).monitor
            assert monitor is not None
            # Let the first (background) tick happen, then the monitor sleeps for an hour.
            deadline = time.monotonic() + 10
            while monitor.ticks < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.05)

            import aria2p
            from loguru import logger as loguru_logger

            loguru_logger.disable("aria2p")
            api = aria2p.API(aria2p.Client(host="http://127.0.0.1", port=aria2.port, secret=aria2.secret))

            rpc_in_tick: list[float] = []
            real_multicall = monitor.rpc.multicall

            def timed_multicall(calls: Any, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return real_multicall(calls, *args, **kwargs)
                finally:
                    rpc_in_tick.append(time.perf_counter() - started)

            monitor.rpc.multicall = timed_multicall  # type: ignore[method-assign]

            # The monitor reads many parked (paused) downloads in slices; this benchmark is about
            # reading all of them, so the slicing is off for it.
            import aria2_sync.engine.monitor as monitor_module

            monitor_module.PARKED_READ_ALL = count + 1

            def ours_tick() -> float:
                started = time.perf_counter()
                watched = monitor.tick()
                elapsed = time.perf_counter() - started
                assert watched == count, watched
                return elapsed

            def ours_batch() -> float:
                started = time.perf_counter()
                progress = client.get_batch_progress(batch_id)
                elapsed = time.perf_counter() - started
                assert progress is not None and progress.paused_count == count, progress
                return elapsed

            token = f"token:{aria2.secret}"

            def session_loop(with_keys: Any = VIEW_KEYS) -> float:
                started = time.perf_counter()
                for n, gid in enumerate(gids):
                    params = [token, gid, with_keys] if with_keys else [token, gid]
                    answer = session.post(
                        aria2.rpc_url,
                        data=json.dumps(
                            {"jsonrpc": "2.0", "id": n, "method": "aria2.tellStatus", "params": params}
                        ),
                        timeout=10,
                    ).json()
                    assert "result" in answer
                return time.perf_counter() - started

            def aria2p_loop() -> float:
                started = time.perf_counter()
                downloads = api.get_downloads(gids)
                elapsed = time.perf_counter() - started
                assert len(downloads) == count
                return elapsed

            def raw_floor(keys: list[str]) -> float:
                started = time.perf_counter()
                results = raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])
                elapsed = time.perf_counter() - started
                assert len(results) == count
                return elapsed

            log(f"{NAME}: {count} paused downloads watched; {repeats} interleaved rounds")
            # Fast contenders get more samples (three per round); slow baselines one per round.
            fast = interleaved(
                {
                    "tick": ours_tick,
                    "batch": ours_batch,
                    "floor": lambda: raw_floor(VIEW_KEYS),
                    "floor_old": lambda: raw_floor(OLD_KEYS),
                    "floor_tick_keys": lambda: raw_floor(list(TICK_KEYS)),
                },
                repeats * 3,
            )
            slow = interleaved({"session": session_loop, "aria2p": aria2p_loop}, repeats)
            sizes = {
                name: len(json.dumps(raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])))
                for name, keys in (("view", VIEW_KEYS), ("old", OLD_KEYS), ("tick", list(TICK_KEYS)))
            }
        finally:
            client.close()
            raw.close()
            session.close()

    tick, batch, fl = median(fast["tick"]), median(fast["batch"]), median(fast["floor"])
    fl_old, fl_tick_keys = median(fast["floor_old"]), median(fast["floor_tick_keys"])
    sess, a2p = median(slow["session"]), median(slow["aria2p"])
    rpc_part = median(rpc_in_tick) if rpc_in_tick else float("nan")
    python_part = tick - rpc_part
    ratios = [
        Ratio("session/tick", sess / tick, ">=", 20),
        Ratio("aria2p/tick", a2p / tick, ">=", 20),
        Ratio("tick/floor", tick / fl, "<=", 1.25),
        Ratio("get_batch_progress/floor", batch / fl, "<=", 1.25),
    ]
    kib = {name: f"{size / 1024:.0f} KiB" for name, size in sizes.items()}
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"monitor tick {fmt_ms(tick)}; get_batch_progress {fmt_ms(batch)}",
        baselines=[
            ("tellStatus x1000 (7 keys) on a requests.Session", fmt_ms(sess)),
            ("aria2p API.get_downloads(gids)", fmt_ms(a2p)),
            (
                "floor: one raw system.multicall of 1000 tellStatus with the 7 keys of a progress view, "
                "http.client keep-alive, json.dumps/json.loads",
                fmt_ms(fl),
            ),
        ],
        ratios=ratios,
        target=">= 20x faster than the baselines; tick and get_batch_progress <= 1.25x the floor",
        notes=[
            f"the old floor (the same raw multicall with the 13 keys the library used to read every "
            f"tick, dir and files included): {fmt_ms(fl_old)}, {kib['old']} of JSON; the tick is "
            f"{tick / fl_old:.2f}x it, get_batch_progress {batch / fl_old:.2f}x",
            f"answer sizes: 7 keys {kib['view']}; the tick's {len(TICK_KEYS)} keys "
            f"({', '.join(TICK_KEYS)}: gid is known, and the error code and message, dir, files "
            f"and the follow keys change only with the status, when the tick reads that download "
            f"in full) {kib['tick']}, a raw multicall of them {fmt_ms(fl_tick_keys)} "
            f"({fl_tick_keys / fl:.2f}x the floor)",
            f"tick = {fmt_ms(rpc_part)} in the multicall (request, answer, JSON decode) + "
            f"{fmt_ms(python_part)} of Python ({python_part / count * 1e6:.1f} us per download)",
            f"session/get_batch_progress = {sess / batch:.1f}; aria2p/get_batch_progress = {a2p / batch:.1f}",
        ],
    )
    if not result.passed:
        result.why = [
            f"The tick's round trip takes {fmt_ms(rpc_part)} ({rpc_part / fl:.2f}x the floor); a raw "
            f"multicall of the tick's own keys takes {fmt_ms(fl_tick_keys)} ({fl_tick_keys / fl:.2f}x): "
            f"the rest of the round trip is the client's transport (urllib3, retries, checks).",
            f"The Python outside the round trip is {fmt_ms(python_part)} "
            f"({python_part / count * 1e6:.1f} us per download): one fingerprint per download, "
            "compared with the last one; unchanged downloads keep their snapshot.",
        ]
    return result
