"""BitTorrent and Metalink on 127.0.0.1, offline: what the tests of magnets, torrents and metalinks use.

* :class:`Tracker`: a tiny HTTP tracker of our own. Each ``GET /announce`` is answered with a
  bencoded compact peer list of the peers that announced the same info hash before (their
  address as seen on the socket, their ``port`` parameter), the asker left out; ``event=stopped``
  forgets a peer. It must be started BEFORE a seeder announces (an announce that fails is
  retried only much later; see aria2-facts.md, "BitTorrent on loopback").
* :func:`make_torrent`: a single-file or multi-file torrent made with ``torf`` from bytes the
  test gives, small pieces (16 KiB) so that hashing and transfers take milliseconds; the
  :class:`MadeTorrent` knows its ``.torrent`` bytes, its magnet URI, its info hash and the
  expected content of every file.
* :class:`Seeder`: a second aria2c (an :class:`~aria2_sync.daemon.process.Aria2Daemon`, so
  stopped by PID and following this process if it dies) seeding the torrents forever, DHT, LPD and
  peer exchange off, its BitTorrent listening port a free one; :meth:`Seeder.kill` is a SIGKILL
  and :meth:`Seeder.start` brings it back on the same data and the same listening port.
* :func:`leecher_options`: aria2c options for the daemon under test (``daemon_factory(**...)``)
  that keep a BitTorrent download offline and quick to finish.
* :func:`sockets_of` / :func:`exposed_sockets`: what a process listens on, and what of that is
  not loopback (Linux /proc).
* :func:`metalink`: a Metalink 4 (``.meta4``, RFC 5854) document with mirror URLs and hashes.
* :func:`bencode` / :func:`bdecode`: the few lines of bencoding the tracker and the checks need.

Fixtures: ``bt_tracker``, ``torrent_factory`` and ``seeder_factory``; import them into a test
module (``from tests.support.bittorrent import bt_tracker, seeder_factory, torrent_factory``) or into
tests/conftest.py to offer them to every test.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import ipaddress
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Union
from xml.sax.saxutils import escape, quoteattr

import pytest

from aria2_sync.daemon.ownership import free_port
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.rpc.transport import Transport
from tests.support.fault_server import ManagedServer

__all__ = [
    "bencode",
    "bdecode",
    "Tracker",
    "Announce",
    "MadeTorrent",
    "make_torrent",
    "Seeder",
    "leecher_options",
    "sockets_of",
    "exposed_sockets",
    "MetalinkFile",
    "metalink",
    "bt_tracker",
    "torrent_factory",
    "seeder_factory",
    "OFFLINE_BT_OPTIONS",
    "PIECE_SIZE",
]

#: Options that keep aria2's BitTorrent off the network beyond the peers our tracker names.
OFFLINE_BT_OPTIONS: dict[str, str] = {
    "enable-dht": "false",
    "enable-dht6": "false",
    "bt-enable-lpd": "false",
    "enable-peer-exchange": "false",
}

#: Smallest piece size torf accepts: a few hundred KiB of payload make tens of pieces.
PIECE_SIZE = 16 * 1024

# --------------------------------------------------------------------------
# Bencoding
# --------------------------------------------------------------------------

Bencodable = Union[int, bytes, str, Sequence[Any], Mapping[Any, Any]]


def bencode(value: Bencodable) -> bytes:
    """Bencode ints, bytes, str (as UTF-8), lists and dicts (keys sorted as raw bytes)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, (bytes, bytearray)):
        return b"%d:%s" % (len(value), bytes(value))
    if isinstance(value, Mapping):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    if isinstance(value, (list, tuple)):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """Decode one bencoded value (strings stay bytes, dict keys too); raise ValueError if malformed."""

    def decode(at: int) -> tuple[Any, int]:
        if at >= len(data):
            raise ValueError("bencoded data ends early")
        lead = data[at : at + 1]
        if lead == b"i":
            end = data.index(b"e", at)
            return int(data[at + 1 : end]), end + 1
        if lead in (b"l", b"d"):
            items, at = [], at + 1
            while data[at : at + 1] != b"e":
                item, at = decode(at)
                items.append(item)
            if lead == b"l":
                return items, at + 1
            if len(items) % 2:
                raise ValueError("a bencoded dict with a key and no value")
            return dict(zip(items[::2], items[1::2])), at + 1
        if lead.isdigit():
            colon = data.index(b":", at)
            start = colon + 1
            end = start + int(data[at:colon])
            if end > len(data):
                raise ValueError("a bencoded string runs past the end")
            return data[start:end], end
        raise ValueError(f"not bencode at byte {at}: {lead!r}")

    value, end = decode(0)
    if end != len(data):
        raise ValueError(f"{len(data) - end} bytes after the bencoded value")
    return value


