"""Runs the Python examples of reStructuredText pages against a real aria2c and a local file server.

The convention the documentation follows (docs/**/*.rst and README.rst):

* every ``.. code-block:: python`` block (also ``.. code::``/``.. sourcecode::``, ``python3``,
  ``py``) runs, in page order, in one namespace per page, in a fresh temporary current directory;
  a block that must not run is ``.. code-block:: text`` (or any other language) or has the option
  ``:class: no-run``;
* ``https://example.com/<name>`` (and ``http://``) is any file: the runner's :class:`AnyFileServer`
  serves 64 KiB of deterministic bytes for every name, a 404 for a name containing ``missing``,
  and for ``<name>.meta4``/``<name>.metalink`` a metalink of one file ``<name>`` (its URL on the
  same server, its size and SHA-256);
* ``http://localhost:<port>/jsonrpc`` (or ``127.0.0.1``) is a real aria2c the runner starts for
  the page, one per port named, all with the secret it puts in ``$ARIA2_RPC_SECRET``;
  ``Aria2Client(...)`` without a URL talks to the one of port 6800; ``Aria2Client.local(...)``
  starts its own aria2c as it does for users; a port under 1024 is left as written (nothing
  listens there: an example of a daemon that is not there).

The rewriting is textual and keeps line numbers, so a failure is reported at the page's line.
Every client and daemon an example leaves open is closed after the page, by the objects themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import linecache
import re
import secrets
import signal
import threading
import traceback
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aria2_sync import Aria2Client
from aria2_sync.daemon.process import Aria2Daemon
from tests.support.fault_server import FaultServer, deterministic_content

__all__ = [
    "AnyFileServer",
    "CodeBlock",
    "ExampleFailed",
    "code_blocks",
    "run_page",
    "EXAMPLE_SIZE",
    "BLOCK_TIMEOUT",
]

#: Size of every file the examples fetch from ``https://example.com/<name>``.
EXAMPLE_SIZE = 64 * 1024

#: Seconds one block may run before it fails (a hung example must not hang the suite).
BLOCK_TIMEOUT = 30.0

#: The languages whose blocks run.
PYTHON = frozenset({"python", "python3", "py"})

_DIRECTIVE = re.compile(
    r"^(?P<indent>[ \t]*)\.\.[ \t]+(?:code-block|code|sourcecode)::[ \t]*(?P<lang>\S*)[ \t]*$"
)
_OPTION = re.compile(r"^:(?P<name>[^:]+):[ \t]*(?P<value>.*)$")
_EXAMPLE_URL = re.compile(r"https?://example\.com/")
_DAEMON_URL = re.compile(r"http://(?:localhost|127\.0\.0\.1):(?P<port>\d+)/jsonrpc")
_DEFAULT_PORT = 6800


@dataclasses.dataclass(frozen=True)
class CodeBlock:
    """One code block of a page: ``line`` is the 1-based line of its first line of code."""

    line: int
    language: str
    source: str
    options: dict[str, str]

    @property
    def runs(self) -> bool:
        classes = self.options.get("class", "").split()
        return self.language.lower() in PYTHON and "no-run" not in classes


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def code_blocks(text: str) -> list[CodeBlock]:
    """Every ``code-block`` directive of an rst text, in order (whether it runs or not)."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent = len(match["indent"])
        options: dict[str, str] = {}
        j = i + 1
        while j < len(lines) and lines[j].strip() and _indent(lines[j]) > indent:
            option = _OPTION.match(lines[j].strip())
            if option is None:
                break  # content right after the directive, without a blank line
            options[option["name"].strip()] = option["value"].strip()
            j += 1
        body: list[tuple[int, str]] = []
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
            body.append((j, lines[j]))
            j += 1
        while body and not body[-1][1].strip():
            body.pop()
        while body and not body[0][1].strip():
            body.pop(0)
        if body:
            margin = min(_indent(text) for _, text in body if text.strip())
            source = "\n".join(text[margin:] for _, text in body) + "\n"
            blocks.append(CodeBlock(body[0][0] + 1, match["lang"] or "text", source, options))
        i = j
    return blocks


class AnyFileServer(FaultServer):
    """A :class:`FaultServer` that serves every name (see the module's docstring for which bytes)."""

    def _data_for(self, name: str) -> bytes | None:
        data = super()._data_for(name)
        if data is not None or "missing" in name:
            return data
        stem, dot, extension = name.rpartition(".")
        if dot and extension in ("meta4", "metalink") and stem:
            return self._metalink(stem)
        return deterministic_content(name, EXAMPLE_SIZE)

    def _metalink(self, name: str) -> bytes:
        content = deterministic_content(name, EXAMPLE_SIZE)
        base = name.rsplit("/", 1)[-1]
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<metalink xmlns="urn:ietf:params:xml:ns:metalink">\n'
            f'  <file name="{base}">\n'
            f"    <size>{len(content)}</size>\n"
            f'    <hash type="sha-256">{hashlib.sha256(content).hexdigest()}</hash>\n'
            f'    <url priority="1">{self.base_url}/{urllib.parse.quote(name)}</url>\n'
            "  </file>\n"
            "</metalink>\n"
        ).encode()


