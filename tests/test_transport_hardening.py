"""The transport against hostile local servers: deadlines, close(), answer size, secrets.

Every server here is a real socket server on 127.0.0.1 (free port) that misbehaves on purpose:
it drips its answer, never answers, sends far too much, or echoes what it was sent. Every call
that could hang runs on a thread joined with a bound, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import types
from collections.abc import Callable
from typing import Any

import pytest
import requests
import responses

from aria2_sync import (
    Aria2ClosedError,
    Aria2ConnectionError,
    Aria2ProtocolError,
    Aria2RPCError,
    Aria2TimeoutError,
)
from aria2_sync.rpc import retry as retry_module
from aria2_sync.rpc.transport import DEFAULT_MAX_ANSWER_BYTES, ExponentialRetry, Transport
from tests.conftest import wait_for

SECRET = "Zq7-hardening-secret-value"

Behaviour = Callable[["RawServer", socket.socket, bytes], None]


def read_request(conn: socket.socket) -> bytes:
    """One HTTP request (headers and Content-Length body) from ``conn``; b"" if it closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


class RawServer:
    """A socket server that hands each request's body to ``behaviour(server, conn, body)``.

    Counts requests, and records whether a behaviour saw the client close the connection
    (``client_gone``) and how many bytes it managed to send (``sent``).
    """

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jsonrpc"
        self.requests = 0
        self.bodies: list[bytes] = []
        self.sent = 0
        self.client_gone = threading.Event()
        self.got_request = threading.Event()
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        try:
            while not self.stop.is_set():
                body = read_request(conn)
                if not body:
                    return
                self.requests += 1
                self.bodies.append(body)
                self.got_request.set()
                self.behaviour(self, conn, body)
        except OSError:
            self.client_gone.set()
        finally:
            conn.close()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def close(self) -> None:
        self.stop.set()
        self._accepter.join(5)
        for conn in self._conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)
            assert not thread.is_alive()
        self.sock.close()


@pytest.fixture
def serve():
    servers: list[RawServer] = []

    def start(behaviour: Behaviour) -> RawServer:
        server = RawServer(behaviour)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def http_answer(body: bytes, status: str = "200 OK", content_type: str = "application/json") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


VERSION_ANSWER = http_answer(
    b'{"jsonrpc": "2.0", "id": 1, "result": {"version": "1.37.0", "enabledFeatures": []}}'
)


def in_thread(function: Callable[[], Any]) -> Outcome:
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.value = function()
        except BaseException as error:
            outcome.error = error

    outcome.thread = threading.Thread(target=run, daemon=True)
    outcome.thread.start()
    return outcome


class Outcome:
    value: Any = None
    error: BaseException | None = None
    thread: threading.Thread

    def finish(self, bound: float = 20.0) -> BaseException | None:
        self.thread.join(bound)
        assert not self.thread.is_alive(), f"the call still runs after {bound:g} s"
        return self.error


# -- 11.1: an overall deadline --------------------------------------------------------------------


def drip(where: str) -> Behaviour:
    """Send the answer one byte every 0.2 s: from the first byte, or after the headers."""

    def behaviour(server: RawServer, conn: socket.socket, body: bytes) -> None:
        answer = VERSION_ANSWER
        start = 0 if where == "headers" else answer.index(b"\r\n\r\n") + 4
        server.send(conn, answer[:start])
        for i in range(start, len(answer)):
            if server.stop.wait(0.2):
                return
            server.send(conn, answer[i : i + 1])

    return behaviour


@pytest.mark.parametrize("where", ["headers", "body"])
def test_an_answer_dripped_a_byte_at_a_time_ends_at_the_deadline(serve, where):
    server = serve(drip(where))
    transport = Transport(server.url, SECRET, timeout=1.0, max_retries=0)
    try:
        error = in_thread(lambda: transport.call("aria2.getVersion")).finish()
    finally:
        transport.close()
    assert isinstance(error, Aria2TimeoutError), error
    assert error.attempts == 1 and "timed out" in str(error)
    assert server.requests == 1
    # The drip (about 20 s for the whole answer) was cut off: the server saw the socket go.
    wait_for(server.client_gone.is_set, what="the server to see the connection closed")


