"""A pool of aria2 daemons behind one client (issue 16), against real aria2c "hosts".

Each host is its own aria2c on its own port of 127.0.0.1 with its own download directory and
session file (:mod:`tests.support.daemons`); files come from the local fault server. What a
daemon holds is read from that daemon's own RPC, past the client under test.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from typing import Callable

import pytest

from aria2_sync import Aria2Client
from aria2_sync.errors import Aria2ConnectionError, Aria2InputError
from tests.conftest import wait_for
from tests.support.daemons import Host

KiB = 1 << 10
#: What aria2 calls a download not yet done (and still able to write).
UNFINISHED = ("active", "waiting", "paused")


def test_hosts_are_separate_daemons_that_can_be_frozen_killed_and_restarted_with_their_session(
    aria2_hosts, fault_server
):
    """The fixture itself: a frozen host accepts connections and answers nothing; a killed one
    refuses connections; a restarted one is on its port again with its session restored."""
    first, second = aria2_hosts(2)
    assert first.port != second.port and first.pid != second.pid and first.secret != second.secret
    assert first.download_dir != second.download_dir and first.state_dir != second.state_dir
    gid = secrets.token_hex(8)
    url = fault_server.add_file("s.bin", size=4 * KiB)
    assert first.call("aria2.addUri", [[url], {"gid": gid, "pause": "true"}]) == gid

    first.freeze()
    assert first.accepts_connections()
    with pytest.raises(Aria2ConnectionError):
        first.call("aria2.getVersion", timeout=0.5)
    assert second.call("aria2.getVersion")["version"]
    first.thaw()
    assert first.call("aria2.getVersion")["version"]

    session = first.daemon.session_file
    wait_for(lambda: gid in open(session).read(), timeout=10, what="the session file to name the download")
    port = first.port
    first.kill()
    assert not first.accepts_connections()
    first.restart()
    assert first.port == port and first.running
    assert first.status() == {gid: "paused"}
    assert os.path.realpath(first.daemon.download_dir) == os.path.realpath(first.download_dir)

    second.freeze()  # left frozen: the fixture must thaw and stop it, by PID, within its bounds


# -- helpers ------------------------------------------------------------------------------------


def _pool(daemons, **options) -> Aria2Client:
    """A pool client, quiet, with quick ticks and quick transport retries unless told otherwise."""
    options.setdefault("verbose", False)
    options.setdefault("retry_delay", 0.05)
    options.setdefault("poll_interval", 0.1)
    return Aria2Client.pool(daemons, **options)


def _pairs(hosts: list[Host]) -> list[tuple[str, str]]:
    return [(host.rpc_url, host.secret) for host in hosts]


def _files(fault_server, count: int, size: int, prefix: str) -> list[tuple[str, str]]:
    """``count`` files of ``size`` bytes on the fault server: ``(name, url)`` each."""
    return [
        (name, fault_server.add_file(name, size=size))
        for name in (f"{prefix}{i:02d}.bin" for i in range(count))
    ]


def _state(client: Aria2Client, host: Host) -> str | None:
    """The pool's state for ``host`` in ``client.daemons()`` (found by its port), None if absent."""
    for health in client.daemons():
        if f":{host.port}/" in health.rpc_url:
            return str(health.state)
    return None


def _held(hosts: list[Host], gids: set[str]) -> dict[str, dict[str, str]]:
    """``{host name: {gid: status}}`` of the downloads among ``gids`` each host holds, each read
    from the host's own RPC."""
    return {host.name: {gid: s for gid, s in host.status().items() if gid in gids} for host in hosts}


def _held_in_all(hosts: list[Host], gids: set[str], what: str) -> dict[str, dict[str, str]]:
    """:func:`_held`, once ``hosts`` together hold every one of ``gids`` (bounded wait)."""
    wanted = frozenset(gids)

    def all_held() -> dict[str, dict[str, str]] | None:
        view = _held(hosts, set(wanted))
        return view if sum(map(len, view.values())) == len(wanted) else None

    return wait_for(all_held, timeout=10, what=what)


def _no_gid_unfinished_on_two(views: dict[str, dict[str, str]]) -> None:
    """Fail if one GID is active, waiting or paused on two hosts in the same reading."""
    seen: dict[str, str] = {}
    for name, statuses in views.items():
        for gid, status in statuses.items():
            if status in UNFINISHED:
                assert gid not in seen, f"GID {gid} {status} on {name} and unfinished on {seen[gid]} at once"
                seen[gid] = name


def _observe(seconds: float, check: Callable[[], object], interval: float = 0.05) -> None:
    """Run ``check`` (which asserts) over ``seconds``: what must not happen, never does."""
    deadline = time.monotonic() + seconds
    while True:
        check()
        if time.monotonic() > deadline:
            return
        time.sleep(interval)


