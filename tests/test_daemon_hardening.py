"""The embedded daemon under a hostile neighbour and a careless caller (issues 10 and 11).

A process squatting the RPC port never gets the secret; the state directory and its files are
private and never followed through symlinks; what is quoted from aria2c's log is redacted; a
secret cannot inject config lines; an interrupted start leaves nothing; and a daemon whose host
process was killed leaves a folder that the next daemon removes (and a live one's it never does).

Every private daemon here makes its temporary folder under the test's own directory
(``tempfile.tempdir`` is pointed there), so other test runs on the machine cannot interfere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aria2_sync.daemon import files as files_module
from aria2_sync.daemon import ownership as ownership_module
from aria2_sync.daemon import process as daemon_module
from aria2_sync.daemon import sweep as sweep_module
from aria2_sync.daemon.ownership import free_port
from aria2_sync.daemon.process import Aria2Daemon
from aria2_sync.daemon.sweep import OWNER_LOCK, TEMP_PREFIX
from aria2_sync.errors import Aria2DaemonError, Aria2InputError
from aria2_sync.rpc.transport import Transport
from tests.conftest import wait_for

# -- helpers ---------------------------------------------------------------------------------------


class Squatter:
    """Another local process's JSON-RPC server on 127.0.0.1:<free port>: it answers every call
    like aria2 would and keeps every request body it got (to tell whether the secret came)."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(body)
                try:
                    request_id = json.loads(body).get("id")
                except ValueError:
                    request_id = None
                answer = json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "result": {"version": "1.37.0", "enabledFeatures": []},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def got(self, secret: str) -> bool:
        return any(secret.encode() in body for body in self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def squatter():
    server = Squatter()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """The temporary directory private daemons use, for this test only."""
    root = tmp_path / "tmp"
    root.mkdir(mode=0o700)
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def private_dirs(root) -> list:
    return sorted(name for name in os.listdir(root) if name.startswith(TEMP_PREFIX))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_if_alive(pid: int | None) -> None:
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)


def state_dir(tmp_path, name="state"):
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return path


# -- 10.1 port hijack ------------------------------------------------------------------------------


def test_a_fixed_port_held_by_another_process_fails_and_never_gets_the_secret(
    tmp_path, squatter, private_tmp
):
    daemon = Aria2Daemon(port=squatter.port, download_dir=tmp_path / "dl")
    with pytest.raises(Aria2DaemonError, match="another process is listening"):
        daemon.start()
    assert not squatter.got(daemon.secret)
    assert not daemon.running and private_dirs(private_tmp) == []


def test_a_listener_that_appears_after_the_port_check_is_caught_before_the_secret_is_sent(
    tmp_path, squatter, private_tmp, monkeypatch
):
    # The squatter wins the race against the quick check: aria2c starts, fails to bind
    # 127.0.0.1, stays up on [::1]; the socket-owner proof must refuse to send the secret.
    monkeypatch.setattr(ownership_module, "port_in_use", lambda host, port: False, raising=False)
    daemon = Aria2Daemon(port=squatter.port, download_dir=tmp_path / "dl")
    launched = []
    original = Aria2Daemon._wait_ready

    def spy(self):
        launched.append(self.pid)
        return original(self)

    monkeypatch.setattr(Aria2Daemon, "_wait_ready", spy)
    try:
        with pytest.raises(Aria2DaemonError, match="another process is listening"):
            daemon.start()
        assert launched, "aria2c was started against the squatted port"
        assert not squatter.got(daemon.secret)
        assert not any(alive(pid) for pid in launched)
    finally:
        for pid in launched:
            kill_if_alive(pid)


def test_with_a_free_port_the_retry_moves_past_a_squatted_one(tmp_path, squatter, private_tmp, monkeypatch):
    ports = iter([squatter.port])
    monkeypatch.setattr(
        ownership_module, "free_port", lambda host="127.0.0.1": next(ports, None) or free_port(host)
    )
    monkeypatch.setattr(ownership_module, "port_in_use", lambda host, port: False, raising=False)
    daemon = Aria2Daemon(download_dir=tmp_path / "dl").start()
    try:
        assert daemon.port != squatter.port
        probe = Transport(daemon.rpc_url, daemon.secret, max_retries=0)
        try:
            assert probe.call("aria2.getVersion")["version"]
        finally:
            probe.close()
        assert not squatter.got(daemon.secret)
    finally:
        daemon.stop()


