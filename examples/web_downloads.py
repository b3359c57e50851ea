"""The framework-neutral core of the Flask and Django examples: a small JSON download API.

Both apps are thin adapters over this module; everything that decides *what* happens lives here,
so the two can never drift apart:

* :class:`Settings` -- the configuration, checked once with messages that name the bad key;
* :func:`get_client` / :func:`reset_client` -- one :class:`~aria2_sync.Aria2Client` per process,
  created on first use (never at import, so a forking server can load the app first) and
  shared by all request threads; closed at interpreter exit;
* :func:`create_batch`, :func:`batch_progress`, :func:`retry_batch`, :func:`cancel_batch` --
  the four operations, each returning a :class:`Reply` (status and JSON-ready body);
* :func:`call` -- runs one operation and turns every failure into a JSON error reply.

The HTTP API both apps expose::

    POST   /downloads                  {"urls": ["http://...", ...]}                -> 201 {"batch_id": ...}
                                       {"items": [{"url": "...", "name": "a/b.bin"}]}
    GET    /downloads/<batch_id>       -> 200 BatchProgress.to_dict()
    POST   /downloads/<batch_id>/retry -> 200 {"restarted": n}
    DELETE /downloads/<batch_id>       -> 200 {"cancelled": n}

Errors are ``{"error": "<message>"}``: 400 bad input (a URL the URL policy refuses too), 404
unknown batch, 413 a body too large, 415 a body not declared as JSON, 502 aria2 refused, 503
aria2 (or the state file) unavailable (with ``batch_id`` when the adds may have happened: poll it
rather than post again), 500 anything else (logged, never shown). No response ever carries a
traceback, the RPC secret, a URL password or a path of the server's: paths in progress answers
and in messages are relative to the download root.

Server-side request forgery: the API makes the server fetch URLs its callers give, so by default
(``URL_POLICY``, see :func:`public_http_only`) it only takes http(s) URLs without credentials
whose host resolves to public addresses only: never loopback, private, link-local (the cloud
metadata service at 169.254.169.254), reserved or multicast ones, in any spelling (``127.1``,
``0x7f000001``, ``[::ffff:127.0.0.1]``...). Two limits remain, and no policy checked here can lift
them: aria2 follows HTTP redirects itself (aria2 1.37 has no option to limit or check them), so a
public URL may redirect to an internal one; and aria2 resolves the host again when it connects,
so a DNS name may change its answer in between. Where that matters, make aria2's traffic pass a
proxy that refuses internal addresses (aria2's ``all-proxy`` option), or firewall the daemon.

Deployment notes, because they follow from how aria2_sync works:

* Batches live in the memory of the process that created them (unless ``STATE`` points at a
  shared state file): run one process with many threads, or requests landing on another
  worker answer 404. Finished batches are forgotten after an hour (``keep_seconds``).
* Names are confined to ``DOWNLOAD_ROOT`` as seen from *this* machine, so the daemon must
  write into the same file system (a local daemon, or the same mount).
* The API has no authentication of its own: put it behind your app's.
* A name ending in ``.aria2`` is refused: it is where aria2 keeps another download's control
  file. An existing file is never overwritten: its download fails with error 13.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import logging
import os
import pathlib
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from aria2_sync import (
    Aria2BinaryNotFoundError,
    Aria2Client,
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2DaemonError,
    Aria2Error,
    Aria2InputError,
    Aria2StateError,
    Aria2UnknownBatchError,
)
from aria2_sync.errors import redact_text

__all__ = [
    "ApiError",
    "ConfigurationError",
    "Reply",
    "Settings",
    "UrlPolicy",
    "UrlRefused",
    "allow_any_url",
    "public_http_only",
    "call",
    "cancel_batch",
    "batch_progress",
    "client_arguments",
    "config_from_environ",
    "create_batch",
    "get_client",
    "parse_batch_request",
    "parse_json_object",
    "reset_client",
    "resolve_target",
    "retry_batch",
]

logger = logging.getLogger(__name__)

#: How many files one request may add, unless ``MAX_ITEMS`` says otherwise.
DEFAULT_MAX_ITEMS = 100

#: Client arguments suited to a web request: give up on an unreachable daemon in well under a
#: second (a request should get its 503 quickly, not after the library's 1+2+4 s backoff),
#: and keep the restart budget of failed downloads at the library's usual 3 (it would
#: otherwise follow ``max_retries``). ``CLIENT_OPTIONS`` overrides any of them.
WEB_CLIENT_DEFAULTS: Mapping[str, Any] = {
    "verbose": False,
    "max_retries": 2,
    "retry_delay": 0.25,
    "max_restarts": 3,
    "timeout": (3.05, 10.0),
}

#: The configuration keys (Flask prefixes them with ``ARIA2_SYNC_``; Django reads them from the
#: ``ARIA2_SYNC`` dict).
CONFIG_KEYS = (
    "DOWNLOAD_ROOT",
    "RPC_URL",
    "RPC_SECRET",
    "DAEMONS",
    "STATE",
    "MAX_ITEMS",
    "CLIENT_OPTIONS",
    "URL_POLICY",
)

#: Client arguments that have their own configuration key (or are chosen by Aria2Client.local).
_RESERVED_CLIENT_OPTIONS = frozenset({"rpc_url", "rpc_secret", "state", "daemon_pool"})

#: A longer name is refused by every common file system (255 bytes per component).
_MAX_COMPONENT_BYTES = 255
_MAX_NAME_BYTES = 1024


# -- which URLs the server may fetch -------------------------------------------------------------


class UrlRefused(ValueError):
    """A URL the URL policy does not let the server fetch (answered 400 with the message)."""


#: A URL policy: called with each URL of a request before anything is added; returns to accept
#: it, raises :class:`UrlRefused` (or any ``ValueError``) with a message for the caller to refuse.
UrlPolicy = Callable[[str], None]

_PUBLIC_SCHEMES = frozenset({"http", "https"})


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address on the public internet; False for loopback, private, link-local,
    reserved, multicast, unspecified and shared (CGNAT) ones, and for IPv6 forms of those."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return _is_public(embedded)
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` stands for, as aria2 will look it up (getaddrinfo: the same
    resolver, which also reads ``127.1``, ``2130706433`` or ``0x7f000001`` as IPv4)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise UrlRefused(f"the host {host!r:.80} of the URL cannot be resolved") from None
    return sorted({str(answer[4][0]).split("%", 1)[0] for answer in answers})


def public_http_only(url: str) -> None:
    """The examples' default URL policy: public http(s) URLs only.

    Refuses other schemes (ftp, sftp, file...), credentials in the URL (they would be stored
    and shown), and any host that resolves to a non-public address: loopback, private,
    link-local (cloud metadata), reserved, multicast, in every spelling, IPv4-mapped IPv6
    included. It does not see HTTP redirects, which aria2 follows on its own (see the module
    notes), nor a DNS answer that changes after this check.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise UrlRefused("the URL cannot be parsed") from None
    if parts.scheme.lower() not in _PUBLIC_SCHEMES:
        raise UrlRefused(f"only http and https URLs are allowed, not {parts.scheme or 'no scheme'!r:.20}")
    if "@" in parts.netloc:
        raise UrlRefused("URLs with credentials (user:password@) are not allowed")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    for text in _resolve(host, port):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise UrlRefused(f"the host {host!r:.80} resolves to an address that cannot be checked") from None
        if not _is_public(address):
            raise UrlRefused(
                f"the host {host!r:.80} is not on the public internet ({address}): only public "
                "addresses may be fetched"
            )


