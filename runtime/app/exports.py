"""A pool stage's labels as a download from the owner's dashboard or as files from
`nbfreeze export`: the store's export rows (`runtime.store.exports`) with what only the
stage's widget knows, its item ids and, for a `BoxEditor`, its image and boxes.

`nbfreeze export` has no running app: for COCO it runs the shared stages up to the box
stage headless (from the cache when the app has run them), as a server process does at
start; the other formats need the database alone.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from freezer.widgets import item_key, item_keys
from freezer.widgets.box_editor import BoxEditor
from runtime.app.pipeline import DONE, LABELING, Pipeline, Pool, decisions, merged_labels
from runtime.app.stage_limits import Limits
from runtime.bundle import Notebook
from runtime.host import comm, shell, singletons
from runtime.store import exports, pools
from runtime.store.database import Store
from runtime.store.merging import MergeError

FORMATS = ("jsonl", "csv", "coco", "hf")
# What each format's download is called after the stage's name, and its type.
DOWNLOADS = {
    "jsonl": (".jsonl", "application/jsonl; charset=utf-8"),
    "csv": (".csv", "text/csv; charset=utf-8"),
    "coco": (".coco.json", "application/json; charset=utf-8"),
    "hf": (".hf.zip", "application/zip"),
}
NAMES = {"jsonl": "JSON Lines", "csv": "CSV", "coco": "COCO", "hf": "Hugging Face dataset"}
_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif"}


class ExportRefused(ValueError):
    """An export that cannot be made, with a message naming what is wrong."""


@dataclass(frozen=True)
class Download:
    """A file to hand over: its bytes, type and name."""

    body: bytes
    content_type: str
    filename: str


def stage_items(
    store: Store, stage: str, pool: Pool | None = None, floor: float | None = None
) -> list[dict[str, Any]]:
    """A pool stage's per-item rows (`runtime.store.exports.items`), with its review
    decisions (`#| review:`) in place of the merge. With the open pool, merged by its own
    rule (labelers under the accuracy `floor` left out), its gold items flagged and its
    ids the widget's own; from the database alone, by majority."""
    rows = pools.annotations(store, stage)
    names = {user.id: user.name for user in store.users()}
    reviews = {key: (d.label, d.reviewer) for key, d in decisions(store, stage).items()}
    if pool is None:
        return exports.items(rows, exports.majority(rows), names=names, reviews=reviews)
    try:
        merged = merged_labels(pool, rows, floor)
    except MergeError as error:
        raise ExportRefused(f"stage '{stage}': {error}") from None
    estimate = exports.Estimate(
        {item_key(i): str(label) for i, label in merged.labels.items()},
        {item_key(i): p for i, p in merged.probabilities.items()},
    )
    return exports.items(rows, estimate, names=names, ids=pool.ids, gold=pool.gold, reviews=reviews)


def is_boxes(pool: Pool | None) -> bool:
    return pool is not None and isinstance(pool.widget, BoxEditor)


def coco(
    stage: str, pool: Pool | None, rows: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], bytes]:
    """A box stage's COCO file and the image it names (`images[0].file_name`)."""
    widget = pool.widget if pool is not None else None
    if not isinstance(widget, BoxEditor):
        raise ExportRefused(
            f"stage '{stage}' shows a {type(widget).__name__}, not a BoxEditor: COCO is "
            "for boxes; export it as jsonl, csv or hf"
        )
    suffix = _SUFFIXES.get(widget._mime)
    size = image_size(widget._image)
    if suffix is None or size is None:
        raise ExportRefused(
            f"stage '{stage}': its image is {widget._mime or 'of an unknown type'}, whose "
            "size COCO needs but cannot be read here; give the BoxEditor a PNG, JPEG or GIF"
        )
    boxes = dict(zip(item_keys([b["id"] for b in widget.boxes]), widget.boxes, strict=True))
    image = {"file_name": stage + suffix, "width": size[0], "height": size[1]}
    return exports.as_coco(rows, boxes, widget.choices, image), widget._image