class WrongConfig(Aria2Daemon):
    """A daemon whose aria2c gets another secret than the one its probe sends."""

    def _write_config(self):
        files_module.write_private_atomically(self.config_file, "rpc-secret=not-the-one\n")
        return self.config_file


def test_unauthorized_at_startup_fails_at_once_instead_of_waiting(tmp_path, private_tmp):
    daemon = WrongConfig(download_dir=tmp_path / "dl", startup_timeout=8)
    with pytest.raises(Aria2DaemonError) as info:
        daemon.start()
    assert "refused our RPC secret" in str(info.value)  # not "did not answer within 8 s"
    assert daemon.secret not in str(info.value)
    assert not daemon.running and private_dirs(private_tmp) == []


def test_without_proc_aria2c_is_told_to_exit_when_ipv4_is_taken(tmp_path, squatter, private_tmp, monkeypatch):
    monkeypatch.setattr(ownership_module, "can_prove_listener_owner", lambda: False)
    daemon = Aria2Daemon(port=squatter.port, download_dir=tmp_path / "dl")
    daemon.port = squatter.port
    assert "--disable-ipv6=true" in daemon._command("conf")
    with pytest.raises(Aria2DaemonError, match="another process is listening"):
        daemon.start()  # the quick check before launching still catches a standing squatter
    assert not squatter.got(daemon.secret)


# -- 10.2 state directory --------------------------------------------------------------------------


def test_a_leftover_world_readable_config_is_replaced_by_a_private_one(tmp_path):
    state = state_dir(tmp_path)
    conf = state / "aria2.conf"
    conf.write_text("rpc-secret=old\n")
    conf.chmod(0o644)
    old_inode = conf.stat().st_ino
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state).start()
    try:
        info = os.lstat(conf)
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
        assert info.st_ino != old_inode
        assert daemon.secret in conf.read_text()
        for name in ("aria2.session", "aria2c.log"):
            assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    finally:
        daemon.stop()
    assert not conf.exists(), "the secret is not left at rest after stop"


def test_a_symlink_planted_as_the_config_is_replaced_not_followed(tmp_path):
    state = state_dir(tmp_path)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    (state / "aria2.conf").symlink_to(target)
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state).start()
    try:
        assert target.read_text() == "keep me\n"
        assert not os.path.islink(state / "aria2.conf")
    finally:
        daemon.stop()


@pytest.mark.parametrize("name", ["aria2.session", "aria2c.log"])
def test_a_symlink_planted_as_session_or_log_is_refused_and_not_followed(tmp_path, name):
    state = state_dir(tmp_path)
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    target.chmod(0o644)
    (state / name).symlink_to(target)
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)
    with pytest.raises(Aria2DaemonError, match="symbolic link"):
        daemon.start()
    assert target.read_text() == "keep me\n" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(os.listdir(state)) == [name], "a failed start removes the files it created"
    assert not daemon.running


def test_an_existing_session_is_kept_and_made_private(tmp_path):
    state = state_dir(tmp_path)
    session = state / "aria2.session"
    session.write_text("")
    session.chmod(0o644)
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state).start()
    try:
        assert stat.S_IMODE(session.stat().st_mode) == 0o600
    finally:
        daemon.stop()
    assert session.exists(), "the session persists across restarts of the same state_dir"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o755])
def test_a_state_dir_open_to_others_is_refused_with_the_fix(tmp_path, mode):
    state = state_dir(tmp_path)
    state.chmod(mode)
    with pytest.raises(Aria2InputError, match="chmod 700"):
        Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)
    state.chmod(0o700)
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)
    state.chmod(mode)  # changed after construction: start() looks again
    with pytest.raises(Aria2InputError, match="chmod 700"):
        daemon.start()
    assert os.listdir(state) == [] and not daemon.running


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory to another user")
def test_a_state_dir_of_another_user_is_refused(tmp_path):
    state = state_dir(tmp_path)
    os.chown(state, 65534, 65534)
    with pytest.raises(Aria2InputError, match="another user"):
        Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)