def test_a_dripping_read_only_call_is_retried_then_times_out(serve, monkeypatch):
    server = serve(drip("body"))
    transport = Transport(server.url, SECRET, timeout=0.5, max_retries=1, retry_delay=0.01)
    try:
        error = in_thread(lambda: transport.call("aria2.tellStatus", ["0123456789abcdef"])).finish()
    finally:
        transport.close()
    assert isinstance(error, Aria2TimeoutError), error
    assert error.attempts == 2 and server.requests == 2


def test_the_call_time_limit_is_the_documented_bound():
    transport = Transport(
        "http://127.0.0.1:1/jsonrpc", timeout=(2.0, 3.0), max_retries=3, retry_delay=1.0, max_retry_delay=3.0
    )
    assert transport.exchange_time_limit == 5.0
    assert transport.call_time_limit == 4 * 5.0 + (1.0 + 2.0 + 3.0)


def silent(server: RawServer, conn: socket.socket, body: bytes) -> None:
    """Read the request, then say nothing until the server stops."""
    server.stop.wait(60)


def test_close_from_another_thread_releases_a_blocked_call(serve):
    server = serve(silent)
    transport = Transport(server.url, SECRET, timeout=60.0, max_retries=3)
    outcome = in_thread(lambda: transport.call("aria2.addUri", [["http://x/a"], {}]))
    wait_for(server.got_request.is_set, what="the request to arrive")
    transport.close()
    error = outcome.finish()
    assert isinstance(error, Aria2ClosedError), error
    assert "in flight" in str(error) and "may have applied" in str(error)
    assert server.requests == 1
    watchdogs = [t for t in threading.enumerate() if t.name == "aria2_sync-rpc-watchdog"]
    transport.join(timeout=10)  # the cut-off call has returned: the watchdog ends at once
    assert not any(t.is_alive() for t in watchdogs)
    # Afterwards nothing is sent at all.
    with pytest.raises(Aria2ClosedError, match="was not sent"):
        transport.call("aria2.getVersion")
    assert server.requests == 1


def test_close_interrupts_a_call_waiting_out_its_backoff(caplog):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/jsonrpc"
    sock.close()  # nobody listens: connection refused, retried after 30 s
    transport = Transport(url, SECRET, max_retries=3, retry_delay=30.0)
    with caplog.at_level(logging.INFO, logger="aria2_sync"):
        outcome = in_thread(lambda: transport.call("aria2.getVersion"))
        wait_for(
            lambda: any("waiting 30.0 s" in r.getMessage() for r in caplog.records),
            what="the backoff to start",
        )
        transport.close()
        error = outcome.finish()
    assert isinstance(error, Aria2ClosedError), error


def test_the_watchdog_thread_ends_with_the_transport(serve):
    server = serve(lambda s, conn, body: s.send(conn, VERSION_ANSWER))
    transport = Transport(server.url, SECRET, timeout=5.0)
    assert transport.call("aria2.getVersion")["version"] == "1.37.0"
    assert any(t.name == "aria2_sync-rpc-watchdog" for t in threading.enumerate())
    transport.close()
    wait_for(
        lambda: transport._channels._watchdog is None,
        what="the watchdog to end",
    )


# -- 11.6: answers of any size --------------------------------------------------------------------


def endless(announce: bool) -> Behaviour:
    """A 200 MiB answer (announced with Content-Length, or delimited by closing)."""
    total = 200 * 1024 * 1024

    def behaviour(server: RawServer, conn: socket.socket, body: bytes) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {total}\r\n\r\n" if announce else "Connection: close\r\n\r\n"
        server.send(conn, head.encode())
        block = b"[" + b"1," * 32767 + b"1"
        while server.sent < total and not server.stop.is_set():
            server.send(conn, block)
        server.stop.wait(30)

    return behaviour


