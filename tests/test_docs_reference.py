"""The API and CLI reference pages cover what they document, read from the pages' source.

The API reference (docs/api/) is autodoc directives, one per documented name: a public method or
name added to the package without its directive would be missing from the site without a
warning, so these tests compare the directives with ``dir(Aria2Client)`` and ``aria2_sync.__all__``.
The CLI reference is generated from the argument parser by docs/_ext/cli_reference.py; its test
checks that every subcommand and option string reaches the generated text. No Sphinx build here
(.ci/run builds the site with warnings as errors).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

import aria2_sync
from aria2_sync import Aria2Client

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"
_DIRECTIVE = re.compile(
    r"^\s*\.\. (?:auto)?(?:class|method|attribute|property|function|data|exception)::\s*(?P<name>[\w.]+)",
    re.MULTILINE,
)


def _documented(page: Path) -> set[str]:
    """The names the page's directives document, without an ``aria2_sync.`` prefix."""
    text = page.read_text(encoding="utf-8")
    return {m["name"].removeprefix("aria2_sync.") for m in _DIRECTIVE.finditer(text)}


def _members_options(page: Path) -> dict[str, set[str]]:
    """``autoclass`` name -> the names its ``:members:`` option lists (empty: all members)."""
    found: dict[str, set[str]] = {}
    text = page.read_text(encoding="utf-8")
    for match in re.finditer(r"^\.\. autoclass:: (?P<name>[\w.]+)\n(?P<options>(?:   :.*\n)*)", text, re.M):
        members = re.search(r":members:(.*)", match["options"])
        if members:
            found[match["name"].removeprefix("aria2_sync.")] = {
                n.strip() for n in members[1].split(",") if n.strip()
            }
    return found


def test_the_client_page_documents_every_public_member_of_aria2client():
    public = {name for name in dir(Aria2Client) if not name.startswith("_")}
    documented = {
        name.removeprefix("Aria2Client.")
        for name in _documented(API / "client.rst")
        if name.startswith("Aria2Client.")
    }
    assert public - documented == set(), "add an auto directive to docs/api/client.rst"
    assert documented - public == set(), "docs/api/client.rst documents a name Aria2Client lacks"


def test_every_export_of_the_package_is_documented():
    documented = set().union(*(_documented(page) for page in API.glob("*.rst")))
    exported = set(aria2_sync.__all__) - {"__version__"}
    assert exported - documented == set(), "document these exports in docs/api/"


def test_members_listed_by_name_exist():
    """A ``:members: a, b`` list names members that exist (autodoc warns only at build time)."""
    for page in API.glob("*.rst"):
        for owner, members in _members_options(page).items():
            target = getattr(aria2_sync, owner, None) if "." not in owner else None
            if target is None:
                continue
            missing = {m for m in members if not hasattr(target, m)}
            assert not missing, f"{page.name}: {owner} has no {sorted(missing)}"


def _cli_reference():
    pytest.importorskip("sphinx", reason="the docs extra (Sphinx) is not installed")
    spec = importlib.util.spec_from_file_location(
        "cli_reference", ROOT / "docs" / "_ext" / "cli_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_renders_every_subcommand_and_option_of_the_parser():
    from aria2_sync.ui.cli import build_parser

    cli_reference = _cli_reference()
    parser = cli_reference.load_parser(cli_reference.DEFAULT_PARSER)
    subcommands = cli_reference._subcommands(parser)
    names = [name for name, _, _ in subcommands]
    assert names == [action.dest for action in build_parser()._subparsers._group_actions[0]._choices_actions]  # type: ignore[union-attr]
    assert {"get", "status", "add", "top"} <= set(names)
    for name, summary, subparser in subcommands:
        text = "\n".join(cli_reference.command_rst(subparser, summary))
        assert f".. program:: aria2-sync {name}" in text
        assert f"usage: aria2-sync {name}" in text
        for action in subparser._actions:
            for option in action.option_strings:
                assert re.search(rf"^\.\. option:: .*{re.escape(option)}\b", text, re.M), (name, option)
            if action.help:
                first_words = action.help.split(";")[0][:30]
                assert cli_reference._escape(first_words) in text.replace("\n   ", " "), (name, action.dest)
    assert build_parser().prog == "aria2-sync"


def test_help_text_is_escaped_for_rst():
    cli_reference = _cli_reference()
    assert cli_reference._escape("a *b* `c` d_ |e|") == r"a \*b\* \`c\` d\_ \|e\|"
