"""JSON-RPC over HTTP to aria2: sessions, retries with backoff, deadlines, the secret, errors.

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

The retries are urllib3's: each call goes through a ``requests.Session`` whose ``HTTPAdapter`` has
an :class:`ExponentialRetry` as its ``max_retries`` (one configuration for read-only calls, one
for the others). urllib3 retries whatever fails before the answer's headers are in. The body is
streamed after urllib3 has returned, so an answer that breaks off mid-body is retried by the
transport itself, for read-only calls only, with the same Retry object carried on: the same
rules, the same budget of ``max_retries`` retries per call, the same schedule and log lines.

Deadlines: ``timeout`` bounds one exchange as a whole (connecting, sending, and reading the
*entire* answer), not each socket read: a daemon or proxy that drips its answer a byte at a time
is cut off at the deadline like a silent one (:class:`Aria2TimeoutError`). A ``(connect, read)``
pair gives ``connect`` for connecting and ``connect + read`` for the exchange. Each retry is a new
exchange with a fresh deadline, which starts when its backoff wait ends (a wait is not watched).
A whole call, with its retries, ends within :attr:`Transport.call_time_limit`. A watchdog thread
(one per transport, only while calls are in flight) shuts the socket of an exchange down at its
deadline, and :meth:`Transport.close` shuts down every exchange in flight and ends every backoff
wait, after which the Retry is exhausted and nothing more is sent: the caller gets
:class:`Aria2ClosedError`.

Nothing we chain to an error keeps the request body (and with it ``token:<secret>``): the
``requests`` exception keeps no request, its traceback frames are cleared, and our own frames
drop the body before the error leaves them.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Union

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ..errors import (
    Aria2AuthError,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2ProtocolError,
    Aria2RPCError,
    Aria2TimeoutError,
    redact_text,
    redact_url,
)
from ..logs import logger

if TYPE_CHECKING:  # annotations only: typing.Self is not there at run time on Python < 3.11
    from typing import Self


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

Timeout = Union[float, tuple[float, float]]

#: Words that announce a credential in free text (see :func:`redact_text`); cheap to look for.
_CREDENTIAL_WORDS = ("authorization", "cookie", "passwd", "secret", "token")

#: ``identity``: aria2 would gzip a large answer (a multicall of 1000 statuses is ~0.4 MB),
#: which costs more CPU on both ends than it saves on a loopback or LAN link.
_HEADERS = {"Content-Type": "application/json", "Accept-Encoding": "identity"}

#: The largest answer read, in bytes. The biggest answers this library asks for are status
#: multicalls: 1000 statuses with ``keys`` are ~0.4 MB, a 5000-call chunk ~2 MB, and downloads with
#: many files or mirrors can be several times that. 64 MiB leaves a wide margin above them while
#: bounding what a runaway (or hostile) server can make us hold in memory.
DEFAULT_MAX_ANSWER_BYTES = 64 * 1024 * 1024

#: How much of a message from the other side an exception quotes.
MESSAGE_LIMIT = 500

#: Bytes read per step of an answer's body (each step then checks the size cap).
_CHUNK = 1024 * 1024

#: How often the watchdog looks again at an exchange it has cut off that has not ended yet
#: (one still connecting when its deadline passed has no socket to shut down yet).
_RECHECK = 0.05

#: Why an exchange was cut off.
_DEADLINE = "deadline"
_CLOSED = "closed"

#: The thread's transport-closing event while it waits out a backoff (see :func:`_sleep`).
_waiting = threading.local()


def _sleep(seconds: float) -> None:
    """Wait between transport retries (a seam so tests can record the schedule).

    Returns early when the transport whose call is waiting is closed.
    """
    closing: threading.Event | None = getattr(_waiting, "closing", None)
    if closing is None:
        time.sleep(seconds)
    else:
        closing.wait(seconds)


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (for quoting in errors)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} characters cut)"


def backoff_delay(retry: int, retry_delay: float, max_retry_delay: float) -> float:
    """The wait before the ``retry``-th retry (1-based): ``retry_delay * 2**(retry-1)``, capped."""
    return float(min(max_retry_delay, retry_delay * 2 ** (retry - 1)))


class ExponentialRetry(Retry):
    """The urllib3 ``Retry`` mounted on every channel's adapter: it retries transport failures.

    * The n-th retry waits ``backoff_factor * 2**(n-1)`` seconds, capped at ``backoff_max``
      (urllib3's own schedule waits 0 s before the first retry; the documented one is 1, 2, 4 s
      ... for a factor of 1). Each retry logs the failed attempt and the wait.
    * Bound to a channel (``channel=``; :meth:`new` carries it along, as urllib3 makes a new
      object at every retry), it keeps the transport's guarantees: the watchdog does not watch
      the wait, :meth:`Transport.close` ends the wait early, each retry starts a new exchange
      with its own deadline, and once the transport is closed the retries are exhausted (no new
      connection is opened).

    A channel serves one call at a time, so a Retry bound to it is only used by that call's
    thread. Unbound (``channel=None``), it is a plain Retry with this schedule and these logs.
    """

    def __init__(self, *args: Any, channel: _Channel | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.channel = channel

    def new(self, **kw: Any) -> Self:
        kw.setdefault("channel", self.channel)
        return super().new(**kw)

    def get_backoff_time(self) -> float:
        consecutive = 0
        for entry in reversed(self.history):
            if entry.redirect_location is not None:
                break
            consecutive += 1
        if consecutive == 0:
            return 0.0
        return backoff_delay(consecutive, self.backoff_factor, self.backoff_max)

    def is_exhausted(self) -> bool:
        """Out of retries, or the transport is closed (urllib3 then gives up at once)."""
        channel = self.channel
        return super().is_exhausted() or (channel is not None and channel.closing.is_set())

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Log the failed attempt, wait out the backoff, and start the next exchange's deadline.

        ``response`` is never given here: answers are not retried, so ``Retry-After`` has no say.
        """
        channel = self.channel
        if channel is not None:
            channel.pause()
        attempt = len(self.history)
        remaining = self.total if isinstance(self.total, int) else 0
        logger.warning("connection failed (attempt %d/%d): %s", attempt, attempt + remaining, self._reason())
        delay = self.get_backoff_time()
        if delay > 0:
            logger.info("waiting %.1f s before retrying...", delay)
            _waiting.closing = channel.closing if channel is not None else None
            try:
                _sleep(delay)
            finally:
                _waiting.closing = None
        if channel is not None:
            channel.resume()

    def _reason(self) -> str:
        """Why the last attempt failed, in a few words."""
        if self.channel is not None and self.channel.cut_off == _DEADLINE:
            return "no answer within the timeout"
        return describe_network_error(self.history[-1].error) if self.history else "unknown error"