def test_a_failed_start_removes_what_it_created(tmp_path, private_tmp):
    bad = {"max-tries": "not-a-number"}
    # a private folder: entirely
    with pytest.raises(Aria2DaemonError):
        Aria2Daemon(download_dir=tmp_path / "dl", options=bad).start()
    assert private_dirs(private_tmp) == []
    # a caller's folder made by start(): removed; an existing one: only the files start() made
    made = tmp_path / "made-by-start"
    with pytest.raises(Aria2DaemonError):
        Aria2Daemon(download_dir=tmp_path / "dl", state_dir=made, options=bad).start()
    assert not made.exists()
    state = state_dir(tmp_path)
    (state / "aria2.session").write_text("")
    (state / "mine.txt").write_text("x")
    with pytest.raises(Aria2DaemonError):
        Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state, options=bad).start()
    assert sorted(os.listdir(state)) == ["aria2.session", "mine.txt"]


# -- 10.3 credentials at rest and in what we quote --------------------------------------------------


def test_log_tail_and_daemon_errors_quote_no_credentials(tmp_path):
    state = state_dir(tmp_path)
    closed_port = free_port()
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state, options={"max-tries": 1}).start()
    secret = daemon.secret
    try:
        with open(state / "aria2c.log", "a") as log:  # what a careless log line would quote
            log.write(f"rpc-secret={secret} token:{secret}\nAuthorization: Bearer tok-abc123\n")
        probe = Transport(daemon.rpc_url, secret, max_retries=0)
        try:  # aria2c itself logs the URI, password included, when the download fails
            probe.call("aria2.addUri", [[f"http://user:pw-xyz789@127.0.0.1:{closed_port}/x"]])
        finally:
            probe.close()
        wait_for(lambda: "pw-xyz789" in (state / "aria2c.log").read_text(), what="aria2c to log the URI")
        tail = daemon.log_tail()
        assert "Download aborted" in tail and "user:***@127.0.0.1" in tail
        for credential in ("pw-xyz789", "tok-abc123", secret):
            assert credential not in tail
    finally:
        daemon.stop()
    # A start that fails quotes the log's tail in its message.
    again = WrongConfig(secret=secret, download_dir=tmp_path / "dl", state_dir=state, startup_timeout=8)
    with pytest.raises(Aria2DaemonError) as info:
        again.start()
    text = str(info.value)
    assert "aria2c said" in text and "user:***@" in text
    for credential in ("pw-xyz789", "tok-abc123", secret):
        assert credential not in text


# -- 10.4 secret format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [
        "s3cret\non-download-complete=/bin/touch",
        "s3cret\r\nx=y",
        "two words",
        "tab\there",
        "nul\0",
        "del\x7f",
        "\u2028line",
    ],
)
def test_a_secret_that_could_inject_config_lines_is_refused(tmp_path, secret):
    state = state_dir(tmp_path)
    with pytest.raises(Aria2InputError, match="whitespace or control") as info:
        Aria2Daemon(secret=secret, download_dir=tmp_path / "dl", state_dir=state)
    assert secret not in str(info.value)
    assert os.listdir(state) == []


def test_a_secret_of_printable_punctuation_still_works(tmp_path):
    secret = "p@ss#word=1;x/y"
    with Aria2Daemon(secret=secret, download_dir=tmp_path / "dl", state_dir=state_dir(tmp_path)) as daemon:
        probe = Transport(daemon.rpc_url, secret, max_retries=0)
        try:
            assert probe.call("aria2.getVersion")["version"]
        finally:
            probe.close()


# -- 11.8 an interrupted start leaves nothing ------------------------------------------------------


@pytest.mark.parametrize("where", ["private", "caller"])
def test_ctrl_c_during_the_readiness_wait_leaves_no_child_and_no_folder(
    tmp_path, private_tmp, monkeypatch, where
):
    pids = []

    class Interrupting(Transport):
        def call(self, *args, **kwargs):
            raise KeyboardInterrupt

    original = Aria2Daemon._wait_ready

    def spy(self):
        pids.append(self.pid)
        return original(self)

    monkeypatch.setattr(daemon_module, "Transport", Interrupting)
    monkeypatch.setattr(Aria2Daemon, "_wait_ready", spy)
    state = state_dir(tmp_path) if where == "caller" else None
    daemon = Aria2Daemon(download_dir=tmp_path / "dl", state_dir=state)
    try:
        with pytest.raises(KeyboardInterrupt):
            daemon.start()
        assert pids and not any(alive(pid) for pid in pids)
        assert private_dirs(private_tmp) == []
        if state is not None:
            assert os.listdir(state) == []
        assert not daemon.running
    finally:
        for pid in pids:
            kill_if_alive(pid)


