"""``aria2_sync.progress``: live bars for futures, a batch or a GID, against a real aria2c."""

from __future__ import annotations

import io
import time

import pytest

import aria2_sync
from aria2_sync import Aria2ConnectionError, Aria2InputError, BatchProgress, progress
from aria2_sync.ui import progress_display
from tests.conftest import GIVE_UP_AT_ONCE
from tests.support.fault_server import ResetAfter, Slow

pytestmark = pytest.mark.integration


def test_it_is_exported():
    assert aria2_sync.progress is progress and "progress" in aria2_sync.__all__


def test_a_single_future_with_a_client_shows_bytes(client, fault_server, tmp_path):
    url = fault_server.add_file("one.bin", size=300_000)
    future = client.submit(url, str(tmp_path / "one.bin"))
    out = io.StringIO()
    summary = progress(future, client, interval=0.05, stream=out)
    assert isinstance(summary, BatchProgress)
    assert summary.is_completed and summary.batch_id is None
    assert (summary.completed_count, summary.failed_count, summary.total_count) == (1, 0, 1)
    (item,) = summary.downloads
    assert item.gid == future.gid and item.status == "complete"
    assert item.total_length == item.completed_length == 300_000
    assert item.file_path == str(tmp_path / "one.bin")
    text = out.getvalue()
    assert "total" in text and "one.bin" in text and "1/1 files" in text
    assert "293k/293k" in text  # bytes, 1024-based: the client read them from the daemon


def test_futures_without_a_client_count_finished_downloads(client, fault_server, tmp_path):
    futures = [
        client.submit(fault_server.add_file(f"f{i}.bin", size=50_000 * (i + 1)), str(tmp_path / f"f{i}.bin"))
        for i in range(3)
    ]
    out = io.StringIO()
    summary = progress(futures, interval=0.05, stream=out)
    assert summary.is_completed and summary.completed_count == 3 and summary.total_count == 3
    assert [d.gid for d in summary.downloads] == [f.gid for f in futures]
    assert [d.total_length for d in summary.downloads] == [50_000, 100_000, 150_000]
    assert [d.file_path for d in summary.downloads] == [str(tmp_path / f"f{i}.bin") for i in range(3)]
    text = out.getvalue()
    assert "downloads" in text and "3/3" in text and "file" in text
    assert "total" not in text  # no byte bars: without a client nothing knows the bytes


def test_a_restarted_download_and_a_failed_one_are_reported(client, fault_server, tmp_path):
    flaky = fault_server.add_file("flaky.bin", size=600_000)
    fault_server.add_faults("flaky.bin", ResetAfter(200_000))
    good = client.submit(flaky, str(tmp_path / "flaky.bin"), GIVE_UP_AT_ONCE)
    missing = client.submit(
        fault_server.base_url + "/missing.bin", str(tmp_path / "missing.bin"), GIVE_UP_AT_ONCE
    )
    out = io.StringIO()
    summary = progress([good, missing], client=client, interval=0.05, stream=out)
    assert summary.is_completed
    assert (summary.completed_count, summary.failed_count) == (1, 1)
    restarted, failed = summary.downloads
    assert restarted.status == "complete" and restarted.retry_count == 1
    assert failed.status == "error" and failed.error_code == "3"
    assert "not restartable" in failed.gave_up_reason
    assert good.result().retry_count == 1
    assert (tmp_path / "flaky.bin").read_bytes() == fault_server.content("flaky.bin")
    assert "1 failed" in out.getvalue()


def test_a_batch_id_with_its_client(client, fault_server, tmp_path):
    items = [
        (fault_server.add_file(f"b{i}.bin", size=100_000), str(tmp_path / f"b{i}.bin")) for i in range(4)
    ]
    items.append((fault_server.base_url + "/nope.bin", str(tmp_path / "nope.bin")))
    batch_id = client.add_batch_downloads(items, options=GIVE_UP_AT_ONCE)
    out = io.StringIO()
    summary = progress(batch_id, client, interval=0.05, stream=out)
    assert summary.batch_id == batch_id and summary.is_completed
    assert (summary.completed_count, summary.failed_count, summary.total_count) == (4, 1, 5)
    assert summary == client.get_batch_progress(batch_id)
    assert "4/5 files" in out.getvalue()


def test_a_gid_with_its_client(client, fault_server, tmp_path):
    gid = client.add_download(fault_server.add_file("g.bin", size=200_000), str(tmp_path / "g.bin"))
    out = io.StringIO()
    summary = progress(gid, client=client, interval=0.05, stream=out)
    assert summary.is_completed and summary.batch_id is None
    assert [d.gid for d in summary.downloads] == [gid]
    assert summary.downloads[0].status == "complete"
    assert "g.bin" in out.getvalue()


