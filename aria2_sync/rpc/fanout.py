"""Calls to several daemons of a pool at once, none of them waited for longer than it deserves.

:class:`Fanout` runs one job per daemon, each in a thread of its own (made by the client's
runtime), and waits for the answers at most ``reply_wait`` seconds: a daemon that does not
answer by then is reported in trouble to the :class:`~aria2_sync.rpc.members.DaemonPool`, and
is sent nothing more until that call returns (a frozen host holds one thread per connection,
not one per tick). A daemon resting after failures is not tried at all. Before anything is sent
to a daemon that was in trouble, it is swept (:meth:`Fanout.sweep`): its copies of downloads
that now live on another daemon are force-removed, so no download runs on two daemons.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_futures
from typing import Any, Callable, TypeVar

from ..errors import (
    Aria2AuthError,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2Error,
    Aria2ProtocolError,
    Aria2RPCError,
    redact_url,
)
from ..logs import logger
from ..threads import ThreadFactory, daemon_thread
from .members import UP, DaemonPool, Member
from .methods import Aria2RPC

__all__ = ["Fanout"]

T = TypeVar("T")

#: The trouble a daemon's call can end in that says something about the daemon (not the call).
_DAEMON_TROUBLE = (Aria2ConnectionError, Aria2AuthError, Aria2ProtocolError)


#: How long a sweep waits for force-removed downloads to stop before it removes their results.
_STOP_WAIT = 2.0


def _wait_stopped(rpc: Aria2RPC, gids: Sequence[str]) -> None:
    """Wait (bounded) until none of ``gids`` is running: aria2 stops a force-removed download a
    moment later, and only then does it let its result be removed."""
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        answers = rpc.multicall([("aria2.tellStatus", [g, ["status"]]) for g in gids])
        if not any(
            isinstance(a, dict) and a.get("status") in ("active", "waiting", "paused") for a in answers
        ):
            return
        time.sleep(0.05)  # (polling the daemon: it tells nobody when a removal is done)


class Fanout:
    """Runs calls on the daemons of ``pool`` (``rpcs``: one per daemon, in the pool's order)."""

    def __init__(
        self,
        pool: DaemonPool,
        rpcs: Sequence[Aria2RPC],
        *,
        reply_wait: float,
        thread_factory: ThreadFactory = daemon_thread,
    ) -> None:
        self.pool = pool
        self.rpcs = tuple(rpcs)
        self.reply_wait = reply_wait
        self._new_thread = thread_factory

    def run(self, jobs: Mapping[Member, Callable[[Aria2RPC], T]]) -> dict[Member, T | BaseException]:
        """Run each daemon's job at once, each in a thread of its own; wait ``reply_wait`` at most.

        A daemon whose earlier call is still unanswered after ``reply_wait``, one resting after
        failures (:meth:`DaemonPool.resting`), or one not done in time gets an
        :class:`Aria2ConnectionError` instead of its answer. A daemon that was in trouble is
        swept first (see the module).
        """
        started: dict[Member, Future[Any]] = {}
        outcome: dict[Member, T | BaseException] = {}
        for member, job in jobs.items():
            if self.pool.stuck(member):
                outcome[member] = Aria2ConnectionError(member.rpc_url, "an earlier call is still unanswered")
                continue
            if self.pool.resting(member):
                outcome[member] = Aria2ConnectionError(member.rpc_url, "not answering; tried again later")
                continue
            future: Future[Any] = Future()
            thread = self._new_thread("aria2_sync-pool-call", self._call(member, job, future))
            try:
                thread.start()
            except BaseException:
                future.set_exception(Aria2ConnectionError(member.rpc_url, "could not start a thread"))
                raise
            started[member] = future
        # A daemon already in trouble is not waited for while others answer: a frozen host must
        # not hold up the tick of the daemons that work (it is asked, and heard if quick).
        healthy = [future for member, future in started.items() if member.trouble is None]
        wait_for_futures(healthy or list(started.values()), timeout=self.reply_wait)
        for member, future in started.items():
            if not future.done():
                # (it may still be applied: the call goes on, and its daemon is swept when it returns)
                trouble = Aria2ConnectionError(
                    member.rpc_url, f"no answer within {self.reply_wait:g} s", maybe_applied=True
                )
                self.pool.failed(member, trouble)
                outcome[member] = trouble
                self.pool.note_stuck(member, future)
            else:
                error = future.exception()
                outcome[member] = future.result() if error is None else error
        for result in outcome.values():
            if isinstance(result, Aria2ClosedError):
                raise result  # the client is closing: nothing else matters
        return outcome

    def _call(self, member: Member, job: Callable[[Aria2RPC], T], future: Future[Any]) -> Callable[[], None]:
        rpc = self.rpcs[member.index]

        def call() -> None:
            try:
                if self.pool.needs_sweep(member):
                    self.sweep(member, rpc)
                result = job(rpc)
                if isinstance(result, list):  # (a multicall: a refused secret is refused for all)
                    denied = next((item for item in result if isinstance(item, Aria2AuthError)), None)
                    if denied is not None:
                        raise denied
            except BaseException as error:
                if isinstance(error, _DAEMON_TROUBLE):
                    self.pool.failed(member, error)
                future.set_exception(error)
                return
            self.pool.answered(member)
            future.set_result(result)

        return call

    def one(self, member: Member, job: Callable[[Aria2RPC], T]) -> T:
        """``job`` on ``member``'s connection; its error raised."""
        result = self.run({member: job})[member]
        if isinstance(result, BaseException):
            raise result
        return result

    def sweep(self, member: Member, rpc: Aria2RPC) -> None:
        """Remove from ``member`` (back after trouble) its copies of downloads that live elsewhere.

        Those are the GIDs this pool moved away from it, and the ones it holds that another
        daemon holds too (moved by another process sharing the state). Raises what the daemon's
        calls raise: then it is swept again next time.
        """
        gids: list[str] = []
        for answer in rpc.multicall(
            [("aria2.tellActive", [["gid"]]), ("aria2.tellWaiting", [0, 1 << 30, ["gid"]])]
        ):
            if not isinstance(answer, list):
                raise (
                    answer
                    if isinstance(answer, Aria2RPCError)
                    else rpc.unreadable("aria2.tellActive", "no list")
                )
            gids += [str(s.get("gid")) for s in answer if isinstance(s, dict)]
        moved = self.pool.evicted(member)
        # Known to live on another daemon that answers (one being added elsewhere right now has
        # its old home still, a failed-over one: not taken for "elsewhere" before it lands).
        elsewhere = {
            g
            for g in gids
            if (home := self.pool.home(g)) is not None and home is not member and self.pool.state(home) == UP
        }
        unsure = [g for g in gids if g not in moved and self.pool.home(g) is None]
        if unsure:
            elsewhere |= self._held_elsewhere(member, unsure)
        doomed = [g for g in gids if g in moved or g in elsewhere]
        if doomed:
            logger.warning(
                "aria2 at %s is back with %d downloads that now run on other daemons: removing them there",
                redact_url(member.rpc_url),
                len(doomed),
            )
            rpc.multicall([("aria2.forceRemove", [g]) for g in doomed])
            _wait_stopped(rpc, doomed)
        # The stopped results of what moved go too (listed or not): asked about such a GID, this
        # daemon must say "not found", never an old "error" or "removed" of it.
        rpc.multicall([("aria2.removeDownloadResult", [g]) for g in sorted(set(doomed) | moved)])
        self.pool.swept(member, list(moved))

    def _held_elsewhere(self, member: Member, gids: Sequence[str]) -> set[str]:
        """Which of ``gids`` another daemon that answers holds unfinished (asked directly)."""
        found: set[str] = set()
        for other, rpc in zip(self.pool.members, self.rpcs):
            if other is member or self.pool.state(other) != UP:
                continue
            try:
                answers = rpc.multicall([("aria2.tellStatus", [g, ["status"]]) for g in gids])
            except Aria2Error:
                continue
            for gid, answer in zip(gids, answers):
                if isinstance(answer, dict) and answer.get("status") in (
                    "active",
                    "waiting",
                    "paused",
                    "complete",
                ):
                    found.add(gid)
                    self.pool.settle(gid, other)
        return found
