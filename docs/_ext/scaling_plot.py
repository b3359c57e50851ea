"""The ``scaling-plot`` directive: the scaling benchmark's curve, drawn at build time.

``benchmarks/run.py --write`` saves the scaling benchmark's figures in
``benchmarks/results/scaling.json`` (one row per number of watched downloads). This directive
reads that file, draws the refresh time and the client's CPU per download against the number of
downloads with matplotlib (no network, no benchmark run), and shows it as a figure. The SVG goes
to ``docs/_generated/`` (not committed); the JSON file is a dependency of the page, so a new
benchmark run redraws it.

Usage::

    .. scaling-plot:: ../benchmarks/results/scaling.json

       Caption.
"""

from __future__ import annotations

import json
import os
from typing import Any

from docutils import nodes
from docutils.parsers.rst.directives.images import Figure
from docutils.statemachine import StringList
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

GENERATED = "_generated"


def draw(rows: list[dict[str, Any]], target: str) -> None:
    """Write the two-panel plot of ``rows`` (the benchmark's own per-size figures) to ``target``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda row: row["count"])
    counts = [row["count"] for row in rows]

    def per_download_us(key: str) -> list[float]:
        return [row[key] / row["count"] * 1e6 for row in rows]

    with matplotlib.rc_context({"svg.hashsalt": "aria2_sync", "font.size": 9}):
        figure, (refresh, cpu) = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
        refresh.plot(counts, per_download_us("tick"), "o-", label="aria2_sync: a monitor tick")
        refresh.plot(counts, per_download_us("floor"), "s--", label="floor: raw multicall, 1000 per request")
        refresh.plot(counts, per_download_us("floor_one"), "^:", label="raw multicall, one request of all")
        refresh.set_title("refresh time per download")
        refresh.set_ylabel("µs per download")
        cpu.plot(counts, per_download_us("tick_cpu"), "o-", color="C0", label="client CPU in a full tick")
        cpu.set_title("client CPU per download")
        cpu.set_ylabel("µs per download")
        for axes in (refresh, cpu):
            axes.set_xscale("log")
            axes.set_xlabel("watched downloads")
            axes.set_xticks(counts, [f"{n:,}" for n in counts])
            axes.set_ylim(bottom=0)
            axes.grid(True, alpha=0.3)
            axes.legend(loc="best", fontsize=8)
        figure.savefig(target, format="svg", metadata={"Date": None})
        plt.close(figure)


class ScalingPlot(SphinxDirective):
    required_arguments = 1
    has_content = True
    option_spec = Figure.option_spec

    def run(self) -> list[nodes.Node]:
        relative, source = self.env.relfn2path(self.arguments[0])
        try:
            with open(source, encoding="utf-8") as handle:
                data = json.load(handle)
            rows = data["rows"]
        except (OSError, ValueError, KeyError) as error:
            raise ExtensionError(f"scaling-plot: cannot read {relative}: {error}") from error
        self.env.note_dependency(source)
        folder = os.path.join(self.env.srcdir, GENERATED)
        os.makedirs(folder, exist_ok=True)
        draw(rows, os.path.join(folder, "scaling.svg"))
        # The caption says which run the curve shows: it may be newer than the table's.
        content = StringList(list(self.content))
        run = f"Drawn from ``{relative}``: ``{data.get('command', '?')}``, {data.get('date', '?')}."
        content.append(StringList([" ", run] if content else [run], source=self.get_source_info()[0]))
        figure = Figure(
            "figure",
            [f"/{GENERATED}/scaling.svg"],
            dict(self.options, alt=self.options.get("alt", "the scaling benchmark's curves")),
            content,
            self.lineno,
            self.content_offset,
            self.block_text,
            self.state,
            self.state_machine,
        )
        return figure.run()


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("scaling-plot", ScalingPlot)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
