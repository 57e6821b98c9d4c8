"""`ChoiceLabeler`: a labeling widget built from standard ipywidgets.

One card per item shown (the item rendered, then one toggle button per choice), built
when the item is first shown: a labeler's page of a large pool holds their batch's
cards, not the pool's. It follows
the labeling protocol (`Labeling`): stable `item_ids`, a `labels` mapping from item id
to label that observers see change, its `choices`, and `show(ids)` to show a subset.

ToggleButtons have no keys, so a small anywidget view beside the cards (`ChoiceKeys`,
`static/choice.js`) gives the labeler Classify's: number keys, arrows, `u` to undo, Enter
to submit (`on_submit` in Jupyter, the page's Submit in the app), `?` for the key list.
It holds no answer of its own, so the widget tree an `each` stage saves
(runtime/app/stage_run.py) and replays is the one it always was.

In the app's pool pages the next batch's cards wait in a second, hidden grid
(`prefetch`), the box's last child, so that paths of answers saved before it still
hold. The page's Submit shows that grid at once; `advance` then makes it the shown one.
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


def _grid(columns: int, hidden: bool = False) -> widgets.GridBox:
    layout = widgets.Layout(
        grid_template_columns=f"repeat({columns}, max-content)",
        grid_gap="6px",
        display="none" if hidden else None,
    )
    grid = widgets.GridBox(layout=layout)
    grid.add_class("nbfc-grid")
    return grid


class ChoiceKeys(anywidget.AnyWidget):
    """A ChoiceLabeler's keyboard, drawn beside its cards: the shown items' keys in the
    cards' order, the held batch's (`_ahead_keys`), the choices, and the labels of both,
    which the page sets. `_turn` counts the batches shown; its parity says which of the
    two grids shows them, so that a page that moved ahead on its own is put right."""

    _esm = widget_module("choice.js")
    _css = widget_css("choice.css")
    _keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _ahead_keys = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _turn = traitlets.Int(0).tag(sync=True)
    _choices = traitlets.List().tag(sync=True)
    _labels = traitlets.Dict().tag(sync=True)

    @traitlets.validate("_labels")
    def _valid_labels(self, proposal: dict[str, Any]) -> dict[str, Any]:
        shown = {*self._keys, *self._ahead_keys}
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
        # The shown batch's grid and the held one's, which swap at each batch held.
        self._grids = (_grid(columns), _grid(columns, hidden=True))
        self._progress = widgets.HTML()
        self._submit_callbacks: list[Callable[[ChoiceLabeler], Any]] = []
        self._shown_keys: dict[str, Hashable] = {}
        self._ahead_keys: dict[str, Hashable] = {}
        self._keyboard = ChoiceKeys(_choices=list(choices))
        self._keyboard.observe(self._labels_from_page, names="_labels")
        self._keyboard.on_msg(self._on_message)
        parts = [self._progress, self._grids[0], self._keyboard, self._grids[1]]
        super().__init__(parts, choices=tuple(choices))
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

    def _wanted(self, ids: Iterable[Hashable]) -> list[Hashable]:
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._items]
        if unknown:
            raise KeyError(f"not items of this labeler: {unknown!r}")
        return wanted

    def _grid_showing(self, held: bool = False) -> widgets.GridBox:
        """The grid of the shown batch, or of the held one."""
        return self._grids[(self._keyboard._turn + held) % 2]

    def show(self, ids: Iterable[Hashable]) -> None:
        """Show only the items whose ids are given, in that order (their cards are built
        when first shown)."""
        wanted = self._wanted(ids)
        self.shown = tuple(wanted)
        self._shown_keys = {item_key(i): i for i in wanted}
        self._grid_showing().children = [self._card(i) for i in wanted]
        self._keyboard._turn += 2  # the same grid, and a page that moved ahead comes back
        self._update_progress()

    def prefetch(self, ids: Iterable[Hashable]) -> None:
        """Build these items' cards ahead of time in the hidden grid: the page draws them
        and loads their images, and shows them only when its Submit moves to them
        (`advance`). No ids: nothing is held."""
        wanted = self._wanted(ids)
        self._ahead_keys = {item_key(i): i for i in wanted}
        self._grid_showing(held=True).children = [self._card(i) for i in wanted]
        self._update_progress()

    def advance(self, ids: Iterable[Hashable]) -> bool:
        """The page's Submit moved it to the held items `ids`, which it shows already:
        the held grid becomes the shown one, and the labels are those the page gave the
        held items meanwhile. False, and nothing changes, when `ids` are not the held
        batch."""
        wanted = list(ids)
        if not wanted or [item_key(i) for i in wanted] != list(self._ahead_keys):
            return False
        self.shown = tuple(wanted)
        self._shown_keys, self._ahead_keys = self._ahead_keys, {}
        self._keyboard._turn += 1
        self._grid_showing().layout.display = None
        self._grid_showing(held=True).layout.display = "none"
        self.labels = {i: label for i, label in self.labels.items() if i in set(wanted)}
        self._update_progress()
        return True

    def _update_progress(self) -> None:
        done = sum(1 for i in self.shown if i in self.labels)
        self._progress.value = f"<b>{done}</b> of {len(self.shown)} labeled"
        with self._keyboard.hold_sync():
            # First: the labels are checked against them.
            self._keyboard._keys = list(self._shown_keys)
            self._keyboard._ahead_keys = list(self._ahead_keys)
            self._keyboard._labels = self._page_labels()

    def _on_page(self) -> dict[str, Hashable]:
        return {**self._shown_keys, **self._ahead_keys}

    def _page_labels(self) -> dict[str, str]:
        return {key: self.labels[i] for key, i in self._on_page().items() if i in self.labels}

    def _labels_from_page(self, change: dict[str, Any]) -> None:
        """The shown and held items' labels as the page's keys set them (or undid them)."""
        if change["new"] == self._page_labels():
            return  # what Python told the page
        labels = dict(self.labels)
        for key, item_id in self._on_page().items():
            if key in change["new"]:
                labels[item_id] = change["new"][key]
            else:
                labels.pop(item_id, None)
        self.labels = labels
