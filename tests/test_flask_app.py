"""The Flask example, and the HTTP contract both web examples must keep.

:class:`WebApiContract` is the contract, written once against a framework-neutral
:class:`ApiUnderTest`; :class:`TestFlaskApi` runs it through Flask's test client, and
``tests/test_django_app.py`` runs the same class through Django's. Everything goes to a real
aria2c (``daemon``) and our fault-injecting file server. The tests at the end cover the
shared module (:mod:`examples.web_downloads`) and Flask's own configuration.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import pytest

from aria2_sync.daemon.process import Aria2Daemon
from examples import web_downloads
from examples.flask_app import create_app
from tests.conftest import wait_for
from tests.support.fault_server import Slow, Status

#: Quick transport retries, so that an unreachable daemon answers 503 in a fraction of a second.
FAST = {"retry_delay": 0.05}

#: The fault server listens on 127.0.0.1, which the default URL policy refuses (server-side
#: request forgery): the tests that download from it allow it explicitly.
LOCAL = web_downloads.allow_any_url

UNKNOWN_BATCH = "0123456789abcdef0123456789abcdef"


class Answer(NamedTuple):
    status: int
    body: Any  # the decoded JSON, or None when the answer is not JSON
    text: str


Send = Callable[[str, str, bytes, Optional[str]], Answer]


class ApiUnderTest:
    """The HTTP API of one app as the contract uses it; every answer is checked for leaks."""

    def __init__(self, send: Send, config: Mapping[str, Any]) -> None:
        self._send = send
        self._secrets = [config["RPC_SECRET"]] if config.get("RPC_SECRET") else []

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> Answer:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        answer = self._send(method, path, data, content_type if data else None)
        assert "Traceback" not in answer.text
        for secret in self._secrets:
            assert secret not in answer.text, "the RPC secret appeared in a response"
        if answer.status >= 400:
            assert isinstance(answer.body, dict) and answer.body.get("error"), answer.text
        return answer

    def create(self, body: dict[str, Any]) -> str:
        answer = self.call("POST", "/downloads", body)
        assert answer.status == 201, answer.text
        return answer.body["batch_id"]

    def progress(self, batch_id: str) -> dict[str, Any]:
        answer = self.call("GET", f"/downloads/{batch_id}")
        assert answer.status == 200, answer.text
        return answer.body

    def wait_for_progress(
        self,
        batch_id: str,
        predicate: Callable[[dict[str, Any]], bool] = lambda p: p["is_completed"],
        what: str = "the batch to complete",
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        def reached():
            progress = self.progress(batch_id)
            return progress if predicate(progress) else None

        return wait_for(reached, timeout, interval=0.05, what=what)


def closed_port_url() -> str:
    """An RPC URL on a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/jsonrpc"


