"""A daemon whose RPC speaks TLS (aria2c ``--rpc-secure``), as hosts of a pool are reached.

A real aria2c with a self-signed certificate for 127.0.0.1 (``tests/support/tls.py``). With
``rpc_ca_file`` naming that certificate, a client downloads through it, over ``https://`` and
``wss://`` notifications; without, the first call fails at once with a message that says how to
fix it, and nothing was sent. A file that is not a certificate is refused when the client is
built, and so is anything else where a path belongs; the command line takes ``--rpc-ca-file``.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from aria2_sync import Aria2Client, Aria2ConnectionError, Aria2InputError
from aria2_sync.client import engine_of
from aria2_sync.ui.cli import main
from tests.conftest import wait_for


def test_a_client_given_the_certificate_downloads_over_https_with_notifications(tls_aria2, fault_server):
    data = bytes(range(256)) * 4096
    url = fault_server.add_file("tls.bin", data=data)
    with Aria2Client(
        tls_aria2.rpc_url,
        tls_aria2.secret,
        verbose=False,
        rpc_ca_file=tls_aria2.certificate,
        notifications=True,
    ) as client:
        assert client.rpc_ca_file == str(tls_aria2.certificate)
        listener = engine_of(client).listener
        assert listener is not None and listener.url.startswith("wss://")
        result = client.submit(url, str(tls_aria2.download_dir / "tls.bin")).result(timeout=30)
        assert hashlib.sha256(Path(result.path).read_bytes()).digest() == hashlib.sha256(data).digest()
        wait_for(listener.connected.is_set, what="the wss:// notifications to connect")


def test_without_the_certificate_the_first_call_fails_at_once_saying_what_to_give(tls_aria2):
    with Aria2Client(
        tls_aria2.rpc_url, tls_aria2.secret, verbose=False, monitor=False, max_retries=3
    ) as client:
        with pytest.raises(Aria2ConnectionError) as caught:
            client.rpc.get_version()
    error = caught.value
    assert error.attempts == 1  # not retried: a certificate refused is refused again
    assert not error.maybe_applied  # the handshake failed: nothing was sent
    message = str(error)
    assert "certificate" in message and "rpc_ca_file" in message and "connection" in message
    assert tls_aria2.secret not in message


def test_an_https_url_to_a_server_without_tls_says_what_to_change(daemon, fault_server):
    """aria2c closes the connection on a TLS hello; an HTTP server answers it in plain HTTP,
    which proves the request itself was never sent."""
    for url, proven_unsent in (
        (daemon.rpc_url.replace("http://", "https://"), False),
        (fault_server.base_url.replace("http://", "https://") + "/jsonrpc", True),
    ):
        with Aria2Client(url, daemon.secret, verbose=False, monitor=False, max_retries=3) as client:
            with pytest.raises(Aria2ConnectionError) as caught:
                client.rpc.get_version()
        assert caught.value.attempts == 1  # not retried
        assert caught.value.maybe_applied is not proven_unsent
        assert "failed in TLS" in str(caught.value) and "give an http:// rpc_url" in str(caught.value)


def test_the_notifications_trust_what_the_calls_trust_and_no_proxy_of_the_environment(
    tls_aria2, daemon, monkeypatch, caplog
):
    """The environment changes neither: a proxy variable would capture the WebSocket, and
    $SSL_CERT_FILE would make it trust a certificate the JSON-RPC calls refuse."""
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # (nothing listens on port 9)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    with Aria2Client(daemon.rpc_url, daemon.secret, verbose=False, notifications=True) as client:
        listener = engine_of(client).listener
        assert listener is not None
        engine_of(client).watch()  # (what adding a download does)
        wait_for(listener.connected.is_set, what="ws:// notifications despite $http_proxy")
    monkeypatch.delenv("https_proxy")
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_aria2.certificate))
    caplog.set_level(logging.INFO, logger="aria2_sync")
    with Aria2Client(
        tls_aria2.rpc_url,
        tls_aria2.secret,
        verbose=False,
        notifications=True,
        rpc_ca_file=tls_aria2.certificate,
    ) as client:
        listener = engine_of(client).listener
        assert listener is not None
        engine_of(client).watch()
        wait_for(
            listener.connected.is_set, what="wss:// notifications with rpc_ca_file despite $SSL_CERT_FILE"
        )
    with Aria2Client(tls_aria2.rpc_url, tls_aria2.secret, verbose=False, notifications=True) as client:
        listener = engine_of(client).listener
        assert listener is not None
        engine_of(client).watch()
        wait_for(
            lambda: listener.connected.is_set() or "notifications unavailable" in caplog.text,
            what="the first wss:// connection to succeed or fail",
        )
        assert not listener.connected.is_set()
        assert "certificate verify failed" in caplog.text


def test_a_certificate_without_an_https_daemon_is_refused(tls_aria2):
    with pytest.raises(Aria2InputError, match="rpc_ca_file is for a daemon reached over https://"):
        Aria2Client("http://127.0.0.1:1/jsonrpc", verbose=False, rpc_ca_file=tls_aria2.certificate)


def test_a_file_that_is_not_a_certificate_is_refused_when_the_client_is_built(tmp_path):
    garbage = tmp_path / "not-a-ca.pem"
    garbage.write_text("hello\n")
    with pytest.raises(Aria2InputError, match="rpc_ca_file .* holds no certificate"):
        Aria2Client("https://127.0.0.1:1/jsonrpc", verbose=False, rpc_ca_file=garbage)
    with pytest.raises(Aria2InputError, match="rpc_ca_file .* is not a readable file"):
        Aria2Client("https://127.0.0.1:1/jsonrpc", verbose=False, rpc_ca_file=tmp_path / "missing.pem")
    with pytest.raises(Aria2InputError, match="rpc_ca_file must be a path"):
        Aria2Client("https://127.0.0.1:1/jsonrpc", verbose=False, rpc_ca_file=True)  # type: ignore[arg-type]


def test_the_command_line_takes_the_certificate(tls_aria2, monkeypatch, capsys):
    monkeypatch.setenv("ARIA2_RPC_SECRET", tls_aria2.secret)
    assert main(["status", "--rpc-url", tls_aria2.rpc_url, "--rpc-ca-file", str(tls_aria2.certificate)]) == 0
    assert capsys.readouterr().out.startswith("aria2 1.")
    assert main(["show", "--rpc-url", tls_aria2.rpc_url, "--rpc-ca-file", str(tls_aria2.certificate)]) == 0
    assert main(["status", "--rpc-url", tls_aria2.rpc_url]) != 0
    assert "rpc_ca_file" in capsys.readouterr().err


def test_the_command_line_refuses_a_certificate_for_the_private_daemon(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["get", "http://127.0.0.1:1/x", "-d", str(tmp_path), "--rpc-ca-file", str(tmp_path / "ca.pem")])
    assert exit.value.code == 2
    assert "--rpc-ca-file goes with an https:// --rpc-url" in capsys.readouterr().err
