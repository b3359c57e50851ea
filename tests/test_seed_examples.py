"""Every example of the seed guide runs against the library (awaits removed), on a real aria2c."""

from __future__ import annotations

import socket

from examples import seed_guide
from tests.conftest import GIVE_UP_AT_ONCE, wait_for
from tests.support.fault_server import ResetAfter, Status


def test_basic_usage(daemon, fault_server, tmp_path, capsys):
    url = fault_server.add_file("large-file.zip", size=2_000_000)
    fault_server.add_faults("large-file.zip", ResetAfter(500_000))
    progress = seed_guide.basic_usage(
        url, str(tmp_path / "large-file.zip"), daemon.rpc_url, daemon.secret, poll=0.1
    )
    assert progress.status == "complete"
    assert (tmp_path / "large-file.zip").read_bytes() == fault_server.content("large-file.zip")
    out = capsys.readouterr()
    assert "下载完成!" in out.out
    assert "[Aria2Client " in out.err and "added download" in out.err


def test_batch_download_with_retry(daemon, fault_server, tmp_path, capsys):
    items = []
    for i in range(3):
        url = fault_server.add_file(f"file{i + 1}.zip", size=100_000)
        items.append((url, str(tmp_path / f"file{i + 1}.zip")))
    fault_server.add_faults("file2.zip", Status(503))
    items.append((fault_server.base_url + "/gone.zip", str(tmp_path / "gone.zip")))
    progress = seed_guide.batch_download_with_retry(items, daemon.rpc_url, daemon.secret, poll=0.1)
    assert progress.is_completed and progress.completed_count == 3 and progress.failed_count == 1
    assert "成功: 3" in capsys.readouterr().out


def test_manual_restart_of_a_network_error(daemon, fault_server, tmp_path):
    url = fault_server.add_file("manual.zip", size=100_000)
    fault_server.add_faults("manual.zip", ResetAfter(10_000))
    gid, progress, restarted = seed_guide.manual_restart(
        url, str(tmp_path / "manual.zip"), daemon.rpc_url, daemon.secret, GIVE_UP_AT_ONCE
    )
    assert progress.error_code == "1" and restarted is True


def test_connection_error_handling(tmp_path, capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = seed_guide.connection_error_handling(
        "http://127.0.0.1:1/file.zip", str(tmp_path / "f.zip"), f"http://127.0.0.1:{port}/jsonrpc"
    )
    assert outcome == "connection"
    assert "无法连接到 Aria2 服务" in capsys.readouterr().out


def test_retries_exhausted(client_factory, fault_server, tmp_path, capsys):
    client = client_factory(max_retries=1, retry_delay=0.01)
    url = fault_server.add_file("flaky.zip", size=100_000)
    fault_server.set_default_fault("flaky.zip", ResetAfter(1000))
    gid = client.add_download(url, str(tmp_path / "flaky.zip"), GIVE_UP_AT_ONCE)
    wait_for(lambda: client.get_progress(gid).gave_up_reason, what="the budget to be spent")
    assert seed_guide.retries_exhausted(client, gid) is True
    assert "任务已达最大重试次数 (1)" in capsys.readouterr().out