# --------------------------------------------------------------------------
# Tracker
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Announce:
    """One announce the tracker received (``info_hash`` in hex, ``event`` "" for a periodic one)."""

    info_hash: str
    ip: str
    port: int
    event: str
    left: int | None
    uploaded: int | None
    downloaded: int | None


class _TrackerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one announce per connection, closed after the answer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        tracker: Tracker = self.server.owner  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        if path != "/announce":
            self._answer(404, bencode({"failure reason": "not found"}))
            return
        # info_hash is 20 raw bytes percent-encoded: latin-1 maps every byte to one character.
        params = urllib.parse.parse_qs(query, encoding="latin-1")
        try:
            info_hash = params["info_hash"][0].encode("latin-1")
            port = int(params["port"][0])
        except (KeyError, ValueError):
            self._answer(200, bencode({"failure reason": "info_hash and port are needed"}))
            return

        def number(name: str) -> int | None:
            try:
                return int(params[name][0])
            except (KeyError, ValueError):
                return None

        announce = Announce(
            info_hash=info_hash.hex(),
            ip=self.client_address[0],
            port=port,
            event=params.get("event", [""])[0],
            left=number("left"),
            uploaded=number("uploaded"),
            downloaded=number("downloaded"),
        )
        self._answer(200, tracker._announced(announce))

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Tracker(ManagedServer):
    """An HTTP BitTorrent tracker on 127.0.0.1 (free port) that knows only who announced to it.

    ``interval`` is what it tells peers (seconds between periodic announces). ``announces`` is
    every announce received, in order; :meth:`peers` the peers it would name for an info hash.
    """

    _handler_class = _TrackerHandler

    def __init__(self, interval: int = 1) -> None:
        super().__init__()
        self.interval = interval
        self._lock = threading.Lock()
        self._swarms: dict[str, dict[tuple[str, int], Announce]] = {}
        self._announces: list[Announce] = []

    @property
    def announce_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/announce"

    @property
    def announces(self) -> list[Announce]:
        with self._lock:
            return list(self._announces)

    def peers(self, info_hash: str) -> list[tuple[str, int]]:
        """The (ip, port) of every peer of ``info_hash`` (hex) that announced and did not stop."""
        with self._lock:
            return list(self._swarms.get(info_hash, {}))

    def forget(self, port: int) -> None:
        """Drop every peer listening on ``port`` (as if it had announced ``stopped``)."""
        with self._lock:
            for swarm in self._swarms.values():
                for key in [key for key in swarm if key[1] == port]:
                    del swarm[key]

    def _announced(self, announce: Announce) -> bytes:
        key = (announce.ip, announce.port)
        with self._lock:
            self._announces.append(announce)
            swarm = self._swarms.setdefault(announce.info_hash, {})
            if announce.event == "stopped":
                swarm.pop(key, None)
            else:
                swarm[key] = announce
            others = [peer for peer in swarm.values() if (peer.ip, peer.port) != key]
        compact = b"".join(socket.inet_aton(peer.ip) + peer.port.to_bytes(2, "big") for peer in others)
        seeders = sum(1 for peer in others if peer.left == 0)
        return bencode(
            {
                "interval": self.interval,
                "min interval": self.interval,
                "complete": seeders,
                "incomplete": len(others) - seeders,
                "peers": compact,
            }
        )


