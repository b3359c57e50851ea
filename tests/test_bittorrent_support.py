"""The BitTorrent and Metalink test infrastructure (tests/bittorrent.py) against a raw aria2c.

These drive aria2c over JSON-RPC directly (the client refuses magnets, torrents and metalinks
until issue 15), so that the tracker, the seeder, the torrents and the metalinks are known to
work before the client's own tests rely on them. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from aria2_sync.daemon.ownership import free_port
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc.transport import Transport
from tests.conftest import wait_for
from tests.support.bittorrent import (
    MetalinkFile,
    Tracker,
    bdecode,
    bencode,
    exposed_sockets,
    leecher_options,
    metalink,
    sockets_of,
)

pytestmark = pytest.mark.integration

STATUS_KEYS = [
    "gid",
    "status",
    "following",
    "followedBy",
    "completedLength",
    "totalLength",
    "errorCode",
    "files",
]


class Leecher:
    """The daemon under test and an RPC transport to it; ``status(gid)`` with STATUS_KEYS."""

    def __init__(self, daemon: Aria2Daemon) -> None:
        self.daemon = daemon
        self.dir = daemon.download_dir
        self.rpc = Transport(daemon.rpc_url, daemon.secret, timeout=5.0, max_retries=0)

    def call(self, method: str, *params):
        return self.rpc.call(method, list(params))

    def status(self, gid: str) -> dict:
        return self.call("aria2.tellStatus", gid, STATUS_KEYS)

    def wait_stopped(self, gid: str, timeout: float = 30.0) -> dict:
        def stopped():
            status = self.status(gid)
            return status if status["status"] in ("complete", "error", "removed") else None

        return wait_for(stopped, timeout, interval=0.05, what=f"GID {gid} to stop")


@pytest.fixture
def leecher(daemon_factory) -> Iterator[Leecher]:
    """A daemon with offline BitTorrent options (stopped by daemon_factory)."""
    peer = Leecher(daemon_factory(**leecher_options()))
    try:
        yield peer
    finally:
        peer.rpc.close()


def test_bencode_round_trips_and_sorts_keys():
    value = {"peers": b"\x7f\x00\x00\x01\x1a\xe1", "interval": 2, "list": [1, "two", {"b": 0, "a": -3}]}
    encoded = bencode(value)
    assert encoded.startswith(b"d8:intervali2e4:listli1e3:twod1:ai-3e1:bi0eee5:peers6:")
    assert bdecode(encoded) == {
        b"interval": 2,
        b"list": [1, b"two", {b"a": -3, b"b": 0}],
        b"peers": b"\x7f\x00\x00\x01\x1a\xe1",
    }
    for broken in (b"i1", b"5:abc", b"d1:ae", b"x", b"i1ei2e"):
        with pytest.raises(ValueError):
            bdecode(broken)


def test_tracker_names_earlier_peers_in_compact_form_and_forgets_stopped_ones(bt_tracker: Tracker):
    info_hash = bytes(range(20))
    quoted = urllib.parse.quote_from_bytes(info_hash)

    def announce(port: int, event: str = "") -> dict:
        url = f"{bt_tracker.announce_url}?info_hash={quoted}&port={port}&left=0&event={event}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return bdecode(answer.read())

    assert announce(6001, "started")[b"peers"] == b""
    second = announce(6002, "started")
    assert second[b"peers"] == socket.inet_aton("127.0.0.1") + (6001).to_bytes(2, "big")
    assert second[b"interval"] == bt_tracker.interval
    announce(6001, "stopped")
    assert announce(6003)[b"peers"] == socket.inet_aton("127.0.0.1") + (6002).to_bytes(2, "big")
    assert bt_tracker.peers(info_hash.hex()) == [("127.0.0.1", 6002), ("127.0.0.1", 6003)]
    assert [a.event for a in bt_tracker.announces] == ["started", "started", "stopped", ""]


def test_a_magnet_arrives_byte_identical_through_its_metadata_download(
    leecher: Leecher, torrent_factory, seeder_factory
):
    torrent = torrent_factory("single.bin", os.urandom(300 * 1024))
    seeder_factory(torrent)
    metadata_gid = leecher.call("aria2.addUri", [torrent.magnet])

    metadata = leecher.wait_stopped(metadata_gid)
    assert metadata["status"] == "complete"
    assert metadata["files"][0]["path"] == "[METADATA]single.bin"
    (payload_gid,) = metadata["followedBy"]
    payload = leecher.wait_stopped(payload_gid)
    assert payload["status"] == "complete", payload
    assert payload["following"] == metadata_gid
    assert int(payload["completedLength"]) == torrent.total_size
    torrent.check_downloaded(leecher.dir)


def test_a_multi_file_torrent_with_select_file_gets_only_the_selected_files(
    leecher: Leecher, torrent_factory, seeder_factory
):
    content = {
        "a.bin": os.urandom(100 * 1024),
        "c.bin": os.urandom(70 * 1024),
        "sub/b.bin": os.urandom(50 * 1024),
    }
    torrent = torrent_factory("multi", content)
    assert list(torrent.files) == ["multi/a.bin", "multi/c.bin", "multi/sub/b.bin"]
    seeder_factory(torrent)
    gid = leecher.call("aria2.addTorrent", torrent.base64, [], {"select-file": "1,3"})

    status = leecher.wait_stopped(gid)
    assert status["status"] == "complete", status
    assert [f["selected"] for f in status["files"]] == ["true", "false", "true"]
    # totalLength counts the whole pieces that hold selected bytes: 7 + 4 pieces here.
    selected = len(content["a.bin"]) + len(content["sub/b.bin"])
    assert selected < int(status["totalLength"]) == 7 * 16384 + 3 * 16384 + 12288 < torrent.total_size
    torrent.check_downloaded(leecher.dir, only=[1, 3])
    unselected = os.path.join(leecher.dir, "multi", "c.bin")
    assert not os.path.exists(unselected) or open(unselected, "rb").read() != content["c.bin"]


def test_a_metalink_with_a_dead_mirror_and_sha256_completes_and_a_wrong_hash_fails_with_32(
    leecher: Leecher, fault_server
):
    good, bad = os.urandom(200 * 1024), os.urandom(100 * 1024)
    fault_server.add_file("good.bin", data=good)
    fault_server.add_file("bad.bin", data=bad)
    dead = f"http://127.0.0.1:{free_port()}"
    document = metalink(
        [
            MetalinkFile.of("good.bin", good, [f"{dead}/good.bin", fault_server.url("good.bin")]),
            MetalinkFile("bad.bin", (fault_server.url("bad.bin"),), len(bad), (("sha-256", "0" * 64),)),
        ]
    )
    gids = leecher.call("aria2.addMetalink", base64.b64encode(document).decode(), {"max-tries": 1})
    assert len(gids) == 2  # one GID per <file>, no parent GID

    first, second = (leecher.wait_stopped(gid) for gid in gids)
    assert first["status"] == "complete", first
    assert hashlib.sha256(open(os.path.join(leecher.dir, "good.bin"), "rb").read()).digest() == (
        hashlib.sha256(good).digest()
    )
    assert [u["uri"] for u in first["files"][0]["uris"]][:2] == [
        f"{dead}/good.bin",
        fault_server.url("good.bin"),
    ]
    assert (second["status"], second["errorCode"]) == ("error", "32")
    assert fault_server.request_count("bad.bin") == 1


@pytest.mark.timeout(90)
def test_the_seeder_killed_mid_download_and_started_again_lets_the_download_finish(
    leecher: Leecher, torrent_factory, seeder_factory
):
    size = 1024 * 1024
    torrent = torrent_factory("big.bin", os.urandom(size))
    seeder = seeder_factory(torrent, upload_limit=256 * 1024)
    gid = leecher.call("aria2.addTorrent", torrent.base64, [], {})

    def completed() -> int:
        return int(leecher.status(gid)["completedLength"])

    wait_for(lambda: completed() > size // 4, 30, interval=0.05, what="a quarter of the payload")
    first_pid = seeder.pid
    uploaded_before = seeder.uploaded(torrent)
    seeder.kill()
    assert not seeder.running
    assert leecher.status(gid)["status"] == "active"  # no peer is not an error for aria2
    seeder.start()
    assert seeder.pid != first_pid and seeder.starts == 2

    status = leecher.wait_stopped(gid, timeout=60)
    assert status["status"] == "complete", status
    torrent.check_downloaded(leecher.dir)
    assert 0 < uploaded_before < size
    assert uploaded_before + seeder.uploaded(torrent) <= size * 1.05  # resumed, not fetched again


@pytest.mark.parametrize(
    "extra, exposed", [({}, True), ({"interface": "lo"}, False)], ids=["default", "interface-lo"]
)
def test_what_a_bittorrent_download_opens_on_the_network(daemon_factory, torrent_factory, extra, exposed):
    """DHT, LPD and PEX off: one TCP listening port (on all interfaces unless ``interface`` is
    set), no UDP socket, and nothing but the RPC port before a BitTorrent download is added."""
    torrent = torrent_factory("p.bin", os.urandom(64 * 1024))
    options = leecher_options(**extra)
    bt_port = options["listen-port"]
    peer = Leecher(daemon_factory(**options))
    pid = peer.daemon.pid
    try:
        assert exposed_sockets(pid) == []
        assert {port for _, _, port in sockets_of(pid)} == {peer.daemon.port}
        peer.call("aria2.addUri", [torrent.magnet])
        wait_for(lambda: bt_port in {port for _, _, port in sockets_of(pid)}, 10, what="the BitTorrent port")
        assert [protocol for protocol, _, _ in sockets_of(pid) if protocol.startswith("udp")] == []
        expected = [("tcp", "0.0.0.0", bt_port), ("tcp6", "::", bt_port)] if exposed else []
        assert exposed_sockets(pid) == expected
    finally:
        peer.rpc.close()
