"""A download that completed just before aria2c died, restored from its session, is complete.

aria2 deletes a download's control file when it completes, but saves its session only once a
second: aria2c killed in between comes back (session restored) with the download listed, finds
its file whole without a control file, and fails it with error 13 ("file already exists"). The
client had seen the download writing that very file: it takes the file as the finished
download, as it does when the daemon forgot a download (``complete_file_on_disk``). Any other
error 13 stays a failure, and another writer's file is never taken (tests/test_own_files.py).

The crash is made deterministic: aria2c is stopped with the download mid-transfer (its session
saved), the partial file is replaced by the whole content and the control file deleted, as a
completion would have left them, and aria2c is started again on the same session.
"""

from __future__ import annotations

import logging
import os

import pytest

from aria2_sync import Aria2Client, DownloadFailed
from aria2_sync.client import engine_of
from aria2_sync.daemon.process import Aria2Daemon
from tests.conftest import wait_for
from tests.support.fault_server import Slow

pytestmark = pytest.mark.integration

SIZE = 512 * 1024


@pytest.fixture
def stopped_mid_download(tmp_path, fault_server):
    """A client whose download was seen writing, and the daemon stopped with it in its session:
    ``(client, daemon, future, path)``; the daemon is down when the test gets it."""
    state, out = tmp_path / "state", tmp_path / "out"
    state.mkdir(mode=0o700)
    out.mkdir()
    url = fault_server.add_file("f.bin", size=SIZE)
    fault_server.set_default_fault("f.bin", Slow(64 * 1024))
    daemon = Aria2Daemon(download_dir=out, state_dir=state).start()
    client = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, retry_delay=0.05, poll_interval=0.1)
    try:
        path = str(out / "f.bin")
        future = client.submit(url, path)
        record = engine_of(client).ledger.get(future.gid)
        wait_for(
            lambda: record.last is not None and record.last.completed_length > 0 and record.last.total_length,
            timeout=30,
            what="the download writing its file",
        )
        daemon.stop()  # SIGTERM: aria2c saves its session (the download listed) and control file
        fault_server.set_default_fault("f.bin", None)
        with open(daemon.session_file) as session:
            assert f"gid={future.gid}" in session.read()
        assert os.path.exists(path + ".aria2") and os.path.getsize(path) < SIZE
        yield client, daemon, future, path
    finally:
        client.close()
        daemon.stop()


def test_a_download_completed_just_before_a_crash_is_complete_after_the_session_restore(
    stopped_mid_download, fault_server, caplog
):
    client, daemon, future, path = stopped_mid_download
    # What aria2c leaves when the download completes in the second before it is killed.
    with open(path, "wb") as file:
        file.write(fault_server.content("f.bin"))
    os.remove(path + ".aria2")
    with caplog.at_level(logging.INFO, logger="aria2_sync"):
        daemon.start()
        result = future.result(timeout=30)
    assert result.path == path and result.size == SIZE
    assert client.get_progress(future.gid).status == "complete"
    assert client.rpc.tell_status(future.gid, ["status", "errorCode"]) == {
        "status": "error",
        "errorCode": "13",
    }
    with open(path, "rb") as file:
        assert file.read() == fault_server.content("f.bin")  # untouched
    assert not os.path.exists(path + ".aria2")
    assert any(
        r.levelno == logging.INFO and "whole on disk" in r.getMessage() and future.gid in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize("left", ["a shorter file", "a file with its control file deleted mid-transfer"])
def test_other_files_that_aria2_refuses_stay_a_failure(stopped_mid_download, fault_server, left):
    client, daemon, future, path = stopped_mid_download
    if left == "a shorter file":  # not the size the download had: not its finished file
        with open(path, "wb") as file:
            file.write(fault_server.content("f.bin")[: SIZE - 1])
    os.remove(path + ".aria2")
    before = open(path, "rb").read()
    daemon.start()
    with pytest.raises(DownloadFailed) as caught:
        future.result(timeout=30)
    assert caught.value.error_code == "13"
    assert open(path, "rb").read() == before  # never overwritten
