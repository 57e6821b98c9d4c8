"""The `#| key: value` header of a code cell: parsing and validating each key.

Only a cell's leading `#|` lines are a header (the Quarto and nbdev convention); the
same text further down is an ordinary comment.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import re
from dataclasses import dataclass, replace

from freezer.ir import ERROR, Cell, Diagnostic

KEYS = (
    "stage",
    "input",
    "overlap",
    "batch",
    "lease",
    "merge",
    "gold",
    "gold_rate",
    "review",
    "title",
    "show",
)
INPUT_KINDS = ("each", "pool", "owner")
POOL_ONLY = ("overlap", "batch", "lease", "merge", "gold", "gold_rate", "review")
MERGE_RULES = ("majority", "dawid-skene", "gold-weighted")
DEFAULT_LEASE_SECONDS = 600
DEFAULT_BATCH = 10
DEFAULT_GOLD_RATE = 0.1
REVIEW_DISAGREEMENT = "disagreement"

_HEADER = re.compile(r"^\s*#\|\s?(.*)$")
_DURATION = re.compile(r"^(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


@dataclass(frozen=True)
class Header:
    """A cell's parsed options, the line each came from, and the problems found."""

    options: dict[str, object]
    lines: dict[str, int]
    diagnostics: tuple[Diagnostic, ...]


def header_lines(source: str) -> list[tuple[int, str]]:
    """The (1-based line, text after `#|`) pairs of the cell's leading header."""
    found = []
    for number, text in enumerate(source.splitlines(), start=1):
        match = _HEADER.match(text)
        if not match:
            break
        found.append((number, match.group(1)))
    return found


def _split_value(text: str) -> str:
    """The value without a trailing `# comment`; quoted values keep their `#`."""
    text = text.strip()
    if text[:1] in "\"'":
        try:
            value = ast.literal_eval(text.split("  #")[0].strip())
        except (SyntaxError, ValueError):
            value = None
        if isinstance(value, str):
            return value
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


def parse_header(cell: Cell, notebook: str) -> Header:
    """Read and validate the options of one code cell's header."""
    options: dict[str, object] = {}
    lines: dict[str, int] = {}
    problems: list[Diagnostic] = []

    def problem(line: int, message: str, hint: str | None = None) -> None:
        problems.append(Diagnostic(ERROR, notebook, message, None, cell.index, line, hint))

    for line, text in header_lines(cell.source):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        key, colon, raw = text.partition(":")
        key = key.strip()
        if colon and not key:
            problem(
                line, f"`#| {text.strip()}` has no key before the `:`.", "write `#| key: value`."
            )
            continue
        if not colon:
            problem(
                line, f"`#| {text.strip()}` is not a `key: value` line.", "write `#| key: value`."
            )
            continue
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            hint = (
                f"did you mean `{close[0]}`?" if close else "the keys are " + _listing(KEYS) + "."
            )
            problem(line, f"unknown annotation key `{key}`.", hint)
            continue
        if key in options:
            problem(line, f"`{key}` is given twice in this cell's header.", "keep one of them.")
            continue
        value, error = _convert(key, _split_value(raw))
        if error:
            problem(line, error[0], error[1])
            continue
        options[key] = value
        lines[key] = line
    return Header(options, lines, tuple(problems))