def allow_any_url(url: str) -> None:
    """A URL policy that accepts every URL aria2_sync accepts: for tests against a local
    server, or a deployment whose callers are all trusted. Never the default."""


def _check_urls(policy: UrlPolicy, urls: Sequence[str], names: Sequence[str] | None) -> None:
    for i, url in enumerate(urls):
        where = f"urls[{i}]" if names is None else f"items[{i}].url"
        try:
            policy(url)
        except ValueError as error:
            raise ApiError(400, f"{where} is refused: {error}") from None


# -- configuration -------------------------------------------------------------------------------


class ConfigurationError(ValueError):
    """The server's configuration is wrong: a deployment problem, never the API caller's."""


def _optional_text(values: Mapping[str, Any], key: str) -> str | None:
    """A str setting that may be absent; "" counts as absent (an unset environment variable)."""
    value = values.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigurationError(f"{key} must be a str, not {type(value).__name__}")
    return value


def _daemons(value: Any, default_secret: str | None) -> tuple[tuple[str, str | None], ...]:
    """``DAEMONS``: a pool's daemons, as ``(rpc_url, secret)`` pairs or URLs (whose secret is
    ``RPC_SECRET``); from the environment, URLs separated by spaces or commas."""
    if value is None or value == "" or value == []:
        return ()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(
            f"DAEMONS must be a list of RPC URLs or (url, secret) pairs, not {type(value).__name__}"
        )
    daemons: list[tuple[str, str | None]] = []
    for item in value:
        if isinstance(item, str):
            daemons.append((item, default_secret))
        elif (
            isinstance(item, (list, tuple))
            and len(item) == 2
            and all(isinstance(v, (str, type(None))) for v in item)
        ):
            daemons.append((str(item[0]), item[1]))
        else:
            raise ConfigurationError("each of DAEMONS must be an RPC URL or an (rpc_url, secret) pair")
    return tuple(daemons)


