"""A fault-injecting HTTP/1.1 file server for aria2 integration tests.

aria2c downloads real files from :class:`FaultServer`; tests queue faults
(error statuses, TCP resets mid-body, stalls, throttling) per file to exercise
the client's retry / resume / error-reporting paths deterministically, and then
inspect per-file request statistics to check how aria2 reacted.

The module also holds the small server plumbing shared with
:mod:`tests.support.rpc_proxy` (:class:`TrackingHTTPServer`,
:class:`ManagedServer`): connection threads that ``stop()`` can find, kick and
join with a deadline, so a stuck client can never hang the test session.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import http.server
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse
from typing import Any, Literal, TypeVar, Union

try:  # Linux only: lets ResetAfter wait until the peer has ACKed the body bytes.
    import fcntl
    import termios

    _TIOCOUTQ: int | None = termios.TIOCOUTQ
except (ImportError, AttributeError):  # pragma: no cover - non-Linux
    fcntl = None  # type: ignore[assignment]
    _TIOCOUTQ = None

__all__ = [
    "FaultServer",
    "Status",
    "ResetAfter",
    "Stall",
    "Slow",
    "Fault",
    "RequestRecord",
    "deterministic_content",
    "parse_range",
    "UNSATISFIABLE",
]

#: Size of the chunks bodies are written in, and of the content generator's block.
CHUNK_SIZE = 64 * 1024

#: How long ResetAfter waits at most for the peer to ACK the bytes before the RST.
_RESET_DRAIN_TIMEOUT = 5.0


# --------------------------------------------------------------------------
# Shared server plumbing (also used by rpc_proxy.py)
# --------------------------------------------------------------------------


class TrackingHTTPServer(http.server.HTTPServer):
    """HTTPServer on 127.0.0.1:0 running each connection in a tracked daemon thread.

    ``socketserver.ThreadingMixIn`` either forgets its daemon threads or joins
    non-daemon ones without a deadline; tests need both "never block
    interpreter exit" and "stop() really ends every connection, quickly", so
    connections are kept in a dict and shut down / joined explicitly.
    """

    #: Poll interval of the accept loop (seconds): bounds how long stop() waits for it.
    timeout = 0.05

    def __init__(self, handler_class: type[socketserver.BaseRequestHandler], owner: Any) -> None:
        self.owner = owner
        #: Set when the owner stops; handlers wait on it instead of sleeping.
        self.stop_event = threading.Event()
        self._conn_lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._closing = False
        self._errors: list[BaseException] = []
        super().__init__(("127.0.0.1", 0), handler_class)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that
        # can take seconds in sandboxes; the name is only used for logging.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    #: Send buffer of each connection. Linux grows loopback send buffers to megabytes, so bytes
    #: "served" would count data that sat in kernel buffers when the client hung up (aria2 hangs
    #: up on its size probe when it resumes). A fixed, modest buffer keeps the byte count close
    #: to what the client was actually given, as over a real network.
    send_buffer = 128 * 1024

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            request.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        except OSError:
            pass
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"{type(self.owner).__name__}-conn-{client_address[1]}",
            daemon=True,
        )
        with self._conn_lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._conns[request] = thread
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._conn_lock:
                self._conns.pop(request, None)
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Record unexpected handler exceptions instead of printing tracebacks.

        Socket errors (client went away, reset, timeout, our own shutdown in
        stop()) are the normal business of a fault-injecting server and are
        ignored; anything else is kept so tests can assert ``errors == []``.
        """
        exc = sys.exc_info()[1]
        if exc is None or isinstance(exc, OSError):
            return
        if self.stop_event.is_set() and isinstance(exc, ValueError):
            return  # I/O on a socket file closed underneath us by stop()
        with self._conn_lock:
            self._errors.append(exc)

    @property
    def errors(self) -> list[BaseException]:
        with self._conn_lock:
            return list(self._errors)

    def serve_until_stopped(self) -> None:
        """Accept loop; each iteration is bounded by ``self.timeout``."""
        while not self.stop_event.is_set():
            try:
                self.handle_request()
            except (OSError, ValueError):
                if self.stop_event.is_set():
                    return
                raise

    def close_connections(self, deadline: float) -> bool:
        """Kick every open connection, join their threads until ``deadline``.

        Returns True if every connection thread ended in time.
        """
        with self._conn_lock:
            self._closing = True
            conns = list(self._conns.items())
        for sock, _thread in conns:
            try:
                # Unblocks handlers sitting in recv()/sendall() on this socket.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for _sock, thread in conns:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for _sock, thread in conns)


_Server = TypeVar("_Server", bound="ManagedServer")


