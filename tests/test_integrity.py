"""Integrity and safe defaults (issue 15): checksums, following .torrent/metalink URLs, peer discovery.

Measured aria2 behaviour these tests rely on (aria2 1.37): a checksum mismatch downloads the whole
file, verifies it, then fails with error 32 and an empty message, leaving the file and its control
file; adding it again with that control file fetches the whole file again. A ``.torrent`` at a plain
URL is followed by default (``follow-torrent=true``), which opens BitTorrent listening ports.
"""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys

import pytest

from aria2_sync import Aria2InputError, DownloadFailed, Progress, RestartPolicy
from aria2_sync.client import engine_of
from aria2_sync.daemon.ownership import free_port
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.engine.futures import DownloadResult
from aria2_sync.errors import ChecksumMismatch
from aria2_sync.safety import check_checksum, with_safety
from aria2_sync.validation import check_options
from tests.conftest import wait_for
from tests.support.bittorrent import exposed_sockets, sockets_of

SIZE = 3 * 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha-256=" + hashlib.sha256(data).hexdigest()


WRONG = "sha-256=" + "0" * 64


# -- the checksum value ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("sha-256=" + "AB" * 32, "sha-256=" + "ab" * 32),
        (" SHA-1 = " + "0" * 40 + " ", "sha-1=" + "0" * 40),
        ("md5=" + "f" * 32, "md5=" + "f" * 32),
        ("adler32=0a0b0c0d", "adler32=0a0b0c0d"),
        ("sha-512=" + "1" * 128, "sha-512=" + "1" * 128),
    ],
)
def test_a_good_checksum_is_normalised(value, normalised):
    assert check_checksum(value) == normalised


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0" * 64, "must be written ALGORITHM=HEX"),
        ("sha256=" + "0" * 64, "did you mean 'sha-256'?"),
        ("crc32=00000000", "use one of sha-1, sha-224, sha-256"),
        ("sha-256=" + "0" * 63, "has 63 hex digits: a sha-256 digest is 64 hex digits"),
        ("sha-1=" + "g" * 40, "is not hexadecimal"),
        ("md5=", "is not hexadecimal"),
        (b"md5=00", "must be a str"),
    ],
)
def test_a_bad_checksum_says_what_to_fix(value, words):
    with pytest.raises(Aria2InputError, match=None) as caught:
        check_checksum(value)
    assert words in str(caught.value)


def test_follow_and_checksum_become_options_and_contradictions_are_refused():
    assert with_safety(None, None, False) == {"follow-torrent": "false", "follow-metalink": "false"}
    assert with_safety({"split": 2}, WRONG, True) == {
        "split": 2,
        "checksum": WRONG,
        "follow-torrent": "true",
        "follow-metalink": "true",
    }
    # The caller's options may choose how to follow, when following is asked for.
    assert with_safety({"follow-torrent": "mem"}, None, True)["follow-torrent"] == "mem"
    assert with_safety({"follow-metalink": False}, None, False)["follow-metalink"] is False
    for options, follow in (({"follow-torrent": "true"}, False), ({"follow-metalink": "false"}, True)):
        with pytest.raises(Aria2InputError, match="follow=") as caught:
            with_safety(options, None, follow)
        assert "pass follow=True" in str(caught.value)
    with pytest.raises(Aria2InputError, match="give the checksum once"):
        with_safety({"checksum": "md5=" + "0" * 32}, WRONG, False)
    with pytest.raises(Aria2InputError, match="follow must be True or False"):
        with_safety(None, None, "yes")
    original = {"split": 2}
    with_safety(original, WRONG, False)
    assert original == {"split": 2}  # never changed


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"checksum": "sha-256=12"}, "a sha-256 digest is 64 hex digits"),
        ({"follow-torrent": "yes"}, "takes true, false or mem"),
        ({"follow-metalink": ["true"]}, "takes true, false or mem"),
        ({"seed-time": -1}, "takes a number >= 0 (minutes)"),
        ({"seed-time": "soon"}, "takes a number >= 0"),
        ({"seed-ratio": "nan"}, "takes a number >= 0"),
    ],
)
def test_option_values_that_decide_integrity_and_seeding_are_checked(options, words):
    with pytest.raises(Aria2InputError) as caught:
        check_options(options)
    assert words in str(caught.value)


