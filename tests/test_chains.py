"""Magnets, torrents and metalinks under one handle, against a real aria2c on 127.0.0.1.

The daemon under test runs with DHT, LPD and PEX off (``leecher_options()``); peers come from
our own tracker, the seeder is a second aria2c (tests/support/bittorrent.py).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Iterator

import pytest

from aria2_sync import (
    Aria2Client,
    Aria2InputError,
    BadMagnetError,
    BadMetalinkError,
    BadTorrentError,
    ChecksumMismatch,
    DownloadResult,
    RestartPolicy,
)
from aria2_sync.client import engine_of
from aria2_sync.daemon.ownership import free_port
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.engine.futures import BITTORRENT_PIECES
from tests.conftest import wait_for
from tests.support.bittorrent import MetalinkFile, leecher_options, metalink
from tests.support.fault_server import Slow

pytestmark = pytest.mark.integration


@pytest.fixture
def bt_daemon(daemon_factory) -> Aria2Daemon:
    """A daemon with offline BitTorrent options (DHT, LPD and PEX off)."""
    return daemon_factory(**leecher_options())


@pytest.fixture
def bt(bt_daemon) -> Iterator[tuple[Aria2Client, str]]:
    """A client on ``bt_daemon``, and the daemon's download directory."""
    client = Aria2Client(
        bt_daemon.rpc_url, bt_daemon.secret, verbose=False, retry_delay=0.05, poll_interval=0.1
    )
    try:
        yield client, str(bt_daemon.download_dir)
    finally:
        client.close()


def _chain(client: Aria2Client, gid: str) -> tuple[str, ...]:
    record = engine_of(client).ledger.get(gid)
    assert record is not None
    return record.chain


def test_a_magnet_is_followed_to_its_payload_under_the_original_gid(bt, torrent_factory, seeder_factory):
    client, directory = bt
    torrent = torrent_factory("single.bin", os.urandom(300 * 1024))
    seeder = seeder_factory(torrent)
    seeder.kill()  # started late: the metadata phase lasts until it is back
    future = client.submit_magnet(torrent.magnet, directory)
    gid = future.gid
    metadata = wait_for(lambda: client.get_progress(gid), what="a first snapshot")
    assert metadata.status == "metadata"
    assert not metadata.is_complete and not future.done()
    assert metadata.gid == gid
    seeder.start()
    result = future.result(timeout=60)
    assert type(result) is DownloadResult
    assert result.gid == gid
    assert result.paths == (os.path.join(directory, "single.bin"),) and result.path == result.paths[0]
    assert result.verified == BITTORRENT_PIECES and not result.seeding
    assert result.size == torrent.total_size
    torrent.check_downloaded(directory)
    # seed-time=0: aria2 stops seeding within about a second of the payload's completion
    progress = wait_for(lambda: (p := client.get_progress(gid)).status == "complete" and p, what="the end")
    assert progress.gid == gid and not progress.seeding
    chain = _chain(client, gid)
    assert chain[0] == gid and len(chain) == 2  # the metadata's GID, then the payload's
    assert client.get_retry_info(gid)["current_gid"] == chain[1]


def test_a_multi_file_torrent_gets_only_the_files_selected(bt, torrent_factory, seeder_factory):
    client, directory = bt
    content = {
        "a.bin": os.urandom(100 * 1024),
        "c.bin": os.urandom(70 * 1024),
        "sub/b.bin": os.urandom(50 * 1024),
    }
    torrent = torrent_factory("multi", content)
    seeder_factory(torrent)
    future = client.submit_torrent(torrent.data, directory, files=[1, "sub/b.bin"])
    result = future.result(timeout=60)
    assert result.paths == (
        os.path.join(directory, "multi/a.bin"),
        os.path.join(directory, "multi/sub/b.bin"),
    )
    assert result.path == result.paths[0] and result.verified == BITTORRENT_PIECES
    torrent.check_downloaded(directory, only=[1, 3])
    assert client.get_retry_info(future.gid)["options"]["select-file"] == "1,3"


