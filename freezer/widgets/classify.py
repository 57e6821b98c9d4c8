"""`Classify`: one button per choice for each item, shown one at a time or a page at once."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from freezer.widgets.labeling import LabelingWidget


class Classify(LabelingWidget):
    """Label each item with one of `choices`: a click on the choice's button, or its
    number key. Arrows move between items, `u` undoes the last label, Enter submits.
    `show(item)` renders an item (an image, text, or `trusted_html(...)`)."""

    def __init__(
        self,
        items: Any,
        choices: Sequence[str],
        show: Callable[[Any], Any] | None = None,
        *,
        key: Callable[[Any], Hashable] | str | None = None,
        caption: Callable[[Any], Any] | None = None,
        per_page: int = 1,
        reference: Any = None,
    ) -> None:
        if per_page < 1:
            raise ValueError("per_page is how many items a page shows: 1 or more")
        super().__init__(
            items,
            choices,
            render=show,
            caption=caption,
            key=key,
            _view="classify",
            _per_page=per_page,
            reference=reference,
        )
