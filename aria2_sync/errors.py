"""The exceptions aria2_sync raises, all under :class:`Aria2Error`.

The tree mirrors the questions a caller asks after a failure:

* was my input wrong? -> :class:`Aria2InputError` (fix the call; nothing was sent), with
  :class:`BadMagnetError`, :class:`BadTorrentError` and :class:`BadMetalinkError` for a
  magnet, ``.torrent`` or metalink that cannot be downloaded from;
* is the daemon there? -> :class:`Aria2ConnectionError` (and its :class:`Aria2TimeoutError`);
* did the daemon refuse? -> :class:`Aria2RPCError` (with :class:`Aria2AuthError` and
  :class:`Aria2GIDNotFoundError` for the two refusals callers handle specially);
* is that even aria2 answering? -> :class:`Aria2ProtocolError`;
* where is aria2c? -> :class:`Aria2BinaryNotFoundError`;
* did my private aria2c start? -> :class:`Aria2DaemonError`;
* did my download end without its file? -> :class:`DownloadFailed` (from a future), and
  :class:`ChecksumMismatch` when the file arrived but is not the one that was expected.

Every message is written to be read by a person and says what to check. None of them ever
contains the RPC secret: URLs are passed through :func:`redact_url` before they are quoted.
All classes are ordinary, truthy exceptions (a falsy exception set on a ``Future`` would come back
from ``result()`` as ``None``) and they pickle with their attributes.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "Aria2Error",
    "Aria2InputError",
    "BadMagnetError",
    "BadTorrentError",
    "BadMetalinkError",
    "Aria2ConnectionError",
    "Aria2TimeoutError",
    "Aria2ProtocolError",
    "Aria2RPCError",
    "Aria2AuthError",
    "Aria2GIDNotFoundError",
    "Aria2BinaryNotFoundError",
    "Aria2DaemonError",
    "DownloadFailed",
    "ChecksumMismatch",
    "Aria2ClosedError",
    "Aria2StateError",
    "Aria2UnknownBatchError",
    "redact_url",
    "redact_text",
]


#: Query parameters whose values are credentials (and, in a magnet URI, the trackers' URLs).
_MASKED_QUERY_KEYS = frozenset({"token", "secret", "password", "passkey"})
_MASKED_MAGNET_KEYS = _MASKED_QUERY_KEYS | {"tr"}


def redact_url(url: str) -> str:
    """Return ``url`` without a password in its user info or a token in its query string.

    An RPC URL may carry credentials (``http://user:pass@host/jsonrpc``); messages and logs quote
    the URL so that the user can see *which* daemon was meant, never *how* to log in to it. A
    magnet URI's trackers (``tr=``) are masked too: a private tracker's URL holds the user's
    passkey.
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = parts.query
    if query:
        masked = _MASKED_MAGNET_KEYS if parts.scheme.lower() == "magnet" else _MASKED_QUERY_KEYS
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = urllib.parse.urlencode([(k, "***" if k.lower() in masked else v) for k, v in pairs])
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: ``scheme://user:password@`` inside free text: the password part is group 2. The patterns are
#: compiled on first use (and kept by :mod:`re`'s cache), not at import: most programs never
#: redact text.
_URL_USERINFO = r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)([^/\s@]*)@"
#: Header lines and aria2 options whose value is a credential, in free text such as aria2c's log
#: (``Authorization: Basic ...``, ``http-passwd=...``, ``--ftp-passwd ...``). Case-insensitive.
_CREDENTIAL_HEADERS = (
    r"((?:proxy-)?authorization\s*:\s*)((?:basic|bearer|digest) +)?([^\s\"',\]}]+)"
    r"|((?:set-)?cookie\s*:\s*)()([^\r\n\"]+)"
)
_CREDENTIAL_OPTIONS = r"((?:[a-z]+-)*passwd[\s=:\"']+|(?:rpc-)?secret[=:\"']+\s*|token:)([^\s\"',\]}]+)"


