"""``Aria2Client.pool``: one client over several aria2 daemons, with failover.

A mixin of :class:`~aria2_sync.client.Aria2Client` (the facade stays short): the constructor of a
pooled client, and what it tells about its daemons. How the pool places, routes, fails over and
sweeps is :mod:`aria2_sync.rpc.members` and :mod:`aria2_sync.rpc.pooled`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .engine.config import check_number
from .errors import Aria2InputError, redact_url
from .models import DaemonHealth
from .validation import check_gid

if TYPE_CHECKING:  # pragma: no cover
    from .engine.core import Engine
    from .engine.ledger import Ledger

__all__ = ["PoolMethods"]

P = TypeVar("P", bound="PoolMethods")


def _daemon_address(number: int, daemon: Any) -> tuple[str, str | None]:
    """``(rpc_url, secret)`` of the ``number``-th item of ``Aria2Client.pool``'s ``daemons``."""
    if isinstance(daemon, (tuple, list)) and len(daemon) == 2:
        url, secret = daemon
    elif hasattr(daemon, "rpc_url") and hasattr(daemon, "secret"):  # an Aria2Daemon
        if not getattr(daemon, "running", True):
            raise Aria2InputError(
                f"daemons[{number}] is an Aria2Daemon that is not running: start() it first"
            )
        url, secret = daemon.rpc_url, daemon.secret
    else:
        raise Aria2InputError(
            f"daemons[{number}] must be an (rpc_url, secret) pair or a started Aria2Daemon, "
            f"not {type(daemon).__name__}"
        )
    if not isinstance(url, str) or not url:
        raise Aria2InputError(f"daemons[{number}]: the rpc_url must be a non-empty str")
    if secret is not None and not isinstance(secret, str):
        raise Aria2InputError(f"daemons[{number}]: the secret must be a str or None")
    return url, secret


def _weights(weights: Iterable[Any] | None, count: int) -> list[float]:
    if weights is None:
        return [1.0] * count
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Iterable):
        raise Aria2InputError(f"weights must be a sequence of numbers, not {type(weights).__name__}")
    chosen = list(weights)
    if len(chosen) != count:
        raise Aria2InputError(
            f"weights must give one number per daemon: {count} daemons, {len(chosen)} weights"
        )
    for n, weight in enumerate(chosen):
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or weight <= 0
        ):
            raise Aria2InputError(f"weights[{n}] must be a number > 0, got {weight!r}")
    return [float(w) for w in chosen]


class PoolMethods:
    """``Aria2Client``'s methods for a pool of daemons (see the module's docstring)."""

    _engine: Engine
    _ledger: Ledger

    @classmethod
    def pool(
        cls: type[P],
        daemons: Sequence[Any],
        *,
        weights: Sequence[float] | None = None,
        failover_after: float = 30.0,
        shared_storage: bool = False,
        **client_options: Any,
    ) -> P:
        """A client over several aria2 daemons (on one host or several): one API, one handle per
        download wherever it runs.

        ``daemons`` are ``(rpc_url, secret)`` pairs (secret may be None) or started
        :class:`~aria2_sync.daemon.process.Aria2Daemon` objects. Each new download goes to the
        daemon with the least active and waiting downloads for its ``weights`` entry (default:
        all 1), of those that answer; GIDs are chosen by the client, so they are unique across
        daemons. A daemon that has not answered for ``failover_after`` seconds has its unfinished
        downloads added again on the others under the same GID (futures, callbacks and retry
        history carry on); with ``shared_storage=True`` (every daemon writes to one filesystem
        at the same paths) each resumes its partial file, otherwise its file starts over in the
        new daemon's directory. When the lost daemon answers again, its copies of those
        downloads are removed before it is sent anything else. A daemon that refuses its secret
        is reported (:meth:`daemons`), never placed on and never failed over.

        Args:
            daemons: ``(rpc_url, secret)`` pairs (secret may be None) or started
                :class:`~aria2_sync.daemon.process.Aria2Daemon` objects.
            weights: One number > 0 per daemon; a daemon gets new downloads in proportion
                (default: all 1).
            failover_after: Seconds without an answer after which a daemon's unfinished
                downloads are added again on the others.
            shared_storage: Every daemon writes to one filesystem at the same paths (a
                failed-over download resumes its partial file).
            client_options: The constructor's (``state=``, ``poll_interval=``, ``timeout=``,
                ...). A pool polls: WebSocket notifications are not used.

        Returns:
            The client over the pool.

        Raises:
            Aria2InputError: A bad argument (before anything is made).
        """
        from .rpc.members import DaemonPool  # (imported here: only a pool needs it)

        for reserved in ("rpc_url", "rpc_secret", "daemon_pool", "notifications"):
            if client_options.get(reserved) is not None:
                raise Aria2InputError(f"{reserved} is not for Aria2Client.pool: leave it out")
        if isinstance(daemons, (str, bytes)) or not isinstance(daemons, Sequence) or not daemons:
            raise Aria2InputError(
                "daemons must be a non-empty sequence of (rpc_url, secret) pairs or Aria2Daemons"
            )
        addresses = [_daemon_address(n, d) for n, d in enumerate(daemons)]
        urls = [url for url, _ in addresses]
        if len(set(urls)) != len(urls):
            duplicate = next(u for u in urls if urls.count(u) > 1)
            raise Aria2InputError(f"daemon {redact_url(duplicate)} is given twice")
        check_number("failover_after", failover_after, minimum=0.01)
        if not isinstance(shared_storage, bool):
            raise Aria2InputError(f"shared_storage must be True or False, got {shared_storage!r}")
        chosen = _weights(weights, len(addresses))
        pool = DaemonPool(
            [(url, secret, weight) for (url, secret), weight in zip(addresses, chosen)],
            failover_after=float(failover_after),
            shared_storage=shared_storage,
        )
        first_url, first_secret = addresses[0]
        return cls(first_url, first_secret, daemon_pool=pool, **client_options)  # type: ignore[call-arg]

    def daemons(self) -> tuple[DaemonHealth, ...]:
        """Each daemon of the pool as this client sees it now.

        Returns:
            One :class:`~aria2_sync.models.DaemonHealth` per daemon, in the pool's order (empty
            for a client of one daemon).
        """
        pool = self._engine.pool
        return () if pool is None else pool.health()

    def daemon_of(self, gid: str) -> str | None:
        """The daemon that holds download ``gid`` now, as far as this client knows.

        Args:
            gid: A GID this client added (or any GID the pool has seen).

        Returns:
            The daemon's RPC URL without credentials, or None if the client does not know. A
            client of one daemon answers its URL for its own downloads.

        Raises:
            Aria2InputError: ``gid`` is not a GID.
        """
        gid = check_gid(gid)
        record = self._ledger.get(gid)
        daemon_gid = gid if record is None else record.current_gid
        pool = self._engine.pool
        if pool is None:
            return redact_url(self._engine.config.rpc_url) if record is not None else None
        member = pool.home(daemon_gid)
        return None if member is None else redact_url(member.rpc_url)
