"""JSON-RPC over HTTP to aria2: sessions, retries with backoff, the secret, error mapping.

This is the only module that touches the network. It knows the JSON-RPC envelope and aria2's
ways of answering (see ``aria2-facts``: errors come as HTTP 400/500 with a JSON body, the secret
travels as a ``token:`` first parameter, ``system.multicall`` needs the token inside each call),
but nothing about downloads.

Retry rules (guarantee 8 of the design):

* connection errors (nothing reached the daemon) are retried for every method;
* read errors and read timeouts are retried only for read-only methods, because the daemon may
  already have applied the call;
* an HTTP answer is never retried: 400/500 carry aria2's own errors, and ``Unauthorized`` is
  answered late on purpose;
* the n-th retry waits ``retry_delay * 2**(n-1)`` seconds, capped at ``max_retry_delay``.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from .errors import (
    Aria2AuthError,
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2ProtocolError,
    Aria2RPCError,
    Aria2TimeoutError,
    redact_url,
)

logger = logging.getLogger("aria2_sync")

#: Methods that change nothing in the daemon: safe to send again after a lost answer.
READ_ONLY_METHODS = frozenset(
    {
        "aria2.getVersion",
        "aria2.getSessionInfo",
        "aria2.tellStatus",
        "aria2.tellActive",
        "aria2.tellWaiting",
        "aria2.tellStopped",
        "aria2.getUris",
        "aria2.getFiles",
        "aria2.getPeers",
        "aria2.getServers",
        "aria2.getOption",
        "aria2.getGlobalOption",
        "aria2.getGlobalStat",
        "aria2.saveSession",
        "system.listMethods",
        "system.listNotifications",
    }
)

#: Timeout of one HTTP exchange, in seconds. aria2 answers a wrong secret 1-2 s late on purpose,
#: so anything under ~3 s would turn an auth error into a misleading timeout.
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_RETRY_DELAY = 30.0

#: aria2's two ways of saying it does not know a GID (the second for an evicted result).
_GID_NOT_FOUND = re.compile(r"GID ([0-9A-Fa-f]+) is not found|No such download for GID#([0-9A-Fa-f]+)")

Timeout = Union[float, Tuple[float, float]]

#: ``identity``: aria2 would gzip a large answer (a multicall of 1000 statuses is ~0.4 MB),
#: which costs more CPU on both ends than it saves on a loopback or LAN link.
_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}


def _sleep(seconds: float) -> None:
    """Wait between transport retries (a seam so tests can record the schedule)."""
    time.sleep(seconds)


class ExponentialRetry(Retry):
    """urllib3 ``Retry`` whose n-th retry waits ``backoff_factor * 2**(n-1)`` seconds.

    urllib3's own schedule waits 0 s before the first retry and ``factor * 2**(n-1)`` after;
    the documented schedule here is 1, 2, 4 s ... for a factor of 1, so the first retry waits too.
    Each wait is logged with the reason, like the seed guide's sample output.
    """

    def get_backoff_time(self) -> float:
        consecutive = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            consecutive += 1
        if consecutive == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * (2 ** (consecutive - 1))))

    def _sleep_backoff(self) -> None:
        delay = self.get_backoff_time()
        attempt = len(self.history)
        remaining = self.total if isinstance(self.total, int) else 0
        reason = describe_network_error(self.history[-1].error) if self.history else "unknown"
        logger.warning("connection failed (attempt %d/%d): %s", attempt, attempt + remaining, reason)
        if delay > 0:
            logger.info("waiting %.1f s before retrying...", delay)
            _sleep(delay)


def describe_network_error(error: Optional[BaseException]) -> str:
    """A few words for a low-level network error: the innermost OS reason when there is one."""
    if error is None:
        return "unknown error"
    best = str(error)
    for cause in _causes(error):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        if isinstance(cause, (TimeoutError, ReadTimeoutError)) or (
            isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
        ):
            return "connection timed out"  # (urllib3's NewConnectionError subclasses the timeout)
    if "Connection aborted" in best or "RemoteDisconnected" in best:
        return "the daemon closed the connection without answering"
    return best


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: urllib3's ``reason``, exception args, causes, contexts."""
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in getattr(current, "args", ()) if isinstance(a, BaseException)), None)
        current = nxt or current.__cause__ or current.__context__


