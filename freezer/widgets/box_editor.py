"""`BoxEditor`: correct a detector's bounding boxes on an image by drawing.

The labeler moves, resizes, deletes, adds and names boxes; `boxes` comes back to
Python as a list of `{"id", "x", "y", "width", "height", "label"}` in the image's
pixels. For the labeling protocol each given box is an item and its label the class
name: in a `pool` stage the boxes are split between labelers, who name them (boxes a
labeler adds are kept in `boxes`, but only the given ones are pooled items). Every
box is on the page already, so the next batch a pool page holds (`prefetch`) is ids
alone: its Submit makes those boxes the editable ones at once.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import anywidget
import traitlets

from freezer.widgets.labeling import widget_css, widget_module
from freezer.widgets.media import as_media
from freezer.widgets.protocol import first_shown, item_key, items_with_ids

_CORNERS = (
    ("x0", "y0", "x1", "y1"),
    ("xmin", "ymin", "xmax", "ymax"),
    ("left", "top", "right", "bottom"),
)


def _field(row: Any, name: str) -> Any:
    try:
        return row[name]
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def _as_box(box_id: Hashable, row: Any) -> dict[str, Any]:
    """A box from a dict or row (x/y/width/height or two corners) or (x0, y0, x1, y1[, label])."""
    label = _field(row, "label")
    if _field(row, "width") is not None:
        x, y, w, h = (_field(row, k) for k in ("x", "y", "width", "height"))
    else:
        corners = next((c for c in _CORNERS if _field(row, c[0]) is not None), None)
        if corners is not None:
            x0, y0, x1, y1 = (_field(row, k) for k in corners)
        else:
            values = list(row)
            if len(values) not in (4, 5):
                raise ValueError(
                    f"box {box_id!r}: give x, y, width, height; x0, y0, x1, y1; "
                    "or a sequence (x0, y0, x1, y1[, label])"
                )
            x0, y0, x1, y1 = values[:4]
            label = values[4] if len(values) == 5 else None
        x, y, w, h = x0, y0, x1 - x0, y1 - y0
    try:
        x, y, w, h = (float(v) for v in (x, y, w, h))
    except (TypeError, ValueError):
        raise ValueError(f"box {box_id!r}: its coordinates are not numbers") from None
    return {"id": box_id, "x": x, "y": y, "width": w, "height": h, "label": label}


class BoxEditor(anywidget.AnyWidget):
    """An image with boxes to move, resize, delete, add and name with one of `labels`."""

    _esm = widget_module("box_editor.js")
    _css = widget_css("box_editor.css")
    _image = traitlets.Bytes().tag(sync=True)
    _mime = traitlets.Unicode().tag(sync=True)
    _choices = traitlets.List().tag(sync=True)
    _shown = traitlets.List().tag(sync=True)
    _shown_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    # The boxes of the next batch (`prefetch`), and a count of batches shown, which puts
    # right a page that moved to them when the server shows another batch.
    _ahead = traitlets.List().tag(sync=True)
    _ahead_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _turn = traitlets.Int(0).tag(sync=True)
    boxes = traitlets.List().tag(sync=True)

    labels = traitlets.Dict()
    choices = traitlets.Tuple()
    shown = traitlets.Tuple()
    ties = traitlets.Dict()
    probabilities = traitlets.Dict()
    confusion = traitlets.Dict()
    annotations = traitlets.List()

    def __init__(
        self,
        image: Any,
        boxes: Any = (),
        labels: Sequence[str] = ("object",),
        *,
        key: Any = None,
    ) -> None:
        choices = tuple(str(c) for c in labels)
        if not choices:
            raise ValueError("a BoxEditor needs at least one label to name boxes with")
        media = as_media(image)
        if media.kind != "image":
            raise ValueError("a BoxEditor's image must be an image (array, PIL image, bytes, path)")
        pairs = items_with_ids(boxes, key)
        for box_id, _ in pairs:
            try:
                json.dumps(box_id)
            except TypeError:
                raise ValueError(f"box id {box_id!r} must be a number or text") from None
        self.item_ids: tuple[Hashable, ...] = tuple(i for i, _ in pairs)
        self._item_set = set(self.item_ids)
        given = [_as_box(box_id, row) for box_id, row in pairs]
        super().__init__(
            _image=media.data, _mime=media.mime, _choices=list(choices), choices=choices
        )
        self.boxes = given
        self.show(first_shown(self.item_ids))

    @traitlets.validate("boxes")
    def _valid_boxes(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        checked, seen = [], set()
        for n, box in enumerate(proposal["value"]):
            if not isinstance(box, dict):
                raise traitlets.TraitError(f"box {n} is not an object")
            try:
                clean = _as_box(box.get("id"), box)
            except ValueError as error:
                raise traitlets.TraitError(str(error)) from None
            if clean["id"] is None or json.dumps(clean["id"]) in seen:
                raise traitlets.TraitError(f"box {n} needs an id of its own")
            seen.add(json.dumps(clean["id"]))
            if clean["width"] <= 0 or clean["height"] <= 0:
                raise traitlets.TraitError(f"box {clean['id']!r} has no area")
            if clean["label"] is not None and clean["label"] not in self.choices:
                raise traitlets.TraitError(
                    f"box {clean['id']!r}: {clean['label']!r} is not one of {list(self.choices)}"
                )
            checked.append(clean)
        return checked

    @traitlets.observe("boxes")
    def _boxes_changed(self, change: dict[str, Any]) -> None:
        labels = {
            b["id"]: b["label"]
            for b in change["new"]
            if b["id"] in self._item_set and b["label"] is not None
        }
        if labels != self.labels:
            self.labels = labels

    @traitlets.validate("labels")
    def _valid_labels(self, proposal: dict[str, Any]) -> dict[Hashable, str]:
        for box_id, label in proposal["value"].items():
            if box_id not in self._item_set:
                raise traitlets.TraitError(f"{box_id!r} is not a box of this editor")
            if label not in self.choices:
                raise traitlets.TraitError(f"{label!r} is not one of {list(self.choices)}")
        return dict(proposal["value"])

    @traitlets.observe("labels")
    def _labels_changed(self, change: dict[str, Any]) -> None:
        boxes = [
            {**b, "label": change["new"].get(b["id"])} if b["id"] in self._item_set else b
            for b in self.boxes
        ]
        if boxes != self.boxes:
            self.boxes = boxes

    def _wanted(self, ids: Iterable[Hashable]) -> list[Hashable]:
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._item_set]
        if unknown:
            raise KeyError(f"not boxes of this editor: {unknown!r}")
        return wanted

    def show(self, ids: Iterable[Hashable]) -> None:
        """Let the labeler edit only these boxes; the others are drawn faintly."""
        wanted = self._wanted(ids)
        self.shown = tuple(wanted)
        with self.hold_sync():
            self._shown = wanted
            self._shown_keys = [item_key(i) for i in wanted]
            self._turn += 1

    def prefetch(self, ids: Iterable[Hashable]) -> None:
        """Tell the page which boxes come next: its Submit makes them the editable ones
        at once (`advance`). No ids: nothing is held."""
        wanted = self._wanted(ids)
        with self.hold_sync():
            self._ahead = wanted
            self._ahead_keys = [item_key(i) for i in wanted]

    def advance(self, ids: Iterable[Hashable]) -> bool:
        """The page's Submit made the held boxes `ids` the editable ones: here too, with
        every box as the page has it. False, and nothing changes, when `ids` are not the
        held batch."""
        wanted = list(ids)
        if not wanted or wanted != self._ahead:
            return False
        self.shown = tuple(wanted)
        with self.hold_sync():
            self._shown, self._shown_keys = self._ahead, self._ahead_keys
            self._ahead, self._ahead_keys = [], []
            self._turn += 1
        return True