@pytest.mark.parametrize("given", ["path", "bytes", "url"])
def test_a_torrent_is_taken_as_a_path_bytes_or_a_url(
    bt, torrent_factory, seeder_factory, fault_server, given
):
    client, directory = bt
    torrent = torrent_factory("one.bin", os.urandom(64 * 1024))
    seeder_factory(torrent)
    if given == "url":
        fault_server.add_file("one.torrent", data=torrent.data)
        source = fault_server.url("one.torrent")
    else:
        source = torrent.data if given == "bytes" else str(torrent.path)
    future = client.submit_torrent(source, directory)
    result = future.result(timeout=60)
    assert result.gid == future.gid
    torrent.check_downloaded(directory)
    wait_for(lambda: client.get_progress(future.gid).status == "complete", what="the end of seeding")
    assert sorted(os.listdir(directory)) == ["one.bin"]  # no .torrent left beside it
    assert len(_chain(client, future.gid)) == (2 if given == "url" else 1)


def test_cancel_in_the_metadata_phase_removes_the_chain(bt, torrent_factory, seeder_factory):
    client, directory = bt
    torrent = torrent_factory("late.bin", os.urandom(64 * 1024))
    seeder = seeder_factory(torrent)
    seeder.kill()
    gid = client.add_magnet(torrent.magnet, directory)
    wait_for(lambda: (client.get_progress(gid) or None) and client.get_progress(gid).status == "metadata")
    assert client.cancel_download(gid) is True
    assert client.rpc.tell_status(gid, ["status"])["status"] == "removed"
    future = client.future(gid)
    concurrent.futures.wait([future], timeout=10)
    assert future.cancelled()
    assert _chain(client, gid) == (gid,)


def test_cancel_in_the_payload_phase_removes_the_payload(bt, torrent_factory, seeder_factory):
    client, directory = bt
    torrent = torrent_factory("slow.bin", os.urandom(1024 * 1024))
    seeder_factory(torrent, upload_limit=128 * 1024)
    future = client.submit_magnet(torrent.magnet, directory)
    wait_for(lambda: len(_chain(client, future.gid)) == 2, timeout=30, what="the payload")
    wait_for(lambda: client.get_progress(future.gid).completed_length > 0, timeout=30)
    assert client.cancel_download(future.gid) is True
    statuses = {client.rpc.tell_status(g, ["status"])["status"] for g in _chain(client, future.gid)}
    assert statuses == {"complete", "removed"}  # the metadata had completed; the payload is removed
    assert future.cancelled()


def test_the_seeder_killed_mid_download_and_started_again_lets_it_complete(
    bt, torrent_factory, seeder_factory
):
    client, directory = bt
    torrent = torrent_factory("big.bin", os.urandom(1024 * 1024))
    seeder = seeder_factory(torrent, upload_limit=256 * 1024)
    future = client.submit_torrent(torrent.data, directory)
    wait_for(lambda: client.get_progress(future.gid).completed_length > 300 * 1024, timeout=30)
    uploaded = seeder.uploaded(torrent)
    seeder.kill()
    stalled = client.get_progress(future.gid)
    assert stalled.status == "active" and not future.done()
    seeder.start()
    result = future.result(timeout=60)
    torrent.check_downloaded(directory)
    assert result.gid == future.gid
    assert uploaded + seeder.uploaded(torrent) <= torrent.total_size * 1.05  # resumed, not restarted


def test_seeding_is_opt_in_and_the_future_resolves_at_payload_completion(bt, torrent_factory, seeder_factory):
    client, directory = bt
    torrent = torrent_factory("seed.bin", os.urandom(128 * 1024))
    seeder_factory(torrent)
    future = client.submit_torrent(torrent.data, directory, seed_time=10)
    result = future.result(timeout=60)
    progress = client.get_progress(future.gid)
    assert result.seeding and progress.seeding and progress.status == "active"
    assert client.get_retry_info(future.gid)["options"]["seed-time"] == "10"
    torrent.check_downloaded(directory)
    client.cancel_download(future.gid)


def test_a_metalink_with_a_dead_mirror_completes(bt, fault_server):
    client, directory = bt
    content = os.urandom(200 * 1024)
    fault_server.add_file("m.bin", data=content)
    dead = f"http://127.0.0.1:{free_port()}/m.bin"
    document = metalink([MetalinkFile.of("m.bin", content, [dead, fault_server.url("m.bin")])])
    result = client.submit_metalink(document, directory).result(timeout=30)
    assert result.path == os.path.join(directory, "m.bin")
    with open(result.path, "rb") as file:
        assert file.read() == content
    assert client.get_retry_info(result.gid)["options"]["checksum"].startswith("sha-256=")
    assert result.verified == "sha-256 hash from the metalink (aria2)"
    assert result.paths == (result.path,) and not result.seeding


