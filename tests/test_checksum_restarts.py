"""``RestartPolicy.checksum_restarts`` counts the restarts that followed a checksum mismatch
(aria2's error 32), not every restart: a mismatch after a network restart is still restarted
once, and a network restart after a mismatch does not buy a second one.

Unit tests of the policy's keyword and of the count the engine hands it, then both orders against
a real aria2c and the fault server (aria2 gives up at its first failed try, so every failure
reaches the client).
"""

from __future__ import annotations

import pytest

from aria2_sync import Progress, RestartPolicy
from aria2_sync.errors import ChecksumMismatch
from aria2_sync.policy import TRANSIENT_ERROR_CODES
from tests.conftest import GIVE_UP_AT_ONCE
from tests.support.fault_server import Slow, Status

SIZE = 256 * 1024
WRONG = "sha-256=" + "0" * 64


def _failed(code: str) -> Progress:
    return Progress(gid="0123456789abcdef", status="error", error_code=code, error_message="")


def test_the_policy_bounds_the_restarts_after_a_mismatch_apart_from_the_others():
    policy = RestartPolicy(max_restarts=3)
    # One network restart before: the mismatch is still restarted (its first).
    assert policy.decide(_failed("32"), 1, checksum_restarts_done=0).restart
    decision = policy.decide(_failed("32"), 2, checksum_restarts_done=1)
    assert not decision.restart
    assert "at most 1 restart(s) from scratch, and this download had 1 after one" in decision.reason
    # The budget of all restarts still holds.
    decision = policy.decide(_failed("32"), 3, checksum_restarts_done=0)
    assert not decision.restart and "reached max retries (3)" in decision.reason
    assert RestartPolicy(checksum_restarts=2).decide(_failed("32"), 2, checksum_restarts_done=1).restart
    assert not RestartPolicy(checksum_restarts=0).decide(_failed("32"), 0, checksum_restarts_done=0).restart
    # Other codes do not look at the count.
    assert policy.decide(_failed("2"), 2, checksum_restarts_done=1).restart


def test_callers_without_the_count_and_predicates_keep_working():
    policy = RestartPolicy()
    # decide(progress, restarts_done) as before: every restart counts against checksum_restarts.
    assert policy.decide(_failed("32"), 0).restart
    assert not policy.decide(_failed("32"), 1).restart
    assert policy.decide(_failed("2"), 1).restart
    # A predicate replaces the rule, with or without the count.
    always = RestartPolicy(predicate=lambda progress: True)
    assert always.decide(_failed("32"), 2, checksum_restarts_done=2).restart
    assert not always.decide(_failed("32"), 3, checksum_restarts_done=0).restart  # (budget)
    never = RestartPolicy(predicate=lambda progress: False)
    assert not never.decide(_failed("32"), 0, checksum_restarts_done=0).restart


@pytest.mark.integration
@pytest.mark.parametrize(
    "order",
    ["network error, then mismatches", "mismatch, network error, mismatch"],
)
def test_a_mismatch_gets_its_one_restart_whatever_came_before(daemon_factory, fault_server, tmp_path, order):
    from aria2_sync import Aria2Client

    daemon = daemon_factory(**GIVE_UP_AT_ONCE)
    url = fault_server.add_file("bad.bin", size=SIZE)
    if order == "network error, then mismatches":
        fault_server.add_faults("bad.bin", Status(503))
        expected = ["503", "32", "32"]
    else:
        fault_server.add_faults("bad.bin", Slow(10**9), Status(503))  # (Slow(10**9): served as is)
        expected = ["32", "503", "32"]
    client = Aria2Client(daemon.rpc_url, daemon.secret, max_retries=3, verbose=False, retry_delay=0.05)
    try:
        future = client.submit(url, tmp_path / "bad.bin", checksum=WRONG)
        with pytest.raises(ChecksumMismatch) as caught:
            future.result(timeout=60)
        codes = [a["error_code"] for a in caught.value.attempts]
        network = codes[expected.index("503")]
        assert int(network) in TRANSIENT_ERROR_CODES
        assert codes == [network if code == "503" else code for code in expected]
        assert caught.value.retry_count == 2  # one restart after each of the first two failures
        assert "at most 1 restart(s) from scratch, and this download had 1 after one" in caught.value.reason
    finally:
        client.close()