def redact_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with credentials masked as ``***``, for quoting in messages and output.

    Masks the password of every URL in the text (``http://user:***@host``), the values of
    ``Authorization``/``Cookie`` headers and of ``*-passwd``/``secret`` options, and every exact
    occurrence of the given ``secrets`` (the RPC secret). Used wherever text that came from
    aria2c or from a user's input is shown: daemon log tails, CLI output, example apps.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = re.sub(_URL_USERINFO, lambda m: f"{m.group(1)}***@", text)
    text = re.sub(
        _CREDENTIAL_HEADERS,
        lambda m: f"{m.group(1) or m.group(4)}{m.group(2) or ''}***",
        text,
        flags=re.IGNORECASE,
    )
    return re.sub(_CREDENTIAL_OPTIONS, lambda m: f"{m.group(1)}***", text, flags=re.IGNORECASE)


class Aria2Error(Exception):
    """Base class of every error aria2_sync raises on purpose.

    ``except Aria2Error`` catches everything the library means to report; anything else is a bug.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> Any:
        # Keep subclass attributes across pickling (futures may cross process boundaries).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[Aria2Error], message: str, state: dict[str, Any]) -> Aria2Error:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class Aria2InputError(Aria2Error, ValueError):
    """An argument is invalid: the message names the argument and says what it accepts.

    Raised before anything is sent to the daemon, so downloads already in flight are untouched.
    It is also a ``ValueError`` so generic validation handlers catch it.
    """


class BadMagnetError(Aria2InputError):
    """A magnet URI aria2 could not start from: not a ``magnet:?`` URI, or without a
    BitTorrent info hash (``xt=urn:btih:`` and 40 hex or 32 base32 characters)."""


class BadTorrentError(Aria2InputError):
    """A ``.torrent`` that cannot be used: bytes that are not bencoded or have no ``info``
    dict (with a name and pieces), a file that cannot be read, or a ``files=`` entry the
    torrent does not have (an index out of range, an unknown name)."""


class BadMetalinkError(Aria2InputError):
    """A metalink that cannot be used: not RFC 5854 XML, a file that cannot be read, no file
    described, a file without a URL or with an unsafe name, a URL that the client's URL rules
    refuse (a metalink's URLs are checked like the caller's own), or, for ``add_metalink``,
    several files (``add_metalink_batch`` takes those)."""


class Aria2ConnectionError(Aria2Error):
    """The daemon could not be reached, or stopped answering in the middle of a call.

    ``rpc_url`` is the URL that was tried (without credentials), ``reason`` the low-level cause in
    a few words. ``maybe_applied`` is True when the request may have reached the daemon before the
    connection broke (its answer was lost), so a non-idempotent call may have taken effect.
    The message always contains the word "connection" (the seed guide tests for it).
    When the failed call was an add that may have happened, ``gid`` (or ``batch_id``) names
    what the client keeps watching, so the caller does not add it a second time.
    """

    def __init__(
        self,
        rpc_url: str,
        reason: str,
        *,
        attempts: int = 1,
        maybe_applied: bool = False,
        message: str | None = None,
    ) -> None:
        self.rpc_url = redact_url(rpc_url)
        self.reason = reason
        self.attempts = attempts
        self.maybe_applied = maybe_applied
        self.gid: str | None = None
        self.batch_id: str | None = None
        if message is None:
            tries = "" if attempts <= 1 else f" after {attempts} attempts"
            message = (
                f"connection to aria2 at {self.rpc_url} failed{tries}: {reason}. "
                "Check that aria2c is running with --enable-rpc, that the RPC port in rpc_url is "
                "right (aria2's default is 6800), and that no firewall blocks it."
            )
        super().__init__(message)


class Aria2TimeoutError(Aria2ConnectionError):
    """The daemon accepted the connection but did not answer within the timeout.

    A frozen or overloaded daemon; the request may have been applied (``maybe_applied``).
    """

    def __init__(
        self, rpc_url: str, timeout: float, *, attempts: int = 1, maybe_applied: bool = True
    ) -> None:
        self.timeout = timeout
        safe_url = redact_url(rpc_url)
        tries = "" if attempts <= 1 else f" (after {attempts} attempts)"
        message = (
            f"connection to aria2 at {safe_url} timed out: no answer within {timeout:g} s{tries}. "
            "The daemon may be frozen or overloaded; raise `timeout` if it is just slow."
        )
        super().__init__(
            rpc_url,
            f"no answer within {timeout:g} s",
            attempts=attempts,
            maybe_applied=maybe_applied,
            message=message,
        )


class Aria2ProtocolError(Aria2Error):
    """Something answered at the RPC URL, but not with aria2's JSON-RPC.

    Typically ``rpc_url`` points at a web server or proxy instead of aria2's ``/jsonrpc``.
    """

    def __init__(self, rpc_url: str, detail: str) -> None:
        self.rpc_url = redact_url(rpc_url)
        self.detail = detail
        super().__init__(
            f"the server at {self.rpc_url} did not answer like aria2's JSON-RPC ({detail}). "
            "Check that rpc_url points at aria2's RPC endpoint, e.g. http://127.0.0.1:6800/jsonrpc."
        )


class Aria2RPCError(Aria2Error):
    """aria2 answered the call with a JSON-RPC error.

    ``code`` and ``message`` are aria2's own (aria2 uses code 1 for nearly every refusal, so the
    message carries the detail); ``method`` is the RPC method that was refused.
    """

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.rpc_message = message
        self.method = method
        super().__init__(f"aria2 refused {method}: {message} (code {code})")


class Aria2AuthError(Aria2RPCError):
    """aria2 rejected the RPC secret ("Unauthorized").

    Never retried: aria2 delays this answer on purpose, and a wrong secret stays wrong.
    """

    def __init__(self, code: int, message: str, method: str) -> None:
        super().__init__(code, message, method)
        self.message = (
            f"aria2 refused {method}: Unauthorized. The RPC secret is wrong or missing: pass the "
            "value of aria2c's --rpc-secret as rpc_secret."
        )


class Aria2GIDNotFoundError(Aria2RPCError):
    """aria2 does not know the GID (never added, or its result was removed or evicted)."""

    def __init__(self, code: int, message: str, method: str, gid: str) -> None:
        super().__init__(code, message, method)
        self.gid = gid


class Aria2BinaryNotFoundError(Aria2Error):
    """No usable aria2c executable was found; the message lists where it was looked for."""


class Aria2DaemonError(Aria2Error):
    """A private aria2c could not be started (or stopped); ``log_tail`` holds aria2c's own words."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(f"{message}\naria2c said:\n{log_tail}" if log_tail else message)


