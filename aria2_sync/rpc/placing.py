"""A pool's adds: each new download placed on one daemon, and never on two.

:class:`PlacedAdds` is the part of :class:`~aria2_sync.rpc.pooled.PooledRPC` that adds: a new
download goes to the least loaded daemon that answers (:meth:`DaemonPool.place
<aria2_sync.rpc.members.DaemonPool.place>`), a download that has a home (a restart) to its home
while that answers, and a batch is spread over the daemons in one multicall each, all at once.
A daemon that cannot be reached passes its adds on to the next; one whose answer was lost may
hold the add, so it is marked to be swept of it (:meth:`DaemonPool.may_hold
<aria2_sync.rpc.members.DaemonPool.may_hold>`) before anything else is sent to it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

from ..errors import Aria2ConnectionError, Aria2RPCError
from .fanout import Fanout
from .members import UP, DaemonPool, Member
from .methods import Aria2RPC

__all__ = ["PlacedAdds"]

T = TypeVar("T")


def _add_many(
    items: Sequence[tuple[Sequence[str], Mapping[str, Any], str]],
    attempts: int,
    chunk_size: int,
    rpc: Aria2RPC,
) -> list[Aria2RPCError | None]:
    return rpc.add_many_once(items, attempts, chunk_size)


class PlacedAdds(Aria2RPC):
    """aria2's adds over the daemons of ``pool``, through ``fanout`` (see the module)."""

    pool: DaemonPool
    fanout: Fanout

    def _placed(self, gid: str | None, job: Callable[[Aria2RPC], T]) -> tuple[Member, T]:
        """``job`` (an add) on the daemon ``gid`` lives on if it answers, else on the least
        loaded one; on to the next if a daemon cannot be reached (one that may have taken the
        add is swept of it when it is back)."""
        tried: list[Member] = []
        last_error: Aria2ConnectionError | None = None
        home = None if gid is None else self.pool.home(gid)
        while True:
            member = home if home is not None and self.pool.state(home) == UP else self.pool.place(tried)
            home = None
            if member is None:
                if last_error is not None:
                    raise last_error
                raise Aria2ConnectionError(self.pool.members[0].rpc_url, "no daemon of the pool answers")
            try:
                return member, self.fanout.one(member, job)
            except Aria2ConnectionError as error:
                if error.maybe_applied:
                    if gid is None:
                        raise  # (a GID of aria2's choosing: added or not, nobody can tell)
                    self.pool.may_hold(gid, member)
                tried.append(member)
                last_error = error

    def add_uri(
        self, uris: Sequence[str], options: Mapping[str, Any] | None = None, position: int | None = None
    ) -> str:
        gid = (options or {}).get("gid")
        member, added = self._placed(gid, lambda rpc: rpc.add_uri(uris, options, position))
        self.pool.settle(added, member)
        return added

    def add_uri_once(
        self, uris: Sequence[str], options: Mapping[str, Any], gid: str, attempts: int = 4
    ) -> None:
        member, _ = self._placed(gid, lambda rpc: rpc.add_uri_once(uris, options, gid, attempts))
        self.pool.settle(gid, member)

    def add_torrent(
        self, torrent: bytes, uris: Sequence[str] = (), options: Mapping[str, Any] | None = None
    ) -> str:
        gid = (options or {}).get("gid")
        member, added = self._placed(gid, lambda rpc: rpc.add_torrent(torrent, uris, options))
        self.pool.settle(added, member)
        return added

    def add_torrent_once(
        self, torrent: bytes, options: Mapping[str, Any], gid: str, attempts: int = 4
    ) -> None:
        member, _ = self._placed(gid, lambda rpc: rpc.add_torrent_once(torrent, options, gid, attempts))
        self.pool.settle(gid, member)

    def add_metalink(self, metalink: bytes, options: Mapping[str, Any] | None = None) -> list[str]:
        member, gids = self._placed(None, lambda rpc: rpc.add_metalink(metalink, options))
        for gid in gids:
            self.pool.settle(gid, member)
        return gids

    def add_many_once(
        self,
        items: Sequence[tuple[Sequence[str], Mapping[str, Any], str]],
        attempts: int = 4,
        chunk_size: int = 1000,
    ) -> list[Aria2RPCError | None]:
        """Spread ``items`` over the daemons that answer (each placed as :meth:`place` says),
        one :meth:`Aria2RPC.add_many_once` per daemon, all at once; the items of a daemon that
        cannot be reached go to the others."""
        outcome: list[Aria2RPCError | None] = [None] * len(items)
        pending = list(range(len(items)))
        tried: list[Member] = []
        last_error: Aria2ConnectionError | None = None
        while pending:
            shares: dict[Member, list[int]] = {}
            for i in pending:
                member = self.pool.place(tried)
                if member is None:
                    raise self._none_left(last_error, done=len(items) - len(pending))
                shares.setdefault(member, []).append(i)
            jobs = {
                member: functools.partial(_add_many, [items[i] for i in share], attempts, chunk_size)
                for member, share in shares.items()
            }
            pending = []
            for member, answer in self.fanout.run(jobs).items():
                share = shares[member]
                if isinstance(answer, Aria2ConnectionError):
                    tried.append(member)
                    last_error = answer
                    pending += share
                    if answer.maybe_applied:
                        for i in share:
                            self.pool.may_hold(items[i][2], member)
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                for i, refusal in zip(share, answer):
                    outcome[i] = refusal
                    if refusal is None:
                        self.pool.settle(items[i][2], member)
            pending.sort()
        return outcome

    def _none_left(self, last_error: Aria2ConnectionError | None, done: int) -> Aria2ConnectionError:
        """The error of a batch add that no daemon is left to take, ``done`` items being added."""
        error = last_error or Aria2ConnectionError(
            self.pool.members[0].rpc_url, "no daemon of the pool answers"
        )
        if done:
            error.maybe_applied = True
        error.items_done = done  # type: ignore[attr-defined]  # (read by the batch add, as for one daemon)
        return error