@dataclass(frozen=True)
class Settings:
    """Everything the API needs, checked. Build it with :meth:`from_mapping`.

    ``rpc_url=None`` means an embedded private aria2c (``Aria2Client.local``) writing into
    ``download_root``, unless ``daemons`` names several daemons (``Aria2Client.pool``: each an
    ``(rpc_url, secret)`` pair). ``state`` goes to ``Aria2Client(state=...)`` only when set.
    """

    download_root: str
    rpc_url: str | None = None
    rpc_secret: str | None = field(default=None, repr=False)
    daemons: tuple[tuple[str, str | None], ...] = field(default=(), repr=False)
    state: str | None = None
    max_items: int = DEFAULT_MAX_ITEMS
    client_options: Mapping[str, Any] = field(default_factory=dict)
    url_policy: UrlPolicy = public_http_only

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Check a ``{"DOWNLOAD_ROOT": ..., ...}`` mapping; unknown keys are refused (typos)."""
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"the aria2_sync settings must be a dict, not {type(values).__name__}")
        unknown = sorted(set(values) - set(CONFIG_KEYS))
        if unknown:
            raise ConfigurationError(f"unknown settings {unknown}: the known ones are {list(CONFIG_KEYS)}")
        root = _optional_text(values, "DOWNLOAD_ROOT")
        if root is None:
            raise ConfigurationError("DOWNLOAD_ROOT is required: the directory downloads are saved in")
        rpc_url = _optional_text(values, "RPC_URL")
        rpc_secret = _optional_text(values, "RPC_SECRET")
        daemons = _daemons(values.get("DAEMONS"), rpc_secret)
        if daemons and rpc_url is not None:
            raise ConfigurationError("RPC_URL and DAEMONS are both set: one daemon, or a pool of them")
        if rpc_secret is not None and rpc_url is None and not daemons:
            raise ConfigurationError("RPC_SECRET is set without RPC_URL (the embedded daemon makes its own)")
        max_items = values.get("MAX_ITEMS", DEFAULT_MAX_ITEMS)
        if isinstance(max_items, str) and max_items.strip().isdigit():
            max_items = int(max_items)  # from an environment variable
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ConfigurationError(f"MAX_ITEMS must be an int >= 1, got {max_items!r}")
        client_options = values.get("CLIENT_OPTIONS") or {}
        if not isinstance(client_options, Mapping):
            raise ConfigurationError("CLIENT_OPTIONS must be a dict of Aria2Client keyword arguments")
        reserved = sorted(_RESERVED_CLIENT_OPTIONS & set(client_options))
        if reserved:
            raise ConfigurationError(f"CLIENT_OPTIONS {reserved}: use RPC_URL / RPC_SECRET / STATE instead")
        url_policy = values.get("URL_POLICY") or public_http_only
        if not callable(url_policy):
            raise ConfigurationError(
                "URL_POLICY must be a callable taking a URL (raise ValueError to refuse it), "
                f"not {type(url_policy).__name__}"
            )
        return cls(
            download_root=os.path.abspath(os.path.expanduser(root)),
            rpc_url=rpc_url,
            rpc_secret=rpc_secret,
            daemons=daemons,
            state=_optional_text(values, "STATE"),
            max_items=max_items,
            client_options=dict(client_options),
            url_policy=url_policy,
        )

    def client_identity(self) -> tuple[Any, ...]:
        """What the shared client depends on; two settings with the same identity share it."""
        local = self.rpc_url is None and not self.daemons
        root = self.download_root if local else None  # only a local daemon uses it
        return (
            self.rpc_url,
            self.rpc_secret,
            self.daemons,
            self.state,
            root,
            sorted(self.client_options.items()),
        )


def config_from_environ(environ: Mapping[str, str] = os.environ, **defaults: Any) -> dict[str, Any]:
    """The settings found in ``ARIA2_SYNC_<KEY>`` environment variables, over ``defaults``.

    Lets both apps run from the command line without editing code; ``CLIENT_OPTIONS`` and
    ``URL_POLICY`` have no environment form (they hold Python values).
    """
    config = dict(defaults)
    for key in CONFIG_KEYS:
        value = environ.get(f"ARIA2_SYNC_{key}")
        if value is not None and key not in ("CLIENT_OPTIONS", "URL_POLICY"):
            config[key] = value
    return config


# -- the process-wide client ---------------------------------------------------------------------

_client_lock = threading.Lock()
_client: Aria2Client | None = None
_client_identity: tuple[Any, ...] | None = None
_client_secrets: tuple[str, ...] = ()
_atexit_registered = False


def client_arguments(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Aria2Client`` / ``Aria2Client.local`` (besides url and secret).

    ``state`` is passed only when configured, so these examples keep working with an
    aria2_sync that predates the parameter.
    """
    arguments = dict(WEB_CLIENT_DEFAULTS)
    arguments.update(settings.client_options)
    if settings.state is not None:
        arguments["state"] = settings.state
    return arguments


