"""The shared-state :class:`~aria2_sync.state.base.Store` in Redis, for processes on several hosts.

An SQLite file is shared by the processes of one host; web workers behind a load balancer run on
several. Redis, which such apps already run, holds the same rows with the same guarantees:

* a download is a hash ``{prefix}d:{gid}`` whose fields are the JSON of the SQLite columns; a
  batch is a hash ``{prefix}b:{batch_id}`` (its GIDs, when it was made, and how many of its
  downloads are still open); ``{prefix}alias:{daemon_gid}`` resolves every daemon-side GID a
  download has had to its handle; ``{prefix}unfinished`` is the set of open downloads;
  ``{prefix}lease:{gid}`` is a restart (or add) lease: a key with a Redis TTL, so a holder that
  dies holds nothing once the TTL runs out (Redis's clock, not the hosts');
* every read-modify-write step is one Lua script (atomic in Redis), so two processes watching
  the same failure restart it once and a failure is appended once per run;
* a download that finishes gets a TTL (``finished_ttl``) on its hash and aliases, and a batch
  whose downloads have all finished gets one too: a process that dies before its retention runs
  leaves nothing for ever. The ledger's own retention (``keep_finished``/``keep_seconds``)
  forgets finished rows sooner; ``finished_ttl`` should be at least the clients' ``keep_seconds``
  (a row gone earlier is only unknown to a process that had not kept it);
* many rows are read in one round trip (a pipeline of ``HGETALL``), since the monitor refreshes
  the rows of the downloads it reads every tick; the unfinished downloads are listed by GID
  alone (the ``unfinished`` set), their rows read only for those a process does not watch yet.

Kept apart from :mod:`aria2_sync.state.base` so that ``import aria2_sync`` does not load
redis-py. The scripts name keys from the prefix themselves, so the store is for one Redis
server (or a primary with replicas), not Redis Cluster.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..errors import Aria2InputError, Aria2StateError, redact_text, redact_url
from ..logs import logger
from .base import ADD_LEASE_SECONDS, Row, Store
from .redis_scripts import CLAIM, FORGET, READ, RECORD_FAILURE, RELEASE, UPDATE

__all__ = ["PASSWORD_ENV", "RedisStore"]

_T = TypeVar("_T")

#: Where the password comes from when the URL has none (never from a command line).
PASSWORD_ENV = "ARIA2_SYNC_REDIS_PASSWORD"

SCHEMA_VERSION = 1


#: The fields of a stored download and their values before anything happened to it.
_DEFAULTS: dict[str, Any] = {
    "batch_id": None,
    "daemon_gids": [],
    "run": 0,
    "failed_run": -1,
    "retry_count": 0,
    "attempts": [],
    "gave_up": None,
    "cancelled": False,
    "outcome": None,
    "finished_at": None,
    "last": None,
}
_KINDS: dict[str, type] = {
    "uris": list,
    "options": dict,
    "daemon_gids": list,
    "attempts": list,
    "last": dict,
}


def _shown(url: str) -> str:
    """``url`` with any password (user info or ``?password=``) as ``***``, ``//`` kept."""
    shown = redact_url(url)
    scheme = url.split(":", 1)[0]
    if url.startswith(f"{scheme}://") and not shown.startswith(f"{scheme}://"):
        shown = f"{scheme}://{shown[len(scheme) + 1 :]}"
    return shown