def test_sigint_to_a_process_in_start_leaves_no_child_and_no_folder(tmp_path, private_tmp):
    """The real thing: SIGINT (Ctrl-C) reaches a process while it waits for aria2c."""
    script = (
        "import sys, tempfile, time\n"
        "tempfile.tempdir = sys.argv[1]\n"
        "from aria2_sync.daemon.process import Aria2Daemon\n"
        "original = Aria2Daemon._wait_ready\n"
        "def slow(self):\n"
        "    print(self.pid, self.state_dir, flush=True)\n"
        "    time.sleep(30)\n"
        "    return original(self)\n"
        "Aria2Daemon._wait_ready = slow\n"
        "try:\n"
        "    Aria2Daemon(download_dir=sys.argv[2]).start()\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n"
    )
    host = subprocess.Popen(
        [sys.executable, "-c", script, str(private_tmp), str(tmp_path / "dl")],
        stdout=subprocess.PIPE,
        text=True,
    )
    aria2c_pid = None
    try:
        first = host.stdout.readline().split()
        aria2c_pid, folder = int(first[0]), first[1]
        assert os.path.isdir(folder)
        host.send_signal(signal.SIGINT)
        out, _ = host.communicate(timeout=20)
        assert "interrupted" in out
        assert not alive(aria2c_pid) and not os.path.exists(folder)
        assert private_dirs(private_tmp) == []
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(5)
        kill_if_alive(aria2c_pid)


# -- 11.9 folders of owners that are gone ----------------------------------------------------------

HOST_SCRIPT = (
    "import sys, tempfile\n"
    "tempfile.tempdir = sys.argv[1]\n"
    "from aria2_sync.daemon.process import Aria2Daemon\n"
    "daemon = Aria2Daemon(download_dir=sys.argv[2]).start()\n"
    "print(daemon.pid, daemon.state_dir, flush=True)\n"
    "sys.stdin.read()\n"
    "daemon.stop()\n"
)