def test_good_seed_and_follow_values_pass():
    assert check_options({"seed-time": 0, "seed-ratio": 1.5, "follow-torrent": True}) == {
        "seed-time": "0",
        "seed-ratio": "1.5",
        "follow-torrent": "true",
    }


# -- the policy, the error, the result ----------------------------------------------------------


def _failed(code: str) -> Progress:
    return Progress(gid="0123456789abcdef", status="error", error_code=code, error_message="")


def test_a_checksum_mismatch_is_restarted_once_by_default():
    policy = RestartPolicy()
    assert policy.decide(_failed("32"), 0).restart
    decision = policy.decide(_failed("32"), 1)
    assert not decision.restart
    assert "at most 1 restart(s) from scratch" in decision.reason and "error 32" in decision.reason
    assert RestartPolicy(checksum_restarts=2).decide(_failed("32"), 1).restart
    for policy in (RestartPolicy(checksum_restarts=0), RestartPolicy(max_restarts=0)):
        decision = policy.decide(_failed("32"), 0)
        assert not decision.restart and "not restarted" in decision.reason
    # A predicate replaces the rule, as for any code.
    assert not RestartPolicy(predicate=lambda progress: False).decide(_failed("32"), 0).restart
    with pytest.raises(Aria2InputError, match="checksum_restarts"):
        RestartPolicy(checksum_restarts=-1)


def test_the_failure_factory_picks_checksum_mismatch_for_error_32_and_it_pickles():
    error = DownloadFailed.of(
        "0123456789abcdef", "http://h/f", "32", "", "given up", retry_count=1, options={"checksum": WRONG}
    )
    assert type(error) is ChecksumMismatch and isinstance(error, DownloadFailed)
    assert error.expected == WRONG and error.retry_count == 1
    assert "checksum mismatch" in str(error) and "0" * 64 in str(error) and "sha-256" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ChecksumMismatch and copy.expected == WRONG and str(copy) == str(error)
    plain = DownloadFailed.of("0123456789abcdef", "http://h/f", "3", "Not found", "no", options={})
    assert type(plain) is DownloadFailed
    # Error 32 without a checksum option (a metalink's hash): still a mismatch, expected unknown.
    other = DownloadFailed.of("0123456789abcdef", "http://h/f", "32", "", "no")
    assert type(other) is ChecksumMismatch and other.expected is None


def test_the_result_says_what_was_verified():
    assert DownloadResult.verification({"checksum": "md5=" + "0" * 32}) == "md5 checksum (aria2)"
    assert DownloadResult.verification({"dir": "/tmp"}) is None
    result = DownloadResult("0123456789abcdef", "/f", 1, "http://h/f", verified="sha-256 checksum (aria2)")
    assert result.to_dict()["verified"] == "sha-256 checksum (aria2)"


# -- with aria2 ---------------------------------------------------------------------------------


def test_a_right_checksum_completes_and_the_result_says_it_was_verified(client, fault_server, tmp_path):
    url = fault_server.add_file("good.bin", size=SIZE)
    content = fault_server.content("good.bin")
    future = client.submit(url, tmp_path / "good.bin", checksum=sha256(content).upper().replace("SHA", "sha"))
    result = future.result(timeout=30)
    assert result.verified == "sha-256 checksum (aria2)" and result.retry_count == 0
    assert (tmp_path / "good.bin").read_bytes() == content
    assert client.rpc.get_option(future.gid)["checksum"] == sha256(content)  # what aria2 was given
    plain = client.submit(url, tmp_path / "plain.bin").result(timeout=30)
    assert plain.verified is None