def _sha256_of(content: bytes) -> tuple[tuple[str, str], ...]:
    return (("sha-256", hashlib.sha256(content).hexdigest()),)


def test_a_metalink_of_several_files_is_one_batch_of_downloads(bt, fault_server):
    client, directory = bt
    contents = {name: os.urandom(size) for name, size in (("a.bin", 150 * 1024), ("b.bin", 90 * 1024))}
    for name, content in contents.items():
        fault_server.add_file(name, data=content)
    fault_server.add_file("c.bin", data=b"what the server has")
    dead = f"http://127.0.0.1:{free_port()}/b.bin"
    document = metalink(
        [
            MetalinkFile.of("a.bin", contents["a.bin"], [fault_server.url("a.bin")]),
            MetalinkFile.of("b.bin", contents["b.bin"], [dead, fault_server.url("b.bin")]),
            # a hash the served bytes do not have: this file fails, alone
            MetalinkFile("c.bin", (fault_server.url("c.bin"),), None, _sha256_of(b"what the metalink says")),
        ]
    )
    with pytest.raises(BadMetalinkError, match="add_metalink_batch"):
        client.add_metalink(document, directory)
    batch_id = client.add_metalink_batch(document, directory, batch_id="meta")
    assert batch_id == "meta"
    futures = client.batch_futures(batch_id)
    assert len(futures) == 3
    progress = client.wait_for_batch(batch_id, timeout=60)
    assert progress is not None and progress.is_completed
    assert (progress.total_count, progress.completed_count, progress.failed_count) == (3, 2, 1)
    for future, name in zip(futures[:2], ("a.bin", "b.bin")):
        result = future.result(timeout=0)
        assert result.paths == (os.path.join(directory, name),) == (result.path,)
        assert result.verified == "sha-256 hash from the metalink (aria2)"
        with open(result.path, "rb") as file:
            assert file.read() == contents[name]
    with pytest.raises(ChecksumMismatch) as caught:
        futures[2].result(timeout=0)
    assert caught.value.expected == "sha-256=" + hashlib.sha256(b"what the metalink says").hexdigest()
    info = client.get_retry_info(futures[2].gid)
    assert info["options"]["out"] == "c.bin" and info["retry_count"] == 1  # restarted once, from scratch


def test_a_metalink_batch_is_cancelled_as_a_batch(bt, fault_server):
    client, directory = bt
    files = []
    for name in ("s1.bin", "s2.bin"):
        content = os.urandom(1024 * 1024)
        fault_server.add_file(name, data=content)
        fault_server.set_default_fault(name, Slow(100_000))
        files.append(MetalinkFile.of(name, content, [fault_server.url(name)]))
    batch_id = client.add_metalink_batch(metalink(files), directory)
    futures = client.batch_futures(batch_id)
    wait_for(
        lambda: all(p.completed_length > 0 for p in client.get_batch_progress(batch_id).downloads),
        timeout=30,
        what="both files under way",
    )
    assert client.cancel_batch(batch_id) == 2
    concurrent.futures.wait(futures, timeout=10)
    assert all(future.cancelled() for future in futures)
    assert {client.rpc.tell_status(f.gid, ["status"])["status"] for f in futures} == {"removed"}


def test_a_bad_metalink_batch_adds_nothing(bt, fault_server):
    client, directory = bt
    good = MetalinkFile.of("g.bin", b"g", [fault_server.url("g.bin")])
    refused = MetalinkFile.of("x.bin", b"x", ["file:///etc/passwd"])
    with pytest.raises(BadMetalinkError, match="refused"):
        client.add_metalink_batch(metalink([good, refused]), directory)
    with pytest.raises(BadMetalinkError, match="two files named"):
        client.add_metalink_batch(metalink([good, good]), directory)
    with pytest.raises(Aria2InputError, match="checksum"):
        client.add_metalink_batch(metalink([good]), directory, options={"checksum": "md5=" + "0" * 32})
    with pytest.raises(Aria2InputError, match="out"):
        client.add_metalink(metalink([good]), directory, options={"out": "other.bin"})
    assert client.rpc.tell_active(["gid"]) == [] and client.rpc.tell_stopped(0, 10, ["gid"]) == []
    assert list(engine_of(client).ledger) == [] and not os.listdir(directory)
    assert fault_server.request_count("g.bin") == 0


