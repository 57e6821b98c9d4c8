"""`ChoiceLabeler`: a labeling widget built from standard ipywidgets only.

One card per item (the item rendered, then one toggle button per choice). It follows
the labeling protocol (`Labeling`): stable `item_ids`, a `labels` mapping from item id
to label that observers see change, its `choices`, and `show(ids)` to show a subset.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import traitlets

from freezer.png import encode_png
from freezer.widgets.protocol import first_shown, items_with_ids


def render_item(item: Any) -> widgets.Widget:
    """A widget showing one item: arrays become images, PNG bytes images, else text."""
    if isinstance(item, widgets.Widget):
        return item
    if isinstance(item, bytes):
        return widgets.Image(value=item, format="png", width=96, height=96)
    array = np.asarray(item) if isinstance(item, (np.ndarray, list)) else None
    if array is not None and array.ndim in (2, 3) and array.dtype != object:
        return widgets.Image(value=encode_png(array), format="png", width=96, height=96)
    return widgets.Label(value=str(item))


class ChoiceLabeler(widgets.VBox):
    """Label each item with one of `choices`; `labels` maps item id to the choice made."""

    labels = traitlets.Dict()
    choices = traitlets.Tuple()
    ties = traitlets.Dict()
    annotations = traitlets.List()

    def __init__(
        self,
        items: Iterable[Any],
        choices: Sequence[str],
        *,
        render: Callable[[Any], Any] | None = None,
        key: Callable[[Any], Hashable] | None = None,
        columns: int = 6,
    ) -> None:
        if not choices:
            raise ValueError("a ChoiceLabeler needs at least one choice")
        pairs = items_with_ids(items, key)
        self.item_ids: tuple[Hashable, ...] = tuple(i for i, _ in pairs)
        self._buttons: dict[Hashable, widgets.ToggleButtons] = {}
        self._cards: dict[Hashable, widgets.VBox] = {}
        show = render or render_item
        for item_id, item in pairs:
            buttons = widgets.ToggleButtons(
                options=list(choices),
                value=None,
                style={"button_width": "auto"},
                layout=widgets.Layout(width="auto"),
            )
            buttons.observe(self._recorder(item_id), names="value")
            view = show(item)
            self._buttons[item_id] = buttons
            self._cards[item_id] = widgets.VBox(
                [view if isinstance(view, widgets.Widget) else render_item(view), buttons],
                layout=widgets.Layout(border="1px solid #ddd", padding="4px", align_items="center"),
            )
        self._grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat({columns}, max-content)", grid_gap="6px"
            )
        )
        self._progress = widgets.HTML()
        super().__init__([self._progress, self._grid], choices=tuple(choices))
        self.observe(lambda _change: self._update_progress(), names="labels")
        self.show(first_shown(self.item_ids))

    def _recorder(self, item_id: Hashable) -> Callable[[dict[str, Any]], None]:
        def record(change: dict[str, Any]) -> None:
            labels = dict(self.labels)
            if change["new"] is None:
                labels.pop(item_id, None)
            else:
                labels[item_id] = change["new"]
            self.labels = labels

        return record

    @traitlets.validate("labels")
    def _valid_labels(self, proposal: dict[str, Any]) -> dict[Hashable, str]:
        labels = proposal["value"]
        for item_id, label in labels.items():
            if item_id not in self._buttons:
                raise traitlets.TraitError(f"{item_id!r} is not an item of this labeler")
            if label not in self.choices:
                raise traitlets.TraitError(
                    f"{label!r} is not one of the choices {list(self.choices)}"
                )
        return labels

    @traitlets.observe("labels")
    def _sync_buttons(self, change: dict[str, Any]) -> None:
        for item_id, buttons in self._buttons.items():
            buttons.value = change["new"].get(item_id)

    def show(self, ids: Iterable[Hashable]) -> None:
        """Show only the items whose ids are given, in that order."""
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._cards]
        if unknown:
            raise KeyError(f"not items of this labeler: {unknown!r}")
        self.shown = tuple(wanted)
        self._grid.children = [self._cards[i] for i in wanted]
        self._update_progress()

    def _update_progress(self) -> None:
        done = sum(1 for i in self.shown if i in self.labels)
        self._progress.value = f"<b>{done}</b> of {len(self.shown)} labeled"
