"""The restart policy: which failures restart, the budget, the backoff, and its validation."""

import pytest

from aria2_sync import Aria2InputError, Progress, RestartPolicy


def failed(code: str, message: str = "boom") -> Progress:
    return Progress(gid="0123456789abcdef", status="error", error_code=code, error_message=message)


@pytest.mark.parametrize("code", ["1", "2", "5", "6", "19", "22", "29"])
def test_transient_errors_restart(code):
    decision = RestartPolicy().decide(failed(code), restarts_done=0)
    assert decision.restart and decision.reason is None


# (32, a checksum mismatch, is restarted once: tests/test_integrity.py)
@pytest.mark.parametrize("code", ["3", "4", "8", "9", "13", "16", "24", "28"])
def test_permanent_errors_do_not_restart_and_say_why(code):
    decision = RestartPolicy().decide(failed(code, "Resource not found"), restarts_done=0)
    assert not decision.restart
    assert f"error {code}" in decision.reason and "not restartable" in decision.reason


def test_the_budget_is_spent_after_max_restarts():
    policy = RestartPolicy(max_restarts=2)
    assert policy.decide(failed("1"), 1).restart
    decision = policy.decide(failed("1"), 2)
    assert not decision.restart and "reached max retries (2)" in decision.reason


def test_backoff_doubles_from_the_base_and_is_capped():
    policy = RestartPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy.delay(k) for k in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [RestartPolicy(base_delay=0.5).decide(failed("1"), k).delay for k in range(3)] == [0.5, 1.0, 2.0]


def test_own_codes_and_own_predicate():
    assert RestartPolicy(restartable_codes=[3]).decide(failed("3"), 0).restart
    assert not RestartPolicy(restartable_codes={3}).decide(failed("1"), 0).restart
    picky = RestartPolicy(predicate=lambda p: "flaky" in (p.error_message or ""))
    assert picky.decide(failed("3", "flaky mirror"), 0).restart
    assert not picky.decide(failed("1", "solid failure"), 0).restart
    assert not picky.decide(failed("1", "flaky"), 3).restart  # the budget still holds


def test_a_failure_without_a_code_is_not_restarted():
    assert not RestartPolicy().decide(Progress(gid="0123456789abcdef", status="error"), 0).restart


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_restarts": -1},
        {"max_restarts": 1.5},
        {"max_restarts": True},
        {"base_delay": -1},
        {"base_delay": "1"},
        {"base_delay": float("nan")},
        {"max_delay": float("inf")},
        {"max_delay": -2},
        {"restartable_codes": ["x"]},
        {"restartable_codes": 5},
        {"predicate": "not callable"},
    ],
)
def test_bad_policies_are_input_errors(kwargs):
    with pytest.raises(Aria2InputError):
        RestartPolicy(**kwargs)