# --------------------------------------------------------------------------
# Torrents
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MadeTorrent:
    """A torrent made by :func:`make_torrent` and what downloading it must give.

    ``files`` maps each payload file's path relative to a download directory (``name`` for a
    single-file torrent, ``name/sub/file`` for a multi-file one) to its bytes, in the torrent's
    file order (aria2's ``select-file`` indexes are that order, from 1). ``seed_dir`` is the
    directory a seeder downloads into to find the payload complete.
    """

    name: str
    path: Path
    data: bytes
    seed_dir: Path
    files: dict[str, bytes]
    info_hash: str
    magnet: str
    piece_size: int

    @property
    def total_size(self) -> int:
        return sum(len(content) for content in self.files.values())

    @property
    def base64(self) -> str:
        """The ``.torrent`` as ``aria2.addTorrent`` takes it."""
        return base64.b64encode(self.data).decode()

    def check_downloaded(
        self, download_dir: os.PathLike[str] | str, only: Sequence[int] | None = None
    ) -> None:
        """Assert that ``download_dir`` holds the payload byte for byte (files ``only``: 1-based)."""
        for index, (relative, content) in enumerate(self.files.items(), start=1):
            if only is not None and index not in only:
                continue
            got = Path(download_dir, relative).read_bytes()
            assert got == content, f"{relative}: {len(got)} bytes differ from the {len(content)} seeded"


def make_torrent(
    root: Path,
    name: str,
    content: bytes | Mapping[str, bytes],
    trackers: Sequence[str],
    piece_size: int = PIECE_SIZE,
) -> MadeTorrent:
    """Write the payload under ``root/seed`` and its torrent to ``root/NAME.torrent``.

    ``content``: bytes for a single-file torrent, or ``{"relative/path": bytes}`` for a
    multi-file one (a directory ``name``).
    """
    import torf

    seed_dir = root / "seed"
    seed_dir.mkdir(parents=True, exist_ok=True)
    target = seed_dir / name
    if isinstance(content, (bytes, bytearray)):
        target.write_bytes(content)
        files = {name: bytes(content)}
    else:
        files = {}
        for relative, data in content.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        torrent_order = torf.Torrent(path=target, piece_size=piece_size).files  # torf's own order
        for file in torrent_order:
            relative = "/".join(file.parts)
            files[relative] = (seed_dir / relative).read_bytes()
    torrent = torf.Torrent(path=target, trackers=list(trackers), piece_size=piece_size, private=False)
    torrent.generate()
    torrent_path = root / f"{name}.torrent"
    torrent.write(torrent_path, overwrite=True)
    return MadeTorrent(
        name=name,
        path=torrent_path,
        data=torrent_path.read_bytes(),
        seed_dir=seed_dir,
        files=files,
        info_hash=torrent.infohash,
        magnet=str(torrent.magnet()),
        piece_size=piece_size,
    )


# --------------------------------------------------------------------------
# Seeder and leecher
# --------------------------------------------------------------------------


def leecher_options(**extra: Any) -> dict[str, Any]:
    """aria2c options for the daemon under test: offline BitTorrent, a free listening port,
    stop seeding as soon as the payload is complete. ``extra`` overrides any of them."""
    options: dict[str, Any] = dict(OFFLINE_BT_OPTIONS)
    options.update({"listen-port": free_port(), "seed-time": 0})
    options.update(extra)
    return options