def start_host(private_tmp, tmp_path):
    """A process that starts a private daemon and then waits (as a web worker would)."""
    host = subprocess.Popen(
        [sys.executable, "-c", HOST_SCRIPT, str(private_tmp), str(tmp_path / "dl")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = host.stdout.readline().split()
    assert line, "the host process did not start its daemon"
    return host, int(line[0]), line[1]


def test_the_folder_of_a_host_stopped_by_sigterm_is_removed_by_the_next_daemon(tmp_path, private_tmp):
    host, aria2c_pid, folder = start_host(private_tmp, tmp_path)
    try:
        host.send_signal(signal.SIGTERM)  # what gunicorn, uwsgi and systemd do
        host.wait(10)
        wait_for(lambda: not alive(aria2c_pid), what="aria2c to follow its host (--stop-with-process)")
        assert os.path.isdir(folder), "nothing ran in the killed host: its folder is left"
        with Aria2Daemon(download_dir=tmp_path / "dl") as daemon:
            assert not os.path.exists(folder)
            assert private_dirs(private_tmp) == [os.path.basename(daemon.state_dir)]
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(5)
        kill_if_alive(aria2c_pid)


def test_the_sweep_never_removes_a_live_daemons_folder(tmp_path, private_tmp):
    host, aria2c_pid, folder = start_host(private_tmp, tmp_path)
    try:
        with (
            Aria2Daemon(download_dir=tmp_path / "dl") as first,
            Aria2Daemon(download_dir=tmp_path / "dl") as second,
        ):
            # the second start swept with the host's daemon and ours (same process) both live
            assert os.path.isdir(folder) and os.path.isfile(os.path.join(folder, "aria2.conf"))
            assert os.path.isdir(first.state_dir) and os.path.isdir(second.state_dir)
            assert alive(aria2c_pid)
        host.stdin.close()  # the host stops its daemon itself
        host.wait(15)
        assert host.returncode == 0 and not os.path.exists(folder)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(5)
        kill_if_alive(aria2c_pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder of another user")
def test_the_sweep_touches_only_our_unlocked_marked_real_folders(tmp_path, private_tmp):
    def folder(name, marker=True):
        path = private_tmp / name
        path.mkdir(mode=0o700)
        (path / "aria2.conf").write_text("rpc-secret=x\n")
        if marker:
            (path / OWNER_LOCK).write_text("1\n")
        return path

    orphan = folder(TEMP_PREFIX + "orphan")
    no_marker = folder(TEMP_PREFIX + "no-marker", marker=False)
    other_prefix = folder("someone-else")
    theirs = folder(TEMP_PREFIX + "theirs")
    os.chown(theirs, 65534, 65534)
    os.chown(theirs / OWNER_LOCK, 65534, 65534)
    marker_link = folder(TEMP_PREFIX + "marker-link", marker=False)
    (marker_link / OWNER_LOCK).symlink_to(orphan / OWNER_LOCK)
    real = folder("real-target")
    (private_tmp / (TEMP_PREFIX + "link")).symlink_to(real)

    assert sweep_module.sweep_orphaned_dirs(str(private_tmp)) == 1
    assert not orphan.exists()
    for kept in (no_marker, other_prefix, theirs, marker_link, real, private_tmp / (TEMP_PREFIX + "link")):
        assert os.path.lexists(kept), kept
    assert (real / OWNER_LOCK).exists() and (real / "aria2.conf").exists()


def test_a_private_folder_holds_its_owner_lock_while_the_daemon_lives(tmp_path, private_tmp):
    daemon = Aria2Daemon(download_dir=tmp_path / "dl").start()
    try:
        marker = os.path.join(daemon.state_dir, OWNER_LOCK)
        with open(marker) as handle:
            assert handle.read().strip() == str(os.getpid())
        assert stat.S_IMODE(os.stat(daemon.state_dir).st_mode) == 0o700
        assert sweep_module.sweep_orphaned_dirs(str(private_tmp)) == 0
        assert os.path.isdir(daemon.state_dir)
    finally:
        daemon.stop()
    assert private_dirs(private_tmp) == []


def test_socket_owner_proof_sees_a_foreign_listener(tmp_path):
    """The proof itself: our process's listener is ours, a child's is not."""
    if not ownership_module.can_prove_listener_owner():
        pytest.skip("no /proc")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        assert ownership_module.rpc_listener_owner(os.getpid(), port) == "none"
        sock.listen()
        assert ownership_module.rpc_listener_owner(os.getpid(), port) == "ours"
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert ownership_module.rpc_listener_owner(child.pid, port) == "foreign"
        finally:
            child.kill()
            child.wait(5)


def test_a_proc_that_does_not_tell_falls_back_instead_of_waiting_for_ever(monkeypatch):
    """A sandbox whose /proc lists no sockets must not make every start wait for a proof."""
    monkeypatch.setattr(ownership_module, "rpc_listener_owner", lambda pid, port: "none")
    assert ownership_module._proof_self_test() is False


def test_stop_interrupted_by_ctrl_c_still_ends_aria2c_and_removes_the_folder(
    tmp_path, private_tmp, monkeypatch
):
    daemon = Aria2Daemon(download_dir=tmp_path / "dl").start()
    pid, folder = daemon.pid, daemon.state_dir
    original = daemon_module._wait_exit

    def interrupted(process, timeout):
        raise KeyboardInterrupt

    monkeypatch.setattr(daemon_module, "_wait_exit", interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            daemon.stop()
        monkeypatch.setattr(daemon_module, "_wait_exit", original)
        wait_for(lambda: not alive(pid), what="aria2c to be gone")
        assert not os.path.exists(folder) and not daemon.running
    finally:
        kill_if_alive(pid)


def test_a_random_secret_can_be_passed_as_a_command_line_word():
    # token_urlsafe begins with "-" one time in 64: argparse then takes it for an option.
    secrets = {Aria2Daemon().secret for _ in range(300)}
    assert len(secrets) == 300
    assert all(len(s) >= 32 and s[0].isalnum() and s.isascii() for s in secrets)