def test_the_timeout_returns_what_it_has_and_leaves_the_download_running(client, fault_server, tmp_path):
    url = fault_server.add_file("slow.bin", size=2_000_000)
    fault_server.set_default_fault("slow.bin", Slow(100_000))
    future = client.submit(url, str(tmp_path / "slow.bin"))
    out = io.StringIO()
    started = time.monotonic()
    summary = progress([future], client, interval=0.1, timeout=0.6, stream=out)
    # It returned at its timeout, not at the end of the download (20 s away at this rate), and
    # not before its timeout (a lower bound a slow machine cannot break; the per-test timeout
    # bounds a display that never returns).
    assert time.monotonic() - started >= 0.6
    assert not summary.is_completed and summary.completed_count == 0
    assert summary.active_count + summary.waiting_count == 1
    assert not future.done()  # only the display stopped
    quick = progress(future, timeout=0, stream=io.StringIO())
    assert not quick.is_completed and quick.waiting_count == 1
    assert future.cancel()


def test_without_tqdm_one_status_line_is_rewritten(client, fault_server, tmp_path, monkeypatch):
    monkeypatch.setattr(progress_display, "tqdm_available", lambda: False)
    future = client.submit(fault_server.add_file("line.bin", size=100_000), str(tmp_path / "line.bin"))
    out = io.StringIO()
    summary = progress(future, client, interval=0.05, stream=out)
    assert summary.is_completed
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "1/1 files, 97.7 KiB/97.7 KiB (100%)" in text
    counted = io.StringIO()
    progress(future, stream=counted)
    assert counted.getvalue().strip() == "1/1 downloads done"


@pytest.mark.parametrize("failed_reads", [2, 1000])
def test_a_daemon_that_cannot_be_read_does_not_end_the_display(
    client, fault_server, tmp_path, monkeypatch, failed_reads
):
    url = fault_server.add_file("o.bin", size=200_000)
    fault_server.set_default_fault("o.bin", Slow(500_000))
    batch_id = client.add_batch_downloads([(url, str(tmp_path / "o.bin"))])
    real = client.get_batch_progress
    calls = []

    def flaky_read(batch):
        calls.append(batch)
        if len(calls) <= failed_reads:
            raise Aria2ConnectionError(client.rpc_url, "Connection refused")
        return real(batch)

    monkeypatch.setattr(client, "get_batch_progress", flaky_read)
    summary = progress(batch_id, client, interval=0.05, stream=io.StringIO())
    assert len(calls) >= 3
    # Either way the futures (resolved by the monitor) end it, with the right outcome.
    assert summary.is_completed and summary.completed_count == 1 and summary.batch_id == batch_id
    if failed_reads == 2:
        assert summary == real(batch_id)  # the library's own summary, once the daemon answers
    else:
        assert summary.downloads[0].file_path == str(tmp_path / "o.bin")  # from the future's result


def test_an_empty_list_is_done_at_once():
    summary = progress([], stream=io.StringIO())
    assert summary.is_completed and summary.total_count == 0


def test_the_future_of_another_client_is_refused(client_factory, fault_server, tmp_path):
    one, other = client_factory(), client_factory()
    url = fault_server.add_file("x.bin", size=1_000_000)
    fault_server.set_default_fault("x.bin", Slow(200_000))
    future = one.submit(url, str(tmp_path / "x.bin"))
    with pytest.raises(Aria2InputError, match="not made by this client"):
        progress(future, other)
    future.cancel()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(target=42),
            "target must be a DownloadFuture, a list of DownloadFutures, a batch id or a GID, not int",
        ),
        (dict(target=b"abc"), "not bytes"),
        (dict(target={"a": 1}), "not dict"),
        (dict(target=[object()]), "item 0 of target must be a DownloadFuture"),
        (dict(target="0123456789abcdef"), "pass client="),
        (
            dict(target=[], client="http://127.0.0.1:6800/jsonrpc"),
            "client must be an Aria2Client or None, not str",
        ),
        (dict(target=[], interval=0), "interval must be > 0"),
        (dict(target=[], interval=True), "interval must be a finite number"),
        (dict(target=[], interval=float("nan")), "interval must be a finite number"),
        (dict(target=[], timeout=-1), "timeout must be >= 0"),
        (dict(target=[], timeout="5"), "timeout must be None or a finite number"),
        (dict(target=[], notebook="yes"), "notebook must be None, True or False"),
        (dict(target=[], stream=object()), "stream must be a text stream"),
    ],
)
def test_bad_arguments_are_refused_clearly(kwargs, message):
    with pytest.raises(Aria2InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        progress(**kwargs)


@pytest.mark.parametrize("name", ["no-such-batch", "0123456789abcdef"])
def test_unknown_batch_ids_and_gids_are_refused(client, name):
    with pytest.raises(Aria2InputError, match="neither a batch id nor a GID this client added"):
        progress(name, client)


def test_a_closed_client_is_refused(client_factory):
    client = client_factory()
    client.close()
    with pytest.raises(Aria2InputError, match="client is closed"):
        progress([], client)


def test_notebook_true_insists_on_widgets(monkeypatch):
    monkeypatch.setattr(progress_display, "ipywidgets_available", lambda: False)
    with pytest.raises(Aria2InputError, match="needs tqdm and ipywidgets"):
        progress([], notebook=True)
