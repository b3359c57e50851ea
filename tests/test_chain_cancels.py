"""Every way of cancelling sweeps a download's whole chain (magnets, followed ``.torrent`` URLs).

A magnet (or a ``.torrent`` URL followed with ``follow=True``) runs as two downloads in aria2: the
metadata under the client's GID, then the payload under a GID of aria2's own, which the client
learns of only at its next read. These tests cancel while the client has not read it (no
monitor: nothing reads the daemon but the test), so a cancel that removes only the GID the client knows leaves
the payload running: ``cancel_batch`` and ``close(cancel=True)`` must find it as
``cancel_download`` does. Real aria2c daemons on 127.0.0.1 (tests/support/bittorrent.py).
"""

from __future__ import annotations

import os

import pytest

from aria2_sync import Aria2Client
from aria2_sync.client import engine_of
from aria2_sync.daemon.process import Aria2Daemon
from tests.conftest import wait_for
from tests.support.bittorrent import leecher_options
from tests.support.fault_server import Stall

pytestmark = pytest.mark.integration

DAEMON_KEYS = ["gid", "status", "followedBy"]


@pytest.fixture
def bt_daemon(daemon_factory) -> Aria2Daemon:
    return daemon_factory(**leecher_options())


def _slow_client(daemon: Aria2Daemon) -> Aria2Client:
    """A client without a monitor: a payload that aria2 starts stays unknown to it."""
    return Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, retry_delay=0.05, monitor=False)


def _running(client: Aria2Client) -> list[dict]:
    """What the daemon still runs or holds in its queue."""
    return client.rpc.tell_active(DAEMON_KEYS) + client.rpc.tell_waiting(0, 100, DAEMON_KEYS)


def _payload_started(client: Aria2Client, gid: str) -> str:
    """Wait (on the daemon, not the client) until ``gid`` is followed by a payload that has
    received some bytes; return the payload's GID."""
    followers = wait_for(
        lambda: client.rpc.tell_status(gid, ["followedBy"]).get("followedBy"), timeout=30, what="the payload"
    )
    payload = str(followers[0])
    wait_for(
        lambda: int(client.rpc.tell_status(payload, ["completedLength"])["completedLength"]) > 0,
        timeout=30,
        what="payload bytes",
    )
    return payload


def test_cancel_batch_removes_the_payloads_the_client_has_not_seen_yet(
    bt_daemon, torrent_factory, seeder_factory, fault_server
):
    directory = str(bt_daemon.download_dir)
    running = torrent_factory("running.bin", os.urandom(1024 * 1024))
    seeder_factory(running, upload_limit=64 * 1024)
    fault_server.add_file("running.torrent", data=running.data)
    waiting = torrent_factory("waiting.bin", os.urandom(64 * 1024))
    fault_server.add_file("waiting.torrent", data=waiting.data)
    fault_server.set_default_fault("waiting.torrent", Stall(60))  # its metadata phase lasts
    client = _slow_client(bt_daemon)
    try:
        batch = client.add_batch_downloads(
            [
                (fault_server.url("running.torrent"), os.path.join(directory, "running.torrent")),
                (fault_server.url("waiting.torrent"), os.path.join(directory, "waiting.torrent")),
            ],
            follow=True,
        )
        first, second = (r.gid for r in engine_of(client).ledger.batch_records(batch))
        payload = _payload_started(client, first)
        assert client.rpc.tell_status(second, ["status"])["status"] == "active"  # fetching its .torrent
        assert engine_of(client).ledger.get(first).current_gid == first  # the payload is not seen yet

        assert client.cancel_batch(batch) == 2

        assert _running(client) == []
        assert client.rpc.tell_status(payload, ["status"])["status"] == "removed"
        assert client.rpc.tell_status(second, ["status"])["status"] == "removed"
        assert all(r.finished for r in engine_of(client).ledger.batch_records(batch))
    finally:
        client.close()


def test_close_with_cancel_removes_the_chains_of_magnets_in_both_phases(
    bt_daemon, torrent_factory, seeder_factory
):
    directory = str(bt_daemon.download_dir)
    running = torrent_factory("running.bin", os.urandom(1024 * 1024))
    seeder_factory(running, upload_limit=64 * 1024)
    waiting = torrent_factory("waiting.bin", os.urandom(64 * 1024))  # no seeder: metadata phase
    client = _slow_client(bt_daemon)
    try:
        in_payload = client.add_magnet(running.magnet, directory)
        in_metadata = client.add_magnet(waiting.magnet, directory)
        payload = _payload_started(client, in_payload)
        assert client.rpc.tell_status(in_metadata, ["status"])["status"] == "active"
        assert engine_of(client).ledger.get(in_payload).current_gid == in_payload
    finally:
        client.close(cancel=True)
    watcher = Aria2Client(bt_daemon.rpc_url, bt_daemon.secret, verbose=False, monitor=False)
    try:
        assert _running(watcher) == []
        statuses = {g: watcher.rpc.tell_status(g, ["status"])["status"] for g in (in_metadata, payload)}
        assert statuses == {in_metadata: "removed", payload: "removed"}
    finally:
        watcher.close()
