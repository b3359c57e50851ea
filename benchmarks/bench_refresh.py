"""refresh: one refresh of 1000 watched downloads.

Set-up: one aria2c, one FaultServer, 1000 downloads added paused (``pause=true``) by our client in
one batch, so all 1000 stay watched and the daemon's state is the same for every contender.

* ours: ``engine_of(client).monitor.tick()`` (the monitor's whole refresh: the multicall, the snapshots,
  the state machine), called in the foreground while the monitor thread sleeps
  (``poll_interval=3600``). ``get_batch_progress`` of the batch is reported beside it.
* baselines: one ``aria2.tellStatus`` per GID on one ``requests.Session`` (the reference
  implementation's way; with the same ``keys`` as ours, which favours the baseline), and aria2p's
  ``API.get_downloads(gids)``.
* floor: one raw ``system.multicall`` of 1000 ``tellStatus`` with the same keys, on an
  ``http.client`` keep-alive connection, encoded and decoded with ``json`` and nothing more.
"""

from __future__ import annotations

import json
import time
from typing import Any

from _common import Ratio, RawRPC, Result, daemon, fault_server, fmt_ms, interleaved, log, median, workdir

NAME = "refresh"
TITLE = "refresh 1000 watched downloads"


def run(quick: bool) -> Result:
    import requests

    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of
    from aria2_sync.models import STATUS_KEYS

    count = 1000
    repeats = 3 if quick else 9
    keys = list(STATUS_KEYS)
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

            def session_loop(with_keys: Any = keys) -> float:
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

            def floor() -> float:
                started = time.perf_counter()
                results = raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])
                elapsed = time.perf_counter() - started
                assert len(results) == count
                return elapsed

            small_keys = ["gid", "status", "totalLength", "completedLength", "downloadSpeed", "errorCode"]

            def floor_small_keys() -> float:
                started = time.perf_counter()
                raw.multicall([("aria2.tellStatus", [gid, small_keys]) for gid in gids])
                return time.perf_counter() - started

            multicall_body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "system.multicall",
                    "params": [
                        [{"methodName": "aria2.tellStatus", "params": [token, gid, keys]} for gid in gids]
                    ],
                }
            )
            encodings: dict[str, str] = {}

            def requests_multicall(accept_encoding: str) -> float:
                headers = {"Content-Type": "application/json"}
                if accept_encoding:
                    headers["Accept-Encoding"] = accept_encoding
                started = time.perf_counter()
                response = session.post(aria2.rpc_url, data=multicall_body, headers=headers, timeout=10)
                assert len(response.json()["result"]) == count
                elapsed = time.perf_counter() - started
                encodings[accept_encoding or "default"] = response.headers.get("Content-Encoding", "identity")
                encodings[(accept_encoding or "default") + "_size"] = response.headers.get(
                    "Content-Length", "?"
                )
                return elapsed

            log(f"{NAME}: {count} paused downloads watched; {repeats} interleaved rounds")
            # Fast contenders get more samples (three per round); slow baselines one per round.
            fast = interleaved(
                {
                    "tick": ours_tick,
                    "batch": ours_batch,
                    "floor": floor,
                    "floor_small": floor_small_keys,
                    "requests_default": lambda: requests_multicall(""),
                    "requests_identity": lambda: requests_multicall("identity"),
                },
                repeats * 3,
            )
            slow = interleaved({"session": session_loop, "aria2p": aria2p_loop}, repeats)
            no_keys = interleaved({"session_no_keys": lambda: session_loop(None)}, max(1, repeats // 3))

            # What the tick spends outside the round trip, and what a "skip unchanged" check costs.
            previous = raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])
            current = raw.multicall([("aria2.tellStatus", [gid, keys]) for gid in gids])
            compare_times = []
            for _ in range(5):
                started = time.perf_counter()
                unchanged = sum(a == b for a, b in zip(previous, current))
                compare_times.append(time.perf_counter() - started)
            assert unchanged == count
            response_size = len(json.dumps(current))
        finally:
            client.close()
            raw.close()
            session.close()

    tick, batch, fl = median(fast["tick"]), median(fast["batch"]), median(fast["floor"])
    fl_small = median(fast["floor_small"])
    sess, a2p = median(slow["session"]), median(slow["aria2p"])
    req_default, req_identity = median(fast["requests_default"]), median(fast["requests_identity"])
    rpc_part = median(rpc_in_tick) if rpc_in_tick else float("nan")
    python_part = tick - rpc_part
    ratios = [
        Ratio("session/ours", sess / tick, ">=", 20),
        Ratio("aria2p/ours", a2p / tick, ">=", 20),
        Ratio("ours/floor", tick / fl, "<=", 1.25),
    ]
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"monitor tick {fmt_ms(tick)} (get_batch_progress {fmt_ms(batch)})",
        baselines=[
            ("tellStatus x1000 on a requests.Session", fmt_ms(sess)),
            ("aria2p API.get_downloads(gids)", fmt_ms(a2p)),
            ("floor: raw multicall, http.client", fmt_ms(fl)),
        ],
        ratios=ratios,
        target=">= 20x faster than the baselines; <= 1.25x the floor",
        notes=[
            f"the per-GID baseline sends the same keys as ours; without keys (all fields) it takes "
            f"{fmt_ms(median(no_keys['session_no_keys']))}",
            f"get_batch_progress/floor = {batch / fl:.2f}",
            f"tick = {fmt_ms(rpc_part)} in the multicall (requests + JSON decode) + "
            f"{fmt_ms(python_part)} of Python per tick ({python_part / count * 1e6:.1f} us per download)",
            f"answer size with the library's 13 keys: {response_size / 1024:.0f} KiB; "
            f"floor with 6 keys (no files/dir): {fmt_ms(fl_small)} ({fl_small / fl:.2f}x the floor)",
        ],
    )
    if not ratios[2].ok:
        result.why = [
            f"The tick's round trip alone (requests, JSON decode) takes {fmt_ms(rpc_part)} "
            f"({rpc_part / fl:.2f}x the raw floor). requests sends 'Accept-Encoding: gzip, deflate' "
            f"and aria2 then gzips its answer ({response_size / 1024:.0f} KiB of JSON sent as "
            f"{encodings.get('default_size', '?')} bytes, Content-Encoding "
            f"{encodings.get('default', '?')}): the same multicall on a requests.Session takes "
            f"{fmt_ms(req_default)} with the default header and {fmt_ms(req_identity)} with "
            f"'Accept-Encoding: identity' ({req_identity / fl:.2f}x the floor). On loopback the "
            "compression is pure cost, paid by the daemon and by the client.",
            f"The other {fmt_ms(python_part)} "
            f"({python_part / count * 1e6:.1f} us per download) is spent building a Progress "
            "(Progress.from_aria2 with a FileInfo per file) and an attrs.evolve copy "
            "(Tracker.annotate) for every download, on every tick, although none of the 1000 "
            "changed.",
            f"Comparing each new tellStatus answer with the previous one takes "
            f"{fmt_ms(median(compare_times))} for all {count}: skipping unchanged downloads "
            "would remove nearly all of the Python part.",
            f"Together: the 20x target against the per-GID baseline ({fmt_ms(sess)}) needs a tick of "
            f"at most {fmt_ms(sess / 20)}; a tick with the identity encoding and no per-download "
            f"work for unchanged answers would take about {fmt_ms(req_identity + median(compare_times))} "
            f"({sess / (req_identity + median(compare_times)):.0f}x; "
            f"{(req_identity + median(compare_times)) / fl:.2f}x the floor).",
            f"Asking for 6 keys instead of 13 (leaving out files/dir, which carry the URIs) makes "
            f"the daemon's part {fl_small / fl:.2f}x as long.",
        ]
    return result
