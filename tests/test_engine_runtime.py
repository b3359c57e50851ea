"""The runtime that owns a client's threads: named, made in one place, stopped by one deadline.

Closing must return within its bound whatever hangs: a user callback that never returns, or a
daemon that never answers. Each case is run with ``close()`` in a thread of the test, joined
with a bounded wait; what hangs is released at the end, so no thread outlives the test.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from aria2_sync import Aria2Client, Aria2ClosedError
from aria2_sync.engine.cancel import Cancellation
from aria2_sync.engine.ledger import Ledger
from aria2_sync.engine.monitor import Monitor
from aria2_sync.engine.record import DownloadRecord
from aria2_sync.engine.runtime import CLOSE_TIMEOUT, Runtime
from aria2_sync.engine.tracker import Tracker
from tests.conftest import GIVE_UP_AT_ONCE

#: The most a test here waits for close() to return (its bound, and room for a loaded machine).
BOUND = CLOSE_TIMEOUT + 15.0


def _closes_in_time(close: Any) -> None:
    """Run ``close()`` in a thread; fail if it has not returned within :data:`BOUND`."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            close()
        except BaseException as error:  # pragma: no cover (reported below)
            errors.append(error)

    closer = threading.Thread(target=run, name="test-closer", daemon=True)
    closer.start()
    closer.join(BOUND)
    assert not closer.is_alive(), "close() did not return within its bound"
    assert errors == []


def _stop_and_join(runtime: Runtime) -> None:
    for _, action in runtime.stopping_steps():
        action()
    runtime.join()


def test_every_thread_is_made_here_named_and_waited_for():
    runtime = Runtime(close_timeout=5.0)
    ran = threading.Event()
    runtime.pools.jobs.submit(ran.set)
    runtime.scheduler.call_later(0, lambda: None)
    assert ran.wait(5.0)
    names = sorted(t.name for t in runtime.threads())
    assert names and all(name.startswith("aria2_sync-") for name in names), names
    assert {"aria2_sync-scheduler", "aria2_sync-job-1", "aria2_sync-job-2"} <= set(names)
    _closes_in_time(lambda: _stop_and_join(runtime))
    assert runtime.threads() == []


def test_a_callback_that_blocks_forever_does_not_hold_up_the_close():
    runtime = Runtime(close_timeout=0.2)
    release, started = threading.Event(), threading.Event()

    def stuck() -> None:
        started.set()
        release.wait()

    runtime.pools.callbacks.submit(stuck)
    assert started.wait(5.0)
    try:
        _closes_in_time(lambda: _stop_and_join(runtime))
        assert any(t.name.startswith("aria2_sync-callback") for t in runtime.threads())  # left behind
    finally:
        release.set()


class _SilentRPC:
    """A daemon that never answers: every read blocks until the test releases it."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.called = threading.Event()

    def probe(self) -> bool:
        return False

    def multicall(self, calls: Any) -> list[Any]:
        self.called.set()
        self.release.wait()
        return [{"status": "active"} for _ in calls]


def test_a_monitor_stuck_in_a_call_the_daemon_never_answers_does_not_hold_up_the_close():
    runtime = Runtime(close_timeout=0.2)
    ledger = Ledger()
    gid = "00000000000000e1"
    ledger.add(DownloadRecord(gid=gid, uris=["http://h/f"], options={}, current_gid=gid))
    rpc = _SilentRPC()
    cancellation = Cancellation(rpc, ledger, runtime.pools.jobs)  # type: ignore[arg-type]
    tracker = Tracker(ledger, None, runtime.pools, lambda: True, cancellation)  # type: ignore[arg-type]
    monitor = Monitor(
        rpc,  # type: ignore[arg-type]
        ledger,
        tracker,
        settle_pool=runtime.pools.settle,
        auto_restart=lambda: True,
        thread_factory=runtime.thread,
    )
    runtime.attach(monitor)
    runtime.watch()
    assert rpc.called.wait(5.0)
    try:
        _closes_in_time(lambda: _stop_and_join(runtime))
        assert [t.name for t in runtime.threads()] == ["aria2_sync-monitor"]  # left behind
    finally:
        rpc.release.set()


@pytest.fixture
def silent_daemon() -> Iterator[str]:
    """A JSON-RPC URL whose server accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, name="test-silent-daemon", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/jsonrpc"
    finally:
        stop.set()
        thread.join(5.0)
        for connection in accepted:
            connection.close()
        server.close()


def test_close_returns_in_time_when_the_daemon_never_answers(silent_daemon):
    client = Aria2Client(silent_daemon, verbose=False, timeout=60, max_retries=0, notifications=False)
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.get_version()
        except BaseException as error:
            outcome.append(error)

    caller = threading.Thread(target=call, name="test-caller", daemon=True)
    caller.start()
    _closes_in_time(client.close)
    caller.join(BOUND)
    assert not caller.is_alive() and isinstance(outcome[0], Aria2ClosedError)


def test_close_returns_in_time_when_a_user_callback_blocks_forever(daemon, fault_server, tmp_path):
    client = Aria2Client(
        daemon.rpc_url, daemon.secret, verbose=False, notifications=False, poll_interval=0.05
    )
    release, called = threading.Event(), threading.Event()

    def on_done(future: Any) -> None:
        called.set()
        release.wait()

    url = fault_server.add_file("cb.bin", size=1000)
    try:
        client.submit(url, str(tmp_path / "cb.bin"), GIVE_UP_AT_ONCE, on_done=on_done).result(BOUND)
        assert called.wait(BOUND)
        _closes_in_time(client.close)
    finally:
        release.set()
        client.close()


def test_a_client_s_listener_and_watchdogs_are_the_runtime_s_threads(
    client_factory: Any, fault_server: Any, tmp_path: Any
) -> None:
    """Every thread a working client runs (the notification listener and the connections'
    watchdogs included) is made by its runtime, so that closing waits for each of them."""
    from aria2_sync.client import engine_of

    before = set(threading.enumerate())
    client = client_factory(notifications=True)
    runtime = engine_of(client).runtime
    url = fault_server.add_file("one.bin", size=20_000)
    client.submit(url, str(tmp_path / "one.bin")).result(timeout=30)
    listener = engine_of(client).listener
    assert listener is not None and listener.connected.wait(15)
    made = {
        t
        for t in threading.enumerate()
        if t not in before and t.name.startswith("aria2_sync-") and t.name != "aria2_sync-daemon-watch"
    }
    names = {t.name for t in made}
    assert {"aria2_sync-notifications", "aria2_sync-monitor", "aria2_sync-rpc-watchdog"} <= names, names
    assert made <= set(runtime.threads()), sorted(t.name for t in made - set(runtime.threads()))
    _closes_in_time(client.close)
    assert runtime.threads() == []
    assert not any(t.is_alive() for t in made)
