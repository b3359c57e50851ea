"""The monitor when ticks fail for reasons other than a lost connection.

A proxy that answers HTML, or a bug in a tick, must not log a traceback every tick, and must count
as an outage: ``disconnect_grace`` applies, and futures fail after it. The grace is measured with
an injected clock and the log in monitor ticks, so nothing here depends on the machine's speed.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aria2_sync import Aria2Client, Aria2Error, Aria2ProtocolError
from aria2_sync.client import engine_of
from aria2_sync.rpc.methods import Aria2RPC
from aria2_sync.rpc.transport import Transport
from tests.conftest import wait_for


class _HtmlHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def html_proxy() -> Iterator[str]:
    """A local server that answers every RPC with a proxy's HTML error page."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HtmlHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jsonrpc"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        assert not thread.is_alive()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def drive_ticks(client: Aria2Client, count: int, bound: float = 30.0) -> None:
    """Make the monitor tick ``count`` more times (waking it instead of waiting out its pauses)."""
    monitor = engine_of(client).monitor
    assert monitor is not None
    target = monitor.ticks + count
    deadline = time.monotonic() + bound
    while monitor.ticks < target:
        if time.monotonic() > deadline:
            pytest.fail(f"the monitor made {monitor.ticks - target + count} of {count} ticks in {bound:g} s")
        monitor.wake()
        time.sleep(0.01)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "aria2_sync" and r.levelno >= logging.WARNING]


@pytest.fixture
def watched(client_factory, fault_server, tmp_path):
    """A client whose monitor watches one paused download (so it stays unfinished), and its future."""
    client = client_factory(poll_interval=0.05, disconnect_grace=30.0, notifications=False)
    url = fault_server.add_file("p.bin", size=10_000)
    future = client.submit(url, str(tmp_path / "p.bin"), options={"pause": "true"})
    monitor = engine_of(client).monitor
    assert monitor is not None
    wait_for(lambda: monitor.ticks > 0, what="a first tick")
    clock = FakeClock()
    monitor._clock = clock
    return client, future, clock


def test_a_proxy_answering_html_is_one_outage_that_fails_futures_after_the_grace(watched, html_proxy, caplog):
    client, future, clock = watched
    monitor = engine_of(client).monitor
    real_rpc = monitor.rpc
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):
        monitor.rpc = Aria2RPC(Transport(html_proxy, max_retries=0))
        drive_ticks(client, 8)
        assert monitor.offline
        troubles = warnings_of(caplog)
        assert [r.getMessage().split(" (")[0] for r in troubles] == [
            f"aria2 at {html_proxy} does not answer like aria2"
        ], "one line when the trouble starts, none per tick"
        assert all(r.exc_info is None for r in troubles)
        assert not future.done(), "failed before the grace period was over"

        clock.now += 31.0  # past disconnect_grace=30
        drive_ticks(client, 1)
        error = future.exception(timeout=10)
        assert isinstance(error, Aria2ProtocolError)

        monitor.rpc = real_rpc
        wait_for(lambda: (monitor.wake(), not monitor.offline)[1], what="the monitor to recover")
    messages = [r.getMessage() for r in warnings_of(caplog)]
    assert sum(m.startswith("aria2 usable again") for m in messages) == 1
    assert sum("does not answer like aria2" in m for m in messages) == 1
    # The failed future is replaced by one that follows the download again.
    assert not client.future(future.gid).done()


def test_a_bug_in_a_tick_logs_its_traceback_once_and_is_an_outage(watched, caplog, monkeypatch):
    client, future, clock = watched
    monitor = engine_of(client).monitor

    def broken_read(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug in a tick")

    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):
        monkeypatch.setattr(monitor.tracker, "read", broken_read)
        drive_ticks(client, 6)
        errors = [r for r in warnings_of(caplog) if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and errors[0].exc_info is not None
        assert len(warnings_of(caplog)) == 1
        assert not future.done()
        clock.now += 31.0
        drive_ticks(client, 1)
        error = future.exception(timeout=10)
    assert isinstance(error, Aria2Error) and "bug" in str(error)
    assert isinstance(error.__cause__, KeyError)


def test_the_monitor_stops_quietly_when_its_connection_is_closed(watched, caplog):
    client = watched[0]
    monitor = engine_of(client).monitor
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):
        monitor.rpc.transport.close()
        monitor.wake()
        wait_for(lambda: not monitor.running, what="the monitor thread to end")
    assert warnings_of(caplog) == []


# -- a start interrupted between creating the thread and starting it ------------------------------


def interrupt_first_start(monkeypatch: pytest.MonkeyPatch, name: str) -> list[threading.Thread]:
    """Make the first ``start()`` of a thread called ``name`` raise KeyboardInterrupt, as a
    Ctrl-C arriving between the thread's creation and its start would; other threads start."""
    interrupted: list[threading.Thread] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if thread.name == name and not interrupted:
            interrupted.append(thread)
            raise KeyboardInterrupt
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return interrupted


def test_an_interrupted_monitor_start_starts_on_next_use(
    client_factory: Callable[..., Aria2Client],
    fault_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = client_factory(poll_interval=0.05, notifications=False)
    monitor = engine_of(client).monitor
    assert monitor is not None
    interrupted = interrupt_first_start(monkeypatch, "aria2_sync-monitor")
    with pytest.raises(KeyboardInterrupt):
        monitor.ensure_started()
    assert interrupted and not monitor.running
    # The next use starts a monitor that works: a download's future resolves.
    url = fault_server.add_file("after.bin", size=10_000)
    future = client.submit(url, str(tmp_path / "after.bin"))
    assert monitor.running
    assert future.result(timeout=30).size == 10_000


def test_closing_after_an_interrupted_monitor_start_joins_nothing(
    client_factory: Callable[..., Aria2Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_factory(poll_interval=0.05, notifications=False)
    monitor = engine_of(client).monitor
    assert monitor is not None
    interrupt_first_start(monkeypatch, "aria2_sync-monitor")
    with pytest.raises(KeyboardInterrupt):
        monitor.ensure_started()
    monitor.close(timeout=0)  # before the fix: "cannot join thread before it is started"
    monitor.close()
    monitor.ensure_started()  # closed: nothing starts
    assert not monitor.running


def test_an_interrupted_listener_start_starts_on_next_use_and_closes(
    daemon: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aria2_sync.rpc.notifications import NotificationListener

    interrupt_first_start(monkeypatch, "aria2_sync-notifications")
    listener = NotificationListener(daemon.rpc_url, on_event=lambda gid=None: None)
    with pytest.raises(KeyboardInterrupt):
        listener.ensure_started()
    listener.close(timeout=0)  # before the fix: "cannot join thread before it is started"

    interrupt_first_start(monkeypatch, "aria2_sync-notifications")
    listener = NotificationListener(daemon.rpc_url, on_event=lambda gid=None: None)
    with pytest.raises(KeyboardInterrupt):
        listener.ensure_started()
    listener.ensure_started()
    try:
        assert listener.connected.wait(15), "the listener started on the next use did not connect"
    finally:
        listener.close(timeout=5)
    thread = listener._thread
    assert thread is not None and not thread.is_alive()