class Seeder:
    """A second aria2c that seeds torrents from their ``seed_dir`` for as long as it runs.

    ``upload_limit`` (bytes/s, per torrent) slows it down so that a test can act mid-download.
    :meth:`kill` SIGKILLs it; :meth:`start` again brings it back on the same listening port
    with the same torrents (payload trusted as seeded, ``bt-seed-unverified``).
    """

    def __init__(self, state_root: Path, upload_limit: int | None = None) -> None:
        self.state_root = state_root
        self.listen_port = free_port()
        self.upload_limit = upload_limit
        self.torrents: dict[str, MadeTorrent] = {}  # info hash -> torrent, in the order added
        self.gids: dict[str, str] = {}  # info hash -> GID in the current aria2c
        self._daemon: Aria2Daemon | None = None
        self._transport: Transport | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._daemon.pid if self._daemon else None

    @property
    def running(self) -> bool:
        return self._daemon is not None and self._daemon.running

    def start(self) -> Seeder:
        """Start aria2c (a fresh one after :meth:`kill` or :meth:`stop`) and seed every torrent."""
        if self.running:
            return self
        self.starts += 1
        options = dict(OFFLINE_BT_OPTIONS)
        options.update(
            {
                "listen-port": self.listen_port,
                "seed-ratio": "0.0",  # no ratio goal: seed until stopped
                "bt-seed-unverified": "true",
                "max-upload-limit": self.upload_limit or 0,
            }
        )
        state = self.state_root / f"seeder-state-{self.starts}"
        state.mkdir(mode=0o700, parents=True)
        self._daemon = Aria2Daemon(download_dir=self.state_root, state_dir=state, options=options).start()
        self._transport = Transport(self._daemon.rpc_url, self._daemon.secret, timeout=5.0, max_retries=0)
        self.gids = {}
        for torrent in self.torrents.values():
            self._add(torrent)
        return self

    def seed(self, torrent: MadeTorrent) -> str:
        """Seed ``torrent`` now and after every restart; return its GID in the current aria2c."""
        self.torrents[torrent.info_hash] = torrent
        return self._add(torrent)

    def _add(self, torrent: MadeTorrent) -> str:
        assert self._transport is not None, "start the seeder first"
        gid: str = self._transport.call(
            "aria2.addTorrent", [torrent.base64, [], {"dir": str(torrent.seed_dir)}]
        )
        self.gids[torrent.info_hash] = gid
        return gid

    def call(self, method: str, *params: Any) -> Any:
        """An RPC call to the seeder's aria2c (``aria2.tellStatus`` of ``self.gids[...]``, ...)."""
        assert self._transport is not None, "start the seeder first"
        return self._transport.call(method, list(params))

    def uploaded(self, torrent: MadeTorrent) -> int:
        """Bytes the current aria2c has uploaded of ``torrent`` (0 again after a restart)."""
        status = self.call("aria2.tellStatus", self.gids[torrent.info_hash], ["uploadLength"])
        return int(status["uploadLength"])

    def kill(self) -> None:
        """SIGKILL aria2c (a crash: no ``stopped`` announce); :meth:`start` brings it back."""
        if self._daemon is not None:
            self._daemon.kill()
        self.stop()

    def stop(self) -> None:
        """Stop aria2c (SIGTERM, then SIGKILL), by PID. Idempotent."""
        transport, self._transport = self._transport, None
        daemon, self._daemon = self._daemon, None
        if transport is not None:
            transport.close()
        if daemon is not None:
            daemon.stop()


def sockets_of(pid: int) -> list[tuple[str, str, int]]:
    """``(protocol, address, port)`` of every listening TCP and every UDP socket of process ``pid``.

    Read from /proc (Linux): the process's socket inodes in ``/proc/PID/fd``, matched against
    ``/proc/PID/net/{tcp,tcp6,udp,udp6}``. Protocol is ``tcp``, ``tcp6``, ``udp`` or ``udp6``.
    """
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        with open(f"/proc/{pid}/net/{protocol}") as table:
            next(table)  # the header
            for line in table:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode not in inodes or (protocol.startswith("tcp") and state != "0A"):  # 0A: LISTEN
                    continue
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
                found.append((protocol, socket.inet_ntop(family, words), int(port, 16)))
    return sorted(found)


def exposed_sockets(pid: int) -> list[tuple[str, str, int]]:
    """The sockets of :func:`sockets_of` bound to anything but a loopback address (0.0.0.0 and
    ``::`` included): what another machine could reach."""
    return [entry for entry in sockets_of(pid) if not ipaddress.ip_address(entry[1]).is_loopback]