def test_bad_inputs_are_refused_with_typed_errors(bt, tmp_path, torrent_factory):
    client, directory = bt
    with pytest.raises(BadMagnetError, match="info hash"):
        client.add_magnet("magnet:?dn=nothing")
    with pytest.raises(BadMagnetError):
        client.add_magnet("http://example.invalid/x")
    with pytest.raises(BadTorrentError, match="bencoded"):
        client.add_torrent(b"not a torrent")
    with pytest.raises(BadTorrentError, match="info"):
        client.add_torrent(b"d3:fooi1ee")
    torrent = torrent_factory("multi", {"a.bin": b"a" * 100, "b.bin": b"b" * 100})
    with pytest.raises(BadTorrentError, match="out of range"):
        client.add_torrent(torrent.data, files=[3])
    with pytest.raises(BadTorrentError, match="no file named"):
        client.add_torrent(torrent.data, files=["z.bin"])
    with pytest.raises(BadTorrentError, match="cannot read"):
        client.add_torrent(str(tmp_path / "missing.torrent"))
    with pytest.raises(BadMetalinkError, match="XML"):
        client.add_metalink(b"<metalink")
    refused = metalink([MetalinkFile.of("x.bin", b"x", ["file:///etc/passwd"])])
    with pytest.raises(BadMetalinkError, match="refused"):
        client.add_metalink(refused)
    for error in (BadMagnetError, BadTorrentError, BadMetalinkError):
        assert issubclass(error, Aria2InputError)
    assert not os.listdir(directory)


def test_a_failed_magnet_payload_restarts_from_its_saved_torrent_and_resumes(
    request, bt_daemon, torrent_factory, seeder_factory
):
    directory = str(bt_daemon.download_dir)
    policy = RestartPolicy(restartable_codes={7}, base_delay=0.05)
    client = Aria2Client(bt_daemon.rpc_url, bt_daemon.secret, verbose=False, restart_policy=policy)
    request.addfinalizer(client.close)
    torrent = torrent_factory("resume.bin", os.urandom(1024 * 1024))
    seeder = seeder_factory(torrent, upload_limit=256 * 1024)
    # bt-stop-timeout: with no peer for 2 s, aria2 fails the download (error 7): a restart is due
    future = client.submit_magnet(torrent.magnet, directory, options={"bt-stop-timeout": 5})
    wait_for(lambda: client.get_progress(future.gid).completed_length > 300 * 1024, timeout=30)
    payload = _chain(client, future.gid)[-1]
    uploaded = seeder.uploaded(torrent)
    seeder.kill()
    wait_for(lambda: client.get_retry_info(future.gid)["retry_count"] >= 1, timeout=30, what="a restart")
    seeder.start()
    result = future.result(timeout=60)
    torrent.check_downloaded(directory)
    info = client.get_retry_info(future.gid)
    assert info["current_gid"] == payload  # re-added under the payload's own GID
    assert info["attempts"][0]["error_code"] == "7"
    assert result.retry_count >= 1
    assert uploaded + seeder.uploaded(torrent) <= torrent.total_size * 1.05  # resumed from disk


