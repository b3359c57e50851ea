"""Reading only what changes: the moving keys every tick, ``dir``/``files`` when they may move.

Against a real aria2c and the fault server; what the client asks the daemon is recorded at the
rpc layer (``Aria2RPC.multicall``), with the answers it got.
"""

from __future__ import annotations

import os
import threading

import pytest

from aria2_sync.client import engine_of
from aria2_sync.engine import tracker as tracker_module
from aria2_sync.models import STATUS_KEYS, TICK_KEYS, FileInfo, Progress, UnreadableStatus
from tests.conftest import wait_for
from tests.support.fault_server import Slow, Status


class Recorder:
    """Wraps the ``Aria2RPC.multicall`` of a client and of its monitor (which has its own
    connection): keeps ``(gid, keys, answer)`` of each tellStatus, in order."""

    def __init__(self, client) -> None:
        self.reads: list[tuple[str, tuple[str, ...], object]] = []
        self.sizes: list[int] = []  # calls per multicall
        self.lock = threading.Lock()
        engine = engine_of(client)
        for rpc in (engine.rpc, engine.monitor.rpc):
            rpc.multicall = self._wrap(rpc.multicall)

    def _wrap(self, real):
        def multicall(calls, *args, **kwargs):
            answers = real(calls, *args, **kwargs)
            with self.lock:
                self.sizes.append(len(calls))
                for (method, params), answer in zip(calls, answers):
                    if method == "aria2.tellStatus":
                        self.reads.append((params[0], tuple(params[1]), answer))
            return answers

        return multicall

    def of(self, gid: str) -> list[tuple[tuple[str, ...], object]]:
        return [(keys, answer) for read_gid, keys, answer in self.reads if read_gid == gid]


def test_a_tick_omits_files_and_dir_of_downloads_it_knows(client_factory, fault_server, tmp_path):
    client = client_factory(poll_interval=3600.0, notifications=False)
    items = [(fault_server.add_file(f"p{i}.bin", size=1000), str(tmp_path / f"p{i}.bin")) for i in range(5)]
    batch_id = client.add_batch_downloads(items, options={"pause": "true"})
    first = wait_for(
        lambda: (p := client.get_batch_progress(batch_id)) and p.paused_count == 5 and p,
        what="the batch to be seen paused",
    )
    monitor = engine_of(client).monitor
    assert monitor is not None
    monitor.close()  # its thread stops; the ticks below are the test's own
    recorder = Recorder(client)
    monitor.tick()
    again = client.get_batch_progress(batch_id)

    assert len(recorder.reads) == 10  # 5 in the tick, 5 in get_batch_progress
    for _, keys, answer in recorder.reads:
        assert keys == TICK_KEYS
        assert "files" not in answer and "dir" not in answer
    # ... and the snapshots still carry what the first (full) read said.
    assert again.downloads == first.downloads
    for progress, (_, path) in zip(again.downloads, items):
        assert progress.file_path == path
        assert progress.dir == str(tmp_path)
        assert progress.files[0].uris == (fault_server.url(os.path.basename(path)),)


def test_files_and_file_path_are_right_at_completion_when_the_tick_omitted_them(
    client_factory, fault_server, tmp_path
):
    size = 300_000
    url = fault_server.add_file("slow.bin", size=size)
    fault_server.add_faults("slow.bin", Slow(200_000))
    client = client_factory(poll_interval=0.05, notifications=False)
    recorder = Recorder(client)
    target = str(tmp_path / "slow.bin")
    batch_id = client.add_batch_downloads([(url, target)])
    gid = client.batch_futures(batch_id)[0].gid
    daemon_gid = engine_of(client).ledger.get(gid).current_gid
    result = client.batch_futures(batch_id)[0].result(timeout=30)
    progress = client.get_batch_progress(batch_id).downloads[0]

    reads = recorder.of(daemon_gid)
    # The read that first saw it complete asked for the moving keys only ...
    seen_complete = next(n for n, (_, answer) in enumerate(reads) if answer.get("status") == "complete")
    keys, answer = reads[seen_complete]
    assert keys == TICK_KEYS and "files" not in answer
    # ... and while it ran, a snapshot's file list came from an earlier read (aria2 counts a
    # file's bytes in whole pieces: mid-transfer it says 0 of them).
    assert any(a.get("status") == "active" and "files" not in a for _, a in reads[:seen_complete])
    # The complete one was read again in full, so nothing in the snapshot is stale.
    assert reads[seen_complete + 1][0] == STATUS_KEYS
    assert progress.status == "complete"
    assert progress.file_path == target == result.path
    assert progress.files == (FileInfo(path=target, length=size, completed_length=size, uris=(url,)),)
    assert progress.dir == str(tmp_path)
    assert os.path.getsize(target) == size


