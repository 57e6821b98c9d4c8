"""The anywidget base of the stock labeling widgets: items, images, labels, submit.

One ES module (`static/labeling.js`) draws every stock labeler, in Jupyter and in the
frozen app alike. Python keeps all the items where the author has them (`index_items`:
no copy, no object per item); a page is sent only the items shown (a labeler's batch),
each drawn and its image encoded once, when first shown, and sent as a binary buffer.
Item ids travel as their `item_key` strings, so any hashable id survives the round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from freezer.widgets.media import Media, as_media
from freezer.widgets.protocol import first_shown, index_items, item_key

STATIC = Path(__file__).parent / "static"
_KEY_LIST_IMPORT = "import { keyList } from './keys.js';\n"


def widget_module(name: str) -> str:
    """A stock widget's ES module (`static/NAME`) with the shared `?` key list in it.

    Each module imports `keyList` from `static/keys.js`, but anywidget runs a module
    from a `blob:` URL, where no relative import resolves: the widgets share that
    file's text, put in place of the import line, not a module."""
    own = (STATIC / name).read_text(encoding="utf-8")
    if _KEY_LIST_IMPORT not in own:
        raise ValueError(f"{name} does not import keyList from './keys.js'")
    shared = (STATIC / "keys.js").read_text(encoding="utf-8").replace("\nexport ", "\n")
    return own.replace(_KEY_LIST_IMPORT, shared, 1)


def widget_css(name: str) -> str:
    """A stock widget's style sheet (`static/NAME`) after the key list's."""
    return "\n".join((STATIC / n).read_text(encoding="utf-8") for n in ("keys.css", name))


def _labels_to_json(labels: dict[Hashable, Any], widget: LabelingWidget) -> dict[str, Any]:
    return {item_key(item_id): label for item_id, label in labels.items()}


def _labels_from_json(labels: Any, widget: LabelingWidget) -> dict[Hashable, Any]:
    if not isinstance(labels, dict):
        raise traitlets.TraitError("labels must be an object mapping item keys to labels")
    try:
        return {widget._items_by_id.id_of(key): label for key, label in labels.items()}
    except KeyError as missing:
        raise traitlets.TraitError(f"{missing.args[0]} is not an item of this labeler") from None


def _described(media: Media, image: int) -> dict[str, Any]:
    """How a page is told of a reference: its kind and text, and which image it is."""
    at = image if media.kind == "image" else -1
    return {"kind": media.kind, "text": media.text, "mime": media.mime, "image": at}


class SubmitOnEnter:
    """`on_submit(callback)` for a labeler whose page sends `{"event": "submit"}` when the
    person presses Enter; the labeler sets `_submit_callbacks` and passes `_on_message`
    to the `on_msg` of the widget that has the keys."""

    _submit_callbacks: list[Callable[[Any], Any]]

    def on_submit(self, callback: Callable[[Any], Any], remove: bool = False) -> None:
        """Call `callback(labeler)` when the person presses Enter to submit."""
        if remove:
            self._submit_callbacks.remove(callback)
        else:
            self._submit_callbacks.append(callback)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            for callback in list(self._submit_callbacks):
                callback(self)


