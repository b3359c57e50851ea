"""An aria2c whose RPC speaks TLS (``--rpc-secure``), as a daemon on another host is run.

The certificate is self-signed for 127.0.0.1 (its subjectAltName), made by the ``openssl``
command; the daemon listens on a free port of 127.0.0.1 and is stopped by PID. Without
``openssl`` the tests that need it skip with one reason, except in CI (``$CI`` set, as ``.ci/run``
does), where they fail: CI must run them.

Fixture: ``tls_aria2`` (one per test): a :class:`TlsDaemon` with ``rpc_url`` (``https://``),
``secret``, ``certificate`` (the PEM file a client is given as ``rpc_ca_file``) and
``download_dir``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from aria2_sync import find_aria2c
from aria2_sync.daemon import ownership


def _openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        reason = (
            "the openssl command is not installed (Debian: apt-get install openssl); the TLS tests need it"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key: ``(certificate.pem, key.pem)``."""
    certificate, key = directory / "certificate.pem", directory / "key.pem"
    subprocess.run(
        [_openssl(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"]
        + ["-keyout", str(key), "-out", str(certificate), "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return certificate, key


class TlsDaemon:
    """aria2c with ``--rpc-secure`` on 127.0.0.1 (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.certificate, self.key = make_certificate(root)
        self.download_dir = root / "downloads"
        self.download_dir.mkdir()
        self.port = ownership.free_port("127.0.0.1")
        self.secret = secrets.token_hex(16)
        self.rpc_url = f"https://127.0.0.1:{self.port}/jsonrpc"
        self._log = open(root / "aria2c.log", "wb")  # (closed by stop)
        config = root / "aria2.conf"  # the secret off the command line, as the deployment guide says
        with open(os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(f"rpc-secret={self.secret}\n")  # (0600 from the start, as the secret's file)
        self.process = subprocess.Popen(
            [find_aria2c(), f"--conf-path={config}", "--enable-rpc", "--rpc-listen-all=false"]
            + [f"--rpc-listen-port={self.port}", "--rpc-secure=true"]
            + [f"--rpc-certificate={self.certificate}", f"--rpc-private-key={self.key}"]
            + [f"--dir={self.download_dir}", "--no-netrc=true", "--check-certificate=false"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        body = {"jsonrpc": "2.0", "id": 1, "method": "aria2.getVersion", "params": [f"token:{self.secret}"]}
        with requests.Session() as probe:
            probe.trust_env = False  # (no proxy of the environment between the probe and 127.0.0.1)
            while True:
                try:
                    probe.post(
                        self.rpc_url, json=body, verify=str(self.certificate), timeout=1
                    ).raise_for_status()
                    return
                except requests.RequestException:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"aria2c --rpc-secure did not answer on {self.rpc_url}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def tls_aria2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsDaemon]:
    daemon = TlsDaemon(tmp_path_factory.mktemp("tls-aria2"))
    try:
        yield daemon
    finally:
        daemon.stop()
