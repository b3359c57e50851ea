"""The client against a real aria2c and our fault-injecting file server."""

from __future__ import annotations

import logging
import re
import threading

import pytest

from aria2_sync import (
    Aria2AuthError,
    Aria2Client,
    Aria2ConnectionError,
    Aria2InputError,
    Progress,
)
from aria2_sync.logs import _VerboseHandler
from aria2_sync.rpc import retry as retry_module
from tests.conftest import GIVE_UP_AT_ONCE, wait_for_status
from tests.support.fault_server import Slow
from tests.support.rpc_proxy import RpcProxy

ALL_KEYS = ["gid", "status"]


def daemon_gids(client: Aria2Client):
    """Every GID the daemon holds, in any state (to count duplicates)."""
    active, waiting, stopped = client.rpc.multicall(
        [
            ("aria2.tellActive", [ALL_KEYS]),
            ("aria2.tellWaiting", [0, 1000, ALL_KEYS]),
            ("aria2.tellStopped", [0, 1000, ALL_KEYS]),
        ]
    )
    return [item["gid"] for item in active + waiting + stopped]


def test_a_download_completes_with_the_right_bytes(client, fault_server, tmp_path):
    url = fault_server.add_file("data.bin", size=300_000)
    target = tmp_path / "sub" / "data.bin"
    gid = client.add_download(url, str(target))
    assert re.fullmatch(r"[0-9a-f]{16}", gid)
    done = wait_for_status(client, gid, "complete")
    assert target.read_bytes() == fault_server.content("data.bin")
    assert done.gid == gid
    assert done.total_length == done.completed_length == 300_000
    assert done.progress_percent == 100.0 and done.eta_seconds == 0.0
    assert done.file_path == str(target)
    assert done.error_code is None and done.retry_count == 0
    as_dict = done.to_dict()
    assert as_dict["status"] == "complete" and as_dict["file_path"] == str(target)


