"""The client's hardening (issues 10, 11, 12): errors after a successful add, futures after
close, refused adds, a real memory bound, close() against interrupts, side-effect-free
construction.

Races are made deterministic with :class:`HoldingProxy`, a JSON-RPC proxy in front of a real
aria2c that can hold an answer until the test lets it go, or answer a method itself.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aria2_sync import Aria2Client, Aria2ClosedError, Aria2RPCError, DownloadFailed, Progress
from aria2_sync.client import engine_of
from aria2_sync.engine.core import Engine
from aria2_sync.engine.ledger import Batch, Ledger
from aria2_sync.engine.monitor import Monitor
from aria2_sync.engine.record import DownloadRecord, Outcome
from aria2_sync.engine.runtime import Runtime
from aria2_sync.logs import _VerboseHandler
from aria2_sync.state.sqlite import SQLiteStore
from tests.conftest import wait_for
from tests.support.fault_server import Slow

BOUND = 20.0  # seconds: the most any wait in this file may take


# -- a JSON-RPC proxy that holds or answers ------------------------------------------------------


def _methods(body: bytes) -> list[str]:
    """The RPC methods a request calls (those inside a system.multicall too)."""
    try:
        request = json.loads(body)
    except ValueError:
        return []
    method = request.get("method", "")
    if method == "system.multicall":
        calls = request.get("params", [[]])[-1]
        return [method] + [c.get("methodName", "") for c in calls if isinstance(c, dict)]
    return [method]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        proxy = self.server.proxy
        answer = proxy._answer_for(body)
        if answer is None:
            answer = proxy._forward(body, dict(self.headers))
        proxy._maybe_hold(body)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except OSError:
            pass  # the client gave up on this call (closed meanwhile)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    proxy: HoldingProxy


class HoldingProxy:
    """Forwards JSON-RPC to aria2; can hold the answer of a method, or answer one itself."""

    def __init__(self, upstream: str) -> None:
        parts = urllib.parse.urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80, parts.path)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._lock = threading.Lock()
        self._hold_method: str | None = None
        self.holding = threading.Event()
        self._release = threading.Event()
        self._answers: dict[str, Callable[[dict[str, Any], list[str]], Any]] = {}
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._upstream[2]}"

    def __enter__(self) -> HoldingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(BOUND)
        assert not self._thread.is_alive()

    def hold(self, method: str) -> None:
        """Hold the answer to the next call of ``method`` (sent to aria2 all the same)."""
        with self._lock:
            self._hold_method = method
        self.holding.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def answer(self, method: str, make: Callable[[dict[str, Any], list[str]], Any]) -> None:
        """Answer every call of ``method`` with ``make(request, methods)`` (a JSON-able reply)."""
        self._answers[method] = make

    def _answer_for(self, body: bytes) -> bytes | None:
        methods = _methods(body)
        for method, make in self._answers.items():
            if method in methods:
                return json.dumps(make(json.loads(body), methods)).encode()
        return None

    def _maybe_hold(self, body: bytes) -> None:
        with self._lock:
            held = self._hold_method is not None and self._hold_method in _methods(body)
            if held:
                self._hold_method = None
        if held:
            self.holding.set()
            assert self._release.wait(BOUND), "the test never released the held answer"

    def _forward(self, body: bytes, headers: dict[str, str]) -> bytes:
        host, port, path = self._upstream
        connection = http.client.HTTPConnection(host, port, timeout=BOUND)
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            return connection.getresponse().read()
        finally:
            connection.close()


def _rpc_error(request: dict[str, Any], message: str, code: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": code, "message": message}}


def _multicall_errors(request: dict[str, Any], message: str) -> dict[str, Any]:
    """A system.multicall answer whose every item is an error."""
    calls = request["params"][-1]
    return {
        "jsonrpc": "2.0",
        "id": request.get("id"),
        "result": [{"code": 1, "message": message} for _ in calls],
    }


@pytest.fixture
def proxy(daemon) -> Iterator[HoldingProxy]:
    with HoldingProxy(daemon.rpc_url) as running:
        yield running


@pytest.fixture(autouse=True)
def package_logger_restored() -> Iterator[None]:
    """Each test here starts and ends with the ``aria2_sync`` logger as it found it."""
    logger = logging.getLogger("aria2_sync")
    handlers, level = list(logger.handlers), logger.level
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)


def _in_thread(work: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``work`` on a thread; the dict gets ``value`` or ``error``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _joined(thread: threading.Thread, outcome: dict[str, Any]) -> Any:
    thread.join(BOUND)
    assert not thread.is_alive(), "the call did not return"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _client(daemon, rpc_url: str | None = None, **kwargs: Any) -> Aria2Client:
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("retry_delay", 0.05)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("notifications", False)
    return Aria2Client(rpc_url or daemon.rpc_url, daemon.secret, **kwargs)


# -- 10.6: an error after the add succeeded -------------------------------------------------------


def test_a_store_locked_mid_add_does_not_lose_the_gid(daemon, proxy, fault_server, tmp_path, caplog):
    db = tmp_path / "locked.db"
    store = SQLiteStore(str(db), timeout=0.3)  # (a short busy timeout: the lock outlasts it)
    client = _client(daemon, proxy.url, state=store)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        url = fault_server.add_file("locked.bin", size=20_000)
        proxy.hold("aria2.addUri")
        thread, outcome = _in_thread(lambda: client.add_download(url, str(tmp_path / "locked.bin")))
        assert proxy.holding.wait(BOUND)
        holder.execute("BEGIN IMMEDIATE")  # another process takes the write lock mid-add
        with caplog.at_level(logging.WARNING, logger="aria2_sync"):
            proxy.release()
            gid = _joined(thread, outcome)  # the GID, not an Aria2StateError
        assert any(gid in r.getMessage() and "shared state" in r.getMessage() for r in caplog.records)
        holder.execute("ROLLBACK")
        result = client.future(gid).result(timeout=BOUND)  # watched all the same
        assert result.size == 20_000
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
        client.close()
        store.close()


def _store_with_a_damaged_row(db) -> None:
    """A state file with an unfinished download whose ``uris`` cell is not JSON."""
    SQLiteStore(str(db)).close()
    with sqlite3.connect(db) as connection:
        connection.execute(
            "INSERT INTO downloads (gid, uris, options, current_gid, added_at) "
            "VALUES ('00000000000000aa', '[\"http://x/', '{}', '00000000000000aa', 0)"
        )


@pytest.mark.parametrize("how", ["add_download", "submit", "add_batch_downloads"])
def test_a_damaged_store_after_the_add_returns_the_handle(daemon, fault_server, tmp_path, caplog, how):
    db = tmp_path / "damaged.db"
    _store_with_a_damaged_row(db)
    url = fault_server.add_file("d.bin", size=5_000)
    with _client(daemon, state=db) as client, caplog.at_level(logging.WARNING, logger="aria2_sync"):
        target = str(tmp_path / "d.bin")
        if how == "add_download":
            futures = [client.future(client.add_download(url, target))]
        elif how == "submit":
            futures = [client.submit(url, target)]
        else:
            batch_id = client.add_batch_downloads([(url, target)])
            futures = client.batch_futures(batch_id)
        assert [f.result(timeout=BOUND).size for f in futures] == [5_000]
        # (said when the watch looks for others' downloads and meets the damaged row)
        assert any("the file is damaged" in r.getMessage() for r in caplog.records)


# -- 11.2: every future of a closed client fails with Aria2ClosedError ----------------------------


def test_futures_asked_for_after_close_fail_at_once(daemon, fault_server, tmp_path):
    url = fault_server.add_file("late.bin", size=2_000_000)
    fault_server.set_default_fault("late.bin", Slow(100_000))
    client = _client(daemon)
    gid = client.add_download(url, str(tmp_path / "late.bin"))  # (no future asked for yet)
    batch_id = client.add_batch_downloads([(url, str(tmp_path / "late2.bin"))])
    client.close()
    assert isinstance(client.future(gid).exception(timeout=BOUND), Aria2ClosedError)
    futures = client.batch_futures(batch_id)
    assert [type(f.exception(timeout=BOUND)) for f in futures] == [Aria2ClosedError]
    thread, outcome = _in_thread(lambda: client.wait_for_batch(batch_id))  # no timeout
    progress = _joined(thread, outcome)
    assert progress is not None and not progress.is_completed
    with pytest.raises(Aria2ClosedError):
        client.future("0123456789abcdef")  # unknown here: the client cannot look it up


def test_submit_whose_add_is_in_flight_during_close_gets_a_failed_future(
    daemon, proxy, fault_server, tmp_path
):
    url = fault_server.add_file("inflight.bin", size=1_000)
    client = _client(daemon, proxy.url)
    proxy.hold("aria2.addUri")
    thread, outcome = _in_thread(lambda: client.submit(url, str(tmp_path / "inflight.bin")))
    assert proxy.holding.wait(BOUND)
    closer, closed = _in_thread(client.close)
    proxy.release()
    _joined(closer, closed)
    future = _joined(thread, outcome)
    assert isinstance(future.exception(timeout=BOUND), Aria2ClosedError)


def test_a_batch_racing_close_gives_failed_futures_and_wait_returns(daemon, proxy, fault_server, tmp_path):
    url = fault_server.add_file("race.bin", size=1_000)
    client = _client(daemon, proxy.url)
    proxy.hold("aria2.addUri")
    items = [(url, str(tmp_path / f"race{i}.bin")) for i in range(3)]
    thread, outcome = _in_thread(lambda: client.add_batch_downloads(items))
    assert proxy.holding.wait(BOUND)
    closer, closed = _in_thread(client.close)
    proxy.release()
    _joined(closer, closed)
    batch_id = _joined(thread, outcome)
    assert [type(f.exception(timeout=BOUND)) for f in client.batch_futures(batch_id)] == [
        Aria2ClosedError
    ] * 3
    waiter, waited = _in_thread(lambda: client.wait_for_batch(batch_id))
    assert _joined(waiter, waited).batch_id == batch_id


# -- 11.3: a refused add whose existence check fails -----------------------------------------------


@pytest.mark.parametrize("trouble", ["rpc error", "html"])
def test_a_refused_add_whose_check_fails_is_forgotten_and_named(
    daemon, proxy, fault_server, tmp_path, trouble
):
    proxy.answer("aria2.addUri", lambda request, _: _rpc_error(request, "refused for the test"))
    if trouble == "rpc error":
        proxy.answer("aria2.tellStatus", lambda request, _: _rpc_error(request, "internal trouble"))
    else:
        proxy.answer("aria2.tellStatus", lambda request, _: "<html>not aria2</html>")
    with _client(daemon, proxy.url, max_retries=0) as client:
        with pytest.raises(Aria2RPCError) as caught:
            client.submit(fault_server.add_file("r.bin", size=10), str(tmp_path / "r.bin"))
        assert caught.value.method == "aria2.addUri" and "refused for the test" in str(caught.value)
        assert len(engine_of(client).ledger) == 0  # no record left adding, nothing for the monitor to read


def test_a_batch_whose_refusals_cannot_be_checked_fails_those_items(daemon, proxy, fault_server, tmp_path):
    proxy.answer("aria2.addUri", lambda request, _: _multicall_errors(request, "refused for the test"))
    proxy.answer("aria2.tellStatus", lambda request, _: _rpc_error(request, "internal trouble"))
    with _client(daemon, proxy.url, max_retries=0) as client:
        url = fault_server.add_file("rb.bin", size=10)
        batch_id = client.add_batch_downloads([(url, str(tmp_path / f"rb{i}.bin")) for i in range(2)])
        for future in client.batch_futures(batch_id):
            with pytest.raises(DownloadFailed, match="refused for the test"):
                future.result(timeout=BOUND)
        assert not engine_of(client).ledger.unfinished()


# -- 11.7: keep_finished is a hard bound ------------------------------------------------------------


def _finished_in_memory(ledger: Ledger) -> int:
    return sum(record.finished for record in ledger)


def test_quick_batches_never_keep_more_finished_records_than_the_bound():
    ledger = Ledger(keep_finished=50, keep_seconds=None)
    peak = 0
    batch_ids = []
    for number in range(200):  # 1000 downloads in quick batches of 5
        records = [
            DownloadRecord(
                gid=f"{number:08x}{i:08x}",
                uris=["http://h/f"],
                options={},
                current_gid=f"{number:08x}{i:08x}",
                batch_id=f"b{number}",
            )
            for i in range(5)
        ]
        ledger.add_batch(Batch(f"b{number}", [r.gid for r in records]), records)
        batch_ids.append(f"b{number}")
        for record in records:
            seen = record.observed(0, Progress(gid=record.gid, status="complete"), (), auto_restart=True)
            assert seen.outcome is Outcome.COMPLETE
            ledger.persist_outcome(record)
            peak = max(peak, _finished_in_memory(ledger))
    assert peak <= 50
    summary = ledger.batch_summary(batch_ids[0])  # forgotten, but finished < 60 s ago
    assert summary is not None and (summary.total, summary.completed) == (5, 5)
    assert ledger.has_batch(batch_ids[0])


def test_finished_batches_past_the_bound_keep_their_counts(daemon, fault_server, tmp_path):
    url = fault_server.add_file("q.bin", size=100)
    with _client(daemon, keep_finished=4) as client:
        batch_ids = []
        for number in range(5):
            batch_id = client.add_batch_downloads(
                [(url, str(tmp_path / f"q{number}-{i}.bin")) for i in range(3)]
            )
            assert client.wait_for_batch(batch_id, timeout=BOUND).is_completed
            batch_ids.append(batch_id)
        wait_for(lambda: _finished_in_memory(engine_of(client).ledger) <= 4, what="the retention")
        first = client.get_batch_progress(batch_ids[0])
        assert first.is_completed and (first.total_count, first.completed_count) == (3, 3)
        assert client.wait_for_batch(batch_ids[0]).completed_count == 3


# -- 11.8: close() finishes every step ---------------------------------------------------------------


@pytest.fixture
def interrupted_start(monkeypatch) -> Callable[[str], None]:
    """``interrupt(prefix)``: the next start of a thread named ``prefix...`` raises
    KeyboardInterrupt before the thread starts (Ctrl-C at the worst moment)."""
    real_start = threading.Thread.start
    armed: dict[str, bool] = {}

    def start(self: threading.Thread) -> None:
        for prefix in list(armed):
            if self.name.startswith(prefix):
                del armed[prefix]
                raise KeyboardInterrupt
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    return lambda prefix: armed.__setitem__(prefix, True)


@pytest.mark.parametrize("thread", ["aria2_sync-scheduler", "aria2_sync-job", "aria2_sync-monitor"])
def test_an_interrupt_before_a_thread_starts_does_not_break_close(
    tmp_path, fault_server, interrupted_start, thread
):
    client = Aria2Client.local(tmp_path, verbose=False, notifications=False)
    daemon = client.daemon
    try:
        interrupted_start(thread)
        with pytest.raises(KeyboardInterrupt):
            if thread == "aria2_sync-scheduler":
                engine_of(client).runtime.scheduler.call_later(60, lambda: None)
            elif thread == "aria2_sync-job":
                engine_of(client).runtime.pools.jobs.submit(lambda: None)
            else:
                client.add_download(fault_server.add_file("i.bin", size=10), str(tmp_path / "i.bin"))
        client.close()  # no "cannot join thread before it is started"
        assert not daemon.running
    finally:
        daemon.stop()


def test_close_runs_every_step_and_reraises_the_first_error(tmp_path, monkeypatch):
    client = Aria2Client.local(tmp_path, verbose=False, notifications=False, state=tmp_path / "s.db")
    daemon, store = client.daemon, engine_of(client).ledger.store
    try:

        def broken(*_: Any) -> None:
            raise RuntimeError("a step that fails")

        monkeypatch.setattr(Engine, "fail_pending_futures", broken)
        with pytest.raises(RuntimeError, match="a step that fails"):
            client.close()
        assert not daemon.running
        with pytest.raises(sqlite3.ProgrammingError):
            store._db.execute("SELECT 1")  # closed too
    finally:
        daemon.stop()


def test_close_closes_the_connections_before_waiting_for_threads(daemon, monkeypatch):
    client = _client(daemon)
    order: list[str] = []
    for name, owner, attribute in [
        ("transport", engine_of(client).transport, "close"),
        ("monitor transport", engine_of(client).monitor_transport, "close"),
    ]:
        real = getattr(owner, attribute)
        monkeypatch.setattr(
            owner, attribute, lambda *a, _r=real, _n=name, **k: (order.append(_n), _r(*a, **k))
        )
    real_join = Runtime.join
    monkeypatch.setattr(Runtime, "join", lambda self: (order.append("threads joined"), real_join(self)))
    real_monitor_close = Monitor.close
    monkeypatch.setattr(
        Monitor,
        "close",
        lambda self, timeout=5.0: (
            order.append(f"monitor {'signalled' if timeout == 0 else 'joined'}"),
            real_monitor_close(self, timeout),
        ),
    )
    client.close()
    assert order.index("transport") < order.index("threads joined")
    assert order.index("monitor transport") < order.index("threads joined")
    assert order.index("monitor signalled") < order.index("transport")
    assert "monitor joined" not in order  # waited for with every other thread, by one deadline


# -- 12: constructors validate before any side effect -------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"restart_policy": "not a policy"},
        {"max_restarts": 2, "restart_policy": None, "state": 42},
        {"state": "/nonexistent-dir-for-aria2_sync/x.db"},
    ],
)
def test_a_failed_construction_leaves_the_logger_and_threads_alone(daemon, bad):
    logger = logging.getLogger("aria2_sync")
    handlers, level = list(logger.handlers), logger.level
    threads = set(threading.enumerate())
    with pytest.raises(Exception) as caught:
        Aria2Client(daemon.rpc_url, daemon.secret, verbose=True, **bad)
    assert type(caught.value).__name__ in ("Aria2InputError", "Aria2StateError")
    assert logger.handlers == handlers and logger.level == level
    assert set(threading.enumerate()) <= threads


def test_closing_the_last_verbose_client_removes_its_handler(daemon):
    logger = logging.getLogger("aria2_sync")
    handlers, level = list(logger.handlers), logger.level
    if any(isinstance(h, _VerboseHandler) for h in handlers):
        pytest.skip("a verbose handler is already attached by someone else")
    first = Aria2Client(daemon.rpc_url, daemon.secret, verbose=True)
    second = Aria2Client(daemon.rpc_url, daemon.secret, verbose=True)
    assert sum(isinstance(h, _VerboseHandler) for h in logger.handlers) == 1
    first.close()
    assert sum(isinstance(h, _VerboseHandler) for h in logger.handlers) == 1  # still one user
    second.close()
    assert logger.handlers == handlers and logger.level == level
