"""Progress bars for downloads, with tqdm when it is installed and a plain line when it is not.

The display classes are used by the command line (bars on stderr). :func:`progress` is the
public entry point for everybody else, notebooks first: it shows live bars for futures, a batch
or a GID until every download has an outcome, then returns the final :class:`BatchProgress`.
With ``tqdm.auto`` the bars are widgets in Jupyter (when ipywidgets is installed) and text
elsewhere. tqdm is optional (``pip install 'aria2_sync[progress]'``): without it, a single status
line is rewritten in place, so everything works from a bare install.
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import math
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from .. import Aria2Client, DownloadFuture
from ..errors import Aria2ClosedError, Aria2ConnectionError, Aria2InputError, redact_url
from ..logs import logger
from ..models import BatchProgress, Progress
from .formatting import human_size, outcome_snapshot

__all__ = ["progress", "make_display", "NullDisplay", "LineDisplay", "TqdmDisplay"]

#: Per-file bars beyond this many downloads would flood a terminal; the total bar stays.
MAX_FILE_BARS = 8


def _finished_count(progress: BatchProgress) -> int:
    return progress.completed_count + progress.failed_count + progress.removed_count


def _notes(progress: BatchProgress) -> str:
    """``", 1 restarting, 2 failed"``: what needs a look, empty when nothing does."""
    return "".join(
        f", {count} {what}"
        for count, what in (
            (progress.retrying_count, "restarting"),
            (progress.failed_count, "failed"),
            (progress.removed_count, "cancelled"),
        )
        if count
    )


class NullDisplay:
    """Shows nothing (quiet runs, JSON output, stderr not a terminal)."""

    def update(self, progress: BatchProgress) -> None:
        pass

    def close(self) -> None:
        pass


class LineDisplay:
    """One status line, rewritten in place: the fallback without tqdm.

    ``by_count=True`` leaves bytes out: used when only the futures' outcomes are known (no
    client to ask the daemon for byte counts), where "0 B/0 B" would be a lie.
    """

    def __init__(self, stream: TextIO, by_count: bool = False) -> None:
        self.stream = stream
        self.by_count = by_count
        self._width = 0

    def update(self, progress: BatchProgress) -> None:
        if self.by_count:
            line = f"{_finished_count(progress)}/{progress.total_count} downloads done"
        else:
            line = (
                f"{progress.completed_count}/{progress.total_count} files, "
                f"{human_size(progress.completed_length)}/{human_size(progress.total_length)} "
                f"({progress.progress_percent:.0f}%), {human_size(progress.download_speed)}/s"
            )
        line += _notes(progress)
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self._width:
            self.stream.write("\n")
            self.stream.flush()


class TqdmDisplay:
    """A total bar plus one bar per file (for up to :data:`MAX_FILE_BARS` files).

    ``notebook`` picks the tqdm flavour: False the text bars of ``tqdm.tqdm`` (the command
    line), None ``tqdm.auto`` (widgets in Jupyter when ipywidgets is installed, text elsewhere),
    True the widgets of ``tqdm.notebook``. ``by_count=True`` shows a single bar counting
    finished downloads instead of bytes (see :class:`LineDisplay`). ``max_file_bars=0`` keeps
    only the total bar: text bars below the first redraw with cursor movements that a notebook's
    output area does not understand.
    """

    def __init__(
        self,
        stream: TextIO | None,
        notebook: bool | None = False,
        by_count: bool = False,
        max_file_bars: int = MAX_FILE_BARS,
    ) -> None:
        if notebook is None:
            from tqdm.auto import tqdm
        elif notebook:
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        self._tqdm = tqdm
        self._stream = stream
        self._by_count = by_count
        self._max_file_bars = max_file_bars
        self._total: Any = None
        self._bars: dict[str, Any] = {}

    def _bar(self, desc: str, position: int) -> Any:
        return self._tqdm(
            total=0,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            position=position,
            leave=True,
            file=self._stream,
            dynamic_ncols=True,
        )

    def update(self, progress: BatchProgress) -> None:
        if self._by_count:
            self._update_count(progress)
            return
        if self._total is None:
            self._total = self._bar("total", 0)
        self._set(
            self._total,
            progress.total_length,
            progress.completed_length,
            f"{progress.completed_count}/{progress.total_count} files{_notes(progress)}",
        )
        if progress.total_count > self._max_file_bars:
            return
        for index, item in enumerate(progress.downloads, start=1):
            bar = self._bars.get(item.gid)
            if bar is None:
                bar = self._bars[item.gid] = self._bar(self._name(item), index)
            self._set(bar, item.total_length, item.completed_length, self._state(item))

    def _update_count(self, progress: BatchProgress) -> None:
        if self._total is None:
            self._total = self._tqdm(
                total=progress.total_count,
                desc="downloads",
                unit="file",
                leave=True,
                file=self._stream,
                dynamic_ncols=True,
            )
        self._set(self._total, progress.total_count, _finished_count(progress), _notes(progress)[2:])

    @staticmethod
    def _name(item: Progress) -> str:
        uri = redact_url(item.files[0].uris[0]) if item.files and item.files[0].uris else item.gid
        path = item.file_path or uri  # (a URL without a path would show its password)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return name if len(name) <= 30 else name[:27] + "..."

    @staticmethod
    def _state(item: Progress) -> str:
        if item.gave_up_reason:
            return "failed"
        if item.restart_pending:
            return "restarting"
        if not item.retry_count:
            return item.status
        return f"{item.status} ({item.retry_count} restart{'s' if item.retry_count > 1 else ''})"

    @staticmethod
    def _set(bar: Any, total: int, done: int, postfix: str) -> None:
        if total and bar.total != total:
            bar.total = total
            # A tqdm.notebook bar draws a widget whose maximum follows ``total`` only through
            # reset(), which would also restart the clock: set the widget's maximum directly.
            container = getattr(bar, "container", None)
            if container is not None:
                widget = container.children[1]
                widget.max = total
                widget.bar_style = ""
        bar.n = min(done, total) if total else done
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in [*self._bars.values(), self._total]:
            if bar is not None:
                bar.close()


def tqdm_available() -> bool:
    return importlib.util.find_spec("tqdm") is not None


def ipywidgets_available() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def make_display(enabled: bool, stream: TextIO) -> Any:
    """The best display for a terminal stream: tqdm bars, else a status line; nothing if off."""
    if not enabled:
        return NullDisplay()
    return TqdmDisplay(stream) if tqdm_available() else LineDisplay(stream)


# -- progress(): live bars until every download has an outcome -------------------------------------


def progress(
    target: Any,
    client: Aria2Client | None = None,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    notebook: bool | None = None,
    stream: TextIO | None = None,
) -> BatchProgress:
    """Show live progress of downloads until each has an outcome; return the final summary.

    ``target`` is a :class:`DownloadFuture`, a list of them, a batch id (from
    ``add_batch_downloads``) or a GID (from ``add_download``); a batch id or a GID needs the
    ``client`` that added it. Returns a :class:`BatchProgress` whatever the target:
    ``completed_count``, ``failed_count``, ``is_completed``, and ``downloads`` with one
    :class:`Progress` each (``retry_count``, ``gave_up_reason``, ``file_path``...). Its
    ``batch_id`` is the batch's, or None for futures and GIDs. After ``timeout`` seconds it
    returns what it has (``is_completed`` False); the downloads go on. ``interval`` is how
    often the bars are redrawn.

    Why it is built this way:

    * It blocks and is synchronous, on purpose. The client's monitor thread resolves the
      futures; this function only waits on them (``concurrent.futures.wait``) and redraws
      between waits, always on the calling thread. So it needs no event loop and works the
      same in a script, a cron job and a Jupyter cell (no ``await``, no ``nest_asyncio``), and
      ipywidgets are only touched from the thread that shows them. Interrupting the cell (or
      Ctrl-C) stops the display, not the downloads.
    * A :class:`DownloadFuture` knows its GID but not its client, so byte counts need
      ``client=``: with it, the bars show bytes per file and in total, read in one round trip
      per redraw however many downloads there are. Without it, only the futures' outcomes are
      known, and one bar counts finished downloads (done/total).
    * A daemon that cannot be reached for a moment does not end the display: the bars keep
      their last values, and the futures (resolved by the monitor, which rides out outages)
      still say when everything is done.

    ``notebook``: None uses ``tqdm.auto`` (widget bars in Jupyter when ipywidgets is installed,
    text bars elsewhere); False always text bars; True insists on widget bars (needs tqdm and
    ipywidgets). Text bars in Jupyter are a single total bar: the output area cannot redraw
    stacked bars. Without tqdm, one status line is rewritten instead. ``stream`` is where text
    bars go (default: stderr); giving one means text bars unless ``notebook=True``.

    Raises :class:`Aria2InputError` for a wrong argument, before anything is shown.
    """
    _check_arguments(client, interval, timeout, notebook, stream)
    futures, batch_id = _resolve_target(target, client)
    watch = _Watch(futures, client, batch_id)
    display = _live_display(notebook, stream, by_count=client is None)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            pending = [future for future in futures if not future.done()]
            summary = watch.snapshot()
            display.update(summary)
            if not pending:
                return summary
            wait_for = interval
            if deadline is not None:
                wait_for = min(interval, deadline - time.monotonic())
                if wait_for <= 0:
                    return summary
            concurrent.futures.wait(pending, timeout=wait_for)
    finally:
        display.close()


def _check_arguments(client: Any, interval: Any, timeout: Any, notebook: Any, stream: Any) -> None:
    if client is not None and not isinstance(client, Aria2Client):
        raise Aria2InputError(f"client must be an Aria2Client or None, not {type(client).__name__}")
    if client is not None and client.closed:
        raise Aria2InputError("client is closed: pass an open client (or none, for futures)")
    for name, value, allow_none, minimum in (
        ("interval", interval, False, None),
        ("timeout", timeout, True, 0),
    ):
        if value is None and allow_none:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            kind = "None or a finite number of seconds" if allow_none else "a finite number of seconds"
            raise Aria2InputError(f"{name} must be {kind}, not {value!r:.40}")
        if minimum is None and value <= 0:
            raise Aria2InputError(f"{name} must be > 0 seconds, got {value!r}")
        if minimum is not None and value < minimum:
            raise Aria2InputError(f"{name} must be >= 0 seconds, got {value!r}")
    if notebook is not None and not isinstance(notebook, bool):
        raise Aria2InputError(f"notebook must be None, True or False, not {notebook!r:.40}")
    if stream is not None and not callable(getattr(stream, "write", None)):
        raise Aria2InputError(f"stream must be a text stream with write(), not {type(stream).__name__}")


def _resolve_target(target: Any, client: Aria2Client | None) -> tuple[list[DownloadFuture], str | None]:
    """The futures to wait for, and the batch id when the target is a batch."""
    if isinstance(target, DownloadFuture):
        futures = [target]
    elif isinstance(target, str):
        if client is None:
            raise Aria2InputError(
                f"{target!r:.40} is a batch id or a GID: pass client= (the client that added it)"
            )
        try:
            return client.batch_futures(target), target
        except Aria2InputError:
            pass
        try:
            futures = [client.future(target)]
        except Aria2InputError:
            raise Aria2InputError(
                f"{target!r:.40} is neither a batch id nor a GID this client added "
                "(or it finished long ago and was forgotten)"
            ) from None
    elif isinstance(target, (bytes, bytearray, Mapping)) or not isinstance(target, Iterable):
        raise Aria2InputError(
            "target must be a DownloadFuture, a list of DownloadFutures, a batch id or a GID, "
            f"not {type(target).__name__}"
        )
    else:
        futures = list(target)
        for index, item in enumerate(futures):
            if not isinstance(item, DownloadFuture):
                raise Aria2InputError(
                    f"item {index} of target must be a DownloadFuture (from client.submit), "
                    f"not {type(item).__name__}"
                )
    if client is not None:
        for future in futures:
            if not future.done() and client.get_retry_info(future.gid) is None:
                raise Aria2InputError(
                    f"the future of GID {future.gid} was not made by this client: pass the "
                    "client that submitted it, or no client (a bar counting finished downloads)"
                )
    return futures, None


def _live_display(notebook: bool | None, stream: TextIO | None, by_count: bool) -> Any:
    if notebook:
        if not (tqdm_available() and ipywidgets_available()):
            raise Aria2InputError(
                "notebook=True needs tqdm and ipywidgets: pip install 'aria2_sync[progress]' ipywidgets "
                "(or leave notebook=None for text bars)"
            )
        return TqdmDisplay(stream, notebook=True, by_count=by_count)
    if not tqdm_available():
        return LineDisplay(stream or sys.stderr, by_count=by_count)
    in_jupyter = _in_jupyter_kernel()
    if notebook is False or stream is not None or (in_jupyter and not ipywidgets_available()):
        # Text bars. Jupyter's output area handles "\r" but not the cursor-up escapes that
        # stacked bars redraw with (every redraw would stay on screen): the total bar only.
        one_bar = in_jupyter and stream is None
        return TqdmDisplay(
            stream or sys.stderr,
            notebook=False,
            by_count=by_count,
            max_file_bars=0 if one_bar else MAX_FILE_BARS,
        )
    return TqdmDisplay(None, notebook=None, by_count=by_count)  # widgets in Jupyter


def _in_jupyter_kernel() -> bool:
    """Running in a Jupyter kernel (the test ``tqdm.auto`` makes too)."""
    return "ipykernel.zmqshell" in sys.modules


class _Watch:
    """The summary of the downloads behind ``futures``: the client's own count when there is a
    client (one round trip, the same rules as a batch), else what the futures say."""

    def __init__(
        self, futures: list[DownloadFuture], client: Aria2Client | None, batch_id: str | None
    ) -> None:
        self.futures = futures
        self.client = client
        self.batch_id = batch_id
        self._last: BatchProgress | None = None

    def snapshot(self) -> BatchProgress:
        if self.client is not None:
            try:
                if self.batch_id is not None:
                    self._last = self.client.get_batch_progress(self.batch_id) or self._last
                else:
                    self._last = self.client.get_downloads_progress([f.gid for f in self.futures])
            except Aria2ConnectionError as error:
                logger.debug(
                    "progress display: cannot read the daemon now (%s); keeping the last values", error
                )
            except Aria2ClosedError:
                logger.debug("progress display: the client was closed; following the futures only")
                self.client = None
            if self._last is not None and (self.client is not None or self._last.is_completed):
                return self._last
        return self._by_futures()

    def _by_futures(self) -> BatchProgress:
        """Count by the futures' outcomes alone (no client: no byte counts)."""
        counts = dict.fromkeys(("completed", "failed", "removed", "waiting"), 0)
        downloads = []
        for future in self.futures:
            kind, item = (
                outcome_snapshot(future)
                if future.done()
                else ("waiting", Progress(gid=future.gid, status="waiting"))
            )
            counts[kind] += 1
            downloads.append(item)
        return BatchProgress(
            batch_id=self.batch_id,
            downloads=tuple(downloads),
            completed_count=counts["completed"],
            failed_count=counts["failed"],
            waiting_count=counts["waiting"],
            removed_count=counts["removed"],
            is_completed=all(future.done() for future in self.futures),
        )