class ExampleFailed(Exception):
    """An example of a page failed: the message names the page, the block's line and the error."""


class _BlockTimeout(Exception):
    pass


@dataclasses.dataclass
class _Page:
    """What one page's run started: its daemons by port, and what its examples opened."""

    workdir: Path
    secret: str
    daemons: dict[int, Aria2Daemon] = dataclasses.field(default_factory=dict)
    clients: list[Aria2Client] = dataclasses.field(default_factory=list)
    started: list[Aria2Daemon] = dataclasses.field(default_factory=list)

    def daemon(self, port: int) -> Aria2Daemon:
        if port not in self.daemons:
            where = self.workdir.parent / f"aria2-{port}"
            (where / "state").mkdir(mode=0o700, parents=True)
            daemon = Aria2Daemon(secret=self.secret, download_dir=where, state_dir=where / "state")
            self.daemons[port] = daemon.start()
        return self.daemons[port]

    def rewrite(self, source: str, files: AnyFileServer) -> str:
        source = _EXAMPLE_URL.sub(files.base_url + "/", source)
        return _DAEMON_URL.sub(
            lambda m: m[0] if int(m["port"]) < 1024 else self.daemon(int(m["port"])).rpc_url, source
        )

    def close(self) -> None:
        errors: list[BaseException] = []
        for client in self.clients:
            try:
                client.close()
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)
        for daemon in [*self.started, *self.daemons.values()]:
            try:
                daemon.stop()
            except Exception as error:  # pragma: no cover
                errors.append(error)
        if errors:
            raise errors[0]


@dataclasses.dataclass
class _Alarm:
    """SIGALRM after ``seconds`` in the main thread (elsewhere: no bound)."""

    seconds: float

    def __enter__(self) -> None:
        self._armed = threading.current_thread() is threading.main_thread()
        if self._armed:

            def expire(signum: int, frame: Any) -> None:
                raise _BlockTimeout(f"the example ran for more than {self.seconds:g} s")

            self._previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc_info: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)


def _tracked(page: _Page, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every client and daemon the examples create known to ``page`` (to close them after)."""
    original_init = Aria2Client.__init__
    original_start = Aria2Daemon.start

    def init(self: Aria2Client, *args: Any, **kwargs: Any) -> None:
        if not args and "rpc_url" not in kwargs and kwargs.get("daemon_pool") is None:
            kwargs["rpc_url"] = page.daemon(_DEFAULT_PORT).rpc_url
        original_init(self, *args, **kwargs)
        page.clients.append(self)

    def start(self: Aria2Daemon) -> Aria2Daemon:
        started = original_start(self)
        if self not in page.daemons.values():
            page.started.append(self)
        return started

    monkeypatch.setattr(Aria2Client, "__init__", init)
    monkeypatch.setattr(Aria2Daemon, "start", start)


def _failure(page_name: str, block: CodeBlock, filename: str, error: BaseException) -> ExampleFailed:
    """The report of a failed block: the page, the block's line, the error and its lines on the page."""
    frames = [
        f"  {page_name}:{frame.lineno}: {frame.line or ''}".rstrip()
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename == filename
    ]
    where = "\n".join(frames) or f"  {page_name}:{block.line}"
    what = "".join(traceback.format_exception_only(type(error), error)).strip()
    return ExampleFailed(
        f"{page_name}: the example at line {block.line} failed\n{where}\n{what}",
    )


def run_page(page_name: str, text: str, files: AnyFileServer, workdir: Path) -> int:
    """Run every block of ``text`` that runs; return how many ran. Raises :class:`ExampleFailed`.

    ``page_name`` is how failures name the page (its path from the repository's root);
    ``workdir`` is an empty directory that becomes the current directory while the page runs.
    """
    blocks = [block for block in code_blocks(text) if block.runs]
    if not blocks:
        return 0
    cwd = workdir / "cwd"
    cwd.mkdir()
    page = _Page(workdir=cwd, secret=secrets.token_hex(16))
    namespace: dict[str, Any] = {"__name__": "__main__"}
    filename = f"<docs example {page_name}>"
    lines = [line + "\n" for line in text.splitlines()]
    linecache.cache[filename] = (len(text), None, lines, filename)  # tracebacks quote the page
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.chdir(cwd)
            monkeypatch.setenv("ARIA2_RPC_SECRET", page.secret)
            _tracked(page, monkeypatch)
            for block in blocks:
                source = "\n" * (block.line - 1) + page.rewrite(block.source, files)
                try:
                    code = compile(source, filename, "exec")
                    with _Alarm(BLOCK_TIMEOUT):
                        exec(code, namespace)
                except (Exception, _BlockTimeout) as error:
                    raise _failure(page_name, block, filename, error) from None
    finally:
        linecache.cache.pop(filename, None)
        page.close()
    return len(blocks)


def pages(root: Path) -> Iterator[Path]:
    """The pages whose examples run: docs/**/*.rst and README.rst under ``root``."""
    docs = root / "docs"
    if docs.is_dir():
        yield from sorted(p for p in docs.rglob("*.rst") if "_build" not in p.parts)
    if (root / "README.rst").is_file():
        yield root / "README.rst"