def test_a_wrong_checksum_fails_with_its_own_error_after_one_restart_from_scratch(
    client_factory, fault_server, tmp_path
):
    client = client_factory(max_retries=3)  # (the budget allows more: the mismatch rule stops at one)
    url = fault_server.add_file("bad.bin", size=SIZE)
    future = client.submit(url, tmp_path / "bad.bin", checksum=WRONG)
    with pytest.raises(ChecksumMismatch) as caught:
        future.result(timeout=60)
    error = caught.value
    assert error.retry_count == 1 and error.error_code == "32" and error.expected == WRONG
    assert [a["error_code"] for a in error.attempts] == ["32", "32"]
    assert "0" * 64 in str(error) and "at most 1 restart(s) from scratch" in error.reason
    # Exactly one restart, and it started over: two whole-file GETs (no Range: nothing of the bad
    # file was kept), each sending the whole file.
    requests = fault_server.requests("bad.bin")
    assert [(r.method, r.range_header, r.bytes_sent) for r in requests] == [("GET", None, SIZE)] * 2
    assert fault_server.bytes_served("bad.bin") == 2 * SIZE
    # The file and its control file stay, as aria2 leaves them (the caller decides).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.bin", "bad.bin.aria2"]
    assert client.get_retry_info(future.gid)["retry_count"] == 1


def test_a_bad_checksum_value_is_refused_before_anything_is_sent(client, fault_server, tmp_path):
    url = fault_server.add_file("never.bin", size=1000)
    calls = (
        lambda: client.add_download(url, tmp_path / "a", checksum="sha-256=abc"),
        lambda: client.submit(url, tmp_path / "a", checksum="sha1=" + "0" * 40),
        lambda: client.add_batch_downloads([(url, tmp_path / "a"), (url, tmp_path / "b", "md5=xyz")]),
        lambda: client.add_download(url, tmp_path / "a", follow="no"),
    )
    for call in calls:
        with pytest.raises(Aria2InputError):
            call()
    with pytest.raises(Aria2InputError, match="item 1 of the batch"):
        calls[2]()
    assert fault_server.request_count("never.bin") == 0
    assert client.rpc.tell_waiting(0, 10, ["gid"]) == [] and client.rpc.tell_active(["gid"]) == []
    assert len(engine_of(client).ledger) == 0


