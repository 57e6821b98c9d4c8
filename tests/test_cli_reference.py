"""docs/cli.md is the command line's reference: a section per command whose table lists
every argument the parser has, with its help text word for word, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from freezer.cli import _parser

PAGE = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
COMMANDS = _parser()._subparsers._group_actions[0]  # type: ignore[union-attr]


def section(name: str) -> str:
    found = re.search(rf"^## `nbfreeze {name}`\n(.*?)(?=^## |\Z)", PAGE, re.S | re.M)
    assert found, f"docs/cli.md has no section `nbfreeze {name}`"
    return found.group(1)


def documented(name: str) -> dict[str, str]:
    """Each argument of the section's table, by its first name, with its text."""
    rows = re.findall(r"^\| (`[^|]+`) \| (.*) \|$", section(name), re.M)
    return {re.match(r"`([^ `]+)", names).group(1): text for names, text in rows}


def parsed(name: str) -> dict[str, str]:
    arguments = {}
    for action in COMMANDS.choices[name]._actions:
        if "--help" in action.option_strings:
            continue
        first = action.option_strings[0] if action.option_strings else action.dest.upper()
        arguments[first] = " ".join((action.help or "").split())
    return arguments


@pytest.mark.parametrize("name", list(COMMANDS.choices))
def test_the_reference_lists_every_argument_with_its_help(name):
    assert documented(name) == parsed(name)


@pytest.mark.parametrize("name", list(COMMANDS.choices))
def test_the_reference_opens_each_command_with_its_summary(name):
    summary = next(a.help for a in COMMANDS._choices_actions if a.dest == name)
    assert section(name).strip().startswith(summary[0].upper() + summary[1:] + ".")


def test_the_reference_documents_no_command_the_parser_lacks():
    assert set(re.findall(r"^## `nbfreeze (\w+)`", PAGE, re.M)) == set(COMMANDS.choices)
