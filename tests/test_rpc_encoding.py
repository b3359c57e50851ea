"""The JSON text of requests: a read's multicall written directly is what ``json.dumps`` writes.

aria2 must see the same request whichever way it was written, so each case is compared, byte
for byte, with ``json.dumps`` of the envelope that :mod:`aria2_sync.rpc.encoding` would have built
as dicts and lists; and a read's multicall is checked to leave no container per call for the
cyclic garbage collector to track.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from aria2_sync.rpc.encoding import multicall_text, request_text

KEYS = ("gid", "status", "totalLength", "completedLength", "downloadSpeed")


def _as_dumped(request_id: int, calls: list[tuple[str, Any]], secret: str | None) -> str:
    token = [] if secret is None else [f"token:{secret}"]
    inner = [
        {"methodName": m, "params": list(a) if m.startswith("system.") else [*token, *a]} for m, a in calls
    ]
    payload = {"jsonrpc": "2.0", "id": request_id, "method": "system.multicall", "params": [inner]}
    return json.dumps(payload, separators=(",", ":"))


READS = [("aria2.tellStatus", (f"{n:016x}", KEYS)) for n in range(5)]
QUOTING = [("aria2.tellStatus", ('gid"with\\quotes\n', ("é", "\u2603", "\x00")))]
MIXED = [
    ("aria2.tellStatus", ("0000000000000001",)),
    ("aria2.addUri", (["http://127.0.0.1/a"], {"dir": "/tmp"})),
]
SYSTEM = [("system.listMethods", ()), ("aria2.getVersion", ())]
TUPLE_OF_OTHER = [("aria2.tellStatus", ("0000000000000001", ("status", 1)))]
UNHASHABLE_IN_A_TUPLE = [("aria2.changeOption", ("0000000000000001", ("a", ["b"], {"c": "d"})))]


@pytest.mark.parametrize("secret", [None, "s3cret", 'a "quoted" \\ secret'])
@pytest.mark.parametrize(
    "calls",
    [READS, QUOTING, MIXED, SYSTEM, TUPLE_OF_OTHER, UNHASHABLE_IN_A_TUPLE, []],
    ids=["reads", "quoting", "mixed", "system", "tuple-of-other", "unhashable-in-a-tuple", "none"],
)
def test_a_multicall_is_written_as_json_dumps_writes_it(calls, secret):
    assert multicall_text(7, calls, secret) == _as_dumped(7, calls, secret)


@pytest.mark.parametrize("secret", [None, "s3cret"])
def test_a_single_call_is_signed_unless_it_is_a_system_method(secret):
    token = [] if secret is None else [f"token:{secret}"]
    assert json.loads(request_text(3, "aria2.tellStatus", ["0000000000000001", KEYS], secret)) == {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "aria2.tellStatus",
        "params": [*token, "0000000000000001", list(KEYS)],
    }
    assert json.loads(request_text(4, "system.listMethods", [], secret))["params"] == []


def test_a_read_of_a_thousand_downloads_leaves_no_tracked_container_per_call():
    """The direct text is the point: ``json.dumps`` of dicts and lists would leave two thousand
    containers here for the cyclic garbage collector (see the module's docstring)."""
    calls = [("aria2.tellStatus", (f"{n:016x}", KEYS)) for n in range(1000)]
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects(0))
        text = multicall_text(1, calls, "s3cret")
        grown = len(gc.get_objects(0)) - before
    finally:
        gc.enable()
    assert len(json.loads(text)["params"][0]) == 1000
    assert grown < 50, f"{grown} new tracked objects for 1000 calls"