def test_the_cli_gets_a_magnet_a_torrent_file_and_a_metalink(
    bt_daemon, torrent_factory, seeder_factory, fault_server, tmp_path, capsys
):
    from aria2_sync.ui.cli import main

    magnet_torrent = torrent_factory("m.bin", os.urandom(64 * 1024))
    file_torrent = torrent_factory("t.bin", os.urandom(64 * 1024))
    seeder_factory(magnet_torrent, file_torrent)
    contents = {"x.bin": os.urandom(32 * 1024), "y.bin": os.urandom(16 * 1024)}
    served_files = {"u.bin": os.urandom(8 * 1024), "v.bin": os.urandom(8 * 1024)}
    for name, content in contents.items():
        fault_server.add_file(name, data=content)
    document = tmp_path / "xy.meta4"
    document.write_bytes(
        metalink(
            [MetalinkFile.of(name, content, [fault_server.url(name)]) for name, content in contents.items()]
        )
    )
    out = tmp_path / "out"
    out.mkdir()
    argv = ["get", "--rpc-url", bt_daemon.rpc_url, "--rpc-secret", bt_daemon.secret, "-d", str(out), "--json"]
    served = metalink(
        [MetalinkFile.of(name, content, [fault_server.url(name)]) for name, content in served_files.items()]
    )
    for name, content in served_files.items():
        fault_server.add_file(name, data=content)
    fault_server.add_file("served.meta4", data=served)
    code = main(
        [
            *argv,
            magnet_torrent.magnet,
            str(file_torrent.path),
            str(document),
            fault_server.url("served.meta4"),
        ]
    )
    report = capsys.readouterr()
    assert code == 0, report
    for name, content in served_files.items():  # every file of a metalink at a URL, watched
        assert (out / name).read_bytes() == content
    magnet_torrent.check_downloaded(str(out))
    file_torrent.check_downloaded(str(out))
    for name, content in contents.items():
        assert (out / name).read_bytes() == content
    # every file of the metalink is a download of its own: one entry each, after the torrents
    entries = json.loads(report.out)["downloads"]
    assert [e["url"] for e in entries[1:]] == [
        str(file_torrent.path),
        f"{document} (x.bin)",
        f"{document} (y.bin)",
        f"{fault_server.url('served.meta4')} (u.bin)",
        f"{fault_server.url('served.meta4')} (v.bin)",
    ]
    assert entries[0]["url"].startswith("magnet:?")
    assert [e["verified"] for e in entries] == [BITTORRENT_PIECES] * 2 + [
        "sha-256 hash from the metalink (aria2)"
    ] * 4
    assert entries[2]["paths"] == [str(out / "x.bin")] and entries[3]["path"] == str(out / "y.bin")


def test_a_metalink_s_mirrors_are_saved_as_files_never_followed(bt, fault_server):
    """A mirror of an untrusted metalink that serves a .torrent must not become a BitTorrent
    download: every file of a metalink is added with following off, and a torrent URL follows
    torrents only."""
    client, directory = bt
    content = os.urandom(4096)
    fault_server.add_file("m.bin", data=content)
    batch_id = client.add_metalink_batch(
        metalink([MetalinkFile.of("m.bin", content, [fault_server.url("m.bin")])]), directory
    )
    [future] = client.batch_futures(batch_id)
    options = client.get_retry_info(future.gid)["options"]
    assert (options["follow-torrent"], options["follow-metalink"]) == ("false", "false")
    gid = client.add_torrent(fault_server.url("never.torrent"), directory)
    options = client.get_retry_info(gid)["options"]
    assert (options["follow-torrent"], options["follow-metalink"]) == ("mem", "false")
    client.cancel_download(gid)
    assert future.result(timeout=30).path == os.path.join(directory, "m.bin")


def test_a_refused_source_leaves_nothing_of_the_command_running(bt_daemon, fault_server, tmp_path, capsys):
    """``aria2-sync get URL magnet:?bad`` adds the URL, then the magnet is refused: the URL's
    download is removed again, so a failed command leaves nothing running on the daemon."""
    from aria2_sync.rpc.transport import Transport
    from aria2_sync.ui.cli import main

    url = fault_server.add_file("slow.bin", size=2_000_000)
    fault_server.add_faults("slow.bin", Slow(100_000))
    argv = ["get", "--rpc-url", bt_daemon.rpc_url, "--rpc-secret", bt_daemon.secret, "-d", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main([*argv, url, "magnet:?dn=no-info-hash"])
    assert exited.value.code == 2 and "magnet" in capsys.readouterr().err
    transport = Transport(bt_daemon.rpc_url, bt_daemon.secret)
    try:
        running = transport.call("aria2.tellActive", [["gid"]]) + transport.call(
            "aria2.tellWaiting", [0, 100, ["gid"]]
        )
        assert running == []
    finally:
        transport.close()
