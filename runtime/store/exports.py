"""A pool stage's labels as files to take away: one row per item, in four formats.

Every format is built from the same per-item rows (`items`): the item's key and id, the
merged label and its probability, every raw label with who gave it and when, and the
`gold` and `review` flags. The merge is passed in, so that any merge rule whose result
has `labels` and `probabilities` by item key gives the same files; `majority` is today's
rule, with the merged label's share of the votes as its probability.

The formats: JSON Lines (an item a line, raw labels nested), CSV (a row per raw label,
the item's columns repeated), COCO for boxes (from the boxes' geometry, passed in as
plain numbers) and a directory that Hugging Face `datasets` loads (JSON Lines files and
a README naming each stage's file as a configuration).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select

from runtime.store.agreement import merge
from runtime.store.database import Item, Store
from runtime.store.pools import Row, labels_by_item

CSV_COLUMNS = (
    "key",
    "id",
    "label",
    "probability",
    "gold",
    "review",
    "reviewer",
    "reviewer_name",
    "labeler",
    "labeler_name",
    "labeler_label",
    "time",
)


class MergeResult(Protocol):
    """What a merge rule gives: each item's merged label and its probability, by key."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def probabilities(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class Estimate:
    """Merged labels and their probabilities, by item key."""

    labels: dict[str, str]
    probabilities: dict[str, float]


def pool_stages(store: Store) -> list[str]:
    """The pool stages an app's database has items of, by name: what a database alone
    tells of its notebook."""
    with store.reading() as connection:
        names = connection.scalars(select(Item.stage).distinct().order_by(Item.stage))
        return [name for name in names if "/" not in name]  # not a pool's review queue


def majority(rows: Sequence[Row]) -> Estimate:
    """The majority label of each item, its probability the share of the item's labels
    that gave it (a tie keeps the label given first, as `agreement.merge` does)."""
    grouped = labels_by_item(list(rows))
    merged = merge(grouped)
    probabilities = {
        key: Counter(grouped[key])[label] / len(grouped[key])
        for key, label in merged.labels.items()
    }
    return Estimate({str(k): str(v) for k, v in merged.labels.items()}, probabilities)


def items(
    rows: Sequence[Row],
    merged: MergeResult,
    *,
    names: Mapping[int, str],
    ids: Mapping[str, Any] | None = None,
    gold: Container[str] = (),
    reviews: Mapping[str, tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """One row per labeled item, in the order of their first labels:
    `{"key", "id", "label", "probability", "gold", "review", "reviewer", "reviewer_name",
    "annotations": [{"labeler", "labeler_name", "label", "time"}]}`. `ids` gives each
    key's item id (the widget's own, a tuple say); without it the id is read back from the
    key's JSON. `gold` names the keys of the pool's gold items. `reviews` gives a
    reviewed item's decision and its reviewer's user id, by key: its label is the
    decision, with probability 1, `review` is True and `reviewer` and `reviewer_name` say
    who decided (None for an item not reviewed)."""
    by_key: dict[str, dict[str, Any]] = {}
    reviews = reviews or {}
    for row in rows:
        item = by_key.get(row.item_key)
        if item is None:
            key = row.item_key
            decision, reviewer = reviews.get(key, (None, None))
            item = by_key[key] = {
                "key": key,
                "id": ids[key] if ids is not None and key in ids else json.loads(key),
                "label": merged.labels.get(key) if decision is None else decision,
                "probability": merged.probabilities.get(key) if decision is None else 1.0,
                "gold": key in gold,
                "review": decision is not None,
                "reviewer": reviewer,
                "reviewer_name": None if reviewer is None else names.get(reviewer, ""),
                "annotations": [],
            }
        item["annotations"].append(
            {
                "labeler": row.user_id,
                "labeler_name": names.get(row.user_id, ""),
                "label": row.label,
                "time": _utc(row.created_at).isoformat(),
            }
        )
    return list(by_key.values())


def _utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def as_jsonl(rows: Iterable[Mapping[str, Any]]) -> str:
    """An item a line, its raw labels nested under `annotations`."""
    return "".join(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)


def as_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """A row per raw label (`CSV_COLUMNS`); the item's key, id, merged label, probability,
    flags and reviewer are repeated on each of its rows, the raw label is `labeler_label`."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for item in rows:
        shown_id = item["id"] if isinstance(item["id"], str) else json.dumps(item["id"])
        head = [item["key"], shown_id, item["label"], item["probability"]]
        head += [item["gold"], item["review"], item["reviewer"], item["reviewer_name"]]
        for given in item["annotations"]:
            tail = [given["labeler"], given["labeler_name"], given["label"], given["time"]]
            writer.writerow(head + tail)
    return out.getvalue()


def as_coco(
    rows: Iterable[Mapping[str, Any]],
    boxes: Mapping[str, Mapping[str, float]],
    choices: Sequence[str],
    image: Mapping[str, Any],
) -> dict[str, Any]:
    """A COCO object-detection file for one image: `boxes` gives each item key's `x`,
    `y`, `width`, `height` in pixels, `choices` the categories (ids from 1, in order),
    `image` its `file_name`, `width` and `height`. A labeled box is an annotation with
    its merged label as category; `item`, `probability`, `gold`, `review` and `reviewer`
    ride along."""
    categories = {name: number for number, name in enumerate(choices, start=1)}
    annotations = []
    for item in rows:
        box = boxes.get(item["key"])
        if box is None or item["label"] not in categories:
            continue
        x, y, width, height = (float(box[k]) for k in ("x", "y", "width", "height"))
        annotations.append(
            {
                "id": len(annotations) + 1,
                "image_id": 1,
                "category_id": categories[item["label"]],
                "bbox": [x, y, width, height],
                "area": width * height,
                "iscrowd": 0,
                "item": item["id"],
                "probability": item["probability"],
                "gold": item["gold"],
                "review": item["review"],
                "reviewer": item["reviewer"],
            }
        )
    return {
        "info": {"description": "labels exported by nbfreeze"},
        "images": [{"id": 1, **image}],
        "annotations": annotations,
        "categories": [
            {"id": n, "name": name, "supercategory": ""} for name, n in categories.items()
        ],
    }


def hf_files(stages: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    """The files of a directory that `datasets.load_dataset(DIR, STAGE)` loads: a JSON
    Lines file per stage and a README.md whose card names each file as a configuration
    (the first the default, so one stage loads with `load_dataset(DIR)` too). A stage
    with no labeled item is left out: `datasets` cannot load an empty file."""
    card = ["---", "configs:"]
    files = {}
    labeled = {stage: rows for stage, rows in stages.items() if rows}
    for number, (stage, rows) in enumerate(labeled.items()):
        card += [f"- config_name: {stage}", f"  data_files: {stage}.jsonl"]
        if number == 0:
            card.append("  default: true")
        files[f"{stage}.jsonl"] = as_jsonl(rows)
    card += ["---", "", "Labels exported by nbfreeze: a configuration per pool stage.", ""]
    return {"README.md": "\n".join(card), **files}
