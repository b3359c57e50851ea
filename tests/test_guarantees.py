"""Tests that kill mutations of tests/mutate.py no other test killed (see tests/MUTATIONS.rst).

Each test names the guarantee of the design it holds and the mutation it kills.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from aria2_sync import Aria2GIDNotFoundError, Aria2ProtocolError, RestartPolicy
from aria2_sync.client import engine_of
from aria2_sync.daemon import files, ownership
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc.transport import Transport
from tests.conftest import GIVE_UP_AT_ONCE, wait_for, wait_for_status
from tests.support.fault_server import ResetAfter

#: How long a test waits for a thread it started before it calls the test a failure.
BOUND = 30.0


def _needs_proc() -> None:
    if not ownership.can_prove_listener_owner():
        pytest.skip("/proc does not tell who listens on a port here")


def _batch_when(client, batch_id, predicate, what):
    """The batch's progress once ``predicate`` holds for it (polled with a deadline)."""

    def reached():
        batch = client.get_batch_progress(batch_id)
        return batch if predicate(batch) else None

    return wait_for(reached, what=what)


# -- 2. one restart at a time ----------------------------------------------------------------------


def test_a_failure_read_many_times_schedules_one_restart(client_factory, fault_server, tmp_path):
    """Kills g2-guard-one-schedule: every read of a failed download goes to the restart engine,
    but only the first schedules a restart (the others find one pending). Counted on the
    scheduler, one reader after another, so no race decides the outcome (the sixteen pollers
    of test_restarts.py kill this mutation only when their threads happen to collide)."""
    hour = RestartPolicy(base_delay=3600.0, max_delay=3600.0)
    client = client_factory(monitor=False, restart_policy=hour)
    url = fault_server.add_file("once.bin", size=200_000)
    fault_server.add_faults("once.bin", ResetAfter(50_000))
    gid = client.add_download(url, str(tmp_path / "once.bin"), GIVE_UP_AT_ONCE)
    wait_for_status(client, gid, "error")  # (reads that do not act on failures)
    for _ in range(5):
        progress = client.get_progress(gid)  # each acts on the failure it sees
        assert progress.status == "error" and progress.restart_pending
    assert engine_of(client).runtime.scheduler.pending() == 1
    assert len(client.get_retry_info(gid)["attempts"]) == 1


# -- 3. resume, never re-fetch --------------------------------------------------------------------


def test_a_finished_download_the_daemon_forgot_is_not_fetched_again(client_factory, fault_server, tmp_path):
    """Kills g3-forgotten-complete-file-fetched-again: a download that finished while nobody
    watched, and whose result the daemon then dropped, is complete from the file on disk."""
    client = client_factory(monitor=False)
    url = fault_server.add_file("done.bin", size=200_000)
    target = tmp_path / "done.bin"
    gid = client.add_download(url, str(target))
    # Behind the client's back: aria2 finishes it, then forgets its result.
    wait_for(
        lambda: client.rpc.tell_status(gid, ["status"])["status"] == "complete",
        what="aria2 to finish the download",
    )
    client.rpc.remove_download_result(gid)
    done = wait_for_status(client, gid, "complete")
    assert done.gid == gid and done.completed_length == 200_000
    assert target.read_bytes() == fault_server.content("done.bin")
    assert fault_server.request_count("done.bin") == 1
    with pytest.raises(Aria2GIDNotFoundError):
        client.rpc.tell_status(gid, ["status"])  # not added again


# -- 5. a batch is not completed while a restart is pending; failed means given up ---------------


def test_a_batch_is_not_completed_while_an_explicit_restart_of_a_failed_download_runs(
    client_factory, fault_server, tmp_path
):
    """Kills g5-is-completed-while-an-explicit-restart-runs (``unresolved += not
    record.finished``): a download that failed for good (automatic restart off) is explicitly
    restarted; until the restart has re-added it, the record still has its failed outcome, and
    the batch must not call itself completed in that window. The restart is held inside
    ``removeDownloadResult`` so the test looks at exactly that moment."""
    client = client_factory(auto_restart_failed=False, monitor=False)
    url = fault_server.add_file("again.bin", size=200_000)
    fault_server.add_faults("again.bin", ResetAfter(50_000))
    batch_id = client.add_batch_downloads([(url, str(tmp_path / "again.bin"))], options=GIVE_UP_AT_ONCE)
    failed = _batch_when(client, batch_id, lambda batch: batch.failed_count == 1, "the download to fail")
    assert failed.is_completed
    gid = failed.downloads[0].gid

    held, release = threading.Event(), threading.Event()
    remove = client.rpc.remove_download_result

    def held_remove(daemon_gid):
        held.set()
        assert release.wait(BOUND), "the test never released the restart"
        return remove(daemon_gid)

    client.rpc.remove_download_result = held_remove
    outcome = []
    worker = threading.Thread(target=lambda: outcome.append(client.restart_download(gid)))
    worker.start()
    try:
        assert held.wait(BOUND), "the restart did not reach removeDownloadResult"
        during = client.get_batch_progress(batch_id)
        assert during.downloads[0].restart_pending
        assert during.is_completed is False
    finally:
        release.set()
        worker.join(BOUND)
        client.rpc.remove_download_result = remove
    assert not worker.is_alive() and outcome == [True]
    done = _batch_when(client, batch_id, lambda batch: batch.is_completed, "the restarted batch to complete")
    assert (done.completed_count, done.failed_count) == (1, 0)
    assert (tmp_path / "again.bin").read_bytes() == fault_server.content("again.bin")