@pytest.mark.parametrize("announce", [True, False])
def test_an_answer_past_max_answer_bytes_is_refused_without_reading_it_all(serve, announce):
    server = serve(endless(announce))
    transport = Transport(server.url, SECRET, timeout=30.0, max_answer_bytes=1024 * 1024)
    try:
        error = in_thread(lambda: transport.call("aria2.getVersion")).finish()
    finally:
        transport.close()
    assert isinstance(error, Aria2ProtocolError), error
    assert "max_answer_bytes=1048576" in str(error)
    wait_for(server.client_gone.is_set, what="the server to see the connection closed")
    assert server.sent < 100 * 1024 * 1024, "the answer was read far past the cap"


def test_the_default_cap_fits_big_multicalls():
    assert Transport("http://127.0.0.1:1/jsonrpc").max_answer_bytes == DEFAULT_MAX_ANSWER_BYTES
    assert DEFAULT_MAX_ANSWER_BYTES == 64 * 1024 * 1024


def test_a_huge_error_message_is_cut_to_a_readable_length():
    url = "http://127.0.0.1:6800/jsonrpc"
    message = "x" * (8 * 1024 * 1024)
    with responses.RequestsMock() as rsps:
        rsps.post(url, status=400, json={"id": 1, "error": {"code": 1, "message": message}})
        with pytest.raises(Aria2RPCError) as info:
            Transport(url, SECRET).call("aria2.getVersion")
    assert len(str(info.value)) < 1000 and len(info.value.rpc_message) < 1000
    assert f"({len(message) - 500} characters cut)" in info.value.rpc_message


# -- 10.11 and 12: the secret in what an error keeps or quotes ------------------------------------


def _secret_in(value: Any, secret: str, seen: set[int], depth: int = 0) -> str | None:
    """Where ``secret`` is reachable from ``value`` (None if nowhere), following what error
    trackers record: exception attributes and chains, frame locals, request/response objects."""
    if id(value) in seen or depth > 6:
        return None
    seen.add(id(value))
    if isinstance(value, (str, bytes)):
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        return "text" if secret in text else None
    if isinstance(value, (int, float, bool, type(None), type, types.ModuleType, types.FunctionType)):
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _secret_in(key, secret, seen, depth + 1) or _secret_in(item, secret, seen, depth + 1)
            if found:
                return f"[{key!r}]{found}"
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            found = _secret_in(item, secret, seen, depth + 1)
            if found:
                return f"[]{found}"
        return None
    if isinstance(value, types.TracebackType):
        tb: types.TracebackType | None = value
        while tb is not None:
            frame = tb.tb_frame
            if not frame.f_code.co_filename.endswith("test_transport_hardening.py"):
                for name, local in frame.f_locals.items():
                    if secret in repr(local):
                        return f" frame {frame.f_code.co_name} local {name} (repr)"
                    found = _secret_in(local, secret, seen, depth + 1)
                    if found and isinstance(
                        local,
                        (BaseException, requests.PreparedRequest, requests.Response, str, bytes, dict, list),
                    ):
                        return f" frame {frame.f_code.co_name} local {name}{found}"
            tb = tb.tb_next
        return None
    if isinstance(value, BaseException):
        for name, item in [
            ("args", value.args),
            ("__cause__", value.__cause__),
            ("__context__", value.__context__),
            ("__traceback__", value.__traceback__),
            *vars(value).items(),
        ]:
            found = _secret_in(item, secret, seen, depth + 1)
            if found:
                return f".{name}{found}"
        if secret in str(value) or secret in repr(value):
            return " (message)"
        return None
    if isinstance(value, (requests.PreparedRequest, requests.Response)):
        for name, item in vars(value).items():
            found = _secret_in(item, secret, seen, depth + 1)
            if found:
                return f".{name}{found}"
    return None


def assert_no_secret(error: BaseException) -> None:
    where = _secret_in(error, SECRET, set())
    assert where is None, f"the secret is reachable from the error: error{where}"


def test_a_connection_error_keeps_no_secret():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/jsonrpc"
    sock.close()
    with pytest.raises(Aria2ConnectionError) as info:
        Transport(url, SECRET, max_retries=0).call("aria2.addUri", [["http://x/a"], {}])
    assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)
    assert_no_secret(info.value)


