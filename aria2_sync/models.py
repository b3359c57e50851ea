"""Immutable snapshots built from aria2's JSON.

aria2 sends every number as a string (``"completedLength": "877658112"``) and leaves keys out
freely, so every builder here parses numbers and tolerates missing keys. A snapshot never changes
after it is made: callers can keep, compare and share it between threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "FileInfo",
    "Progress",
    "GlobalStats",
    "DaemonHealth",
    "BatchProgress",
    "STATUS_KEYS",
    "TICK_KEYS",
    "UnreadableStatus",
    "status_problem",
]

#: The ``tellStatus`` keys that move while a download keeps its status: what a refresh asks
#: for every time. Not ``gid`` (the caller knows it), nor ``uploadSpeed`` (BitTorrent only:
#: asked for those alone), nor ``errorCode``/``errorMessage`` (aria2 sets them when a download
#: stops, a change of status, and they stay as they are while the status does).
TICK_KEYS: tuple[str, ...] = ("status", "totalLength", "completedLength", "downloadSpeed", "connections")

#: Every ``tellStatus`` key a :class:`Progress` is built from, and the follow chain's: a full
#: read. Besides :data:`TICK_KEYS` they change only with the status: ``errorCode`` and
#: ``errorMessage``, ``dir`` and ``files`` (with the URIs, ~80% of a full answer: aria2 names a
#: file once the server answered, and counts its bytes in whole pieces), and ``followedBy``
#: (set when the download completes; ``following`` and ``belongsTo`` are set when aria2
#: creates it; all three left out when there is no follow chain), and ``seeder`` (BitTorrent
#: only: "true" once the payload is complete and aria2 seeds it). Asking for keys (instead of
#: all of them) halves the answer and its time: a multicall of 1000 ``tellStatus`` takes
#: ~21 ms and ~120 KB with keys, ~43 ms and ~450 KB without.
STATUS_KEYS: tuple[str, ...] = (
    "gid",
    *TICK_KEYS,
    "errorCode",
    "errorMessage",
    "uploadSpeed",
    "seeder",
    "followedBy",
    "following",
    "belongsTo",
    "dir",
    "files",
)


#: How aria2 names the one "file" of a magnet's metadata download (``[METADATA]<name>``).
METADATA_PREFIX = "[METADATA]"


class UnreadableStatus(ValueError):
    """A status from the daemon that is not shaped like aria2's (a list where an object goes...).

    The layers that know which daemon and which method answered turn it into an
    :class:`~aria2_sync.Aria2ProtocolError` that names them.
    """


def _kind(value: Any) -> str:
    return {dict: "JSON object", list: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def status_problem(data: Any) -> str | None:
    """What makes ``data`` unreadable as a ``tellStatus`` answer, or None when it is readable.

    Only the structure is checked (an object, ``files`` a list of objects, their ``uris`` lists
    of objects): missing keys and odd values are tolerated as everywhere in this module.
    """
    if not isinstance(data, Mapping):
        return f"a {_kind(data)} instead of a JSON object"
    files = data.get("files")
    if files is None:
        return None
    if not isinstance(files, list):
        return f"'files' as a {_kind(files)} instead of a list"
    for entry in files:
        problem = _file_problem(entry)
        if problem is not None:
            return problem
    return None


def _file_problem(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return f"a 'files' entry as a {_kind(entry)} instead of a JSON object"
    uris = entry.get("uris")
    if uris is None:
        return None
    if not isinstance(uris, list):
        return f"'uris' as a {_kind(uris)} instead of a list"
    for uri in uris:
        if not isinstance(uri, Mapping):
            return f"a 'uris' entry as a {_kind(uri)} instead of a JSON object"
    return None


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


@attrs.frozen
class FileInfo:
    """One file of a download: where it goes and how much of it is there."""

    path: str
    length: int
    completed_length: int
    selected: bool = True
    uris: tuple[str, ...] = ()

    @classmethod
    def from_aria2(cls, data: Mapping[str, Any]) -> FileInfo:
        """Build from one entry of a status's ``files``; :class:`UnreadableStatus` if misshapen."""
        problem = _file_problem(data)
        if problem is not None:
            raise UnreadableStatus(problem)
        uris = tuple(str(entry.get("uri")) for entry in data.get("uris", ()) or () if entry.get("uri"))
        # aria2 lists one entry per (uri, status) pair; keep each URI once, in order.
        unique = tuple(dict.fromkeys(uris))
        return cls(
            path=str(data.get("path", "")),
            length=_int(data.get("length")),
            completed_length=_int(data.get("completedLength")),
            selected=str(data.get("selected", "true")) == "true",
            uris=unique,
        )


