"""Labeling widgets the author uses in Jupyter and the labelers see in the app.

Every one follows the labeling protocol (`Labeling`), so it works in `each`, `owner`
and `pool` stages alike. `ChoiceLabeler` is built from standard ipywidgets; `ImageGrid`,
`Classify` and `BoxEditor` are anywidget widgets (a Python class, a plain ES module and
CSS, no build step). docs/labeling.md and docs/widgets.md say how to use them.
"""

from freezer.widgets.box_editor import BoxEditor
from freezer.widgets.choice import ChoiceLabeler, render_item
from freezer.widgets.classify import Classify
from freezer.widgets.image_grid import ImageGrid
from freezer.widgets.media import trusted_html
from freezer.widgets.protocol import (
    ItemIndex,
    Labeling,
    Prefetching,
    first_shown,
    index_items,
    item_key,
    item_keys,
    items_with_ids,
    showing_first,
)

__all__ = [
    "BoxEditor",
    "ChoiceLabeler",
    "Classify",
    "ImageGrid",
    "ItemIndex",
    "Labeling",
    "Prefetching",
    "first_shown",
    "index_items",
    "item_key",
    "item_keys",
    "items_with_ids",
    "render_item",
    "showing_first",
    "trusted_html",
]
