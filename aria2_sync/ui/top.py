"""``aria2-sync top``: a live, interactive view of a running daemon (the ``tui`` extra: textual).

Every download the daemon holds, one row each (name, status, progress, size, speed, ETA),
refreshed every ``interval`` seconds; keys sort the rows and act on the selected one. Built on
textual rather than rich alone: rich draws tables but reads no keys, so a view you can steer
would need a hand-made terminal loop; textual (on rich) gives the key bindings, a table with a
cursor, a footer that lists the keys, and a headless test pilot (``App.run_test``).

The client's calls block, so each one runs in a worker thread (``asyncio.to_thread``): a slow
daemon slows the numbers down, never the keys. A daemon that stops answering is said in the
title line; the view keeps the last rows and tries again at the next refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header

from .. import Aria2Client
from ..errors import Aria2Error, redact_text
from ..models import Progress
from .common import display_name, duration, each_once
from .formatting import human_size

__all__ = ["TopApp", "run"]

#: The table's columns: key and title.
COLUMNS = (
    ("gid", "GID"),
    ("name", "Name"),
    ("status", "Status"),
    ("progress", "Done"),
    ("size", "Size"),
    ("speed", "Speed"),
    ("eta", "ETA"),
)

#: The orders the keys choose: name -> (what it is called in the title, sort key, largest first).
ORDERS: dict[str, tuple[str, Callable[[Progress], Any], bool]] = {
    "queue": ("aria2's order", lambda p: 0, False),
    "speed": ("speed", lambda p: p.download_speed if p.status == "active" else -1, True),
    "progress": ("progress", lambda p: p.progress_percent, True),
}


def cells(progress: Progress) -> tuple[str, ...]:
    """One row of the table, in the order of :data:`COLUMNS`."""
    eta = duration(progress.eta_seconds) if progress.status == "active" else "-"
    return (
        progress.gid,
        redact_text(display_name(progress)),
        progress.status,
        f"{progress.progress_percent:5.1f}%",
        human_size(progress.total_length),
        f"{human_size(progress.download_speed)}/s" if progress.status == "active" else "-",
        eta,
    )


class TopApp(App[None]):
    """The live view of the daemon behind ``client`` (which the caller closes)."""

    TITLE = "aria2-sync top"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("x", "remove", "Remove (keep files)"),
        Binding("s", "order('speed')", "Sort by speed"),
        Binding("percent_sign", "order('progress')", "Sort by progress", key_display="%"),
        Binding("o", "order('queue')", "aria2's order"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, client: Aria2Client, interval: float = 1.0) -> None:
        super().__init__()
        self.client = client
        self.interval = interval
        #: The last snapshots, in aria2's order (active, waiting, stopped).
        self.downloads: list[Progress] = []
        self.order = "queue"
        self._refreshing = False

    def compose(self) -> ComposeResult:
        yield Header()
        table: DataTable[str] = DataTable(cursor_type="row", zebra_stripes=True)
        for key, title in COLUMNS:
            table.add_column(title, key=key)
        yield table
        yield Footer()

    async def on_mount(self) -> None:
        await self.refresh_downloads()
        self.set_interval(self.interval, self.refresh_downloads)

    @property
    def table(self) -> DataTable[str]:
        return self.query_one(DataTable)

    @property
    def selected_gid(self) -> str | None:
        """The GID of the row under the cursor (None when the table is empty)."""
        table = self.table
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def shown_gids(self) -> list[str]:
        """The GIDs as the table shows them now, top to bottom."""
        return [str(row.key.value) for row in self.table.ordered_rows]

    async def refresh_downloads(self) -> None:
        """Ask the daemon for every download and redraw the table (skipped while one is asked)."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            downloads = each_once(await asyncio.to_thread(self.client.list_downloads))
            stats = await asyncio.to_thread(self.client.get_global_stats)
        except Aria2Error as error:
            self.sub_title = f"cannot ask the daemon: {redact_text(str(error))}"
            return
        finally:
            self._refreshing = False
        self.downloads = downloads  # (with the redraw: what the table shows is what is held)
        self.sub_title = (
            f"{stats.num_active} active, {stats.num_waiting} waiting, {stats.num_stopped} stopped, "
            f"{human_size(stats.download_speed)}/s; sorted by {ORDERS[self.order][0]}"
        )
        self._redraw()

    def _redraw(self) -> None:
        table = self.table
        selected = self.selected_gid
        _, key, largest_first = ORDERS[self.order]
        rows = sorted(self.downloads, key=key, reverse=largest_first)  # (stable: ties keep aria2's order)
        table.clear()
        for progress in rows:
            table.add_row(*cells(progress), key=progress.gid)
        if selected is not None and selected in {p.gid for p in rows}:
            table.move_cursor(row=table.get_row_index(selected))

    def action_order(self, order: str) -> None:
        self.order = order
        self._redraw()
        self.sub_title = self.sub_title.rsplit("; sorted by", 1)[0] + f"; sorted by {ORDERS[order][0]}"

    async def _act(self, verb: str, act: Callable[[str], object]) -> None:
        gid = self.selected_gid
        if gid is None:
            return
        try:
            await asyncio.to_thread(act, gid)
        except Aria2Error as error:
            self.notify(f"cannot {verb} {gid}: {redact_text(str(error))}", severity="error")
            return
        await self.refresh_downloads()

    async def action_pause(self) -> None:
        await self._act("pause", self.client.pause_download)

    async def action_resume(self) -> None:
        await self._act("resume", self.client.resume_download)

    async def action_remove(self) -> None:
        await self._act("remove", self.client.cancel_download)


def run(client: Aria2Client, interval: float = 1.0) -> int:
    """Run the view in this terminal until the user quits; the exit code (0)."""
    TopApp(client, interval).run()
    return 0
