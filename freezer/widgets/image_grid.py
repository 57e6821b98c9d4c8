"""`ImageGrid`: pick the items that match from a grid of images."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import traitlets

from freezer.widgets.labeling import LabelingWidget


class ImageGrid(LabelingWidget):
    """A grid of images with captions; a click, or Space on the focused image, picks it.

    `selected` is the list of picked item ids. `labels` covers every item shown: the
    first of `choices` for a picked item, the second for the rest, so a labeler who
    picks nothing in a batch says "none of these"."""

    selected = traitlets.List()

    def __init__(
        self,
        items: Any,
        image: Callable[[Any], Any] | None = None,
        caption: Callable[[Any], Any] | None = None,
        *,
        key: Callable[[Any], Hashable] | str | None = None,
        choices: Sequence[str] = ("yes", "no"),
        size: int = 120,
        reference: Any = None,
    ) -> None:
        if len(tuple(choices)) != 2:
            raise ValueError("an ImageGrid has two choices: the picked items' and the others'")
        super().__init__(
            items,
            choices,
            render=image,
            caption=caption,
            key=key,
            _view="grid",
            _size=size,
            reference=reference,
        )

    def _starting_labels(self, ids: Sequence[Hashable], choices: Sequence[str]) -> dict:
        return {i: choices[1] for i in ids}

    def show(self, ids: Iterable[Hashable]) -> None:
        """Show only these items; their labels start as they were, or as not picked."""
        wanted = list(ids)
        super().show(wanted)
        unpicked = self.choices[1]
        self.labels = {i: self.labels.get(i, unpicked) for i in wanted}

    @traitlets.observe("labels")
    def _labels_changed(self, change: dict[str, Any]) -> None:
        picked = [i for i in self.shown if change["new"].get(i) == self.choices[0]]
        on_show = set(picked)  # a set: a merged pool's labels can hold a million picks
        picked += [i for i, v in change["new"].items() if v == self.choices[0] and i not in on_show]
        if picked != self.selected:
            self.selected = picked

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: dict[str, Any]) -> list[Hashable]:
        unknown = [i for i in proposal["value"] if i not in self._items_by_id]
        if unknown:
            raise traitlets.TraitError(f"not items of this grid: {unknown!r}")
        return list(proposal["value"])

    @traitlets.observe("selected")
    def _selected_changed(self, change: dict[str, Any]) -> None:
        picked = set(change["new"])
        yes, no = self.choices
        labels = {i: (yes if i in picked else no) for i in self.labels}
        labels.update({i: yes for i in picked})
        if labels != self.labels:
            self.labels = labels
