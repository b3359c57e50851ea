"""The Redis store's own guarantees, against a real redis-server on 127.0.0.1.

What every store guarantees (batches across processes, one restart per failure, claims) runs
over both stores in tests/test_state.py; here: TTL retention, daemon-GID aliases, a lease whose
holder was killed, passwords that never show, and Redis unreachable, stopped or emptied mid-run.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from aria2_sync import Aria2Client, Aria2InputError, Aria2StateError
from aria2_sync.client import engine_of
from aria2_sync.state import open_store
from aria2_sync.state.redis import PASSWORD_ENV, RedisStore
from tests.conftest import GIVE_UP_AT_ONCE, wait_for
from tests.support.fault_server import ResetAfter, Slow
from tests.support.redis_server import stored_rows
from tests.test_client import daemon_gids
from tests.test_state import first_line

ROOT = Path(__file__).resolve().parent.parent
GID, OTHER = "00000000000000a1", "00000000000000a2"


def row(gid: str, batch_id: str | None = None) -> dict:
    return {"gid": gid, "uris": ["http://h/f"], "options": {}, "current_gid": gid, "batch_id": batch_id}


def raw(url: str) -> tuple[redis.Redis, str]:
    """A plain redis-py client on the URL's server, and the URL's prefix."""
    store = RedisStore(url)
    try:
        return redis.Redis.from_url(store._url, decode_responses=True), store.prefix
    finally:
        store.close()


def test_finished_rows_and_batches_expire_and_reopened_ones_do_not(redis_url):
    store = RedisStore(redis_url + "&finished_ttl=300")
    client, prefix = raw(redis_url)
    try:
        store.add([row(GID, "B"), row(OTHER, "B")], ("B", [GID, OTHER]))
        store.release([GID, OTHER])
        store.update(GID, current_gid="00000000000000b1", daemon_gids=["00000000000000b1"])
        assert store.find("00000000000000b1")["gid"] == GID  # a daemon GID resolves to its handle
        assert client.pttl(f"{prefix}d:{GID}") == -1  # unfinished: kept
        store.update(GID, outcome="complete", finished_at=1.0)
        assert 0 < client.pttl(f"{prefix}d:{GID}") <= 300_000
        assert 0 < client.pttl(f"{prefix}alias:00000000000000b1") <= 300_000
        assert client.pttl(f"{prefix}b:B") == -1, "a batch with an open download must stay"
        assert [r["gid"] for r in store.unfinished()] == [OTHER]
        store.update(OTHER, outcome="error", finished_at=1.0)
        assert 0 < client.pttl(f"{prefix}b:B") <= 300_000  # all finished: the batch expires too
        assert store.unfinished() == []
        store.update(GID, outcome=None, run=1)  # restarted by some process: kept again
        assert client.pttl(f"{prefix}d:{GID}") == -1 and client.pttl(f"{prefix}b:B") == -1
        assert [r["gid"] for r in store.unfinished()] == [GID]
        assert [r["gid"] for r in store.batch("B")] == [GID, OTHER]
        assert store.rows([GID, "ffffffffffffffff"])[GID]["run"] == 1
    finally:
        store.close()
        client.close()


def test_forget_keeps_a_row_restarted_since_and_batches_that_still_have_rows(redis_url):
    store = RedisStore(redis_url)
    try:
        store.add([row(GID, "B"), row(OTHER, "B")], ("B", [GID, OTHER]))
        store.update(GID, outcome="complete", run=0)
        store.update(OTHER, outcome="complete", run=0)
        store.update(OTHER, outcome=None, run=1)  # restarted by another process since
        store.forget([GID, OTHER], ["B"], runs={GID: 0, OTHER: 0})
        assert store.find(GID) is None and store.find(OTHER)["run"] == 1
        assert [r["gid"] for r in store.batch("B")] == [OTHER]  # the batch keeps its live row
        store.forget([OTHER], ["B"])
        assert store.batch("B") is None and store.find(OTHER) is None
        client, prefix = raw(redis_url)
        assert list(client.scan_iter(match=f"{prefix}*")) == [f"{prefix}meta"]  # nothing left over
        client.close()
    finally:
        store.close()


def test_a_killed_lease_holder_blocks_the_restart_only_until_its_lease_runs_out(redis_url):
    store = RedisStore(redis_url)
    store.add([row(GID)])
    store.release([GID])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.support.state_worker", "claim", redis_url, "-", GID],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert first_line(holder).strip() == "claimed"
        holder.send_signal(signal.SIGKILL)  # dies holding the claim (a 2 s lease)
        holder.wait(10)
        assert store.claim_restart(GID, 0, 60) is False, "the dead holder's lease is still running"
        wait_for(lambda: store.claim_restart(GID, 0, 60), timeout=10, what="the lease to run out")
        assert store.claim_restart(GID, 0, 60) is False  # now this process holds it
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        store.close()


def test_a_password_works_from_the_url_or_the_environment_and_never_shows(
    daemon, fault_server, tmp_path, redis_factory, no_secret_in_any_log_line, monkeypatch, caplog
):
    secret = "s3cret-redis-pw-4f1c"
    no_secret_in_any_log_line.secrets.add(secret)  # checked in every log line of the run
    server = redis_factory(password=secret)
    url = server.url()
    caplog.set_level(logging.DEBUG, logger="aria2_sync")
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=url) as client:
        store = engine_of(client).ledger.store
        gid = client.add_download(fault_server.add_file("pw.bin", size=1000), str(tmp_path / "pw.bin"))
        assert client.future(gid).result(timeout=20).size == 1000
        assert isinstance(store, RedisStore) and secret not in repr(store) + repr(client)
    assert stored_rows(url)[0]["gid"] == f'"{gid}"'
    bare = url.replace(f":{secret}@", "")
    with pytest.raises(Aria2StateError, match="password") as refused:
        open_store(bare)  # no password at all
    wrong = url.replace(secret, "not-the-password")
    with pytest.raises(Aria2StateError, match="password") as wrong_one:
        open_store(wrong)
    for error in (refused, wrong_one):
        assert f"127.0.0.1:{server.port}" in str(error.value) and secret not in str(error.value)
    assert "not-the-password" not in str(wrong_one.value)  # a wrong password is a secret too
    monkeypatch.setenv(PASSWORD_ENV, secret)
    store = open_store(bare)
    try:
        assert store.find(gid)["gid"] == gid and secret not in repr(store)
    finally:
        store.close()
    assert secret not in caplog.text


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_an_unreachable_redis_is_a_clear_error_naming_it(daemon, scheme):
    with socket_closed_port() as port:
        url = f"{scheme}://:pw-unused-7@127.0.0.1:{port}/0"
        with pytest.raises(Aria2StateError) as caught:
            Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=url)
    text = str(caught.value)
    assert f"{scheme}://:***@127.0.0.1:{port}" in text and "redis-server running" in text
    assert "pw-unused-7" not in text


def test_a_unix_socket_url_opens_the_same_store(redis_server, redis_url):
    prefix = redis_url.split("?prefix=", 1)[1]
    over_tcp, over_socket = (
        RedisStore(redis_url),
        open_store(f"unix://{redis_server.socket}?db=0&prefix={prefix}"),
    )
    try:
        over_tcp.add([row(GID)])
        assert over_socket.find(GID)["uris"] == ["http://h/f"]
        assert repr(over_socket).startswith("<RedisStore unix://")
    finally:
        over_tcp.close()
        over_socket.close()


def socket_closed_port():
    """A port of 127.0.0.1 nothing listens on (bound, then closed)."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def closed():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        yield port

    return closed()