def test_a_download_whose_file_name_is_unknown_is_read_in_full_until_aria2_names_it(
    client_factory, fault_server, tmp_path
):
    # Two 503s first: aria2 keeps the download active, its file unnamed, while it retries.
    url = fault_server.add_file("named-later.bin", size=200_000)
    fault_server.add_faults("named-later.bin", Status(503), Status(503), Slow(400_000))
    client = client_factory(poll_interval=0.05, notifications=False)
    recorder = Recorder(client)
    gid = client.add_download(url, options={"dir": str(tmp_path), "retry-wait": "1", "max-tries": "5"})
    assert client.future(gid).result(timeout=30).path == str(tmp_path / "named-later.bin")

    reads = recorder.of(engine_of(client).ledger.get(gid).current_gid)
    nameless = [
        n
        for n, (_, answer) in enumerate(reads)
        if answer.get("status") == "active" and not answer.get("files", [{"path": "?"}])[0]["path"]
    ]
    assert nameless, "aria2 never reported the download active and unnamed"
    for n in nameless:  # the read after one that found no name asks for the files again
        assert n + 1 < len(reads) and reads[n + 1][0] == STATUS_KEYS
    named = [n for n, (_, answer) in enumerate(reads) if "files" in answer and answer["files"][0]["path"]]
    assert any(keys == TICK_KEYS for keys, _ in reads[named[0] + 1 :]), "never read with the moving keys"


def test_parked_downloads_are_read_in_slices_of_a_bounded_size(
    client_factory, fault_server, tmp_path, monkeypatch
):
    monkeypatch.setattr(tracker_module, "READ_SLICE", 2)
    client = client_factory(poll_interval=3600.0, notifications=False)
    items = [(fault_server.add_file(f"s{i}.bin", size=10), str(tmp_path / f"s{i}.bin")) for i in range(5)]
    batch_id = client.add_batch_downloads(items, options={"pause": "true"})
    wait_for(lambda: client.get_batch_progress(batch_id).paused_count == 5, what="the batch paused")
    monitor = engine_of(client).monitor
    assert monitor is not None
    monitor.close()  # its thread stops; the ticks below are the test's own
    recorder = Recorder(client)
    assert monitor.tick() == 5
    assert recorder.sizes == [2, 2, 1]
    assert len({gid for gid, _, _ in recorder.reads}) == 5


def test_a_snapshot_built_from_the_moving_keys_keeps_the_known_static_fields():
    known = Progress.from_aria2(
        {
            "gid": "a" * 16,
            "status": "active",
            "dir": "/d",
            "files": [{"path": "/d/f", "length": "10", "completedLength": "0", "uris": []}],
        }
    )
    moving = Progress.from_aria2({"gid": "a" * 16, "status": "active", "completedLength": "5"}, known=known)
    assert (moving.dir, moving.files, moving.completed_length) == ("/d", known.files, 5)
    # Keys that are there win over the known ones, an empty file list included.
    fresh = Progress.from_aria2({"status": "active", "dir": "/e", "files": []}, known=known)
    assert (fresh.dir, fresh.files) == ("/e", ())
    # An error code and message stand in while the status is the same, and only then.
    failed = Progress.from_aria2(
        {"status": "error", "errorCode": "3", "errorMessage": "Resource not found"}, known=known
    )
    still = Progress.from_aria2({"status": "error", "completedLength": "0"}, known=failed)
    assert (still.error_code, still.error_message) == ("3", "Resource not found")
    running = Progress.from_aria2({"status": "active"}, known=failed)
    assert (running.error_code, running.error_message) == (None, None)
    with pytest.raises(UnreadableStatus):
        Progress.from_aria2({"status": "active", "files": "nope"}, known=known)
