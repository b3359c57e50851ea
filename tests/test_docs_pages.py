"""The documentation pages stay complete as the package grows (docs/, built by Sphinx in CI).

Building the site (``.ci/run``) catches broken markup; these checks catch what a build cannot:
an error class without its entry in the error reference, and a scaling-plot data file the docs
cannot draw from.
"""

from __future__ import annotations

import json
import os
import re

import aria2_sync
from aria2_sync import errors

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")
REPO = os.path.dirname(DOCS)


def _error_classes() -> list[type[BaseException]]:
    return [
        value
        for name in errors.__all__
        if isinstance(value := getattr(errors, name), type) and issubclass(value, errors.Aria2Error)
    ]


def test_every_error_class_has_its_section_in_the_error_reference() -> None:
    with open(os.path.join(DOCS, "errors.rst"), encoding="utf-8") as handle:
        text = handle.read()
    titles = set(re.findall(r"^``(\w+)``\n=+$", text, flags=re.MULTILINE))
    classes = {cls.__name__ for cls in _error_classes()}
    assert len(classes) >= 18
    assert classes - titles == set(), "errors without a section in docs/errors.rst"
    assert titles - classes == set(), "sections in docs/errors.rst naming no error class"
    for name in classes:
        assert getattr(aria2_sync, name).__name__ == name  # importable from the package, as the page says


def test_the_scaling_data_file_has_what_the_plot_draws() -> None:
    with open(os.path.join(REPO, "benchmarks", "results", "scaling.json"), encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["benchmark"] == "scaling" and data["command"].startswith("python benchmarks/run.py")
    counts = [row["count"] for row in data["rows"]]
    assert counts == sorted(counts) and len(counts) >= 3
    for row in data["rows"]:
        for key in ("tick", "floor", "floor_one", "tick_cpu"):
            assert row[key] > 0, (key, row)