class ManagedServer:
    """start()/stop()/context-manager lifecycle around a :class:`TrackingHTTPServer`.

    The socket is bound (to a free port) in ``__init__`` so URLs are known
    before ``start()``; ``stop()`` is idempotent, and a stopped server cannot
    be restarted (its port is gone).
    """

    _handler_class: type[socketserver.BaseRequestHandler]

    def __init__(self) -> None:
        self._server = TrackingHTTPServer(self._handler_class, owner=self)
        self._lifecycle_lock = threading.Lock()
        self._accept_thread: threading.Thread | None = None
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised by connection handlers (should stay empty)."""
        return self._server.errors

    @property
    def stopping(self) -> bool:
        return self._server.stop_event.is_set()

    def start(self: _Server) -> _Server:
        with self._lifecycle_lock:
            if self._stopped:
                raise RuntimeError(f"{type(self).__name__} was stopped and cannot be restarted")
            if self._accept_thread is None:
                self._accept_thread = threading.Thread(
                    target=self._server.serve_until_stopped,
                    name=f"{type(self).__name__}-accept-{self.port}",
                    daemon=True,
                )
                self._accept_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop accepting, end all connections, close the socket.

        Idempotent. Returns True if every thread ended within ``timeout``
        (they are daemon threads, so stragglers cannot block interpreter exit).
        """
        with self._lifecycle_lock:
            if self._stopped:
                return True
            self._stopped = True
            accept_thread = self._accept_thread
        deadline = time.monotonic() + timeout
        self._server.stop_event.set()
        ok = True
        if accept_thread is not None:
            accept_thread.join(max(0.0, deadline - time.monotonic()))
            ok = not accept_thread.is_alive()
        ok = self._server.close_connections(deadline) and ok
        self._server.server_close()
        return ok

    def __enter__(self: _Server) -> _Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------
# Faults and records
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Status:
    """Answer with this status code and a short text body instead of the file.

    ``headers`` are extra response headers (e.g. ``(("Retry-After", "1"),)``).
    """

    code: int
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not 100 <= self.code <= 599:
            raise ValueError(f"invalid HTTP status code {self.code}")


@dataclasses.dataclass(frozen=True)
class ResetAfter:
    """Send normal 200/206 headers and exactly ``nbytes`` body bytes, then RST.

    The RST is produced by closing with SO_LINGER (1, 0) after the peer has
    ACKed the bytes, so the client reliably sees N bytes then ECONNRESET rather
    than a clean EOF. If ``nbytes`` >= the body length the whole body is sent
    before the reset.
    """

    nbytes: int

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            raise ValueError("nbytes must be >= 0")


@dataclasses.dataclass(frozen=True)
class Stall:
    """Send the headers, then nothing for ``seconds`` (or until stop()), then close."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must be >= 0")


@dataclasses.dataclass(frozen=True)
class Slow:
    """Serve the whole body, throttled to about ``bytes_per_second``."""

    bytes_per_second: int

    def __post_init__(self) -> None:
        if self.bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be > 0")


@dataclasses.dataclass(frozen=True)
class OnRangeRequest:
    """Apply ``fault`` to the next request that carries a Range header; others pass it by.

    aria2 resumes a download by first sending a plain GET (to learn the size) that it abandons
    after the headers, then a Range request for the missing part. To break the resumed transfer
    itself rather than that probe, wrap the fault in this.
    """

    fault: Status | ResetAfter | Stall | Slow


Fault = Union[Status, ResetAfter, Stall, Slow, OnRangeRequest]
_FAULT_TYPES = (Status, ResetAfter, Stall, Slow, OnRangeRequest)


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw and answered it.

    Records are created as soon as the request line and headers are parsed,
    i.e. before any answer byte leaves the server, and updated while the
    answer is written; so once a client has seen an answer, its record and
    byte count are already visible (no race between "aria2 says complete" and
    the statistics). ``complete`` turns True when the server is done with it.

    ``status`` is the status chosen for the answer (0 until one is chosen).
    ``bytes_sent`` counts *file content* bytes handed to the socket (not
    headers, not the short bodies of error answers), so summing it tells a
    test how much of the file aria2 really transferred. Each chunk is counted
    just before it is written and un-counted if the write fails, so a chunk
    cut off by a client disconnect is not counted at all.
    """

    method: str
    path: str
    range_header: str | None
    status: int
    bytes_sent: int
    fault: Fault | None
    client_port: int
    complete: bool


