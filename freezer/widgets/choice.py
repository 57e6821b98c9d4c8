"""`ChoiceLabeler`: a labeling widget built from standard ipywidgets.

One card per item shown (the item rendered, then one toggle button per choice), built
when the item is first shown: a labeler's page of a large pool holds their batch's
cards, not the pool's. It follows
the labeling protocol (`Labeling`): stable `item_ids`, a `labels` mapping from item id
to label that observers see change, its `choices`, and `show(ids)` to show a subset.

ToggleButtons have no keys, so a small anywidget view beside the cards (`ChoiceKeys`,
`static/choice.js`) gives the labeler Classify's: number keys, arrows, `u` to undo, Enter
to submit (`on_submit` in Jupyter, the page's Submit in the app), `?` for the key list.
It is the box's last child and holds no answer of its own, so the widget tree an `each`
stage saves (runtime/app/stage_run.py) and replays is the one it always was.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets

from freezer.png import encode_png
from freezer.widgets.labeling import SubmitOnEnter, widget_css, widget_module
from freezer.widgets.protocol import first_shown, index_items, item_key


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


class ChoiceKeys(anywidget.AnyWidget):
    """A ChoiceLabeler's keyboard, drawn beside its cards: the shown items' keys in the
    cards' order, the choices, and the shown items' labels, which the page sets."""

    _esm = widget_module("choice.js")
    _css = widget_css("choice.css")
    _keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _choices = traitlets.List().tag(sync=True)
    _labels = traitlets.Dict().tag(sync=True)

    @traitlets.validate("_labels")
    def _valid_labels(self, proposal: dict[str, Any]) -> dict[str, Any]:
        shown = set(self._keys)
        for key, label in proposal["value"].items():
            if key not in shown:
                raise traitlets.TraitError(f"{key} is not an item on the page")
            if label not in self._choices:
                raise traitlets.TraitError(f"{label!r} is not one of the choices {self._choices}")
        return dict(proposal["value"])


class ChoiceLabeler(SubmitOnEnter, widgets.VBox):
    """Label each item with one of `choices`; `labels` maps item id to the choice made.
    A click on a choice, or its number key on the focused item, labels it; arrows move
    between items, `u` undoes the last label, Enter submits (`on_submit`)."""

    labels = traitlets.Dict()
    choices = traitlets.Tuple()
    ties = traitlets.Dict()
    probabilities = traitlets.Dict()
    confusion = traitlets.Dict()
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
        self._submit_callbacks: list[Callable[[ChoiceLabeler], Any]] = []
        self._shown_keys: dict[str, Hashable] = {}
        self._keyboard = ChoiceKeys(_choices=list(choices))
        self._keyboard.observe(self._labels_from_page, names="_labels")
        self._keyboard.on_msg(self._on_message)
        super().__init__([self._progress, self._grid, self._keyboard], choices=tuple(choices))
        self.add_class("nbfc")
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
            card.add_class("nbfc-card")
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
        self._shown_keys = {item_key(i): i for i in wanted}
        self._grid.children = [self._card(i) for i in wanted]
        self._update_progress()

    def _update_progress(self) -> None:
        done = sum(1 for i in self.shown if i in self.labels)
        self._progress.value = f"<b>{done}</b> of {len(self.shown)} labeled"
        with self._keyboard.hold_sync():
            self._keyboard._keys = list(self._shown_keys)  # first: the labels are checked by it
            self._keyboard._labels = self._page_labels()

    def _page_labels(self) -> dict[str, str]:
        return {key: self.labels[i] for key, i in self._shown_keys.items() if i in self.labels}

    def _labels_from_page(self, change: dict[str, Any]) -> None:
        """The shown items' labels as the page's keys set them (or undid them)."""
        if change["new"] == self._page_labels():
            return  # what Python told the page
        labels = dict(self.labels)
        for key, item_id in self._shown_keys.items():
            if key in change["new"]:
                labels[item_id] = change["new"][key]
            else:
                labels.pop(item_id, None)
        self.labels = labels