@attrs.frozen
class Progress:
    """A download as aria2 reported it at one moment.

    ``status`` is aria2's: ``active``, ``waiting``, ``paused``, ``error``, ``complete`` or
    ``removed``; and ``metadata`` for a BitTorrent download still fetching its torrent (a
    magnet's metadata, or a ``.torrent`` at a URL): its payload has not started, and the
    caller's GID will report the payload once it has. ``seeding`` is True while aria2 uploads a
    complete BitTorrent payload (aria2's ``seeder``; the status stays ``active`` meanwhile).
    ``error_code`` is aria2's error code as the string aria2 sends (``"1"``, ``"3"``),
    so code written against aria2's JSON compares as it always did; ``error_code_number`` gives it
    as an int. ``retry_count`` is how many times aria2_sync restarted this download;
    ``restart_pending`` is True while a restart of it is scheduled or running, and
    ``gave_up_reason`` says why a failed download will not be restarted (None otherwise).
    """

    gid: str
    status: str
    total_length: int = 0
    completed_length: int = 0
    download_speed: int = 0
    upload_speed: int = 0
    connections: int = 0
    error_code: str | None = None
    error_message: str | None = None
    dir: str | None = None
    files: tuple[FileInfo, ...] = ()
    retry_count: int = 0
    restart_pending: bool = False
    gave_up_reason: str | None = None
    seeding: bool = False

    @classmethod
    def from_aria2(
        cls,
        data: Mapping[str, Any],
        *,
        gid: str | None = None,
        retry_count: int = 0,
        known: Progress | None = None,
    ) -> Progress:
        """Build a snapshot from a ``tellStatus`` answer (any subset of its keys).

        ``gid`` overrides the answer's GID: a caller's handle stays the one it was given even when
        the daemon-side download behind it changed. ``known``: an earlier snapshot of the same
        download, whose ``dir`` and ``files`` stand in for the ones ``data`` leaves out (a read of
        :data:`TICK_KEYS`), and whose error code and message do too while the status is the same.
        Raises :class:`UnreadableStatus` when ``data`` is not shaped like a status (see
        :func:`status_problem`).
        """
        if not isinstance(data, Mapping):
            raise UnreadableStatus(f"a {_kind(data)} instead of a JSON object")
        files = data.get("files")
        if files is not None and not isinstance(files, list):
            raise UnreadableStatus(f"'files' as a {_kind(files)} instead of a list")
        status = str(data.get("status", "unknown"))
        if known is not None and "errorCode" not in data and known.status == status:
            error_code, error_message = known.error_code, known.error_message
        else:
            error_code = _text(data.get("errorCode"))
            if error_code == "0":
                error_code = None  # aria2 reports "0" for downloads that have not failed
            error_message = _text(data.get("errorMessage")) if error_code else None
        seeder = data.get("seeder")
        if seeder is None and known is not None and known.status == status:
            seeding = known.seeding  # (a read that left the key out: as last seen)
        else:
            seeding = seeder == "true" and status == "active"
        built = cls(
            gid=gid or str(data.get("gid", "")),
            status=status,
            total_length=_int(data.get("totalLength")),
            completed_length=_int(data.get("completedLength")),
            download_speed=_int(data.get("downloadSpeed")),
            upload_speed=_int(data.get("uploadSpeed")),
            connections=_int(data.get("connections")),
            error_code=error_code,
            error_message=error_message,
            dir=known.dir if known is not None and "dir" not in data else _text(data.get("dir")),
            files=(
                known.files
                if known is not None and "files" not in data
                else tuple(FileInfo.from_aria2(f) for f in files or ())
            ),
            retry_count=retry_count,
            seeding=seeding,
        )
        if status == "active" and built.files and built.files[0].path.startswith(METADATA_PREFIX):
            return attrs.evolve(built, status="metadata")
        return built

    @property
    def progress_percent(self) -> float:
        """Completed share in percent, 0.0 while the size is unknown, 100.0 once complete."""
        if self.status == "complete":
            return 100.0
        if self.total_length <= 0:
            return 0.0
        return min(100.0, 100.0 * self.completed_length / self.total_length)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current speed; None when unknown (no size or no speed)."""
        if self.status == "complete":
            return 0.0
        if self.total_length <= 0 or self.download_speed <= 0:
            return None
        return max(0, self.total_length - self.completed_length) / self.download_speed

    @property
    def eta(self) -> float | None:
        """Alias of :attr:`eta_seconds`."""
        return self.eta_seconds

    @property
    def error_code_number(self) -> int | None:
        """:attr:`error_code` as an int (None when there is no error)."""
        return int(self.error_code) if self.error_code and self.error_code.isdigit() else None

    @property
    def file_path(self) -> str | None:
        """Path of the (first) file, as the daemon sees it; None before aria2 knows it."""
        for info in self.files:
            if info.path:
                return info.path
        return None

    @property
    def file_paths(self) -> tuple[str, ...]:
        return tuple(info.path for info in self.files if info.path)

    @property
    def is_active(self) -> bool:
        """Still moving or queued: active (or fetching its metadata), waiting or paused."""
        return self.status in ("active", "waiting", "paused", "metadata")

    @property
    def is_complete(self) -> bool:
        return self.status == "complete"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        """Rebuild a snapshot from :meth:`to_dict` (as stored in a shared state file)."""
        paths = data.get("file_paths") or ([data["file_path"]] if data.get("file_path") else [])
        total = int(data.get("total_length") or 0)
        done = int(data.get("completed_length") or 0)
        return cls(
            gid=str(data.get("gid", "")),
            status=str(data.get("status", "unknown")),
            total_length=total,
            completed_length=done,
            error_code=data.get("error_code"),
            error_message=data.get("error_message"),
            dir=data.get("dir"),
            files=tuple(FileInfo(path=p, length=total, completed_length=done) for p in paths),
            retry_count=int(data.get("retry_count") or 0),
            gave_up_reason=data.get("gave_up_reason"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived fields included."""
        return {
            "gid": self.gid,
            "status": self.status,
            "total_length": self.total_length,
            "completed_length": self.completed_length,
            "download_speed": self.download_speed,
            "upload_speed": self.upload_speed,
            "connections": self.connections,
            "progress_percent": self.progress_percent,
            "eta_seconds": self.eta_seconds,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "dir": self.dir,
            "file_path": self.file_path,
            "file_paths": list(self.file_paths),
            "retry_count": self.retry_count,
            "restart_pending": self.restart_pending,
            "gave_up_reason": self.gave_up_reason,
            "seeding": self.seeding,
        }


