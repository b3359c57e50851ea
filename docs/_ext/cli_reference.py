"""``.. cli-reference::``: the command line's reference, generated from its argument parser.

The parser ``aria2_sync.ui.cli`` builds for ``aria2-sync`` is the one source of truth: this
directive reads it at build time and renders, for the program and for each subcommand, its help,
its usage line (as argparse prints it) and one ``.. option::`` entry per argument (so
``:option:`aria2-sync get --dir``` links to it), with argparse's help text and default. Nothing is
copied by hand, so the page cannot drift from ``aria2-sync --help``.

Usage (docs/cli.rst)::

    .. cli-reference::
       :parser: aria2_sync.ui.cli:build_parser

``:parser:`` names a function (``module:function``) that returns an ``argparse.ArgumentParser``;
the default is the one above. Each subcommand becomes a section titled ``<prog> <name>``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

DEFAULT_PARSER = "aria2_sync.ui.cli:build_parser"

_INLINE_MARKUP = re.compile(r"([\\*`|_])")


def _escape(text: str) -> str:
    """Plain text as rst inline text: markup characters backslash-escaped."""
    return _INLINE_MARKUP.sub(r"\\\1", text)


def load_parser(spec: str) -> argparse.ArgumentParser:
    """The parser returned by ``module:function``."""
    module_name, _, function_name = spec.partition(":")
    if not function_name:
        raise ValueError(f"cli-reference: :parser: must be 'module:function', got {spec!r}")
    parser = getattr(importlib.import_module(module_name), function_name)()
    if not isinstance(parser, argparse.ArgumentParser):
        raise TypeError(f"cli-reference: {spec} returned {type(parser).__name__}, not an ArgumentParser")
    return parser


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each subcommand, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, subparser in action.choices.items():
                found.append((name, helps.get(name, ""), subparser))
    return found


def _help(action: argparse.Action, prog: str) -> str:
    """An argument's help as ``--help`` prints it (``%(default)s`` and the like expanded)."""
    text = action.help or ""
    if text == argparse.SUPPRESS:
        return ""
    if "%" in text:
        values: dict[str, Any] = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        values["prog"] = prog
        text = text % values
    return text


def _signature(action: argparse.Action) -> str:
    """The ``.. option::`` signature: ``-d DIR, --dir DIR``, or the positional's metavar."""
    if not action.option_strings:
        metavar = action.metavar or action.dest
        return str(metavar if isinstance(metavar, str) else " ".join(metavar))
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar or action.dest.upper()
    value = metavar if isinstance(metavar, str) else " ".join(metavar)
    return ", ".join(f"{option} {value}" for option in action.option_strings)


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS
    ]


#: Width of the usage lines (argparse's default follows the terminal, which a build has none of).
USAGE_WIDTH = 88


def command_rst(parser: argparse.ArgumentParser, summary: str = "") -> list[str]:
    """The rst of one (sub)command: its summary, usage, description and arguments."""
    parser.formatter_class = functools.partial(parser.formatter_class, width=USAGE_WIDTH)
    lines = [f".. program:: {parser.prog}", ""]
    if summary:
        lines += [_escape(summary[:1].upper() + summary[1:]) + ".", ""]
    if parser.description:
        lines += [_escape(parser.description), ""]
    lines += [".. code-block:: text", ""]
    lines += ["   " + line for line in parser.format_usage().rstrip().splitlines()]
    lines.append("")
    positionals = [a for a in _arguments(parser) if not a.option_strings]
    options = [a for a in _arguments(parser) if a.option_strings]
    for title, actions in (("Arguments", positionals), ("Options", options)):
        if not actions:
            continue
        lines += [f".. rubric:: {title}", ""]
        for action in actions:
            lines += [f".. option:: {_signature(action)}", ""]
            text = _help(action, parser.prog)
            if action.nargs in ("*", "+") and not action.option_strings:
                text += (" " if text else "") + f"({'zero' if action.nargs == '*' else 'one'} or more)"
            if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
                text += " (one of: " + ", ".join(str(c) for c in action.choices) + ")"
            lines += ["   " + _escape(text) if text else "   (no help)", ""]
    return lines


class CliReference(SphinxDirective):
    """Renders the program's options, then one section per subcommand (see the module's docstring)."""

    has_content = False
    option_spec = {"parser": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        parser = load_parser(self.options.get("parser", DEFAULT_PARSER))
        result: list[nodes.Node] = self._parse(command_rst(parser))
        for _name, summary, subparser in _subcommands(parser):
            section = nodes.section(ids=[nodes.make_id(f"cli {subparser.prog}")], names=[subparser.prog])
            section += nodes.title(text=subparser.prog)
            section.extend(self._parse(command_rst(subparser, summary)))
            self.state.document.note_implicit_target(section)
            result.append(section)
        return result

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        source = self.get_source_info()[0] or "<cli-reference>"
        nested_parse_with_titles(self.state, StringList(lines, source=source), container)
        return list(container.children)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("cli-reference", CliReference)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