def test_a_timeout_keeps_no_secret(serve):
    server = serve(silent)
    transport = Transport(server.url, SECRET, timeout=0.3, max_retries=0)
    try:
        with pytest.raises(Aria2TimeoutError) as info:
            transport.multicall([("aria2.tellStatus", ["0123456789abcdef"]), ("aria2.getGlobalStat", [])])
    finally:
        transport.close()
    assert_no_secret(info.value)


@pytest.mark.parametrize(
    "answer",
    [
        http_answer(b"<html>Bad Gateway</html>", "502 Bad Gateway", "text/html"),
        http_answer(b'{"id": 1, "error": {"code": 1, "message": "No URI to download."}}', "400 Bad Request"),
    ],
)
def test_an_http_error_answer_keeps_no_secret(serve, answer):
    server = serve(lambda s, conn, body: s.send(conn, answer))
    transport = Transport(server.url, SECRET, max_retries=0)
    try:
        with pytest.raises((Aria2ProtocolError, Aria2RPCError)) as info:
            transport.call("aria2.addUri", [["http://x/a"], {}])
    finally:
        transport.close()
    assert_no_secret(info.value)


def echo_token(bare: bool) -> Behaviour:
    """Answer non-JSON quoting the token sent (bare: without its ``token:`` prefix)."""

    def behaviour(server: RawServer, conn: socket.socket, body: bytes) -> None:
        token = json.loads(body)["params"][0]
        quoted = token[len("token:") :] if bare else token
        server.send(conn, http_answer(f"denied {quoted}".encode(), "403 Forbidden", "text/plain"))

    return behaviour


@pytest.mark.parametrize("bare", [True, False])
def test_an_answer_echoing_the_secret_is_scrubbed_from_the_error(serve, bare):
    server = serve(echo_token(bare))
    transport = Transport(server.url, SECRET, max_retries=0)
    try:
        with pytest.raises(Aria2ProtocolError) as info:
            transport.call("aria2.getVersion")
    finally:
        transport.close()
    assert SECRET.encode() in server.bodies[0]
    assert "denied" in str(info.value) and "***" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def echo_error(server: RawServer, conn: socket.socket, body: bytes) -> None:
    """A JSON-RPC error whose message quotes the secret, bare."""
    token = json.loads(body)["params"][0][len("token:") :]
    answer = json.dumps({"id": 1, "error": {"code": 1, "message": f"no such key {token} here"}})
    server.send(conn, http_answer(answer.encode(), "400 Bad Request"))


def test_an_error_message_echoing_the_secret_is_scrubbed(serve):
    server = serve(echo_error)
    transport = Transport(server.url, SECRET, max_retries=0)
    try:
        with pytest.raises(Aria2RPCError) as info:
            transport.call("aria2.getVersion")
    finally:
        transport.close()
    assert info.value.rpc_message == "no such key *** here"
    assert SECRET not in str(info.value)


# -- 11.4: answers of the wrong shape -------------------------------------------------------------


class StubAria2:
    """Just enough of aria2's JSON-RPC for adds to succeed; statuses answer ``status_answer``."""

    def __init__(self, serve: Callable[[Behaviour], RawServer]) -> None:
        self.status_answer: Any = None
        self.server = serve(self._behaviour)
        self.url = self.server.url

    def _result(self, method: str, params: list[Any]) -> Any:
        if params and isinstance(params[0], str) and params[0].startswith("token:"):
            params = params[1:]
        if method == "aria2.addUri":
            return params[1]["gid"]
        if method == "aria2.tellStatus":
            return self.status_answer
        if method == "aria2.getVersion":
            return {"version": "1.37.0", "enabledFeatures": []}
        if method == "aria2.getGlobalStat":
            return {"downloadSpeed": "0", "numActive": "0", "numWaiting": "0", "numStopped": "0"}
        if method in ("aria2.tellActive", "aria2.tellWaiting", "aria2.tellStopped"):
            return self.status_answer
        raise AssertionError(f"the stub does not know {method}")

    def _behaviour(self, server: RawServer, conn: socket.socket, body: bytes) -> None:
        request = json.loads(body)
        if request["method"] == "system.multicall":
            result: Any = [[self._result(c["methodName"], c["params"])] for c in request["params"][0]]
        else:
            result = self._result(request["method"], request["params"])
        answer = json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}).encode()
        server.send(conn, http_answer(answer))


