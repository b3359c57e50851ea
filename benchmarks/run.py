#!/usr/bin/env python
"""Run aria2_sync's benchmarks and print a table of ratios against same-run baselines.

    python benchmarks/run.py                    # all of them (about 3 minutes)
    python benchmarks/run.py refresh add        # some of them
    python benchmarks/run.py --quick            # a short smoke run of all of them
    python benchmarks/run.py --write            # all, and rewrite BENCHMARKS.rst with the table
    python benchmarks/run.py --list             # the names

Needs ``pip install -e '.[bench]'`` (aria2p, websocket-client). Every benchmark starts its own
aria2c (through ``aria2_sync.Aria2Daemon``) and its own HTTP server on 127.0.0.1, and stops
them, by PID, when it ends. Figures are judged only as ratios against baselines measured in the
same run on the same daemon and server (medians of interleaved repeats); absolute times are
printed for context. Progress lines go to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import shlex
import subprocess
import sys
import textwrap
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
for path in (HERE, REPO):
    if path not in sys.path:
        sys.path.insert(0, path)

from _common import Result  # noqa: E402

#: name -> module, in the order they run.
BENCHMARKS = {
    "refresh": "bench_refresh",
    "add": "bench_add",
    "resume": "bench_resume_bytes",
    "latency": "bench_restart_latency",
    "throughput": "bench_throughput",
    "sigkill": "bench_sigkill",
    "idle": "bench_idle_watch",
    "scaling": "bench_scaling",
    "import": "bench_import",
    "stores": "bench_stores",
    "torrent": "bench_torrent",
    "pool": "bench_pool",
}


def _machine() -> list[str]:
    from aria2_sync import __version__, find_aria2c

    aria2c = find_aria2c()
    try:
        version = subprocess.run(
            [aria2c, "--version"], capture_output=True, text=True, timeout=10
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        version = "aria2c: unknown version"
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    versions = []
    for package in ("aria2p", "requests", "urllib3", "attrs", "websocket-client"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return [
        f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"load average at start {load}",
        f"Python {platform.python_version()} ({platform.python_implementation()})",
        f"{version} ({aria2c})",
        f"aria2_sync {__version__}; " + "; ".join(versions),
    ]


def _run_one(name: str, quick: bool) -> Result:
    module = importlib.import_module(BENCHMARKS[name])
    title = getattr(module, "TITLE", name)
    print(f"== {name}: {title}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        result = module.run(quick)
    except Exception as error:
        traceback.print_exc()
        result = Result(
            name, title, "-", [], [], getattr(module, "TARGET", "-"), error=f"{type(error).__name__}: {error}"
        )
    print(f"   ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
    return result


def _block(result: Result) -> str:
    lines = [f"[{result.verdict}] {result.name}: {result.what}"]
    if result.error:
        lines.append(f"    error: {result.error}")
    lines.append(f"    ours:      {result.ours}")
    for label, value in result.baselines:
        lines.append(f"    baseline:  {label}: {value}")
    for ratio in result.ratios:
        lines.append(f"    ratio:     {ratio.text()} {'ok' if ratio.ok else 'MISSED'}")
    lines.append(f"    target:    {result.target}")
    if result.table:
        widths = [max(len(row[i]) for row in result.table) for i in range(len(result.table[0]))]
        for row in result.table:
            lines.append("    table:     " + "  ".join(cell.rjust(w) for cell, w in zip(row, widths)))
    for note in result.notes:
        lines.append(textwrap.fill(note, 100, initial_indent="    note:      ", subsequent_indent=" " * 15))
    for why in result.why:
        lines.append(textwrap.fill(why, 100, initial_indent="    why:       ", subsequent_indent=" " * 15))
    return "\n".join(lines)


def _table(results: list[Result]) -> str:
    rows = [("benchmark", "ratio(s)", "target", "result")]
    for r in results:
        ratios = "; ".join(f"{x.label} {x.value:.4g}" for x in r.ratios) or (r.error or "-")
        rows.append((r.name, ratios, r.target, r.verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def _write_rst(results: list[Result], command: str, machine: list[str], when: str, elapsed: float) -> str:
    e = _rst_escape
    out = [
        "==========",
        "Benchmarks",
        "==========",
        "",
        "Generated by ``benchmarks/run.py --write``; do not edit by hand. Every figure is judged as a",
        "ratio against a baseline measured in the same run, on the same aria2c daemon and the same",
        "local HTTP server (medians of interleaved repeats); absolute times are there for context",
        "only, since this machine is shared and noisy.",
        "",
        "Run them yourself (about 3 minutes; ``--quick`` for a one-minute smoke run, names to run",
        "only some, ``--list`` for the names)::",
        "",
        "    pip install -e '.[bench]'",
        "    python benchmarks/run.py [--quick] [--write] [NAME ...]",
        "",
        f"* Date: {when}",
        f"* Command: ``{command}`` (from the repository root, {elapsed:.0f} s)",
    ]
    out += [f"* Machine: {e(line)}" for line in machine[:1]]
    out += [f"* {e(line)}" for line in machine[1:]]
    passed = sum(r.passed for r in results)
    out += [
        f"* Outcome: {passed} of {len(results)} targets met"
        + (
            ""
            if passed == len(results)
            else f"; missed: {', '.join(r.name for r in results if not r.passed)} (see below)"
        ),
        "",
        "Results",
        "=======",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 14 22 26 22 12 6",
        "",
        "   * - what",
        "     - ours",
        "     - baseline(s)",
        "     - ratio(s)",
        "     - target",
        "     - result",
    ]
    for r in results:
        baselines = "; ".join(f"{label}: {value}" for label, value in r.baselines) or "-"
        ratios = "; ".join(r_.text() for r_ in r.ratios) or e(r.error or "-")
        out += [
            f"   * - **{r.name}**: {e(r.what)}",
            f"     - {e(r.ours)}",
            f"     - {e(baselines)}",
            f"     - {e(ratios)}",
            f"     - {e(r.target)}",
            f"     - **{r.verdict}**",
        ]
    missed = [r for r in results if not r.passed]
    if missed:
        out += ["", "Targets missed", "==============", ""]
        for r in missed:
            failed = "; ".join(x.text() for x in r.ratios if not x.ok) or e(r.error or "")
            out += [f"**{r.name}** ({e(r.what)}): missed, {e(failed)}. What was measured about why:", ""]
            out += [f"* {e(why)}" for why in r.why] or ["* (no analysis: the benchmark did not run)"]
            out += [""]
    out += ["", "Details", "=======", ""]
    for r in results:
        title = f"``{r.name}``: {e(r.what)} — {r.verdict}"
        out += [title, "-" * len(title), ""]
        if r.error:
            out += [f"* The benchmark failed to run: {e(r.error)}"]
        out += [f"* Ours: {e(r.ours)}"]
        out += [f"* Baseline: {e(label)}: {e(value)}" for label, value in r.baselines]
        out += [f"* Ratio: {e(x.text())} — {'met' if x.ok else '**missed**'}" for x in r.ratios]
        out += [f"* {e(note)}" for note in r.notes]
        if r.table:
            out += ["", ".. list-table::", "   :header-rows: 1", ""]
            for row in r.table:
                out += [f"   {'*' if n == 0 else ' '} - {e(cell)}" for n, cell in enumerate(row)]
            out += [""]
        if r.why:
            out += ["* Target missed: see *Targets missed* above."]
        out += [""]
    out += [
        "How each benchmark works",
        "========================",
        "",
    ]
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip()
        out += [f"``{name}``", "-" * (len(name) + 4), "", doc, ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="aria2_sync benchmarks: ratios against baselines measured in the same run.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short smoke run (smaller sizes, fewer repeats)"
    )
    parser.add_argument(
        "--write", action="store_true", help="write the results to BENCHMARKS.rst at the repository root"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, module_name in BENCHMARKS.items():
            print(f"{name:<11} {getattr(importlib.import_module(module_name), 'TITLE', '')}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    command = "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in argv)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine = _machine()
    print("\n".join(machine), file=sys.stderr)
    started = time.monotonic()
    results = []
    for name in names:
        result = _run_one(name, args.quick)
        results.append(result)
        print(_block(result), flush=True)
        print(flush=True)
    elapsed = time.monotonic() - started
    print(_table(results))
    print(
        f"\n{sum(r.passed for r in results)}/{len(results)} targets met in {elapsed:.0f} s"
        + (" (--quick: smoke run, smaller sizes)" if args.quick else "")
    )
    if args.write:
        path = os.path.join(REPO, "BENCHMARKS.rst")
        kept = _kept_sections(path)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(_write_rst(results, command, machine, when, elapsed))
            if kept:
                handle.write("\n" + kept)
        print(f"wrote {path}")
        for written in _write_data(results, when, command):
            print(f"wrote {written}")
    return 0 if all(r.passed for r in results) else 1


def _write_data(results: list[Result], when: str, command: str) -> list[str]:
    """Save each result's machine-readable figures as ``benchmarks/results/NAME.json``.

    The documentation draws the scaling curve from ``scaling.json`` at build time (no benchmark
    runs then), so the plot always shows the run that BENCHMARKS.rst describes. A benchmark that
    failed leaves its previous file in place.
    """
    folder = os.path.join(HERE, "results")
    written = []
    for result in results:
        if result.data is None or result.error is not None:
            continue
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{result.name}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(dict(result.data, date=when, command=command), handle, indent=2, sort_keys=True)
            handle.write("\n")
        written.append(path)
    return written


#: BENCHMARKS.rst from this line on is not this script's: the chaos suite's figures (from
#: ``python -m pytest -m chaos``) are kept there, and a rewrite keeps them.
KEEP_MARKER = ".. Everything below is kept by benchmarks/run.py --write."


def _kept_sections(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        return ""
    index = text.find(KEEP_MARKER)
    return text[index:] if index >= 0 else ""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
