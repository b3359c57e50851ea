"""Shared fixtures: a real aria2c per test, our fault-injecting file server, clients on both.

Everything listens on 127.0.0.1 on free ports, and every process or server a fixture starts is
stopped by the fixture, by PID, whatever the test did.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterator, List, Set

import pytest

from aria2_sync import transport as transport_module

from aria2_sync import Aria2Client
from aria2_sync.daemon import Aria2Daemon
from tests.support.fault_server import FaultServer

#: Options that make aria2 give up after one failed try, so the client must do the restarting.
GIVE_UP_AT_ONCE = {"max-tries": 1, "retry-wait": 0}


class _KeepEverything(logging.Handler):
    """Keeps every log record of the run, formatted, tracebacks included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: List[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.texts.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is still a record
            self.texts.append(repr(record.__dict__))


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line():
    """The whole suite runs with DEBUG logging captured; no RPC secret may appear in it.

    Every secret any transport is given during the run (daemons' real ones, and the wrong ones
    tests try on purpose) is collected, then looked for in every captured line.
    """
    secrets: Set[str] = set()
    original_init = transport_module.Transport.__init__

    def recording_init(self, rpc_url, secret=None, **kwargs):
        if secret:
            secrets.add(secret)
        original_init(self, rpc_url, secret, **kwargs)

    transport_module.Transport.__init__ = recording_init
    handler = _KeepEverything()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        transport_module.Transport.__init__ = original_init
    leaked = sorted(s for s in secrets if any(s in text for text in handler.texts))
    assert not leaked, f"{len(leaked)} RPC secrets appeared in log lines"


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server


def _start_daemon(tmp_path_factory: pytest.TempPathFactory, **options) -> Aria2Daemon:
    downloads = tmp_path_factory.mktemp("downloads")
    state = tmp_path_factory.mktemp("aria2-state")
    return Aria2Daemon(download_dir=downloads, state_dir=state, options=options).start()


@pytest.fixture
def daemon_factory(tmp_path_factory) -> Iterator[Callable[..., Aria2Daemon]]:
    """Start aria2c daemons with extra aria2c options; all are stopped after the test."""
    started = []

    def start(**options) -> Aria2Daemon:
        daemon = _start_daemon(tmp_path_factory, **options)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
        assert not daemon.running


@pytest.fixture
def daemon(daemon_factory) -> Aria2Daemon:
    return daemon_factory()


@pytest.fixture
def client_factory(daemon) -> Iterator[Callable[..., Aria2Client]]:
    """Clients on the test's daemon (quiet, quick backoff unless told otherwise)."""
    clients = []

    def make(**kwargs) -> Aria2Client:
        kwargs.setdefault("rpc_url", daemon.rpc_url)
        kwargs.setdefault("rpc_secret", daemon.secret)
        kwargs.setdefault("verbose", False)
        kwargs.setdefault("retry_delay", 0.05)
        client = Aria2Client(**kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(client_factory) -> Aria2Client:
    return client_factory()


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_for_status(client: Aria2Client, gid: str, statuses, timeout: float = 15.0):
    """Wait until download ``gid`` reaches one of ``statuses``; return its last snapshot."""
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)

    def reached():
        progress = client.get_progress(gid, auto_restart=False)
        return progress if progress is not None and progress.status in statuses else None

    return wait_for(reached, timeout, what=f"GID {gid} to reach {sorted(statuses)}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the chaos scenarios' figures (see tests/test_chaos.py) at the end of the run."""
    try:
        from tests.test_chaos import CHAOS_FIGURES
    except ImportError:  # pragma: no cover
        return
    if not CHAOS_FIGURES:
        return
    terminalreporter.section("chaos figures")
    for figures in CHAOS_FIGURES:
        terminalreporter.write_line(
            "{scenario}: {completed}/{downloads} complete, faults {faults}, {restarts} restarts, "
            "bytes served {bytes_ratio} x, duplicates {duplicates} (in {duplicate_samples} samples), "
            "{seconds} s".format(**figures)
        )