def test_a_batch_carries_a_checksum_per_item_in_a_third_element(client, fault_server, tmp_path):
    urls = [fault_server.add_file(f"b{i}.bin", size=100_000 + i) for i in range(3)]
    right = sha256(fault_server.content("b0.bin"))
    items = [
        (urls[0], tmp_path / "b0.bin", right),
        (urls[1], tmp_path / "b1.bin"),  # the pair form still works, unverified
        [urls[2], tmp_path / "b2.bin", WRONG],
    ]
    client_policy = client.restart_policy
    assert client_policy.checksum_restarts == 1
    batch_id = client.add_batch_downloads(items)
    futures = client.batch_futures(batch_id)
    first, second = futures[0].result(timeout=30), futures[1].result(timeout=30)
    assert (first.verified, second.verified) == ("sha-256 checksum (aria2)", None)
    with pytest.raises(ChecksumMismatch):
        futures[2].result(timeout=60)
    assert fault_server.request_count("b2.bin") == 2 and fault_server.request_count("b0.bin") == 1
    # The item's checksum is its own: the others were not given it.
    assert "checksum" not in client.rpc.get_option(futures[1].gid)


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aria2_sync", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_the_cli_checksum_option(fault_server, tmp_path):
    url = fault_server.add_file("cli.bin", size=200_000)
    right = sha256(fault_server.content("cli.bin"))
    common = ("--no-progress", "--retry-delay", "0.05", "-d")
    ok = _cli("get", url, "--checksum", right, *common, str(tmp_path / "ok"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "ok" / "cli.bin").read_bytes() == fault_server.content("cli.bin")
    bad = _cli("get", url, "--checksum", WRONG, *common, str(tmp_path / "bad"), cwd=tmp_path)
    assert bad.returncode == 1, bad.stderr
    assert "FAILED" in bad.stderr and "checksum mismatch" in bad.stderr and "0" * 64 in bad.stderr
    assert "1 restarts" in bad.stdout
    malformed = _cli("get", url, "--checksum", "sha-256=12", "-d", str(tmp_path / "m"), cwd=tmp_path)
    assert malformed.returncode == 2 and "64 hex digits" in malformed.stderr
    two = _cli("get", url, url, "--checksum", right, cwd=tmp_path)
    assert two.returncode == 2 and "exactly one URL" in two.stderr


# -- safe by default ----------------------------------------------------------------------------


def test_the_embedded_daemon_has_peer_discovery_off_unless_asked(daemon, daemon_factory):
    assert daemon.options == {}  # (the conftest daemon: nothing of ours turns it off)
    answer = _global_options(daemon)
    assert {key: answer[key] for key in Aria2Daemon.PEER_DISCOVERY_OFF} == dict(
        Aria2Daemon.PEER_DISCOVERY_OFF
    )
    opted_in = daemon_factory(**{"enable-dht": True, "dht-listen-port": free_port()})
    assert _global_options(opted_in)["enable-dht"] == "true"
    assert _global_options(opted_in)["bt-enable-lpd"] == "false"


def _global_options(daemon: Aria2Daemon) -> dict:
    from aria2_sync.rpc.transport import Transport

    transport = Transport(daemon.rpc_url, daemon.secret)
    try:
        return transport.call("aria2.getGlobalOption")
    finally:
        transport.close()


def test_a_torrent_at_a_url_is_saved_as_a_file_by_default_and_opens_no_port(
    client, daemon, fault_server, torrent_factory, tmp_path
):
    torrent = torrent_factory("payload.bin", b"x" * 50_000)
    url = fault_server.add_file("x.torrent", data=torrent.data)
    before = sockets_of(daemon.pid)
    future = client.submit(url, tmp_path / "x.torrent")
    result = future.result(timeout=30)
    assert (tmp_path / "x.torrent").read_bytes() == torrent.data and result.size == len(torrent.data)
    status = client.rpc.tell_status(future.gid)
    assert status["status"] == "complete" and "followedBy" not in status
    assert sockets_of(daemon.pid) == before  # no BitTorrent listening port, no UDP
    assert exposed_sockets(daemon.pid) == []


def test_follow_true_follows_a_torrent_and_shows_what_bittorrent_listens_on(
    daemon_factory, client_factory, fault_server, torrent_factory, tmp_path
):
    port = free_port()
    daemon = daemon_factory(**{"listen-port": port, "seed-time": 0})
    client = client_factory(rpc_url=daemon.rpc_url, rpc_secret=daemon.secret)
    torrent = torrent_factory("followed.bin", b"y" * 50_000)
    url = fault_server.add_file("y.torrent", data=torrent.data)
    assert exposed_sockets(daemon.pid) == []  # no port before a BitTorrent download
    gid = client.add_download(url, options={"dir": str(tmp_path)}, follow=True)
    status = wait_for(
        lambda: (s := client.rpc.tell_status(gid)).get("followedBy") and s,
        what="the .torrent download to be followed",
    )
    assert status["status"] == "complete" and len(status["followedBy"]) == 1
    assert client.rpc.get_option(gid)["follow-torrent"] == "true"
    # What a BitTorrent download exposes with the embedded defaults: the TCP listening port, on all
    # interfaces (IPv4 and IPv6); no UDP socket (DHT off), no LPD multicast.
    exposed = wait_for(lambda: exposed_sockets(daemon.pid), what="the BitTorrent listening port")
    assert sorted(exposed) == [("tcp", "0.0.0.0", port), ("tcp6", "::", port)]
    assert not [entry for entry in sockets_of(daemon.pid) if entry[0].startswith("udp")]
    client.rpc.force_remove(status["followedBy"][0])