def _listing(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _convert(key: str, value: str) -> tuple[object, tuple[str, str | None] | None]:
    """The typed value of `key`, or (None, (message, hint)) when it is not valid."""
    if not value and key != "title":
        return None, (f"`{key}` has no value.", f"write `#| {key}: <value>`.")
    if key == "stage":
        if value.isidentifier():
            return value, None
        fixed = re.sub(r"\W", "_", value)
        fixed = fixed if fixed.isidentifier() else "_" + fixed
        return None, (
            f"`{value}` is not a valid stage name: use letters, digits and `_`, "
            "not starting with a digit.",
            f"for example `#| stage: {fixed}`.",
        )
    if key == "input":
        if value in INPUT_KINDS:
            return value, None
        close = difflib.get_close_matches(value, INPUT_KINDS, n=1, cutoff=0.5)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return None, (
            f"`input: {value}` is not a kind of input.",
            hint + "the kinds are " + _listing(INPUT_KINDS) + ".",
        )
    if key == "overlap":
        return _overlap(value)
    if key == "batch":
        if _whole(value) and int(value) >= 1:
            return int(value), None
        return None, (
            f"`{key}: {value}` is not a whole number of at least 1.",
            f"for example `#| {key}: 3`.",
        )
    if key == "lease":
        match = _DURATION.match(value.lower())
        if match and int(match.group(1)) > 0:
            return int(match.group(1)) * _UNITS[match.group(2)], None
        return None, (
            f"`lease: {value}` is not a duration.",
            "write a number with a unit: `90s`, `10m`, `2h` or `1d`.",
        )
    if key == "merge":
        if value in MERGE_RULES or _dotted(value):
            return value, None
        close = difflib.get_close_matches(value, MERGE_RULES, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return None, (
            f"`merge: {value}` is neither a merge rule nor the name of a function.",
            hint + "the rules are " + _listing(MERGE_RULES) + "; or name a function the "
            "notebook defines or imports (`my_merge`, `module.merge`).",
        )
    if key == "gold":
        if value.isidentifier() and not keyword.iskeyword(value):
            return value, None
        return None, (
            f"`gold: {value}` is not a name.",
            "name the notebook's mapping of item id to correct answer: `#| gold: answers`.",
        )
    if key == "gold_rate":
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if 0 <= rate <= 1:
            return rate, None
        return None, (
            f"`gold_rate: {value}` is not a share from 0 to 1.",
            "for example `#| gold_rate: 0.1`: a tenth of each batch is gold.",
        )
    if key == "review":
        return _review(value)
    if key == "show":
        if value.lower() in _TRUE:
            return True, None
        if value.lower() in _FALSE:
            return False, None
        return None, (
            f"`show: {value}` is not true or false.",
            "write `#| show: true` or `#| show: false`.",
        )
    if not value:
        return None, ("`title` has no value.", "write `#| title: <the page's title>`.")
    return value, None


def _review(value: str) -> tuple[object, tuple[str, str | None] | None]:
    """`disagreement`, or a probability above 0 and at most 1: items whose merged label is
    less probable than that are reviewed."""
    if value == REVIEW_DISAGREEMENT:
        return value, None
    try:
        threshold = float(value)
    except ValueError:
        threshold = -1.0
    if 0 < threshold <= 1:
        return threshold, None
    close = difflib.get_close_matches(value, (REVIEW_DISAGREEMENT,), n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return None, (
        f"`review: {value}` is neither `{REVIEW_DISAGREEMENT}` nor a probability above 0 "
        "and at most 1.",
        hint + f"write `#| review: {REVIEW_DISAGREEMENT}` (items whose labels are not all "
        "the same) or `#| review: 0.8` (items whose merged label's probability is under 0.8).",
    )


def _dotted(value: str) -> bool:
    """Is `value` a Python name, or names joined by dots (`module.function`)?"""
    parts = value.split(".")
    return all(part.isidentifier() and not keyword.iskeyword(part) for part in parts)


def _whole(text: str) -> bool:
    """Written in the digits 0-9: `str.isdigit` also takes "²", which `int` refuses."""
    return text.isascii() and text.isdigit()


def _overlap(value: str) -> tuple[object, tuple[str, str | None] | None]:
    """`overlap: 3` is (3, 3); `overlap: 2..4` is (2, 4): two labelers, up to four while
    their labels tie."""
    least, dots, most = value.partition("..")
    if not dots:
        most = least
    if not all(_whole(part.strip()) and int(part) >= 1 for part in (least, most)):
        return None, (
            f"`overlap: {value}` is not a whole number of at least 1, nor a range of them.",
            "for example `#| overlap: 3`, or `#| overlap: 2..4` for two labelers, "
            "up to four while their labels tie.",
        )
    if int(most) < int(least):
        return None, (
            f"`overlap: {value}` runs backwards: its most, {int(most)}, is below its "
            f"least, {int(least)}.",
            f"write the least first: `#| overlap: {int(most)}..{int(least)}`.",
        )
    return (int(least), int(most)), None


def annotate(cell: Cell, notebook: str) -> tuple[Cell, tuple[Diagnostic, ...]]:
    """The cell with its header options filled in, and the header's problems."""
    if cell.type != "code":
        return cell, ()
    header = parse_header(cell, notebook)
    return replace(cell, options=header.options, option_lines=header.lines), header.diagnostics