def test_without_redis_py_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(Aria2InputError, match=r"pip install 'aria2_sync\[redis\]'"):
        open_store("redis://127.0.0.1:1/0")


def test_damaged_or_foreign_keys_are_state_errors_that_quote_no_value(redis_url):
    store = RedisStore(redis_url)
    client, prefix = raw(redis_url)
    try:
        store.add([row(GID)])
        client.hset(f"{prefix}d:{GID}", "uris", '["http://user:pass@h/')
        for read in (lambda: store.find(GID), lambda: store.rows([GID]), store.unfinished):
            with pytest.raises(Aria2StateError, match="uris") as caught:
                read()
            assert "pass" not in str(caught.value)
        client.hset(f"{prefix}d:{GID}", "uris", "{}")
        with pytest.raises(Aria2StateError, match="not a list"):
            store.find(GID)
        client.delete(f"{prefix}unfinished")
        client.set(f"{prefix}unfinished", "x")  # something else's key under our prefix
        with pytest.raises(Aria2StateError, match="choose another prefix"):
            store.unfinished()
        client.hset(f"{prefix}meta", "schema", "99")
        with pytest.raises(Aria2StateError, match="schema version"):
            RedisStore(redis_url)
    finally:
        store.close()
        client.close()


def test_redis_emptied_under_a_running_client_is_logged_not_silent(redis_url, caplog):
    store = RedisStore(redis_url)
    client, prefix = raw(redis_url)
    try:
        store.add([row(GID)])
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)  # as a restart without persistence, or a FLUSHDB, does
        caplog.set_level(logging.ERROR, logger="aria2_sync")
        assert store.rows([GID]) == {}
        assert "lost its data" in caplog.text
    finally:
        store.close()
        client.close()


