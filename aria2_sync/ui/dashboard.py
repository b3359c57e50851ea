"""A live view of downloads in a notebook cell, with pause, resume and cancel buttons.

:func:`dashboard` shows the downloads of a batch, of futures or GIDs, or everything the daemon
holds, one row each (name, bar, bytes, speed, state, buttons), refreshed every ``interval``
seconds, with "pause all" and "resume all" above. It is built on ipywidgets, an optional extra
(``pip install 'aria2_sync[notebook]'``); without it, or outside a Jupyter kernel, it falls back
to the blocking progress bars of :func:`aria2_sync.progress`.

Why it is built this way:

* It returns at once, unlike :func:`~aria2_sync.ui.progress_display.progress`. A button's click
  reaches the kernel as a message that is handled only between cells: a cell that blocked until
  the downloads end would never see a click. So the refreshing runs on a thread that the
  :class:`Dashboard` starts, owns and stops (:meth:`Dashboard.close`, the Stop button, the
  client closing, every download of the target having an outcome, or ``timeout``).
* A click handler touches neither the daemon nor a widget: it queues the action and wakes the
  thread, which carries it out before its next refresh. A daemon slow to answer never freezes
  the kernel, and the widget tree changes under one lock (ipywidgets sends each change as a
  message that ipykernel accepts from any thread).
* What it reads is bounded: one round trip per refresh (the batch's or the GIDs' progress, or
  ``list_downloads``), at most ``max_rows`` rows.
"""

from __future__ import annotations

import collections
import importlib
import itertools
import math
import threading
import time
from typing import Any, Callable

import attrs

from .. import Aria2Client, DownloadFuture
from ..errors import Aria2ClosedError, Aria2ConnectionError, Aria2Error, Aria2InputError
from ..logs import logger
from ..models import BatchProgress, Progress
from .formatting import human_size
from .progress_display import TqdmDisplay, _in_jupyter_kernel, _live_display, _resolve_target, progress

__all__ = ["dashboard", "Dashboard", "DashboardRow", "INSTALL_HINT"]

#: What the fallback's log line tells the user to install.
INSTALL_HINT = "pip install 'aria2_sync[notebook]'"

#: How long :meth:`Dashboard.close` waits for its thread (one round trip to the daemon, at most).
CLOSE_WAIT = 10.0

#: The states in which a download can still be paused, resumed or cancelled.
_PAUSABLE = ("active", "waiting")
_UNFINISHED = ("active", "waiting", "paused")

_numbers = itertools.count(1)


def dashboard(
    client: Aria2Client,
    target: Any = None,
    *,
    interval: float = 1.0,
    timeout: float | None = None,
    max_rows: int = 30,
    display: bool = True,
) -> Dashboard:
    """Show a live view of downloads with pause/resume/cancel buttons; return at once.

    ``target``: None for everything the daemon holds (``client.list_downloads()``, not only
    this client's), or a :class:`DownloadFuture`, a list of them, a batch id or a GID, as for
    :func:`aria2_sync.progress`. The view is refreshed every ``interval`` seconds by the
    returned :class:`Dashboard`'s own thread, which stops on :meth:`Dashboard.close`, on the
    Stop button, when the client is closed, after ``timeout`` seconds, and (for a target) once
    each of its downloads has an outcome. "Pause all" pauses every download of the daemon
    (``client.pause_all()``) when the view is the daemon's, and the shown unfinished ones when
    it is a target's. At most ``max_rows`` rows are shown (the daemon lists active downloads
    first).

    ``display=True`` shows the widget in the cell (``IPython.display``); with False it is only
    built: show ``Dashboard.widget`` yourself (the tests build it without a frontend).

    Without ipywidgets (or, with ``display=True``, outside a Jupyter kernel) there are no
    buttons: one log line says why (and what to install), and this blocks showing the
    progress bars of :func:`aria2_sync.progress` until every download has an outcome (for the
    daemon's view: until none is active or waiting) or ``timeout``; the returned dashboard is
    closed then, with the final counts in :attr:`Dashboard.last`.

    Raises :class:`Aria2InputError` for a wrong argument, before anything is shown.
    """
    if not isinstance(client, Aria2Client):
        raise Aria2InputError(f"client must be an Aria2Client, not {type(client).__name__}")
    if client.closed:
        raise Aria2InputError("client is closed: pass an open client")
    _check_numbers(interval, timeout, max_rows)
    if not isinstance(display, bool):
        raise Aria2InputError(f"display must be True or False, not {display!r:.40}")
    futures, batch_id = (None, None) if target is None else _resolve_target(target, client)
    widgets = _load_widgets()
    if widgets is None or (display and not _in_jupyter_kernel()):
        if widgets is None:
            logger.warning("the dashboard needs ipywidgets (%s); showing progress bars instead", INSTALL_HINT)
        else:
            logger.warning("the dashboard's buttons need a Jupyter kernel; showing progress bars instead")
        board = Dashboard(client, futures, batch_id, None, interval, max_rows)
        board._request_stop("no widgets: progress bars were shown instead")
        board.last = _bars(client, target, futures, interval, timeout)
        return board
    board = Dashboard(client, futures, batch_id, widgets, interval, max_rows)
    if display:
        # (IPython comes with ipywidgets; imported by name, its display() has no annotations)
        importlib.import_module("IPython.display").display(board.widget)
    board.start(timeout)
    return board