class LabelingWidget(SubmitOnEnter, anywidget.AnyWidget):
    """Items with stable ids, `labels` (item id → label, synced and observable), the
    `choices`, `show(ids)` for a subset, and `on_submit` for the Enter key."""

    _esm = widget_module("labeling.js")
    _css = widget_css("labeling.css")
    _view = traitlets.Unicode().tag(sync=True)
    _items = traitlets.List().tag(sync=True)
    _images = traitlets.List(traitlets.Bytes()).tag(sync=True)
    _choices = traitlets.List().tag(sync=True)
    _per_page = traitlets.Int(1).tag(sync=True)
    _size = traitlets.Int(120).tag(sync=True)
    # What every item is compared with (`reference=` a value), shown once above them.
    _reference = traitlets.Dict().tag(sync=True)
    _reference_image = traitlets.Bytes(None, allow_none=True).tag(sync=True)
    # The batch after the shown one (`prefetch`), which the page gets ready and does not
    # show until its Submit moves to it.
    _ahead_items = traitlets.List().tag(sync=True)
    _ahead_images = traitlets.List(traitlets.Bytes()).tag(sync=True)

    labels = traitlets.Dict().tag(sync=True, to_json=_labels_to_json, from_json=_labels_from_json)
    choices = traitlets.Tuple()
    shown = traitlets.Tuple()
    ties = traitlets.Dict()
    probabilities = traitlets.Dict()
    confusion = traitlets.Dict()
    annotations = traitlets.List()

    def __init__(
        self,
        items: Any,
        choices: Sequence[str],
        *,
        render: Callable[[Any], Any] | None = None,
        caption: Callable[[Any], Any] | None = None,
        key: Callable[[Any], Hashable] | str | None = None,
        reference: Any = None,
        **kwargs: Any,
    ) -> None:
        choices = tuple(str(c) for c in choices)
        if not choices:
            raise ValueError(f"a {type(self).__name__} needs at least one choice")
        if len(set(choices)) != len(choices):
            raise ValueError(f"choices must differ from each other: {list(choices)}")
        self._items_by_id = index_items(items, key)
        self._render = render
        self._caption = caption
        # A function gives each item its own reference, shown beside it; any other value
        # is one reference for every item, sent once.
        self._reference_of = reference if callable(reference) else None
        self._references: dict[Hashable, Media] = {}
        if reference is not None and not callable(reference):
            fixed = as_media(reference)
            kwargs["_reference"] = _described(fixed, -1)
            kwargs["_reference_image"] = fixed.data if fixed.kind == "image" else None
        self._media: dict[Hashable, Media] = {}
        self._ahead: tuple[Hashable, ...] = ()
        self._submit_callbacks: list[Callable[[LabelingWidget], Any]] = []
        shown = first_shown(self._items_by_id)
        items, images = self._payload(shown)
        super().__init__(
            choices=choices,
            _choices=list(choices),
            shown=shown,
            _items=items,
            _images=images,
            labels=self._starting_labels(shown, choices),
            **kwargs,
        )
        self.on_msg(self._on_message)

    @property
    def item_ids(self) -> tuple[Hashable, ...]:
        return self._items_by_id.ids

    def _starting_labels(self, ids: Sequence[Hashable], choices: Sequence[str]) -> dict:
        """The labels of freshly shown items: none, unless a widget says otherwise."""
        return {}

    @traitlets.validate("labels")
    def _valid_labels(self, proposal: dict[str, Any]) -> dict[Hashable, str]:
        labels = dict(proposal["value"])
        for item_id, label in labels.items():
            if item_id not in self._items_by_id:
                raise traitlets.TraitError(f"{item_id!r} is not an item of this labeler")
            if label not in self.choices:
                raise traitlets.TraitError(
                    f"{label!r} is not one of the choices {list(self.choices)}"
                )
        return labels

    def show(self, ids: Iterable[Hashable]) -> None:
        """Show only the items whose ids are given, in that order; only their images
        are encoded and sent to the page."""
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._items_by_id]
        if unknown:
            raise KeyError(f"not items of this labeler: {unknown!r}")
        items, images = self._payload(wanted)
        self.shown = tuple(wanted)
        with self.hold_sync():
            self._images = images
            self._items = items

    def prefetch(self, ids: Iterable[Hashable]) -> None:
        """Send the page these items ahead of time, to hold: it gets their images ready
        and shows them only when its Submit moves to them (`advance`). No ids: nothing
        is held."""
        wanted = list(ids)
        unknown = [i for i in wanted if i not in self._items_by_id]
        if unknown:
            raise KeyError(f"not items of this labeler: {unknown!r}")
        items, images = self._payload(wanted)
        self._ahead = tuple(wanted)
        with self.hold_sync():
            self._ahead_images = images
            self._ahead_items = items

    def advance(self, ids: Iterable[Hashable]) -> bool:
        """The page's Submit moved it to the held items `ids`, which it shows already:
        show them here too. Their labels are what the page holds for them, their starting
        labels and any given since, so no labels are sent to the page, where they would
        undo a label given meanwhile. False, and nothing changes, when `ids` are not the
        held batch."""
        wanted = list(ids)
        if not wanted or tuple(wanted) != self._ahead:
            return False
        on_page = set(wanted)
        given = {i: label for i, label in self.labels.items() if i in on_page}
        labels = {**self._starting_labels(wanted, self.choices), **given}
        self.shown = self._ahead
        self._ahead = ()
        with self.hold_sync():
            self._images, self._items = self._ahead_images, self._ahead_items
            self._ahead_images, self._ahead_items = [], []
            # ipywidgets' own way of not echoing a value the page has (`set_state`).
            with self._lock_property(labels=_labels_to_json(labels, self)):
                self.labels = labels
        return True

    def _payload(self, ids: Sequence[Hashable]) -> tuple[list[dict[str, Any]], list[bytes]]:
        """What a page is sent of these items: a description of each, and the images."""
        items, images = [], []
        for item_id in ids:
            media = self._media_of(item_id)
            entry = {
                "key": item_key(item_id),
                "kind": media.kind,
                "text": media.text,
                "mime": media.mime,
                "image": -1,
                "caption": self._caption_of(item_id),
            }
            if media.kind == "image":
                entry["image"] = len(images)
                images.append(media.data)
            if self._reference_of is not None:
                if item_id not in self._references:
                    item = self._items_by_id[item_id]
                    self._references[item_id] = as_media(self._reference_of(item))
                reference = self._references[item_id]
                entry["reference"] = _described(reference, len(images))
                if reference.kind == "image":
                    images.append(reference.data)
            items.append(entry)
        return items, images

    def _media_of(self, item_id: Hashable) -> Media:
        if item_id not in self._media:
            item = self._items_by_id[item_id]
            self._media[item_id] = as_media(self._render(item) if self._render else item)
        return self._media[item_id]

    def _caption_of(self, item_id: Hashable) -> str:
        if self._caption is None:
            return ""
        return str(self._caption(self._items_by_id[item_id]))
