"""The words of a download's life: its states, outcomes and the values its transitions hand out.

Kept apart from :mod:`aria2_sync.engine.record` (which changes them) so that the modules that
only read them import no more than these.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable

import attrs

from ..models import Progress

if TYPE_CHECKING:  # pragma: no cover
    from .futures import DownloadFuture

__all__ = ["Attempt", "Callbacks", "IllegalTransition", "Observation", "Outcome", "RestartState"]


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


@attrs.frozen
class Attempt:
    """One failed run of a download: when it failed, how, and how far it had got."""

    time: float
    error_code: str | None
    error_message: str | None
    completed_length: int
    gid: str

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Callbacks:
    """Functions a UI attaches to one download; each is called on the client's worker pool.

    ``on_progress(progress)`` when a watched download's snapshot changes, ``on_restart(progress)``
    when a restart of it is issued, ``on_done(future)`` once it has an outcome.
    """

    on_progress: Callable[[Progress], Any] | None = None
    on_restart: Callable[[Progress], Any] | None = None
    on_done: Callable[[DownloadFuture], Any] | None = None


@attrs.frozen
class Observation:
    """What applying one status read to a record calls for (:meth:`DownloadRecord.observed`).

    ``progress`` is the snapshot to hand out; ``outcome`` the outcome this read gave the run
    (None if none); ``notify``: queue one ``on_progress`` call; ``remove``: send a removal
    (the download was cancelled while the daemon could not hear it, and runs again).
    """

    progress: Progress
    outcome: Outcome | None = None
    notify: bool = False
    remove: bool = False