def test_redis_stopped_and_started_again_mid_batch(daemon, fault_server, tmp_path, redis_factory, caplog):
    """New work is refused with a clear error while Redis is down; the batch goes on and completes
    with its counters intact once Redis is back (the append-only file kept the rows)."""
    server = redis_factory()
    url = server.url()
    items = []
    for i in range(3):
        name = f"r{i}.bin"
        fault_server.add_file(name, size=600_000)
        fault_server.set_default_fault(name, Slow(400_000))
        items.append((f"{fault_server.base_url}/{name}", str(tmp_path / name)))
    flaky = fault_server.add_file("rflaky.bin", size=300_000)
    fault_server.add_faults("rflaky.bin", ResetAfter(100_000))
    items.append((flaky, str(tmp_path / "rflaky.bin")))
    caplog.set_level(logging.WARNING, logger="aria2_sync")
    options = dict(verbose=False, state=url, retry_delay=0.0, poll_interval=0.05, notifications=False)
    with Aria2Client(daemon.rpc_url, daemon.secret, **options) as client:
        batch_id = client.add_batch_downloads(items, options=GIVE_UP_AT_ONCE)
        wait_for(
            lambda: (
                client.get_progress(client.get_batch_progress(batch_id).downloads[3].gid).retry_count >= 1
            ),
            timeout=30,
            what="the flaky download's restart",
        )
        server.stop()
        before = set(daemon_gids(client))
        with pytest.raises(Aria2StateError) as caught:
            client.add_download(fault_server.add_file("new.bin", size=10), str(tmp_path / "new.bin"))
        assert f"127.0.0.1:{server.port}" in str(caught.value)
        assert set(daemon_gids(client)) == before, "refused before anything reached the daemon"
        wait_for(lambda: "could not" in caplog.text, what="the monitor to log the store's trouble")
        server.start()
        final = client.wait_for_batch(batch_id, timeout=60)
        assert final.is_completed and final.completed_count == 4 and final.failed_count == 0
        retries = {p.gid: p.retry_count for p in final.downloads}
    assert sum(retries.values()) >= 1
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, state=url, monitor=False) as fresh:
        again = fresh.get_batch_progress(batch_id)
        assert again.is_completed and {p.gid: p.retry_count for p in again.downloads} == retries
    for url_, path in items:
        assert open(path, "rb").read() == fault_server.content(url_.rsplit("/", 1)[1])