def _new_client(settings: Settings) -> Aria2Client:
    arguments = client_arguments(settings)
    if settings.daemons:
        return Aria2Client.pool(list(settings.daemons), **arguments)
    if settings.rpc_url is None:
        return Aria2Client.local(settings.download_root, **arguments)
    return Aria2Client(settings.rpc_url, settings.rpc_secret, **arguments)


def get_client(settings: Settings) -> Aria2Client:
    """The process's client, created on first use; every request thread shares it.

    Created under a lock so that concurrent first requests make one client (and at most one
    embedded daemon). A failed creation is not cached: the next request tries again. Asking
    with settings that need another client is a configuration error rather than a silent
    switch, which would orphan the batches the first client tracks.
    """
    global _client, _client_identity, _client_secrets, _atexit_registered
    with _client_lock:
        if _client is not None:
            if _client_identity != settings.client_identity():
                raise ConfigurationError(
                    "the process-wide aria2 client was created with other settings; "
                    "call reset_client() before changing them"
                )
            return _client
        client = _new_client(settings)
        daemon = client.daemon
        _client, _client_identity = client, settings.client_identity()
        secrets = (settings.rpc_secret, daemon and daemon.secret, *(secret for _, secret in settings.daemons))
        _client_secrets = tuple(s for s in secrets if s)
        if not _atexit_registered:
            atexit.register(reset_client)
            _atexit_registered = True
        return client


def reset_client() -> None:
    """Close and forget the process's client (tests call it between tests; atexit at the end).

    Downloads keep running in a daemon of your own; an embedded daemon is stopped, leaving its
    partial files resumable.
    """
    global _client, _client_identity, _client_secrets
    with _client_lock:
        client, _client, _client_identity, _client_secrets = _client, None, None, ()
    if client is not None:
        client.close()  # outside the lock: stopping an embedded daemon takes a moment


