"""An HTTP/1.1 proxy in front of aria2's JSON-RPC endpoint, for lost-response tests.

A client that never receives an answer cannot know whether its call took
effect; :class:`RpcProxy` manufactures exactly that situation: it forwards the
request to aria2, waits for aria2's complete answer (so the call *did* take
effect), then closes the client connection without sending a byte. It also
counts requests and keeps their bodies so tests can assert how many round
trips an operation cost.
"""

from __future__ import annotations

import http.client
import random
import socketserver
import threading
import urllib.parse
from email.message import Message
from typing import Callable

from .fault_server import ManagedServer, TrackingHTTPServer

__all__ = ["RpcProxy"]

#: Limits that keep a misbehaving client from making a handler read forever.
_MAX_LINE = 65536
_MAX_BODY = 64 * 1024 * 1024

#: Hop-by-hop / framing headers that must not be copied to the upstream request.
_SKIP_REQUEST_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)


class _BadRequest(Exception):
    """The client sent something this proxy will not forward."""


class _ProxyHandler(socketserver.StreamRequestHandler):
    """One client connection: read request, forward, relay or drop; repeat (keep-alive)."""

    #: Idle keep-alive limit on the client side.
    timeout = 30.0
    disable_nagle_algorithm = True
    server: TrackingHTTPServer

    def handle(self) -> None:
        proxy: RpcProxy = self.server.owner
        upstream: http.client.HTTPConnection | None = None
        try:
            while not self.server.stop_event.is_set():
                request = self._read_request()
                if request is None:
                    return
                method, target, version, headers, body = request
                drop = proxy._register_request(body)
                if upstream is None:
                    upstream = proxy._new_upstream()
                try:
                    status, reason, resp_version, resp_headers, resp_body, upstream = self._forward(
                        proxy, upstream, method, target, headers, body
                    )
                except (OSError, http.client.HTTPException) as exc:
                    upstream.close()
                    self._send_bad_gateway(exc)
                    return
                if drop:
                    proxy._count_drop()
                    return  # connection closes without a single response byte
                self._relay(status, reason, resp_version, resp_headers, resp_body)
                if not self._keep_alive(version, headers) or _wants_close(resp_headers):
                    return
        finally:
            if upstream is not None:
                upstream.close()

    # -- client side -----------------------------------------------------------

    def _read_request(self) -> tuple[str, str, str, Message, bytes] | None:
        """Read one request; None on EOF, idle timeout or a malformed request."""
        try:
            line = self.rfile.readline(_MAX_LINE + 1)
            while line in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 §2.2)
                line = self.rfile.readline(_MAX_LINE + 1)
            if not line:
                return None
            if len(line) > _MAX_LINE:
                raise _BadRequest("request line too long")
            parts = line.decode("iso-8859-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                raise _BadRequest(f"bad request line {line!r}")
            method, target, version = parts
            headers = http.client.parse_headers(self.rfile)
            body = self._read_body(headers)
        except TimeoutError:
            return None
        except (_BadRequest, http.client.HTTPException, ValueError):
            self._send_simple(400, "Bad Request", b"bad request\n")
            return None
        return method, target, version, headers, body

    def _read_body(self, headers: Message) -> bytes:
        if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(_MAX_LINE + 1)
                if not size_line:
                    raise _BadRequest("EOF in chunked body")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    http.client.parse_headers(self.rfile)  # trailers, discarded
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise _BadRequest("body too large")
                chunk = self.rfile.read(size)
                if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                    raise _BadRequest("truncated chunk")
                chunks.append(chunk)
        length = int(headers.get("Content-Length") or 0)
        if length < 0 or length > _MAX_BODY:
            raise _BadRequest("bad Content-Length")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _BadRequest("truncated body")
        return body

    @staticmethod
    def _keep_alive(version: str, headers: Message) -> bool:
        tokens = {t.strip().lower() for t in (headers.get("Connection") or "").split(",")}
        if "close" in tokens:
            return False
        return version == "HTTP/1.1" or "keep-alive" in tokens

    def _relay(
        self, status: int, reason: str, version: int, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send the upstream answer unchanged, except that the body is always length-delimited."""
        out = [f"HTTP/{'1.0' if version == 10 else '1.1'} {status} {reason}\r\n"]
        for key, value in headers:
            if key.lower() in ("transfer-encoding", "content-length"):
                continue
            out.append(f"{key}: {value}\r\n")
        out.append(f"Content-Length: {len(body)}\r\n\r\n")
        self.wfile.write("".join(out).encode("iso-8859-1") + body)

    def _send_simple(self, status: int, reason: str, body: bytes) -> None:
        try:
            self.wfile.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("iso-8859-1")
                + body
            )
        except OSError:
            pass

    def _send_bad_gateway(self, exc: BaseException) -> None:
        """Upstream unreachable/broken: say so explicitly rather than mimic a lost answer."""
        self._send_simple(502, "Bad Gateway", f"rpc proxy: upstream error: {exc!r}\n".encode())

    # -- upstream side ---------------------------------------------------------

    def _forward(
        self,
        proxy: RpcProxy,
        upstream: http.client.HTTPConnection,
        method: str,
        target: str,
        headers: Message,
        body: bytes,
    ) -> tuple[int, str, int, list[tuple[str, str]], bytes, http.client.HTTPConnection]:
        """Send the request upstream and read the complete answer.

        An idle persistent upstream connection may have been closed by aria2
        in the meantime; that failure shows up before any answer byte, when
        the request was not processed, so it is retried once on a fresh
        connection. A fresh connection failing is a real error.
        """
        parsed = urllib.parse.urlsplit(target)
        path = (
            target
            if not parsed.scheme
            else (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
        )
        fwd_headers = {k: v for k, v in headers.items() if k.lower() not in _SKIP_REQUEST_HEADERS}
        reused = upstream.sock is not None
        for attempt in (0, 1):
            try:
                upstream.request(method, path, body=body, headers=fwd_headers)
                resp = upstream.getresponse()
                resp_body = resp.read()
                return resp.status, resp.reason, resp.version, resp.getheaders(), resp_body, upstream
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                upstream.close()
                if attempt == 1 or not reused:
                    raise
                upstream = proxy._new_upstream()
        raise AssertionError("unreachable")


def _wants_close(headers: list[tuple[str, str]]) -> bool:
    return any(k.lower() == "connection" and "close" in v.lower() for k, v in headers)


class RpcProxy(ManagedServer):
    """Forwarding proxy for aria2's JSON-RPC-over-HTTP endpoint that can lose answers.

    Usage::

        with RpcProxy("http://127.0.0.1:6800/jsonrpc") as proxy:
            proxy.drop_responses(lambda body: b"aria2.addUri" in body)
            ...  # client talks to proxy.url; its addUri call times out/disconnects
            assert proxy.dropped_count == 1

    Every request is forwarded and fully answered upstream before the
    relay-or-drop decision is carried out, so dropped calls did take effect.
    """

    _handler_class = _ProxyHandler

    def __init__(self, upstream_url: str, upstream_timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"only http:// upstreams are supported, got {upstream_url!r}")
        self.upstream_url = upstream_url
        self._upstream_host = parsed.hostname
        self._upstream_port = parsed.port or 80
        self._path = parsed.path or "/jsonrpc"
        self.upstream_timeout = upstream_timeout
        self._cond = threading.Condition()
        self._drop_rules: list[list] = []  # [predicate, remaining]
        self._drop_p = 0.0
        self._rng = random.Random(0)
        self._request_count = 0
        self._bodies: list[bytes] = []
        self._dropped_count = 0
        super().__init__()

    @property
    def url(self) -> str:
        """The URL clients should use instead of the upstream's (same path)."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    # -- drop configuration ------------------------------------------------------

    def drop_responses(self, predicate: Callable[[bytes], bool], count: int = 1) -> None:
        """Drop the answers to the next ``count`` requests whose body satisfies ``predicate``.

        Rules are checked in the order they were added; a request consumes at
        most one rule. A predicate that raises counts as "no match".
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        with self._cond:
            self._drop_rules.append([predicate, count])

    def drop_probability(self, p: float, seed: int = 0) -> None:
        """Drop each answer not already dropped by a rule with probability ``p`` (0: off).

        Seeded so a failing run can be reproduced (given the same request order).
        """
        if not 0.0 <= p <= 1.0:
            raise ValueError("p must be within [0, 1]")
        with self._cond:
            self._drop_p = p
            self._rng = random.Random(seed)

    def clear_drops(self) -> None:
        """Remove all drop rules and the drop probability."""
        with self._cond:
            self._drop_rules.clear()
            self._drop_p = 0.0

    # -- statistics ------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests received and forwarded upstream (dropped ones included)."""
        with self._cond:
            return self._request_count

    @property
    def bodies(self) -> list[bytes]:
        """Raw request bodies in arrival order (a copy)."""
        with self._cond:
            return list(self._bodies)

    @property
    def dropped_count(self) -> int:
        with self._cond:
            return self._dropped_count

    def reset_counts(self) -> None:
        """Zero request_count / dropped_count and forget bodies (drop rules are kept)."""
        with self._cond:
            self._request_count = 0
            self._bodies.clear()
            self._dropped_count = 0

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Block until ``request_count >= count``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._request_count >= count, timeout)

    # -- used by the handler ---------------------------------------------------

    def _new_upstream(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(
            self._upstream_host, self._upstream_port, timeout=self.upstream_timeout
        )

    def _register_request(self, body: bytes) -> bool:
        """Count the request and decide now (in arrival order) whether to drop its answer."""
        with self._cond:
            self._request_count += 1
            self._bodies.append(body)
            self._cond.notify_all()
            for rule in self._drop_rules:
                predicate, remaining = rule
                if remaining <= 0:
                    continue
                try:
                    matched = bool(predicate(body))
                except Exception:
                    matched = False
                if matched:
                    rule[1] -= 1
                    return True
            return self._drop_p > 0.0 and self._rng.random() < self._drop_p

    def _count_drop(self) -> None:
        with self._cond:
            self._dropped_count += 1
            self._cond.notify_all()
