"""A daemon whose RPC speaks TLS (aria2c ``--rpc-secure``), as hosts of a pool are reached.

A real aria2c with a self-signed certificate for 127.0.0.1 (``tests/support/tls.py``). With
``rpc_ca_file`` naming that certificate, a client downloads through it, over ``https://`` and
``wss://`` notifications; without, the first call fails at once with a message that says how to
fix it, and nothing was sent. A file that is not a certificate is refused when the client is
built, and so is anything else where a path belongs; the command line takes ``--rpc-ca-file``.
"""

from __future__ import annotations

import hashlib
import time

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
        assert hashlib.sha256(open(result.path, "rb").read()).digest() == hashlib.sha256(data).digest()
        wait_for(listener.connected.is_set, what="the wss:// notifications to connect")


def test_without_the_certificate_the_first_call_fails_at_once_saying_what_to_give(tls_aria2):
    with Aria2Client(
        tls_aria2.rpc_url, tls_aria2.secret, verbose=False, monitor=False, max_retries=3
    ) as client:
        started = time.monotonic()
        with pytest.raises(Aria2ConnectionError) as caught:
            client.rpc.get_version()
        took = time.monotonic() - started
    error = caught.value
    assert took < 1.0, f"{took:.1f} s: a certificate refused is not retried with backoff"
    assert error.attempts == 1 and not error.maybe_applied  # the handshake failed: nothing sent
    message = str(error)
    assert "certificate" in message and "rpc_ca_file" in message and "connection" in message
    assert tls_aria2.secret not in message


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