# -- request validation --------------------------------------------------------------------------


class ApiError(Exception):
    """A failure the API caller should see, with its HTTP status and a message for them."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Reply(NamedTuple):
    """What an operation answers: an HTTP status and a JSON-ready body."""

    status: int
    body: dict[str, Any]


def _is_json_type(content_type: str | None) -> bool:
    mimetype = (content_type or "").split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or mimetype.endswith("+json")


def parse_json_object(raw: bytes, content_type: str | None) -> dict[str, Any]:
    """The request body as a dict, or an :class:`ApiError`.

    The JSON content type is required because the Django views are CSRF-exempt: a cross-site
    HTML form cannot send ``application/json`` without a CORS preflight, so this is what keeps
    other sites from posting batches through a visitor's browser.
    """
    if not _is_json_type(content_type):
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad encoding, absurdly deep nesting
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the body must be a JSON object, not a JSON {type(body).__name__}")
    return body


class BatchRequest(NamedTuple):
    """A checked create request: the URLs, and the names to save them as (None: aria2 picks)."""

    urls: list[str]
    names: list[str] | None


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _check_keys(obj: dict[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        raise ApiError(400, f"{where} has unknown fields {unknown}: allowed are {list(allowed)}")


def _string_field(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ApiError(400, f"{where} must be a string, not {_json_type(value)}")
    return value


def parse_batch_request(body: dict[str, Any], max_items: int) -> BatchRequest:
    """Check the shape of a create request (the URLs themselves are checked by aria2_sync).

    Exactly one of ``urls`` (aria2 names the files) or ``items`` (each with its ``name``),
    between 1 and ``max_items`` entries, no unknown fields: a typo like ``"url"`` is an
    error, not a silently ignored field.
    """
    _check_keys(body, ("urls", "items"), "the body")
    if ("urls" in body) == ("items" in body):
        raise ApiError(400, 'give either "urls" (a list of URLs) or "items" (a list of {"url", "name"})')
    key = "urls" if "urls" in body else "items"
    entries = body[key]
    if not isinstance(entries, list):
        raise ApiError(400, f'"{key}" must be an array, not {_json_type(entries)}')
    if not entries:
        raise ApiError(400, f'"{key}" is empty: give at least one download')
    if len(entries) > max_items:
        raise ApiError(400, f'"{key}" has {len(entries)} entries: at most {max_items} per request')
    if key == "urls":
        return BatchRequest([_string_field(url, f"urls[{i}]") for i, url in enumerate(entries)], None)
    urls, names = [], []
    for i, item in enumerate(entries):
        if not isinstance(item, dict):
            raise ApiError(400, f'items[{i}] must be an object {{"url", "name"}}, not {_json_type(item)}')
        _check_keys(item, ("url", "name"), f"items[{i}]")
        for required in ("url", "name"):
            if required not in item:
                raise ApiError(400, f'items[{i}] has no "{required}"')
        urls.append(_string_field(item["url"], f"items[{i}].url"))
        names.append(_string_field(item["name"], f"items[{i}].name"))
    return BatchRequest(urls, names)


def _check_name_text(name: str, where: str) -> list[str]:
    """The components of a relative, portable name; refuses anything that could leave the root."""
    if not name:
        raise ApiError(400, f"{where} is empty")
    if "\x00" in name:
        raise ApiError(400, f"{where} contains a NUL character")
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise ApiError(400, f"{where} contains a control character")
    if "\\" in name:
        raise ApiError(400, f"{where} contains a backslash: separate directories with /")
    if name.startswith("/") or pathlib.PureWindowsPath(name).drive:
        raise ApiError(400, f"{where} {name!r} is absolute: give a path relative to the download root")
    parts = name.split("/")
    if parts[-1].lower().endswith(".aria2"):
        raise ApiError(400, f"{where} {name!r} ends in '.aria2', the name of aria2's control files")
    if ".." in parts:
        raise ApiError(400, f"{where} {name!r} contains '..': names stay inside the download root")
    if any(part in ("", ".") for part in parts):
        raise ApiError(400, f"{where} {name!r} has an empty or '.' component (or ends with /)")
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES or any(
        len(part.encode("utf-8", "surrogatepass")) > _MAX_COMPONENT_BYTES for part in parts
    ):
        raise ApiError(400, f"{where} is too long for a file system")
    return parts


def resolve_target(root: str, name: str, where: str = "name") -> str:
    """The real path to save ``name`` at, which must lie inside ``root``; else an ApiError.

    The text checks refuse the obvious escapes; resolving the real path (symlinks followed,
    dangling ones too) catches a symlink inside the root that points out of it. The resolved
    path is what is handed to aria2, so what was checked is what is used. A symlink created
    after this check is out of reach of any check made here: keep the root writable only by
    the service.
    """
    parts = _check_name_text(name, where)
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, target]) != real_root or target == real_root:
        raise ApiError(400, f"{where} {name!r} resolves outside the download root")
    if os.path.isdir(target):
        raise ApiError(400, f"{where} {name!r} is an existing directory: name a file")
    return target


def _targets(root: str, names: Sequence[str]) -> list[str]:
    """Every name resolved; two items writing the same file would make aria2 fail one of them."""
    targets: list[str] = []
    first_index: dict[str, int] = {}
    for i, name in enumerate(names):
        target = resolve_target(root, name, f"items[{i}].name")
        if target in first_index:
            raise ApiError(400, f"items[{first_index[target]}] and items[{i}] both write {name!r}")
        first_index[target] = i
        targets.append(target)
    return targets


# -- the four operations -------------------------------------------------------------------------


def _unknown_batch(batch_id: str) -> ApiError:
    return ApiError(404, f"unknown batch {batch_id[:64]!r} (never created here, or forgotten)")


def create_batch(settings: Settings, raw_body: bytes, content_type: str | None) -> Reply:
    """``POST /downloads``: add the batch; 201 with its id.

    Without names, the files go into the root under the names aria2 picks (``dir`` option);
    with names, each goes to its checked path. aria2_sync checks every URL before sending
    anything, so a bad one refuses the whole batch (a 400 naming the item).
    """
    request = parse_batch_request(parse_json_object(raw_body, content_type), settings.max_items)
    _check_urls(settings.url_policy, request.urls, request.names)
    if request.names is None:
        batch = [(url, None) for url in request.urls]
        options: dict[str, Any] | None = {"dir": settings.download_root}
    else:
        batch = list(zip(request.urls, _targets(settings.download_root, request.names)))
        options = None
    with _paths_hidden(settings):
        batch_id = get_client(settings).add_batch_downloads(batch, options=options)
    return Reply(201, {"batch_id": batch_id})


def batch_progress(settings: Settings, batch_id: str) -> Reply:
    """``GET /downloads/<batch_id>``: the batch's progress, or 404."""
    with _paths_hidden(settings):
        progress = get_client(settings).get_batch_progress(batch_id)
    if progress is None:
        raise _unknown_batch(batch_id)
    body = progress.to_dict()
    body["downloads"] = [_download_view(settings, item) for item in body["downloads"]]
    return Reply(200, body)