@attrs.frozen
class GlobalStats:
    """The daemon's totals (``aria2.getGlobalStat``)."""

    download_speed: int = 0
    upload_speed: int = 0
    num_active: int = 0
    num_waiting: int = 0
    num_stopped: int = 0
    num_stopped_total: int = 0

    @classmethod
    def from_aria2(cls, data: Mapping[str, Any]) -> GlobalStats:
        if not isinstance(data, Mapping):
            raise UnreadableStatus(f"a {_kind(data)} instead of a JSON object")
        return cls(
            download_speed=_int(data.get("downloadSpeed")),
            upload_speed=_int(data.get("uploadSpeed")),
            num_active=_int(data.get("numActive")),
            num_waiting=_int(data.get("numWaiting")),
            num_stopped=_int(data.get("numStopped")),
            num_stopped_total=_int(data.get("numStoppedTotal")),
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class DaemonHealth:
    """One daemon of a pool as the client sees it (``Aria2Client.daemons()``).

    ``state`` is ``"up"``, ``"unreachable"`` (no answer, for at most the pool's
    ``failover_after``: left out of placement), ``"failed_over"`` (no answer for longer: its
    unfinished downloads were added again on the others) or ``"refused"`` (it refuses the RPC
    secret: never placed on, never failed over). ``load`` is its active and waiting downloads as
    last read plus those placed on it since; ``downloads`` how many of this client's downloads
    it holds as far as the client knows. ``rpc_url`` has no credentials.
    """

    rpc_url: str
    state: str
    load: int
    weight: float
    downloads: int

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class BatchProgress:
    """A batch at one moment: counts by state, bytes, speed, and every download's snapshot.

    ``completed_count`` counts finished files; ``failed_count`` downloads that failed for good
    (a permanent error, a spent budget, or refused by aria2 when added); ``retrying_count``
    failed downloads with a restart pending; ``removed_count`` cancelled ones. ``is_completed``
    is True once every download has an outcome and no restart is pending: a batch is never
    "completed" while something in it may still change. ``batch_id`` is None for a group that
    is not a batch (``Aria2Client.get_downloads_progress``, ``aria2_sync.progress``).
    """

    batch_id: str | None
    downloads: tuple[Progress, ...]
    completed_count: int = 0
    failed_count: int = 0
    active_count: int = 0
    waiting_count: int = 0
    paused_count: int = 0
    retrying_count: int = 0
    removed_count: int = 0
    is_completed: bool = False

    @property
    def total_count(self) -> int:
        return len(self.downloads)

    @property
    def total_length(self) -> int:
        """Sum of the sizes known so far (aria2 learns a size when the transfer starts)."""
        return sum(p.total_length for p in self.downloads)

    @property
    def completed_length(self) -> int:
        return sum(p.completed_length for p in self.downloads)

    @property
    def download_speed(self) -> int:
        return sum(p.download_speed for p in self.downloads)

    @property
    def progress_percent(self) -> float:
        """Byte-weighted over the downloads whose size is known; by count when none is."""
        if not self.downloads:
            return 100.0
        known = [p for p in self.downloads if p.total_length > 0]
        if known:
            total = sum(p.total_length for p in known)
            done = sum(p.total_length if p.status == "complete" else p.completed_length for p in known)
            return min(100.0, 100.0 * done / total)
        return 100.0 * self.completed_count / len(self.downloads)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left for the known bytes at the current speed; None when unknown."""
        if self.is_completed:
            return 0.0
        speed = self.download_speed
        if speed <= 0:
            return None
        return max(0, self.total_length - self.completed_length) / speed

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "total_count": self.total_count,
            "completed_count": self.completed_count,
            "failed_count": self.failed_count,
            "active_count": self.active_count,
            "waiting_count": self.waiting_count,
            "paused_count": self.paused_count,
            "retrying_count": self.retrying_count,
            "removed_count": self.removed_count,
            "total_length": self.total_length,
            "completed_length": self.completed_length,
            "download_speed": self.download_speed,
            "progress_percent": self.progress_percent,
            "eta_seconds": self.eta_seconds,
            "is_completed": self.is_completed,
            "downloads": [p.to_dict() for p in self.downloads],
        }
