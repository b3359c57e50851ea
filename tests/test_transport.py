"""Unit tests of the transport and RPC layers: mocked HTTP (responses) and hostile local sockets."""

from __future__ import annotations

import json
import logging
import socket
import threading

import pytest
import requests
import responses

from aria2_sync import (
    Aria2AuthError,
    Aria2ConnectionError,
    Aria2GIDNotFoundError,
    Aria2ProtocolError,
    Aria2RPCError,
    Aria2TimeoutError,
)
from aria2_sync.rpc import retry as retry_module
from aria2_sync.rpc.methods import Aria2RPC
from aria2_sync.rpc.transport import ExponentialRetry, Transport
from tests.conftest import wait_for

URL = "http://127.0.0.1:6800/jsonrpc"
SECRET = "s3cr3t-value"


def sent_bodies(rsps: responses.RequestsMock) -> list[dict]:
    return [json.loads(call.request.body) for call in rsps.calls]


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def transport():
    t = Transport(URL, SECRET, max_retries=3, retry_delay=1.0)
    yield t
    t.close()


@pytest.fixture
def make_transport():
    """Transports that are closed after the test, whatever it did."""
    made: list[Transport] = []

    def make(*args, **kwargs) -> Transport:
        made.append(Transport(*args, **kwargs))
        return made[-1]

    yield make
    for transport in made:
        transport.close()


@pytest.fixture
def recorded_sleeps(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(retry_module, "_sleep", sleeps.append)
    return sleeps


# -- the envelope and the secret -----------------------------------------------------------------


def test_secret_is_the_first_param(rsps, transport):
    rsps.post(URL, json={"jsonrpc": "2.0", "id": 1, "result": {"status": "active"}})
    assert transport.call("aria2.tellStatus", ["2089b05ecca3d829", ["status"]]) == {"status": "active"}
    body = sent_bodies(rsps)[0]
    assert body["method"] == "aria2.tellStatus"
    assert body["params"] == [f"token:{SECRET}", "2089b05ecca3d829", ["status"]]
    assert body["jsonrpc"] == "2.0" and "id" in body


def test_no_token_without_secret(make_transport, rsps):
    rsps.post(URL, json={"jsonrpc": "2.0", "id": 1, "result": "OK"})
    make_transport(URL, None).call("aria2.pause", ["2089b05ecca3d829"])
    assert sent_bodies(rsps)[0]["params"] == ["2089b05ecca3d829"]


def test_multicall_puts_the_token_in_every_inner_call_and_splits_results(rsps, transport):
    rsps.post(
        URL,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "result": [["2089b05ecca3d829"], {"code": 1, "message": "GID 0000000000000001 is not found"}],
        },
    )
    results = Aria2RPC(transport).multicall(
        [("aria2.addUri", [["http://x/a"], {}]), ("aria2.tellStatus", ["0000000000000001"])]
    )
    body = sent_bodies(rsps)[0]
    assert body["method"] == "system.multicall"
    (inner,) = body["params"]  # no top-level token for system.* methods
    assert [c["methodName"] for c in inner] == ["aria2.addUri", "aria2.tellStatus"]
    assert all(c["params"][0] == f"token:{SECRET}" for c in inner)
    assert results[0] == "2089b05ecca3d829"
    assert isinstance(results[1], Aria2GIDNotFoundError)
    assert results[1].gid == "0000000000000001" and results[1].method == "aria2.tellStatus"


def test_multicall_of_nothing_sends_nothing(rsps, transport):
    assert transport.multicall([]) == []
    assert len(rsps.calls) == 0


def test_multicall_answer_of_wrong_length_is_a_protocol_error(rsps, transport):
    rsps.post(URL, json={"jsonrpc": "2.0", "id": 1, "result": [["a"]]})
    with pytest.raises(Aria2ProtocolError):
        transport.multicall([("aria2.getVersion", []), ("aria2.getVersion", [])])


# -- error mapping: every shape in aria2-facts ----------------------------------------------------


@pytest.mark.parametrize(
    "status, error, expected_type, code",
    [
        (400, {"code": 1, "message": "Unauthorized"}, Aria2AuthError, 1),
        (400, {"code": 1, "message": "GID 0123456789abcdef is not found"}, Aria2GIDNotFoundError, 1),
        (400, {"code": 1, "message": "No such download for GID#0123456789abcdef"}, Aria2GIDNotFoundError, 1),
        (400, {"code": 1, "message": "Invalid GID xyz"}, Aria2RPCError, 1),
        (400, {"code": 1, "message": "No URI to download."}, Aria2RPCError, 1),
        (400, {"code": 1, "message": "No such method: aria2.nope"}, Aria2RPCError, 1),
        (500, {"code": -32700, "message": "Parse error."}, Aria2RPCError, -32700),
        (500, {"code": -32602, "message": "Invalid params."}, Aria2RPCError, -32602),
        (400, {"code": -32600, "message": "Invalid Request."}, Aria2RPCError, -32600),
    ],
)
def test_aria2_errors_are_mapped_and_never_retried(
    rsps, transport, recorded_sleeps, status, error, expected_type, code
):
    rsps.post(URL, status=status, json={"jsonrpc": "2.0", "id": 1, "error": error})
    with pytest.raises(expected_type) as info:
        transport.call("aria2.tellStatus", ["0123456789abcdef"])
    assert type(info.value) is expected_type
    assert info.value.code == code
    assert info.value.method == "aria2.tellStatus"
    assert info.value.rpc_message == error["message"]
    assert len(rsps.calls) == 1, "HTTP answers carry aria2's errors: never retried"
    assert recorded_sleeps == []


