"""``examples/notebook.ipynb`` runs headlessly, top to bottom, and shows a restarted download.

The notebook is executed with nbclient on an ipykernel running this interpreter, from the repo
root. The kernel is ours (a kernel spec written for the test, so ``python`` on PATH does not
matter) and is shut down whatever happens; the notebook's last cell stops its aria2c and file
server, and the test checks that both are gone.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
from pathlib import Path

# All of these are in the test extra: imported plainly, so that one dropped from it fails the
# run instead of skipping this test quietly.
import ipykernel  # noqa: F401 - the kernel the notebook runs on
import nbclient
import nbformat
import pytest
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL = "aria2-sync-test"

pytestmark = pytest.mark.integration


def test_the_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code"
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def _kernel_manager(tmp_path: Path) -> KernelManager:
    kernels = tmp_path / "kernels"
    (kernels / KERNEL).mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aria2_sync test kernel",
        "language": "python",
    }
    (kernels / KERNEL / "kernel.json").write_text(json.dumps(spec))
    return KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )


def _texts(notebook, name: str) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == name
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # pragma: no cover - the PID was reused by someone else's process
        return True
    return False


def test_the_notebook_runs_and_shows_the_restart(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager(tmp_path)
    runner = nbclient.NotebookClient(
        notebook,
        km=km,
        timeout=120,
        startup_timeout=60,
        resources={"metadata": {"path": str(ROOT)}},
    )
    try:
        # The kernel manager is ours, so nbclient would leave the kernel running: cleanup_kc
        # makes it shut the kernel down (gracefully) and close its channels when done.
        runner.execute(cleanup_kc=True)
    finally:
        if km.has_kernel:  # a failure before nbclient's own cleanup
            km.shutdown_kernel(now=True)
    assert not km.has_kernel and not km.is_alive()

    stdout, stderr = _texts(notebook, "stdout"), _texts(notebook, "stderr")
    results = dict(re.findall(r"^(\w+\.bin) .*?(retry_count=\d+  identical=\w+)$", stdout, re.M))
    assert results == {
        "small.bin": "retry_count=0  identical=True",
        "medium.bin": "retry_count=0  identical=True",
        "large.bin": "retry_count=0  identical=True",
        "flaky.bin": "retry_count=1  identical=True",
    }, stdout
    assert "4/4 complete, 0 failed" in stdout
    resumed = re.search(r"flaky.bin failed once with aria2 error \d+ after ([\d,]+) bytes", stdout)
    assert resumed and int(resumed.group(1).replace(",", "")) > 0, stdout

    # The progress cell drew bars: widgets with ipywidgets, text bars on stderr without.
    widgets = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if "application/vnd.jupyter.widget-view+json" in output.get("data", {})
    ]
    if not widgets:  # one text bar (stacked bars would print every redraw in a notebook)
        assert "total" in stderr and "4/4 files" in stderr and "\x1b[A" not in stderr, stderr

    # Nothing the notebook started is left: its aria2c and its file server are gone.
    pid = int(re.search(r"aria2c \(pid (\d+)\) running: False", stdout).group(1))
    wait_for(lambda: _gone(pid), timeout=10, what=f"aria2c {pid} to exit")
    port = int(re.search(r"at http://127\.0\.0\.1:(\d+)", stdout).group(1))
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
