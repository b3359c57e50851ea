"""Every public entry point fed bad input: a typed Aria2Error that says what to fix, every time.

And while all of that is refused, a download that was already running goes on unharmed.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from aria2_sync import (
    Aria2AuthError,
    Aria2BinaryNotFoundError,
    Aria2Client,
    Aria2Daemon,
    Aria2Error,
    Aria2GIDNotFoundError,
    Aria2InputError,
    Aria2ProtocolError,
    Aria2RPCError,
    RestartPolicy,
)
from tests.support.fault_server import Slow

pytestmark = pytest.mark.integration  # a real aria2c; not chaos: `-m "not chaos"` keeps this table

GID = "0123456789abcdef"


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers every POST with something that is not aria2's JSON-RPC."""

    bodies = {
        "/html": (200, "text/html", b"<html><body>It works!</body></html>"),
        "/garbage": (200, "application/json", b'{"jsonrpc": "2.0", "res'),
        "/array": (200, "application/json", b"[1, 2, 3]"),
        "/teapot": (418, "text/plain", b"I'm a teapot"),
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, kind, body = self.bodies.get(self.path, self.bodies["/html"])
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def impostor() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive(), "the impostor server's thread did not end"


@pytest.fixture
def running(client, fault_server, tmp_path):
    """A download that is in flight while the bad calls are made; checked intact afterwards."""
    url = fault_server.add_file("running.bin", size=1_500_000)
    fault_server.set_default_fault("running.bin", Slow(1_500_000))
    future = client.submit(url, str(tmp_path / "running.bin"))
    yield future
    fault_server.set_default_fault("running.bin", None)
    result = future.result(timeout=60)
    assert open(result.path, "rb").read() == fault_server.content("running.bin")
    assert result.retry_count == 0


def _calls(tmp_path, a_file) -> list:
    """(label, call, expected error type, words the message must contain)."""
    under_a_file = str(a_file / "x.bin")
    return [
        ("add_download url int", lambda c: c.add_download(42), Aria2InputError, "url must be a str"),
        ("add_download url None", lambda c: c.add_download(None), Aria2InputError, "url must be a str"),
        ("add_download empty url", lambda c: c.add_download(""), Aria2InputError, "url is empty"),
        ("add_download bad url", lambda c: c.add_download("htp:/nohost"), Aria2InputError, "scheme"),
        ("add_download no host", lambda c: c.add_download("http:///x"), Aria2InputError, "no host"),
        ("add_download bad port", lambda c: c.add_download("http://h:0x/x"), Aria2InputError, "port"),
        ("add_download path type", lambda c: c.add_download("http://h/x", 3.5), Aria2InputError, "save_path"),
        (
            "add_download path bytes",
            lambda c: c.add_download("http://h/x", b"/tmp/x"),
            Aria2InputError,
            "save_path",
        ),
        (
            "add_download dir as path",
            lambda c: c.add_download("http://h/x", str(tmp_path)),
            Aria2InputError,
            "directory",
        ),
        (
            "add_download under a file",
            lambda c: c.add_download("http://h/x", under_a_file),
            Aria2InputError,
            "is a file",
        ),
        (
            "add_download options list",
            lambda c: c.add_download("http://h/x", None, ["a"]),
            Aria2InputError,
            "options must be a dict",
        ),
        (
            "add_download option value",
            lambda c: c.add_download("http://h/x", None, {"split": {}}),
            Aria2InputError,
            "option 'split'",
        ),
        (
            "add_download dir under a file",
            lambda c: c.add_download("http://h/x", None, {"dir": under_a_file}),
            Aria2InputError,
            "is a file",
        ),
        ("submit bad callback", lambda c: c.submit("http://h/x", on_done="nope"), Aria2InputError, "on_done"),
        ("submit bad url", lambda c: c.submit(["http://h/x", 5]), Aria2InputError, "url must be a str"),
        ("batch not a list", lambda c: c.add_batch_downloads(7), Aria2InputError, "pairs"),
        ("batch bad item", lambda c: c.add_batch_downloads([("http://h/x",), 9]), Aria2InputError, "item 1"),
        ("batch bad url", lambda c: c.add_batch_downloads([("", None)]), Aria2InputError, "item 0"),
        (
            "batch bad id",
            lambda c: c.add_batch_downloads([("http://h/x", None)], batch_id=5),
            Aria2InputError,
            "batch_id",
        ),
        ("get_progress int", lambda c: c.get_progress(5), Aria2InputError, "gid"),
        ("get_progress bad gid", lambda c: c.get_progress("zz"), Aria2InputError, "16 hex digits"),
        ("get_retry_info bad gid", lambda c: c.get_retry_info(None), Aria2InputError, "gid"),
        ("restart unknown", lambda c: c.restart_download(GID), Aria2InputError, "not added by this client"),
        ("future unknown", lambda c: c.future(GID), Aria2InputError, "not added by this client"),
        ("pause unknown", lambda c: c.pause_download(GID), Aria2GIDNotFoundError, GID),
        ("resume unknown", lambda c: c.resume_download(GID), Aria2GIDNotFoundError, GID),
        ("cancel unknown", lambda c: c.cancel_download(GID), Aria2GIDNotFoundError, GID),
        ("cancel bad gid", lambda c: c.cancel_download("../etc"), Aria2InputError, "16 hex digits"),
        ("batch progress int", lambda c: c.get_batch_progress(3), Aria2InputError, "batch_id"),
        ("batch futures unknown", lambda c: c.batch_futures("nope"), Aria2InputError, "unknown batch_id"),
        (
            "wait_for_batch timeout",
            lambda c: c.wait_for_batch("nope", timeout="soon"),
            Aria2InputError,
            "timeout",
        ),
    ]


def test_every_entry_point_refuses_bad_input_and_the_running_download_goes_on(client, running, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    for label, call, expected, words in _calls(tmp_path, a_file):
        with pytest.raises(expected) as info:
            call(client)
        assert isinstance(info.value, Aria2Error), label
        assert words in str(info.value), f"{label}: {info.value}"
        assert not running.done() or running.exception() is None, label


@pytest.mark.parametrize(
    "make, expected, words",
    [
        (lambda d, t: Aria2Client(rpc_url="ftp://127.0.0.1:6800/jsonrpc"), Aria2InputError, "http://"),
        (lambda d, t: Aria2Client(timeout="10"), Aria2InputError, "timeout"),
        (lambda d, t: Aria2Client(max_retries=None), Aria2InputError, "max_retries"),
        (lambda d, t: Aria2Client(restart_policy={"max_restarts": 2}), Aria2InputError, "RestartPolicy"),
        (lambda d, t: RestartPolicy(max_restarts="3"), Aria2InputError, "max_restarts"),
        (
            lambda d, t: Aria2Daemon(aria2c=str(t / "no-such-aria2c")),
            Aria2BinaryNotFoundError,
            "no-such-aria2c",
        ),
        (lambda d, t: Aria2Daemon(download_dir=str(t / "a-file" / "sub")), Aria2InputError, "is a file"),
        (lambda d, t: Aria2Daemon(port=70000), Aria2InputError, "port"),
        (lambda d, t: Aria2Daemon(secret=""), Aria2InputError, "secret"),
        (lambda d, t: Aria2Daemon(options={"rpc-secret": "x"}), Aria2InputError, "Aria2Daemon"),
        (lambda d, t: Aria2Client.local(t, rpc_secret="x"), Aria2InputError, "rpc_secret"),
    ],
)
def test_constructors_refuse_bad_input(daemon, tmp_path, make, expected, words):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(expected, match=words):
        make(daemon, tmp_path)


@pytest.mark.parametrize("path", ["/html", "/garbage", "/array", "/teapot"])
def test_something_that_is_not_aria2_is_a_protocol_error(impostor, path):
    with Aria2Client(impostor + path, verbose=False, monitor=False, max_retries=0) as client:
        with pytest.raises(Aria2ProtocolError) as info:
            client.get_version()
        assert "rpc_url" in str(info.value)
        with pytest.raises(Aria2ProtocolError):
            client.add_download("http://127.0.0.1:1/x")


def test_a_wrong_secret_is_refused_with_advice_and_nothing_runs(daemon, client, running):
    with Aria2Client(daemon.rpc_url, "definitely-wrong", verbose=False, monitor=False) as wrong:
        with pytest.raises(Aria2AuthError, match="rpc_secret"):
            wrong.add_download("http://127.0.0.1:1/x")
        with pytest.raises(Aria2AuthError):
            wrong.add_batch_downloads([("http://127.0.0.1:1/y", None)])
    assert isinstance(Aria2AuthError(1, "Unauthorized", "m"), Aria2RPCError)
