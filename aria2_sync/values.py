"""Immutable value classes that cost nothing to define: :class:`Frozen`, a base for ``__slots__``
classes.

Every class defined in a module that ``import aria2_sync`` loads is paid for by every program,
whether it uses the class or not. Defining an ``attrs`` class takes about 0.25 ms (attrs writes
and compiles its methods), and importing ``attrs`` at all about 11 ms, where a plain class with
``__slots__`` takes a few microseconds. A :class:`Frozen` subclass lists its fields in
``__slots__`` (in order) and sets them in its ``__init__`` with ``object.__setattr__``; it gets a
repr naming every field, equality and hashing by type and field values, pickling and copying, and
:meth:`Frozen.evolve`, like an ``attrs.frozen`` class, and no field can be set or deleted after.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

__all__ = ["Frozen", "FrozenInstanceError"]

_F = TypeVar("_F", bound="Frozen")


class FrozenInstanceError(AttributeError):
    """An attempt to set or delete a field of a :class:`Frozen` value (they never change)."""


class Frozen:
    """A value whose fields, named by the ``__slots__`` of its class and bases, never change."""

    __slots__ = ()

    #: The fields in order, bases' first: set for each subclass from the ``__slots__`` it declares.
    _fields: ClassVar[tuple[str, ...]] = ()
    #: The same, for positional ``case`` patterns (as attrs classes have them).
    __match_args__: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__", ())
        own = (slots,) if isinstance(slots, str) else tuple(slots)
        cls._fields = tuple(dict.fromkeys((*cls._fields, *own)))
        cls.__match_args__ = cls._fields  # type: ignore[misc]

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenInstanceError(f"{type(self).__name__} is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __getstate__(self) -> tuple[Any, ...]:
        return self._values()

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self._fields, state):
            object.__setattr__(self, name, value)

    def evolve(self: _F, **changes: Any) -> _F:
        """A copy with ``changes`` applied, made (and so checked) by the class's ``__init__``."""
        values = {name: getattr(self, name) for name in self._fields}
        values.update(changes)
        return type(self)(**values)