@dataclasses.dataclass
class _LiveRecord:
    """Mutable twin of RequestRecord, updated by the handler under the server lock."""

    method: str
    path: str
    range_header: str | None
    client_port: int
    status: int = 0
    bytes_sent: int = 0
    fault: Fault | None = None
    complete: bool = False

    def snapshot(self) -> RequestRecord:
        return RequestRecord(
            method=self.method,
            path=self.path,
            range_header=self.range_header,
            status=self.status,
            bytes_sent=self.bytes_sent,
            fault=self.fault,
            client_port=self.client_port,
            complete=self.complete,
        )


# --------------------------------------------------------------------------
# Content and Range helpers
# --------------------------------------------------------------------------


def deterministic_content(name: str, size: int) -> bytes:
    """Cheap, reproducible pseudo-random bytes for ``name`` (64 MiB in ~50 ms).

    A 64 KiB block from a chained SHA-256 is repeated, and each block's first
    32 bytes are replaced by a per-block-index hash: plain repetition would
    make data written at an offset off by a multiple of 64 KiB (aria2 pieces
    are 1 MiB) compare equal, hiding exactly the bugs resume tests look for.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if size == 0:
        return b""
    seed = hashlib.sha256(name.encode("utf-8")).digest()
    digest = seed
    parts = []
    for _ in range(CHUNK_SIZE // 32):
        digest = hashlib.sha256(digest).digest()
        parts.append(digest)
    block = b"".join(parts)
    nblocks = -(-size // CHUNK_SIZE)
    buf = bytearray(block * nblocks)
    for index in range(nblocks):
        offset = index * CHUNK_SIZE
        buf[offset : offset + 32] = hashlib.sha256(seed + index.to_bytes(8, "big")).digest()
    del buf[size:]
    return bytes(buf)


UNSATISFIABLE: Literal["unsatisfiable"] = "unsatisfiable"


def parse_range(header: str | None, size: int) -> None | tuple[int, int] | Literal["unsatisfiable"]:
    """Interpret a ``Range`` header against a body of ``size`` bytes.

    Returns None to serve the full body (no header, or one we may ignore per
    RFC 9110: other units, malformed, multiple ranges), an inclusive
    ``(start, end)`` for a 206, or :data:`UNSATISFIABLE` for a 416.
    Supports ``bytes=START-``, ``bytes=START-END`` and ``bytes=-SUFFIX``.
    """
    if header is None:
        return None
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    spec = spec.strip()
    if "," in spec:
        return None
    first, dash, last = spec.partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if first == "":
        if not last.isdigit():
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return (max(0, size - suffix), size - 1)
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    return (start, min(end, size - 1))


# --------------------------------------------------------------------------
# The file server
# --------------------------------------------------------------------------


class _FileHandler(http.server.BaseHTTPRequestHandler):
    """Serves FaultServer files; one instance per connection (keep-alive loop)."""

    protocol_version = "HTTP/1.1"
    server_version = "FaultServer/1.0"
    #: Idle keep-alive limit and per-sendall limit, so no connection lives forever.
    timeout = 30.0
    disable_nagle_algorithm = True
    server: TrackingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: test output must not be cluttered by access logs."""

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # -- helpers -----------------------------------------------------------

    def _serve(self, head: bool) -> None:
        owner: FaultServer = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        name = urllib.parse.unquote(path[1:] if path.startswith("/") else path)
        range_header = self.headers.get("Range")
        self._owner = owner
        self._rec = owner._begin_record(
            name,
            _LiveRecord(
                method=self.command,
                path=self.path,
                range_header=range_header,
                client_port=int(self.client_address[1]),
            ),
        )
        try:
            data = owner._data_for(name)
            if data is None:
                self._send_small(404, b"not found\n")
                return
            size = len(data)
            rng = parse_range(range_header, size)
            fault: Fault | None = None
            if not head:
                fault = owner._take_fault(name, rng != UNSATISFIABLE, self._rec, ranged=rng is not None)
            if isinstance(fault, Status):
                self._send_small(fault.code, f"{fault.code} injected fault\n".encode(), fault.headers)
                return
            if rng == UNSATISFIABLE:
                self._send_small(416, b"", (("Content-Range", f"bytes */{size}"),))
                return
            if rng is None:
                start, end, code = 0, size - 1, 200
            else:
                start, end = rng
                code = 206
            owner._update_record(self._rec, status=code)
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if not head:
                self._send_body(memoryview(data)[start : end + 1], fault)
        finally:
            owner._update_record(self._rec, complete=True)

    def _send_small(self, code: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
        self._owner._update_record(self._rec, status=code)
        self.send_response(code)
        self.send_header("Accept-Ranges", "bytes")
        for key, value in headers:
            self.send_header(key, value)
        no_body = code in (204, 304) or code < 200
        if not no_body:
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not no_body and self.command != "HEAD":
            self.wfile.write(body)

    def _write_piece(self, piece: memoryview) -> None:
        """Write one piece of file content, counted before the write (see RequestRecord)."""
        self._owner._add_bytes(self._rec, len(piece))
        try:
            self.wfile.write(piece)
        except BaseException:
            self._owner._add_bytes(self._rec, -len(piece))
            raise

    def _send_body(self, view: memoryview, fault: Fault | None) -> None:
        stop = self.server.stop_event
        if fault is None or isinstance(fault, ResetAfter):
            limit = len(view) if fault is None else min(fault.nbytes, len(view))
            for offset in range(0, limit, CHUNK_SIZE):
                self._write_piece(view[offset : min(offset + CHUNK_SIZE, limit)])
            if isinstance(fault, ResetAfter):
                self._wait_until_acked(time.monotonic() + _RESET_DRAIN_TIMEOUT)
                self._abort_with_rst()
        elif isinstance(fault, Stall):
            stop.wait(fault.seconds)
            self.close_connection = True
        elif isinstance(fault, Slow):
            rate = fault.bytes_per_second
            piece_size = max(1, min(CHUNK_SIZE, rate // 20))  # ~20 writes per second
            started = time.monotonic()
            sent = 0
            while sent < len(view):
                if stop.is_set():
                    self.close_connection = True
                    return
                piece = view[sent : sent + piece_size]
                self._write_piece(piece)
                sent += len(piece)
                delay = started + sent / rate - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    self.close_connection = True
                    return

    def _wait_until_acked(self, deadline: float) -> None:
        """Wait (bounded) until the kernel send queue is empty, i.e. the peer has the bytes.

        A SO_LINGER(1, 0) close discards unsent data, so without this a large
        ``nbytes`` could reach the client only partially. There is no event for
        "send queue drained", hence the short bounded poll.
        """
        if _TIOCOUTQ is None or fcntl is None:
            return
        stop = self.server.stop_event
        while time.monotonic() < deadline:
            try:
                raw = fcntl.ioctl(self.connection.fileno(), _TIOCOUTQ, struct.pack("i", 0))
            except OSError:
                return
            if struct.unpack("i", raw)[0] == 0:
                return
            if stop.wait(0.002):
                return

    def _abort_with_rst(self) -> None:
        """Close so the kernel sends RST instead of FIN (SO_LINGER on, timeout 0)."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        # rfile holds a reference on the socket; close it first so the close()
        # below really closes the fd now (and before any shutdown(SHUT_WR),
        # which would send a FIN first).
        self.rfile.close()
        self.connection.close()


class FaultServer(ManagedServer):
    """HTTP/1.1 file server on 127.0.0.1 with per-file, on-demand fault injection.

    Usage::

        with FaultServer() as srv:
            url = srv.add_file("big.bin", size=8 << 20)
            srv.add_faults("big.bin", ResetAfter(1 << 20), Status(503))
            ...  # aria2 downloads url
            assert srv.request_count("big.bin") >= 3

    Each GET of a file consumes one queued fault (FIFO); when the queue is
    empty the file's default fault (``set_default_fault``) applies, if any.
    HEAD requests never consume faults. A queued non-Status fault is left in
    the queue when the request's Range is unsatisfiable (the 416 is sent).
    """

    _handler_class = _FileHandler

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._files: dict[str, bytes] = {}
        self._faults: dict[str, collections.deque[Fault]] = {}
        self._default_faults: dict[str, Fault] = {}
        self._records: dict[str, list[_LiveRecord]] = {}
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        """Full URL of file ``name`` (whether registered or not: handy for 404 tests)."""
        return f"{self.base_url}/{urllib.parse.quote(self._norm(name))}"

    # -- files ---------------------------------------------------------------

    @staticmethod
    def _norm(name: str) -> str:
        return name[1:] if name.startswith("/") else name

    def add_file(self, name: str, size: int | None = None, data: bytes | None = None) -> str:
        """Register (or replace) ``/name`` and return its URL.

        Give either ``data`` or ``size``; with only ``size`` the content is
        :func:`deterministic_content` (name, size).
        """
        name = self._norm(name)
        if data is None:
            if size is None:
                raise ValueError("add_file needs size or data")
            content = deterministic_content(name, size)
        else:
            content = bytes(data)
            if size is not None and size != len(content):
                raise ValueError(f"size={size} but len(data)={len(content)}")
        with self._cond:
            self._files[name] = content
        return self.url(name)

    def content(self, name: str) -> bytes:
        """The exact bytes served for ``name`` (KeyError if unknown)."""
        with self._cond:
            return self._files[self._norm(name)]

    def _data_for(self, name: str) -> bytes | None:
        with self._cond:
            return self._files.get(name)

    # -- faults --------------------------------------------------------------

    def add_faults(self, name: str, *faults: Fault) -> None:
        """Append faults to ``name``'s queue; each GET consumes one."""
        for fault in faults:
            if not isinstance(fault, _FAULT_TYPES):
                raise TypeError(f"not a fault: {fault!r}")
        with self._cond:
            self._faults.setdefault(self._norm(name), collections.deque()).extend(faults)

    def set_default_fault(self, name: str, fault: Fault | None) -> None:
        """Apply ``fault`` to every GET of ``name`` while its queue is empty (None: off)."""
        if fault is not None and not isinstance(fault, _FAULT_TYPES):
            raise TypeError(f"not a fault: {fault!r}")
        with self._cond:
            if fault is None:
                self._default_faults.pop(self._norm(name), None)
            else:
                self._default_faults[self._norm(name)] = fault

    def clear_faults(self, name: str | None = None) -> None:
        """Drop queued and default faults of ``name`` (of every file if None)."""
        with self._cond:
            if name is None:
                self._faults.clear()
                self._default_faults.clear()
            else:
                self._faults.pop(self._norm(name), None)
                self._default_faults.pop(self._norm(name), None)

    def pending_faults(self, name: str) -> list[Fault]:
        """Faults still queued for ``name`` (lets tests check all were consumed)."""
        with self._cond:
            return list(self._faults.get(self._norm(name), ()))

    def _take_fault(
        self, name: str, satisfiable: bool, record: _LiveRecord, ranged: bool = False
    ) -> Fault | None:
        """Pop the fault for this GET (queue first, then default) and note it in ``record``."""
        with self._cond:
            queue = self._faults.get(name)
            candidate = queue[0] if queue else self._default_faults.get(name)
            if candidate is None:
                return None
            if isinstance(candidate, OnRangeRequest):
                if not ranged:
                    return None  # left queued for the Range request that follows
                if queue:
                    queue.popleft()
                record.fault = candidate.fault
                return candidate.fault
            if not satisfiable and not isinstance(candidate, Status):
                return None  # left queued: the 416 answer has no body to break
            if queue:
                queue.popleft()
            record.fault = candidate
            return candidate

    # -- statistics ----------------------------------------------------------

    def _begin_record(self, name: str, record: _LiveRecord) -> _LiveRecord:
        with self._cond:
            self._records.setdefault(name, []).append(record)
            self._cond.notify_all()
        return record

    def _update_record(self, record: _LiveRecord, **fields: Any) -> None:
        with self._cond:
            for key, value in fields.items():
                setattr(record, key, value)
            self._cond.notify_all()

    def _add_bytes(self, record: _LiveRecord, nbytes: int) -> None:
        with self._cond:
            record.bytes_sent += nbytes

    def requests(self, name: str) -> list[RequestRecord]:
        """Snapshots of all requests for ``name`` (any method/outcome, in arrival order).

        Includes requests still being answered (``complete=False``).
        """
        with self._cond:
            return [r.snapshot() for r in self._records.get(self._norm(name), ())]

    def request_count(self, name: str) -> int:
        """Requests received for ``name`` so far, finished or not."""
        with self._cond:
            return len(self._records.get(self._norm(name), ()))

    def bytes_served(self, name: str) -> int:
        """Sum of file-content bytes written for ``name``."""
        with self._cond:
            return sum(r.bytes_sent for r in self._records.get(self._norm(name), ()))

    def total_bytes_served(self) -> int:
        """Sum of file-content bytes written for all files."""
        with self._cond:
            return sum(r.bytes_sent for records in self._records.values() for r in records)

    def reset_stats(self) -> None:
        """Forget all request records (files and faults are kept)."""
        with self._cond:
            self._records.clear()

    def wait_for_requests(self, name: str, count: int, timeout: float, completed: bool = False) -> bool:
        """Block until ``name`` has at least ``count`` requests; False on timeout.

        With ``completed=False`` a request counts as soon as it has been
        received (e.g. "aria2 is now inside the Stall"); with ``completed=True``
        only once the server has finished answering it (after a Stall's delay,
        a Slow body, the RST of a ResetAfter, ...).
        """
        key = self._norm(name)

        def enough() -> bool:
            records = self._records.get(key, ())
            done = sum(1 for r in records if r.complete) if completed else len(records)
            return done >= count

        with self._cond:
            return self._cond.wait_for(enough, timeout)
