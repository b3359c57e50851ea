"""Several aria2c processes as several "hosts", for the pool tests (issue 16).

Each :class:`Host` is one ``aria2c`` (an :class:`~aria2_sync.daemon.process.Aria2Daemon`
without supervision) on a fixed free port of 127.0.0.1, with its own secret, download directory,
state directory and session file, as one daemon per machine would be. Tests make hosts fail the
ways a machine does:

* :meth:`Host.kill`: SIGKILL by PID (the port then refuses connections, as a dead host's would);
* :meth:`Host.freeze` / :meth:`Host.thaw`: SIGSTOP / SIGCONT by PID. A stopped aria2c keeps its
  listening socket, so the kernel still accepts connections and nothing ever answers, as with a
  host that died behind a switch;
* :meth:`Host.restart`: aria2c again on the same port with the same session file (after a kill,
  what the session saved up to a second before; optionally with another secret).

:meth:`Host.status` reads the host's own view past the client under test: every download it
holds, by GID, with its status. The ``aria2_hosts`` fixture stops every host by PID at teardown,
thawing a frozen one first (a stopped process would not act on SIGTERM), each step bounded.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aria2_sync.daemon import ownership
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc.transport import Transport

#: Keys read from the host's own RPC for :meth:`Host.status`.
_KEYS = ["gid", "status", "completedLength", "totalLength"]
#: aria2c keeps at most this many stopped results by default (``--max-download-result``).
_MAX_LISTED = 1000


def _process_state(pid: int) -> str | None:
    """The one-letter state of process ``pid`` from /proc (``T`` when stopped), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            text = stat.read()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[0]  # (the command name may hold spaces and parentheses)


class Host:
    """One aria2c standing for one machine: its own port, secret, directories and session."""

    def __init__(self, root: Path, name: str, options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.download_dir = root / "downloads"
        self.state_dir = root / "state"  # created 0700 by Aria2Daemon
        self.daemon = Aria2Daemon(
            port=ownership.free_port("127.0.0.1"),
            secret=secrets.token_hex(16),
            download_dir=self.download_dir,
            state_dir=self.state_dir,
            options=options,
            supervise=False,
        )
        self.frozen = False
        self._own: Transport | None = None

    def __repr__(self) -> str:
        return f"<Host {self.name} port {self.port} pid {self.pid}{' frozen' if self.frozen else ''}>"

    @property
    def port(self) -> int:
        assert self.daemon.port is not None
        return self.daemon.port

    @property
    def rpc_url(self) -> str:
        return self.daemon.rpc_url

    @property
    def secret(self) -> str:
        return self.daemon.secret

    @property
    def pid(self) -> int | None:
        return self.daemon.pid

    @property
    def running(self) -> bool:
        return self.daemon.running

    def start(self) -> Host:
        self.daemon.start()
        return self

    # -- failures -------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL aria2c by its PID and reap it (a stopped process dies of SIGKILL too)."""
        self.daemon.kill()
        self.frozen = False
        assert not self.daemon.running, f"{self} survived SIGKILL"

    def freeze(self, timeout: float = 5.0) -> None:
        """SIGSTOP aria2c by its PID; return once the kernel reports it stopped."""
        pid = self.pid
        assert pid is not None and self.running, f"{self} is not running"
        os.kill(pid, signal.SIGSTOP)
        self.frozen = True
        deadline = time.monotonic() + timeout
        while _process_state(pid) != "T":
            if time.monotonic() > deadline:
                pytest.fail(f"{self} was not stopped within {timeout:g} s of SIGSTOP")
            time.sleep(0.005)

    def thaw(self) -> None:
        """SIGCONT aria2c by its PID (nothing to do unless frozen)."""
        pid = self.pid
        if self.frozen and pid is not None and self.running:
            os.kill(pid, signal.SIGCONT)
        self.frozen = False

    def restart(self, secret: str | None = None) -> None:
        """aria2c again on the same port, directories and session file (stopped first if running:
        SIGTERM saves the session). ``secret``: a new secret, for a host that refuses the old one."""
        self.thaw()
        self._close_own()
        if self.running:
            self.daemon.stop(timeout=5.0)
        if secret is not None:
            self.daemon.secret = secret
        self.daemon.start()

    def stop(self) -> None:
        """Thaw, then stop gracefully by PID (SIGKILL after 5 s); idempotent."""
        try:
            self.thaw()
            self.daemon.stop(timeout=5.0)
        finally:
            self._close_own()

    # -- the host's own view --------------------------------------------------------------------

    def call(self, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
        """One RPC call straight to this host with its current secret, no retries."""
        return self._transport(timeout).call(method, list(params or []))

    def _transport(self, timeout: float) -> Transport:
        if self._own is None or self._own.timeout != timeout:
            self._close_own()
            self._own = Transport(self.rpc_url, self.secret, timeout=timeout, max_retries=0)
        return self._own

    def status(self) -> dict[str, str]:
        """Every download this host holds, ``{gid: status}`` (active, waiting, paused, complete,
        error, removed), read in one multicall from its own RPC."""
        answers = self._transport(5.0).multicall(
            [
                ("aria2.tellActive", [_KEYS]),
                ("aria2.tellWaiting", [0, _MAX_LISTED, _KEYS]),
                ("aria2.tellStopped", [0, _MAX_LISTED, _KEYS]),
            ]
        )
        statuses: dict[str, str] = {}
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
            statuses.update((item["gid"], item["status"]) for item in answer)
        return statuses

    def unfinished(self) -> set[str]:
        """GIDs this host holds as active, waiting or paused."""
        return {gid for gid, status in self.status().items() if status in ("active", "waiting", "paused")}

    def accepts_connections(self) -> bool:
        """Whether a TCP connection to the RPC port is accepted (by aria2c or, frozen, the kernel)."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
            return True
        except OSError:
            return False

    def _close_own(self) -> None:
        own, self._own = self._own, None
        if own is not None:
            own.close()


@pytest.fixture
def aria2_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., list[Host]]]:
    """``aria2_hosts(count, **aria2c_options)``: that many started hosts; every one (frozen,
    killed or restarted since) is stopped by PID after the test."""
    started: list[Host] = []

    def make(count: int, **options: Any) -> list[Host]:
        hosts = []
        for _ in range(count):
            name = f"host{len(started)}"
            host = Host(tmp_path_factory.mktemp(name), name, options)
            started.append(host)
            hosts.append(host.start())
        return hosts

    try:
        yield make
    finally:
        errors = []
        for host in started:
            try:
                host.stop()
            except Exception as error:  # stop the others all the same
                errors.append(error)
        if errors:
            raise errors[0]
    assert not any(host.running for host in started), "a host outlived the test"