def describe_network_error(error: BaseException | None) -> str:
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
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = next((a for a in getattr(current, "args", ()) if isinstance(a, BaseException)), None)
        current = nxt or current.__cause__ or current.__context__


def _caused_by(error: BaseException, kinds: Any) -> bool:
    return any(isinstance(cause, kinds) for cause in _causes(error))


def _bad_url(error: BaseException) -> bool:
    return isinstance(
        error,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
    )


def _was_never_sent(error: BaseException) -> bool:
    """True when a ``requests`` error proves the request never reached the daemon."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    return _caused_by(error, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError))


def _scrub_exception(error: BaseException) -> None:
    """Make ``error`` (and what it chains) forget the request it was about.

    ``requests`` exceptions keep the ``PreparedRequest``, whose body holds ``token:<secret>``,
    and their traceback frames (``requests``' and ``urllib3``'s, all finished) keep it in their
    locals: error trackers that record exception attributes or frame locals would store it.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.RequestException):
            response = current.response
            if response is not None:
                response.request = None  # type: ignore[assignment]
            current.request = None
        if current.__traceback__ is not None:
            traceback.clear_frames(current.__traceback__)  # skips frames still running (ours)
        nxt = current.__cause__ or current.__context__
        if nxt is None:
            nxt = next((a for a in current.args if isinstance(a, BaseException)), None)
        if nxt is None:
            reason = getattr(current, "reason", None)
            nxt = reason if isinstance(reason, BaseException) else None
        current = nxt


