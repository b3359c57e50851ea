"""A real ``redis-server`` for the Redis store tests, on a free port of 127.0.0.1 only.

Each server has its own directory and append-only file (so a restart keeps what was written, as
a production Redis configured for this store does), no RDB snapshots, and is stopped by PID.
Without ``redis-server`` installed the tests that need one skip with one reason, except in CI
(``$CI`` set, as ``.ci/run`` does), where they fail: CI must run them.

Fixtures: ``redis_server`` (one per session), ``redis_url`` (a fresh prefix per test on it),
``redis_factory`` (servers of the test's own, e.g. with a password, or to stop and restart).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REDIS_SERVER = "redis-server"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _binary() -> str:
    path = shutil.which(REDIS_SERVER)
    if path is None:
        reason = (
            "redis-server is not installed (Debian: apt-get install redis-server); "
            "the Redis store tests need a real one"
        )
        if os.environ.get("CI"):
            pytest.fail(reason + " and CI must run them (.ci/run installs it)")
        pytest.skip(reason)
    return path


class RedisServer:
    """One ``redis-server`` process: :meth:`start`, :meth:`stop` (by PID), :meth:`restart`."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.directory = directory
        self.password = password
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        #: Its Unix socket too (for ``unix://`` URLs); kept short (sun_path has 108 bytes).
        self.socket = Path(f"/tmp/aria2-sync-redis-{uuid.uuid4().hex[:12]}.sock")
        directory.mkdir(parents=True, exist_ok=True)

    def url(self, db: int = 0, prefix: str | None = None) -> str:
        auth = f":{self.password}@" if self.password else ""
        query = f"?prefix={prefix}" if prefix else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}{query}"

    def start(self) -> None:
        command = [_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--dir", str(self.directory), "--daemonize", "no"]
        command += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.password:
            # (on the command line: visible to this machine's users, fine for a test server)
            command += ["--requirepass", self.password]
        log = open(self.directory / "redis.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 20
        while not self.answers():
            if self.process.poll() is not None:
                tail = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"redis-server exited ({self.process.returncode}): {tail}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("redis-server did not answer PING within 20 s")
            time.sleep(0.02)

    def answers(self) -> bool:
        """Whether the server answers PING (AUTH first when it has a password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                if self.password:
                    conn.sendall(f"AUTH {self.password}\r\n".encode())
                    if not conn.recv(64).startswith(b"+OK"):
                        return False
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file and exits), SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        self.socket.unlink(missing_ok=True)  # (Redis removes it itself when it shuts down cleanly)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL with a prefix of this test's own (tests never see each other)."""
    return redis_server.url(prefix=f"t{uuid.uuid4().hex[:10]}:")


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``redis_factory(password=None)``: a started server of this test's own, stopped after it."""
    servers: list[RedisServer] = []

    def make(password: str | None = None) -> RedisServer:
        server = RedisServer(tmp_path / f"redis{len(servers)}", password)
        servers.append(server)
        server.start()
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.stop()


def stored_rows(state: object) -> list[dict[str, str]]:
    """Every stored download of a store named by ``state=`` (an SQLite path or a Redis URL),
    read past the store (raw SQL or raw Redis), as ``{column: text}``."""
    text = str(state)
    if not text.startswith("redis://"):
        import sqlite3

        with sqlite3.connect(text) as connection:
            connection.row_factory = sqlite3.Row
            return [
                {k: str(row[k]) for k in row.keys()} for row in connection.execute("SELECT * FROM downloads")
            ]
    import urllib.parse

    import redis

    parts = urllib.parse.urlsplit(text)
    prefix = dict(urllib.parse.parse_qsl(parts.query)).get("prefix", "aria2_sync:")
    client = redis.Redis.from_url(parts._replace(query="").geturl(), decode_responses=True)
    try:
        keys = sorted(client.scan_iter(match=f"{prefix}d:*", count=1000))
        return [client.hgetall(key) for key in keys]
    finally:
        client.close()
