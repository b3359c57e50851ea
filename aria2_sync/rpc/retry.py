"""When a failed exchange with aria2 is tried again, and how long the transport waits first.

A call whose answer was lost may or may not have been applied by the daemon, so what may be
retried depends on the method:

* connection errors (nothing reached the daemon) are retried for every method;
* read errors and read timeouts are retried only for read-only methods, because the daemon may
  already have applied the call;
* an HTTP answer is never retried: aria2 answers its own errors as HTTP 400 or 500 with a JSON
  body, and it answers a wrong secret (``Unauthorized``) 1-2 s late on purpose;
* the n-th retry waits ``retry_delay * 2**(n-1)`` seconds, capped at ``max_retry_delay``.

The retries are urllib3's: :func:`retry_for` builds the :class:`ExponentialRetry` that a channel
mounts as its ``HTTPAdapter``'s ``max_retries`` (see :mod:`aria2_sync.rpc.channel`), so urllib3
retries whatever fails before the answer's headers are in. This module knows nothing of HTTP
sessions or JSON-RPC; it also names low-level network errors in a few words
(:func:`describe_network_error`), for its log lines and for the transport's errors, and says
what to fix when TLS with the daemon failed (:func:`tls_problem`; never retried: urllib3 counts a
TLS error as an "other" error, and the Retry allows none).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from ..logs import logger

if TYPE_CHECKING:  # annotations only: typing.Self is not there at run time on Python < 3.11
    from typing import Self

__all__ = [
    "ExponentialRetry",
    "RetryChannel",
    "backoff_delay",
    "caused_by",
    "describe_network_error",
    "is_bad_url",
    "retry_for",
    "tls_problem",
    "was_never_sent",
]

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


def backoff_delay(retry: int, retry_delay: float, max_retry_delay: float) -> float:
    """The wait before the ``retry``-th retry (1-based): ``retry_delay * 2**(retry-1)``, capped."""
    return float(min(max_retry_delay, retry_delay * 2 ** (retry - 1)))


class RetryChannel(Protocol):
    """What a bound :class:`ExponentialRetry` needs from the channel whose call it retries
    (:class:`aria2_sync.rpc.channel.Channel` is one)."""

    #: Set once the transport is closed: no retry is sent, and a backoff wait ends at once.
    closing: threading.Event

    @property
    def timed_out(self) -> bool:
        """Whether the last exchange was cut off at its deadline."""

    def pause(self) -> None:
        """The call waits out a backoff: its deadline is not watched meanwhile."""

    def resume(self) -> None:
        """A retry begins: a new exchange with a fresh deadline."""


class ExponentialRetry(Retry):
    """The urllib3 ``Retry`` mounted on every channel's adapter: it retries transport failures.

    * The n-th retry waits ``backoff_factor * 2**(n-1)`` seconds, capped at ``backoff_max``
      (urllib3's own schedule waits 0 s before the first retry; the documented one is 1, 2, 4 s
      ... for a factor of 1). Each retry logs the failed attempt and the wait.
    * Bound to a channel (``channel=``; :meth:`new` carries it along, as urllib3 makes a new
      object at every retry), it keeps the transport's promises: a backoff wait has no deadline,
      :meth:`~aria2_sync.rpc.transport.Transport.close` ends the wait early, each retry starts a
      new exchange with its own deadline, and once the transport is closed the retries are
      exhausted (no new connection is opened).

    A channel serves one call at a time, so a Retry bound to it is only used by that call's
    thread. Unbound (``channel=None``), it is a plain Retry with this schedule and these logs.
    """

    def __init__(self, *args: Any, channel: RetryChannel | None = None, **kwargs: Any) -> None:
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
        if self.channel is not None and self.channel.timed_out:
            return "no answer within the timeout"
        return describe_network_error(self.history[-1].error) if self.history else "unknown error"


def retry_for(
    channel: RetryChannel, *, read_only: bool, max_retries: int, retry_delay: float, max_retry_delay: float
) -> ExponentialRetry:
    """The urllib3 Retry of ``channel`` for one kind of call (the rules: module docstring).

    Connection errors are retried for every call, read errors (``read``) only for read-only
    ones; HTTP answers never (no status or redirect retries, ``Retry-After`` ignored).
    """
    return ExponentialRetry(
        total=max_retries,
        connect=max_retries,
        read=max_retries if read_only else False,
        status=0,
        other=0,
        redirect=0,
        allowed_methods=frozenset({"POST"}),
        raise_on_status=False,
        respect_retry_after_header=False,
        backoff_factor=retry_delay,
        backoff_max=max_retry_delay,
        channel=channel,
    )


def describe_network_error(error: BaseException | None) -> str:
    """A few words for a low-level network error: the innermost OS reason when there is one."""
    if error is None:
        return "unknown error"
    best = str(error)
    for cause in causes(error):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
        if isinstance(cause, (TimeoutError, ReadTimeoutError)) or (
            isinstance(cause, ConnectTimeoutError) and not isinstance(cause, NewConnectionError)
        ):
            return "connection timed out"  # (urllib3's NewConnectionError subclasses the timeout)
    if "Connection aborted" in best or "RemoteDisconnected" in best:
        return "the daemon closed the connection without answering"
    return best


def tls_problem(error: BaseException, where: str) -> tuple[str, bool] | None:
    """What to say when TLS with the daemon failed, and whether that proves nothing was sent
    (the handshake failed); None when ``error`` is no TLS error."""
    for cause in causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            message = (
                f"connection to aria2 at {where} failed: the daemon's TLS certificate was not "
                f"accepted ({cause.verify_message or cause.reason}). If a private CA signed it, give "
                "that CA's PEM file (or the certificate itself) as rpc_ca_file; the certificate must "
                "name the host of rpc_url."
            )
            return message, True
        if isinstance(cause, ssl.SSLError):
            message = (
                f"connection to aria2 at {where} failed in TLS ({cause.reason or cause}). If the daemon "
                "speaks plain HTTP, give an http:// rpc_url, or run aria2c with --rpc-secure=true."
            )
            # An answer in plain HTTP to the handshake's first message: nothing was sent.
            return message, cause.reason == "WRONG_VERSION_NUMBER"
    return None


def causes(error: BaseException) -> Iterator[BaseException]:
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


def caused_by(error: BaseException, kinds: Any) -> bool:
    """Whether ``error`` or anything it wraps is of ``kinds``."""
    return any(isinstance(cause, kinds) for cause in causes(error))


def is_bad_url(error: BaseException) -> bool:
    """Whether ``requests`` refused the RPC URL itself (nothing to retry)."""
    return isinstance(
        error,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
    )


def was_never_sent(error: BaseException) -> bool:
    """True when a ``requests`` error proves the request never reached the daemon."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    return caused_by(error, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError))
