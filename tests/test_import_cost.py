"""``import aria2_sync`` loads only what every program needs; the rest is loaded on first use.

Each check runs a fresh interpreter (this process has long since imported everything). What is
deferred, and why: the SQLite and Redis stores (``sqlite3``, ``redis``) are for ``state=`` only; the WebSocket library
(``websocket``) for a client that listens to aria2's notifications, once it does; the private
daemon (``daemon/``, with ``subprocess`` and the /proc ownership and sweep code) is for
``Aria2Daemon`` and ``find_aria2c``; the command line and progress displays (``ui/``, ``tqdm``)
are for their users; reading torrents and metalinks (``engine/btinput``, with ``xml``) for
``add_torrent``/``add_metalink`` (their errors are in ``aria2_sync.errors``, loaded anyway).
(What a first ``Aria2Client(...)`` loads on top of the import is measured, not judged, by
benchmarks/bench_import.py.)
The features themselves are tested where they are used (test_state.py, test_binary_and_daemon.py,
test_progress.py, test_cli.py, test_monitor.py); here, that each lazy export still resolves.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import aria2_sync

#: Modules that ``import aria2_sync`` must not load (a name stands for its submodules too).
NOT_AT_IMPORT = (
    "sqlite3",
    "_sqlite3",
    "websocket",
    "tqdm",
    "ipywidgets",
    "textual",
    "rich",
    "subprocess",
    "aria2_sync.state.sqlite",
    "aria2_sync.state.redis",
    "redis",
    "aria2_sync.daemon",
    "aria2_sync.ui",
    "aria2_sync.engine.btinput",
    "xml",
)


def _loaded_by(program: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{program}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _among(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == n or m.startswith(n + ".") for n in names))


def test_import_loads_none_of_what_most_programs_never_need():
    loaded = _loaded_by("import aria2_sync")
    assert "aria2_sync.client" in loaded  # (the check itself sees imports)
    assert _among(loaded, NOT_AT_IMPORT) == []


def test_the_checker_sees_a_deferred_module_once_it_is_used():
    loaded = _loaded_by("import aria2_sync\naria2_sync.SQLiteStore\naria2_sync.find_aria2c")
    assert _among(loaded, NOT_AT_IMPORT) == [
        "_sqlite3",
        "aria2_sync.daemon",
        "aria2_sync.daemon.binary",
        "aria2_sync.state.sqlite",
        "sqlite3",
        "sqlite3.dbapi2",
    ]


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("Aria2Daemon", "aria2_sync.daemon.process"),
        ("find_aria2c", "aria2_sync.daemon.binary"),
        ("SQLiteStore", "aria2_sync.state.sqlite"),
        ("progress", "aria2_sync.ui.progress_display"),
        ("dashboard", "aria2_sync.ui.dashboard"),
    ],
)
def test_each_lazy_export_resolves_on_first_use(name, module):
    value = getattr(aria2_sync, name)
    assert value.__module__ == module
    assert name in dir(aria2_sync)
    assert name in aria2_sync.__all__


def test_every_public_name_resolves_and_unknown_ones_raise():
    namespace: dict[str, object] = {}
    exec("from aria2_sync import *", namespace)
    assert set(aria2_sync.__all__) <= set(namespace)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        aria2_sync.Nope  # noqa: B018