def _check_numbers(interval: Any, timeout: Any, max_rows: Any) -> None:
    for name, value, allow_none in (("interval", interval, False), ("timeout", timeout, True)):
        if value is None and allow_none:
            continue
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        if bad or value < 0 or (value == 0 and not allow_none):
            kind = "None or a finite number of seconds >= 0" if allow_none else "a number of seconds > 0"
            raise Aria2InputError(f"{name} must be {kind}, not {value!r:.40}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise Aria2InputError(f"max_rows must be an int >= 1, not {max_rows!r:.40}")


def _load_widgets() -> Any:
    """The ipywidgets module, or None when it cannot be imported (the extra is not installed)."""
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def _summary(downloads: list[Progress]) -> BatchProgress:
    """The daemon's downloads counted like a batch (for the header and the fallback's bars)."""
    count = collections.Counter(item.status for item in downloads)
    return BatchProgress(
        batch_id=None,
        downloads=tuple(downloads),
        completed_count=count["complete"],
        failed_count=count["error"],
        active_count=count["active"],
        waiting_count=count["waiting"],
        paused_count=count["paused"],
        removed_count=count["removed"],
        is_completed=not (count["active"] or count["waiting"]),
    )


def _bars(
    client: Aria2Client,
    target: Any,
    futures: list[DownloadFuture] | None,
    interval: float,
    timeout: float | None,
) -> BatchProgress:
    """The fallback: :func:`progress` for a target; the same bars over ``list_downloads`` for
    the daemon, until none is active or waiting."""
    if futures is not None:
        return progress(target, client, interval=interval, timeout=timeout)
    display = _live_display(None, None, by_count=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    last = _summary([])
    stop = threading.Event()  # (never set: a bounded wait between redraws, as progress() has)
    try:
        while True:
            try:
                last = _summary(client.list_downloads())
            except Aria2ClosedError:
                return last
            except Aria2ConnectionError as error:
                logger.debug("dashboard bars: cannot read the daemon now (%s)", error)
            display.update(last)
            if last.is_completed or (deadline is not None and time.monotonic() >= deadline):
                return last
            stop.wait(interval if deadline is None else min(interval, deadline - time.monotonic()))
    finally:
        display.close()


class DashboardRow:
    """The widgets of one download's row: ``name``, ``bar``, ``text`` (bytes, speed) and
    ``state`` labels, and the ``pause``, ``resume`` and ``cancel`` buttons."""

    def __init__(self, widgets: Any, gid: str, act: Callable[[str, str], None]) -> None:
        self.gid = gid
        self.name = widgets.Label(layout=widgets.Layout(width="220px"))
        self.bar = widgets.FloatProgress(min=0.0, max=100.0, layout=widgets.Layout(width="200px"))
        self.text = widgets.Label(layout=widgets.Layout(width="260px"))
        self.state = widgets.Label(layout=widgets.Layout(width="160px"))
        self.pause = widgets.Button(icon="pause", tooltip=f"pause {gid}", layout=widgets.Layout(width="36px"))
        self.resume = widgets.Button(
            icon="play", tooltip=f"resume {gid}", layout=widgets.Layout(width="36px")
        )
        self.cancel = widgets.Button(
            icon="times", tooltip=f"cancel {gid} (its files stay)", layout=widgets.Layout(width="36px")
        )
        for action, button in (("pause", self.pause), ("resume", self.resume), ("cancel", self.cancel)):
            button.on_click(lambda _button, action=action: act(action, gid))
        self.box = widgets.HBox(
            [self.name, self.bar, self.text, self.state, self.pause, self.resume, self.cancel]
        )

    def show(self, item: Progress, live: bool) -> None:
        self.name.value = TqdmDisplay._name(item)
        self.bar.value = 100.0 if item.status == "complete" else float(item.progress_percent)
        self.bar.bar_style = {"complete": "success", "error": "danger", "paused": "warning"}.get(
            item.status, "info" if item.status == "active" else ""
        )
        size = f"{human_size(item.completed_length)} / {human_size(item.total_length)}"
        speed = f", {human_size(item.download_speed)}/s" if item.status == "active" else ""
        self.text.value = size + speed
        self.state.value = TqdmDisplay._state(item)
        self.pause.disabled = not live or item.status not in _PAUSABLE
        self.resume.disabled = not live or item.status != "paused"
        self.cancel.disabled = not live or item.status not in _UNFINISHED


class Dashboard:
    """A live view made by :func:`dashboard`: its widget, its thread, and what it last read.

    ``widget`` is the ipywidgets tree (None when it fell back to progress bars); ``last`` the
    latest :class:`BatchProgress` read (``batch_id`` None for the daemon's view); ``message``
    the line under the rows (the last error, or why the refreshing stopped). ``rows`` maps each
    shown GID to its row's widgets (``pause``, ``resume``, ``cancel`` buttons, ``state`` label).
    """

    def __init__(
        self,
        client: Aria2Client,
        futures: list[DownloadFuture] | None,
        batch_id: str | None,
        widgets: Any,
        interval: float,
        max_rows: int,
    ) -> None:
        self.client = client
        self.interval = interval
        self.last: BatchProgress | None = None
        self._futures = futures
        self._batch_id = batch_id
        self._widgets = widgets
        self._max_rows = max_rows
        self._lock = threading.Lock()  # one refresh (actions, read, widget changes) at a time
        self._wake = threading.Event()
        self._actions: collections.deque[tuple[str, str]] = collections.deque()
        self._closing = False
        self._stopped_because: str | None = None
        self._thread: threading.Thread | None = None
        self._rows: dict[str, DashboardRow] = {}
        self.widget: Any = None
        if widgets is not None:
            self._build(widgets)

    def _build(self, widgets: Any) -> None:
        self._header = widgets.HTML()
        everything = self._futures is None
        self._pause_all = widgets.Button(
            description="Pause all",
            icon="pause",
            tooltip="pause every download of the daemon" if everything else "pause the downloads shown",
        )
        self._resume_all = widgets.Button(description="Resume all", icon="play")
        self._stop = widgets.Button(description="Stop", icon="stop", tooltip="stop refreshing this view")
        self._pause_all.on_click(lambda _button: self._request("pause_all", ""))
        self._resume_all.on_click(lambda _button: self._request("resume_all", ""))
        self._stop.on_click(lambda _button: self._request_stop("stopped"))
        self._table = widgets.VBox()
        self._message = widgets.HTML()
        controls = widgets.HBox([self._pause_all, self._resume_all, self._stop])
        self.widget = widgets.VBox([self._header, controls, self._table, self._message])

    # -- what users call ----------------------------------------------------------------------------

    @property
    def rows(self) -> dict[str, DashboardRow]:
        return dict(self._rows)

    @property
    def running(self) -> bool:
        """Whether the refreshing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def message(self) -> str:
        return str(self._message.value) if self.widget is not None else (self._stopped_because or "")

    def refresh(self) -> BatchProgress | None:
        """Carry out the queued clicks and redraw now, on the calling thread; returns ``last``."""
        with self._lock:
            self._tick()
        return self.last

    def close(self, timeout: float = CLOSE_WAIT) -> None:
        """Stop refreshing and wait (at most ``timeout`` seconds) for the thread to end; the
        widget stays, with its buttons disabled. Safe to call more than once."""
        self._request_stop("closed")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("the dashboard's thread did not stop within %.0f s", timeout)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else f"stopped ({self._stopped_because or 'not started'})"
        shown = "the daemon" if self._futures is None else f"{len(self._futures)} downloads"
        return f"<Dashboard of {shown}, {state}>"

    # -- the thread ---------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the refreshing thread (:func:`dashboard` does); ``timeout``: stop after it."""
        if self._thread is not None or self.widget is None:
            raise Aria2InputError("this dashboard cannot be started (again)")
        deadline = None if timeout is None else time.monotonic() + timeout
        self._thread = threading.Thread(
            target=self._run, args=(deadline,), name=f"aria2_sync-dashboard-{next(_numbers)}", daemon=True
        )
        self._thread.start()

    def _run(self, deadline: float | None) -> None:
        while True:
            with self._lock:
                reason = self._tick()
                if reason is None and deadline is not None and time.monotonic() >= deadline:
                    reason = "timeout"
                if reason is not None:
                    self._end(reason)
                    return
            wait = self.interval if deadline is None else min(self.interval, deadline - time.monotonic())
            self._wake.wait(max(0.0, wait))
            self._wake.clear()

    def _request(self, action: str, gid: str) -> None:
        """A click: queue it for the thread (the kernel's thread must not wait on the daemon)."""
        if self._closing:
            logger.info("dashboard: %s ignored, the view has stopped refreshing", action)
            return
        self._actions.append((action, gid))
        self._wake.set()

    def _request_stop(self, reason: str) -> None:
        if not self._closing:
            self._closing = True
            self._stopped_because = reason
        self._wake.set()

    def _tick(self) -> str | None:
        """One refresh (under the lock): the queued actions, one read, the widgets. Returns why
        the refreshing must stop, or None."""
        if self._closing:
            return self._stopped_because or "closed"
        if self.client.closed:
            return "the client was closed"
        errors = [error for error in map(self._act, self._take_actions()) if error]
        # (asked before the read: a read made after every future was done shows their outcomes)
        finished = self._futures is not None and all(future.done() for future in self._futures)
        try:
            self.last = self._read()
        except Aria2ClosedError:
            return "the client was closed"
        except Aria2ConnectionError as error:
            errors.append(f"cannot reach the daemon ({error}); showing the last values")
        except Aria2Error as error:
            errors.append(f"cannot read the downloads: {error}")
        except Exception as error:  # a bug here must end the thread visibly, not spin on it
            logger.exception("dashboard: refresh failed")
            return f"refresh failed: {error!r}"
        if self.widget is not None:
            self._draw(live=True)
            self._message.value = _html("; ".join(errors))
        return "every download has an outcome" if finished else None

    def _take_actions(self) -> list[tuple[str, str]]:
        taken = []
        while self._actions:
            taken.append(self._actions.popleft())
        return taken

    def _act(self, request: tuple[str, str]) -> str | None:
        """Carry out one click; returns what went wrong, or None."""
        action, gid = request
        client = self.client
        try:
            if action == "pause":
                client.pause_download(gid)
            elif action == "resume":
                client.resume_download(gid)
            elif action == "cancel":
                client.cancel_download(gid)
            elif self._futures is None:  # the daemon's view: everything it holds
                (client.pause_all if action == "pause_all" else client.resume_all)()
            else:  # a target's view: the shown downloads that can take it
                wanted = _PAUSABLE if action == "pause_all" else ("paused",)
                for item in self.last.downloads if self.last else ():
                    if item.status in wanted:
                        (client.pause_download if action == "pause_all" else client.resume_download)(item.gid)
        except Aria2Error as error:
            logger.info("dashboard: %s %s failed: %s", action, gid, error)
            return f"{action} {gid} failed: {error}".replace("  ", " ")
        logger.info("dashboard: %s %s", action, gid)
        return None

    def _read(self) -> BatchProgress:
        if self._futures is None:
            return _summary(self.client.list_downloads())
        read = self.client.get_batch_progress(self._batch_id) if self._batch_id is not None else None
        if read is None:
            read = self.client.get_downloads_progress([future.gid for future in self._futures])
        # A cancelled download keeps the last snapshot read before it was cancelled (its count is
        # right, its status word is not): its future says what it is now.
        cancelled = {future.gid for future in self._futures if future.cancelled()}
        if not cancelled:
            return read
        return attrs.evolve(
            read,
            downloads=tuple(
                attrs.evolve(item, status="removed", download_speed=0)
                if item.gid in cancelled and item.status in _UNFINISHED
                else item
                for item in read.downloads
            ),
        )

    def _draw(self, live: bool) -> None:
        last = self.last
        items = list(last.downloads[: self._max_rows]) if last else []
        rows = {item.gid: self._rows.get(item.gid) for item in items}
        for item in items:
            row = rows[item.gid] or DashboardRow(self._widgets, item.gid, self._request)
            rows[item.gid] = row
            row.show(item, live)
        shown = [row for row in rows.values() if row is not None]
        if list(rows) != list(self._rows):
            self._table.children = tuple(row.box for row in shown)
        self._rows = {row.gid: row for row in shown}
        self._header.value = _headline(last, self._futures is None, len(items)) if last else ""
        for button in (self._pause_all, self._resume_all, self._stop):
            button.disabled = not live

    def _end(self, reason: str) -> None:
        """The thread's last act (under the lock): every button off, the reason shown."""
        self._closing = True
        self._stopped_because = self._stopped_because or reason
        self._draw(live=False)
        self._message.value = _html(f"not refreshing: {self._stopped_because}")
        logger.debug("dashboard: stopped (%s)", self._stopped_because)


def _headline(last: BatchProgress, everything: bool, shown: int) -> str:
    whose = "the daemon" if everything else ("batch " + last.batch_id if last.batch_id else "downloads")
    counts = ", ".join(
        f"{count} {what}"
        for count, what in (
            (last.active_count, "active"),
            (last.waiting_count, "waiting"),
            (last.paused_count, "paused"),
            (last.completed_count, "complete"),
            (last.failed_count, "failed"),
            (last.retrying_count, "restarting"),
            (last.removed_count, "cancelled"),
        )
        if count
    )
    more = f" (the first {shown} shown)" if shown < last.total_count else ""
    return (
        f"<b>{_html(whose)}</b>: {last.total_count} downloads{more}; {counts or 'none'}; "
        f"{human_size(last.completed_length)} / {human_size(last.total_length)}, "
        f"{human_size(last.download_speed)}/s"
    )


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") if text else ""
