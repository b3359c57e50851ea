"""Typed wrappers for every aria2 RPC method (aria2 1.37's ``system.listMethods``).

One method here is one RPC method there, named in snake case, with aria2's parameters in aria2's
order. They return aria2's JSON (or the obvious Python value); interpretation of what it means for
a download lives above, in the client. The one addition is :meth:`Aria2RPC.add_uri_once`, the
retry-safe ``addUri`` every add and restart goes through.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import (
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2ProtocolError,
    Aria2RPCError,
)
from ..logs import logger
from ..models import status_problem
from .transport import Transport

__all__ = ["Aria2RPC", "Call", "new_gid"]

#: One call for :meth:`Aria2RPC.multicall`: ``(method name, params)`` without the token.
Call = tuple[str, Sequence[Any]]


def new_gid() -> str:
    """A random aria2 GID (16 hex digits, never all zeros).

    aria2_sync picks GIDs itself so that an ``addUri`` retried after a lost answer can be checked
    for ("is that GID there already?") instead of creating a second download.
    """
    while True:
        gid = os.urandom(8).hex()  # (not `secrets`: same source, and cheaper to import)
        if gid != "0" * 16:
            return gid


def _keys(keys: Sequence[str] | None) -> list[Any]:
    return [list(keys)] if keys else []


class Aria2RPC:
    """aria2's RPC methods over a :class:`~aria2_sync.rpc.transport.Transport`."""

    #: Whether a download this daemon no longer has should be added again at the path it was
    #: last seen at (its partial file and control file are where the next daemon writes too).
    #: One daemon: no (it is added as it was first, and finds its file itself); a pool of
    #: daemons on one shared filesystem says yes (:class:`~aria2_sync.rpc.pooled.PooledRPC`).
    resume_lost_on_shared_storage = False

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def call(self, method: str, *params: Any) -> Any:
        """Any aria2 method by its name (``"aria2.getPeers"``, or one newer than this library),
        with ``params`` in aria2's order and without the secret (the transport adds it); aria2's
        answer as it came."""
        return self.transport.call(method, list(params))

    # -- adding and removing --------------------------------------------------------------------

    def add_uri(
        self,
        uris: Sequence[str],
        options: Mapping[str, Any] | None = None,
        position: int | None = None,
    ) -> str:
        params: list[Any] = [list(uris), dict(options or {})]
        if position is not None:
            params.append(position)
        return str(self.transport.call("aria2.addUri", params))

    def add_uri_once(
        self, uris: Sequence[str], options: Mapping[str, Any], gid: str, attempts: int = 4
    ) -> None:
        """``addUri`` under the GID ``gid``, safe to retry: it never makes a second download.

        ``addUri`` is not idempotent, so the transport does not retry it after a lost answer.
        Because the GID is ours, the question "did the lost call add it?" has an answer: ask
        for that GID, and add again only if the daemon does not have it.
        """
        options = {**options, "gid": gid}
        last_error: Aria2ConnectionError | None = None
        for _ in range(max(1, attempts)):
            try:
                self.add_uri(uris, options)
                return
            except Aria2ConnectionError as error:
                if not error.maybe_applied:
                    raise  # nothing reached the daemon; the transport already retried
                last_error = error
            logger.warning("the answer to addUri for GID %s was lost; checking whether it was added", gid)
            try:
                self.tell_status(gid, ["gid"])
                return  # the lost call did add it
            except Aria2GIDNotFoundError:
                continue
        assert last_error is not None
        raise last_error

    def add_torrent(
        self, torrent: bytes, uris: Sequence[str] = (), options: Mapping[str, Any] | None = None
    ) -> str:
        """``aria2.addTorrent``: the payload of the ``.torrent`` ``torrent`` (raw bytes; sent
        base64-encoded, as aria2 wants), with web seeds ``uris``."""
        encoded = base64.b64encode(torrent).decode("ascii")
        return str(self.transport.call("aria2.addTorrent", [encoded, list(uris), dict(options or {})]))

    def add_torrent_once(
        self, torrent: bytes, options: Mapping[str, Any], gid: str, attempts: int = 4
    ) -> None:
        """``addTorrent`` under the GID ``gid``, safe to retry like :meth:`add_uri_once` (aria2
        honours a client-chosen ``gid`` for a torrent as for a URI)."""
        options = dict(options, gid=gid)
        last_error: Aria2ConnectionError | None = None
        for _ in range(max(1, attempts)):
            try:
                self.add_torrent(torrent, (), options)
                return
            except Aria2ConnectionError as error:
                if not error.maybe_applied:
                    raise
                last_error = error
            logger.warning("the answer to addTorrent for GID %s was lost; checking whether it was added", gid)
            try:
                self.tell_status(gid, ["gid"])
                return
            except Aria2GIDNotFoundError:
                continue
        assert last_error is not None
        raise last_error

    def add_metalink(self, metalink: bytes, options: Mapping[str, Any] | None = None) -> list[str]:
        """``aria2.addMetalink``: one GID per file of the document (aria2 chooses them: it
        ignores a ``gid`` option here, so this add cannot be checked after a lost answer)."""
        encoded = base64.b64encode(metalink).decode("ascii")
        return [str(gid) for gid in self.transport.call("aria2.addMetalink", [encoded, dict(options or {})])]

    def add_many_once(
        self,
        items: Sequence[tuple[Sequence[str], Mapping[str, Any], str]],
        attempts: int = 4,
        chunk_size: int = 1000,
    ) -> list[Aria2RPCError | None]:
        """``addUri`` for many ``(uris, options, gid)`` in few round trips, safe to retry.

        Returns, per item, None when it was added or the error aria2 refused it with. Adds go in
        ``system.multicall`` chunks of ``chunk_size`` (1000 adds are ~0.3 MB, well under
        aria2's default 2 MiB request limit; the private daemon allows 64 MiB); after a lost
        answer, one ``tellStatus`` multicall finds which GIDs the lost chunk did add, and only
        the others are sent again.
        """
        outcome: list[Aria2RPCError | None] = [None] * len(items)
        for start in range(0, len(items), chunk_size):
            pending = list(range(start, min(start + chunk_size, len(items))))
            for attempt in range(max(1, attempts)):
                calls = [
                    ("aria2.addUri", [list(items[i][0]), {**items[i][1], "gid": items[i][2]}])
                    for i in pending
                ]
                try:
                    results = self.multicall(calls, chunk_size)
                except Aria2ConnectionError as error:
                    if not error.maybe_applied or attempt == attempts - 1:
                        error.items_done = start  # type: ignore[attr-defined]  # chunks before: added
                        raise
                    logger.warning(
                        "the answer to a batch of %d adds was lost; checking which were added", len(pending)
                    )
                    present = self.multicall([("aria2.tellStatus", [items[i][2], ["gid"]]) for i in pending])
                    pending = [
                        i for i, found in zip(pending, present) if isinstance(found, Aria2GIDNotFoundError)
                    ]
                    if not pending:
                        break
                    continue
                for i, result in zip(pending, results):
                    outcome[i] = result if isinstance(result, Aria2RPCError) else None
                break
        return outcome

    def remove(self, gid: str) -> str:
        return str(self.transport.call("aria2.remove", [gid]))

    def force_remove(self, gid: str) -> str:
        return str(self.transport.call("aria2.forceRemove", [gid]))

    def remove_download_result(self, gid: str) -> str:
        return str(self.transport.call("aria2.removeDownloadResult", [gid]))

    def pause(self, gid: str) -> str:
        return str(self.transport.call("aria2.pause", [gid]))

    def force_pause(self, gid: str) -> str:
        return str(self.transport.call("aria2.forcePause", [gid]))

    def unpause(self, gid: str) -> str:
        return str(self.transport.call("aria2.unpause", [gid]))

    def pause_all(self) -> str:
        return str(self.call("aria2.pauseAll"))

    def force_pause_all(self) -> str:
        return str(self.call("aria2.forcePauseAll"))

    def unpause_all(self) -> str:
        return str(self.call("aria2.unpauseAll"))

    def purge_download_result(self) -> str:
        return str(self.call("aria2.purgeDownloadResult"))

    # -- changing ---------------------------------------------------------------------------------

    def change_position(self, gid: str, pos: int, how: str) -> int:
        """``aria2.changePosition``: ``how`` is ``POS_SET``, ``POS_CUR`` or ``POS_END``; the new
        position in the waiting queue."""
        return int(self.call("aria2.changePosition", gid, pos, how))

    def change_uri(
        self,
        gid: str,
        file_index: int,
        del_uris: Sequence[str],
        add_uris: Sequence[str],
        position: int | None = None,
    ) -> list[int]:
        """``aria2.changeUri`` for the file ``file_index`` (1-based): how many URIs were removed
        and added."""
        params: list[Any] = [gid, file_index, list(del_uris), list(add_uris)]
        if position is not None:
            params.append(position)
        return [int(n) for n in self.call("aria2.changeUri", *params)]

    def change_option(self, gid: str, options: Mapping[str, Any]) -> str:
        return str(self.call("aria2.changeOption", gid, dict(options)))

    def change_global_option(self, options: Mapping[str, Any]) -> str:
        return str(self.call("aria2.changeGlobalOption", dict(options)))

    # -- reading --------------------------------------------------------------------------------

    # Answers are checked for their shape here, where the method is known: a status that is a
    # list or a string is an Aria2ProtocolError naming the method, never an AttributeError later.

    def tell_status(self, gid: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
        return self.checked_status(
            "aria2.tellStatus", self.transport.call("aria2.tellStatus", [gid, *_keys(keys)])
        )

    def tell_active(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return self._statuses("aria2.tellActive", _keys(keys))

    def tell_waiting(self, offset: int, num: int, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return self._statuses("aria2.tellWaiting", [offset, num, *_keys(keys)])

    def tell_stopped(self, offset: int, num: int, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        return self._statuses("aria2.tellStopped", [offset, num, *_keys(keys)])

    def tell_all(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Every download the daemon holds: active, waiting, then stopped, read in one
        ``system.multicall`` (three calls would list a download that moves between them twice)."""
        parts = [("aria2.tellActive", _keys(keys)), ("aria2.tellWaiting", [0, 1 << 30, *_keys(keys)])]
        parts.append(("aria2.tellStopped", [0, 1 << 30, *_keys(keys)]))
        found: list[dict[str, Any]] = []
        for (method, _), answer in zip(parts, self.multicall(parts)):
            if isinstance(answer, Aria2RPCError):
                raise answer
            if not isinstance(answer, list):
                raise self.unreadable(method, f"a {type(answer).__name__} instead of a list")
            found += [self.checked_status(method, item) for item in answer]
        return found

    def get_option(self, gid: str) -> dict[str, str]:
        return self._object("aria2.getOption", self.transport.call("aria2.getOption", [gid]))

    def get_global_option(self) -> dict[str, str]:
        return self._object("aria2.getGlobalOption", self.call("aria2.getGlobalOption"))

    def get_uris(self, gid: str) -> list[dict[str, Any]]:
        return self._list("aria2.getUris", self.call("aria2.getUris", gid))

    def get_files(self, gid: str) -> list[dict[str, Any]]:
        return self._list("aria2.getFiles", self.call("aria2.getFiles", gid))

    def get_peers(self, gid: str) -> list[dict[str, Any]]:
        return self._list("aria2.getPeers", self.call("aria2.getPeers", gid))

    def get_servers(self, gid: str) -> list[dict[str, Any]]:
        return self._list("aria2.getServers", self.call("aria2.getServers", gid))

    def get_session_info(self) -> dict[str, Any]:
        return self._object("aria2.getSessionInfo", self.call("aria2.getSessionInfo"))

    def list_methods(self) -> list[str]:
        return [str(m) for m in self._list("system.listMethods", self.call("system.listMethods"))]

    def list_notifications(self) -> list[str]:
        return [str(m) for m in self._list("system.listNotifications", self.call("system.listNotifications"))]

    def get_global_stat(self) -> dict[str, str]:
        return self._object("aria2.getGlobalStat", self.transport.call("aria2.getGlobalStat"))

    def get_version(self) -> dict[str, Any]:
        return self._object("aria2.getVersion", self.transport.call("aria2.getVersion"))

    def unreadable(self, method: str, problem: str) -> Aria2ProtocolError:
        """The error for an answer to ``method`` that cannot be read (``problem`` says why)."""
        return Aria2ProtocolError(self.transport.rpc_url, f"{method} answered {problem}")

    def checked_status(self, method: str, status: Any) -> dict[str, Any]:
        """``status`` if it is shaped like a ``tellStatus`` answer; else Aria2ProtocolError."""
        problem = status_problem(status)
        if problem is not None:
            raise self.unreadable(method, problem)
        return status  # type: ignore[no-any-return]

    def _statuses(self, method: str, params: list[Any]) -> list[dict[str, Any]]:
        answer = self.transport.call(method, params)
        if not isinstance(answer, list):
            raise self.unreadable(method, f"a {type(answer).__name__} instead of a list")
        return [self.checked_status(method, item) for item in answer]

    def _list(self, method: str, answer: Any) -> list[Any]:
        if not isinstance(answer, list):
            raise self.unreadable(method, f"a {type(answer).__name__} instead of a list")
        return answer

    def _object(self, method: str, answer: Any) -> dict[str, Any]:
        if not isinstance(answer, dict):
            raise self.unreadable(method, f"a {type(answer).__name__} instead of a JSON object")
        return answer

    # -- the daemon -----------------------------------------------------------------------------

    def save_session(self) -> str:
        return str(self.transport.call("aria2.saveSession"))

    def shutdown(self) -> str:
        return str(self.transport.call("aria2.shutdown"))

    def force_shutdown(self) -> str:
        return str(self.transport.call("aria2.forceShutdown"))

    def home_of(self, gid: str) -> str | None:
        """The daemon (its URL without credentials) download ``gid`` lives on, when there is a
        choice of daemons (a pool: :meth:`~aria2_sync.rpc.pooled.PooledRPC.home_of`); None here."""
        return None

    def note_home(self, gid: str, daemon: str) -> None:
        """Download ``gid`` lives on ``daemon`` (as :meth:`home_of` names it), says another
        process sharing the state; nothing to do with one daemon."""

    def probe(self) -> bool:
        """Whether a daemon needs to be asked again while nothing is watched (a pool's in trouble:
        :meth:`~aria2_sync.rpc.pooled.PooledRPC.probe`); one daemon never does."""
        return False

    # -- batching -------------------------------------------------------------------------------

    def multicall(self, calls: Sequence[Call], chunk_size: int = 5000) -> list[Any | Aria2RPCError]:
        """Run ``calls`` in one round trip per ``chunk_size`` calls.

        Each entry is a result or an (unraised) error. Chunks keep a request under aria2's
        ``--rpc-max-request-size`` (2 MiB by default) even for very large batches.
        """
        results: list[Any | Aria2RPCError] = []
        for start in range(0, len(calls), chunk_size):
            results.extend(self.transport.multicall(calls[start : start + chunk_size]))
        return results