GID = "0123456789abcdef"


@pytest.mark.parametrize(
    "answer, problem",
    [
        ([GID, "active"], "a list instead of a JSON object"),
        ("active", "a string instead of a JSON object"),
        ({"gid": GID, "status": "active", "files": "/d/a.bin"}, "'files' as a string instead of a list"),
        ({"gid": GID, "status": "active", "files": ["/d/a.bin"]}, "a 'files' entry as a string"),
        (
            {"gid": GID, "status": "active", "files": [{"path": "/d/a.bin", "uris": "http://x/a"}]},
            "'uris' as a string instead of a list",
        ),
        (
            {"gid": GID, "status": "active", "files": [{"path": "/d/a.bin", "uris": ["http://x/a"]}]},
            "a 'uris' entry as a string",
        ),
    ],
)
def test_a_misshapen_status_is_a_protocol_error_naming_the_method(serve, tmp_path, answer, problem):
    from aria2_sync import Aria2Client

    stub = StubAria2(serve)
    client = Aria2Client(stub.url, SECRET, verbose=False, monitor=False, notifications=False)
    try:
        batch_id = client.add_batch_downloads(
            [(f"http://127.0.0.1:9/f{i}.bin", str(tmp_path / f"f{i}.bin")) for i in range(3)]
        )
        gid = client.add_download("http://127.0.0.1:9/single.bin", str(tmp_path / "single.bin"))
        stub.status_answer = answer
        expected = f"aria2.tellStatus answered {problem}"
        with pytest.raises(Aria2ProtocolError, match=expected):
            client.get_batch_progress(batch_id)
        with pytest.raises(Aria2ProtocolError, match=expected):
            client.get_progress(gid)  # one of this client's downloads
        with pytest.raises(Aria2ProtocolError, match=expected):
            client.get_progress(GID)  # one it does not know: read straight from the daemon
        # Nothing was applied from an unreadable answer: the batch still waits for news.
        stub.status_answer = {"gid": GID, "status": "waiting", "files": []}
        progress = client.get_batch_progress(batch_id)
        assert progress is not None and progress.waiting_count == 3
    finally:
        client.close()


@pytest.mark.parametrize(
    "answer, problem",
    [
        ("active", "aria2.tellActive answered a str instead of a list"),
        (["active"], "aria2.tellActive answered a string instead of a JSON object"),
        ([{"gid": GID, "status": "active", "files": "/d/a.bin"}], "'files' as a string"),
    ],
)
def test_the_status_command_reports_a_misshapen_list_in_one_line(serve, capsys, answer, problem):
    from aria2_sync.ui import cli

    stub = StubAria2(serve)
    stub.status_answer = answer
    assert cli.main(["status", "--rpc-url", stub.url, "--rpc-secret", SECRET]) == 1
    err = capsys.readouterr().err
    assert problem in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- the retries are urllib3's Retry, mounted on the session's adapter ------------------------------


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/jsonrpc"
    sock.close()  # nobody listens: connection refused
    return url


