"""The everyday controls (``aria2_sync.client_controls``) against a real aria2c.

Speed limits are judged by ratio against a download without one, in the same run; the queue by
aria2's own order; deletion by what is left on disk, next to files that must stay.
"""

from __future__ import annotations

import os

import pytest

from aria2_sync import Aria2InputError
from aria2_sync.client import engine_of
from tests.conftest import GIVE_UP_AT_ONCE, wait_for, wait_for_status
from tests.support.fault_server import ResetAfter, Slow

SIZE = 3_000_000


def _completed(client, gid: str) -> int:
    progress = client.get_progress(gid, auto_restart=False)
    return progress.completed_length if progress is not None else 0


def test_a_speed_limit_set_on_the_fly_slows_the_download_and_survives_its_restart(
    client_factory, fault_server, tmp_path
):
    client = client_factory(max_retries=2, retry_delay=0.05)
    for name in ("limited.bin", "free.bin"):
        fault_server.add_file(name, size=SIZE)
        fault_server.set_default_fault(name, Slow(1_500_000))
    # The limited download's first transfer breaks: it is restarted, and must stay limited.
    fault_server.add_faults("limited.bin", ResetAfter(50_000))
    options = {**GIVE_UP_AT_ONCE, "pause": "true"}
    limited = client.add_download(fault_server.url("limited.bin"), str(tmp_path / "limited.bin"), options)
    free = client.add_download(fault_server.url("free.bin"), str(tmp_path / "free.bin"), options)
    client.change_options(limited, {"max-download-limit": "150K"})
    assert client.get_options(limited)["max-download-limit"] == str(150 * 1024)
    client.resume_all()

    wait_for(lambda: client.get_retry_info(limited)["retry_count"] == 1, timeout=20, what="the restart")
    assert client.get_options(limited)["max-download-limit"] == str(150 * 1024)  # (the new run's)
    start_limited, start_free = _completed(client, limited), _completed(client, free)
    wait_for(
        lambda: _completed(client, free) - start_free >= 1_000_000, timeout=20, what="1 MB of the free one"
    )
    gained_limited = _completed(client, limited) - start_limited
    gained_free = _completed(client, free) - start_free
    assert gained_limited * 3 < gained_free, (gained_limited, gained_free)
    client.cancel_download(limited)


def test_move_reorders_the_waiting_queue(client_factory, fault_server, tmp_path):
    client = client_factory()
    urls = [fault_server.add_file(f"m{n}.bin", size=1_000) for n in range(3)]
    gids = [
        client.add_download(u, str(tmp_path / f"m{n}.bin"), {"pause": "true"}) for n, u in enumerate(urls)
    ]
    assert client.move(gids[2], 0) == 0
    assert client.move(gids[0], 0, how="end") == 2
    waiting = [p.gid for p in client.list_downloads("paused")]
    assert waiting == [gids[2], gids[1], gids[0]]
    with pytest.raises(Aria2InputError, match="how must be one of"):
        client.move(gids[0], 0, how="top")


def test_pause_all_and_resume_all_act_on_every_download(client_factory, fault_server, tmp_path):
    client = client_factory()
    gids = []
    for n in range(2):
        url = fault_server.add_file(f"p{n}.bin", size=SIZE)
        fault_server.set_default_fault(f"p{n}.bin", Slow(500_000))
        gids.append(client.add_download(url, str(tmp_path / f"p{n}.bin")))
    for gid in gids:
        wait_for_status(client, gid, "active")
    client.pause_all()
    for gid in gids:
        wait_for_status(client, gid, "paused")
    client.resume_all()
    for gid in gids:
        wait_for_status(client, gid, ("active", "complete"))
    for gid in gids:
        client.cancel_download(gid)


def test_purge_forgets_finished_downloads_in_the_daemon_and_the_client(
    client_factory, fault_server, tmp_path
):
    client = client_factory()
    url = fault_server.add_file("done.bin", size=1_000)
    future = client.submit(url, str(tmp_path / "done.bin"))
    future.result(timeout=15)
    assert [p.status for p in client.list_downloads("complete")] == ["complete"]
    assert client.purge() == 1
    assert client.list_downloads() == []
    assert len(engine_of(client).ledger) == 0
    assert future.result().path == str(tmp_path / "done.bin")  # (a future keeps its outcome)
    with pytest.raises(Aria2InputError, match="status must be one of"):
        client.list_downloads("finished")


def test_cancel_with_delete_files_removes_this_download_s_file_and_control_file_only(
    client_factory, fault_server, tmp_path
):
    client = client_factory()
    url = fault_server.add_file("big.bin", size=SIZE)
    fault_server.set_default_fault("big.bin", Slow(300_000))
    neighbour = tmp_path / "big.bin.keep"
    neighbour.write_bytes(b"not aria2's")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.bin"
    outside.write_bytes(b"nor this")
    gid = client.add_download(url, str(tmp_path / "big.bin"))
    wait_for(
        lambda: (tmp_path / "big.bin.aria2").exists() and _completed(client, gid) > 0, what="a partial file"
    )
    assert client.cancel_download(gid, delete_files=True) is True
    assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.aria2").exists()
    assert neighbour.read_bytes() == b"not aria2's" and outside.read_bytes() == b"nor this"
    assert client.get_progress(gid).status == "removed"
    os.unlink(outside)


def test_options_are_checked_before_anything_is_sent(client_factory, fault_server, tmp_path):
    client = client_factory()
    gid = client.add_download(
        fault_server.add_file("c.bin", size=1_000), str(tmp_path / "c.bin"), {"pause": "true"}
    )
    with pytest.raises(Aria2InputError, match="max-trys"):
        client.change_options(gid, {"max-trys": 3})
    with pytest.raises(Aria2InputError, match="'dir'"):
        client.change_options(gid, {"dir": "/tmp"})
    with pytest.raises(Aria2InputError, match="line break"):
        client.change_global_options({"user-agent": "a\r\nX-Injected: 1"})
    with pytest.raises(Aria2InputError, match="delete_files"):
        client.cancel_download(gid, delete_files="yes")
    client.change_global_options({"max-overall-download-limit": 0})
    assert client.get_global_options()["max-overall-download-limit"] == "0"
