"""JSON-RPC calls to one aria2 daemon: the envelope, the secret, and aria2's errors.

This is the only module that sends anything to aria2, and it knows nothing about downloads. It
knows how aria2 answers: success is HTTP 200; errors come as HTTP 400 or 500 with a JSON body
(``{"code": 1, "message": "Unauthorized"}`` for a wrong secret, ``GID <gid> is not found`` for an
unknown GID), so the body is parsed whatever the status. The secret travels as a ``token:<secret>``
first parameter of every ``aria2.*`` method, and ``system.multicall`` needs it inside each of its
calls; each call of a multicall answers a one-element list ``[result]`` or a bare
``{"code", "message"}`` object.

What is retried, and when, is :mod:`aria2_sync.rpc.retry`'s to say; how an exchange is held to its
deadline and cut off by :meth:`Transport.close` is :mod:`aria2_sync.rpc.channel`'s. Here, a call
goes through a borrowed channel: urllib3 retries (by the channel's Retry) whatever fails before
the answer's headers are in; the body is streamed after urllib3 has returned, so an answer that
breaks off mid-body is retried by the transport itself, for read-only calls only, with the same
Retry object carried on: the same rules, the same budget of ``max_retries`` retries per call, the
same schedule and log lines. A whole call, with its retries, ends within
:attr:`Transport.call_time_limit`; after :meth:`Transport.close`, a call raises
:class:`~aria2_sync.errors.Aria2ClosedError`.

Nothing we chain to an error keeps the request body (and with it ``token:<secret>``): the
``requests`` exception keeps no request, its traceback frames are cleared, and our own frames
drop the body before the error leaves them.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import traceback
from collections.abc import Sequence
from typing import Any, NoReturn, Union

import requests
import urllib3.exceptions
from urllib3.exceptions import ReadTimeoutError

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
from ..threads import ThreadFactory, daemon_thread
from .channel import Channel, ChannelPool, read_capped
from .encoding import multicall_text, request_text
from .retry import (
    ExponentialRetry,
    backoff_delay,
    caused_by,
    describe_network_error,
    is_bad_url,
    retry_for,
    tls_problem,
    was_never_sent,
)

__all__ = ["Transport", "Timeout", "READ_ONLY_METHODS", "DEFAULT_TIMEOUT", "DEFAULT_MAX_RETRY_DELAY"]

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

#: aria2's two ways of saying it does not know a GID (the second for an evicted result); compiled by
#: :mod:`re` when first needed, not at import.
_GID_NOT_FOUND = r"GID ([0-9A-Fa-f]+) is not found|No such download for GID#([0-9A-Fa-f]+)"

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


def shorten(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was cut (for quoting in errors)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} characters cut)"


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


class Transport:
    """Sends JSON-RPC calls to one aria2 daemon; safe to share between threads.

    Each call borrows a channel of its own (see :mod:`aria2_sync.rpc.channel`), so concurrent
    callers never share a ``requests.Session``.

    ``timeout`` bounds each exchange as a whole, from connecting to the answer's last byte; a
    ``(connect, read)`` pair gives ``connect`` for connecting and ``connect + read`` for the
    exchange. ``max_retries``, ``retry_delay`` and ``max_retry_delay`` set the retries and their
    backoff (see :mod:`aria2_sync.rpc.retry`); ``max_answer_bytes`` bounds the size of an answer
    (a bigger one is an :class:`Aria2ProtocolError`, and is not read); ``thread_factory`` makes
    the watchdog thread of its connections; ``ca_file`` is what an ``https://`` daemon's
    certificate is checked against (None: the CAs ``requests`` trusts). After :meth:`close`,
    calls raise :class:`Aria2ClosedError`.
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
        thread_factory: ThreadFactory = daemon_thread,
        ca_file: str | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self._secret = secret
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.max_answer_bytes = max_answer_bytes
        self._ids = itertools.count(1)
        self._channels = ChannelPool(
            time_limit=lambda: self.exchange_time_limit,
            new_retry=self._retry,
            thread_factory=thread_factory,
            ca_file=ca_file,
        )

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
        return self._channels.closed

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
        """Send ``calls`` in one ``system.multicall`` round trip. Returns one entry per call, in
        order: the call's result, or the :class:`Aria2RPCError` it produced (not raised: one
        refused item must not hide the others' results)."""
        if not calls:
            return []
        read_only = all(method in READ_ONLY_METHODS for method, _ in calls)
        body = self._post("system.multicall", (), read_only, calls=calls)
        results = self._result(body, "system.multicall", ())
        if not isinstance(results, list) or len(results) != len(calls):
            raise Aria2ProtocolError(self.rpc_url, "a multicall answer of the wrong length")
        return [  # (the common item, a one-element list as json.loads makes it, taken inline)
            item[0] if type(item) is list and len(item) == 1 else self._multicall_item(item, method, params)
            for (method, params), item in zip(calls, results)
        ]

    def _multicall_item(self, item: Any, method: str, params: Sequence[Any]) -> Any | Aria2RPCError:
        """One item of a multicall answer: the call's result, or the error it produced."""
        if isinstance(item, list) and len(item) == 1:
            return item[0]
        if isinstance(item, dict) and "code" in item:
            return self.error_from_rpc(item, method, params)
        raise Aria2ProtocolError(self.rpc_url, self._scrub(f"an unexpected multicall item {item!r:.80}"))

    def close(self) -> None:
        """Close every pooled connection and cut off the calls in flight. Idempotent.

        A call in flight raises :class:`Aria2ClosedError` (the daemon may have applied it), and
        so does every call made afterwards (nothing is sent).
        """
        self._channels.close()

    def join(self, timeout: float = 5.0) -> None:
        """After :meth:`close`, wait up to ``timeout`` s for the watchdog thread to end.

        It ends as soon as the calls that :meth:`close` cut off have returned, so a caller that
        has waited for its own threads (the client's monitor and pools) leaves no thread behind.
        """
        self._channels.join(timeout)

    # -- internals ------------------------------------------------------------------------------

    def _result(self, body: dict[str, Any], method: str, params: Sequence[Any]) -> Any:
        if "error" in body and body["error"] is not None:
            raise self.error_from_rpc(body["error"], method, params)
        if "result" not in body:
            raise Aria2ProtocolError(self.rpc_url, "a JSON object with neither result nor error")
        return body["result"]

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

    def _retry(self, channel: Channel, read_only: bool) -> ExponentialRetry:
        """A new channel's urllib3 Retry for one kind of call, by this transport's settings."""
        return retry_for(
            channel,
            read_only=read_only,
            max_retries=self.max_retries,
            retry_delay=self.retry_delay,
            max_retry_delay=self.max_retry_delay,
        )

    def _post(
        self,
        method: str,
        params: Sequence[Any],
        read_only: bool,
        calls: Sequence[tuple[str, Sequence[Any]]] | None = None,
    ) -> dict[str, Any]:
        request_id = next(self._ids)  # (the JSON: aria2_sync.rpc.encoding)
        if calls is None:
            body = _Body(request_text(request_id, method, params, self._secret))
        else:
            body = _Body(multicall_text(request_id, calls, self._secret))
        try:
            channel = self._channels.borrow()
            if channel is None:
                raise self._closed_error(method, in_flight=False)
            try:
                return self._exchanges(channel, body, method, read_only)
            finally:
                self._channels.give_back(channel)
        finally:
            body.data = ""  # no frame of a traceback keeps the secret

    def _exchanges(self, channel: Channel, body: _Body, method: str, read_only: bool) -> dict[str, Any]:
        """Exchange until an answer, retrying what the rules of :mod:`aria2_sync.rpc.retry` allow.

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
                content = read_capped(response, self.max_answer_bytes, self.rpc_url)
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

    def _send(self, channel: Channel, body: _Body, method: str, retry: ExponentialRetry) -> requests.Response:
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
        channel: Channel,
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

    def _fail(self, channel: Channel, method: str, error: requests.exceptions.RequestException) -> NoReturn:
        """Raise the error a call ends with after ``error`` (scrubbed) in its last exchange."""
        if self.closed:
            raise self._closed_error(method, in_flight=channel.exchanges > 0) from None
        raise self._network_error(error, max(1, channel.exchanges), channel.timed_out) from error

    def _network_error(
        self, error: requests.exceptions.RequestException, attempts: int, timed_out: bool
    ) -> Exception:
        if (
            timed_out
            or isinstance(error, requests.exceptions.ReadTimeout)
            or caused_by(error, ReadTimeoutError)
        ):
            return Aria2TimeoutError(self.rpc_url, self.exchange_time_limit, attempts=attempts)
        if is_bad_url(error):
            return Aria2InputError(
                f"rpc_url {redact_url(self.rpc_url)!r} is not a usable URL: give one like "
                "http://127.0.0.1:6800/jsonrpc"
            )
        reason = describe_network_error(error)
        tls = tls_problem(error, redact_url(self.rpc_url))
        if tls is not None:
            message, unsent = tls
            return Aria2ConnectionError(
                self.rpc_url, reason, attempts=attempts, maybe_applied=not unsent, message=message
            )
        return Aria2ConnectionError(
            self.rpc_url, reason, attempts=attempts, maybe_applied=not was_never_sent(error)
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
        match = re.search(_GID_NOT_FOUND, message)
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