def image_size(data: bytes) -> tuple[int, int] | None:
    """The width and height of PNG, GIF or JPEG bytes, from their header."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data.startswith(b"\xff\xd8"):
        at = 2
        while at + 9 <= len(data) and data[at] == 0xFF:
            marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
            # Start-of-frame markers (not DHT, JPG, DAC) carry the height, then the width.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[at + 5 : at + 9])
                return width, height
            at += 2 + length
    return None


def download(
    store: Store, stage: str, form: str, pool: Pool, floor: float | None = None
) -> Download:
    """An open pool stage's labels in `form` (one of FORMATS) as one file; `hf` is the
    dataset directory zipped, COCO the JSON file alone (its image is the stage's)."""
    rows = stage_items(store, stage, pool, floor)
    suffix, content_type = DOWNLOADS[form]
    if form == "jsonl":
        body = exports.as_jsonl(rows).encode()
    elif form == "csv":
        body = exports.as_csv(rows).encode()
    elif form == "coco":
        body = json.dumps(coco(stage, pool, rows)[0], indent=1).encode()
    else:
        _labeled({stage: rows})
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, text in exports.hf_files({stage: rows}).items():
                archive.writestr(f"{stage}/{name}", text)
        body = out.getvalue()
    return Download(body, content_type, stage + "-labels" + suffix)


def _labeled(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Refuse a Hugging Face dataset of no labeled item at all: `datasets` cannot load it."""
    if not any(rows.values()):
        names = ", ".join(f"'{stage}'" for stage in rows)
        raise ExportRefused(f"no labels yet in {names}: a Hugging Face dataset cannot be empty")


def write(
    store: Store, stages: dict[str, Pool | None], form: str, output: Path, *, single: bool
) -> list[Path]:
    """Write the stages' labels in `form` at `output`: the file itself when `single`
    (one stage asked for), else a file per stage in the directory `output`; `hf` is
    always one dataset directory, a configuration per stage. COCO needs each stage's
    open pool, and writes the image beside its file. The paths written."""
    rows = {stage: stage_items(store, stage, pool) for stage, pool in stages.items()}
    if form == "hf":
        _labeled(rows)
        output.mkdir(parents=True, exist_ok=True)
        for name, text in exports.hf_files(rows).items():
            (output / name).write_text(text)
        return [output]
    written = []
    for stage, items in rows.items():
        path = output if single else output / (stage + DOWNLOADS[form][0])
        path.parent.mkdir(parents=True, exist_ok=True)
        if form == "jsonl":
            path.write_text(exports.as_jsonl(items))
        elif form == "csv":
            path.write_text(exports.as_csv(items))
        else:
            document, image = coco(stage, stages[stage], items)
            path.write_text(json.dumps(document, indent=1))
            (path.parent / document["images"][0]["file_name"]).write_bytes(image)
        written.append(path)
    return written


async def write_coco(
    notebook: Notebook, store: Store, cache_dir: Path, stage: str | None, output: Path
) -> list[Path]:
    """`nbfreeze export --format coco`: run the shared stages headless until the pools
    are open, then write `stage`'s COCO file at `output`, or (no stage) every open box
    stage's in the directory `output`."""
    comm.install()
    shell.install()
    singletons.install()
    executor = ThreadPoolExecutor(4, thread_name_prefix="nbfreeze-export")
    pipeline = Pipeline(notebook, store, cache_dir, executor, limits=Limits(600.0, None))
    try:
        await pipeline.advance()
        if stage is not None:
            status = pipeline.status[stage]
            if stage not in pipeline.pools or status.state not in (LABELING, DONE):
                raise ExportRefused(f"stage '{stage}' cannot be opened: {status.reason}")
            return write(store, {stage: pipeline.pools[stage]}, "coco", output, single=True)
        boxes: dict[str, Pool | None] = {
            name: pool for name, pool in pipeline.pools.items() if is_boxes(pool)
        }
        if not boxes:
            raise ExportRefused("no open pool stage shows a BoxEditor, so none has a COCO export")
        return write(store, boxes, "coco", output, single=False)
    finally:
        await pipeline.session.close()
        executor.shutdown(wait=False, cancel_futures=True)
