"""add: add 1000 downloads.

Set-up: one aria2c, one FaultServer. Every contender adds the same 1000 URLs (``dir``/``out``
set, ``pause=true`` so nothing starts downloading) to an empty daemon; the daemon is emptied
(``forceRemove`` + ``purgeDownloadResult``, not timed) before the next contender, and the order
of contenders rotates every round.

* ours: ``client.add_batch_downloads(items, options={"pause": "true"})`` on a fresh client
  (``monitor=False`` so that no background tick overlaps the next contender): it checks every
  item, keeps a record of each, and sends one ``system.multicall``.
* baselines: one ``aria2.addUri`` per URL on one ``requests.Session``, and aria2p's
  ``API.add_uris`` in a loop.
* floor: the least work that gives the same downloads, timed from the same ``items`` list as
  ours: build 1000 ``aria2.addUri`` calls carrying the same options as ours (``dir``, ``out``,
  ``pause=true``, ``follow-torrent=false`` and ``follow-metalink=false`` (a plain URL is never
  followed into BitTorrent or Metalink), ``auto-file-renaming=false``, and a GID chosen by the client, from
  ``secrets.token_hex(8)``, as ours chooses one), with ``token:<secret>`` in each; send them
  as one ``system.multicall`` (``json.dumps``) on an ``http.client`` connection opened before
  the clock starts; ``json.loads`` the answer and check each item is a success. No checks of the
  input, no records, no retries. Ours, likewise, has its connection open: each round's fresh
  client makes one untimed ``getVersion`` first (that first request's cost, the client's
  session and connection being set up, is reported apart).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import time

from _common import (
    Ratio,
    RawRPC,
    Result,
    daemon,
    fault_server,
    fmt_ms,
    interleaved,
    log,
    median,
    purge_daemon,
    workdir,
)

NAME = "add"
TITLE = "add 1000 downloads"


def _parts(items) -> str:  # type: ignore[no-untyped-def]
    """Time the steps of ours before the request, alone, for the 1000 items (medians of 5)."""
    try:
        from aria2_sync.engine.ledger import Batch, Ledger
        from aria2_sync.engine.record import DownloadRecord
        from aria2_sync.validation import BatchOptions, check_uris
    except ImportError as error:  # pragma: no cover - the library moved things
        return f"(breakdown unavailable: {error})"
    batch = BatchOptions({"pause": "true"}, len(items))
    places = [batch.of(path) for _, path in items]
    gids = [f"{n:016x}" for n in range(1, len(items) + 1)]

    def records() -> list:  # type: ignore[type-arg]
        return [
            DownloadRecord.adding_in_batch(gid, url, shared, "b", 0.0, place)
            for gid, (url, _), (shared, place) in zip(gids, items, places)
        ]

    made = records()
    steps = {
        "check_uris": lambda: [check_uris(url) for url, _ in items],
        "BatchOptions.of (split, is it a directory)": lambda: [batch.of(path) for _, path in items],
        "records": records,
        "ledger": lambda: Ledger().add_batch(Batch("b", gids), made),
        "add arguments": lambda: [r.add_arguments() for r in made],
    }
    out = []
    for label, step in steps.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        out.append(f"{label} {fmt_ms(median(times))}")
    return ", ".join(out)


def run(quick: bool) -> Result:
    import requests

    from aria2_sync import Aria2Client

    count = 1000
    repeats = 3 if quick else 7
    with workdir(NAME) as root, fault_server() as server, daemon(root) as aria2:
        raw = RawRPC(aria2.port, aria2.secret)
        session = requests.Session()
        session.trust_env = False
        token = f"token:{aria2.secret}"
        directory = aria2.download_dir
        items = [(server.url(f"a{i}.bin"), os.path.join(directory, f"a{i}.bin")) for i in range(count)]

        import aria2p
        from loguru import logger as loguru_logger

        loguru_logger.disable("aria2p")
        api = aria2p.API(aria2p.Client(host="http://127.0.0.1", port=aria2.port, secret=aria2.secret))
        round_trips = []
        first_request = []
        before_send = []
        in_requests = []

        def counted(added: int) -> None:
            stat = raw.call("aria2.getGlobalStat")
            assert int(stat["numWaiting"]) == added, stat
            purge_daemon(raw)

        def ours() -> float:
            client = Aria2Client(
                aria2.rpc_url, aria2.secret, verbose=False, monitor=False, notifications=False
            )
            # Not timed: a first request opens the client's session and connection, as in a
            # program that has used its client before (the floor's connection is open too).
            warm = time.perf_counter()
            client.rpc.get_version()
            first_request.append(time.perf_counter() - warm)
            sent = []  # (entered, left) of each request
            real_post = client.rpc.transport._post

            def counting_post(*args, **kwargs):  # type: ignore[no-untyped-def]
                entered = time.perf_counter()
                try:
                    return real_post(*args, **kwargs)
                finally:
                    sent.append((entered, time.perf_counter()))

            client.rpc.transport._post = counting_post  # type: ignore[method-assign]
            try:
                started = time.perf_counter()
                client.add_batch_downloads(items, options={"pause": "true"})
                elapsed = time.perf_counter() - started
            finally:
                client.close()
            round_trips.append(len(sent))
            before_send.append(sent[0][0] - started)
            in_requests.append(sum(left - entered for entered, left in sent))
            counted(count)
            return elapsed

        def session_loop() -> float:
            started = time.perf_counter()
            for n, (url, path) in enumerate(items):
                options = {"dir": directory, "out": os.path.basename(path), "pause": "true"}
                answer = session.post(
                    aria2.rpc_url,
                    data=json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": n,
                            "method": "aria2.addUri",
                            "params": [token, [url], options],
                        }
                    ),
                    timeout=10,
                ).json()
                assert "result" in answer, answer
            elapsed = time.perf_counter() - started
            counted(count)
            return elapsed

        def aria2p_loop() -> float:
            started = time.perf_counter()
            for url, path in items:
                api.add_uris([url], {"dir": directory, "out": os.path.basename(path), "pause": "true"})
            elapsed = time.perf_counter() - started
            counted(count)
            return elapsed

        def floor() -> float:
            conn = http.client.HTTPConnection("127.0.0.1", aria2.port, timeout=60)
            conn.connect()  # not timed, like ours' open connection
            started = time.perf_counter()
            calls = [
                {
                    "methodName": "aria2.addUri",
                    "params": [
                        token,
                        [url],
                        {
                            "pause": "true",
                            "follow-torrent": "false",
                            "follow-metalink": "false",
                            "auto-file-renaming": "false",
                            "dir": os.path.dirname(path),
                            "out": os.path.basename(path),
                            "gid": secrets.token_hex(8),
                        },
                    ],
                }
                for url, path in items
            ]
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system.multicall", "params": [calls]})
            conn.request("POST", "/jsonrpc", body, {"Content-Type": "application/json"})
            results = json.loads(conn.getresponse().read())["result"]
            ok = len(results) == count and all(isinstance(r, list) for r in results)
            elapsed = time.perf_counter() - started
            conn.close()
            assert ok, results[:3]
            counted(count)
            return elapsed

        log(f"{NAME}: {repeats} interleaved rounds of {count} adds per contender")
        try:
            samples = interleaved(
                {"ours": ours, "floor": floor, "session": session_loop, "aria2p": aria2p_loop}, repeats
            )
            # The fast ones again, for steadier medians.
            more = interleaved({"ours": ours, "floor": floor}, repeats * 2)
        finally:
            raw.close()
            session.close()
    ours_t = median(samples["ours"] + more["ours"])
    fl = median(samples["floor"] + more["floor"])
    sess, a2p = median(samples["session"]), median(samples["aria2p"])
    ratios = [
        Ratio("session/ours", sess / ours_t, ">=", 10),
        Ratio("aria2p/ours", a2p / ours_t, ">=", 10),
        Ratio("ours/floor", ours_t / fl, "<=", 1.25),
    ]
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"add_batch_downloads {fmt_ms(ours_t)} ({max(round_trips)} round trips)",
        baselines=[
            ("addUri x1000 on a requests.Session", fmt_ms(sess)),
            ("aria2p add_uris x1000", fmt_ms(a2p)),
            ("floor: one raw multicall built from the items, open http.client connection", fmt_ms(fl)),
        ],
        ratios=ratios,
        target=">= 10x faster than the baselines; <= 1.25x the floor",
        notes=[
            "aria2p's add_uris makes two requests per download (addUri, then a full tellStatus), "
            "each on a new connection"
        ],
    )
    pre, req = median(before_send), median(in_requests)
    after = max(0.0, ours_t - pre - req)
    result.notes.append(
        f"ours = {fmt_ms(pre)} before the first request (checking 1000 items, ledger records, "
        f"building the calls) + {fmt_ms(req)} in {max(round_trips)} requests (encoding, sending, "
        f"decoding) + {fmt_ms(after)} after (per-item results, marking the records added)"
    )
    result.notes.append("steps before the request, measured alone: " + _parts(items))
    result.notes.append(
        f"not timed: a fresh client's first request (getVersion) takes {fmt_ms(median(first_request))}, "
        "setting up its session and connection"
    )
    if not ratios[2].ok:
        result.why = [
            f"{fmt_ms(pre)} ({pre / count * 1e6:.1f} us per item) pass before the first byte is sent "
            f"and {fmt_ms(after)} after the answer, against none in the floor beyond building its "
            f"calls; the requests take {fmt_ms(req)} ({req / fl:.2f}x the whole floor): "
            "requests/urllib3 and the transport's per-call work (the token added to each call, "
            "each item's answer checked)."
        ]
    return result