def _roots(settings: Settings) -> list[str]:
    """The download root as configured and as resolved (they differ under a symlink)."""
    roots = {settings.download_root, os.path.realpath(settings.download_root)}
    return sorted(roots, key=len, reverse=True)


def _relative(settings: Settings, path: str | None) -> str | None:
    """``path`` relative to the download root ("" for the root itself); a path elsewhere is
    shown by its file name only: the server's layout is not the caller's business."""
    if not path:
        return path
    for root in _roots(settings):
        if path == root:
            return ""
        if path.startswith(root.rstrip(os.sep) + os.sep):
            return os.path.relpath(path, root)
    return os.path.basename(path)


def _hide_paths(settings: Settings, text: str) -> str:
    """``text`` with the download root left out of every path in it, and no URL password."""
    for root in _roots(settings):
        text = text.replace(root.rstrip(os.sep) + os.sep, "").replace(root, "<download root>")
    return redact_text(text)


def _download_view(settings: Settings, item: dict[str, Any]) -> dict[str, Any]:
    """One download of a progress answer, as the API shows it: paths relative to the root."""
    view = dict(item)
    view["dir"] = _relative(settings, view.get("dir"))
    view["file_path"] = _relative(settings, view.get("file_path"))
    view["file_paths"] = [_relative(settings, path) for path in view.get("file_paths") or []]
    for key in ("error_message", "gave_up_reason"):
        if isinstance(view.get(key), str):
            view[key] = _hide_paths(settings, view[key])
    return view