def _under(path: str | None, directory) -> bool:
    return path is not None and os.path.realpath(path).startswith(os.path.realpath(directory) + os.sep)


# -- placement ----------------------------------------------------------------------------------


def test_sixty_downloads_are_spread_over_three_daemons_with_unique_gids_and_correct_bytes(
    aria2_hosts, fault_server
):
    hosts = aria2_hosts(3)
    files = _files(fault_server, 60, 32 * KiB, "spread")
    with _pool([host.daemon for host in hosts]) as client:  # (started Aria2Daemon objects)
        batch = client.add_batch_downloads([url for _, url in files])
        futures = client.batch_futures(batch)
        progress = client.wait_for_batch(batch, timeout=30)
        assert progress is not None and progress.is_completed and progress.completed_count == 60
        results = [future.result(timeout=5) for future in futures]
        gids = {result.gid for result in results}
        assert len(gids) == 60
        held = _held(hosts, gids)
        where = {gid: name for name, statuses in held.items() for gid in statuses}
        assert sorted(where) == sorted(gids), "each download on exactly one daemon"
        assert sum(len(statuses) for statuses in held.values()) == 60
        for host in hosts:
            assert len(held[host.name]) >= 10, {name: len(statuses) for name, statuses in held.items()}
            assert set(held[host.name].values()) == {"complete"}
        by_name = {host.name: host for host in hosts}
        for (name, _), result in zip(files, results):
            host = by_name[where[result.gid]]
            assert client.daemon_of(result.gid) == host.rpc_url
            assert _under(result.path, host.download_dir), (result.path, host)
            assert result.size == 32 * KiB
            with open(result.path, "rb") as written:
                assert written.read() == fault_server.content(name)
    assert [health for health in client.daemons() if health.state != "up"] == []


def test_placement_follows_the_weights(aria2_hosts, fault_server):
    light, heavy = aria2_hosts(2)
    files = _files(fault_server, 40, 4 * KiB, "weights")
    with _pool(_pairs([light, heavy]), weights=(1, 3)) as client:
        batch = client.add_batch_downloads([url for _, url in files], options={"pause": "true"})
        gids = {future.gid for future in client.batch_futures(batch)}
        held = _held_in_all([light, heavy], gids, "both daemons to hold the 40 downloads")
        counts = {name: len(statuses) for name, statuses in held.items()}
        assert counts[heavy.name] >= 2 * counts[light.name] and counts[light.name] >= 5, counts
        assert {status for statuses in held.values() for status in statuses.values()} == {"paused"}
        assert sorted(float(health.weight) for health in client.daemons()) == [1.0, 3.0]


def test_a_daemon_that_is_down_when_adding_receives_nothing(aria2_hosts, fault_server):
    """Killed while the pool still takes it for up (an idle pool asks nothing), its share of a
    batch goes to the others; then known to be down, it is given nothing more."""
    hosts = aria2_hosts(3)
    down, up = hosts[1], [hosts[0], hosts[2]]
    files = _files(fault_server, 30, 4 * KiB, "down")
    with _pool(_pairs(hosts)) as client:
        down.kill()
        gids: set[str] = set()
        for batches in (1, 2):
            batch = client.add_batch_downloads([url for _, url in files], options={"pause": "true"})
            gids |= {future.gid for future in client.batch_futures(batch)}
            assert len(gids) == 30 * batches
            held = _held_in_all(up, gids, "the two daemons that answer to hold every download")
            assert all(len(statuses) >= 5 * batches for statuses in held.values()), held
            assert {client.daemon_of(gid) for gid in gids} == {hosts[0].rpc_url, hosts[2].rpc_url}
            assert _state(client, down) == "unreachable"


# -- failover and failback ----------------------------------------------------------------------

#: Downloads on the daemons to be lost stay mid-flight for long enough: their aria2c reads at most
#: this (all downloads together), about 13 KiB/s for each of its 5 active 1 MiB downloads. Even the
#: burst aria2's limiter allows after a pause (its speed reading falls while SIGSTOPped) leaves the
#: revived copies far from complete, so a copy the pool does not remove is seen unfinished.
LIMITED = {"max-overall-download-limit": "64K"}