# --------------------------------------------------------------------------
# Metalink
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetalinkFile:
    """One ``<file>`` of a Metalink 4 document: mirror ``urls`` (first = preferred) and hashes.

    ``hashes`` maps aria2's hash names as in RFC 5854 (``sha-256``, ``sha-1``, ``md5``) to hex
    digests; :meth:`of` computes them from the content.
    """

    name: str
    urls: tuple[str, ...]
    size: int | None = None
    hashes: tuple[tuple[str, str], ...] = ()
    piece_hashes: tuple[str, tuple[str, ...], int] | None = None  # (type, digests, length)

    @classmethod
    def of(
        cls, name: str, content: bytes, urls: Sequence[str], hash_types: Sequence[str] = ("sha-256",)
    ) -> MetalinkFile:
        names = {"sha-256": "sha256", "sha-1": "sha1", "md5": "md5", "sha-512": "sha512"}
        hashes = tuple((kind, hashlib.new(names[kind], content).hexdigest()) for kind in hash_types)
        return cls(name=name, urls=tuple(urls), size=len(content), hashes=hashes)


def metalink(files: Sequence[MetalinkFile]) -> bytes:
    """The ``.meta4`` XML (RFC 5854) describing ``files``; URL priority 1 is the first mirror."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<metalink xmlns="urn:ietf:params:xml:ns:metalink">']
    for file in files:
        lines.append(f"  <file name={quoteattr(file.name)}>")
        if file.size is not None:
            lines.append(f"    <size>{file.size}</size>")
        for kind, digest in file.hashes:
            lines.append(f"    <hash type={quoteattr(kind)}>{escape(digest)}</hash>")
        if file.piece_hashes is not None:
            kind, digests, length = file.piece_hashes
            lines.append(f"    <pieces length={quoteattr(str(length))} type={quoteattr(kind)}>")
            lines.extend(f"      <hash>{escape(digest)}</hash>" for digest in digests)
            lines.append("    </pieces>")
        for priority, url in enumerate(file.urls, start=1):
            lines.append(f"    <url priority={quoteattr(str(priority))}>{escape(url)}</url>")
        lines.append("  </file>")
    lines.append("</metalink>")
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------


@pytest.fixture
def bt_tracker() -> Iterator[Tracker]:
    """Our tracker, started; stopped after the test (its handlers' errors fail the test)."""
    tracker = Tracker()
    try:
        tracker.start()
        yield tracker
    finally:
        stopped = tracker.stop()
    assert tracker.errors == [], f"the tracker's handlers raised: {tracker.errors!r}"
    assert stopped, "the tracker's threads did not end within its stop timeout"


@pytest.fixture
def torrent_factory(tmp_path_factory, bt_tracker: Tracker) -> Callable[..., MadeTorrent]:
    """``make(name, content, piece_size=PIECE_SIZE)``: a torrent on ``bt_tracker``, in its own folder."""

    def make(name: str, content: bytes | Mapping[str, bytes], piece_size: int = PIECE_SIZE) -> MadeTorrent:
        root = tmp_path_factory.mktemp("torrent")
        return make_torrent(root, name, content, [bt_tracker.announce_url], piece_size)

    return make


@pytest.fixture
def seeder_factory(tmp_path_factory, bt_tracker: Tracker) -> Iterator[Callable[..., Seeder]]:
    """``seed(*torrents, upload_limit=None)``: a started :class:`Seeder` of ``torrents``.

    Depends on ``bt_tracker`` so that the tracker is up before any seeder announces. Every
    seeder is stopped after the test, by PID.
    """
    seeders: list[Seeder] = []

    def seed(*torrents: MadeTorrent, upload_limit: int | None = None) -> Seeder:
        seeder = Seeder(tmp_path_factory.mktemp("seeder"), upload_limit=upload_limit)
        seeders.append(seeder)
        seeder.start()
        for torrent in torrents:
            seeder.seed(torrent)
        return seeder

    try:
        yield seed
    finally:
        errors = []
        for seeder in seeders:
            try:
                seeder.stop()
            except Exception as error:
                errors.append(error)
        if errors:
            raise errors[0]
