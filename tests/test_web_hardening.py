"""The web example against server-side request forgery and path leaks (issue 10, items 7, 10).

Through Flask's test client (the same core serves Django), with a real aria2c and the real fault
server. The fault server is on 127.0.0.1, which the default URL policy refuses: the tests that
download from it say so with ``URL_POLICY: allow_any_url``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples import web_downloads
from examples.flask_app import create_app
from tests.test_flask_app import FAST, closed_port_url

LOCAL = web_downloads.allow_any_url

REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/x",
    "http://localhost/x",
    "http://[::1]/x",
    "http://0x7f000001/x",
    "http://2130706433/x",
    "http://0177.0.0.1/x",
    "http://127.1/x",
    "http://0/x",
    "http://0.0.0.0/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:7f00:1]/x",
    "http://[::ffff:169.254.169.254]/x",
    "http://[64:ff9b::a9fe:a9fe]/x",
    "http://[2002:7f00:1::]/x",
    "http://[::]/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.0.1/x",
    "http://100.64.0.1/x",
    "http://224.0.0.1/x",
    "http://240.0.0.1/x",
    "http://255.255.255.255/x",
    "http://[fe80::1]/x",
    "http://[fc00::1]/x",
    "http://[ff02::1]/x",
    "http://user:pw@93.184.216.34/x",
    "http://user@93.184.216.34/x",
    "ftp://93.184.216.34/x",
    "sftp://93.184.216.34/x",
    "file:///etc/passwd",
]


class Api:
    """The Flask app's test client, answering (status, JSON body, text)."""

    def __init__(self, config):
        flask_config = {"TESTING": True, **{f"ARIA2_SYNC_{k}": v for k, v in config.items()}}
        self.client = create_app(flask_config).test_client()

    def post(self, body):
        response = self.client.post("/downloads", data=json.dumps(body), content_type="application/json")
        return response.status_code, response.get_json(silent=True), response.get_data(as_text=True)

    def get(self, path):
        response = self.client.get(path)
        return response.status_code, response.get_json(silent=True), response.get_data(as_text=True)


@pytest.fixture(autouse=True)
def fresh_client():
    web_downloads.reset_client()
    yield
    web_downloads.reset_client()


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def offline(root):
    """Default policy, unreachable daemon: a 400 proves the URL never reached aria2 (503 would)."""
    return Api({"DOWNLOAD_ROOT": str(root), "RPC_URL": closed_port_url(), "CLIENT_OPTIONS": FAST})


@pytest.fixture
def local_api(daemon, root):
    api = Api(
        {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": daemon.rpc_url,
            "RPC_SECRET": daemon.secret,
            "CLIENT_OPTIONS": FAST,
            "URL_POLICY": LOCAL,
        }
    )
    yield api
    web_downloads.reset_client()  # before the daemon stops


def wait_for_batch(api, batch_id, timeout=20.0):
    from tests.conftest import wait_for

    def done():
        status, body, _ = api.get(f"/downloads/{batch_id}")
        assert status == 200, body
        return body if body["is_completed"] else None

    return wait_for(done, timeout, what="the batch to complete")


# -- the URL policy --------------------------------------------------------------------------------


@pytest.mark.parametrize("url", REFUSED)
def test_the_default_policy_refuses_internal_hosts_credentials_and_other_schemes(offline, url):
    for body in ({"urls": [url]}, {"items": [{"url": url, "name": "x.bin"}]}):
        status, answer, text = offline.post(body)
        assert status == 400, text
        assert "is refused" in answer["error"] or "unsupported scheme" in answer["error"]
        assert "pw@" not in text


def test_a_refused_url_refuses_the_whole_request(offline):
    status, answer, _ = offline.post({"urls": ["http://93.184.216.34/a", "http://127.0.0.1/b"]})
    assert status == 400 and "urls[1]" in answer["error"]


def test_the_default_policy_lets_public_addresses_through(offline):
    # Reaching the (unreachable) daemon answers 503: the policy let the URL pass.
    status, answer, _ = offline.post({"urls": ["http://93.184.216.34/a", "https://[2606:4700:4700::1111]/b"]})
    assert status == 503, answer
    web_downloads.public_http_only("https://8.8.8.8:8443/file")


