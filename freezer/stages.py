"""Cutting the notebook into stages at `#| stage:` headers, and checking their options.

A stage runs from its header cell to the next header. Cells before the first header
form an implicit first stage; a Markdown cell belongs to the stage of the code cell
after it (it is the instructions on that stage's page).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freezer.annotations import (
    DEFAULT_BATCH,
    DEFAULT_GOLD_RATE,
    DEFAULT_LEASE_SECONDS,
    POOL_ONLY,
)
from freezer.ir import ERROR, Cell, Diagnostic, Stage

IMPLICIT_STAGE = "start"


@dataclass
class _Draft:
    name: str
    header: Cell | None
    cells: list[Cell] = field(default_factory=list)


def split_stages(
    cells: tuple[Cell, ...], notebook: str
) -> tuple[tuple[Stage, ...], list[Diagnostic]]:
    """Stages in notebook order (scope and edges not yet known) and the problems found."""
    problems: list[Diagnostic] = []
    drafts: list[_Draft] = []
    pending: list[Cell] = []
    for cell in cells:
        if cell.type != "code":
            pending.append(cell)
            continue
        if "stage" in cell.options:
            drafts.append(_Draft(str(cell.options["stage"]), cell))
        elif not drafts:
            drafts.append(_Draft(IMPLICIT_STAGE, None))
        if cell.options and "stage" not in cell.options:
            key = min(cell.option_lines, key=cell.option_lines.__getitem__)
            problems.append(
                Diagnostic(
                    ERROR,
                    notebook,
                    f"`{key}` is set on a cell that does not start a stage.",
                    drafts[-1].name,
                    cell.index,
                    cell.option_lines[key],
                    f"move it under the `#| stage:` line of the stage's first cell"
                    f" (stage `{drafts[-1].name}`), or start a new stage here.",
                )
            )
        drafts[-1].cells.extend([*pending, cell])
        pending = []
    if drafts:
        drafts[-1].cells.extend(pending)
    taken = {d.name for d in drafts if d.header}
    if drafts and drafts[0].header is None and IMPLICIT_STAGE in taken:
        drafts[0].name = _free_name(IMPLICIT_STAGE, taken)
    first_seen: dict[str, int] = {}
    stages = []
    for draft in drafts:
        if draft.name in first_seen and draft.header is not None:
            problems.append(
                Diagnostic(
                    ERROR,
                    notebook,
                    f"there is already a stage named `{draft.name}` "
                    f"(cell {first_seen[draft.name]}).",
                    draft.name,
                    draft.header.index,
                    draft.header.option_lines["stage"],
                    "give each stage its own name.",
                )
            )
        first_seen.setdefault(draft.name, draft.header.index if draft.header else 1)
        stages.append(_stage(draft, notebook, problems))
    return tuple(stages), problems


def _free_name(base: str, taken: set[str]) -> str:
    number = 1
    while f"{base}_{number}" in taken:
        number += 1
    return f"{base}_{number}"


def _stage(draft: _Draft, notebook: str, problems: list[Diagnostic]) -> Stage:
    options = dict(draft.header.options) if draft.header else {}
    lines = draft.header.option_lines if draft.header else {}
    kind = options.get("input")
    checked: dict[str, object] = {}

    def misplaced(key: str, why: str) -> None:
        problems.append(
            Diagnostic(
                ERROR,
                notebook,
                f"`{key}` {why}",
                draft.name,
                draft.header.index if draft.header else None,
                lines.get(key),
                f"remove the `{key}` line.",
            )
        )

    for key in POOL_ONLY:
        if key in options and kind != "pool":
            what = f"an `input: {kind}` stage" if kind else "a compute stage"
            misplaced(key, f"only applies to `input: pool` stages; `{draft.name}` is {what}.")
    if "show" in options and kind:
        misplaced(
            "show",
            f"only applies to compute stages; `{draft.name}` is an input stage, always shown.",
        )
    if kind == "pool" and "gold_rate" in options and "gold" not in options:
        misplaced("gold_rate", "is the share of each batch that is gold, and no `gold` is given.")
    if kind == "pool":
        least, most = options.get("overlap", (1, 1))  # type: ignore[misc]
        checked["overlap"] = least
        if most != least:  # a range: `overlap_max` is absent from a plain `overlap: N`
            checked["overlap_max"] = most
        checked["batch"] = options.get("batch", DEFAULT_BATCH)
        checked["lease_seconds"] = options.get("lease", DEFAULT_LEASE_SECONDS)
        checked["merge"] = options.get("merge", "majority")
        if "merge" in lines:
            checked["merge_line"] = lines["merge"]
        if "gold" in options:
            checked["gold"] = options["gold"]
            checked["gold_line"] = lines["gold"]
            checked["gold_rate"] = options.get("gold_rate", DEFAULT_GOLD_RATE)
        if "review" in options:
            checked["review"] = options["review"]
    elif not kind:
        checked["show"] = bool(options.get("show", False))
    title = str(options.get("title") or draft.name.replace("_", " ").capitalize())
    return Stage(
        name=draft.name,
        title=title,
        kind="input" if kind else "compute",
        input=str(kind) if kind else None,
        scope="shared",
        cells=tuple(cell.index for cell in draft.cells),
        depends_on=(),
        defines=(),
        uses=(),
        options=checked,
    )
