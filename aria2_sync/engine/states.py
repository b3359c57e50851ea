"""The words of a download's life: its states, outcomes and the values its transitions hand out.

Kept apart from :mod:`aria2_sync.engine.record` (which changes them) so that the modules that
only read them import no more than these.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..models import Progress
    from .futures import DownloadFuture

__all__ = [
    "Attempt",
    "Callbacks",
    "FrozenValue",
    "IllegalTransition",
    "NO_CALLBACKS",
    "Observation",
    "Outcome",
    "RestartState",
    "Source",
]


class RestartState(str, enum.Enum):
    """Where a download's restart stands: none, one waiting out its backoff, one running."""

    IDLE = "idle"
    SCHEDULED = "scheduled"
    RESTARTING = "restarting"


class Outcome(str, enum.Enum):
    """The final outcome of one run of a download (its value is what a store keeps)."""

    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


class IllegalTransition(RuntimeError):
    """A transition asked for from a state it can never start from (a bug of the engine)."""


class FrozenValue:
    """A small value object: fields set once in ``__init__``, never changed afterwards.

    Plain classes with ``__slots__`` rather than attrs classes: a download keeps several of
    these, and creating an attrs class costs about a millisecond of ``import aria2_sync``.
    """

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **fields: object) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, FrozenValue):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __reduce__(self) -> tuple[Any, tuple[object, ...]]:
        return self.__class__, self._values()  # (each __init__ takes its fields in slot order)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({shown})"


class Attempt(FrozenValue):
    """One failed run of a download: when it failed, how, and how far it had got."""

    __slots__ = ("time", "error_code", "error_message", "completed_length", "gid")

    time: float
    error_code: str | None
    error_message: str | None
    completed_length: int
    gid: str

    def __init__(
        self, time: float, error_code: str | None, error_message: str | None, completed_length: int, gid: str
    ) -> None:
        self._set(
            time=time,
            error_code=error_code,
            error_message=error_message,
            completed_length=completed_length,
            gid=gid,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


class Callbacks(FrozenValue):
    """Functions a UI attaches to one download; each is called on the client's worker pool.

    ``on_progress(progress)`` when a watched download's snapshot changes, ``on_restart(progress)``
    when a restart of it is issued, ``on_done(future)`` once it has an outcome.
    """

    __slots__ = ("on_progress", "on_restart", "on_done")

    on_progress: Callable[[Progress], Any] | None
    on_restart: Callable[[Progress], Any] | None
    on_done: Callable[[DownloadFuture], Any] | None

    def __init__(
        self,
        on_progress: Callable[[Progress], Any] | None = None,
        on_restart: Callable[[Progress], Any] | None = None,
        on_done: Callable[[DownloadFuture], Any] | None = None,
    ) -> None:
        self._set(on_progress=on_progress, on_restart=on_restart, on_done=on_done)


#: The callbacks of a download nobody attached any to: one object shared by all of them.
NO_CALLBACKS = Callbacks()


class Observation(FrozenValue):
    """What applying one status read to a record calls for (:meth:`DownloadRecord.observed`).

    ``progress`` is the snapshot to hand out; ``outcome`` the outcome this read gave the run
    (None if none); ``notify``: queue one ``on_progress`` call; ``remove``: send a removal
    (the download was cancelled while the daemon could not hear it, and runs again).
    """

    __slots__ = ("progress", "outcome", "notify", "remove")

    progress: Progress
    outcome: Outcome | None
    notify: bool
    remove: bool

    def __init__(
        self, progress: Progress, outcome: Outcome | None = None, notify: bool = False, remove: bool = False
    ) -> None:
        setattr_ = object.__setattr__  # (made for every status read that changes something)
        setattr_(self, "progress", progress)
        setattr_(self, "outcome", outcome)
        setattr_(self, "notify", notify)
        setattr_(self, "remove", remove)


class Source(FrozenValue):
    """What a BitTorrent or Metalink download was added from, to add it again the same way.

    ``kind``: ``"magnet"`` (a metadata download first, then the payload under another GID),
    ``"torrent"`` (``.torrent`` bytes, added with ``aria2.addTorrent``: the payload at once),
    ``"torrent-url"`` (a ``.torrent`` at an http(s) URL, fetched by aria2 and followed), or
    ``"metalink"`` (one file of a metalink, added as mirrors of that file). ``torrent`` holds the
    ``.torrent`` bytes when they are known (a restart re-adds the payload from them, resuming
    from its control file); ``info_hash`` the torrent's (hex), when known.
    """

    __slots__ = ("kind", "torrent", "info_hash")

    kind: str
    torrent: bytes | None
    info_hash: str | None

    def __init__(self, kind: str, torrent: bytes | None = None, info_hash: str | None = None) -> None:
        self._set(kind=kind, torrent=torrent, info_hash=info_hash)

    @property
    def follows(self) -> bool:
        """Whether the payload comes under a GID of its own, after a first download (the chain)."""
        return self.kind in ("magnet", "torrent-url")

    def __repr__(self) -> str:  # (not the torrent's bytes)
        return f"Source(kind={self.kind!r}, info_hash={self.info_hash!r})"