def test_gid_not_found_carries_the_gid(rsps, transport):
    rsps.post(
        URL, status=400, json={"id": 1, "error": {"code": 1, "message": "GID 0123456789abcdef is not found"}}
    )
    with pytest.raises(Aria2GIDNotFoundError) as info:
        transport.call("aria2.tellStatus", ["0123456789abcdef"])
    assert info.value.gid == "0123456789abcdef"


def test_auth_error_says_what_to_fix_without_the_secret(rsps, transport):
    rsps.post(URL, status=400, json={"id": 1, "error": {"code": 1, "message": "Unauthorized"}})
    with pytest.raises(Aria2AuthError) as info:
        transport.call("aria2.getVersion")
    assert "rpc_secret" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


@pytest.mark.parametrize(
    "status, body, content_type",
    [
        (200, "<html><body>It works!</body></html>", "text/html"),
        (200, "{not json", "application/json"),
        (404, "Not Found", "text/plain"),
        (200, "[1, 2, 3]", "application/json"),
        (200, '{"jsonrpc": "2.0", "id": 1}', "application/json"),
    ],
)
def test_answers_that_are_not_json_rpc_are_protocol_errors(rsps, transport, status, body, content_type):
    rsps.post(URL, status=status, body=body, content_type=content_type)
    with pytest.raises(Aria2ProtocolError) as info:
        transport.call("aria2.getVersion")
    assert "rpc_url" in str(info.value)
    assert len(rsps.calls) == 1


def test_an_echoed_secret_is_scrubbed_from_messages(rsps, transport):
    rsps.post(URL, status=400, json={"id": 1, "error": {"code": 1, "message": f"bad token:{SECRET}"}})
    with pytest.raises(Aria2RPCError) as info:
        transport.call("aria2.getVersion")
    assert SECRET not in str(info.value)


def test_repr_hides_the_secret(transport):
    assert SECRET not in repr(transport)


# -- backoff --------------------------------------------------------------------------------------


def _retry_after(errors: int, factor: float = 1.0, cap: float = 30.0) -> ExponentialRetry:
    retry = ExponentialRetry(total=10, backoff_factor=factor, backoff_max=cap)
    for _ in range(errors):
        retry = retry.increment(method="POST", url="/jsonrpc", error=ConnectionRefusedError())
    return retry


def test_backoff_schedule_starts_at_the_base_delay_and_doubles():
    assert [_retry_after(n).get_backoff_time() for n in range(0, 6)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert [_retry_after(n, factor=0.5).get_backoff_time() for n in range(1, 4)] == [0.5, 1.0, 2.0]


def test_backoff_is_capped():
    assert _retry_after(8, cap=5.0).get_backoff_time() == 5.0


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_connection_refused_is_retried_on_the_documented_schedule(make_transport, recorded_sleeps, caplog):
    url = f"http://127.0.0.1:{_closed_port()}/jsonrpc"
    transport = make_transport(url, SECRET, max_retries=3, retry_delay=1.0)
    with caplog.at_level(logging.DEBUG, logger="aria2_sync"):  # DEBUG: keeps the secret check on
        with pytest.raises(Aria2ConnectionError) as info:
            transport.call("aria2.addUri", [["http://x/a"], {}])  # even a mutating call
    assert recorded_sleeps == [1.0, 2.0, 4.0]
    error = info.value
    assert not isinstance(error, Aria2TimeoutError)
    assert error.attempts == 4 and error.maybe_applied is False
    text = str(error)
    assert "connection" in text.lower() and url in text and "Connection refused" in text
    assert "aria2c is running" in text and "port" in text and "firewall" in text
    assert isinstance(error.__cause__, requests.exceptions.ConnectionError)
    messages = [r.getMessage() for r in caplog.records]
    assert "connection failed (attempt 1/3): Connection refused" in messages
    assert "waiting 2.0 s before retrying..." in messages
    assert all(SECRET not in m for m in messages)


def test_max_retries_zero_fails_at_once(make_transport, recorded_sleeps):
    url = f"http://127.0.0.1:{_closed_port()}/jsonrpc"
    with pytest.raises(Aria2ConnectionError) as info:
        make_transport(url, max_retries=0).call("aria2.getVersion")
    assert recorded_sleeps == [] and info.value.attempts == 1


def test_credentials_in_the_rpc_url_stay_out_of_messages(make_transport, recorded_sleeps):
    url = f"http://admin:hunter2@127.0.0.1:{_closed_port()}/jsonrpc?token=abc"
    with pytest.raises(Aria2ConnectionError) as info:
        make_transport(url, max_retries=0).call("aria2.getVersion")
    assert "hunter2" not in str(info.value) and "abc" not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)