def test_a_restartable_failure_read_without_auto_restart_is_not_failed(
    client_factory, fault_server, tmp_path
):
    """Kills g5-failed-before-the-budget-is-spent: with automatic restart on, a read that does
    not act on failures (``get_progress(auto_restart=False)``) must not turn a transient error
    with budget left into a final failure; the next acting read restarts it."""
    client = client_factory(monitor=False, retry_delay=0.05)
    url = fault_server.add_file("transient.bin", size=200_000)
    fault_server.add_faults("transient.bin", ResetAfter(50_000))
    gid = client.add_download(url, str(tmp_path / "transient.bin"), GIVE_UP_AT_ONCE)
    seen = wait_for_status(client, gid, "error")  # reads with auto_restart=False
    assert seen.gave_up_reason is None and seen.retry_count == 0
    assert client.get_retry_info(gid)["can_retry"] is True

    def finished():
        progress = client.get_progress(gid)  # acts on the failure: schedules the restart
        return progress if progress.status == "complete" or progress.gave_up_reason else None

    done = wait_for(finished, 30, what="the download to be restarted and complete")
    assert done.status == "complete" and done.retry_count == 1
    assert client.future(gid).result(timeout=BOUND).retry_count == 1


# -- 9. bounded memory ----------------------------------------------------------------------------


def test_finished_downloads_are_forgotten_after_keep_seconds(client_factory, fault_server, tmp_path):
    """Kills g9-keep-seconds-ignored. The retention's clock is the ``now`` prune is given, so
    the test moves it instead of waiting an hour."""
    client = client_factory(monitor=False, keep_seconds=3600, keep_finished=1000)
    url = fault_server.add_file("kept.bin", size=10_000)
    gid = client.add_download(url, str(tmp_path / "kept.bin"))
    wait_for_status(client, gid, "complete")
    ledger = engine_of(client).ledger
    assert ledger.prune(time.monotonic() + 3500) == 0  # younger than keep_seconds: kept
    assert ledger.get(gid) is not None
    assert ledger.prune(time.monotonic() + 3700) == 1  # older: forgotten
    assert ledger.get(gid) is None


# -- 15. loopback only, private files -------------------------------------------------------------


def test_the_private_daemon_listens_on_loopback_only(tmp_path):
    """Kills g15-rpc-listens-on-all-interfaces: aria2c's RPC socket is on 127.0.0.1 (and
    [::1]), never on 0.0.0.0 or ::, where other machines could reach it. (With the mutation,
    the start itself fails: the port proof never sees a listener on 127.0.0.1; a short
    ``startup_timeout`` makes that quick.)"""
    _needs_proc()
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", startup_timeout=10.0).start()
    try:
        on_loopback, on_every_address = ownership._listening_inodes(daemon.port)
    finally:
        daemon.stop()
    assert not daemon.running
    assert on_loopback, "aria2c does not listen on 127.0.0.1"
    assert not on_every_address, "aria2c listens on every interface"


def test_the_daemon_creates_its_session_and_log_files_private(tmp_path):
    """Kills g15-daemon-files-not-private: the log (which quotes URIs with their passwords) and
    the session file are created 0600 whatever the umask. (Only the log's mode is asserted
    while aria2c runs: aria2c itself rewrites the session file with the process umask.)"""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    previous = os.umask(0o022)
    try:
        daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)
        created = files.ensure_private_file(str(state / "probe"))
        assert created and stat.S_IMODE(os.stat(state / "probe").st_mode) == 0o600
        daemon.start()
        try:
            assert stat.S_IMODE(os.stat(daemon.log_file).st_mode) == 0o600
        finally:
            daemon.stop()
    finally:
        os.umask(previous)
    assert not daemon.running


def test_a_foreign_wildcard_listener_counts_as_taking_the_port():
    """Kills sec-port-proof-ignores-wildcard-listeners: a process listening on 0.0.0.0:P gets
    connections to 127.0.0.1:P, so it takes the daemon's port as surely as one on 127.0.0.1."""
    _needs_proc()
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert ownership.rpc_listener_owner(os.getpid(), port) == "none"  # ours, not 127.0.0.1
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert ownership.rpc_listener_owner(child.pid, port) == "foreign"
        finally:
            child.kill()
            child.wait(5)


# -- issue 11.6: the size of an answer ------------------------------------------------------------


def test_an_answer_announced_past_max_answer_bytes_is_refused_before_reading():
    """Kills rel-announced-answer-size-unbounded: an answer whose Content-Length is past the cap
    is refused on its headers, without waiting for (or reading) its body. The server announces
    one byte more than the cap, sends ten, and keeps the connection open: a transport that reads
    on waits until its deadline instead."""
    cap = 1024 * 1024
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(BOUND)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/jsonrpc"
    done = threading.Event()

    def serve():
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {cap + 1}\r\n\r\n".encode()
                + b'{"id": 1, '
            )
            done.wait(BOUND)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    transport = Transport(url, "announced-cap-secret", timeout=5.0, max_retries=0, max_answer_bytes=cap)
    try:
        with pytest.raises(Aria2ProtocolError) as info:
            transport.call("aria2.getVersion")
    finally:
        done.set()
        transport.close()
        server.join(BOUND)
        listener.close()
    assert not server.is_alive()
    assert f"max_answer_bytes={cap}" in str(info.value) and f"{cap + 1} bytes announced" in str(info.value)
