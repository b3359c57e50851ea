"""The Django example: the web contract of tests/test_flask_app.py through Django's test client.

Plain pytest (no pytest-django): this module points ``DJANGO_SETTINGS_MODULE`` at the example
project and calls ``django.setup()``; each test's ``ARIA2_SYNC`` comes from
``override_settings``. No database is involved.
"""

from __future__ import annotations

import os
from typing import Any

import django
import pytest
from django.conf import settings

if not settings.configured:
    os.environ["DJANGO_SETTINGS_MODULE"] = "examples.django_project.settings"
    django.setup()

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings
from django.test.utils import setup_test_environment, teardown_test_environment

from examples import web_downloads
from tests.test_flask_app import FAST, Answer, ApiUnderTest, WebApiContract, closed_port_url


@pytest.fixture(scope="module", autouse=True)
def django_test_environment():
    """What Django's own test runner sets up: the test client's host is allowed, and so on."""
    setup_test_environment()
    yield
    teardown_test_environment()


def _json_or_none(response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class TestDjangoApi(WebApiContract):
    @pytest.fixture
    def make_api(self):
        overrides = []

        def make(config: dict[str, Any], *, enforce_csrf_checks: bool = False) -> ApiUnderTest:
            override = override_settings(ARIA2_SYNC=dict(config))
            override.enable()
            overrides.append(override)
            client = Client(enforce_csrf_checks=enforce_csrf_checks)

            def send(method: str, path: str, data: bytes, content_type: str | None) -> Answer:
                response = client.generic(method, path, data=data, content_type=content_type)
                return Answer(
                    response.status_code, _json_or_none(response), response.content.decode("utf-8", "replace")
                )

            return ApiUnderTest(send, config)

        yield make
        for override in reversed(overrides):
            override.disable()

    def test_the_api_is_csrf_exempt(self, make_api, daemon, fault_server, root):
        config = {
            "DOWNLOAD_ROOT": str(root),
            "RPC_URL": daemon.rpc_url,
            "RPC_SECRET": daemon.secret,
            "URL_POLICY": web_downloads.allow_any_url,
        }  # the fault server is on 127.0.0.1
        api = make_api(config, enforce_csrf_checks=True)
        url = fault_server.add_file("csrf.bin", size=1000)
        api.wait_for_progress(api.create({"urls": [url]}))
        assert (root / "csrf.bin").read_bytes() == fault_server.content("csrf.bin")
        web_downloads.reset_client()

    def test_a_body_over_djangos_limit_is_a_json_413(self, make_api, root):
        api = make_api({"DOWNLOAD_ROOT": str(root), "RPC_URL": closed_port_url(), "CLIENT_OPTIONS": FAST})
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
            answer = api.call("POST", "/downloads", raw=b" " * 2000)
        assert answer.status == 413

    def test_a_setting_broken_at_run_time_is_a_json_500_without_details(self, make_api, root):
        api = make_api({"DOWNLOAD_ROOT": str(root), "MAX_ITEMS": "lots"})
        answer = api.call("GET", f"/downloads/{'0' * 32}")
        assert answer.status == 500 and answer.body == {"error": "the download service is misconfigured"}


def test_the_project_settings_are_checked_when_the_app_loads():
    config = apps.get_app_config("downloads")
    config.ready()  # the project's own ARIA2_SYNC is valid
    with override_settings(ARIA2_SYNC={"RPC_URL": "http://127.0.0.1:6800/jsonrpc"}):
        with pytest.raises(ImproperlyConfigured, match="DOWNLOAD_ROOT is required"):
            config.ready()