class DownloadFailed(Aria2Error):
    """A download ended without its file: aria2's last error, and every attempt before it.

    Raised by ``DownloadFuture.result()``. ``reason`` says why it was not (or no longer)
    restarted; ``attempts`` is the history of failures (dicts with time, error_code,
    error_message, completed_length, gid); ``retry_count`` how many restarts were made.
    """

    def __init__(
        self,
        gid: str,
        url: str,
        error_code: str | None,
        error_message: str | None,
        reason: str,
        attempts: Any = (),
        retry_count: int = 0,
    ) -> None:
        self.gid = gid
        self.retry_count = retry_count
        self.url = redact_url(url)
        self.error_code = error_code
        self.error_message = error_message
        self.reason = reason
        self.attempts = list(attempts)
        code = f"error {error_code}: " if error_code else ""
        detail = f" ({code}{error_message})" if (error_code or error_message) else ""
        super().__init__(f"download {gid} of {self.url} failed{detail}: {reason}")

    @classmethod
    def of(
        cls,
        gid: str,
        url: str,
        error_code: str | None,
        error_message: str | None,
        reason: str,
        attempts: Any = (),
        retry_count: int = 0,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> DownloadFailed:
        """The error of a download that failed for good: the class its failure calls for.

        aria2's error 32 (a checksum did not match) gives a :class:`ChecksumMismatch`, whose
        message says what was expected (``options``: the download's aria2 options, where its
        ``checksum`` is); any other failure a plain :class:`DownloadFailed`. The arguments are
        the constructor's.
        """
        if str(error_code) == CHECKSUM_ERROR_CODE:
            expected = (options or {}).get("checksum")
            return ChecksumMismatch(
                gid,
                url,
                error_code,
                error_message,
                reason,
                attempts,
                retry_count,
                expected=expected if isinstance(expected, str) else None,
            )
        return cls(gid, url, error_code, error_message, reason, attempts, retry_count)


#: aria2's error code for "checksum validation failed" (its exit status 32).
CHECKSUM_ERROR_CODE = "32"


class ChecksumMismatch(DownloadFailed):
    """The whole file arrived, but it is not the file that was expected (aria2's error 32).

    aria2 verified what it downloaded against the hash it was given (the ``checksum=`` of
    ``add_download``/``submit``/a batch item, a metalink's hash, a torrent's pieces) and they
    differ: the server sent other bytes than the ones the hash names (a changed or corrupted
    file, a wrong hash, or something in between rewriting it). The file and its control file
    are left on disk. ``expected`` is the ``checksum`` option it was checked against
    (``"sha-256=<hex>"``: the caller's, or a metalink file's strongest hash), or None when aria2
    had the hash from elsewhere (a torrent's pieces).
    A mismatch is restarted from scratch at most ``RestartPolicy.checksum_restarts`` times (by
    default once: a flaky transfer may fix itself; a wrong hash or a changed file does not).
    """

    def __init__(
        self,
        gid: str,
        url: str,
        error_code: str | None,
        error_message: str | None,
        reason: str,
        attempts: Any = (),
        retry_count: int = 0,
        *,
        expected: str | None = None,
    ) -> None:
        self.expected = expected
        if not error_message:  # (aria2's own message for it is empty)
            algorithm, _, digest = (expected or "").partition("=")
            what = f"its {algorithm} is not the expected {digest}" if digest else "it does not match its hash"
            error_message = f"checksum mismatch: the file arrived whole, but {what}"
        super().__init__(gid, url, error_code, error_message, reason, attempts, retry_count)


class Aria2ClosedError(Aria2Error):
    """The client was closed: a call made afterwards, or a future it could no longer resolve.

    The download itself may still be running in the daemon (``close()`` without ``cancel``).
    ``maybe_applied`` is True when :meth:`Aria2Client.close` cut off a call already sent (the
    daemon may have applied it); ``gid`` then names the download an interrupted add may have
    created.
    """

    def __init__(self, message: str, *, maybe_applied: bool = False, gid: str | None = None) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied
        self.gid = gid


class Aria2StateError(Aria2Error):
    """The shared state (``state=``: an SQLite file or a Redis server) cannot be used: a file
    corrupt, locked too long or at a wrong path; a Redis server unreachable or refusing the
    password. The message names the file or the server (password masked) and says what to do;
    nothing is silently dropped.
    """


class Aria2UnknownBatchError(Aria2InputError, LookupError):
    """No batch has that id in this client (never added here, or forgotten by the retention).

    Its own class so that a web layer can answer 404 without guessing; ``batch_id`` says which.
    """

    def __init__(self, batch_id: Any) -> None:
        self.batch_id = batch_id
        super().__init__(f"unknown batch_id {batch_id!r} (never added, or forgotten)")
