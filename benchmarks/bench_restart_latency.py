"""latency: from a failure (the server's reset) to the restart's addUri reaching the daemon.

Set-up: one aria2c, one FaultServer (a subclass that notes the moment of each reset), and two
clients on that daemon with ``retry_delay=0`` and the default ``poll_interval`` (0.5 s): one with
aria2's WebSocket notifications, one polling only (``notifications=False``). Samples alternate
between them. Each sample is a 4 MiB download (``max-tries=1``) whose first transfer is reset
after 512 KiB; the server waits a random 0-0.5 s before sending the body, so the failure falls at
a random moment of the monitor's polling cycle.

* failure time: right after the server's socket was closed with SO_LINGER 0 (the RST).
* restart time: when the daemon has answered the ``aria2.addUri`` that re-adds the download under
  its GID (seen by wrapping the client's transport; an upper bound of "reached the daemon").
* baseline: the poll interval, and the polling-only client measured alike.

The log lines "detected failed download" and "restarting failed download" split the time into:
noticing the failure, and the restart's own round trips before its addUri.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import defaultdict
from typing import Any

from _common import Ratio, Result, daemon, fault_server, fmt_ms, log, median, wait_until, workdir

NAME = "latency"
TITLE = "failure -> restart issued (retry_delay=0)"
KiB = 1 << 10
MiB = 1 << 20


def _timed_fault_server_class() -> type:
    from tests.support.fault_server import FaultServer, _FileHandler

    class TimedHandler(_FileHandler):
        def _send_body(self, view: Any, fault: Any) -> None:
            owner = self.server.owner
            name = self.path.lstrip("/")
            delay = owner.delays.pop(name, 0.0)
            if delay and fault is not None:
                self.server.stop_event.wait(delay)
            super()._send_body(view, fault)

        def _abort_with_rst(self) -> None:
            super()._abort_with_rst()
            owner = self.server.owner
            with owner.times_lock:
                owner.reset_times[self.path.lstrip("/")].append(time.monotonic())

    class TimedFaultServer(FaultServer):
        _handler_class = TimedHandler

        def __init__(self) -> None:
            self.reset_times: dict[str, list[float]] = defaultdict(list)
            self.delays: dict[str, float] = {}
            self.times_lock = threading.Lock()
            super().__init__()

    return TimedFaultServer


class _LogTimes(logging.Handler):
    """Notes when the restart log lines are emitted."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.monotonic(), record.getMessage()))

    def first(self, needle: str, after: float) -> float | None:
        for when, message in list(self.lines):
            if when >= after and needle in message:
                return when
        return None


def _hook_adds(client: Any, add_times: dict[str, list[float]]) -> None:
    """Note when each ``addUri`` that names a GID is answered (restarts add through here)."""
    transport = client.rpc.transport
    real_call = transport.call

    def call(method: str, params: Any = (), **kwargs: Any) -> Any:
        answer = real_call(method, params, **kwargs)
        if method == "aria2.addUri":
            options = params[-1] if params else {}
            if isinstance(options, dict) and "gid" in options:
                add_times[options["gid"]].append(time.monotonic())
        return answer

    transport.call = call


def run(quick: bool) -> Result:
    from aria2_sync import Aria2Client
    from aria2_sync.client import engine_of
    from tests.support.fault_server import ResetAfter

    samples_per_mode = 5 if quick else 15
    interval = 0.5
    size, cut = 4 * MiB, 512 * KiB
    rng = random.Random(20240611)
    logs = _LogTimes()
    library_logger = logging.getLogger("aria2_sync")
    library_logger.addHandler(logs)
    latencies: dict[str, list[float]] = {"notify": [], "poll": []}
    noticed: dict[str, list[float]] = {"notify": [], "poll": []}
    add_times: dict[str, list[float]] = defaultdict(list)
    try:
        with (
            workdir(NAME) as root,
            fault_server(_timed_fault_server_class()) as server,
            daemon(root) as aria2,
        ):
            clients = {
                "notify": Aria2Client(
                    aria2.rpc_url,
                    aria2.secret,
                    verbose=False,
                    retry_delay=0.0,
                    poll_interval=interval,
                    notifications=True,
                ),
                "poll": Aria2Client(
                    aria2.rpc_url,
                    aria2.secret,
                    verbose=False,
                    retry_delay=0.0,
                    poll_interval=interval,
                    notifications=False,
                ),
            }
            try:
                for mode, client in clients.items():
                    _hook_adds(client, add_times)
                    name = f"warmup-{mode}.bin"
                    server.add_file(name, size=64 * KiB)
                    client.submit(server.url(name), os.path.join(aria2.download_dir, name)).result(timeout=30)
                listener = engine_of(clients["notify"]).listener
                assert listener is not None, "websocket-client is not installed"
                if not listener.connected.wait(10):
                    raise RuntimeError("the notification socket did not connect")
                log(f"{NAME}: {samples_per_mode} failures per mode, alternating")
                for i in range(samples_per_mode):
                    for mode in ("notify", "poll") if i % 2 == 0 else ("poll", "notify"):
                        client = clients[mode]
                        name = f"lat-{mode}-{i}.bin"
                        server.add_file(name, size=size)
                        server.add_faults(name, ResetAfter(cut))
                        server.delays[name] = rng.uniform(0.0, interval)
                        future = client.submit(
                            server.url(name),
                            os.path.join(aria2.download_dir, name),
                            {"max-tries": "1", "retry-wait": "0"},
                        )
                        result = future.result(timeout=30)
                        assert result.retry_count == 1, result
                        reset = server.reset_times[name][0]
                        gid = future.gid
                        restart_add = wait_until(
                            lambda gid=gid, reset=reset: next((t for t in add_times[gid] if t > reset), None),
                            5,
                            "the restart's addUri",
                        )
                        latencies[mode].append(restart_add - reset)
                        detected = logs.first(f"detected failed download (GID {gid})", reset)
                        if detected is not None:
                            noticed[mode].append(detected - reset)
            finally:
                for client in clients.values():
                    client.close()
    finally:
        library_logger.removeHandler(logs)

    notify, poll = median(latencies["notify"]), median(latencies["poll"])
    notice_notify = median(noticed["notify"]) if noticed["notify"] else float("nan")
    ratios = [
        Ratio("median with notifications (ms)", notify * 1e3, "<=", 20),
    ]
    result = Result(
        name=NAME,
        what=TITLE,
        ours=f"median {fmt_ms(notify)} with notifications (max {fmt_ms(max(latencies['notify']))}); "
        f"polling only: median {fmt_ms(poll)}",
        baselines=[("poll interval", fmt_ms(interval))],
        ratios=ratios,
        target="median <= 20 ms with notifications",
        notes=[
            f"with notifications = {notify / interval:.3f} x the poll interval; polling only = "
            f"{poll / interval:.2f} x the poll interval ({len(latencies['notify'])} + "
            f"{len(latencies['poll'])} failures)",
            f"with notifications: {fmt_ms(notice_notify)} from the reset to 'detected failed download', "
            f"{fmt_ms(notify - notice_notify)} from there to the addUri's answer (scheduler, worker, "
            "tellStatus, removeDownloadResult, addUri)",
        ],
    )
    if not ratios[0].ok:
        result.why = [
            f"Noticing the failure takes {fmt_ms(notice_notify)} (aria2's onDownloadError, the listener "
            f"thread, the monitor's tick of every watched download); issuing the restart takes "
            f"{fmt_ms(notify - notice_notify)} more.",
        ]
    return result
