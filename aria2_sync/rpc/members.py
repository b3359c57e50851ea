"""The daemons of a pool as one client sees them: their health, their load, where each download is.

One :class:`DaemonPool` is shared by the client's connections and the monitor's (each a
:class:`~aria2_sync.rpc.pooled.PooledRPC` over it), so that what the monitor's tick learns (a
daemon's load, that it stopped answering) is what the next add is placed by.

A daemon of the pool is in one of four states (:data:`STATES`):

* ``up``: its last call was answered;
* ``unreachable``: its last call failed or is still unanswered (a refused connection, a timeout,
  a frozen host), for at most ``failover_after`` seconds since its last answer: it is left out
  of placement, and its downloads are kept as they were last seen;
* ``failed_over``: unreachable for longer than that: the downloads it held are reported gone, so
  the engine adds them again on the others under the same GID (futures and retry history go on);
* ``refused``: it answers but refuses the RPC secret: reported, never placed on and never failed
  over (its downloads are most likely running: adding them elsewhere would fetch them twice).

When a daemon that was in trouble answers again, it is *swept* before it is sent anything else
(:attr:`Member.needs_sweep`): its copies of downloads that now live on another daemon go.
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any, Callable

from ..errors import Aria2AuthError, redact_url
from ..logs import logger
from ..models import DaemonHealth

__all__ = ["DaemonPool", "Member", "STATES", "UP", "UNREACHABLE", "FAILED_OVER", "REFUSED"]

UP, UNREACHABLE, FAILED_OVER, REFUSED = "up", "unreachable", "failed_over", "refused"

#: The longest pause between two tries of a daemon in trouble (seconds): a host that comes back
#: is swept at most this late (its restored downloads run meanwhile), and a dead one costs one
#: refused connection per pause.
MAX_RETRY_PAUSE = 1.0

#: How many GIDs a pool remembers the daemon of, at most: the client's retention forgets them
#: with their downloads (:meth:`DaemonPool.forget`); past this bound the oldest go first (a GID
#: whose daemon is forgotten is found again by asking every daemon). About 100 bytes each.
HOMES_KEPT = 200_000
STATES = (UP, UNREACHABLE, FAILED_OVER, REFUSED)


class Member:
    """One daemon of a pool: where it is and how it was last seen (guarded by the pool's lock)."""

    __slots__ = (
        "index",
        "rpc_url",
        "secret",
        "weight",
        "last_answer",
        "trouble",
        "load",
        "placed",
        "pause",
        "retry_at",
    )

    def __init__(self, index: int, rpc_url: str, secret: str | None, weight: float, now: float) -> None:
        self.index = index
        self.rpc_url = rpc_url
        self.secret = secret
        self.weight = weight
        self.last_answer = now
        #: None while it answers; else UNREACHABLE or REFUSED.
        self.trouble: str | None = None
        #: Active + waiting downloads as last read, and those placed on it since that read.
        self.load = 0
        self.placed = 0
        #: While in trouble: the pause before it is tried again (doubling up to
        #: :data:`MAX_RETRY_PAUSE`), and when that is (on the pool's clock).
        self.pause = 0.0
        self.retry_at = 0.0

    def __repr__(self) -> str:
        return f"<pool daemon {redact_url(self.rpc_url)}>"


class DaemonPool:
    """Several daemons behind one client (see the module's docstring).

    ``daemons`` are ``(rpc_url, secret, weight)`` triples, checked by the caller. GIDs are the
    client's, unique across daemons, so a download keeps its handle wherever it runs; this pool
    remembers which daemon holds each GID it has placed or found (:meth:`home`).
    """

    def __init__(
        self,
        daemons: Sequence[tuple[str, str | None, float]],
        *,
        failover_after: float = 30.0,
        shared_storage: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self.members = tuple(
            Member(n, url, secret, weight, now) for n, (url, secret, weight) in enumerate(daemons)
        )
        self.failover_after = failover_after
        self.shared_storage = shared_storage
        self._lock = threading.Lock()
        self._homes: dict[str, Member] = {}
        #: GIDs each daemon may still hold although they now live elsewhere: removed from it
        #: when it is swept.
        self._evicted: dict[Member, set[str]] = {m: set() for m in self.members}
        self._needs_sweep: set[Member] = set()
        self._failed_over_told: set[Member] = set()
        self._stuck: dict[Member, Future[Any]] = {}

    def __repr__(self) -> str:
        return f"<DaemonPool of {len(self.members)} daemons>"

    @property
    def on_this_host(self) -> bool:
        """Whether every daemon is on this machine (a loopback URL): only then are download
        directories checked on this machine's disk."""
        hosts = [(urllib.parse.urlsplit(m.rpc_url).hostname or "").lower() for m in self.members]
        return all(h in ("localhost", "::1") or h.startswith("127.") for h in hosts)

    # -- health ---------------------------------------------------------------------------------

    def state(self, member: Member) -> str:
        """One of :data:`STATES`."""
        if member.trouble is None:
            return UP
        if member.trouble == REFUSED:
            return REFUSED
        if self._clock() - member.last_answer <= self.failover_after:
            return UNREACHABLE
        if all(m.trouble is not None for m in self.members):
            return UNREACHABLE  # no daemon answers: this host's network, most likely; move nothing
        if member not in self._failed_over_told:
            with self._lock:
                first = member not in self._failed_over_told
                self._failed_over_told.add(member)
            if first:
                logger.warning(
                    "aria2 at %s has not answered for over %.0f s: its unfinished downloads are "
                    "added again on the other daemons (same GIDs)",
                    redact_url(member.rpc_url),
                    self.failover_after,
                )
        return FAILED_OVER

    def answered(self, member: Member) -> None:
        """``member`` answered a call."""
        with self._lock:
            was, member.trouble = member.trouble, None
            member.pause = member.retry_at = 0.0
            self._failed_over_told.discard(member)
            silent_for = self._clock() - member.last_answer
            member.last_answer = self._clock()
        if was is not None:
            logger.warning("aria2 at %s answers again after %.1f s", redact_url(member.rpc_url), silent_for)

    def failed(self, member: Member, error: Exception) -> None:
        """A call to ``member`` failed with ``error`` (it could not be reached, or refused us).

        It is not tried again for a pause that doubles with each failure (0.25 s up to
        :data:`MAX_RETRY_PAUSE`): a dead host costs a failed call per pause, not one per tick.
        """
        kind = REFUSED if isinstance(error, Aria2AuthError) else UNREACHABLE
        with self._lock:
            member.pause = min(MAX_RETRY_PAUSE, max(0.25, member.pause * 2))
            member.retry_at = self._clock() + member.pause
            if kind == REFUSED:
                member.last_answer = self._clock()  # (a refusal is an answer: no failover clock)
            if member.trouble == kind:
                return
            member.trouble = kind
            self._needs_sweep.add(member)
        if kind == REFUSED:
            logger.error(
                "aria2 at %s refuses this client's RPC secret: no download is placed on it, and "
                "the ones it holds are not moved (they may be running); check its secret",
                redact_url(member.rpc_url),
            )
        else:
            logger.warning(
                "aria2 at %s does not answer (%s): no new download goes there, and its downloads "
                "move to the other daemons if it has not answered within %.0f s",
                redact_url(member.rpc_url),
                getattr(error, "reason", error),
                self.failover_after,
            )

    def resting(self, member: Member) -> bool:
        """Whether ``member`` is in trouble and not to be tried again yet (see :meth:`failed`)."""
        return member.trouble is not None and self._clock() < member.retry_at

    def needs_sweep(self, member: Member) -> bool:
        """Whether ``member`` was in trouble since it was last swept (see the module)."""
        return member in self._needs_sweep

    def swept(self, member: Member, removed: Sequence[str]) -> None:
        """``member`` was swept: ``removed`` are the GIDs taken off it."""
        with self._lock:
            self._needs_sweep.discard(member)
            self._evicted[member].difference_update(removed)

    # -- placement ------------------------------------------------------------------------------

    def loaded(self, member: Member, load: int) -> None:
        """``member`` has ``load`` active and waiting downloads (read just now)."""
        with self._lock:
            member.load, member.placed = load, 0

    def place(self, exclude: Sequence[Member] = ()) -> Member | None:
        """The daemon for a new download: the least loaded for its weight of those that answer
        (None if none does). What is placed counts as load until the next read."""
        with self._lock:
            candidates = [m for m in self.members if m.trouble is None and m not in exclude]
            if not candidates:
                return None
            chosen = min(candidates, key=lambda m: ((m.load + m.placed) / m.weight, m.index))
            chosen.placed += 1
            return chosen

    # -- where downloads are ----------------------------------------------------------------------

    def home(self, gid: str) -> Member | None:
        """The daemon that holds ``gid`` as far as this pool knows, else None."""
        return self._homes.get(gid)

    def settle(self, gid: str, member: Member) -> None:
        """``gid`` is on ``member`` now; a daemon it was on before may still hold a copy."""
        with self._lock:
            before = self._homes.pop(gid, None)
            self._homes[gid] = member  # (at the end: the most recent)
            if len(self._homes) > HOMES_KEPT:
                del self._homes[next(iter(self._homes))]
            self._evicted[member].discard(gid)
            if before is not None and before is not member:
                self._evicted[before].add(gid)
                self._needs_sweep.add(before)  # (swept at its next call, whatever its state)

    def forget(self, gids: Sequence[str]) -> None:
        """Forget where ``gids`` live (the client forgot their downloads); a copy still to be
        swept from a daemon stays to be swept."""
        with self._lock:
            for gid in gids:
                self._homes.pop(gid, None)

    def may_hold(self, gid: str, member: Member) -> None:
        """``member`` may hold a copy of ``gid`` it should not: an add whose answer was lost, or
        a download cancelled while its daemon could not be reached. Swept at its next call."""
        with self._lock:
            if self._homes.get(gid) is not member or member.trouble is not None:
                self._evicted[member].add(gid)
                self._needs_sweep.add(member)

    def flag_sweep(self, member: Member) -> None:
        """Sweep ``member`` at its next call (a call given up on has returned: it may have added)."""
        with self._lock:
            self._needs_sweep.add(member)

    def stuck(self, member: Member) -> bool:
        """Whether a call to ``member`` was given up on and has not returned yet (see
        :meth:`note_stuck`): it is sent nothing more until then."""
        call = self._stuck.get(member)
        return call is not None and not call.done()

    def note_stuck(self, member: Member, call: Future[Any]) -> None:
        """``call`` to ``member`` was given up on (no answer in time): until it returns, the
        daemon is sent nothing more by any connection of this pool (a frozen host holds one
        thread per connection, not one per tick), and when it returns the daemon is swept (the
        call may have added something the pool placed elsewhere meanwhile)."""
        with self._lock:
            self._stuck[member] = call
        call.add_done_callback(lambda _: self.flag_sweep(member))

    def evicted(self, member: Member) -> set[str]:
        """The GIDs ``member`` may hold although they live elsewhere now."""
        with self._lock:
            return set(self._evicted[member])

    def health(self) -> tuple[DaemonHealth, ...]:
        """Each daemon as this pool sees it now."""
        with self._lock:
            counts = dict.fromkeys(self.members, 0)
            for member in self._homes.values():
                counts[member] += 1
        return tuple(
            DaemonHealth(
                rpc_url=redact_url(m.rpc_url),
                state=self.state(m),
                load=m.load + m.placed,
                weight=m.weight,
                downloads=counts[m],
            )
            for m in self.members
        )
