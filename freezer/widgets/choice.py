"""`ChoiceLabeler`: a labeling widget built from standard ipywidgets only.

One card per item shown (the item rendered, then one toggle button per choice), built
when the item is first shown: a labeler's page of a large pool holds their batch's
cards, not the pool's. It follows
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
from freezer.widgets.protocol import first_shown, index_items


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
        self._items = index_items(items, key)
        self._render = render or render_item
        self._buttons: dict[Hashable, widgets.ToggleButtons] = {}
        self._cards: dict[Hashable, widgets.VBox] = {}
        self._grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat({columns}, max-content)", grid_gap="6px"
            )
        )
        self._progress = widgets.HTML()
        super().__init__([self._progress, self._grid], choices=tuple(choices))
        self.observe(lambda _change: self._update_progress(), names="labels")
        self.show(first_shown(self._items))

    @property
    def item_ids(self) -> tuple[Hashable, ...]:
        return self._items.ids

    def _card(self, item_id: Hashable) -> widgets.VBox:
        """The item's card, built the first time it is shown."""
        card = self._cards.get(item_id)
        if card is None:
            buttons = widgets.ToggleButtons(
                options=list(self.choices),
                value=self.labels.get(item_id),
                style={"button_width": "auto"},
                layout=widgets.Layout(width="auto"),
            )
            buttons.observe(self._recorder(item_id), names="value")
            view = self._render(self._items[item_id])
            self._buttons[item_id] = buttons
            card = self._cards[item_id] = widgets.VBox(
                [view if isinstance(view, widgets.Widget) else render_item(view), buttons],
                layout=widgets.Layout(border="1px solid #ddd", padding="4px", align_items="center"),
            )
        return card

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
            if item_id not in self._items:
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
        """Show only the items whose ids are given, in that order (their cards are built
        when first shown)."""
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._items]
        if unknown:
            raise KeyError(f"not items of this labeler: {unknown!r}")
        self.shown = tuple(wanted)
        self._grid.children = [self._card(i) for i in wanted]
        self._update_progress()

    def _update_progress(self) -> None:
        done = sum(1 for i in self.shown if i in self.labels)
        self._progress.value = f"<b>{done}</b> of {len(self.shown)} labeled"
