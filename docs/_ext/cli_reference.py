"""STUB of the ``cli-reference`` directive: renders nothing.

The real extension (the CLI reference generated from ``aria2_sync.ui.cli``'s argument parser) is
written on another branch and replaces this file when the branches are merged.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


class CliReference(SphinxDirective):
    has_content = False
    optional_arguments = 1
    final_argument_whitespace = True

    def run(self) -> list[nodes.Node]:
        return []


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
