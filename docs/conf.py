"""Sphinx configuration of aria2_sync's documentation.

The build is offline: no intersphinx, no remote images, and the one generated figure (the
benchmark's scaling curve) is drawn from ``benchmarks/results/scaling.json`` in the repository.
Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath("_ext"))
sys.path.insert(0, os.path.abspath(".."))

from aria2_sync import __version__

project = "aria2_sync"
author = "aria2_sync contributors"
copyright = "aria2_sync contributors"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "cli_reference",
    "scaling_plot",
]

templates_path: list[str] = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = f"aria2_sync {release}"
html_static_path = ["_static"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# Code blocks are Python unless they say otherwise; the example runner executes every
# ``.. code-block:: python`` block that has no ``:class: no-run``.
highlight_language = "python"
