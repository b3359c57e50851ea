"""Every Python example of the documentation runs, against a real aria2c and a local file server.

One test per page: docs/**/*.rst, README.rst, and tests/doc_pages/ (pages written for the runner
itself, so that it is exercised on every case whatever the documentation holds). The convention
(which blocks run, what ``https://example.com/<name>`` and ``http://localhost:6800/jsonrpc`` are)
is in :mod:`tests.support.doc_examples`. A failure names the page, the block's line and the error.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.doc_examples import AnyFileServer, ExampleFailed, code_blocks, pages, run_page

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "tests" / "doc_pages").glob("*.rst"))
PAGES = [*pages(ROOT), *SAMPLES]


@pytest.fixture(scope="module")
def files() -> Iterator[AnyFileServer]:
    server = AnyFileServer()
    try:
        server.start()
        yield server
    finally:
        stopped = server.stop()
    assert server.errors == [], f"the file server's handlers raised: {server.errors!r}"
    assert stopped, "the file server's threads did not end within its stop timeout"


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_the_examples_of_the_page_run(page: Path, files: AnyFileServer, tmp_path: Path) -> None:
    name = page.relative_to(ROOT).as_posix()
    text = page.read_text(encoding="utf-8")
    failed = None
    try:
        ran = run_page(name, text, files, tmp_path)
    except ExampleFailed as failure:
        failed = str(failure)
    if failed is not None:
        pytest.fail(failed, pytrace=False)
    if page.name == "README.rst":
        assert ran > 0, "README.rst's example must be a `.. code-block:: python` block, so that it runs"


def test_the_sample_pages_are_found_and_run_several_blocks():
    assert SAMPLES, "tests/doc_pages/ holds the runner's own sample pages"
    runnable = [b for b in code_blocks(SAMPLES[0].read_text(encoding="utf-8")) if b.runs]
    assert len(runnable) >= 4


# -- the runner itself -----------------------------------------------------------------------------

PARSED = """\
Title
=====

.. code-block:: python

    x = 1

      y = 2  # indented more: still the block

Text.

* In a list:

  .. code-block:: python
     :class: no-run other
     :caption: skipped

     never()

.. code-block:: console

   $ aria2-sync get URL

.. code:: py

   z = 3
"""


def test_code_blocks_are_found_with_their_line_language_and_options():
    blocks = code_blocks(PARSED)
    assert [(b.line, b.language, b.runs) for b in blocks] == [
        (6, "python", True),
        (18, "python", False),
        (22, "console", False),
        (26, "py", True),
    ]
    assert blocks[0].source == "x = 1\n\n  y = 2  # indented more: still the block\n"
    assert blocks[1].options == {"class": "no-run other", "caption": "skipped"}
    assert blocks[1].source == "never()\n"


BROKEN = """\
A broken page
=============

.. code-block:: python

    from aria2_sync import Aria2Client

    value = 1

.. code-block:: python

    def helper():
        return value / 0

    helper()
"""


def test_a_failing_example_is_reported_with_the_page_the_line_and_the_error(files, tmp_path):
    with pytest.raises(ExampleFailed) as failed:
        run_page("docs/broken.rst", BROKEN, files, tmp_path)
    message = str(failed.value)
    assert message.startswith("docs/broken.rst: the example at line 12 failed")
    assert "docs/broken.rst:15: helper()" in message
    assert "docs/broken.rst:13: return value / 0" in message
    assert "ZeroDivisionError: division by zero" in message


def test_a_syntax_error_is_reported_at_its_line(files, tmp_path):
    text = ".. code-block:: python\n\n    a = 1\n    b = (\n"
    with pytest.raises(ExampleFailed, match=r"line 3 failed[\s\S]*SyntaxError"):
        run_page("docs/syntax.rst", text, files, tmp_path)


def test_a_client_left_open_and_a_daemon_left_running_are_closed_after_the_page(files, tmp_path):
    text = (
        ".. code-block:: python\n\n"
        "    from aria2_sync import Aria2Client, Aria2Daemon\n"
        "    import builtins\n"
        "    daemon = Aria2Daemon(download_dir='.').start()\n"
        "    client = Aria2Client(verbose=False)\n"
        "    builtins._docs_example_left = (client, daemon)\n"
    )
    import builtins

    try:
        assert run_page("docs/leaky.rst", text, files, tmp_path) == 1
        client, daemon = builtins._docs_example_left  # type: ignore[attr-defined]
    finally:
        vars(builtins).pop("_docs_example_left", None)
    assert client.closed
    assert not daemon.running
