"""Progress bars for a batch, with tqdm when it is installed and a plain line when it is not.

Used by the command line (bars on stderr) and usable from notebooks, where ``tqdm.auto`` picks
the widget bar. tqdm is optional (``pip install 'aria2_sync[progress]'``): without it, a single
status line is rewritten in place, so the command works from a bare install.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Dict, Optional, TextIO

from .models import BatchProgress, Progress

__all__ = ["make_display", "NullDisplay", "LineDisplay", "TqdmDisplay"]

#: Per-file bars beyond this many downloads would flood a terminal; the total bar stays.
MAX_FILE_BARS = 8


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


class NullDisplay:
    """Shows nothing (quiet runs, JSON output, stderr not a terminal)."""

    def update(self, progress: BatchProgress) -> None:
        pass

    def close(self) -> None:
        pass


class LineDisplay:
    """One status line, rewritten in place: the fallback without tqdm."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._width = 0

    def update(self, progress: BatchProgress) -> None:
        line = (
            f"{progress.completed_count}/{progress.total_count} files, "
            f"{_size(progress.completed_length)}/{_size(progress.total_length)} "
            f"({progress.progress_percent:.0f}%), {_size(progress.download_speed)}/s"
        )
        if progress.retrying_count:
            line += f", {progress.retrying_count} restarting"
        if progress.failed_count:
            line += f", {progress.failed_count} failed"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        if self._width:
            self.stream.write("\n")
            self.stream.flush()


class TqdmDisplay:
    """A total bar plus one bar per file (for up to :data:`MAX_FILE_BARS` files)."""

    def __init__(self, stream: Optional[TextIO], notebook: bool = False) -> None:
        if notebook:
            from tqdm.auto import tqdm
        else:
            from tqdm import tqdm
        self._tqdm = tqdm
        self._stream = stream
        self._total: Any = None
        self._bars: Dict[str, Any] = {}

    def _bar(self, desc: str, position: int) -> Any:
        return self._tqdm(
            total=0, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
            position=position, leave=True, file=self._stream, dynamic_ncols=True,
        )

    def update(self, progress: BatchProgress) -> None:
        if self._total is None:
            self._total = self._bar("total", 0)
        self._set(self._total, progress.total_length, progress.completed_length,
                  f"{progress.completed_count}/{progress.total_count} files")
        if progress.total_count > MAX_FILE_BARS:
            return
        for index, item in enumerate(progress.downloads, start=1):
            bar = self._bars.get(item.gid)
            if bar is None:
                bar = self._bars[item.gid] = self._bar(self._name(item), index)
            self._set(bar, item.total_length, item.completed_length, self._state(item))

    @staticmethod
    def _name(item: Progress) -> str:
        path = item.file_path or (item.files[0].uris[0] if item.files and item.files[0].uris else item.gid)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return name if len(name) <= 30 else name[:27] + "..."

    @staticmethod
    def _state(item: Progress) -> str:
        if item.gave_up_reason:
            return "failed"
        if item.restart_pending:
            return f"restarting ({item.retry_count})"
        return item.status + (f" ({item.retry_count} restarts)" if item.retry_count else "")

    @staticmethod
    def _set(bar: Any, total: int, done: int, postfix: str) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.n = min(done, total) if total else done
        bar.set_postfix_str(postfix, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for bar in [*self._bars.values(), self._total]:
            if bar is not None:
                bar.close()


def tqdm_available() -> bool:
    return importlib.util.find_spec("tqdm") is not None


def make_display(enabled: bool, stream: TextIO) -> Any:
    """The best display for a terminal stream: tqdm bars, else a status line; nothing if off."""
    if not enabled:
        return NullDisplay()
    return TqdmDisplay(stream) if tqdm_available() else LineDisplay(stream)
