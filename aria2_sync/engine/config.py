"""The checked, frozen configuration of one client, built from ``Aria2Client``'s keyword arguments.

What is fixed and what is live after construction:

* **Fixed** (read once, when the client is built): everything in :class:`ClientConfig`. The
  transports, the restart engine, the monitor and the ledger are made from it, so changing it
  later could not reach them; the client's attributes of the same names (``rpc_url``,
  ``max_retries``, ``retry_delay``, ``verbose``, ``timeout``, ``restart_policy``) are
  read-only views of it (:class:`ConfigField`).
* **Live**: ``Aria2Client.auto_restart_failed`` alone. Every decision about a failure reads it
  at that moment, so setting it on a running client turns automatic restarts on or off from the
  next failure seen on.

The secret is not part of the configuration (it must never appear in a repr): it goes straight
to the transports.
"""

from __future__ import annotations

import math
import os
import ssl
import urllib.parse
from typing import Any, Generic, NoReturn, Protocol, TypeVar, overload

import attrs

from ..errors import Aria2InputError, redact_url
from ..policy import RestartPolicy
from ..rpc.transport import Timeout
from ..state import Store

__all__ = ["ClientConfig", "ConfigField", "check_batch_id", "check_number"]

T = TypeVar("T")


def check_number(name: str, value: Any, *, minimum: float, integer: bool = False) -> None:
    """Raise :class:`Aria2InputError` unless ``value`` is a finite number (an int) >= ``minimum``."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise Aria2InputError(f"{name} must be {kind}, not {type(value).__name__}")
    if not math.isfinite(value):
        raise Aria2InputError(f"{name} must be a finite number, got {value!r}")
    if value < minimum:
        raise Aria2InputError(f"{name} must be >= {minimum:g}, got {value!r}")


def check_batch_id(batch_id: Any) -> str:
    """``batch_id`` itself if it is a str (any str: an unknown one is the caller's question)."""
    if not isinstance(batch_id, str):
        raise Aria2InputError(
            f"batch_id must be the str add_batch_downloads returned, not {type(batch_id).__name__}"
        )
    return batch_id


def _check_timeout(timeout: Any) -> Timeout:
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if isinstance(timeout, tuple) and len(values) != 2:
        raise Aria2InputError("timeout must be a number or a (connect, read) pair of numbers")
    for value in values:
        check_number("timeout", value, minimum=0)
        if value == 0:
            raise Aria2InputError("timeout must be > 0 seconds")
    return timeout  # type: ignore[no-any-return]  # (checked above: a number or a pair of them)


def _check_rpc_url(rpc_url: Any) -> str:
    if not isinstance(rpc_url, str) or not rpc_url.strip():
        raise Aria2InputError("rpc_url must be a non-empty str like http://127.0.0.1:6800/jsonrpc")
    if not rpc_url.lower().startswith(("http://", "https://")):
        raise Aria2InputError(
            f"rpc_url {redact_url(rpc_url)!r} must start with http:// or https:// "
            "(aria2's JSON-RPC endpoint, e.g. http://127.0.0.1:6800/jsonrpc)"
        )
    return rpc_url.strip()


def _check_state(state: Any) -> None:
    """``state=`` is None, a path or a Store (checked before a file is opened)."""
    if state is None or isinstance(state, (str, os.PathLike, Store)):
        return
    raise Aria2InputError(
        f"state must be None, a path to an SQLite file, or a Store, not {type(state).__name__}"
    )


def _check_notifications(wanted: Any, monitor: Any) -> None:
    """``notifications=True`` needs the websocket-client package (when there is a monitor)."""
    if not wanted or not monitor:
        return
    from ..rpc.notifications import websocket_available

    if not websocket_available():
        raise Aria2InputError(
            "notifications=True needs the websocket-client package: pip install 'aria2_sync[notifications]'"
        )


def _check_ca_file(ca_file: Any) -> str | None:
    """The absolute path of ``rpc_ca_file``, checked to hold certificates Python's ssl loads
    (a wrong file fails here, not at the first call to an https daemon), or None."""
    if ca_file is None:
        return None
    path = os.fspath(ca_file) if isinstance(ca_file, (str, os.PathLike)) else None
    if not isinstance(path, str):
        kind = type(ca_file).__name__
        raise Aria2InputError(f"rpc_ca_file must be a path (str or os.PathLike) or None, not {kind}")
    path = os.path.abspath(path)
    hint = "give the PEM file of the CA that signed the daemon's certificate (or that certificate itself)"
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise Aria2InputError(f"rpc_ca_file {path!r} is not a readable file: {hint}")
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError) as error:
        problem = f"rpc_ca_file {path!r} holds no certificate Python can load ({error})"
        raise Aria2InputError(f"{problem}: {hint}") from None
    return path


def _policy(
    policy: RestartPolicy | None, max_restarts: int | None, max_retries: int, base: float, max_delay: float
) -> RestartPolicy:
    if policy is not None:
        if not isinstance(policy, RestartPolicy):
            raise Aria2InputError(f"restart_policy must be a RestartPolicy, not {type(policy).__name__}")
        if max_restarts is not None:
            raise Aria2InputError("give max_restarts or restart_policy, not both")
        return policy
    budget = max_retries if max_restarts is None else max_restarts
    return RestartPolicy(max_restarts=budget, base_delay=base, max_delay=max_delay)