class RedisStore(Store):
    """A :class:`Store` in Redis, shared by every process (on any host) that opens the same URL.

    ``url``: ``redis://[user:password@]host:6379/0``, ``rediss://`` (TLS) or
    ``unix:///path/redis.sock?db=0``; the password comes from the URL (user info, or redis-py's
    ``?password=``) or, when the URL has none,
    from ``$ARIA2_SYNC_REDIS_PASSWORD``. It is never logged nor shown: messages and ``repr``
    quote the URL with the password as ``***``. Two query parameters are this store's, not
    redis-py's: ``prefix`` (else the ``prefix`` argument) and ``finished_ttl`` (seconds).

    ``prefix``: every key starts with it (default ``aria2_sync:``), so apps can share a server.
    ``finished_ttl``: seconds a finished download (and a finished batch) stays in Redis at most
    (None: until a client's retention forgets it); keep it at least the clients' ``keep_seconds``.
    ``timeout``: seconds to connect and for each reply.

    Raises :class:`~aria2_sync.Aria2InputError` when redis-py is missing or an argument is wrong,
    and :class:`~aria2_sync.Aria2StateError` when the server cannot be reached, refuses the
    password, or holds something else under the prefix; every later call that cannot reach
    Redis raises :class:`~aria2_sync.Aria2StateError` too (the monitor logs it and retries).
    """

    def __init__(
        self,
        url: str,
        prefix: str = "aria2_sync:",
        finished_ttl: float | None = 86400.0,
        timeout: float = 5.0,
    ) -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError:
            raise Aria2InputError(
                f"state={_shown(url)!r} needs redis-py: pip install 'aria2_sync[redis]'"
            ) from None
        self._exceptions = redis.exceptions
        parts = urllib.parse.urlsplit(url)
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        own = {k: v for k, v in pairs if k in ("prefix", "finished_ttl")}
        prefix = own.get("prefix", prefix)
        if "finished_ttl" in own:
            try:
                finished_ttl = float(own["finished_ttl"])
            except ValueError:
                raise Aria2InputError(
                    f"finished_ttl in the Redis URL must be a number of seconds, not {own['finished_ttl']!r}"
                ) from None
        if not isinstance(prefix, str) or not prefix:
            raise Aria2InputError("prefix must be a non-empty str (e.g. 'aria2_sync:')")
        if finished_ttl is not None and not finished_ttl > 0:
            raise Aria2InputError("finished_ttl must be a positive number of seconds, or None")
        kept = urllib.parse.urlencode([(k, v) for k, v in pairs if k not in own])
        # (by hand: urlunsplit would write unix:///path as unix:/path, which redis-py refuses)
        self._url = url.split("?", 1)[0] + (f"?{kept}" if kept else "")
        #: The URL as messages and repr quote it: any password as ``***``.
        self.shown_url = _shown(self._url)
        self.prefix = prefix
        self.finished_ttl = finished_ttl
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._ttl_ms = "0" if finished_ttl is None else str(int(finished_ttl * 1000))
        in_url = parts.password or dict(pairs).get("password")
        self._password = in_url or os.environ.get(PASSWORD_ENV) or None
        self._lost_logged = threading.Event()
        options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
            "retry_on_error": [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
            "decode_responses": True,
        }
        if not in_url and self._password:
            options["password"] = self._password
        try:
            self._redis: Any = redis.Redis.from_url(self._url, **options)
        except (ValueError, TypeError) as error:
            raise Aria2InputError(
                f"state={_shown(url)!r} is not a usable Redis URL ({self._redact(error)}): "
                "use redis://host:6379/0, rediss://host:6380/0 or unix:///path/redis.sock"
            ) from None
        self._update = self._redis.register_script(UPDATE)
        self._claim = self._redis.register_script(CLAIM)
        self._release = self._redis.register_script(RELEASE)
        self._record_failure = self._redis.register_script(RECORD_FAILURE)
        self._forget = self._redis.register_script(FORGET)
        self._read = self._redis.register_script(READ)
        self._run("open", self._open)

    def __repr__(self) -> str:
        return f"<RedisStore {self.shown_url} prefix={self.prefix!r}>"

    # -- plumbing -------------------------------------------------------------------------------

    def _key(self, kind: str, name: str = "") -> str:
        return f"{self.prefix}{kind}{name}"

    def _redact(self, error: object) -> str:
        return redact_text(str(error), [self._password])

    def _run(self, action: str, work: Callable[[], _T]) -> _T:
        errors = self._exceptions
        try:
            return work()
        except errors.AuthenticationError as error:
            hint = f"check the password (in the URL or ${PASSWORD_ENV}) and the user"
            raise self._error(action, error, hint) from None
        except errors.ResponseError as error:
            if "WRONGTYPE" in str(error) or "NOAUTH" in str(error) or "NOPERM" in str(error):
                hint = (
                    "the server wants a password or refuses this user"
                    if "WRONGTYPE" not in str(error)
                    else f"keys under {self.prefix!r} are not an aria2_sync store: choose another prefix"
                )
                raise self._error(action, error, hint) from None
            raise self._error(action, error, "the server refused the command") from None
        except errors.RedisError as error:
            hint = (
                "is redis-server running and reachable there? check the host, port, password "
                f"(URL or ${PASSWORD_ENV}) and TLS (rediss://)"
            )
            raise self._error(action, error, hint) from None

    def _error(self, action: str, error: BaseException, hint: str) -> Aria2StateError:
        return Aria2StateError(
            f"Redis store {self.shown_url!r}: could not {action} "
            f"({type(error).__name__}: {self._redact(error)}): {hint}"
        )

    def _open(self) -> None:
        meta = self._key("meta")
        self._redis.hsetnx(meta, "schema", str(SCHEMA_VERSION))
        version = self._redis.hget(meta, "schema")
        if version != str(SCHEMA_VERSION):
            raise Aria2StateError(
                f"Redis store {self.shown_url!r}: keys under {self.prefix!r} have schema "
                f"version {str(version)[:20]!r}, this aria2_sync uses {SCHEMA_VERSION}: "
                "choose another prefix"
            )

    def _check_kept(self, meta_exists: int) -> None:
        """Say loudly when the server lost the store (restarted without persistence, flushed)."""
        if meta_exists:
            self._lost_logged.clear()
            return
        if not self._lost_logged.is_set():
            self._lost_logged.set()
            logger.error(
                "Redis store %s lost its data (a restart without persistence, a flush or an "
                "eviction): downloads stored before are known only to the processes still "
                "watching them; enable appendonly and maxmemory-policy noeviction",
                self.shown_url,
            )
        self._redis.hsetnx(self._key("meta"), "schema", str(SCHEMA_VERSION))

    def _checked(self, key: str, row: Row) -> Row:
        """``row`` with its JSON kinds checked (a damaged field names the key, not its value)."""
        for name, kind in _KINDS.items():
            value = row.get(name)
            if value is not None and not isinstance(value, kind):
                raise Aria2StateError(
                    f"Redis store {self.shown_url!r}: field {name!r} of {key!r} is a JSON "
                    f"{type(value).__name__}, not a {kind.__name__}: the store is damaged"
                )
        row["cancelled"] = bool(row.get("cancelled"))
        return row

    def _decode(self, key: str, stored: dict[str, str]) -> Row:
        row: Row = {}
        for name, text in stored.items():
            try:
                row[name] = json.loads(text)
            except ValueError:
                raise Aria2StateError(
                    f"Redis store {self.shown_url!r}: field {name!r} of {key!r} is not "
                    "valid JSON: the store is damaged; delete the key or choose another prefix"
                ) from None
        return self._checked(key, row)

    def _read_rows(self, gids: Sequence[str], check_kept: bool = False) -> dict[str, Row]:
        """The stored rows of ``gids`` (those that exist), in one round trip (:data:`READ`)."""
        found: dict[str, Row] = {}
        for start in range(0, max(len(gids), 1), 1000):  # (a script runs alone: keep it short)
            chunk = list(gids[start : start + 1000])
            text = self._read(args=[self.prefix, *chunk])
            try:
                decoded = json.loads(text)
            except ValueError:
                return self._read_rows_one_by_one(gids)  # a damaged field: find and name it
            if check_kept and start == 0:
                self._check_kept(decoded[0])
            for gid, row in zip(chunk, decoded[1:]):
                if row is not None:
                    found[gid] = self._checked(self._key("d:", gid), row)
        return found

    def _read_rows_one_by_one(self, gids: Sequence[str]) -> dict[str, Row]:
        pipe = self._redis.pipeline(transaction=False)
        for gid in gids:
            pipe.hgetall(self._key("d:", gid))
        return {
            gid: self._decode(self._key("d:", gid), stored)
            for gid, stored in zip(gids, pipe.execute())
            if stored
        }

    # -- the interface --------------------------------------------------------------------------

    def add(self, rows: Sequence[Row], batch: tuple[str, list[str]] | None = None) -> None:
        def work() -> None:
            pipe = self._redis.pipeline(transaction=True)  # MULTI/EXEC: all or nothing
            now = time.time()
            for row in rows:
                gid = row["gid"]
                key = self._key("d:", gid)
                fields = {**_DEFAULTS, "batch_id": row.get("batch_id"), "uris": row["uris"]}
                fields.update(options=row["options"], current_gid=row["current_gid"], added_at=now)
                fields["gid"] = gid
                pipe.delete(key)
                pipe.hset(key, mapping={name: json.dumps(v) for name, v in fields.items()})
                pipe.sadd(self._key("unfinished"), gid)
                # Leased until the add is confirmed (Store.release), as in the SQLite store.
                pipe.set(self._key("lease:", gid), self.holder, px=int(ADD_LEASE_SECONDS * 1000))
                if row["current_gid"] != gid:
                    pipe.set(self._key("alias:", row["current_gid"]), gid)
            if batch is not None:
                pipe.hset(
                    self._key("b:", batch[0]),
                    mapping={"gids": json.dumps(batch[1]), "created_at": now, "open": len(rows)},
                )
            pipe.execute()

        self._run("add downloads", work)

    def find(self, gid: str) -> Row | None:
        def work() -> Row | None:
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(self._key("d:", gid))
            pipe.get(self._key("alias:", gid))
            stored, handle = pipe.execute()
            if stored:
                return self._decode(self._key("d:", gid), stored)
            if handle:
                return self._read_rows([handle]).get(handle)
            return None

        return self._run("read a download", work)

    def batch(self, batch_id: str) -> list[Row] | None:
        def work() -> list[Row] | None:
            key = self._key("b:", batch_id)
            text = self._redis.hget(key, "gids")
            if text is None:
                return None
            decoded = self._decode(key, {"gids": text})["gids"]
            if not isinstance(decoded, list):
                raise Aria2StateError(
                    f"Redis store {self.shown_url!r}: the GIDs of {key!r} are not a list: "
                    "the store is damaged"
                )
            found = self._read_rows(decoded)
            return [found[g] for g in decoded if g in found and found[g].get("batch_id") == batch_id]

        return self._run("read a batch", work)

    def rows(self, gids: Sequence[str]) -> dict[str, Row]:
        return self._run("read downloads", lambda: self._read_rows(list(gids), check_kept=True))

    def unfinished(self) -> list[Row]:
        def work() -> list[Row]:
            gids = sorted(self._redis.smembers(self._key("unfinished")))
            found = self._read_rows(gids, check_kept=True)
            return [row for row in found.values() if row.get("outcome") is None]

        return self._run("read downloads", work)

    def unfinished_gids(self) -> list[str]:
        # (the set may still name a download that finished a moment ago: its row says so)
        return self._run("read downloads", lambda: sorted(self._redis.smembers(self._key("unfinished"))))

    def record_failure(self, gid: str, run: int, attempt: dict[str, Any]) -> list[dict[str, Any]]:
        def work() -> list[dict[str, Any]]:
            key = self._key("d:", gid)
            text = self._record_failure(keys=[key], args=[run, json.dumps(attempt)])
            if text is None:
                return [attempt]
            attempts: list[dict[str, Any]] = self._decode(key, {"attempts": text})["attempts"]
            return attempts

        return self._run("record a failure", work)

    def claim_restart(self, gid: str, run: int, lease_seconds: float) -> bool:
        keys = [self._key("d:", gid), self._key("lease:", gid)]
        args: list[Any] = [self.holder, int(lease_seconds * 1000), str(run)]
        return self._run("claim a restart", lambda: bool(self._claim(keys=keys, args=args)))

    def update(self, gid: str, **fields: Any) -> None:
        if not fields:
            return
        args: list[Any] = [self.prefix, gid, self._ttl_ms]
        for name, value in fields.items():
            args += [name, json.dumps(value)]
        self._run("update a download", lambda: self._update(args=args))

    def release(self, gids: Iterable[str]) -> None:
        keys = [self._key("lease:", gid) for gid in gids]
        if keys:
            self._run("release downloads", lambda: self._release(keys=keys, args=[self.holder]))

    def forget(
        self, gids: Iterable[str], batch_ids: Iterable[str] = (), runs: dict[str, int] | None = None
    ) -> None:
        gid_list, batch_list = list(gids), list(batch_ids)
        if not gid_list and not batch_list:
            return
        args: list[Any] = [self.prefix, self._ttl_ms, len(gid_list)]
        for gid in gid_list:
            # Retention (``runs``): only a row still finished at the run this process knows.
            args += [gid, str(runs[gid]) if runs is not None and gid in runs else ""]
        args += batch_list
        self._run("forget downloads", lambda: self._forget(args=args))

    def close(self) -> None:
        self._redis.close()
