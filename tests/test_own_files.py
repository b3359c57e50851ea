"""Other people's files are never overwritten by a restart (issue 10, item 7).

aria2 refuses (error 13) to write over a file it cannot resume. A restart may replace such a
file only when it is provably this download's own leftover; a file another writer created after
the add, or swapped in for ours, stays as it is and the download fails saying why. Real aria2c,
real fault server.
"""

from __future__ import annotations

import os

from tests.conftest import GIVE_UP_AT_ONCE, wait_for, wait_for_status, wait_until_finished
from tests.support.fault_server import ResetAfter

OTHER = b"OTHER-WRITER-CONTENT"


def test_a_file_another_writer_creates_after_the_add_is_never_overwritten(
    client_factory, fault_server, tmp_path
):
    client = client_factory(retry_delay=0.02, monitor=False)
    url = fault_server.add_file("victim.bin", size=50_000)
    target = tmp_path / "victim.bin"
    gid = client.add_download(url, str(target), {**GIVE_UP_AT_ONCE, "pause": True})
    wait_for_status(client, gid, "paused")
    target.write_bytes(OTHER)  # another writer, after the add and before aria2 opens the file
    client.rpc.unpause(gid)
    failed = wait_until_finished(client, gid)
    assert failed.status == "error" and failed.error_code == "13"
    assert "not restartable" in failed.gave_up_reason
    assert "already exists" in failed.gave_up_reason and "left untouched" in failed.gave_up_reason
    assert failed.retry_count == 0
    assert target.read_bytes() == OTHER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim.bin"]
    future = client.future(gid)
    error = future.exception(timeout=10)
    assert "left untouched" in str(error) and "error 13" in str(error)


def test_our_partial_file_swapped_for_another_writers_file_is_not_overwritten(
    client_factory, fault_server, tmp_path
):
    """The leftover at the path has a recent mtime and no control file, like a crash leftover,
    but it is not the file aria2 wrote (another inode): it stays."""
    client = client_factory(retry_delay=0.02, monitor=False)
    url = fault_server.add_file("swap.bin", size=400_000)
    fault_server.add_faults("swap.bin", ResetAfter(100_000))
    target = tmp_path / "swap.bin"
    gid = client.add_download(url, str(target), {**GIVE_UP_AT_ONCE, "auto-file-renaming": False})
    wait_for_status(client, gid, "error")  # aria2 wrote 100 000 bytes: that file was ours
    (tmp_path / "swap.bin.aria2").unlink()
    target.unlink()
    target.write_bytes(OTHER)  # a new file (new inode) by another writer
    assert client.restart_download(gid) is True
    failed = wait_until_finished(client, gid)
    assert failed.error_code == "13" and "left untouched" in failed.gave_up_reason
    assert target.read_bytes() == OTHER
    assert sorted(p.name for p in tmp_path.iterdir()) == ["swap.bin"]


def test_an_empty_leftover_like_a_crash_before_the_control_file_is_overwritten(
    client_factory, fault_server, tmp_path
):
    """aria2 creates the file empty and its control file a millisecond later: a SIGKILL in
    between leaves an empty file and no control file, which the restart may replace."""
    client = client_factory(retry_delay=0.02, monitor=False)
    url = fault_server.add_file("empty.bin", size=50_000)
    target = tmp_path / "empty.bin"
    gid = client.add_download(url, str(target), {**GIVE_UP_AT_ONCE, "pause": True})
    wait_for_status(client, gid, "paused")
    target.write_bytes(b"")
    client.rpc.unpause(gid)

    def settled_unpausing():
        progress = client.get_progress(gid)
        if progress.status == "paused":  # the restart re-adds it with its options: pause too
            client.rpc.unpause(gid)
        return progress if progress.status == "complete" or progress.gave_up_reason else None

    done = wait_for(settled_unpausing, what="the leftover to be overwritten")
    assert done.status == "complete" and done.retry_count == 1
    assert target.read_bytes() == fault_server.content("empty.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.bin"]


def test_a_file_replaced_between_the_decision_and_the_restart_is_not_overwritten(
    client_factory, fault_server, tmp_path
):
    """The proof is checked again when the restart's options are made, after the backoff."""
    client = client_factory(retry_delay=1.5, monitor=False)
    url = fault_server.add_file("late.bin", size=400_000)
    fault_server.add_faults("late.bin", ResetAfter(100_000))
    target = tmp_path / "late.bin"
    gid = client.add_download(url, str(target), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")
    (tmp_path / "late.bin.aria2").unlink()
    assert client.restart_download(gid) is True

    def restart_scheduled():
        progress = client.get_progress(gid)  # error 13 on our own leftover: a restart is scheduled
        return progress if progress.error_code == "13" and progress.restart_pending else None

    wait_for(restart_scheduled, what="the restart of the leftover to be scheduled")
    os.unlink(target)
    target.write_bytes(OTHER)  # ...and swapped for another writer's file during the backoff

    def given_up_after_the_restart():
        progress = client.get_progress(gid)
        return progress if progress.retry_count == 2 and progress.gave_up_reason else None

    failed = wait_for(given_up_after_the_restart, timeout=30, what="the restart to run and fail")
    assert failed.error_code == "13"
    assert target.read_bytes() == OTHER