@contextlib.contextmanager
def _paths_hidden(settings: Settings) -> Iterator[None]:
    """Errors raised inside quote no server path: the root is cut out of their messages."""
    try:
        yield
    except (ApiError, Aria2Error) as error:
        error.message = _hide_paths(settings, error.message)
        raise


def _on_known_batch(operation: Callable[[str], int], batch_id: str) -> int:
    """Run a per-batch call; :class:`Aria2UnknownBatchError` means "unknown batch" (404)."""
    try:
        return operation(batch_id)
    except Aria2UnknownBatchError:
        raise _unknown_batch(batch_id) from None


def retry_batch(settings: Settings, batch_id: str) -> Reply:
    """``POST /downloads/<batch_id>/retry``: restart every failed download of the batch now.

    ``force=True``: a user pressing "retry" means it, even for errors the restart policy
    considers permanent (a 404 that has since been fixed) or a spent restart budget.
    """
    with _paths_hidden(settings):
        client = get_client(settings)
        restarted = _on_known_batch(
            lambda b: client.restart_all_failed_downloads(batch_id=b, force=True), batch_id
        )
    return Reply(200, {"restarted": restarted})


def cancel_batch(settings: Settings, batch_id: str) -> Reply:
    """``DELETE /downloads/<batch_id>``: stop the batch's unfinished downloads (files stay)."""
    with _paths_hidden(settings):
        cancelled = _on_known_batch(get_client(settings).cancel_batch, batch_id)
    return Reply(200, {"cancelled": cancelled})


# -- errors to replies ---------------------------------------------------------------------------


def _without_secrets(text: str) -> str:
    """Belt and braces: aria2_sync never quotes a secret, and this makes sure of it here."""
    for secret in _client_secrets:
        text = text.replace(secret, "***")
    return text


def _error(status: int, message: str, **extra: Any) -> Reply:
    return Reply(status, {"error": redact_text(_without_secrets(message)), **extra})


def call(operation: Callable[[], Reply]) -> Reply:
    """Run one operation (a thunk) and map every failure to a JSON error reply.

    The mapping follows the question a caller can act on: fix the request (400), the batch is
    not here (404), try again later (503), aria2 refused (502). Details a caller cannot act on
    (where the daemon lives, a misconfiguration, a bug) go to the log, not the response.
    """
    try:
        return operation()
    except ApiError as error:
        return _error(error.status, error.message)
    except Aria2InputError as error:
        return _error(400, str(error))
    except Aria2ConnectionError as error:
        logger.warning("aria2 is unreachable: %s", error)
        extra = {}
        if error.batch_id is not None:  # the adds may have happened: poll it, do not re-post
            extra["batch_id"] = error.batch_id
        return _error(503, "the download daemon is unreachable: try again later", **extra)
    except (Aria2DaemonError, Aria2BinaryNotFoundError, Aria2ClosedError) as error:
        logger.error("the download service is unavailable: %s", error)
        return _error(503, "the download service is unavailable: try again later")
    except Aria2StateError as error:  # its message names the state file: for the log only
        logger.error("the download service's state file: %s", error)
        return _error(503, "the download service's state is unavailable: try again later")
    except Aria2Error as error:
        logger.warning("aria2 refused: %s", error)
        return _error(502, f"aria2 error: {error}")
    except ConfigurationError as error:
        logger.error("aria2_sync web settings: %s", error)
        return _error(500, "the download service is misconfigured")
    except Exception:
        logger.exception("unexpected error in the download API")
        return _error(500, "internal error")
