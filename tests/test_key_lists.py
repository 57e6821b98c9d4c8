"""The keys docs/widgets.md lists for each stock labeling widget are the ones its `?`
key list shows: both are read here, the widget's from the array its module passes to
`keyList`, so neither can change alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "freezer" / "widgets" / "static"
DOCS = ROOT / "docs" / "widgets.md"
# Each widget's key list: the module that shows it and the array it passes to keyList.
LISTS = {
    "Classify": ("labeling.js", "CLASSIFY_KEYS"),
    "ChoiceLabeler": ("choice.js", "CHOICE_KEYS"),
    "ImageGrid": ("labeling.js", "GRID_KEYS"),
    "BoxEditor": ("box_editor.js", "BOX_KEYS"),
}


def shown_keys(module: str, array: str) -> list[tuple[str, str]]:
    """The [keys, what they do] rows of a `const ARRAY = [...]` in a widget's module."""
    text = (STATIC / module).read_text(encoding="utf-8")
    found = re.search(rf"^const {array} = \[\n(.*?)\n\];", text, re.S | re.M)
    assert found, f"{module} has no `const {array} = [...]`"
    assert "keyList(el, " in text and f", {array}, " in text, f"{module} does not show {array}"
    return re.findall(r"^\s*\['(.*?)', '(.*?)'\],$", found.group(1), re.M)


def documented_keys(widget: str) -> list[tuple[str, str]]:
    """The rows of the table under `### \\`WIDGET\\`` in docs/widgets.md's Keys section."""
    keys = DOCS.read_text(encoding="utf-8").split("\n## Keys\n", 1)[1]
    section = keys.split(f"\n### `{widget}`\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", section, re.M)[1:]  # after the header
    return [(" ".join(re.findall(r"`([^`]+)`", combo)), what) for combo, what in rows]


@pytest.mark.parametrize("widget", sorted(LISTS))
def test_the_docs_list_the_keys_each_widget_shows_on_question_mark(widget: str) -> None:
    shown = shown_keys(*LISTS[widget])
    assert shown, f"no keys read from {LISTS[widget][0]}"
    assert documented_keys(widget) == shown