# -- read errors: retried only for read-only methods ---------------------------------------------


class HangUpServer:
    """Accepts connections and reads a request; then hangs up, or stays silent (``silent``)."""

    def __init__(self, silent: bool = False) -> None:
        self.silent = silent
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jsonrpc"
        self.requests = 0
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                conn.recv(65536)
                self.answer(conn)
            except OSError:
                pass
            self.requests += 1
            if self.silent:
                self._held.append(conn)
            else:
                conn.close()

    def answer(self, conn: socket.socket) -> None:
        """What is sent back before hanging up (nothing here)."""

    def served(self, count: int) -> int:
        """The request count once it has reached ``count`` (the server counts on its own thread,
        possibly after the client gave up); fails the test after a generous deadline."""
        wait_for(lambda: self.requests >= count, timeout=30, what=f"{count} requests at the server")
        return self.requests

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the test server's thread did not end"
        for conn in self._held:
            conn.close()
        self.sock.close()


@pytest.fixture
def hang_up_server():
    server = HangUpServer()
    yield server
    server.close()


def test_lost_answers_are_retried_for_read_only_methods(make_transport, hang_up_server, recorded_sleeps):
    transport = make_transport(hang_up_server.url, max_retries=2, retry_delay=0.5)
    with pytest.raises(Aria2ConnectionError) as info:
        transport.call("aria2.tellStatus", ["0123456789abcdef"])
    assert hang_up_server.served(3) == 3
    assert recorded_sleeps == [0.5, 1.0]
    assert info.value.maybe_applied is True


@pytest.mark.parametrize(
    "method", ["aria2.addUri", "aria2.remove", "aria2.pause", "aria2.removeDownloadResult"]
)
def test_lost_answers_are_not_retried_for_mutating_methods(
    make_transport, hang_up_server, recorded_sleeps, method
):
    transport = make_transport(hang_up_server.url, max_retries=3)
    with pytest.raises(Aria2ConnectionError) as info:
        transport.call(method, [])
    assert hang_up_server.served(1) == 1
    assert recorded_sleeps == []
    assert info.value.maybe_applied is True
    assert "connection" in str(info.value).lower()


def test_a_multicall_is_read_only_only_if_every_call_is(make_transport, hang_up_server, recorded_sleeps):
    transport = make_transport(hang_up_server.url, max_retries=1, retry_delay=0)
    with pytest.raises(Aria2ConnectionError):
        transport.multicall([("aria2.tellStatus", ["0123456789abcdef"]), ("aria2.getGlobalStat", [])])
    assert hang_up_server.served(2) == 2
    with pytest.raises(Aria2ConnectionError):
        transport.multicall(
            [("aria2.tellStatus", ["0123456789abcdef"]), ("aria2.pause", ["0123456789abcdef"])]
        )
    assert hang_up_server.served(3) == 3


def test_a_silent_daemon_times_out_with_a_timeout_error(make_transport):
    server = HangUpServer(silent=True)
    try:
        transport = make_transport(server.url, max_retries=3, timeout=0.3)
        with pytest.raises(Aria2TimeoutError) as info:
            transport.call("aria2.addUri", [["http://x/a"], {}])
        assert server.served(1) == 1
        assert info.value.maybe_applied is True
        assert "timed out" in str(info.value) and "connection" in str(info.value).lower()
    finally:
        server.close()


def test_a_frozen_daemon_is_a_timeout_error_even_after_read_retries(make_transport, recorded_sleeps):
    server = HangUpServer(silent=True)
    try:
        transport = make_transport(server.url, max_retries=1, timeout=0.2, retry_delay=0)
        with pytest.raises(Aria2TimeoutError) as info:
            transport.call("aria2.tellStatus", ["0123456789abcdef"])
        assert server.served(2) == 2 and info.value.attempts == 2
        assert "timed out" in str(info.value)
    finally:
        server.close()


class CutShortServer(HangUpServer):
    """Answers with a Content-Length it does not deliver: the body breaks off."""

    def answer(self, conn: socket.socket) -> None:
        conn.sendall(
            b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"id":'
        )


@pytest.mark.parametrize("method, expected_requests", [("aria2.tellStatus", 3), ("aria2.addUri", 1)])
def test_an_answer_cut_short_is_retried_only_for_read_only_methods(
    make_transport, recorded_sleeps, method, expected_requests
):
    server = CutShortServer()
    try:
        transport = make_transport(server.url, max_retries=2, retry_delay=0.5)
        with pytest.raises(Aria2ConnectionError) as info:
            transport.call(method, [])
        assert server.served(expected_requests) == expected_requests
        assert recorded_sleeps == [0.5, 1.0][: expected_requests - 1]
        assert info.value.maybe_applied is True
    finally:
        server.close()


def test_an_unexpected_multicall_item_is_reported_without_the_secret(rsps, transport):
    rsps.post(URL, json={"id": 1, "result": [{"echo": f"token:{SECRET}"}]})
    with pytest.raises(Aria2ProtocolError) as info:
        transport.multicall([("aria2.getVersion", [])])
    assert SECRET not in str(info.value)
