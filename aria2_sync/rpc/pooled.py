"""aria2's methods over a pool of daemons: the same interface as one daemon's, routed by GID.

:class:`PooledRPC` is an :class:`~aria2_sync.rpc.methods.Aria2RPC` whose calls go to the daemon
that holds the download (a :class:`~aria2_sync.rpc.members.DaemonPool` remembers which one, and
asks every daemon when it does not know), whose adds go to the least loaded daemon, and whose
multicalls are split per daemon and sent to all of them at once. The engine above is unchanged:
it reads, adds, restarts and removes downloads as it does with one daemon.

Failure of one daemon is turned into what the engine already handles:

* while a daemon does not answer, its downloads' reads come back as an error per item ("could
  not read": the engine keeps what it last saw), and nothing new is placed on it;
* once it has not answered for ``failover_after`` seconds, its downloads read as *gone* (GID not
  found), which the engine answers by adding them again, under the same GID, here placed on
  another daemon;
* when it answers again, it is swept before anything else is sent to it: every download it holds
  that now lives on another daemon is force-removed, so no download runs twice;
* only when no daemon answers does a call fail as a whole (the monitor's outage, the client's
  connection error).

A daemon that does not answer within ``reply_wait`` is not waited for: its call goes on in its
own thread, and the daemon is skipped until that call returns, so a frozen host slows one tick,
not every tick.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any, Callable, TypeVar

from ..errors import (
    Aria2AuthError,
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2ProtocolError,
    Aria2RPCError,
    redact_url,
)
from ..logs import logger
from ..threads import ThreadFactory, daemon_thread
from .fanout import Fanout
from .members import FAILED_OVER, UP, DaemonPool, Member
from .methods import Aria2RPC, Call
from .placing import PlacedAdds
from .transport import READ_ONLY_METHODS

__all__ = ["PooledRPC"]

T = TypeVar("T")

#: Methods whose first parameter is the GID they are about: sent to the daemon that holds it.
_BY_GID = frozenset(
    {
        "aria2.tellStatus",
        "aria2.remove",
        "aria2.forceRemove",
        "aria2.pause",
        "aria2.forcePause",
        "aria2.unpause",
        "aria2.removeDownloadResult",
        "aria2.getOption",
        "aria2.changeOption",
        "aria2.getFiles",
        "aria2.getUris",
        "aria2.getPeers",
        "aria2.getServers",
        "aria2.changePosition",
        "aria2.changeUri",
    }
)

#: The trouble a daemon's call can end in that says something about the daemon (not the call).
_DAEMON_TROUBLE = (Aria2ConnectionError, Aria2AuthError, Aria2ProtocolError)


def _gone(method: str, gid: str) -> Aria2GIDNotFoundError:
    """What a read of ``gid`` says once its daemon is failed over: aria2's own "not found"."""
    return Aria2GIDNotFoundError(1, f"GID {gid} is not found", method, gid)


def _unavailable(member: Member, method: str) -> Aria2RPCError:
    """An item of a multicall whose daemon did not answer: no news about it (not "gone")."""
    return Aria2RPCError(1, f"aria2 at {redact_url(member.rpc_url)} did not answer", method)


#: aria2's adds: through ``call`` too, each goes to one daemon.
_ADDS = frozenset({"aria2.addUri", "aria2.addTorrent", "aria2.addMetalink"})

#: How much an answer about a download says it is *there*: a running or queued copy first, a
#: finished one next, a stopped one (an old result a daemon kept) last.
_STANDING = {"active": 0, "waiting": 0, "paused": 0, "complete": 1, "error": 2, "removed": 2}


def _best(answered: Iterable[tuple[Member, Any]]) -> tuple[Member, Any] | None:
    """Of one call's answers from several daemons, the one that says most that its download is
    there (see :data:`_STANDING`); None if every daemon said "not found" or failed."""
    found = [(m, a) for m, a in answered if not isinstance(a, BaseException)]
    if not found:
        return None
    return min(
        found,
        key=lambda pair: _STANDING.get(str(pair[1].get("status")), 1) if isinstance(pair[1], dict) else 1,
    )


def _first_error(outcomes: Iterable[object]) -> BaseException:
    """The first error of ``outcomes`` (each an answer or an error)."""
    return next(o for o in outcomes if isinstance(o, BaseException))


def _multicall(calls: Sequence[Call], chunk_size: int, rpc: Aria2RPC) -> list[Any]:
    return rpc.multicall(calls, chunk_size)


