"""Frozen values (``aria2_sync.values``) behave as the attrs classes they replaced: a repr of every
field, equality and hashing by value, no changes after construction, pickling and copying, and
``evolve`` through the checking constructor."""

from __future__ import annotations

import copy
import pickle

import pytest

from aria2_sync import Aria2InputError, DownloadResult, RestartPolicy
from aria2_sync.policy import RestartDecision
from aria2_sync.values import Frozen, FrozenInstanceError


class _Point(Frozen):
    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)


class _Point3(_Point):
    __slots__ = "z"

    def __init__(self, x: int, y: int = 0, z: int = 0) -> None:
        super().__init__(x, y)
        object.__setattr__(self, "z", z)


def test_repr_equality_and_hash_follow_the_fields():
    assert repr(_Point(1, 2)) == "_Point(x=1, y=2)"
    assert _Point(1, 2) == _Point(1, 2)
    assert _Point(1, 2) != _Point(1, 3)
    assert hash(_Point(1, 2)) == hash(_Point(1, 2))
    assert len({_Point(1, 2), _Point(1, 2), _Point(2, 1)}) == 2


def test_a_subclass_adds_its_fields_after_its_bases_and_never_equals_a_base():
    assert _Point3._fields == ("x", "y", "z")
    assert repr(_Point3(1, 2, 3)) == "_Point3(x=1, y=2, z=3)"
    assert _Point3(1, 2, 0) != _Point(1, 2)
    assert _Point(1, 2) != (1, 2)


def test_fields_cannot_be_set_deleted_or_added():
    point = _Point(1)
    with pytest.raises(FrozenInstanceError, match="cannot set 'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError, match="cannot delete 'y'"):
        del point.y
    with pytest.raises(AttributeError):
        point.other = 1  # type: ignore[attr-defined]
    assert (point.x, point.y) == (1, 0)


def test_pickle_copy_and_deepcopy_give_equal_values():
    policy = RestartPolicy(max_restarts=2, restartable_codes={3})
    result = DownloadResult("0123456789abcdef", "/tmp/f", 10, "http://x/f", 1, ({"gid": "a"},))
    for value in (policy, result, RestartDecision(True, 1.5, "why"), _Point3(1, 2, 3)):
        for other in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
            assert other == value
            assert type(other) is type(value)


def test_evolve_changes_some_fields_and_checks_them_again():
    policy = RestartPolicy(max_restarts=2)
    assert policy.evolve(restartable_codes=[13]) == RestartPolicy(max_restarts=2, restartable_codes={13})
    assert policy.max_restarts == 2
    with pytest.raises(Aria2InputError, match="max_restarts must be an int >= 0"):
        policy.evolve(max_restarts=-1)


def test_positional_match_patterns_use_the_fields_in_order():
    # (``case RestartDecision(restart, delay, reason)``; no match statement here: Python 3.9 runs this)
    assert RestartDecision.__match_args__ == ("restart", "delay", "reason")
    assert _Point3.__match_args__ == ("x", "y", "z")