def _broken_answer(error: requests.exceptions.RequestException) -> Exception:
    """A read error for urllib3's Retry to weigh, about an answer that broke off mid-body.

    A new object (wrapping the original cause), so that urllib3 re-raising it when the rules
    say no leaves the chained exception as it was.
    """
    cause = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error
    return urllib3.exceptions.ProtocolError("the answer broke off", cause)


class _Body:
    """The encoded request, which holds the secret: emptied when the call ends, whatever happens,
    so that no frame left in a traceback still shows it."""

    __slots__ = ("data",)

    def __init__(self, data: str) -> None:
        self.data = data

    def __repr__(self) -> str:
        return "<request body>"


class _TrackedPool(HTTPConnectionPool):
    """A connection pool that tells its channel which connection an exchange uses."""

    def __init__(self, *args: Any, channel: _Channel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aria2_channel = channel

    def _get_conn(self, timeout: float | None = None) -> Any:
        return self._aria2_channel.take(self, super()._get_conn, timeout)


class _TrackedHTTPSPool(HTTPSConnectionPool):
    """:class:`_TrackedPool` for https."""

    def __init__(self, *args: Any, channel: _Channel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aria2_channel = channel

    def _get_conn(self, timeout: float | None = None) -> Any:
        return self._aria2_channel.take(self, super()._get_conn, timeout)


class _Channel:
    """One session (with its keep-alive connection) for one call at a time.

    The session's adapter retries through urllib3: ``retries[read_only]`` is the channel's
    :class:`ExponentialRetry` for read-only calls (connection and read errors) or for the others
    (connection errors only), set as the adapter's ``max_retries`` for each call. That is safe
    because a channel serves one call at a time.

    While a call runs, ``deadline`` is the end of its current exchange (infinite while it waits
    out a backoff), ``conn`` the connection it uses, so that the watchdog or ``close()`` can shut
    its socket down, ``cut_off`` says why that happened (None while it has not), and
    ``exchanges`` counts the call's exchanges (connections taken from the pool).
    """

    def __init__(self, owner: Transport) -> None:
        self._owner = owner
        self.closing = owner._closing
        self.deadline = math.inf
        self.conn: Any = None
        self.cut_off: str | None = None
        self.exchanges = 0
        self.retries = {read_only: owner._retry(self, read_only=read_only) for read_only in (True, False)}
        self.session = requests.Session()
        self.session.trust_env = False  # an http_proxy variable must not capture loopback RPC
        self.adapter = HTTPAdapter(max_retries=self.retries[True], pool_connections=1, pool_maxsize=1)
        self.adapter.poolmanager.pool_classes_by_scheme = {
            "http": _pool_factory(_TrackedPool, self),
            "https": _pool_factory(_TrackedHTTPSPool, self),
        }
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    def begin(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn = None
        self.cut_off = None

    def take(self, pool: Any, get_conn: Callable[[float | None], Any], timeout: float | None) -> Any:
        """The pool's connection for the next exchange; none once the transport is closed."""
        if self.closing.is_set():
            raise ClosedPoolError(pool, "the aria2 transport is closed")
        conn = get_conn(timeout)
        self.conn = conn
        self.exchanges += 1
        return conn

    def pause(self) -> None:
        """Waiting out a backoff is not exchanging: no deadline (and no watchdog wake-ups)."""
        self._owner._pause(self)

    def resume(self) -> None:
        """A retry begins: a new exchange with a fresh deadline."""
        self._owner._arm(self)

    def cut(self, why: str) -> None:
        """Shut the exchange's socket down (the blocked reader wakes up with an error)."""
        if self.cut_off is None or why == _CLOSED:
            self.cut_off = why
        conn = self.conn
        sock = getattr(conn, "sock", None) if conn is not None else None
        if sock is not None:
            try:
                # socket.socket's own shutdown, also for TLS sockets: it wakes the reader
                # without touching the TLS object the reading thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # already closed

    def close(self) -> None:
        self.session.close()


def _pool_factory(cls: Any, channel: _Channel) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        return cls(*args, channel=channel, **kwargs)

    return make


class Transport:
    """Sends JSON-RPC calls to one aria2 daemon; safe to share between threads.

    ``requests.Session`` is not documented as thread-safe, so each call borrows a channel (a
    session with its keep-alive connection) from a small pool and returns it afterwards:
    concurrent callers never share a session, and a thread waiting out a backoff holds only its
    own channel.

    ``timeout`` bounds each exchange as a whole (see the module's docstring),
    ``max_answer_bytes`` the size of an answer (a bigger one is an :class:`Aria2ProtocolError`,
    and is not read). After :meth:`close`, calls raise :class:`Aria2ClosedError`.
    """

    def __init__(
        self,
        rpc_url: str,
        secret: str | None = None,
        *,
        timeout: Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_delay: float = 1.0,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.rpc_url = rpc_url
        self._secret = secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.max_answer_bytes = max_answer_bytes
        self._ids = itertools.count(1)
        self._idle: list[_Channel] = []
        self._busy: set[_Channel] = set()
        self._lock = threading.Lock()
        self._watch = threading.Condition(self._lock)
        self._watchdog: threading.Thread | None = None
        self._watchdog_wakes_at = math.inf
        self._calls_started = 0
        self._closed = False
        self._closing = threading.Event()

    def __repr__(self) -> str:
        secret = ", secret=***" if self._secret else ""
        return f"Transport({redact_url(self.rpc_url)!r}{secret})"

    @property
    def exchange_time_limit(self) -> float:
        """Seconds one exchange may take, from connecting to the answer's last byte."""
        if isinstance(self.timeout, tuple):
            return float(self.timeout[0]) + float(self.timeout[1])
        return float(self.timeout)

    @property
    def call_time_limit(self) -> float:
        """Seconds a call may take with all its retries and waits between them (an upper bound).

        ``(max_retries + 1) * exchange_time_limit`` plus the backoff before each retry.
        """
        waits = sum(
            backoff_delay(n, self.retry_delay, self.max_retry_delay) for n in range(1, self.max_retries + 1)
        )
        return (self.max_retries + 1) * self.exchange_time_limit + waits

    @property
    def closed(self) -> bool:
        return self._closed

    # -- public calls ---------------------------------------------------------------------------

    def call(self, method: str, params: Sequence[Any] = (), *, read_only: bool | None = None) -> Any:
        """Call ``method`` and return its result, or raise the mapped :class:`Aria2Error`.

        ``read_only`` overrides whether read errors may be retried (default: by method name).
        """
        if read_only is None:
            read_only = method in READ_ONLY_METHODS
        body = self._post(method, params, read_only)
        return self._result(body, method, params)

    def multicall(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any | Aria2RPCError]:
        """Send ``calls`` in one ``system.multicall`` round trip.

        Returns one entry per call, in order: the call's result, or the :class:`Aria2RPCError`
        it produced (not raised: one refused item must not hide the others' results).
        """
        if not calls:
            return []
        read_only = all(method in READ_ONLY_METHODS for method, _ in calls)
        body = self._post("system.multicall", (), read_only, calls=calls)
        results = self._result(body, "system.multicall", ())
        if not isinstance(results, list) or len(results) != len(calls):
            raise Aria2ProtocolError(self.rpc_url, "a multicall answer of the wrong length")
        out: list[Any | Aria2RPCError] = []
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
        """Close every pooled connection and cut off the calls in flight. Idempotent.

        A call in flight raises :class:`Aria2ClosedError` (the daemon may have applied it), and
        so does every call made afterwards (nothing is sent).
        """
        with self._lock:
            self._closed = True
            self._closing.set()
            idle, self._idle = self._idle, []
            for channel in self._busy:
                channel.cut(_CLOSED)
                channel.deadline = -math.inf  # the watchdog cuts it again once it has a socket
            self._watch.notify()
            watchdog = self._watchdog if not self._busy else None
        for channel in idle:
            channel.close()
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(1.0)

    # -- internals ------------------------------------------------------------------------------

    def _result(self, body: dict[str, Any], method: str, params: Sequence[Any]) -> Any:
        if "error" in body and body["error"] is not None:
            raise self.error_from_rpc(body["error"], method, params)
        if "result" not in body:
            raise Aria2ProtocolError(self.rpc_url, "a JSON object with neither result nor error")
        return body["result"]

    def _authenticated(self, method: str, params: Sequence[Any]) -> list[Any]:
        params = list(params)
        if self._secret is not None and not method.startswith("system."):
            params.insert(0, f"token:{self._secret}")
        return params

    def _encode(
        self, method: str, params: Sequence[Any], calls: Sequence[tuple[str, Sequence[Any]]] | None
    ) -> str:
        """The request's JSON, with the secret where aria2 wants it (in each call of a multicall)."""
        if calls is not None:
            params = [
                [{"methodName": name, "params": self._authenticated(name, args)} for name, args in calls]
            ]
        payload = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": self._authenticated(method, params),
        }
        return json.dumps(payload)

    def _closed_error(self, method: str, in_flight: bool) -> Aria2ClosedError:
        where = redact_url(self.rpc_url)
        if in_flight:
            return Aria2ClosedError(
                f"the connection to aria2 at {where} was closed while {method} was in flight; "
                "the daemon may have applied it. Create a new client to go on.",
                maybe_applied=True,
            )
        return Aria2ClosedError(
            f"the connection to aria2 at {where} is closed: {method} was not sent. "
            "Create a new client to go on."
        )

    def _retry(self, channel: _Channel, *, read_only: bool) -> ExponentialRetry:
        """The urllib3 Retry of a channel for one kind of call (the rules: module docstring).

        Connection errors are retried for every call, read errors (``read``) only for read-only
        ones; HTTP answers never (no status or redirect retries, ``Retry-After`` ignored).
        """
        return ExponentialRetry(
            total=self.max_retries,
            connect=self.max_retries,
            read=self.max_retries if read_only else False,
            status=0,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"POST"}),
            raise_on_status=False,
            respect_retry_after_header=False,
            backoff_factor=self.retry_delay,
            backoff_max=self.max_retry_delay,
            channel=channel,
        )

    def _borrow(self, method: str) -> _Channel:
        """A channel for one call, its first exchange watched by the watchdog."""
        deadline = time.monotonic() + self.exchange_time_limit
        with self._lock:
            if self._closed:
                raise self._closed_error(method, in_flight=False)
            channel = self._idle.pop() if self._idle else None
            if channel is None:
                channel = _Channel(self)
            channel.exchanges = 0
            channel.begin(deadline)
            self._busy.add(channel)
            self._calls_started += 1
            self._watch_until(deadline)
        return channel

    def _arm(self, channel: _Channel) -> None:
        """Begin the channel's next exchange: a fresh deadline, watched (not once closed)."""
        deadline = time.monotonic() + self.exchange_time_limit
        with self._lock:  # not while the watchdog looks at the previous exchange
            if not self._closed:
                channel.begin(deadline)
                self._watch_until(deadline)

    def _pause(self, channel: _Channel) -> None:
        """The channel's call waits between exchanges: nothing for the watchdog to cut."""
        with self._lock:
            if not self._closed:
                channel.deadline = math.inf

    def _watch_until(self, deadline: float) -> None:
        """Have the watchdog (started if it is not running) wake up by ``deadline``. Lock held."""
        if self._watchdog is None:
            self._watchdog_wakes_at = deadline
            self._watchdog = threading.Thread(
                target=self._run_watchdog, name="aria2_sync-rpc-watchdog", daemon=True
            )
            self._watchdog.start()
        elif deadline < self._watchdog_wakes_at:
            self._watch.notify()

    def _give_back(self, channel: _Channel) -> None:
        with self._lock:
            self._busy.discard(channel)
            closed = self._closed
            if not closed:
                self._idle.append(channel)
            elif not self._busy:
                self._watch.notify()  # the last call cut off by close(): the watchdog may end now
        if closed:
            channel.close()

    def join(self, timeout: float = 5.0) -> None:
        """After :meth:`close`, wait up to ``timeout`` s for the watchdog thread to end.

        It ends as soon as the calls that :meth:`close` cut off have returned, so a caller that
        has waited for its own threads (the client's monitor and pools) leaves no thread behind.
        """
        with self._lock:
            watchdog = self._watchdog
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(timeout)

    def _run_watchdog(self) -> None:
        """Cut off exchanges past their deadline; ends when no call has run for a while.

        It sleeps until the earliest deadline of the calls in flight, so a call costs it no
        wake-up unless it is late (or starts after a quiet spell): new deadlines come after the
        ones already waited for.
        """
        seen = -1
        with self._lock:
            while True:
                now = time.monotonic()
                wake_at = math.inf
                for channel in self._busy:
                    if channel.deadline <= now:
                        channel.cut(_DEADLINE)
                        wake_at = min(wake_at, now + _RECHECK)
                    else:
                        wake_at = min(wake_at, channel.deadline)
                if wake_at == math.inf:
                    if self._closed or seen == self._calls_started:
                        self._watchdog = None  # quiet (or closed): the next call starts another
                        self._watchdog_wakes_at = math.inf
                        return
                    seen = self._calls_started
                    wake_at = now + max(self.exchange_time_limit, 1.0)  # stay a while
                self._watchdog_wakes_at = wake_at
                self._watch.wait(wake_at - now)

    def _post(
        self,
        method: str,
        params: Sequence[Any],
        read_only: bool,
        calls: Sequence[tuple[str, Sequence[Any]]] | None = None,
    ) -> dict[str, Any]:
        body = _Body(self._encode(method, params, calls))
        try:
            channel = self._borrow(method)
            try:
                return self._exchanges(channel, body, method, read_only)
            finally:
                self._give_back(channel)
        finally:
            body.data = ""  # no frame of a traceback keeps the secret

    def _exchanges(self, channel: _Channel, body: _Body, method: str, read_only: bool) -> dict[str, Any]:
        """Exchange until an answer, retrying what the rules allow (see the module docstring).

        urllib3's Retry (the channel's, mounted on its adapter) retries everything that fails
        before the answer's headers. The body is read after urllib3 returns: an answer that
        breaks off there is retried here, by the same Retry object carried on (same rules,
        same budget of attempts, same schedule).
        """
        retry = channel.retries[read_only]
        while True:
            started = time.monotonic()
            response = self._send(channel, body, method, retry)
            try:
                content = self._read_answer(response)
            except requests.exceptions.RequestException as error:
                response.close()  # a half-read connection cannot be used again
                _scrub_exception(error)
                retry = self._retry_broken_answer(channel, method, response, retry, error)
                continue
            except BaseException:
                response.close()
                raise
            response.raw.release_conn()
            status = response.status_code
            logger.debug("%s -> HTTP %s in %.1f ms", method, status, (time.monotonic() - started) * 1e3)
            return self._decode(status, response.headers.get("Content-Type", "no content type"), content)

    def _send(
        self, channel: _Channel, body: _Body, method: str, retry: ExponentialRetry
    ) -> requests.Response:
        """POST ``body`` through the channel's session, urllib3 retrying by ``retry``.

        Returns once the answer's headers are in (its body is streamed by the caller).
        """
        channel.adapter.max_retries = retry  # the channel serves this call alone
        try:
            response = channel.session.post(
                self.rpc_url,
                data=body.data,  # not a local of this frame: it may stay in a traceback
                headers=_HEADERS,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.RequestException as error:
            _scrub_exception(error)
            self._fail(channel, method, error)
        response.request = None  # type: ignore[assignment]  # its body holds the secret
        return response

    def _retry_broken_answer(
        self,
        channel: _Channel,
        method: str,
        response: requests.Response,
        retry: ExponentialRetry,
        error: requests.exceptions.RequestException,
    ) -> ExponentialRetry:
        """After an answer broke off mid-body: the Retry for one more exchange, once waited for.

        Raises the call's error when the rules say no (a call that is not read-only, no retry
        left, the transport closed). The retry carries on from the Retry urllib3 ended with.
        """
        state = getattr(response.raw, "retries", None)
        if not isinstance(state, ExponentialRetry):
            state = retry
        try:
            following = state.increment("POST", error=_broken_answer(error))
        except urllib3.exceptions.HTTPError:
            following = None  # urllib3's "no": the read error re-raised, or MaxRetryError
        if following is None:
            self._fail(channel, method, error)
        following.sleep()
        return following

    def _fail(self, channel: _Channel, method: str, error: requests.exceptions.RequestException) -> NoReturn:
        """Raise the error a call ends with after ``error`` (scrubbed) in its last exchange."""
        if channel.cut_off == _CLOSED or self._closed:
            raise self._closed_error(method, in_flight=channel.exchanges > 0) from None
        raise self._network_error(error, max(1, channel.exchanges), channel.cut_off == _DEADLINE) from error

    def _read_answer(self, response: requests.Response) -> bytes:
        """The answer's body, read in steps up to ``max_answer_bytes`` (never past it)."""
        limit = self.max_answer_bytes
        announced = response.headers.get("Content-Length", "")
        length = int(announced) if announced.isdigit() else None
        if length is not None and length > limit:
            raise self._too_large(f"{length} bytes announced")
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = raw.read(_CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise self._too_large(f"more than {limit} bytes sent")
                chunks.append(chunk)
                if size == length:
                    break
        except ReadTimeoutError as error:
            raise requests.exceptions.ReadTimeout(error) from error
        except urllib3.exceptions.HTTPError as error:
            raise requests.exceptions.ChunkedEncodingError(error) from error
        except OSError as error:
            raise requests.exceptions.ConnectionError(error) from error
        return b"".join(chunks)

    def _too_large(self, what: str) -> Aria2ProtocolError:
        return Aria2ProtocolError(
            self.rpc_url,
            f"an answer larger than max_answer_bytes={self.max_answer_bytes} ({what}); raise "
            "max_answer_bytes if such answers are expected",
        )

    def _network_error(
        self, error: requests.exceptions.RequestException, attempts: int, timed_out: bool
    ) -> Exception:
        if (
            timed_out
            or isinstance(error, requests.exceptions.ReadTimeout)
            or _caused_by(error, ReadTimeoutError)
        ):
            return Aria2TimeoutError(self.rpc_url, self.exchange_time_limit, attempts=attempts)
        if _bad_url(error):
            return Aria2InputError(
                f"rpc_url {redact_url(self.rpc_url)!r} is not a usable URL: give one like "
                "http://127.0.0.1:6800/jsonrpc"
            )
        return Aria2ConnectionError(
            self.rpc_url,
            describe_network_error(error),
            attempts=attempts,
            maybe_applied=not _was_never_sent(error),
        )

    def _decode(self, status: int, content_type: str, content: bytes) -> dict[str, Any]:
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            snippet = self._scrub(content[:200].decode("utf-8", "replace"))[:60].strip()
            raise Aria2ProtocolError(self.rpc_url, f"HTTP {status}, {content_type}, body {snippet!r}")
        return body

    def error_from_rpc(self, error: Any, method: str, params: Sequence[Any] = ()) -> Aria2RPCError:
        """Map one JSON-RPC error object to the matching :class:`Aria2RPCError` subclass."""
        if not isinstance(error, dict):
            return Aria2RPCError(-1, shorten(self._scrub(str(error))), method)
        try:
            code = int(error.get("code", -1))
        except (TypeError, ValueError, OverflowError):
            code = -1
        message = self._scrub(str(error.get("message", "")))
        if message == "Unauthorized":
            return Aria2AuthError(code, message, method)
        match = _GID_NOT_FOUND.search(message)
        if match:
            return Aria2GIDNotFoundError(code, message, method, match.group(1) or match.group(2))
        return Aria2RPCError(code, shorten(message), method)

    def _scrub(self, text: str) -> str:
        """Mask the secret (and any other credential) in text that came back from the other side.

        The other side may echo what we sent, ``token:<secret>`` included; nothing it says is
        quoted without this.
        """
        if self._secret and self._secret in text:
            text = text.replace(self._secret, "***")
        if "://" in text or ":" in text and any(w in text.lower() for w in _CREDENTIAL_WORDS):
            text = redact_text(text)
        return text