def test_retries_go_through_the_urllib3_retry_mounted_on_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url()
    sleeps: list[float] = []
    monkeypatch.setattr(retry_module, "_sleep", sleeps.append)
    increments: list[str] = []
    real_increment = ExponentialRetry.increment

    def spy(self: ExponentialRetry, *args: Any, **kwargs: Any) -> ExponentialRetry:
        increments.append(type(kwargs.get("error")).__name__)
        return real_increment(self, *args, **kwargs)

    monkeypatch.setattr(ExponentialRetry, "increment", spy)
    transport = Transport(url, SECRET, max_retries=3, retry_delay=1.0, max_retry_delay=30.0)
    try:
        with pytest.raises(Aria2ConnectionError) as info:
            transport.call("aria2.getVersion")
        assert info.value.attempts == 4 and info.value.maybe_applied is False
        # urllib3 counted every failed attempt (the 4th exhausted the Retry) and waited 1, 2, 4 s.
        assert increments == ["NewConnectionError"] * 4
        assert sleeps == [1.0, 2.0, 4.0]

        (channel,) = transport._channels._idle
        assert channel.session.get_adapter(url) is channel.adapter
        retry = channel.adapter.max_retries
        assert isinstance(retry, ExponentialRetry) and retry.channel is channel
        assert (retry.total, retry.connect, retry.read) == (3, 3, 3)  # a read-only call
        assert (retry.status, retry.redirect, retry.other) == (0, 0, 0)
        assert (retry.backoff_factor, retry.backoff_max) == (1.0, 30.0)
        assert retry.respect_retry_after_header is False

        with pytest.raises(Aria2ConnectionError) as info:
            transport.call("aria2.addUri", [["http://x/a"], {}])
        assert info.value.attempts == 4
        retry = channel.adapter.max_retries
        assert isinstance(retry, ExponentialRetry) and retry.read is False  # lost answers: no retry
        assert retry.total == 3 and retry.connect == 3
    finally:
        transport.close()


def test_a_retry_after_a_long_backoff_still_has_its_deadline(
    serve: Callable[[Behaviour], RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watchdog goes quiet while a call waits out its backoff; the retry wakes it again."""
    server = serve(drip("body"))
    transport = Transport(server.url, SECRET, timeout=0.5, max_retries=1, retry_delay=0.01)

    def backoff_outlasting_the_watchdog(seconds: float) -> None:
        wait_for(
            lambda: transport._channels._watchdog is None, what="the watchdog to go quiet during the backoff"
        )

    monkeypatch.setattr(retry_module, "_sleep", backoff_outlasting_the_watchdog)
    try:
        # The dripped answer takes ~17 s: only the retry's deadline ends it sooner.
        error = in_thread(lambda: transport.call("aria2.tellStatus", [GID])).finish(bound=12.0)
    finally:
        transport.close()
    assert isinstance(error, Aria2TimeoutError), error
    assert error.attempts == 2 and server.requests == 2


def test_close_during_a_backoff_opens_no_new_connection(
    serve: Callable[[Behaviour], RawServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only call whose answer was lost waits 30 s to retry; close() ends it for good."""
    server = serve(lambda s, conn, body: conn.shutdown(socket.SHUT_RDWR))
    transport = Transport(server.url, SECRET, max_retries=3, retry_delay=30.0)
    with caplog.at_level(logging.INFO, logger="aria2_sync"):
        outcome = in_thread(lambda: transport.call("aria2.tellStatus", [GID]))
        wait_for(
            lambda: any("waiting 30.0 s" in r.getMessage() for r in caplog.records),
            what="the backoff to start",
        )
        transport.close()
        error = outcome.finish()
    assert isinstance(error, Aria2ClosedError), error
    assert "in flight" in str(error)
    assert server.requests == 1


def test_a_closed_transport_takes_no_connection_even_for_a_retry_under_way() -> None:
    """The last guard, deterministic: a retry urllib3 had already begun when ``close()`` came
    (the race the test above can only sometimes hit) gets no connection from its pool."""
    from urllib3.exceptions import ClosedPoolError

    transport = Transport(closed_port_url(), SECRET)
    channel = transport._channels.borrow()  # (a call's channel, as a call in flight holds it)
    assert channel is not None
    taken: list[float | None] = []
    transport.close()
    with pytest.raises(ClosedPoolError):
        channel.take(None, taken.append, 1.0)
    assert taken == []


def test_concurrent_calls_retry_each_on_its_own_channel() -> None:
    url = closed_port_url()
    transport = Transport(url, SECRET, max_retries=2, retry_delay=0.01)
    try:
        outcomes = [in_thread(lambda: transport.call("aria2.getVersion")) for _ in range(4)]
        errors = [outcome.finish() for outcome in outcomes]
    finally:
        transport.close()
    assert all(isinstance(e, Aria2ConnectionError) and e.attempts == 3 for e in errors), errors
