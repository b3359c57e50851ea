"""A failure seen by a tick is judged on the full re-read, never without its error code.

A tick reads five moving keys; a download whose status changed is read again in full (error
code, files) in a second multicall. If aria2c dies between the two (a supervised daemon comes
back from a session that does not list failed downloads), the re-read says "GID not found":
that is the download's state (lost: added again), not the first answer's "error" without a
code, which no policy can judge ("error ? (no error code) is not restartable" made
tests/test_chaos.py::test_a_supervised_daemon_killed_twice_mid_run fail now and then).
"""

from __future__ import annotations

import pytest

from aria2_sync import Aria2Client
from aria2_sync.client import engine_of
from aria2_sync.errors import Aria2GIDNotFoundError
from aria2_sync.models import STATUS_KEYS
from tests.conftest import GIVE_UP_AT_ONCE, wait_for
from tests.support.fault_server import Status

pytestmark = pytest.mark.integration


def _daemon_status(client: Aria2Client, gid: str) -> str | None:
    """What the daemon itself says of ``gid`` (None: it does not have it)."""
    try:
        return client.rpc.tell_status(gid, ["status"])["status"]
    except Aria2GIDNotFoundError:
        return None


def test_a_download_lost_between_the_tick_and_the_full_read_is_added_again(
    daemon_factory, fault_server, tmp_path, monkeypatch
):
    daemon = daemon_factory(**GIVE_UP_AT_ONCE)
    url = fault_server.add_file("f.bin", size=100_000)
    fault_server.add_faults("f.bin", Status(503))
    client = Aria2Client(
        daemon.rpc_url, daemon.secret, verbose=False, retry_delay=0.05, max_retries=3, monitor=False
    )
    try:
        engine = engine_of(client)
        future = client.submit(url, str(tmp_path / "f.bin"), options={"pause": "true"})
        gid = future.gid
        record = engine.ledger.get(gid)
        assert client.get_progress(gid).status == "paused"  # (the snapshot a tick starts from)
        client.rpc.unpause(gid)
        wait_for(lambda: client.rpc.tell_status(gid, ["status"])["status"] == "error", what="the 503")

        real = engine.rpc.multicall
        full_reads = []

        def multicall(calls, *args, **kwargs):
            if calls and calls[0][0] == "aria2.tellStatus" and list(calls[0][1][1]) == list(STATUS_KEYS):
                full_reads.append(calls)
                real([("aria2.removeDownloadResult", [gid])])  # the daemon loses it meanwhile
            return real(calls, *args, **kwargs)

        monkeypatch.setattr(engine.rpc, "multicall", multicall)
        engine.tracker.read(engine.rpc, [record], auto=True)
        monkeypatch.undo()
        assert len(full_reads) == 1  # the tick saw "error"; the full re-read found it gone
        assert record.gave_up is None and not future.done()  # not judged on a failure without a code

        # Added again as it was added (paused, by its options), under its GID; then it completes.
        wait_for(lambda: _daemon_status(client, gid) == "paused", timeout=30, what="the download again")
        client.rpc.unpause(gid)
        wait_for(lambda: client.get_progress(gid).status == "complete", timeout=30, what="the download")
        result = future.result(timeout=5)
        assert result.gid == gid and result.size == 100_000
        assert [a["error_code"] for a in client.get_retry_info(gid)["attempts"]] == []
    finally:
        client.close()