def test_a_killed_and_a_frozen_daemon_lose_no_download_and_come_back_without_duplicates(
    aria2_hosts, fault_server
):
    """The issue's test: 60 downloads over three hosts; one SIGKILLed and one SIGSTOPped
    mid-batch; every download completes with its bytes on the third; then the killed one is
    restarted with its session and the frozen one thawed: neither keeps a re-homed download."""
    killed, frozen = aria2_hosts(2, **LIMITED)
    (survivor,) = aria2_hosts(1)
    hosts = [killed, survivor, frozen]
    size = 1 << 20
    files = _files(fault_server, 60, size, "fail")
    with _pool(_pairs(hosts), failover_after=2.0, timeout=1.0) as client:
        batch = client.add_batch_downloads([url for _, url in files])
        futures = client.batch_futures(batch)
        ours = {future.gid for future in futures}
        assert len(ours) == 60

        def lost_hosts_have_started() -> bool:
            return all(
                any(
                    int(item["completedLength"]) > 0
                    for item in host.call("aria2.tellActive", [["completedLength"]])
                )
                for host in (killed, frozen)
            )

        wait_for(lost_hosts_have_started, timeout=15, what="downloads in flight on the daemons to be lost")
        before = _held(hosts, ours)
        assert all(before[host.name] for host in hosts), "every daemon was given some downloads"
        lost = {gid for host in (killed, frozen) for gid, s in before[host.name].items() if s in UNFINISHED}
        killed.kill()
        frozen.freeze()
        wait_for(
            lambda: _state(client, killed) == _state(client, frozen) == "failed_over",
            timeout=15,
            what="both lost daemons to be failed over",
        )
        progress = client.wait_for_batch(batch, timeout=30)
        assert progress is not None and progress.is_completed and progress.completed_count == 60, progress
        results = [future.result(timeout=5) for future in futures]
        for (name, _), future, result in zip(files, futures, results):
            assert client.future(result.gid) is future
            assert result.size == size
            with open(result.path, "rb") as written:
                assert written.read() == fault_server.content(name), name
            if result.gid in lost:  # started over in the survivor's own directory
                assert _under(result.path, survivor.download_dir), (result.path, survivor)
                assert client.daemon_of(result.gid) == survivor.rpc_url
                assert client.get_retry_info(result.gid) is not None
        assert set(_held([survivor], lost)[survivor.name].values()) == {"complete"}

        killed.restart()  # same port, the session saved before the SIGKILL
        frozen.thaw()

        def check() -> dict[str, dict[str, str]]:
            views = _held(hosts, ours)
            _no_gid_unfinished_on_two(views)
            for host in (killed, frozen):
                done_there = {gid for gid, s in views[host.name].items() if s == "complete"} & lost
                assert not done_there, f"re-homed downloads completed again on {host.name}: {done_there}"
            return views

        def swept(host: Host) -> Callable[[], bool]:
            def done() -> bool:
                views = check()
                return _state(client, host) == "up" and not set(views[host.name].values()) & set(UNFINISHED)

            return done

        wait_for(
            swept(killed), timeout=10, what="the restarted daemon to drop its copies of re-homed downloads"
        )
        _observe(1.0, check)  # (the thawed one: see the next test)


def test_a_frozen_daemon_thawed_while_the_pool_is_idle_drops_its_copies(aria2_hosts, fault_server):
    (frozen,) = aria2_hosts(1, **LIMITED)
    (survivor,) = aria2_hosts(1)
    files = _files(fault_server, 20, 1 << 20, "thaw")
    with _pool(_pairs([frozen, survivor]), failover_after=2.0, timeout=1.0) as client:
        batch = client.add_batch_downloads([url for _, url in files])
        ours = {future.gid for future in client.batch_futures(batch)}
        wait_for(
            lambda: any(
                int(i["completedLength"]) for i in frozen.call("aria2.tellActive", [["completedLength"]])
            ),
            timeout=15,
            what="downloads in flight on the daemon to be frozen",
        )
        lost = frozen.unfinished() & ours
        assert lost
        frozen.freeze()
        wait_for(lambda: _state(client, frozen) == "failed_over", timeout=15, what="the failover")
        assert client.wait_for_batch(batch, timeout=30).completed_count == 20
        frozen.thaw()
        wait_for(
            lambda: not frozen.unfinished() & lost and _state(client, frozen) == "up",
            timeout=7,  # (failover_after + the pool's longest pause before asking a daemon again)
            what="the thawed daemon to drop its copies of re-homed downloads",
        )


# -- a daemon that refuses the secret -----------------------------------------------------------


