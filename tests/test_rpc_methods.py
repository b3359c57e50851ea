"""Every aria2 RPC method has a typed wrapper on ``client.rpc``, checked against a real aria2c.

The list is the daemon's own (``system.listMethods``): when an aria2 release adds a method,
the coverage test names it. The wrappers that change nothing are read back from the daemon;
the ones that change something are shown to take effect.
"""

from __future__ import annotations

import re

import pytest

from aria2_sync.rpc.methods import Aria2RPC
from aria2_sync.rpc.transport import Transport
from tests.conftest import wait_for
from tests.support.fault_server import Slow


def _snake(method: str) -> str:
    """``aria2.addUri`` -> ``add_uri``; ``system.listMethods`` -> ``list_methods``."""
    name = method.split(".", 1)[1]
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


@pytest.fixture
def rpc(daemon):
    methods = Aria2RPC(Transport(daemon.rpc_url, daemon.secret, timeout=5.0))
    yield methods
    methods.transport.close()


def test_every_method_the_daemon_lists_has_a_wrapper(rpc):
    listed = rpc.list_methods()
    assert "aria2.addUri" in listed and "system.multicall" in listed
    missing = [m for m in listed if not callable(getattr(Aria2RPC, _snake(m), None))]
    assert missing == [], f"aria2 lists methods without a wrapper on Aria2RPC: {missing}"
    assert set(rpc.list_notifications()) >= {"aria2.onDownloadComplete", "aria2.onDownloadError"}


def test_reading_wrappers_answer_in_their_types(rpc, fault_server, tmp_path):
    url = fault_server.add_file("r.bin", size=2_000_000)
    fault_server.set_default_fault("r.bin", Slow(200_000))
    gid = rpc.add_uri([url], {"dir": str(tmp_path)})
    wait_for(lambda: rpc.tell_status(gid, ["status"])["status"] == "active", what="the download to start")
    files = rpc.get_files(gid)
    assert files[0]["uris"][0]["uri"] == url
    assert rpc.get_uris(gid)[0]["uri"] == url
    assert isinstance(rpc.get_servers(gid), list)
    assert rpc.get_peers(gid) == []  # (not a BitTorrent download: no peers)
    assert "dir" in rpc.get_global_option()
    assert len(rpc.get_session_info()["sessionId"]) == 40
    assert rpc.call("aria2.getVersion")["version"] == rpc.get_version()["version"]
    rpc.force_remove(gid)


def test_changing_wrappers_take_effect(rpc, fault_server, tmp_path):
    before = rpc.get_global_option()["max-overall-download-limit"]
    try:
        rpc.change_global_option({"max-overall-download-limit": "1M"})
        assert rpc.get_global_option()["max-overall-download-limit"] == "1048576"
    finally:
        rpc.change_global_option({"max-overall-download-limit": before})
    urls = [fault_server.add_file(f"q{n}.bin", size=1_000) for n in range(3)]
    gids = [rpc.add_uri([u], {"dir": str(tmp_path), "pause": "true"}) for u in urls]
    try:
        assert rpc.change_position(gids[2], 0, "POS_SET") == 0
        assert [s["gid"] for s in rpc.tell_waiting(0, 10, ["gid"])][0] == gids[2]
        rpc.change_option(gids[0], {"max-download-limit": "100K"})
        assert rpc.get_option(gids[0])["max-download-limit"] == "102400"
        assert rpc.change_uri(gids[1], 1, [urls[1]], [urls[0]]) == [1, 1]
        assert rpc.get_uris(gids[1])[0]["uri"] == urls[0]
        rpc.unpause_all()
        wait_for(
            lambda: all(rpc.tell_status(g, ["status"])["status"] == "complete" for g in gids),
            what="all three",
        )
        rpc.purge_download_result()
        assert rpc.tell_stopped(0, 10, ["gid"]) == []
        rpc.pause_all()
        rpc.force_pause_all()
    finally:
        rpc.unpause_all()
