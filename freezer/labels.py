"""`load_labels` and `load_answers`: the app's labels and answers back in a notebook."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any


def _database_url(bundle_or_url: str | Path) -> str:
    text = str(bundle_or_url)
    if "://" in text:
        return text
    path = Path(text)
    if path.suffix == ".ipynb":
        path = path.with_name(path.stem + ".nbfreeze")
    database = path / "app.sqlite"
    if not database.exists():
        raise FileNotFoundError(f"{database} does not exist: has the app been served yet?")
    return f"sqlite:///{database.resolve()}"


def load_labels(bundle_or_url: str | Path, stage: str) -> Any:
    """Every raw label of a pool stage as a pandas DataFrame: `item`, `labeler`,
    `labeler_name`, `label`, `time`. Give the bundle directory (or the notebook served
    from it, or a database URL such as `postgresql+psycopg://…`)."""
    import pandas as pd

    from runtime.store import pools
    from runtime.store.database import open_store

    store = open_store(_database_url(bundle_or_url))
    try:
        names = {user.id: user.name for user in store.users()}
        rows = [
            {
                "item": json.loads(row.item_key),
                "labeler": row.user_id,
                "labeler_name": names.get(row.user_id, ""),
                "label": row.label,
                "time": pd.Timestamp(row.created_at),
            }
            for row in pools.annotations(store, stage)
        ]
    finally:
        store.dispose()
    return pd.DataFrame(rows, columns=["item", "labeler", "labeler_name", "label", "time"])


def load_answers(
    answers_file: str | Path,
    stage: str,
    *,
    into: Any,
    gold: Mapping[Any, Any] | None = None,
    merge: Callable[..., Any] | None = None,
) -> None:
    """Put an input stage's answers from the app into its widget `into`, as the app gave
    them to the stages after it: for a pool stage the labels merged by the stage's rule
    (with `gold`, the mapping its `#| gold:` names, and `merge`, the function its
    `#| merge:` names, when it has them) and the reviewers' decisions, with
    `probabilities`, `ties`, `confusion` and every raw label in `annotations`; for an
    owner stage the owner's answer. A stage nobody answered yet leaves the widget as it
    is.
    `answers_file` is the JSON file `nbfreeze thaw` writes beside the thawed notebook
    (docs/labeling.md, "Thawing")."""
    import ipywidgets
    import traitlets

    from freezer.widgets import Labeling, item_key, item_keys
    from runtime.app.pipeline import (
        Decision,
        Pool,
        give_merged,
        merged_labels,
        raw_annotations,
        with_decisions,
    )
    from runtime.app.stage_run import AnswerError, apply_answer
    from runtime.store.merging import MergeError
    from runtime.store.pools import Row

    path = Path(answers_file)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no such answers file; `nbfreeze thaw` writes it beside the thawed notebook"
        ) from None
    except ValueError as error:
        raise ValueError(f"{path}: is not an answers file ({error})") from None
    stages = document.get("stages") if isinstance(document, dict) else None
    if not isinstance(stages, dict):
        raise ValueError(f"{path}: is not an answers file (it has no `stages`)")
    entry = stages.get(stage)
    if entry is None:
        raise ValueError(
            f"{path}: has no answers for stage '{stage}' (it has: {', '.join(stages) or 'none'})"
        )
    if entry["input"] == "each":
        raise ValueError(
            f"{path}: stage '{stage}' is answered by each labeler for themselves; "
            "there is no one answer to load"
        )
    if entry["input"] == "pool":
        if not isinstance(into, Labeling):
            raise TypeError(
                f"stage '{stage}' is a pool: `into` must be its labeling widget (item_ids, "
                f"labels, choices, show), not a {type(into).__name__}"
            )
        rows = [
            Row(a["item"], a["labeler"], a["label"], datetime.fromisoformat(a["time"]))
            for a in entry["labels"]
        ]
        ids = dict(zip(item_keys(into.item_ids), into.item_ids, strict=True))
        choices = tuple(str(c) for c in into.choices)
        pool = Pool(
            into,
            ids,
            choices,
            entry["overlap"],
            entry.get("overlap_max", entry["overlap"]),
            entry["batch"],
            entry["lease_seconds"],
            merge=entry.get("merge", "majority"),
            merge_function=merge,
            gold={item_key(item): str(answer) for item, answer in (gold or {}).items()},
        )
        decided = {
            key: Decision(label, 0, None) for key, label in entry.get("decisions", {}).items()
        }
        try:
            merged = with_decisions(pool, merged_labels(pool, rows, entry.get("floor")), decided)
        except (MergeError, ValueError) as error:
            raise ValueError(f"{path}, stage '{stage}': {error}") from None
        give_merged(into, merged, raw_annotations(pool, rows))
    elif entry["state"] is not None:
        if not isinstance(into, ipywidgets.Widget):
            raise TypeError(
                f"stage '{stage}': `into` must be the widget the stage shows, "
                f"not a {type(into).__name__}"
            )
        try:
            apply_answer(into, entry["state"])
        except (AnswerError, traitlets.TraitError) as error:
            raise ValueError(f"{path}, stage '{stage}': {error}") from None
