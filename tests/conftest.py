"""Shared fixtures: a real aria2c per test, our fault-injecting file server, clients on both.

Everything listens on 127.0.0.1 on free ports, and every process or server a fixture starts is
stopped by the fixture, by PID, whatever the test did.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Callable

import pytest

from aria2_sync import Aria2Client
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc import transport as transport_module
from tests.support.bittorrent import bt_tracker, seeder_factory, torrent_factory  # noqa: F401 (fixtures)
from tests.support.daemons import aria2_hosts  # noqa: F401 (fixture)
from tests.support.fault_server import FaultServer
from tests.support.redis_server import redis_factory, redis_server, redis_url  # noqa: F401 (fixtures)
from tests.support.tls import tls_aria2  # noqa: F401 (fixture)

#: Options that make aria2 give up after one failed try, so the client must do the restarting.
GIVE_UP_AT_ONCE = {"max-tries": 1, "retry-wait": 0}


class _KeepEverything(logging.Handler):
    """Keeps every log record of the run, formatted (tracebacks included), with where it came from.

    Each line is kept as ``(test, logger name, level, text)``: ``test`` is the node id of the
    test that was running (set by :func:`_package_logger_and_secrets`), so a leak can be reported by place.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str, str, str]] = []
        self.current_test = "(between tests)"
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            text = repr(record.__dict__)
        self.lines.append((self.current_test, record.name, record.levelname, text))


def _leaks(lines: list[tuple[str, str, str, str]], secrets: set[str]) -> list[str]:
    """Where secrets appear in ``lines``: ``test (logger NAME, LEVEL)`` entries, never the values."""
    if not lines or not secrets:
        return []
    joined = "\n".join(text for _, _, _, text in lines)
    found = [s for s in secrets if s in joined]  # one pass per secret over all the text
    if not found:
        return []
    places = []
    for test, name, level, text in lines:
        if any(s in text for s in found):
            place = f"{test} (logger {name}, {level})"
            if place not in places:
                places.append(place)
    return [f"{len(found)} RPC secret(s) in log lines at: " + "; ".join(places)]


class _SecretWatch:
    """The session's captured lines and every RPC secret given to a Transport so far."""

    def __init__(self, handler: _KeepEverything) -> None:
        self.handler = handler
        self.secrets: set[str] = set()


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line() -> Iterator[_SecretWatch]:
    """The whole suite runs with DEBUG logging captured; no RPC secret may appear in it.

    Every secret any transport is given during the run (daemons' real ones, and the wrong ones
    tests try on purpose) is collected, then looked for in every captured line: after each test
    in that test's lines (see :func:`_package_logger_and_secrets`), and here at the end in all of
    them (a secret first used by a later test). A failure says how many secrets leaked and where
    (test, logger, level), never the secrets themselves.
    """
    original_init = transport_module.Transport.__init__
    handler = _KeepEverything()
    watch = _SecretWatch(handler)

    def recording_init(self, rpc_url, secret=None, **kwargs):
        if secret:
            watch.secrets.add(secret)
        original_init(self, rpc_url, secret, **kwargs)

    transport_module.Transport.__init__ = recording_init
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
        transport_module.Transport.__init__ = original_init
    leaks = _leaks(handler.lines, watch.secrets)
    assert not leaks, leaks[0]


@contextlib.contextmanager
def package_logger_restored() -> Iterator[logging.Logger]:
    """Put the ``aria2_sync`` logger back as it was on exit: level, handlers, propagate, disabled.

    Handlers added meanwhile are removed, handlers removed meanwhile are added back, and a
    ``logging.disable()`` call is undone.
    """
    package = logging.getLogger("aria2_sync")
    saved_level, saved_handlers = package.level, list(package.handlers)
    saved_propagate, saved_disabled = package.propagate, package.disabled
    saved_disable = logging.root.manager.disable
    try:
        yield package
    finally:
        for handler in list(package.handlers):
            if handler not in saved_handlers:
                package.removeHandler(handler)
        for handler in saved_handlers:
            if handler not in package.handlers:
                package.addHandler(handler)
        package.setLevel(saved_level)
        package.propagate = saved_propagate
        package.disabled = saved_disabled
        logging.disable(saved_disable)


@pytest.fixture(autouse=True)
def _package_logger_and_secrets(request, no_secret_in_any_log_line: _SecretWatch) -> Iterator[None]:
    """Around every test: the ``aria2_sync`` logger as it was, and no secret in this test's lines.

    A test (or a client it builds with ``verbose=True``) may add a handler to the package logger
    and raise its level to INFO; left in place, that would hide the package's DEBUG lines from the
    suite-wide capture and from ``caplog.at_level(DEBUG)`` for every later test, switching the
    secret check off by test order. So level, handlers, ``propagate`` and ``disabled`` are put
    back after each test, and handlers the test left are removed.
    """
    watch = no_secret_in_any_log_line
    watch.handler.current_test = request.node.nodeid
    first_line = len(watch.handler.lines)
    try:
        with package_logger_restored():
            yield
    finally:
        watch.handler.current_test = "(between tests)"
    leaks = _leaks(watch.handler.lines[first_line:], watch.secrets)
    assert not leaks, leaks[0]


@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    """Our file server; its handler threads' own errors fail the test at teardown."""
    server = FaultServer()
    try:
        server.start()
        yield server
    finally:
        stopped = server.stop()
    assert server.errors == [], f"the fault server's handlers raised: {server.errors!r}"
    assert stopped, "the fault server's threads did not end within its stop timeout"


def _stop_all(things: list, stop: Callable[[object], object]) -> None:
    """Stop every one of ``things``, even when stopping one raises; then raise the first error."""
    errors = []
    for thing in things:
        try:
            stop(thing)
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]


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

    try:
        yield start
    finally:
        _stop_all(started, lambda daemon: daemon.stop())
    assert all(not daemon.running for daemon in started)


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

    try:
        yield make
    finally:
        _stop_all(clients, lambda client: client.close())


@pytest.fixture
def client(client_factory) -> Aria2Client:
    return client_factory()


def wait_for(
    predicate: Callable[[], object], timeout: float = 15.0, interval: float = 0.02, what: str = "condition"
):
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


def wait_until_finished(client: Aria2Client, gid: str, timeout: float = 30.0):
    """Poll like a user would (this drives auto restarts) until the download is complete or
    given up; return its last snapshot."""

    def finished():
        progress = client.get_progress(gid)
        if progress.status == "complete" or progress.gave_up_reason:
            return progress
        return None

    return wait_for(finished, timeout, what=f"GID {gid} to complete or be given up")


#: Fixtures that start a real aria2c or a local HTTP server: a test using any is ``integration``.
_INTEGRATION_FIXTURES = frozenset(
    {
        "daemon",
        "daemon_factory",
        "client",
        "client_factory",
        "fault_server",
        "bt_tracker",
        "torrent_factory",
        "seeder_factory",
        "aria2_hosts",
        "tls_aria2",
    }
)


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses a real daemon or server ``integration``, so the marker selects it."""
    for item in items:
        if _INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


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
