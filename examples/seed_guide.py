"""The seed guide's examples, synchronous: the guide's code with the ``await``s removed.

Each function is one example of the guide, kept as close to its text as Python allows; the
only additions are parameters for the daemon's address and secret and for the URLs, so that the
test suite can run them against a real aria2c. ``print`` is the examples' own output.

    python examples/seed_guide.py URL [URL ...]     # runs the batch scenario (exit code 0/1)
"""

import sys
import time

from aria2_sync import Aria2Client


def basic_usage(url, save_path, rpc_url="http://localhost:6800/jsonrpc", rpc_secret=None, poll=2):
    """基本用法: add a download and watch it until it is complete."""
    client = Aria2Client(
        rpc_url=rpc_url,
        rpc_secret=rpc_secret,
        max_retries=3,
        retry_delay=1.0,
        auto_restart_failed=True,
        verbose=True,
    )
    gid = client.add_download(url=url, save_path=save_path)
    while True:
        time.sleep(poll)
        progress = client.get_progress(gid)
        if progress:
            print(f"进度: {progress.progress_percent:.1f}%")
            print(f"状态: {progress.status}")
            if progress.status == "error":
                retry_info = client.get_retry_info(gid)
                print(f"重试次数: {retry_info['retry_count']}/{retry_info['max_retries']}")
                if not retry_info["can_retry"]:
                    break  # (the guide loops on; a script must not spin on a lost cause)
            if progress.status == "complete":
                print("下载完成!")
                break
    client.close()
    return progress


def batch_download_with_retry(
    urls_with_paths, rpc_url="http://localhost:6800/jsonrpc", rpc_secret=None, poll=5
):
    """批量下载场景: a batch, watched until it is completed, restarting failures on the way."""
    client = Aria2Client(
        rpc_url=rpc_url,
        rpc_secret=rpc_secret,
        max_retries=5,
        auto_restart_failed=True,
    )
    batch_id = client.add_batch_downloads(urls_with_paths)
    while True:
        time.sleep(poll)
        batch_progress = client.get_batch_progress(batch_id)
        if batch_progress:
            print(f"总进度: {batch_progress.progress_percent:.1f}%")
            print(f"成功: {batch_progress.completed_count}")
            print(f"失败: {batch_progress.failed_count}")
            print(f"活跃: {batch_progress.active_count}")
            if batch_progress.failed_count > 0:
                client.restart_all_failed_downloads()
            if batch_progress.is_completed:
                break
    client.close()
    return batch_progress


def manual_restart(url, save_path, rpc_url="http://localhost:6800/jsonrpc", rpc_secret=None, options=None):
    """禁用自动重启: check a failure yourself and restart it."""
    client = Aria2Client(rpc_url=rpc_url, rpc_secret=rpc_secret, auto_restart_failed=False)
    gid = client.add_download(url, save_path, options)
    restarted = False
    for _ in range(200):
        progress = client.get_progress(gid, auto_restart=False)
        if progress and progress.status == "error":
            if progress.error_code == "1":  # 网络错误
                restarted = client._restart_failed_download(gid)
            break
        time.sleep(0.05)
    client.close()
    return gid, progress, restarted


def connection_error_handling(url, path, rpc_url="http://localhost:6800/jsonrpc", rpc_secret=None):
    """连接错误处理: tell an unreachable daemon from other failures by the word "connection"."""
    client = Aria2Client(rpc_url=rpc_url, rpc_secret=rpc_secret, max_retries=1, retry_delay=0.1)
    try:
        gid = client.add_download(url, path)
    except Exception as e:
        if "connection" in str(e).lower():
            print("❌ 无法连接到 Aria2 服务,请检查:")
            print("  1. aria2c 是否正在运行")
            print("  2. RPC 端口是否正确 (默认 6800)")
            print("  3. 防火墙设置")
            return "connection"
        print(f"❌ 下载失败: {e}")
        return "other"
    finally:
        client.close()
    return gid


def retries_exhausted(client, gid):
    """重试次数耗尽处理: report a download whose restarts are spent."""
    progress = client.get_progress(gid)
    retry_info = client.get_retry_info(gid)
    if progress and progress.status == "error":
        if not retry_info["can_retry"]:
            print(f"❌ 任务已达最大重试次数 ({retry_info['max_retries']})")
            print(f"URL: {retry_info['url']}")
            print(f"错误: {progress.error_message}")
            return True
    return False


def main(argv):
    """A cron-friendly run of the batch scenario: exit 0 if every file arrived, else 1."""
    from aria2_sync import Aria2Daemon

    urls = argv[1:]
    if not urls:
        print(__doc__, file=sys.stderr)
        return 2
    with Aria2Daemon() as daemon:
        progress = batch_download_with_retry(
            [(url, None) for url in urls], rpc_url=daemon.rpc_url, rpc_secret=daemon.secret, poll=1
        )
    return 0 if progress.failed_count == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
