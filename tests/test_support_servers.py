"""Self-tests of the test-support servers, so integration-test failures can be trusted.

If FaultServer mis-served a Range or ResetAfter sent a FIN instead of a RST,
aria2 integration tests would fail (or pass) for the wrong reason; these fast
tests pin the servers' behaviour down with plain stdlib clients.
"""

from __future__ import annotations

import http.client
import http.server
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.fault_server import (
    UNSATISFIABLE,
    FaultServer,
    RequestRecord,
    ResetAfter,
    Slow,
    Stall,
    Status,
    deterministic_content,
    parse_range,
)
from tests.support.rpc_proxy import RpcProxy

TIMEOUT = 5.0


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.fixture
def srv() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
        assert server.errors == []


def get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def raw_get(port: int, path: str, timeout: float = TIMEOUT) -> tuple[bytes, bytes, BaseException | None]:
    """GET over a raw socket, reading until EOF or error; returns (head, body, error)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        chunks: list[bytes] = []
        error: BaseException | None = None
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError as exc:
                error = exc
                break
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body, error


# --------------------------------------------------------------------------
# FaultServer: content, ranges, plain serving
# --------------------------------------------------------------------------


def test_deterministic_content_is_reproducible_and_not_block_periodic() -> None:
    big = deterministic_content("big.bin", 64 * 1024 * 1024)  # (its speed is bounded by the per-test timeout)
    assert len(big) == 64 * 1024 * 1024
    assert deterministic_content("big.bin", 200_000) == big[:200_000]
    assert deterministic_content("other.bin", 1000) != big[:1000]
    block = 64 * 1024
    assert big[:block] != big[block : 2 * block]
    assert big[:block] != big[1 << 20 : (1 << 20) + block]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", (0, 99)),
        ("bytes=10-19", (10, 19)),
        ("bytes=90-500", (90, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-500", (0, 99)),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=20-10", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=abc", None),
    ],
)
def test_parse_range(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_full_get_head_and_404(srv: FaultServer) -> None:
    url = srv.add_file("a.bin", size=300_000)
    assert url == f"{srv.base_url}/a.bin"
    assert srv.base_url.startswith("http://127.0.0.1:")
    status, headers, body = get(url)
    assert status == 200
    assert body == srv.content("a.bin")
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Length"] == "300000"

    status, headers, body = get(url, method="HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", "300000")

    status, _, _ = get(f"{srv.base_url}/missing.bin")
    assert status == 404

    records = srv.requests("a.bin")
    assert [(r.method, r.status, r.bytes_sent, r.fault) for r in records] == [
        ("GET", 200, 300_000, None),
        ("HEAD", 200, 0, None),
    ]
    assert srv.request_count("missing.bin") == 1


def test_explicit_data_and_quoted_names(srv: FaultServer) -> None:
    url = srv.add_file("dir/with space.txt", data=b"hello world")
    assert url.endswith("/dir/with%20space.txt")
    assert get(url)[2] == b"hello world"
    with pytest.raises(ValueError):
        srv.add_file("x", size=3, data=b"four")
    with pytest.raises(ValueError):
        srv.add_file("x")


def test_ranges(srv: FaultServer) -> None:
    url = srv.add_file("r.bin", size=1000)
    data = srv.content("r.bin")

    status, headers, body = get(url, {"Range": "bytes=100-199"})
    assert (status, body) == (206, data[100:200])
    assert headers["Content-Range"] == "bytes 100-199/1000"
    assert headers["Content-Length"] == "100"
    assert headers["Accept-Ranges"] == "bytes"

    status, headers, body = get(url, {"Range": "bytes=900-"})
    assert (status, body, headers["Content-Range"]) == (206, data[900:], "bytes 900-999/1000")

    status, headers, body = get(url, {"Range": "bytes=990-5000"})
    assert (status, body, headers["Content-Range"]) == (206, data[990:], "bytes 990-999/1000")

    status, headers, body = get(url, {"Range": "bytes=-5"})
    assert (status, body) == (206, data[-5:])

    status, headers, _ = get(url, {"Range": "bytes=1000-"})
    assert status == 416
    assert headers["Content-Range"] == "bytes */1000"

    assert [r.range_header for r in srv.requests("r.bin")] == [
        "bytes=100-199",
        "bytes=900-",
        "bytes=990-5000",
        "bytes=-5",
        "bytes=1000-",
    ]
    assert srv.bytes_served("r.bin") == 100 + 100 + 10 + 5


def test_keep_alive_reuses_one_connection(srv: FaultServer) -> None:
    srv.add_file("k.bin", size=5000)
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
    try:
        for _ in range(3):
            conn.request("GET", "/k.bin", headers={"Range": "bytes=0-99"})
            resp = conn.getresponse()
            assert resp.status == 206
            assert len(resp.read()) == 100
    finally:
        conn.close()
    assert len({r.client_port for r in srv.requests("k.bin")}) == 1


# --------------------------------------------------------------------------
# FaultServer: faults
# --------------------------------------------------------------------------


def test_status_faults_are_consumed_fifo(srv: FaultServer) -> None:
    url = srv.add_file("s.bin", size=1000)
    srv.add_faults("s.bin", Status(503), Status(404, headers=(("Retry-After", "1"),)))
    status, _, body = get(url)
    assert status == 503 and b"503" in body
    status, headers, _ = get(url)
    assert status == 404 and headers["Retry-After"] == "1"
    status, _, body = get(url)
    assert status == 200 and body == srv.content("s.bin")
    assert [(r.status, r.fault, r.bytes_sent) for r in srv.requests("s.bin")] == [
        (503, Status(503), 0),
        (404, Status(404, headers=(("Retry-After", "1"),)), 0),
        (200, None, 1000),
    ]
    assert srv.pending_faults("s.bin") == []


def test_head_does_not_consume_faults_and_416_keeps_body_faults(srv: FaultServer) -> None:
    url = srv.add_file("h.bin", size=100)
    srv.add_faults("h.bin", ResetAfter(10))
    assert get(url, method="HEAD")[0] == 200
    assert get(url, {"Range": "bytes=500-"})[0] == 416
    assert srv.pending_faults("h.bin") == [ResetAfter(10)]


@pytest.mark.parametrize("nbytes", [0, 12_345, 1_000_000])
def test_reset_after_sends_exact_bytes_then_rst(srv: FaultServer, nbytes: int) -> None:
    srv.add_file("reset.bin", size=2_000_000)
    srv.add_faults("reset.bin", ResetAfter(nbytes))
    head, body, error = raw_get(srv.port, "/reset.bin")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Content-Length: 2000000" in head
    assert body == srv.content("reset.bin")[:nbytes]
    assert isinstance(error, ConnectionResetError)
    assert srv.wait_for_requests("reset.bin", 1, TIMEOUT, completed=True)
    (record,) = srv.requests("reset.bin")
    assert (record.status, record.bytes_sent, record.fault) == (200, nbytes, ResetAfter(nbytes))


def test_reset_after_on_range_request_and_http_client_sees_error(srv: FaultServer) -> None:
    srv.add_file("rr.bin", size=100_000)
    srv.add_faults("rr.bin", ResetAfter(500))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=TIMEOUT)
    try:
        conn.request("GET", "/rr.bin", headers={"Range": "bytes=1000-"})
        resp = conn.getresponse()
        assert resp.status == 206
        assert resp.getheader("Content-Range") == "bytes 1000-99999/100000"
        got = resp.read(500)
        assert got == srv.content("rr.bin")[1000:1500]
        with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
            resp.read()
    finally:
        conn.close()


def test_stall_sends_headers_then_nothing(srv: FaultServer) -> None:
    url = srv.add_file("stall.bin", size=1000)
    # A stall far longer than the client's read timeout, so that the read times out however late
    # a loaded machine gets to it.
    srv.add_faults("stall.bin", Stall(3.0))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=0.2)
    started = time.monotonic()
    try:
        conn.request("GET", "/stall.bin")
        resp = conn.getresponse()
        assert resp.status == 200
        assert srv.wait_for_requests("stall.bin", 1, TIMEOUT)  # received, still stalling
        (record,) = srv.requests("stall.bin")
        assert (record.status, record.fault, record.complete) == (200, Stall(3.0), False)
        with pytest.raises(TimeoutError):
            resp.read(1)
    finally:
        conn.close()
    assert srv.wait_for_requests("stall.bin", 1, TIMEOUT, completed=True)
    assert time.monotonic() - started >= 3.0  # a lower bound: the stall lasted its time
    (record,) = srv.requests("stall.bin")
    assert (record.bytes_sent, record.fault, record.complete) == (0, Stall(3.0), True)
    assert get(url)[2] == srv.content("stall.bin")


def test_stall_ends_in_eof(srv: FaultServer) -> None:
    srv.add_file("stall2.bin", size=1000)
    srv.add_faults("stall2.bin", Stall(0.1))
    head, body, error = raw_get(srv.port, "/stall2.bin")
    assert head.startswith(b"HTTP/1.1 200") and body == b"" and error is None


def test_slow_throttles_whole_body(srv: FaultServer) -> None:
    url = srv.add_file("slow.bin", size=30_000)
    srv.add_faults("slow.bin", Slow(100_000))
    started = time.monotonic()
    status, _, body = get(url)
    elapsed = time.monotonic() - started
    assert status == 200 and body == srv.content("slow.bin")
    assert elapsed >= 0.25  # a lower bound (30 kB at 100 kB/s): a loaded machine only adds to it
    assert srv.requests("slow.bin")[0].fault == Slow(100_000)


def test_default_fault_is_persistent_after_queue(srv: FaultServer) -> None:
    url = srv.add_file("d.bin", size=10)
    srv.set_default_fault("d.bin", Status(500))
    srv.add_faults("d.bin", Status(403))
    assert [get(url)[0] for _ in range(3)] == [403, 500, 500]
    srv.set_default_fault("d.bin", None)
    assert get(url)[0] == 200
    with pytest.raises(TypeError):
        srv.add_faults("d.bin", "boom")  # type: ignore[arg-type]


def test_statistics_and_wait(srv: FaultServer) -> None:
    srv.add_file("x.bin", size=1000)
    srv.add_file("y.bin", size=500)
    assert not srv.wait_for_requests("x.bin", 1, 0.05)
    done = threading.Event()

    def fetch() -> None:
        get(srv.url("x.bin"))
        get(srv.url("x.bin"), {"Range": "bytes=0-9"})
        done.set()

    thread = threading.Thread(target=fetch, daemon=True)
    thread.start()
    assert srv.wait_for_requests("x.bin", 2, TIMEOUT)
    get(srv.url("y.bin"))
    thread.join(TIMEOUT)
    assert done.is_set() and not thread.is_alive()
    assert srv.request_count("x.bin") == 2
    assert srv.bytes_served("x.bin") == 1010
    assert srv.total_bytes_served() == 1510
    assert all(isinstance(r, RequestRecord) for r in srv.requests("x.bin"))
    srv.reset_stats()
    assert srv.total_bytes_served() == 0 and srv.requests("x.bin") == []


def test_stop_is_prompt_with_stalled_and_idle_clients() -> None:
    server = FaultServer().start()
    server.add_file("f.bin", size=10_000_000)
    server.add_faults("f.bin", Stall(30))
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    stalled.sendall(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert stalled.recv(100).startswith(b"HTTP/1.1 200")
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    not_reading = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    not_reading.sendall(b"GET /f.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not_reading.recv(100).startswith(b"HTTP/1.1 200")
    try:
        # True: every thread ended within the 10 s given, not after the 30 s stall.
        assert server.stop(timeout=10.0) is True
        assert server.stop() is True  # idempotent
        assert server.errors == []
        with pytest.raises(RuntimeError):
            server.start()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1.0).close()
    finally:
        for sock in (stalled, idle, not_reading):
            sock.close()


# --------------------------------------------------------------------------
# RpcProxy
# --------------------------------------------------------------------------


class _EchoUpstream(http.server.ThreadingHTTPServer):
    """Stand-in for aria2's RPC endpoint: answers each POST with its body and a sequence number."""

    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[bytes] = []
        super().__init__(("127.0.0.1", 0), _EchoHandler)

    def server_bind(self) -> None:
        http.server.socketserver.TCPServer.server_bind(self)  # skip slow getfqdn()
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10.0
    server: _EchoUpstream

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append(body)
            n = len(self.server.received)
        payload = json.dumps({"echo": body.decode(), "n": n, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json-rpc")
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def upstream() -> Iterator[_EchoUpstream]:
    server = _EchoUpstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)
    assert not thread.is_alive(), "the upstream server's thread did not end"


@pytest.fixture
def proxy(upstream: _EchoUpstream) -> Iterator[RpcProxy]:
    with RpcProxy(f"http://127.0.0.1:{upstream.server_address[1]}/jsonrpc") as p:
        yield p
        assert p.errors == []


def post(conn: http.client.HTTPConnection, body: bytes) -> tuple[int, dict[str, str], dict]:
    conn.request("POST", "/jsonrpc", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, dict(resp.getheaders()), json.loads(resp.read())


def connect(p: RpcProxy) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", p.port, timeout=TIMEOUT)


def test_proxy_relays_with_keep_alive_and_counts(proxy: RpcProxy, upstream: _EchoUpstream) -> None:
    assert proxy.url == f"http://127.0.0.1:{proxy.port}/jsonrpc"
    conn = connect(proxy)
    try:
        for i in range(3):
            status, headers, payload = post(conn, f'{{"id": {i}}}'.encode())
            assert status == 200
            assert headers["Content-Type"] == "application/json-rpc"
            assert headers["X-Upstream"] == "yes"
            assert payload == {"echo": f'{{"id": {i}}}', "n": i + 1, "path": "/jsonrpc"}
    finally:
        conn.close()
    assert proxy.request_count == 3
    assert proxy.bodies == [b'{"id": 0}', b'{"id": 1}', b'{"id": 2}']
    assert proxy.dropped_count == 0
    proxy.reset_counts()
    assert (proxy.request_count, proxy.bodies, proxy.dropped_count) == (0, [], 0)


def test_proxy_works_with_urllib(proxy: RpcProxy) -> None:
    req = urllib.request.Request(proxy.url, data=b'{"m": "x"}', headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        assert json.loads(resp.read())["echo"] == '{"m": "x"}'
    assert proxy.wait_for_requests(1, TIMEOUT)


def test_proxy_drops_matching_responses_after_upstream_handled_them(
    proxy: RpcProxy, upstream: _EchoUpstream
) -> None:
    proxy.drop_responses(lambda body: b"addUri" in body, count=2)
    conn = connect(proxy)
    try:
        assert post(conn, b'{"method": "getVersion"}')[0] == 200
        with pytest.raises(http.client.RemoteDisconnected):
            post(conn, b'{"method": "addUri"}')
        conn.close()
        with pytest.raises(http.client.RemoteDisconnected):
            post(conn, b'{"method": "addUri", "again": 1}')
        conn.close()
        status, _, payload = post(conn, b'{"method": "addUri", "third": 1}')
        assert status == 200 and payload["n"] == 4
    finally:
        conn.close()
    assert proxy.dropped_count == 2
    assert proxy.request_count == 4
    with upstream.lock:
        assert upstream.received == proxy.bodies


def test_proxy_drop_probability_is_seeded(proxy: RpcProxy) -> None:
    def pattern(seed: int) -> list[bool]:
        proxy.drop_probability(0.5, seed=seed)
        dropped = []
        for i in range(12):
            conn = connect(proxy)
            try:
                post(conn, f'{{"i": {i}}}'.encode())
                dropped.append(False)
            except http.client.RemoteDisconnected:
                dropped.append(True)
            finally:
                conn.close()
        return dropped

    first = pattern(7)
    assert pattern(7) == first
    assert any(first) and not all(first)
    assert proxy.dropped_count == 2 * sum(first)
    proxy.drop_probability(0)
    conn = connect(proxy)
    try:
        assert all(post(conn, b"{}")[0] == 200 for _ in range(5))
    finally:
        conn.close()


def test_proxy_bad_gateway_when_upstream_is_down() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]
    with RpcProxy(f"http://127.0.0.1:{dead_port}/jsonrpc") as p:
        conn = connect(p)
        try:
            conn.request("POST", "/jsonrpc", body=b"{}")
            resp = conn.getresponse()
            assert resp.status == 502
            resp.read()
        finally:
            conn.close()
        assert p.request_count == 1 and p.dropped_count == 0


def test_proxy_stop_is_idempotent_and_prompt(upstream: _EchoUpstream) -> None:
    p = RpcProxy(f"http://127.0.0.1:{upstream.server_address[1]}/jsonrpc").start()
    idle = socket.create_connection(("127.0.0.1", p.port), timeout=TIMEOUT)
    try:
        assert p.stop(timeout=10.0) is True  # every thread ended within the 10 s given
        assert p.stop() is True
    finally:
        idle.close()
    with pytest.raises(ValueError):
        RpcProxy("https://127.0.0.1:1/jsonrpc")


# --------------------------------------------------------------------------
# The suite's own guards (tests/conftest.py)
# --------------------------------------------------------------------------


def test_a_leaked_secret_is_reported_by_count_and_place_never_by_value() -> None:
    from tests.conftest import _leaks

    lines = [
        ("tests/test_a.py::test_one", "aria2_sync", "DEBUG", "restart through token:sup3r-s3cret"),
        ("tests/test_a.py::test_one", "aria2_sync", "INFO", "added download"),
        ("tests/test_b.py::test_two", "urllib3", "DEBUG", "sent sup3r-s3cret and other-s3cret"),
    ]
    (report,) = _leaks(lines, {"sup3r-s3cret", "other-s3cret", "unused-s3cret"})
    assert report.startswith("2 RPC secret(s) in log lines at: ")
    assert "tests/test_a.py::test_one (logger aria2_sync, DEBUG)" in report
    assert "tests/test_b.py::test_two (logger urllib3, DEBUG)" in report
    assert "s3cret" not in report
    assert _leaks(lines[1:2], {"sup3r-s3cret"}) == []


def test_a_verbose_client_that_raises_leaves_the_package_logger_as_it_was() -> None:
    from aria2_sync import Aria2Client, Aria2InputError
    from tests.conftest import package_logger_restored

    package = logging.getLogger("aria2_sync")
    before = (package.level, list(package.handlers), package.propagate)
    with package_logger_restored():
        with pytest.raises(Aria2InputError):
            Aria2Client(timeout="10", verbose=True)  # may turn verbose output on, then refuses
        package.addHandler(logging.NullHandler())
        package.setLevel(logging.ERROR)
        package.propagate = False
    assert (package.level, list(package.handlers), package.propagate) == before
    assert package.isEnabledFor(logging.DEBUG)  # the suite-wide capture sees DEBUG lines again