class WebApiContract:
    """What every web example must do, whatever its framework.

    A subclass provides the ``make_api`` fixture: ``make_api(config)`` with config in the
    framework-neutral keys (``DOWNLOAD_ROOT``, ``RPC_URL``, ...) returns an ApiUnderTest.
    """

    @pytest.fixture
    def make_api(self) -> Callable[[dict[str, Any]], ApiUnderTest]:
        raise NotImplementedError("each framework's test class provides make_api")

    @pytest.fixture(autouse=True)
    def fresh_client(self):
        """No test sees the process-wide client of another."""
        web_downloads.reset_client()
        yield
        web_downloads.reset_client()

    @pytest.fixture
    def root(self, tmp_path) -> Path:
        root = tmp_path / "root"
        root.mkdir()
        return root

    @pytest.fixture
    def api(self, make_api, daemon, root):
        config = {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": daemon.rpc_url,
            "RPC_SECRET": daemon.secret,
            "MAX_ITEMS": 3,
            "CLIENT_OPTIONS": FAST,
            "URL_POLICY": LOCAL,
        }
        yield make_api(config)
        web_downloads.reset_client()  # before the daemon stops

    @pytest.fixture
    def offline_api(self, make_api, root):
        """An API whose daemon is unreachable: a 400 from it proves nothing was sent to aria2
        (an attempt would have answered 503), and it needs no daemon to start."""
        return make_api(
            {
                "DOWNLOAD_ROOT": str(root),
                "RPC_URL": closed_port_url(),
                "MAX_ITEMS": 3,
                "CLIENT_OPTIONS": FAST,
                "URL_POLICY": LOCAL,
            }
        )

    # -- the operations -------------------------------------------------------------------------

    def test_a_batch_lands_in_the_root_and_reports_its_404(self, api, fault_server, root):
        a = fault_server.add_file("a.bin", size=300_000)
        b = fault_server.add_file("b.bin", size=120_000)
        batch_id = api.create(
            {
                "items": [
                    {"url": a, "name": "a.bin"},
                    {"url": b, "name": "nested/dir/b.bin"},
                    {"url": fault_server.url("missing.bin"), "name": "missing.bin"},
                ]
            }
        )
        done = api.wait_for_progress(batch_id)
        assert (done["total_count"], done["completed_count"], done["failed_count"]) == (3, 2, 1)
        assert (root / "a.bin").read_bytes() == fault_server.content("a.bin")
        assert (root / "nested" / "dir" / "b.bin").read_bytes() == fault_server.content("b.bin")
        [failed] = [d for d in done["downloads"] if d["status"] == "error"]
        assert failed["error_code"] == "3" and failed["gave_up_reason"]
        for download in done["downloads"]:
            if download["file_path"]:  # relative to the root: the server's paths are not shown
                assert not Path(download["file_path"]).is_absolute()
                assert (root / download["file_path"]).resolve().is_relative_to(root.resolve())

    def test_plain_urls_keep_the_servers_names_inside_the_root(self, api, fault_server, root):
        url = fault_server.add_file("plain.bin", size=10_000)
        api.wait_for_progress(api.create({"urls": [url]}))
        assert (root / "plain.bin").read_bytes() == fault_server.content("plain.bin")

    def test_retry_restarts_a_failed_download_even_one_the_policy_gave_up_on(self, api, fault_server, root):
        url = fault_server.add_file("flaky.bin", size=50_000)
        fault_server.add_faults("flaky.bin", Status(404))  # fixed on the server after one try
        batch_id = api.create({"urls": [url]})
        first = api.wait_for_progress(batch_id)
        assert first["failed_count"] == 1  # a 404 is permanent: the policy does not restart it
        answer = api.call("POST", f"/downloads/{batch_id}/retry")
        assert (answer.status, answer.body) == (200, {"restarted": 1})
        api.wait_for_progress(batch_id, lambda p: p["completed_count"] == 1, "the retried download")
        assert (root / "flaky.bin").read_bytes() == fault_server.content("flaky.bin")
        assert api.call("POST", f"/downloads/{batch_id}/retry").body == {"restarted": 0}

    def test_delete_cancels_a_slow_download(self, api, fault_server):
        url = fault_server.add_file("slow.bin", size=4_000_000)
        fault_server.set_default_fault("slow.bin", Slow(100_000))
        batch_id = api.create({"items": [{"url": url, "name": "slow.bin"}]})
        api.wait_for_progress(batch_id, lambda p: p["completed_length"] > 0, "the download to start")
        answer = api.call("DELETE", f"/downloads/{batch_id}")
        assert (answer.status, answer.body) == (200, {"cancelled": 1})
        gone = api.wait_for_progress(batch_id)
        assert (gone["removed_count"], gone["completed_count"]) == (1, 0)
        assert api.call("DELETE", f"/downloads/{batch_id}").body == {"cancelled": 0}

    # -- refused input --------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "name",
        [
            "../x",
            "/etc/passwd",
            "a/../../x",
            "..",
            "",
            "sub/",
            "a//b",
            "./x",
            "a\x00b",
            "a\nb",
            "a\\..\\x",
            "C:x",
            "x" * 256,
        ],
    )
    def test_names_that_could_leave_the_root_are_refused(self, offline_api, name):
        answer = offline_api.call(
            "POST", "/downloads", {"items": [{"url": "http://127.0.0.1:9/f", "name": name}]}
        )
        assert answer.status == 400 and "items[0].name" in answer.body["error"]

    def test_symlinks_out_of_the_root_are_refused(self, offline_api, root, tmp_path):
        outside = tmp_path / "outside"
        outside.mkdir()
        (root / "escape").symlink_to(outside, target_is_directory=True)
        (root / "link.bin").symlink_to(outside / "victim.bin")  # dangling: aria2 would create it
        for name in ("escape/x.bin", "link.bin"):
            answer = offline_api.call(
                "POST", "/downloads", {"items": [{"url": "http://127.0.0.1:9/f", "name": name}]}
            )
            assert answer.status == 400 and "outside the download root" in answer.body["error"]
        assert not any(outside.iterdir())

    def test_an_existing_directory_is_not_a_name(self, offline_api, root):
        (root / "sub").mkdir()
        answer = offline_api.call(
            "POST", "/downloads", {"items": [{"url": "http://127.0.0.1:9/f", "name": "sub"}]}
        )
        assert answer.status == 400 and "existing directory" in answer.body["error"]

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "notaurl", "", "http://", "ftp://h:99999/x"])
    def test_bad_urls_are_refused_by_the_library_check(self, offline_api, url):
        answer = offline_api.call("POST", "/downloads", {"urls": ["http://127.0.0.1:9/ok.bin", url]})
        assert answer.status == 400 and "item 1" in answer.body["error"]  # the whole batch refused

    @pytest.mark.parametrize(
        "raw, fragment",
        [
            (b"not json", "not valid JSON"),
            (b"\xff\xfe\x00", "not valid JSON"),
            (b"[" * 100_000, "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'"http://x/y"', "must be a JSON object"),
            (b"{}", "give either"),
            (b'{"urls": ["http://x/a"], "items": []}', "give either"),
            (b'{"urls": ["http://x/a"], "url": 1}', "unknown fields"),
            (b'{"urls": "http://x/a"}', "must be an array"),
            (b'{"urls": []}', "is empty"),
            (b'{"urls": [1]}', "urls[0] must be a string"),
            (b'{"items": ["http://x/a"]}', "items[0] must be an object"),
            (b'{"items": [{"url": "http://x/a"}]}', 'items[0] has no "name"'),
            (b'{"items": [{"url": "http://x/a", "name": 5}]}', "items[0].name must be a string"),
            (b'{"items": [{"url": "http://x/a", "name": "a", "dir": "/"}]}', "unknown fields"),
            (
                b'{"items": [{"url": "http://x/a", "name": "a"}, {"url": "http://x/b", "name": "a"}]}',
                "both write",
            ),
        ],
    )
    def test_malformed_bodies_are_refused(self, offline_api, raw, fragment):
        answer = offline_api.call("POST", "/downloads", raw=raw)
        assert answer.status == 400 and fragment in answer.body["error"], answer.body

    def test_a_body_not_declared_as_json_is_refused(self, offline_api):
        answer = offline_api.call(
            "POST", "/downloads", raw=b'{"urls": ["http://x/a"]}', content_type="text/plain"
        )
        assert answer.status == 415

    def test_too_many_items_are_refused(self, offline_api):
        answer = offline_api.call(
            "POST", "/downloads", {"urls": [f"http://127.0.0.1:9/{i}" for i in range(4)]}
        )
        assert answer.status == 400 and "at most 3" in answer.body["error"]

    @pytest.mark.parametrize("method, suffix", [("GET", ""), ("POST", "/retry"), ("DELETE", "")])
    def test_an_unknown_batch_is_404(self, offline_api, method, suffix):
        answer = offline_api.call(method, f"/downloads/{UNKNOWN_BATCH}{suffix}")
        assert answer.status == 404 and "unknown batch" in answer.body["error"]

    def test_a_wrong_method_is_a_json_405(self, offline_api):
        assert offline_api.call("PUT", f"/downloads/{UNKNOWN_BATCH}", {"urls": []}).status == 405

    # -- the daemon -----------------------------------------------------------------------------

    def test_an_unreachable_daemon_is_503(self, make_api, root):
        secret = "web-test-secret-never-shown"
        api = make_api(
            {
                "DOWNLOAD_ROOT": str(root),
                "RPC_URL": closed_port_url(),
                "RPC_SECRET": secret,
                "CLIENT_OPTIONS": FAST,
                "URL_POLICY": LOCAL,
            }
        )
        answer = api.call("POST", "/downloads", {"urls": ["http://127.0.0.1:9/a.bin"]})
        assert answer.status == 503 and "unreachable" in answer.body["error"]
        assert "batch_id" not in answer.body  # nothing reached the daemon: safe to post again

    def test_a_daemon_lost_mid_batch_is_503(self, api, daemon, fault_server):
        url = fault_server.add_file("slow.bin", size=4_000_000)
        fault_server.set_default_fault("slow.bin", Slow(100_000))
        batch_id = api.create({"urls": [url]})
        daemon.stop()
        answer = api.call("GET", f"/downloads/{batch_id}")
        assert answer.status == 503

    def test_a_wrong_secret_is_502_without_the_secret(self, make_api, daemon, root):
        api = make_api(
            {
                "DOWNLOAD_ROOT": str(root),
                "RPC_URL": daemon.rpc_url,
                "RPC_SECRET": "wrong-secret-xyz",
                "CLIENT_OPTIONS": FAST,
                "URL_POLICY": LOCAL,
            }
        )
        answer = api.call("POST", "/downloads", {"urls": ["http://127.0.0.1:9/a.bin"]})
        assert answer.status == 502 and "Unauthorized" in answer.body["error"]


# -- Flask ---------------------------------------------------------------------------------------


def flask_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return {"TESTING": True, **{f"ARIA2_SYNC_{key}": value for key, value in config.items()}}


class TestFlaskApi(WebApiContract):
    @pytest.fixture
    def make_api(self):
        def make(config: dict[str, Any]) -> ApiUnderTest:
            client = create_app(flask_config(config)).test_client()

            def send(method: str, path: str, data: bytes, content_type: str | None) -> Answer:
                response = client.open(path, method=method, data=data, content_type=content_type)
                return Answer(
                    response.status_code, response.get_json(silent=True), response.get_data(as_text=True)
                )

            return ApiUnderTest(send, config)

        return make

    def test_without_rpc_url_an_embedded_daemon_serves_and_stops_with_the_client(
        self, make_api, fault_server, root
    ):
        api = make_api({"DOWNLOAD_ROOT": str(root), "URL_POLICY": LOCAL})
        url = fault_server.add_file("local.bin", size=20_000)
        batch_id = api.create({"urls": [url]})
        api.wait_for_progress(batch_id)
        assert (root / "local.bin").read_bytes() == fault_server.content("local.bin")
        daemon = web_downloads.get_client(
            web_downloads.Settings.from_mapping({"DOWNLOAD_ROOT": str(root)})
        ).daemon
        assert daemon is not None and daemon.running
        assert daemon.secret not in api.call("GET", f"/downloads/{batch_id}").text
        web_downloads.reset_client()
        assert not daemon.running

    @pytest.mark.parametrize("store", ["sqlite", "redis"])
    def test_with_state_a_batch_outlives_the_process_client(
        self, make_api, daemon, fault_server, root, tmp_path, request, store
    ):
        """What STATE is for: another worker (on this host with a state file, on any host with
        Redis), or this one after a restart, still knows the batch."""
        state = str(tmp_path / "state.db") if store == "sqlite" else request.getfixturevalue("redis_url")
        config = {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": daemon.rpc_url,
            "RPC_SECRET": daemon.secret,
            "STATE": state,
            "CLIENT_OPTIONS": FAST,
            "URL_POLICY": LOCAL,
        }
        url = fault_server.add_file("kept.bin", size=10_000)
        batch_id = make_api(config).create({"urls": [url]})
        make_api(config).wait_for_progress(batch_id)
        web_downloads.reset_client()  # as if the worker restarted
        again = make_api(config).progress(batch_id)
        assert (again["completed_count"], again["total_count"]) == (1, 1)
        web_downloads.reset_client()

    def test_with_daemons_the_downloads_spread_over_a_pool(
        self, make_api, daemon, fault_server, root, tmp_path
    ):
        """DAEMONS: the web app's workers drive several aria2c daemons (one per host) as one."""
        other = Aria2Daemon(download_dir=tmp_path / "other", state_dir=tmp_path / "other-state").start()
        try:
            config = {
                "DOWNLOAD_ROOT": str(root),
                "DAEMONS": [(daemon.rpc_url, daemon.secret), (other.rpc_url, other.secret)],
                "CLIENT_OPTIONS": FAST,
                "URL_POLICY": LOCAL,
            }
            urls = [fault_server.add_file(f"pooled{n}.bin", size=10_000) for n in range(4)]
            batch_id = make_api(config).create({"urls": urls})
            make_api(config).wait_for_progress(batch_id)
            client = web_downloads.get_client(web_downloads.Settings.from_mapping(config))
            assert [health.state for health in client.daemons()] == ["up", "up"]
            assert all(health.downloads == 2 for health in client.daemons())
            for n in range(4):
                assert (root / f"pooled{n}.bin").read_bytes() == fault_server.content(f"pooled{n}.bin")
            assert other.secret not in repr(web_downloads.Settings.from_mapping(config))
        finally:
            web_downloads.reset_client()
            other.stop()

    def test_a_body_over_the_size_limit_is_a_json_413(self, make_api, root):
        api = make_api({"DOWNLOAD_ROOT": str(root), "RPC_URL": closed_port_url()})
        answer = api.call("POST", "/downloads", raw=b" " * (2 << 20))
        assert answer.status == 413


@pytest.mark.parametrize(
    "config, fragment",
    [
        ({}, "DOWNLOAD_ROOT is required"),
        ({"ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x", "ARIA2_SYNC_MAX_ITEM": 3}, "unknown settings ['MAX_ITEM']"),
        ({"ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x", "ARIA2_SYNC_MAX_ITEMS": 0}, "MAX_ITEMS"),
        ({"ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x", "ARIA2_SYNC_RPC_SECRET": "s"}, "without RPC_URL"),
        ({"ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x", "ARIA2_SYNC_CLIENT_OPTIONS": {"state": "x"}}, "STATE"),
        (
            {
                "ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x",
                "ARIA2_SYNC_RPC_URL": "http://h:1/jsonrpc",
                "ARIA2_SYNC_DAEMONS": "http://h:2/jsonrpc",
            },
            "RPC_URL and DAEMONS",
        ),
        ({"ARIA2_SYNC_DOWNLOAD_ROOT": "/tmp/x", "ARIA2_SYNC_DAEMONS": [3]}, "each of DAEMONS"),
    ],
)
def test_flask_refuses_a_bad_configuration_at_start_up(config, fragment):
    with pytest.raises(web_downloads.ConfigurationError) as caught:
        create_app(config)
    assert fragment in str(caught.value)


# -- the shared module ---------------------------------------------------------------------------


def test_state_is_passed_to_the_client_only_when_configured(tmp_path):
    plain = web_downloads.Settings.from_mapping({"DOWNLOAD_ROOT": str(tmp_path)})
    assert "state" not in web_downloads.client_arguments(plain)
    stateful = web_downloads.Settings.from_mapping(
        {"DOWNLOAD_ROOT": str(tmp_path), "STATE": str(tmp_path / "s.db")}
    )
    assert web_downloads.client_arguments(stateful)["state"] == str(tmp_path / "s.db")


def test_daemons_from_the_environment_are_urls_sharing_rpc_secret(tmp_path):
    environ = {
        "ARIA2_SYNC_DOWNLOAD_ROOT": str(tmp_path),
        "ARIA2_SYNC_DAEMONS": "http://10.0.0.1:6800/jsonrpc, http://10.0.0.2:6800/jsonrpc",
        "ARIA2_SYNC_RPC_SECRET": "hush",
    }
    settings = web_downloads.Settings.from_mapping(web_downloads.config_from_environ(environ))
    assert settings.daemons == (
        ("http://10.0.0.1:6800/jsonrpc", "hush"),
        ("http://10.0.0.2:6800/jsonrpc", "hush"),
    )
    assert "hush" not in repr(settings)


def test_the_secret_stays_out_of_the_settings_repr(tmp_path):
    settings = web_downloads.Settings.from_mapping(
        {"DOWNLOAD_ROOT": str(tmp_path), "RPC_URL": "http://127.0.0.1:1/jsonrpc", "RPC_SECRET": "hush"}
    )
    assert "hush" not in repr(settings)


def test_symlinks_inside_the_root_are_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    target = web_downloads.resolve_target(str(tmp_path), "alias/x.bin")
    assert target == str((tmp_path / "real" / "x.bin").resolve())


def test_concurrent_first_requests_share_one_client(daemon, tmp_path):
    settings = web_downloads.Settings.from_mapping(
        {"DOWNLOAD_ROOT": str(tmp_path), "RPC_URL": daemon.rpc_url, "RPC_SECRET": daemon.secret}
    )
    web_downloads.reset_client()
    barrier = threading.Barrier(8)
    clients = []

    def first_request():
        barrier.wait()
        clients.append(web_downloads.get_client(settings))

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads), "a request thread hangs"
        assert len(clients) == 8 and len({id(c) for c in clients}) == 1
        other = web_downloads.Settings.from_mapping(
            {"DOWNLOAD_ROOT": str(tmp_path), "RPC_URL": daemon.rpc_url}
        )
        with pytest.raises(web_downloads.ConfigurationError, match="reset_client"):
            web_downloads.get_client(other)
    finally:
        web_downloads.reset_client()
    assert clients[0].closed