def test_relative_save_path_is_made_absolute_and_options_are_not_mutated(
    client, fault_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    url = fault_server.add_file("rel.bin", size=1000)
    options = {"max-connection-per-server": 2, "check-integrity": False}
    before = dict(options)
    gid = client.add_download(url, "out/rel.bin", options)
    assert options == before
    wait_for_status(client, gid, "complete")
    assert (tmp_path / "out" / "rel.bin").read_bytes() == fault_server.content("rel.bin")
    sent = client.rpc.get_option(gid)
    assert sent["max-connection-per-server"] == "2" and sent["check-integrity"] == "false"


def test_a_404_ends_in_error_code_3(client, fault_server, tmp_path):
    gid = client.add_download(
        fault_server.base_url + "/missing.bin", str(tmp_path / "m.bin"), GIVE_UP_AT_ONCE
    )
    failed = wait_for_status(client, gid, "error")
    assert failed.error_code == "3" and failed.error_code_number == 3
    assert failed.error_message


def test_unknown_gid_gives_none_and_a_malformed_one_an_input_error(client):
    assert client.get_progress("0123456789abcdef") is None
    for bad in ["xyz", "", "0123456789abcdefg", "0123456789abcdef\n", 12]:
        with pytest.raises(Aria2InputError):
            client.get_progress(bad)


def test_pause_resume_and_cancel(client, fault_server, tmp_path):
    slow = fault_server.add_file("slow.bin", size=2_000_000)
    fault_server.set_default_fault("slow.bin", Slow(100_000))
    other = fault_server.add_file("other.bin", size=5000)
    other_gid = client.add_download(other, str(tmp_path / "other.bin"))
    wait_for_status(client, other_gid, "complete")

    gid = client.add_download(slow, str(tmp_path / "slow.bin"))
    wait_for_status(client, gid, "active")
    assert client.pause_download(gid) is True
    wait_for_status(client, gid, "paused")
    assert client.resume_download(gid) is True
    wait_for_status(client, gid, ("active", "waiting"))
    assert client.cancel_download(gid) is True
    assert wait_for_status(client, gid, "removed").status == "removed"
    assert client.cancel_download(gid) is False  # nothing left to cancel
    assert (tmp_path / "other.bin").read_bytes() == fault_server.content("other.bin")


def test_global_stats_and_version(client, fault_server, tmp_path):
    stats = client.get_global_stats()
    assert stats.num_active == 0 and stats.num_waiting == 0
    assert client.get_version()["version"]


def test_a_stopped_daemon_raises_a_connection_error_not_none(daemon, client_factory, monkeypatch):
    monkeypatch.setattr(retry_module, "_sleep", lambda seconds: None)
    client = client_factory(max_retries=2)
    daemon.stop()
    with pytest.raises(Aria2ConnectionError) as info:
        client.get_progress("0123456789abcdef")
    assert "connection" in str(info.value).lower()
    assert info.value.attempts == 3
    assert daemon.secret not in str(info.value)


def test_a_wrong_secret_is_an_auth_error(daemon, client_factory):
    client = client_factory(rpc_secret="wrong-secret")
    with pytest.raises(Aria2AuthError) as info:
        client.get_version()
    assert "wrong-secret" not in str(info.value)


def test_a_lost_adduri_answer_does_not_duplicate_the_download(daemon, client_factory, fault_server, tmp_path):
    url = fault_server.add_file("once.bin", size=10_000)
    with RpcProxy(daemon.rpc_url) as proxy:
        client = client_factory(rpc_url=proxy.url)
        proxy.drop_responses(lambda body: b"aria2.addUri" in body, count=1)
        gid = client.add_download(url, str(tmp_path / "once.bin"))
        assert proxy.dropped_count == 1
        wait_for_status(client, gid, "complete")
        assert daemon_gids(client) == [gid]
        assert sum(b"aria2.addUri" in body for body in proxy.bodies) == 1
    assert fault_server.request_count("once.bin") == 1
    assert (tmp_path / "once.bin").read_bytes() == fault_server.content("once.bin")


@pytest.mark.parametrize(
    "args, kwargs, words",
    [
        ((123,), {}, "url must be a str"),
        (("",), {}, "url is empty"),
        (("   ",), {}, "url is empty"),
        (("example.com/file",), {}, "has no scheme"),
        (("file:///etc/passwd",), {}, "unsupported scheme"),
        (("javascript:alert(1)",), {}, "unsupported scheme"),
        (("http://",), {}, "has no host"),
        (("http://host/a b",), {}, "white space"),
        (("http://127.0.0.1:99999/x",), {}, "invalid port"),
        (([],), {}, "empty list"),
        (("http://h/f", 42), {}, "save_path must be a str"),
        (("http://h/f", ""), {}, "save_path is empty"),
        (("http://h/f", "dir/"), {}, "is a directory"),
        (("http://h/f", "x"), {"options": ["not", "a", "dict"]}, "options must be a dict"),
        (("http://h/f", "x"), {"options": {"split": object()}}, "option 'split'"),
        (("http://h/f", "x"), {"options": {"split": None}}, "option 'split'"),
        (("http://h/f", "x"), {"options": {1: "x"}}, "option names"),
        (("http://h/f", "x"), {"options": {"gid": "0123456789abcdef"}}, "gid"),
        (("http://h/f", "x"), {"options": {"out": "y"}}, "both say where"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(client, args, kwargs, words):
    with pytest.raises(Aria2InputError, match=re.escape(words)):
        client.add_download(*args, **kwargs)
    assert daemon_gids(client) == []


def test_a_directory_as_save_path_is_refused(client, tmp_path):
    with pytest.raises(Aria2InputError, match="is a directory"):
        client.add_download("http://127.0.0.1:1/f", str(tmp_path))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rpc_url": "localhost:6800"},
        {"rpc_url": ""},
        {"rpc_url": 6800},
        {"max_retries": -1},
        {"max_retries": 1.5},
        {"retry_delay": "1"},
        {"retry_delay": -0.1},
        {"timeout": 0},
        {"timeout": (1, 2, 3)},
        {"timeout": (5,)},
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"timeout": (1, float("inf"))},
        {"retry_delay": float("nan")},
        {"poll_interval": 0},
        {"keep_finished": -1},
        {"max_restarts": 2, "restart_policy": object()},
        {"rpc_secret": 123},
    ],
)
def test_bad_client_arguments_are_input_errors(kwargs):
    with pytest.raises(Aria2InputError):
        Aria2Client(**{"verbose": False, **kwargs})


def test_verbose_prints_the_seed_format_and_quiet_adds_no_handler(daemon, fault_server, tmp_path, capsys):
    logger = logging.getLogger("aria2_sync")
    saved_handlers, saved_level = list(logger.handlers), logger.level
    try:
        for handler in [h for h in logger.handlers if isinstance(h, _VerboseHandler)]:
            logger.removeHandler(handler)
        quiet = Aria2Client(daemon.rpc_url, daemon.secret, verbose=False)
        assert not any(isinstance(h, _VerboseHandler) for h in logger.handlers)
        quiet.close()
        loud = Aria2Client(daemon.rpc_url, daemon.secret, verbose=True)
        Aria2Client(daemon.rpc_url, daemon.secret, verbose=True).close()  # a second one: no second handler
        assert sum(isinstance(h, _VerboseHandler) for h in logger.handlers) == 1
        url = fault_server.add_file("v.bin", size=10)
        gid = loud.add_download(url, str(tmp_path / "v.bin"))
        loud.close()
        err = capsys.readouterr().err
        assert re.search(
            rf"^\[Aria2Client \d\d:\d\d:\d\d\] added download: {re.escape(url)} -> GID {gid}$", err, re.M
        )
        assert daemon.secret not in err
    finally:
        logger.handlers[:] = saved_handlers
        logger.setLevel(saved_level)


def test_the_secret_never_reaches_logs_or_reprs(daemon, client_factory, fault_server, tmp_path, caplog):
    with caplog.at_level(logging.DEBUG):
        client = client_factory()
        gid = client.add_download(fault_server.add_file("s.bin", size=100), str(tmp_path / "s.bin"))
        wait_for_status(client, gid, "complete")
        client.get_progress("0123456789abcdef")
        with pytest.raises(Aria2AuthError):
            client_factory(rpc_secret=daemon.secret + "x").get_version()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert text and daemon.secret not in text
    assert daemon.secret not in repr(client) and daemon.secret not in repr(daemon)


def test_one_client_shared_by_threads(client, fault_server, tmp_path):
    urls = [fault_server.add_file(f"t{i}.bin", size=2000 + i) for i in range(16)]
    gids, errors = [], []

    def work(i: int) -> None:
        try:
            gid = client.add_download(urls[i], str(tmp_path / f"t{i}.bin"))
            gids.append(gid)
            for _ in range(20):
                assert isinstance(client.get_progress(gid), Progress)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread is still adding"
    assert errors == [] and len(set(gids)) == 16
    for _i, gid in enumerate(gids):
        wait_for_status(client, gid, "complete")
    assert sorted(daemon_gids(client)) == sorted(gids)


def test_client_is_a_context_manager_and_close_is_idempotent(daemon):
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False) as client:
        assert client.get_version()
    assert client.closed
    client.close()
    assert daemon.secret not in repr(client)
