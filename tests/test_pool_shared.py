"""A pool of daemons driven by two clients that share their state, as two web workers on two hosts.

Each client has its own view of the daemons (which answer, where each GID lives); what they
share is the store (SQLite or Redis). When a daemon dies, both see its downloads gone after
``failover_after``, and exactly one of them moves each download (the restart claim): the other
finds it on its new daemon. No download ever runs on two daemons.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from aria2_sync import Aria2Client
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc.methods import Aria2RPC
from aria2_sync.rpc.transport import Transport
from tests.conftest import wait_for
from tests.support.fault_server import Slow
from tests.test_state import state  # noqa: F401  (the fixture: an SQLite file or a Redis prefix)

FAILOVER_AFTER = 1.5


@pytest.fixture
def three_daemons(tmp_path):
    """Three aria2c processes as three hosts: each its own port on 127.0.0.1 and directories."""
    daemons: list[Aria2Daemon] = []
    try:
        for n in range(3):
            daemons.append(
                Aria2Daemon(download_dir=tmp_path / f"host{n}", state_dir=tmp_path / f"state{n}").start()
            )
        yield daemons
    finally:
        for daemon in daemons:
            daemon.stop()


def _held(daemon: Aria2Daemon) -> list[str]:
    """The GIDs ``daemon`` holds active or waiting, asked directly (not through a pool)."""
    rpc = Aria2RPC(Transport(daemon.rpc_url, daemon.secret, timeout=5.0, max_retries=0))
    try:
        return [s["gid"] for s in rpc.tell_active(["gid"]) + rpc.tell_waiting(0, 1000, ["gid"])]
    finally:
        rpc.transport.close()


def _finished(daemon: Aria2Daemon) -> list[str]:
    """The GIDs of the downloads ``daemon`` has finished (its stopped results)."""
    rpc = Aria2RPC(Transport(daemon.rpc_url, daemon.secret, timeout=5.0, max_retries=0))
    try:
        return [s["gid"] for s in rpc.tell_stopped(0, 1000, ["gid"])]
    finally:
        rpc.transport.close()


def _pool(daemons: list[Aria2Daemon], db: object) -> Aria2Client:
    return Aria2Client.pool(
        daemons,
        failover_after=FAILOVER_AFTER,
        poll_interval=0.1,
        timeout=2.0,
        verbose=False,
        state=db,
    )


def test_two_clients_sharing_state_move_each_download_of_a_dead_daemon_once(
    three_daemons,
    fault_server,
    tmp_path,
    state,  # noqa: F811
):
    db = state("pool.db")
    urls = []
    for n in range(12):
        urls.append(fault_server.add_file(f"s{n}.bin", size=600_000))
        fault_server.set_default_fault(f"s{n}.bin", Slow(150_000))
    first, second = _pool(three_daemons, db), _pool(three_daemons, db)
    try:
        batch_id = first.add_batch_downloads(urls)
        # The second worker takes on the batch from the shared store and watches it too.
        wait_for(
            lambda: second.get_batch_progress(batch_id) is not None, what="the second client to see the batch"
        )
        second.batch_futures(batch_id)
        victim = three_daemons[0]
        wait_for(lambda: len(_held(victim)) >= 2, what="downloads running on the first daemon")
        moved = set(_held(victim))
        os.kill(victim.pid, signal.SIGKILL)

        done = first.wait_for_batch(batch_id, timeout=60)
        assert done is not None and done.is_completed and done.completed_count == 12, done
        for future in first.batch_futures(batch_id) + second.batch_futures(batch_id):
            result = future.result(timeout=30)
            assert open(result.path, "rb").read() == fault_server.content(os.path.basename(result.path))
        # Each moved download was added again once, by one of the two: it is on exactly one of the
        # daemons left (a second add would have gone to the other one, or been refused there).
        copies = Counter(gid for daemon in three_daemons[1:] for gid in _finished(daemon))
        assert {gid: copies[gid] for gid in moved} == dict.fromkeys(moved, 1)
        for gid in moved:
            assert first.daemon_of(gid) in (three_daemons[1].rpc_url, three_daemons[2].rpc_url)
            assert second.daemon_of(gid) == first.daemon_of(gid)
    finally:
        first.close()
        second.close()
