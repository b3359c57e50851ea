"""Exchanges with aria2 that end by their deadline: channels, the watchdog, the capped read.

``requests.Session`` is not documented as thread-safe, so the transport sends each call through
a :class:`Channel` (a session with its keep-alive connection) borrowed from a
:class:`ChannelPool` and given back afterwards: concurrent callers never share a session, and a
thread waiting out a backoff holds only its own channel.

Deadlines: a transport's ``timeout`` bounds one exchange as a whole (connecting, sending, and
reading the *entire* answer), not each socket read, so a daemon or proxy that drips its answer a
byte at a time is cut off at the deadline like a silent one. Each retry is a new exchange with a
fresh deadline, which starts when its backoff wait ends (a wait is not watched). Socket timeouts
alone cannot do that, so a watchdog thread (one per pool, only while calls are in flight) shuts
the socket of an exchange down at its deadline; the channel's connection pools tell it which
connection an exchange uses. :meth:`ChannelPool.close` shuts down every exchange in flight and
ends every backoff wait, after which the retries are exhausted and nothing more is sent.

An answer's body is streamed after urllib3 has returned its headers and read up to a size cap
(:func:`read_capped`), so a runaway server cannot make us hold more than that in memory.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ClosedPoolError, ReadTimeoutError

from ..errors import Aria2ProtocolError
from ..threads import ThreadFactory, daemon_thread
from .retry import ExponentialRetry

__all__ = ["Channel", "ChannelPool", "read_capped"]

#: Bytes read per step of an answer's body (each step then checks the size cap).
_CHUNK = 1024 * 1024

#: How often the watchdog looks again at an exchange it has cut off that has not ended yet
#: (one still connecting when its deadline passed has no socket to shut down yet).
_RECHECK = 0.05

#: Why an exchange was cut off.
_DEADLINE = "deadline"
_CLOSED = "closed"

#: Builds a channel's Retry for read-only calls (True) or for the others (False).
RetryFactory = Callable[["Channel", bool], ExponentialRetry]


class _TrackedPool(HTTPConnectionPool):
    """A connection pool that tells its channel which connection an exchange uses."""

    def __init__(self, *args: Any, channel: Channel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aria2_channel = channel

    def _get_conn(self, timeout: float | None = None) -> Any:
        return self._aria2_channel.take(self, super()._get_conn, timeout)


class _TrackedHTTPSPool(HTTPSConnectionPool):
    """:class:`_TrackedPool` for https."""

    def __init__(self, *args: Any, channel: Channel, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._aria2_channel = channel

    def _get_conn(self, timeout: float | None = None) -> Any:
        return self._aria2_channel.take(self, super()._get_conn, timeout)


def _pool_factory(cls: Any, channel: Channel) -> Any:
    def make(*args: Any, **kwargs: Any) -> Any:
        return cls(*args, channel=channel, **kwargs)

    return make


class Channel:
    """One session (with its keep-alive connection) for one call at a time.

    The session's adapter retries through urllib3: ``retries[read_only]`` is the channel's
    :class:`~aria2_sync.rpc.retry.ExponentialRetry` for read-only calls (connection and read
    errors) or for the others (connection errors only), set as the adapter's ``max_retries`` for
    each call. That is safe because a channel serves one call at a time.

    While a call runs, ``deadline`` is the end of its current exchange (infinite while it waits
    out a backoff), ``conn`` the connection it uses, so that the watchdog or ``close()`` can shut
    its socket down, ``cut_off`` says why that happened (None while it has not), and
    ``exchanges`` counts the call's exchanges (connections taken from the pool).
    """

    def __init__(self, pool: ChannelPool, new_retry: RetryFactory) -> None:
        self._pool = pool
        self.closing = pool.closing
        self.deadline = math.inf
        self.conn: Any = None
        self.cut_off: str | None = None
        self.exchanges = 0
        self.retries = {read_only: new_retry(self, read_only) for read_only in (True, False)}
        self.session = requests.Session()
        self.session.trust_env = False  # an http_proxy variable must not capture loopback RPC
        self.session.verify = pool.verify  # (trust_env off: REQUESTS_CA_BUNDLE is not read either)
        self.adapter = HTTPAdapter(max_retries=self.retries[True], pool_connections=1, pool_maxsize=1)
        self.adapter.poolmanager.pool_classes_by_scheme = {
            "http": _pool_factory(_TrackedPool, self),
            "https": _pool_factory(_TrackedHTTPSPool, self),
        }
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    @property
    def timed_out(self) -> bool:
        """Whether the current exchange was cut off at its deadline (not by ``close()``)."""
        return self.cut_off == _DEADLINE

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
        self._pool._pause(self)

    def resume(self) -> None:
        """A retry begins: a new exchange with a fresh deadline."""
        self._pool._arm(self)

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


class ChannelPool:
    """The channels of one transport, and the watchdog that holds their exchanges to deadlines.

    ``time_limit()`` gives the seconds one exchange may take (read at each exchange's start);
    ``new_retry`` builds a new channel's two Retry objects; ``thread_factory`` makes the watchdog
    thread. :meth:`borrow` lends a channel whose
    first exchange is watched; :meth:`give_back` returns it. After :meth:`close`, :attr:`closing`
    is set and :meth:`borrow` lends nothing.
    """

    def __init__(
        self,
        *,
        time_limit: Callable[[], float],
        new_retry: RetryFactory,
        thread_factory: ThreadFactory = daemon_thread,
        ca_file: str | None = None,
    ) -> None:
        #: What an https daemon's certificate is checked against: a CA file, or (True) the CAs
        #: ``requests`` trusts. Never False: a certificate is always checked.
        self.verify: str | bool = ca_file or True
        self._time_limit = time_limit
        self._new_retry = new_retry
        self._new_thread = thread_factory
        self.closing = threading.Event()
        self._idle: list[Channel] = []
        self._busy: set[Channel] = set()
        self._lock = threading.Lock()
        self._watch = threading.Condition(self._lock)
        self._watchdog: threading.Thread | None = None
        self._watchdog_wakes_at = math.inf
        self._calls_started = 0

    @property
    def closed(self) -> bool:
        return self.closing.is_set()

    def borrow(self) -> Channel | None:
        """A channel for one call, its first exchange watched; None once the pool is closed."""
        deadline = time.monotonic() + self._time_limit()
        with self._lock:
            if self.closing.is_set():
                return None
            channel = self._idle.pop() if self._idle else None
            if channel is None:
                channel = Channel(self, self._new_retry)
            channel.exchanges = 0
            channel.begin(deadline)
            self._busy.add(channel)
            self._calls_started += 1
            self._watch_until(deadline)
        return channel

    def give_back(self, channel: Channel) -> None:
        with self._lock:
            self._busy.discard(channel)
            closed = self.closing.is_set()
            if not closed:
                self._idle.append(channel)
            elif not self._busy:
                self._watch.notify()  # the last call cut off by close(): the watchdog may end now
        if closed:
            channel.close()

    def close(self) -> None:
        """Close every idle channel and cut off the exchanges in flight. Idempotent."""
        with self._lock:
            self.closing.set()
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

    def join(self, timeout: float = 5.0) -> None:
        """After :meth:`close`, wait up to ``timeout`` s for the watchdog thread to end."""
        with self._lock:
            watchdog = self._watchdog
        if watchdog is not None and watchdog is not threading.current_thread():
            watchdog.join(timeout)

    def _arm(self, channel: Channel) -> None:
        """Begin the channel's next exchange: a fresh deadline, watched (not once closed)."""
        deadline = time.monotonic() + self._time_limit()
        with self._lock:  # not while the watchdog looks at the previous exchange
            if not self.closing.is_set():
                channel.begin(deadline)
                self._watch_until(deadline)

    def _pause(self, channel: Channel) -> None:
        """The channel's call waits between exchanges: nothing for the watchdog to cut."""
        with self._lock:
            if not self.closing.is_set():
                channel.deadline = math.inf

    def _watch_until(self, deadline: float) -> None:
        """Have the watchdog (started if it is not running) wake up by ``deadline``. Lock held."""
        if self._watchdog is None:
            self._watchdog_wakes_at = deadline
            self._watchdog = self._new_thread("aria2_sync-rpc-watchdog", self._run_watchdog)
            self._watchdog.start()
        elif deadline < self._watchdog_wakes_at:
            self._watch.notify()

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
                    if self.closing.is_set() or seen == self._calls_started:
                        self._watchdog = None  # quiet (or closed): the next call starts another
                        self._watchdog_wakes_at = math.inf
                        return
                    seen = self._calls_started
                    wake_at = now + max(self._time_limit(), 1.0)  # stay a while
                self._watchdog_wakes_at = wake_at
                self._watch.wait(wake_at - now)


def read_capped(response: requests.Response, limit: int, rpc_url: str) -> bytes:
    """The answer's body, read in steps up to ``limit`` bytes (never past it).

    A bigger answer is an :class:`~aria2_sync.errors.Aria2ProtocolError` (``rpc_url`` names the
    daemon in it). A read that fails is raised as the ``requests`` error the transport's retry
    path weighs: a read timeout, a broken chunked encoding, or a connection error.
    """
    announced = response.headers.get("Content-Length", "")
    length = int(announced) if announced.isdigit() else None
    if length is not None and length > limit:
        raise _too_large(rpc_url, limit, f"{length} bytes announced")
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
                raise _too_large(rpc_url, limit, f"more than {limit} bytes sent")
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


def _too_large(rpc_url: str, limit: int, what: str) -> Aria2ProtocolError:
    return Aria2ProtocolError(
        rpc_url,
        f"an answer larger than max_answer_bytes={limit} ({what}); raise "
        "max_answer_bytes if such answers are expected",
    )
