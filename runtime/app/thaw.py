"""Thawing: the served notebook back, run to the end on the app's answers.

At the end of a labeling project the owner wants the notebook again, to read, rerun and
share. `thaw` writes the app's answers to a JSON file (`answers`), inserts after each
input stage's cells a Markdown note (who answered what, when, how it was merged) and a
code cell that puts the answers into the stage's widget (`freezer.load_answers`, which
gives a pool's widget its labels through the app's own `give_merged`), and runs the
whole notebook top to bottom in a real Jupyter kernel (nbclient), as "Run all" does.

The answers travel as a file beside the thawed notebook, not as a database URL: the
notebook then reruns without the app's server, its credentials or its network, and
gives the same outputs however many labels arrive in the database afterwards.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import NoSuchKernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, DeadKernelError
from nbformat import NotebookNode, v4

from runtime import bundle as bundles
from runtime.app.pipeline import Decision, Pool, merged_labels, review_stage, with_decisions
from runtime.bundle import Notebook, Stage
from runtime.store import pools
from runtime.store.database import LABELER, OWNER, Store, now
from runtime.store.floors import accuracy_floors
from runtime.store.merging import RULES

FORMAT = 1
TAG = "nbfreeze-answers"  # the tag of every cell thawing inserts


class ThawRefused(ValueError):
    """A thaw that cannot start; the message names what is wrong."""


@dataclass(frozen=True)
class Thawed:
    """What a thaw wrote, and the one line saying which cell failed (None: none did)."""

    notebook: Path
    answers: Path
    failure: str | None


def answers_beside(output: Path) -> Path:
    """The answers file a thawed notebook reads: `done.answers.json` beside `done.ipynb`."""
    return output.with_suffix(".answers.json")


def served_output(bundle_dir: Path) -> Path:
    """Where the owner's download thaws the served notebook: `NAME-thawed.ipynb` beside
    the bundle, in the folder the app runs from, so its modules and files are found."""
    name = Path(bundles.load(bundle_dir).name).stem
    return bundle_dir.parent / f"{name}-thawed.ipynb"


def answers(store: Store, notebook: Notebook) -> dict[str, Any]:
    """Every input stage's answers as the thawed notebook reads them: a pool's raw labels
    with how the app merges them (its rule, the owner's accuracy floor kept in the store, the
    reviewers' decisions by item key), the owner's stored widget state for an owner
    stage, and for an `each` stage how many labelers answered."""
    floors = accuracy_floors(store)
    users = {user.id: user for user in store.users()}
    stages: dict[str, Any] = {}
    for stage in notebook.stages:
        if stage.input == "pool":
            overlap = int(stage.options.get("overlap", 1))
            done = pools.progress(store, stage.name)
            stages[stage.name] = {
                "input": "pool",
                "overlap": overlap,
                "overlap_max": int(stage.options.get("overlap_max", overlap)),
                "batch": int(stage.options.get("batch", 10)),
                "lease_seconds": int(stage.options.get("lease_seconds", 600)),
                "merge": str(stage.options.get("merge", "majority")),
                "floor": floors.get(stage.name),
                "decisions": {
                    row.item_key: row.label
                    for row in pools.annotations(store, review_stage(stage.name))
                },
                "items": done.items,
                "complete": done.complete,
                "labels": [
                    {
                        "item": row.item_key,
                        "labeler": row.user_id,
                        "labeler_name": users[row.user_id].name if row.user_id in users else "",
                        "label": row.label,
                        "time": row.created_at.isoformat(),
                    }
                    for row in pools.annotations(store, stage.name)
                ],
            }
        elif stage.input == "owner":
            given = [
                s
                for s in store.stage_answers(stage.name)
                if s.user_id in users and users[s.user_id].role == OWNER
            ]
            last = given[-1] if given else None
            stages[stage.name] = {
                "input": "owner",
                "answered_by": users[last.user_id].name if last else None,
                "time": last.created_at.isoformat() if last else None,
                "state": last.state if last else None,
            }
        elif stage.input == "each":
            answered = {
                s.user_id
                for s in store.stage_answers(stage.name)
                if s.user_id in users and users[s.user_id].role == LABELER
            }
            stages[stage.name] = {"input": "each", "answered": len(answered)}
    return {
        "format": FORMAT,
        "notebook": notebook.name,
        "made": now().isoformat(),
        "stages": stages,
    }


def _when(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")


def _rows(entry: dict[str, Any]) -> list[pools.Row]:
    return [
        pools.Row(a["item"], a["labeler"], a["label"], datetime.fromisoformat(a["time"]))
        for a in entry["labels"]
    ]


def _merged_ties(entry: dict[str, Any]) -> dict[Any, Any]:
    """The ties of a pool's merged labels, as the app hands them to its widget; only for
    a rule that needs nothing but the labels (`_needs_notebook`)."""
    rows = _rows(entry)
    ids = {row.item_key: json.loads(row.item_key) for row in rows}
    pool = Pool(
        None,
        ids,
        (),
        entry["overlap"],
        entry["overlap_max"],
        entry["batch"],
        entry["lease_seconds"],
        merge=entry["merge"],
    )
    merged = with_decisions(pool, merged_labels(pool, rows), decided(entry))
    return merged.ties


def decided(entry: dict[str, Any]) -> dict[str, Decision]:
    """A pool entry's review decisions as the app applies them."""
    return {key: Decision(label, 0, None) for key, label in entry.get("decisions", {}).items()}


def _needs_notebook(stage: Stage) -> bool:
    """Whether the merge needs what only the running notebook has: its gold mapping or
    its own merge function."""
    return bool(stage.options.get("gold")) or stage.options.get("merge", "majority") not in RULES


_RULE_TEXT = {
    "majority": "majority vote; a tie keeps the label given first",
    "dawid-skene": "Dawid–Skene, each labeler weighed by their estimated confusion matrix",
    "gold-weighted": "each labeler weighed by their accuracy on the gold items",
}


def _pool_note(stage: Stage, entry: dict[str, Any]) -> str:
    head = f"**Answers of `{stage.name}`** (input: pool, overlap {entry['overlap']}): "
    labels = entry["labels"]
    if not labels:
        return head + (
            "no labels yet. Its widget keeps the notebook's own values, and the stages "
            "after it run on those."
        )
    by_name = Counter(a["labeler_name"] or f"labeler {a['labeler']}" for a in labels)
    people = ", ".join(f"{name} ({count})" for name, count in by_name.items())
    times = sorted(a["time"] for a in labels)
    items = len({a["item"] for a in labels})
    text = (
        f"{len(labels)} labels of {items} items by {len(by_name)} "
        f"labeler{'s' * (len(by_name) != 1)}: {people}, "
        f"given from {_when(times[0])} to {_when(times[-1])}. "
    )
    if entry["complete"] < entry["items"]:
        text += (
            f"Only {entry['complete']} of {entry['items']} items have all their labels: "
            "these are the labels so far. "
        )
    rule = entry["merge"]
    how = _RULE_TEXT.get(rule, f"the notebook's function `{rule}`")
    text += f"They are merged as the app merges them for the stages after the pool ({how}"
    if entry.get("floor") is not None:
        text += f"; labelers under {entry['floor']:.0%} accuracy on gold are left out"
    if entry.get("decisions"):
        count = len(entry["decisions"])
        text += f"; {count} item{'s' * (count != 1)} decided by a reviewer"
    if _needs_notebook(stage):
        text += "): its `ties` hold the items whose top labels tie. "
    else:
        ties = _merged_ties(entry)
        shown = ", ".join(
            f"`{item!r}` ({' / '.join(map(str, tied))})" for item, tied in ties.items()
        )
        text += "): " + (
            f"{len(ties)} tie{'s' * (len(ties) != 1)}, {shown}. " if ties else "no ties. "
        )
    return (
        head
        + text
        + (
            f"The cell below gives `{stage.widget}` the merged `labels`, the `ties` and every "
            "raw label in `annotations`."
        )
    )


def _owner_note(stage: Stage, entry: dict[str, Any]) -> str:
    head = f"**Answer of `{stage.name}`** (input: owner): "
    if entry["state"] is None:
        return head + (
            "the owner has not answered yet. Its widget keeps the notebook's own values, "
            "and the stages after it run on those."
        )
    return head + (
        f"answered by {entry['answered_by']} on {_when(entry['time'])}. The cell below puts "
        f"that answer into `{stage.widget}`, as the app did."
    )


def _each_note(stage: Stage, entry: dict[str, Any]) -> str:
    count = entry["answered"]
    return (
        f"**`{stage.name}`** (input: each) is answered by every labeler for themselves: "
        f"{count} labeler{'s' * (count != 1)} answered it. Their answers are theirs alone, "
        "so its widget is left as the notebook builds it."
    )


def _answer_cell(stage: Stage, answers_file: str) -> NotebookNode:
    given = f"into={stage.widget}"
    if stage.input == "pool" and stage.options.get("gold"):
        given += f", gold={stage.options['gold']}"
    if stage.input == "pool" and stage.options.get("merge", "majority") not in RULES:
        given += f", merge={stage.options['merge']}"
    source = (
        "from freezer import load_answers\n\n"
        f"load_answers({answers_file!r}, {stage.name!r}, {given})"
    )
    return v4.new_code_cell(source, metadata={"tags": [TAG]})


def _note_cell(text: str) -> NotebookNode:
    return v4.new_markdown_cell(text, metadata={"tags": [TAG]})


@dataclass(frozen=True)
class Origin:
    """Where a cell of the thawed notebook comes from: its stage, and its position in the
    original notebook (None for a cell thawing inserted)."""

    stage: str | None
    cell: int | None


def thawed(
    source: NotebookNode, notebook: Notebook, document: dict[str, Any], answers_file: str
) -> tuple[NotebookNode, list[Origin]]:
    """The notebook with the notes and answer cells inserted after each input stage's
    cells, and where each of its cells comes from."""
    stage_of = {index: stage for stage in notebook.stages for index in stage.cells}
    last_of = {max(stage.cells): stage for stage in notebook.stages if stage.kind == "input"}
    intro = _note_cell(
        f"*Thawed by nbfreeze on {_when(document['made'])} from the app's answers: after "
        "each input stage a note says who answered what, and a cell puts the answers into "
        f"its widget, read from `{answers_file}` beside this notebook.*"
    )
    cells, origins = [intro], [Origin(None, None)]
    for index, cell in enumerate(source.cells, start=1):
        stage = stage_of.get(index)
        if cell.cell_type == "code":  # else a failure leaves the author's old outputs after it
            cell = nbformat.from_dict({**cell, "outputs": [], "execution_count": None})
        cells.append(cell)
        origins.append(Origin(stage.name if stage else None, index))
        input_stage = last_of.get(index)
        if input_stage is None:
            continue
        entry = document["stages"][input_stage.name]
        note = {"pool": _pool_note, "owner": _owner_note, "each": _each_note}[entry["input"]]
        cells.append(_note_cell(note(input_stage, entry)))
        origins.append(Origin(input_stage.name, None))
        given = entry["input"] == "pool" and entry["labels"]
        if given or (entry["input"] == "owner" and entry["state"] is not None):
            cells.append(_answer_cell(input_stage, answers_file))
            origins.append(Origin(input_stage.name, None))
    made = nbformat.from_dict({**source, "cells": cells})
    made.metadata["nbfreeze"] = {"thawed_from": notebook.name, "answers": answers_file}
    return made, origins


def _failure(notebook: NotebookNode, origins: list[Origin], name: str, output: Path) -> str:
    """The one line that says which cell failed and how."""
    for position, cell in enumerate(notebook.cells, start=1):
        error = next((o for o in cell.get("outputs", ()) if o.output_type == "error"), None)
        if error is None:
            continue
        origin = origins[position - 1]
        what = f"{error.ename}: {error.evalue}"
        if origin.cell is None:
            return (
                f"{output}: the answers of stage `{origin.stage}` could not be put into its "
                f"widget (cell {position} of the thawed notebook): {what}"
            )
        return (
            f"{output}: stage `{origin.stage}` failed at cell {origin.cell} of {name} "
            f"(cell {position} of the thawed notebook): {what}"
        )
    return f"{output}: the notebook did not run to the end"


async def execute(
    notebook: NotebookNode, origins: list[Origin], name: str, output: Path
) -> str | None:
    """Run the notebook top to bottom in a Jupyter kernel started in `output`'s folder,
    as Jupyter runs it there, stopping at the first error as "Run all" does; the line
    that says which cell failed, or None."""
    client = NotebookClient(notebook, resources={"metadata": {"path": str(output.parent)}})
    try:
        await client.async_execute()
    except CellExecutionError:
        return _failure(notebook, origins, name, output)
    except DeadKernelError as error:
        return f"{output}: the kernel died while the notebook ran ({error})"
    except NoSuchKernel as error:
        raise ThawRefused(f"{name}: no Jupyter kernel named '{error.name}' is installed") from None
    return None


async def thaw(bundle_dir: Path, store: Store, output: Path) -> Thawed:
    """Write the thawed notebook at `output` and its answers beside it, run top to bottom
    on the app's answers (pools merged with the owner's accuracy floors, as the store
    keeps them); a failed cell is left with its error in place."""
    notebook = bundles.load(bundle_dir)
    source = nbformat.read(bundle_dir / "notebook.ipynb", as_version=4)
    # Off the event loop: a server thaws while it serves, and a pool's labels are many.
    document = await asyncio.get_running_loop().run_in_executor(None, answers, store, notebook)
    answers_path = answers_beside(output)
    answers_path.write_text(json.dumps(document, indent=1) + "\n")
    made, origins = thawed(source, notebook, document, answers_path.name)
    failure = await execute(made, origins, notebook.name, output)
    nbformat.write(made, output)
    return Thawed(output, answers_path, failure)