def test_a_daemon_known_to_refuse_the_secret_is_reported_and_never_given_a_download(
    aria2_hosts, fault_server, caplog
):
    good, refusing = aria2_hosts(2)
    files = _files(fault_server, 10, 4 * KiB, "refused")
    pool = [(good.rpc_url, good.secret), (refusing.rpc_url, secrets.token_hex(16))]
    with _pool(pool, timeout=5.0) as client:  # (aria2 answers a wrong secret 1-2 s late)
        client.get_global_stats()  # (asks every daemon: an idle pool asks nothing by itself)
        assert _state(client, refusing) == "refused" and _state(client, good) == "up"
        batch = client.add_batch_downloads([url for _, url in files])
        progress = client.wait_for_batch(batch, timeout=20)
        assert progress is not None and progress.completed_count == 10
        gids = {future.gid for future in client.batch_futures(batch)}
        assert {client.daemon_of(gid) for gid in gids} == {good.rpc_url}
        assert len(_held([good], gids)[good.name]) == 10
        assert refusing.status() == {}  # (read with its real secret)
    assert any(
        record.levelno >= logging.WARNING and f":{refusing.port}" in record.getMessage()
        for record in caplog.records
    ), "the refusal is logged, naming the daemon"


def test_adds_that_meet_a_daemon_refusing_the_secret_go_to_the_one_that_answers(aria2_hosts, fault_server):
    good, refusing = aria2_hosts(2)
    files = _files(fault_server, 12, 4 * KiB, "first")
    pool = [(good.rpc_url, good.secret), (refusing.rpc_url, secrets.token_hex(16))]
    with _pool(pool, timeout=5.0) as client:
        batch = client.add_batch_downloads([url for _, url in files[:10]])
        assert client.wait_for_batch(batch, timeout=20).completed_count == 10
    with _pool(pool, timeout=5.0) as client:
        futures = [client.submit(url) for _, url in files[10:]]
        assert [future.result(timeout=20).size for future in futures] == [4 * KiB] * 2
    assert refusing.status() == {}


def test_downloads_on_a_daemon_that_starts_refusing_the_secret_are_not_re_homed(aria2_hosts, fault_server):
    """A daemon that answers is not lost: one restarted with another secret keeps its downloads,
    however long it refuses ours (here well beyond ``failover_after``), and no copy is made
    elsewhere."""
    other, changed = aria2_hosts(2)
    files = _files(fault_server, 10, 4 * KiB, "changed")
    failover_after = 4.0  # beyond the restart and aria2's late answer to a wrong secret
    with _pool(_pairs([other, changed]), failover_after=failover_after, timeout=5.0) as client:
        batch = client.add_batch_downloads([url for _, url in files], options={"pause": "true"})
        gids = {future.gid for future in client.batch_futures(batch)}
        held = _held_in_all([other, changed], gids, "the two daemons to hold the 10 downloads")
        on_changed = set(held[changed.name])
        assert on_changed, held
        changed.restart(secret=secrets.token_hex(16))  # (stopped with SIGTERM: the session is saved)
        wait_for(lambda: _state(client, changed) == "refused", timeout=15, what="the daemon to be refused")

        def nothing_re_homed() -> None:
            assert _state(client, changed) != "failed_over"
            assert not set(other.status()) & on_changed, "downloads of a refusing daemon were re-homed"

        _observe(failover_after + 2.0, nothing_re_homed)
        assert {client.daemon_of(gid) for gid in on_changed} == {changed.rpc_url}
        assert _held([changed], gids)[changed.name] == dict.fromkeys(on_changed, "paused")


# -- arguments ----------------------------------------------------------------------------------

_URLS = [f"http://127.0.0.1:{port}/jsonrpc" for port in (9, 19)]  # (nothing is sent to them)


@pytest.mark.parametrize(
    "daemons, options",
    [
        ([], {}),
        ([(_URLS[0], None), (_URLS[0], None)], {}),
        ([(_URLS[0], "a"), (_URLS[0], "b")], {}),
        ([(_URLS[0], None), (_URLS[1], None)], {"weights": (1,)}),
        ([(_URLS[0], None), (_URLS[1], None)], {"weights": (1, 2, 3)}),
        ([(_URLS[0], None), (_URLS[1], None)], {"weights": (0, 1)}),
        ([(_URLS[0], None), (_URLS[1], None)], {"weights": (1, -2)}),
        ([(_URLS[0], None), (_URLS[1], None)], {"weights": (float("nan"), 1)}),
        ([(_URLS[0], None)], {"failover_after": 0}),
        ([(_URLS[0], None)], {"failover_after": -1.0}),
    ],
    ids=[
        "no daemons",
        "one URL twice",
        "one URL twice with two secrets",
        "too few weights",
        "too many weights",
        "a zero weight",
        "a negative weight",
        "a NaN weight",
        "failover_after zero",
        "failover_after negative",
    ],
)
def test_bad_pool_arguments_are_refused_before_anything_is_sent(daemons, options):
    with pytest.raises(Aria2InputError):
        _pool(daemons, **options).close()