def test_an_unresolvable_host_is_refused():
    with pytest.raises(web_downloads.UrlRefused, match="cannot be resolved"):
        web_downloads.public_http_only("http://no-such-host.invalid/x")


def test_a_custom_policy_is_asked_for_every_url(daemon, root):
    seen = []

    def only_example(url):
        seen.append(url)
        if "allowed.example" not in url:
            raise ValueError("only allowed.example may be fetched")

    api = Api(
        {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": closed_port_url(),
            "CLIENT_OPTIONS": FAST,
            "URL_POLICY": only_example,
        }
    )
    status, answer, _ = api.post({"urls": ["http://allowed.example/a", "http://other.example/b"]})
    assert status == 400 and answer["error"] == "urls[1] is refused: only allowed.example may be fetched"
    assert seen == ["http://allowed.example/a", "http://other.example/b"]


def test_a_policy_that_is_not_callable_is_a_configuration_error(root):
    with pytest.raises(web_downloads.ConfigurationError, match="URL_POLICY"):
        Api({"DOWNLOAD_ROOT": str(root), "URL_POLICY": "public"})


def test_the_permissive_policy_downloads_from_the_local_server(local_api, fault_server, root):
    url = fault_server.add_file("ok.bin", size=5000)
    status, answer, _ = local_api.post({"urls": [url]})
    assert status == 201
    wait_for_batch(local_api, answer["batch_id"])
    assert (root / "ok.bin").read_bytes() == fault_server.content("ok.bin")


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.bin.aria2", "sub/other.ARIA2", ".aria2"])
def test_names_of_control_files_are_refused(offline, name):
    status, answer, _ = offline.post({"items": [{"url": "http://93.184.216.34/a", "name": name}]})
    assert status == 400 and ".aria2" in answer["error"]


# -- no server path in any answer ---------------------------------------------------------------


def test_progress_shows_paths_relative_to_the_root_and_never_overwrites(local_api, fault_server, root):
    first = fault_server.add_file("first.bin", size=3000)
    taken = fault_server.add_file("taken.bin", size=3000)
    (root / "taken.bin").write_bytes(b"ANOTHER REQUEST WROTE THIS")
    status, answer, _ = local_api.post(
        {"items": [{"url": first, "name": "deep/first.bin"}, {"url": taken, "name": "taken.bin"}]}
    )
    assert status == 201
    done = wait_for_batch(local_api, answer["batch_id"])
    _, _, text = local_api.get(f"/downloads/{answer['batch_id']}")
    assert str(root) not in text and str(root.resolve()) not in text
    by_name = {d["file_path"]: d for d in done["downloads"]}
    assert by_name["deep/first.bin"]["dir"] == "deep" and by_name["deep/first.bin"]["status"] == "complete"
    clash = by_name["taken.bin"]
    assert clash["status"] == "error" and clash["error_code"] == "13" and clash["dir"] == ""
    assert "taken.bin" in clash["error_message"]  # aria2's words, with the path made relative
    assert (root / "taken.bin").read_bytes() == b"ANOTHER REQUEST WROTE THIS"


def test_a_bad_name_does_not_quote_the_root(local_api, fault_server, root):
    (root / "plain.bin").write_text("x")
    url = fault_server.add_file("n.bin", size=10)
    status, answer, text = local_api.post({"items": [{"url": url, "name": "plain.bin/n.bin"}]})
    assert status == 400, text
    assert "plain.bin" in answer["error"]
    assert str(root) not in text and str(root.resolve()) not in text


def test_a_broken_state_file_is_503_without_its_path(root, tmp_path, daemon):
    state = tmp_path / "private" / "state.db"
    state.parent.mkdir()
    state.write_bytes(b"this is not an SQLite database" * 100)
    api = Api(
        {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": daemon.rpc_url,
            "RPC_SECRET": daemon.secret,
            "STATE": str(state),
            "CLIENT_OPTIONS": FAST,
            "URL_POLICY": LOCAL,
        }
    )
    status, answer, text = api.post({"urls": ["http://127.0.0.1:9/a"]})
    assert status == 503, text
    assert "state" in answer["error"]
    assert str(tmp_path) not in text and "state.db" not in text