def _global_stat(rpc: Aria2RPC) -> dict[str, str]:
    return rpc.get_global_stat()


class PooledRPC(PlacedAdds):
    """aria2's methods over the daemons of ``pool`` (see the module's docstring).

    ``rpcs`` are one :class:`Aria2RPC` per daemon of the pool, in its order. ``transport`` is
    the first daemon's, for what reads it (the URL quoted in errors).
    """

    def __init__(
        self,
        pool: DaemonPool,
        rpcs: Sequence[Aria2RPC],
        *,
        reply_wait: float,
        thread_factory: ThreadFactory = daemon_thread,
    ) -> None:
        super().__init__(rpcs[0].transport)
        self.pool = pool
        self.rpcs = tuple(rpcs)
        self.resume_lost_on_shared_storage = pool.shared_storage
        self.fanout = Fanout(pool, self.rpcs, reply_wait=reply_wait, thread_factory=thread_factory)

    def close(self) -> None:
        """Close every daemon's connection (calls in flight end with Aria2ClosedError)."""
        for rpc in self.rpcs:
            rpc.transport.close()

    def call(self, method: str, *params: Any) -> Any:
        """Any method: one about a GID goes to the daemon that holds it; any other goes to every
        daemon that is not failed over (``pauseAll``, ``changeGlobalOption`` ... act on all of
        them), and the first answer is returned."""
        if method in _BY_GID and params:
            return self._for_gid(str(params[0]), method, lambda rpc: rpc.call(method, *params))
        if method in _ADDS:
            member, added = self._placed(None, lambda rpc: rpc.call(method, *params))
            for gid in added if isinstance(added, list) else [added]:
                self.pool.settle(str(gid), member)
            return added
        return self._every(lambda rpc: rpc.call(method, *params), everywhere=method not in READ_ONLY_METHODS)[
            0
        ]

    # -- calls about one download -----------------------------------------------------------------

    def _for_gid(self, gid: str, method: str, job: Callable[[Aria2RPC], T]) -> T:
        """``job`` on the daemon that holds ``gid``; found by asking the others when it is not
        known or its daemon is failed over (another process may have moved it); "not found"
        when none of those has it."""
        home = self.pool.home(gid)
        if home is not None and self.pool.state(home) != FAILED_OVER:
            try:
                return self.fanout.one(home, job)
            except Aria2GIDNotFoundError:
                pass  # (moved by another process sharing the state, maybe: the others are asked)
        candidates = [m for m in self.pool.members if m is not home and self.pool.state(m) != FAILED_OVER]
        if not candidates and home is None:
            raise Aria2ConnectionError(self.pool.members[0].rpc_url, "no daemon of the pool answers")
        answered = list(self.fanout.run(dict.fromkeys(candidates, job)).items())
        best = _best(answered)
        if best is not None:
            self.pool.settle(gid, best[0])
            return best[1]  # type: ignore[no-any-return]
        trouble = next(
            (
                r
                for _, r in answered
                if isinstance(r, BaseException) and not isinstance(r, Aria2GIDNotFoundError)
            ),
            None,
        )
        if trouble is not None:
            raise trouble  # a daemon that did not answer may hold it
        raise _gone(method, gid)

    def tell_status(self, gid: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        return self._for_gid(gid, "aria2.tellStatus", lambda rpc: rpc.tell_status(gid, keys))

    def _removing(self, gid: str) -> None:
        """A removal of ``gid``: if its daemon does not answer now, it is swept of it when it
        answers again (a cancelled download must not run on when its host comes back)."""
        home = self.pool.home(gid)
        if home is not None and self.pool.state(home) != UP:
            self.pool.may_hold(gid, home)

    def remove(self, gid: str) -> str:
        self._removing(gid)
        return self._for_gid(gid, "aria2.remove", lambda rpc: rpc.remove(gid))

    def force_remove(self, gid: str) -> str:
        self._removing(gid)
        return self._for_gid(gid, "aria2.forceRemove", lambda rpc: rpc.force_remove(gid))

    def remove_download_result(self, gid: str) -> str:
        return self._for_gid(gid, "aria2.removeDownloadResult", lambda rpc: rpc.remove_download_result(gid))

    def pause(self, gid: str) -> str:
        return self._for_gid(gid, "aria2.pause", lambda rpc: rpc.pause(gid))

    def force_pause(self, gid: str) -> str:
        return self._for_gid(gid, "aria2.forcePause", lambda rpc: rpc.force_pause(gid))

    def unpause(self, gid: str) -> str:
        return self._for_gid(gid, "aria2.unpause", lambda rpc: rpc.unpause(gid))

    def get_option(self, gid: str) -> dict[str, str]:
        return self._for_gid(gid, "aria2.getOption", lambda rpc: rpc.get_option(gid))

    # -- many calls -------------------------------------------------------------------------------

    def multicall(self, calls: Sequence[Call], chunk_size: int = 5000) -> list[Any | Aria2RPCError]:
        """``calls`` split by the daemon each is about, sent to every daemon at once.

        A read (only ``tellStatus`` calls) also asks each daemon for ``aria2.getGlobalStat``: its
        load, for placement, and a sign of life from a daemon that holds nothing read here.
        Calls about a GID no one knows the daemon of go to every daemon. Raises only when no
        daemon answered.
        """
        results: list[Any] = [None] * len(calls)
        routed: dict[Member, list[int]] = {m: [] for m in self.pool.members}
        unknown: list[int] = []
        for n, (method, params) in enumerate(calls):
            gid = str(params[0]) if method in _BY_GID and params else None
            member = None if gid is None else self.pool.home(gid)
            if member is None or self.pool.state(member) == FAILED_OVER:
                unknown.append(n)  # (moved elsewhere by another process sharing the state, maybe)
            else:
                routed[member].append(n)
        read = bool(calls) and all(method == "aria2.tellStatus" for method, _ in calls)
        jobs: dict[Member, Callable[[Aria2RPC], list[Any]]] = {}
        for member, mine in routed.items():
            asked = [calls[n] for n in mine + unknown]
            if read:
                asked.append(("aria2.getGlobalStat", ()))
            if asked:
                jobs[member] = functools.partial(_multicall, asked, chunk_size)
        answers = self.fanout.run(jobs)
        if (unknown or any(routed.values())) and all(isinstance(a, BaseException) for a in answers.values()):
            raise _first_error(answers.values())  # no daemon answered: the call failed as a whole
        found: dict[int, list[tuple[Member, Any]]] = {n: [] for n in unknown}
        for member, answer in answers.items():
            mine = routed[member]
            if isinstance(answer, BaseException):
                for n in mine:
                    results[n] = _unavailable(member, calls[n][0])
                for n in unknown:
                    found[n].append((member, answer))
                continue
            if read:
                self._note_load(member, answer.pop())
            for n, item in zip(mine, answer):
                results[n] = item
            for n, item in zip(unknown, answer[len(mine) :]):
                found[n].append((member, item))
        for n, answered in found.items():
            results[n] = self._merge(calls[n], answered)
        missing = [
            n for mine in routed.values() for n in mine if isinstance(results[n], Aria2GIDNotFoundError)
        ]
        if missing:
            self._look_elsewhere(calls, missing, results, chunk_size)
        return results

    def _look_elsewhere(
        self, calls: Sequence[Call], missing: list[int], results: list[Any], chunk_size: int
    ) -> None:
        """Calls ``missing`` got "not found" from the daemon that held their download: it may
        have moved (another process sharing the state re-homed it), so every daemon that is not
        failed over is asked before "not found" stands (see :meth:`_merge`)."""
        asked = [calls[n] for n in missing]
        members = [m for m in self.pool.members if self.pool.state(m) != FAILED_OVER]
        answers = self.fanout.run(dict.fromkeys(members, functools.partial(_multicall, asked, chunk_size)))
        for i, n in enumerate(missing):
            answered = [(m, a if isinstance(a, BaseException) else a[i]) for m, a in answers.items()]
            results[n] = self._merge(calls[n], answered)

    def _note_load(self, member: Member, stat: Any) -> None:
        if isinstance(stat, dict):
            try:
                self.pool.loaded(member, int(stat.get("numActive", 0)) + int(stat.get("numWaiting", 0)))
            except (TypeError, ValueError):
                pass

    def _merge(self, call: Call, answered: list[tuple[Member, Any]]) -> Any:
        """One call sent to every daemon: the answer of the one that has its GID; "not found"
        if every daemon says so (a failed-over daemon counts as saying so); else "no news"."""
        method, params = call
        best = _best(answered)
        if best is not None:
            if method in _BY_GID and params:
                self.pool.settle(str(params[0]), best[0])
            return best[1]
        unsure: Any = None
        for member, item in answered:
            if isinstance(item, BaseException) and not isinstance(item, Aria2GIDNotFoundError):
                # (an Aria2RPCError item, or the daemon's trouble)
                if self.pool.state(member) != FAILED_OVER:
                    unsure = unsure or (
                        item if isinstance(item, Aria2RPCError) else _unavailable(member, method)
                    )
        if unsure is not None:
            return unsure
        gid = str(params[0]) if params else ""
        return _gone(method, gid)

    def home_of(self, gid: str) -> str | None:
        member = self.pool.home(gid)
        return None if member is None else redact_url(member.rpc_url)

    def note_home(self, gid: str, daemon: str) -> None:
        """Another process moved ``gid`` to ``daemon``: it lives there now, and the daemon this
        pool knew it on is swept of it at its next call (this process may reach a daemon the
        other could not)."""
        member = next((m for m in self.pool.members if redact_url(m.rpc_url) == daemon), None)
        if member is not None and self.pool.home(gid) is not member:
            self.pool.settle(gid, member)

    def probe(self) -> bool:
        """Try the daemons that are in trouble or still to be swept (sweeping one that is back:
        see the module), when their pause is over; whether one is still so. The monitor calls this while it
        has nothing to read, so that a daemon that comes back is swept without waiting for work.
        """
        troubled = [m for m in self.pool.members if m.trouble is not None or self.pool.needs_sweep(m)]
        if troubled:
            self.fanout.run(dict.fromkeys(troubled, _global_stat))
        return any(m.trouble is not None or self.pool.needs_sweep(m) for m in self.pool.members)

    # -- the daemons as one -----------------------------------------------------------------------

    def _every(self, job: Callable[[Aria2RPC], T], everywhere: bool = False) -> list[T]:
        """``job`` on every daemon that is not failed over; the answers of those that answered.

        Raises the first error if none answered; with ``everywhere`` (a change that must reach
        every daemon: pause all, change the global options ...), if any did not, after the
        others have made it (the error names the daemon that missed it). A read gets what the
        daemons that answered hold, and the others are logged.
        """
        members = [m for m in self.pool.members if self.pool.state(m) != FAILED_OVER] or list(
            self.pool.members
        )
        outcome = self.fanout.run(dict.fromkeys(members, job))
        answers: list[T] = [a for a in outcome.values() if not isinstance(a, BaseException)]
        missed = [(m, a) for m, a in outcome.items() if isinstance(a, BaseException)]
        if not answers or (missed and everywhere):
            raise _first_error(a for _, a in missed)
        for member, error in missed:
            logger.warning("aria2 at %s left out of the answer: %s", redact_url(member.rpc_url), error)
        return answers

    def tell_active(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return [s for answer in self._every(lambda rpc: rpc.tell_active(keys)) for s in answer]

    def tell_waiting(self, offset: int, num: int, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The waiting downloads of every daemon, one after the other (``offset``/``num`` apply to each)."""
        return [s for answer in self._every(lambda rpc: rpc.tell_waiting(offset, num, keys)) for s in answer]

    def tell_stopped(self, offset: int, num: int, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The stopped downloads of every daemon, one after the other (``offset``/``num`` apply to each)."""
        return [s for answer in self._every(lambda rpc: rpc.tell_stopped(offset, num, keys)) for s in answer]

    def tell_all(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every download of every daemon that answers, one daemon after the other."""
        return [s for answer in self._every(lambda rpc: rpc.tell_all(keys)) for s in answer]

    def get_global_stat(self) -> dict[str, str]:
        """The totals of the daemons that answer, added up."""
        totals: dict[str, int] = {}
        for answer in self._every(lambda rpc: rpc.get_global_stat()):
            for key, value in answer.items():
                try:
                    totals[key] = totals.get(key, 0) + int(value)
                except (TypeError, ValueError):
                    continue
        return {key: str(value) for key, value in totals.items()}

    def get_version(self) -> dict[str, Any]:
        """The version of the first daemon that answers."""
        return self._every(lambda rpc: rpc.get_version())[0]

    def save_session(self) -> str:
        """Every daemon that answers saves its session."""
        self._every(lambda rpc: rpc.save_session(), everywhere=True)
        return "OK"

    def shutdown(self) -> str:
        self._every(lambda rpc: rpc.shutdown(), everywhere=True)
        return "OK"

    def force_shutdown(self) -> str:
        self._every(lambda rpc: rpc.force_shutdown(), everywhere=True)
        return "OK"
