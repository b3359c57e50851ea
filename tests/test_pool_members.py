"""A pool's view of its daemons (``aria2_sync.rpc.members``): placement, health, where GIDs are.

Pure bookkeeping, on a clock the test moves: no daemon is needed to say which daemon a download
goes to, when a silent daemon is failed over, or which copies a returning daemon must lose. The
same rules against real daemons: ``tests/test_pool.py``.
"""

from __future__ import annotations

from aria2_sync.errors import Aria2AuthError, Aria2ConnectionError
from aria2_sync.rpc.members import FAILED_OVER, MAX_RETRY_PAUSE, REFUSED, UNREACHABLE, UP, DaemonPool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pool(
    weights: tuple[float, ...] = (1.0, 1.0, 1.0), failover_after: float = 10.0
) -> tuple[DaemonPool, Clock]:
    clock = Clock()
    daemons = [(f"http://127.0.0.1:{6800 + n}/jsonrpc", "s3cret", w) for n, w in enumerate(weights)]
    return DaemonPool(daemons, failover_after=failover_after, clock=clock), clock


def _lost(url: str = "http://127.0.0.1:6800/jsonrpc") -> Aria2ConnectionError:
    return Aria2ConnectionError(url, "Connection refused")


def test_new_downloads_go_to_the_least_loaded_daemon_for_its_weight() -> None:
    pool, _ = _pool(weights=(1.0, 3.0))
    first, second = pool.members
    pool.loaded(first, 2)
    pool.loaded(second, 3)  # 3 / 3 = 1 < 2 / 1
    placed = [pool.place() for _ in range(8)]
    assert placed.count(second) == 6 and placed.count(first) == 2  # (2+2)/1 == (3+6)/3 at the end


def test_a_daemon_in_trouble_gets_nothing_new_and_none_answering_places_nowhere() -> None:
    pool, _ = _pool()
    a, b, c = pool.members
    pool.failed(a, _lost())
    pool.failed(b, Aria2AuthError(1, "Unauthorized", "aria2.tellStatus"))
    assert {pool.place() for _ in range(5)} == {c}
    assert pool.place(exclude=[c]) is None


def test_a_silent_daemon_is_failed_over_only_after_failover_after_and_is_up_once_it_answers() -> None:
    pool, clock = _pool(failover_after=10.0)
    a = pool.members[0]
    assert pool.state(a) == UP
    clock.now += 4
    pool.failed(a, _lost())
    assert pool.state(a) == UNREACHABLE
    clock.now += 6.5  # 10.5 s since its last answer
    assert pool.state(a) == FAILED_OVER
    pool.answered(a)
    assert pool.state(a) == UP
    assert pool.needs_sweep(a)  # (trouble since the last sweep: it may hold moved copies)
    pool.swept(a, [])
    assert not pool.needs_sweep(a)


def test_a_daemon_refusing_the_secret_is_never_failed_over() -> None:
    pool, clock = _pool(failover_after=1.0)
    a = pool.members[0]
    pool.failed(a, Aria2AuthError(1, "Unauthorized", "system.multicall"))
    clock.now += 3600
    assert pool.state(a) == REFUSED
    assert pool.health()[0].state == "refused"


def test_a_daemon_in_trouble_rests_for_a_pause_that_doubles_up_to_its_bound() -> None:
    pool, clock = _pool()
    a = pool.members[0]
    pauses = []
    for _ in range(8):
        pool.failed(a, _lost())
        pauses.append(a.pause)
        assert pool.resting(a)
        clock.now += a.pause
        assert not pool.resting(a)
    assert pauses[:3] == [0.25, 0.5, 1.0] and pauses[-1] == MAX_RETRY_PAUSE
    pool.answered(a)
    assert a.pause == 0 and not pool.resting(a)


def test_a_download_that_moves_leaves_its_old_daemon_to_be_swept_of_it() -> None:
    pool, _ = _pool()
    a, b, _c = pool.members
    pool.settle("00000000000000a1", a)
    pool.swept(a, [])
    pool.settle("00000000000000a1", b)
    assert pool.home("00000000000000a1") is b
    assert pool.evicted(a) == {"00000000000000a1"} and pool.needs_sweep(a)
    pool.swept(a, ["00000000000000a1"])
    assert pool.evicted(a) == set()
    pool.settle("00000000000000a1", a)  # (moved back: a holds it rightfully again)
    assert pool.evicted(a) == set() and pool.evicted(b) == {"00000000000000a1"}


def test_an_add_whose_answer_was_lost_marks_the_daemon_as_maybe_holding_it() -> None:
    pool, _ = _pool()
    a, b, _c = pool.members
    pool.may_hold("00000000000000b2", a)
    pool.settle("00000000000000b2", b)
    assert pool.evicted(a) == {"00000000000000b2"}


def test_health_names_each_daemon_without_credentials() -> None:
    pool = DaemonPool([("http://user:pw@127.0.0.1:6800/jsonrpc", "s3cret", 2.0)])
    pool.settle("00000000000000c3", pool.members[0])
    (health,) = pool.health()
    assert (
        "pw" not in health.rpc_url and "s3cret" not in repr(health) and "s3cret" not in repr(pool.members[0])
    )
    assert (health.state, health.weight, health.downloads) == ("up", 2.0, 1)


def test_no_daemon_is_failed_over_while_none_answers() -> None:
    """Every daemon silent: this host's own network, most likely; nothing is moved."""
    pool, clock = _pool(failover_after=5.0)
    for member in pool.members:
        pool.failed(member, _lost())
    clock.now += 60
    assert [pool.state(m) for m in pool.members] == [UNREACHABLE] * 3
    pool.answered(pool.members[2])
    assert [pool.state(m) for m in pool.members] == [FAILED_OVER, FAILED_OVER, UP]


def test_a_call_given_up_on_flags_its_daemon_for_a_sweep_when_it_returns() -> None:
    from concurrent.futures import Future

    pool, _ = _pool()
    a = pool.members[0]
    pool.swept(a, [])
    late: Future[object] = Future()
    pool.note_stuck(a, late)
    assert pool.stuck(a) and not pool.needs_sweep(a)
    late.set_result("OK")  # (an add that landed after all)
    assert not pool.stuck(a) and pool.needs_sweep(a)


def test_a_copy_left_on_a_silent_daemon_is_swept_when_it_answers() -> None:
    pool, _ = _pool()
    a, b, _c = pool.members
    pool.settle("00000000000000d4", a)
    pool.swept(a, [])
    pool.failed(a, _lost())
    pool.may_hold("00000000000000d4", a)  # (cancelled while a could not be reached)
    assert "00000000000000d4" in pool.evicted(a) and pool.needs_sweep(a)


def test_of_several_answers_the_running_copy_wins_over_an_old_result() -> None:
    from aria2_sync.rpc.pooled import _best

    pool, _ = _pool()
    a, b, c = pool.members
    answers = [(a, {"status": "error"}), (b, {"status": "active"}), (c, _lost())]
    assert _best(answers) == (b, {"status": "active"})
    assert _best([(a, {"status": "removed"}), (b, {"status": "complete"})]) == (b, {"status": "complete"})
    assert _best([(c, _lost())]) is None