@attrs.frozen
class ClientConfig:
    """Every setting of a client, checked (see the module's docstring for fixed and live).

    Built by :meth:`build` from ``Aria2Client``'s arguments, which are checked in the order the
    constructor lists them, before anything is changed (no output configured, no file opened,
    no thread or connection made): a bad argument leaves nothing behind. ``daemon_is_local``
    says whether the daemon shares this machine's file system (a loopback ``rpc_url``): only
    then are download directories checked here.
    """

    rpc_url: str
    max_retries: int
    retry_delay: float
    auto_restart_failed: bool
    verbose: bool
    timeout: Timeout
    max_retry_delay: float
    restart_policy: RestartPolicy
    monitor: bool
    poll_interval: float
    disconnect_grace: float
    keep_finished: int
    keep_seconds: float | None
    notifications: bool | None
    daemon_is_local: bool
    rpc_ca_file: str | None = None

    @classmethod
    def build(
        cls,
        rpc_url: Any,
        rpc_secret: Any,
        max_retries: Any,
        retry_delay: Any,
        auto_restart_failed: Any,
        verbose: Any,
        *,
        timeout: Any,
        max_retry_delay: Any,
        max_restarts: Any,
        restart_policy: Any,
        monitor: Any,
        poll_interval: Any,
        disconnect_grace: Any,
        keep_finished: Any,
        keep_seconds: Any,
        notifications: Any,
        state: Any,
        rpc_ca_file: Any = None,
        pool_urls: tuple[str, ...] = (),
    ) -> ClientConfig:
        """Check the arguments (raising :class:`Aria2InputError` for the first bad one) and
        freeze them; ``rpc_secret`` and ``state`` are checked here and kept elsewhere.
        ``pool_urls`` are the other daemons' of a pool (``rpc_ca_file`` needs one https URL)."""
        url = _check_rpc_url(rpc_url)
        host = (urllib.parse.urlsplit(url).hostname or "").lower()
        if rpc_secret is not None and not isinstance(rpc_secret, str):
            raise Aria2InputError(f"rpc_secret must be a str or None, not {type(rpc_secret).__name__}")
        check_number("max_retries", max_retries, minimum=0, integer=True)
        check_number("retry_delay", retry_delay, minimum=0)
        check_number("max_retry_delay", max_retry_delay, minimum=0)
        check_number("poll_interval", poll_interval, minimum=0.01)
        check_number("disconnect_grace", disconnect_grace, minimum=0)
        check_number("keep_finished", keep_finished, minimum=0, integer=True)
        if keep_seconds is not None:
            check_number("keep_seconds", keep_seconds, minimum=0)
        checked_timeout = _check_timeout(timeout)
        policy = _policy(restart_policy, max_restarts, max_retries, float(retry_delay), max_retry_delay)
        _check_state(state)
        _check_notifications(notifications, monitor)
        ca_file = _check_ca_file(rpc_ca_file)
        if ca_file is not None and not any(u.lower().startswith("https://") for u in (url, *pool_urls)):
            raise Aria2InputError(
                f"rpc_ca_file is for a daemon reached over https:// (aria2c --rpc-secure=true), and "
                f"rpc_url {redact_url(url)!r} is plain http: give an https:// rpc_url, or no rpc_ca_file"
            )
        return cls(
            rpc_url=url,
            max_retries=max_retries,
            retry_delay=float(retry_delay),
            auto_restart_failed=bool(auto_restart_failed),
            verbose=bool(verbose),
            timeout=checked_timeout,
            max_retry_delay=float(max_retry_delay),
            restart_policy=policy,
            monitor=bool(monitor),
            poll_interval=float(poll_interval),
            disconnect_grace=float(disconnect_grace),
            keep_finished=keep_finished,
            keep_seconds=keep_seconds,
            notifications=notifications,
            daemon_is_local=host in ("localhost", "::1") or host.startswith("127."),
            rpc_ca_file=ca_file,
        )


class Configured(Protocol):
    """What a :class:`ConfigField` reads from: an object holding its :class:`ClientConfig`."""

    _config: ClientConfig


class ConfigField(Generic[T]):
    """A read-only attribute that shows the :class:`ClientConfig` field of the same name.

    Written once per attribute in ``Aria2Client`` (``rpc_url = ConfigField[str]("doc")``) instead
    of a property each. It behaves as a property without a setter: ``help()`` lists it with its
    docstring, and setting or deleting it raises :class:`AttributeError` (for mypy too, which
    refuses the assignment), because the parts made from the configuration could not follow.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self.name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> ConfigField[T]: ...

    @overload
    def __get__(self, instance: Configured, owner: type[Any] | None = None) -> T: ...

    def __get__(self, instance: Configured | None, owner: type[Any] | None = None) -> T | ConfigField[T]:
        if instance is None:
            return self
        return getattr(instance._config, self.name)  # type: ignore[no-any-return]

    def __set__(self, instance: object, value: NoReturn) -> NoReturn:
        raise AttributeError(self._fixed(instance, "setter"))

    def __delete__(self, instance: object) -> NoReturn:
        raise AttributeError(self._fixed(instance, "deleter"))

    def _fixed(self, instance: object, what: str) -> str:
        return (
            f"property {self.name!r} of {type(instance).__name__!r} object has no {what}: "
            "it is fixed when the client is built"
        )
