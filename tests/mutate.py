"""Apply each known mutation of the package in a scratch copy and run the tests that must kill it.

A test suite is only as good as the bugs it catches. Each entry of ``MUTATIONS`` breaks one
guarantee of the design in the smallest way a careless change would (a guard removed, a redaction
dropped, a grace ignored) and names the tests that must fail because of it. This script copies the
repository to a temporary directory, applies one mutation at a time there (the working tree is never
touched), runs the named tests, and reports which mutations were killed::

    python tests/mutate.py            # every mutation
    python tests/mutate.py grace      # the mutations whose name contains "grace"
    python tests/mutate.py --list     # names and guarantees only

It exits 0 when every mutation selected was killed, 1 when one survived, and 2 when a mutation no
longer applies (its ``before`` text is not in the file exactly once: update the entry with the code).
``tests/MUTATIONS.rst`` lists the same table for readers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: What the scratch copy needs: the package, the tests and the examples the tests import.
COPIED = ("aria2_sync", "tests", "examples", "setup.cfg", "setup.py")
#: One mutation's test run is bounded; a hang counts as a kill only if pytest-timeout reports it.
RUN_TIMEOUT = 600


@dataclass(frozen=True)
class Mutation:
    name: str
    guarantee: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTATIONS: tuple[Mutation, ...] = ()


def _scratch_copy(into: Path) -> None:
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, into / name)


def _apply(scratch: Path, mutation: Mutation) -> None:
    target = scratch / mutation.path
    text = target.read_text(encoding="utf-8")
    count = text.count(mutation.before)
    if count != 1:
        raise LookupError(
            f"{mutation.name}: the text to mutate occurs {count} times in {mutation.path} "
            "(expected once); update tests/mutate.py with the code"
        )
    target.write_text(text.replace(mutation.before, mutation.after), encoding="utf-8")


def _run_tests(scratch: Path, tests: Sequence[str]) -> tuple[bool, str]:
    """Run ``tests`` in ``scratch``; True when they failed (the mutation was killed)."""
    env = dict(os.environ, PYTHONPATH=str(scratch), PYTHONDONTWRITEBYTECODE="1")
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            command, cwd=scratch, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        return False, f"no verdict within {RUN_TIMEOUT} s"
    lines = [line for line in done.stdout.strip().splitlines() if line.strip()]
    return done.returncode != 0, lines[-1] if lines else f"exit {done.returncode}"


def run(mutations: Sequence[Mutation]) -> int:
    survived: list[str] = []
    for mutation in mutations:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="aria2_sync-mutant-") as scratch_dir:
            scratch = Path(scratch_dir)
            _scratch_copy(scratch)
            try:
                _apply(scratch, mutation)
            except LookupError as error:
                print(f"STALE     {error}")
                return 2
            killed, summary = _run_tests(scratch, mutation.tests)
        verdict = "killed" if killed else "SURVIVED"
        print(f"{verdict:9} {mutation.name} ({time.monotonic() - started:.0f} s): {summary}")
        if not killed:
            survived.append(mutation.name)
    print(f"{len(mutations) - len(survived)} of {len(mutations)} mutations killed")
    return 1 if survived else 0


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("select", nargs="*", help="run only mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and stop")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.select or any(s in m.name for s in args.select)]
    if args.list:
        for mutation in chosen:
            print(f"{mutation.name}: {mutation.guarantee}")
        return 0
    if not chosen:
        print("no mutation matches", file=sys.stderr)
        return 2
    return run(chosen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