def _caused_by(error: BaseException, kinds: Any) -> bool:
    return any(isinstance(cause, kinds) for cause in _causes(error))


def _was_never_sent(error: BaseException) -> bool:
    """True when a ``requests`` error proves the request never reached the daemon."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    return _caused_by(error, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError))


class _Channel:
    """Two sessions for one thread's use: one retries read errors, the other must not."""

    def __init__(self, read_retry: Retry, connect_retry: Retry) -> None:
        self.read_only = self._session(read_retry)
        self.mutating = self._session(connect_retry)

    @staticmethod
    def _session(retry: Retry) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # an http_proxy variable must not capture loopback RPC traffic
        adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def close(self) -> None:
        self.read_only.close()
        self.mutating.close()


class Transport:
    """Sends JSON-RPC calls to one aria2 daemon; safe to share between threads.

    ``requests.Session`` is not documented as thread-safe, so each call borrows a channel (a pair
    of sessions with their keep-alive connections) from a small pool and returns it afterwards:
    concurrent callers never share a session, and a thread waiting out a backoff holds only its
    own channel.
    """

    def __init__(
        self,
        rpc_url: str,
        secret: Optional[str] = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
    ) -> None:
        self.rpc_url = rpc_url
        self._secret = secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._ids = itertools.count(1)
        self._idle: List[_Channel] = []
        self._lock = threading.Lock()
        self._closed = False
        common: Dict[str, Any] = dict(
            total=max_retries,
            connect=max_retries,
            status=0,
            other=0,
            redirect=0,
            raise_on_status=False,
            respect_retry_after_header=False,
            backoff_factor=retry_delay,
            backoff_max=max_retry_delay,
        )
        self._read_retry = ExponentialRetry(
            read=max_retries, allowed_methods=frozenset({"POST"}), **common
        )
        self._connect_retry = ExponentialRetry(read=False, **common)

    def __repr__(self) -> str:
        secret = ", secret=***" if self._secret else ""
        return f"Transport({redact_url(self.rpc_url)!r}{secret})"

    # -- public calls ---------------------------------------------------------------------------

    def call(self, method: str, params: Sequence[Any] = (), *, read_only: Optional[bool] = None) -> Any:
        """Call ``method`` and return its result, or raise the mapped :class:`Aria2Error`.

        ``read_only`` overrides whether read errors may be retried (default: by method name).
        """
        if read_only is None:
            read_only = method in READ_ONLY_METHODS
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": self._authenticated(method, params),
        }
        body = self._post(payload, method, read_only)
        if "error" in body and body["error"] is not None:
            raise self.error_from_rpc(body["error"], method, params)
        if "result" not in body:
            raise Aria2ProtocolError(self.rpc_url, "a JSON object with neither result nor error")
        return body["result"]

    def multicall(
        self, calls: Sequence[Tuple[str, Sequence[Any]]]
    ) -> List[Union[Any, Aria2RPCError]]:
        """Send ``calls`` in one ``system.multicall`` round trip.

        Returns one entry per call, in order: the call's result, or the :class:`Aria2RPCError`
        it produced (not raised: one refused item must not hide the others' results).
        """
        if not calls:
            return []
        inner = [
            {"methodName": method, "params": self._authenticated(method, params)}
            for method, params in calls
        ]
        read_only = all(method in READ_ONLY_METHODS for method, _ in calls)
        results = self.call("system.multicall", [inner], read_only=read_only)
        if not isinstance(results, list) or len(results) != len(calls):
            raise Aria2ProtocolError(self.rpc_url, "a multicall answer of the wrong length")
        out: List[Union[Any, Aria2RPCError]] = []
        for (method, params), item in zip(calls, results):
            if isinstance(item, list) and len(item) == 1:
                out.append(item[0])
            elif isinstance(item, dict) and "code" in item:
                out.append(self.error_from_rpc(item, method, params))
            else:
                raise Aria2ProtocolError(
                    self.rpc_url, self._scrub(f"an unexpected multicall item {item!r:.80}")
                )
        return out

    def close(self) -> None:
        """Close every pooled connection. Calls made afterwards open new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for channel in idle:
            channel.close()

    # -- internals ------------------------------------------------------------------------------

    def _authenticated(self, method: str, params: Sequence[Any]) -> List[Any]:
        params = list(params)
        if self._secret is not None and not method.startswith("system."):
            params.insert(0, f"token:{self._secret}")
        return params

    @contextmanager
    def _channel(self) -> Iterator[_Channel]:
        with self._lock:
            channel = self._idle.pop() if self._idle else None
        if channel is None:
            channel = _Channel(self._read_retry, self._connect_retry)
        try:
            yield channel
        finally:
            with self._lock:
                self._idle.append(channel)

    def _post(self, payload: Dict[str, Any], method: str, read_only: bool) -> Dict[str, Any]:
        data = json.dumps(payload)
        started = time.monotonic()
        cut_short = 0  # answers whose body broke off (read after urllib3's retries are done)
        with self._channel() as channel:
            session = channel.read_only if read_only else channel.mutating
            while True:
                try:
                    response = session.post(
                        self.rpc_url,
                        data=data,
                        headers=_HEADERS,
                        timeout=self.timeout,
                        allow_redirects=False,
                    )
                    break
                except requests.exceptions.ChunkedEncodingError as error:
                    if not read_only or cut_short >= self.max_retries:
                        raise self._network_error(error, read_only) from error
                    cut_short += 1
                    delay = min(self.max_retry_delay, self.retry_delay * 2 ** (cut_short - 1))
                    logger.warning(
                        "the answer to %s broke off (attempt %d/%d); retrying in %.1f s",
                        method, cut_short, self.max_retries, delay,
                    )
                    _sleep(delay)
                except requests.exceptions.RequestException as error:
                    raise self._network_error(error, read_only) from error
        logger.debug(
            "%s -> HTTP %s in %.1f ms", method, response.status_code, (time.monotonic() - started) * 1e3
        )
        return self._decode(response)

    def _network_error(self, error: requests.exceptions.RequestException, read_only: bool) -> Exception:
        retried = isinstance(getattr(error, "args", [None])[0], MaxRetryError)
        attempts = self.max_retries + 1 if retried else 1
        if isinstance(error, requests.exceptions.ReadTimeout) or _caused_by(error, ReadTimeoutError):
            read_timeout = self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout
            return Aria2TimeoutError(self.rpc_url, read_timeout, attempts=attempts)
        if isinstance(error, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                              requests.exceptions.InvalidSchema)):
            return Aria2InputError(
                f"rpc_url {redact_url(self.rpc_url)!r} is not a usable URL: give one like "
                "http://127.0.0.1:6800/jsonrpc"
            )
        never_sent = _was_never_sent(error)
        return Aria2ConnectionError(
            self.rpc_url,
            describe_network_error(error),
            attempts=attempts,
            maybe_applied=not never_sent,
        )

    def _decode(self, response: requests.Response) -> Dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            content_type = response.headers.get("Content-Type", "no content type")
            snippet = self._scrub(response.text[:60].strip())
            raise Aria2ProtocolError(
                self.rpc_url, f"HTTP {response.status_code}, {content_type}, body {snippet!r}"
            )
        return body

    def error_from_rpc(
        self, error: Any, method: str, params: Sequence[Any] = ()
    ) -> Aria2RPCError:
        """Map one JSON-RPC error object to the matching :class:`Aria2RPCError` subclass."""
        if not isinstance(error, dict):
            return Aria2RPCError(-1, self._scrub(str(error)), method)
        try:
            code = int(error.get("code", -1))
        except (TypeError, ValueError):
            code = -1
        message = self._scrub(str(error.get("message", "")))
        if message == "Unauthorized":
            return Aria2AuthError(code, message, method)
        match = _GID_NOT_FOUND.search(message)
        if match:
            return Aria2GIDNotFoundError(code, message, method, match.group(1) or match.group(2))
        return Aria2RPCError(code, message, method)

    def _scrub(self, text: str) -> str:
        """Remove the secret from text that came back from the other side (never echo it)."""
        if self._secret:
            text = text.replace(self._secret, "***")
        return text
