"""The stock labeling widgets: items as authors have them, and their state and messages
going through anywidget's Python side exactly as the runtime's host drives them."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
import traitlets
from PIL import Image
from runtime_harness import NotebookTestCase
from tornado.testing import gen_test

from freezer.png import encode_png
from freezer.widgets import (
    BoxEditor,
    ChoiceLabeler,
    Classify,
    ImageGrid,
    Labeling,
    Prefetching,
    index_items,
    item_key,
    item_keys,
    showing_first,
    trusted_html,
)
from freezer.widgets.labeling import STATIC
from runtime.app.stage_run import answer_of, apply_answer


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(buffer, format="JPEG")
    return buffer.getvalue()


# ---- items, ids and how they are shown ----


def test_every_stock_widget_follows_the_labeling_protocol():
    grid = ImageGrid([np.zeros((2, 2))])
    classify = Classify(["a"], ["x"])
    boxes = BoxEditor(np.zeros((4, 4)), [(0, 0, 2, 2)], labels=["cat"])
    assert all(isinstance(w, Labeling) for w in (grid, classify, boxes))


def test_ids_come_from_the_index_a_named_column_a_key_function_or_the_position():
    frame = pd.DataFrame({"name": ["ann", "bob"], "text": ["hi", "yo"]}, index=[10, 20])
    assert Classify(frame, ["x"]).item_ids == (10, 20)
    assert Classify(frame, ["x"], key="name").item_ids == ("ann", "bob")
    assert Classify(pd.Series(["a", "b"], index=["p", "q"]), ["x"]).item_ids == ("p", "q")
    assert Classify({"k1": "a", "k2": "b"}, ["x"]).item_ids == ("k1", "k2")
    assert Classify(["a", "b"], ["x"], key=str.upper).item_ids == ("A", "B")
    assert ImageGrid(np.zeros((3, 2, 2))).item_ids == (0, 1, 2)
    with pytest.raises(ValueError, match="unique"):
        Classify(["a", "a"], ["x"], key=str)
    with pytest.raises(ValueError, match="field 'nope'"):
        Classify(frame, ["x"], key="nope")


def test_items_are_shown_as_images_text_or_trusted_html_and_text_stays_text(tmp_path):
    png = encode_png(np.zeros((2, 2), np.uint8))
    path = tmp_path / "a.png"
    path.write_bytes(png)
    items = [
        np.ones((3, 3)),
        Image.new("L", (2, 2)),
        jpeg(),
        path,
        str(path),
        "<b>bold?</b>",
        trusted_html("<b>bold</b>"),
    ]
    shown = Classify(items, ["x"])._items
    assert [i["kind"] for i in shown] == ["image"] * 5 + ["text", "html"]
    assert [i["mime"] for i in shown[:5]] == ["image/png", "image/png", "image/jpeg"] + [
        "image/png"
    ] * 2
    assert shown[5]["text"] == "<b>bold?</b>"  # the page sets it as text, never as markup
    with pytest.raises(ValueError, match="not a PNG, JPEG"):
        Classify([b"plain bytes"], ["x"])


def test_show_sends_only_the_shown_items_images_encoding_each_once():
    renders = []

    def image(item):
        renders.append(item)
        return np.full((2, 2), item)

    grid = ImageGrid(range(100), image=image, caption=lambda i: f"#{i}")
    assert len(grid._images) == 100 and len(renders) == 100
    grid.show([5, 3])
    assert [i["key"] for i in grid._items] == ["5", "3"]
    assert [i["caption"] for i in grid._items] == ["#5", "#3"]
    assert len(grid._images) == 2 and len(renders) == 100  # encoded once, kept
    with pytest.raises(KeyError, match="1000"):
        grid.show([1000])


def test_a_choice_labeler_builds_the_cards_of_the_items_it_shows_when_it_shows_them():
    drawn = []

    def render(item):
        drawn.append(item)
        return item

    items = {f"t{i}": f"text {i}" for i in range(1000)}
    with showing_first(['"t7"', '"t3"']):  # as the app builds a labeler's batch
        labeler = ChoiceLabeler(items, ["good", "bad"], render=render)
    assert labeler.shown == ("t7", "t3") and drawn == ["text 7", "text 3"]
    assert len(labeler._grid_showing().children) == 2 and len(labeler.item_ids) == 1000
    labeler.labels = {"t5": "bad"}  # an item not drawn yet can be labeled
    labeler.show(["t5", "t7"])
    assert drawn == ["text 7", "text 3", "text 5"]  # a card is built once, when first shown
    assert labeler._buttons["t5"].value == "bad" and labeler._buttons["t7"].value is None
    labeler._buttons["t7"].value = "good"
    assert labeler.labels == {"t5": "bad", "t7": "good"}
    with pytest.raises(traitlets.TraitError, match="not an item"):
        labeler.labels = {"nope": "good"}
    with pytest.raises(KeyError, match="nope"):
        labeler.show(["nope"])


def test_in_jupyter_a_choice_labeler_shows_every_item_and_show_swaps_the_cards():
    labeler = ChoiceLabeler(["a", "b", "c"], ["yes", "no"])
    assert labeler.shown == (0, 1, 2) and len(labeler._grid_showing().children) == 3
    first = labeler._grid_showing().children[0]
    labeler.show([2])
    assert len(labeler._grid_showing().children) == 1
    labeler.show([0, 2])
    assert labeler._grid_showing().children[0] is first  # the same card again, not a new one


def test_items_are_looked_up_where_the_author_keeps_them_by_id_and_by_key():
    frame = pd.DataFrame({"name": ["ann", "bob"]}, index=[10, 20])
    cases = [
        (["x", "y"], (0, 1), lambda v: v == "y"),
        ({"p": "x", "q": "y"}, ("p", "q"), lambda v: v == "y"),
        (frame, (10, 20), lambda v: v["name"] == "bob"),
        (np.array([[1, 2], [3, 4]]), (0, 1), lambda v: list(v) == [3, 4]),
        ((c for c in "xy"), (0, 1), lambda v: v == "y"),
    ]
    for items, ids, is_second in cases:
        index = index_items(items)
        assert index.ids == ids and len(index) == 2 and list(index) == list(ids)
        assert is_second(index[ids[1]])
        assert all(index.id_of(item_key(i)) == i for i in ids)
        assert "nope" not in index and [] not in index
        with pytest.raises(KeyError):
            index.id_of('"nope"')
    keyed = index_items([(1, "a"), (2, "b")], key=lambda row: (row[0], "x"))
    assert keyed.ids == ((1, "x"), (2, "x")) and keyed[(2, "x")] == (2, "b")
    assert keyed.id_of(item_key((2, "x"))) == (2, "x")
    for ids in (["a", 'q"uote', "é"], [1, 22, 333], ["a", 1, (2, 3), None]):
        assert item_keys(ids) == [item_key(i) for i in ids]
    assert [item_key(i) for i in ("é", 5, True, 1.5)] == ['"\\u00e9"', "5", "true", "1.5"]


def test_image_grid_labels_cover_the_shown_items_picked_or_not():
    grid = ImageGrid(["a", "b", "c"], choices=("match", "other"))
    seen = []
    grid.observe(lambda change: seen.append(change["new"]), names="labels")
    grid.selected = [1]
    assert grid.labels == {0: "other", 1: "match", 2: "other"}
    assert seen[-1] == grid.labels
    grid.show([2, 0])
    assert grid.labels == {2: "other", 0: "other"}  # a batch starts unpicked
    grid.labels = {2: "match", 0: "other"}
    assert grid.selected == [2]
    with pytest.raises(traitlets.TraitError):
        grid.selected = ["nope"]
    with pytest.raises(ValueError, match="two choices"):
        ImageGrid(["a"], choices=("a", "b", "c"))


def test_labels_outside_the_items_or_the_choices_are_refused():
    classify = Classify(["a", "b"], ["cat", "dog"])
    with pytest.raises(traitlets.TraitError, match="not one of the choices"):
        classify.labels = {0: "bird"}
    with pytest.raises(traitlets.TraitError, match="not an item"):
        classify.labels = {7: "cat"}
    assert classify.labels == {}


def test_box_editor_takes_boxes_as_detectors_give_them():
    image = np.zeros((40, 60))
    frame = pd.DataFrame({"xmin": [1.0], "ymin": [2.0], "xmax": [11.0], "ymax": [22.0]})
    editor = BoxEditor(image, frame, labels=["car"])
    assert editor.boxes == [{"id": 0, "x": 1, "y": 2, "width": 10, "height": 20, "label": None}]
    editor = BoxEditor(image, np.array([[0, 0, 5, 5], [10, 10, 20, 30]]), labels=["car"])
    assert [b["height"] for b in editor.boxes] == [5, 20]
    editor = BoxEditor(
        image, [{"x": 1, "y": 1, "width": 2, "height": 2, "label": "car"}], labels=["car"]
    )
    assert editor.labels == {0: "car"}
    with pytest.raises(ValueError, match="box 0"):
        BoxEditor(image, [(1, 2, 3)], labels=["car"])
    with pytest.raises(traitlets.TraitError, match="'bus' is not one of"):
        BoxEditor(image, [(0, 0, 1, 1, "bus")], labels=["car"])


def test_every_stock_widgets_module_carries_the_one_key_list_in_place_of_its_import():
    """anywidget runs a module from a blob: URL, where `import './keys.js'` resolves to
    nothing: each module must hold the key list's code itself, once."""
    shared = (STATIC / "keys.js").read_text().replace("export function", "function")
    modules = {
        "labeling": Classify(["a"], ["x"])._esm,
        "grid": ImageGrid([np.zeros((2, 2))])._esm,
        "boxes": BoxEditor(np.zeros((4, 4)), [], labels=["p"])._esm,
        "choice": ChoiceLabeler(["a"], ["x"])._keyboard._esm,
    }
    for name, module in modules.items():
        assert "from './keys.js'" not in module, name
        assert module.count("function keyList(") == 1 and shared in module, name
        assert "export default" in module, name
    for widget in (Classify(["a"], ["x"]), ChoiceLabeler(["a"], ["x"])._keyboard):
        assert ".nbfk {" in widget._css  # the key list's style comes with it


def test_a_choice_labeler_answer_saved_before_its_keyboard_still_replays():
    """An `each` stage's saved answer is its widget tree's state by path: the keyboard is
    the box's last child, with nothing to save, so an answer saved before it existed
    lands on the same ToggleButtons, and a new answer has the same paths."""
    saved_before = {
        "0": {"value": "<b>1</b> of 3 labeled", "description": "", "placeholder": ""},
        "1.1.1": {"index": 1, "description": "", "disabled": False},
    }
    labeler = ChoiceLabeler(["a", "b", "c"], ["yes", "no"])
    apply_answer(labeler, saved_before)
    assert labeler.labels == {1: "no"}
    paths = set(answer_of(labeler))
    assert "1.1.1" in paths and not any(p == "2" or p.startswith("2.") for p in paths)
    again = ChoiceLabeler(["a", "b", "c"], ["yes", "no"])
    apply_answer(again, json.loads(json.dumps(answer_of(labeler))))
    assert again.labels == {1: "no"}


def test_an_answer_of_each_widget_replays_into_a_fresh_one():
    """In `each` and `owner` stages an answer is the widget's synced state."""
    made = {
        "classify": lambda: Classify(["a", "b"], ["x", "y"]),
        "grid": lambda: ImageGrid([np.zeros((2, 2))] * 3),
        "boxes": lambda: BoxEditor(np.zeros((9, 9)), [(0, 0, 4, 4)], labels=["p", "q"]),
    }
    first = {name: make() for name, make in made.items()}
    first["classify"].labels = {1: "y"}
    first["grid"].selected = [2]
    first["boxes"].boxes = [
        {"id": 0, "x": 1, "y": 1, "width": 3, "height": 3, "label": "q"},
        {"id": "new-a", "x": 5, "y": 5, "width": 2, "height": 2, "label": "p"},
    ]
    for name, make in made.items():
        answer = json.loads(json.dumps(answer_of(first[name])))
        again = make()
        apply_answer(again, answer)
        assert again.labels == first[name].labels, name
    assert again.boxes == first["boxes"].boxes


# ---- through the runtime's host: what a page sends and receives ----


WIDGETS = (
    "import numpy as np\n"
    "import ipywidgets as widgets\n"
    "from freezer.widgets import BoxEditor, ChoiceLabeler, Classify, ImageGrid\n"
    "seen, submitted = [], []\n"
    "grid = ImageGrid({'a': np.zeros((2, 2)), 'b': np.ones((3, 3))},\n"
    "                 caption=lambda a: f'{a.size} px')\n"
    "grid.observe(lambda change: seen.append(dict(change['new'])), names='labels')\n"
    "classify = Classify(['first', 'second', 'third'], ['cat', 'dog'], per_page=2)\n"
    "classify.on_submit(lambda w: submitted.append(dict(w.labels)))\n"
    "boxes = BoxEditor(np.zeros((30, 40)), [(0, 0, 10, 10, 'car')], labels=['car', 'bus'])\n"
    "choice = ChoiceLabeler({'p': 'one', 'q': 'two', 'r': 'three'}, ['keep', 'drop'])\n"
    "choice.show(['q', 'r'])\n"
    "choice.on_submit(lambda w: submitted.append(dict(w.labels)))\n"
    "widgets.VBox([grid, classify, boxes, choice])",
)


class TestThroughTheHost(NotebookTestCase):
    cells = WIDGETS

    def python(self, page, name):
        return self.session_of(page).namespace[name]

    @gen_test
    async def test_images_travel_as_binary_buffers_and_labels_with_string_keys(self):
        page = await self.open_page()
        grid = page.model("AnyModel", _view="grid")
        state = page.models[grid]
        assert [i["key"] for i in state["_items"]] == ['"a"', '"b"']
        assert [i["caption"] for i in state["_items"]] == ["4 px", "9 px"]
        [opened] = [m for m in page.messages if m.get("comm_id") == grid]
        assert opened["data"]["buffer_paths"] == [["_images", 0], ["_images", 1]]
        buffers = page.buffers[page.messages.index(opened)]
        assert [b[:8] for b in buffers] == [b"\x89PNG\r\n\x1a\n"] * 2
        assert state["labels"] == {'"a"': "no", '"b"': "no"}

        await page.set(grid, labels={'"a"': "no", '"b"': "yes"})
        python_grid = self.python(page, "grid")
        assert python_grid.labels == {"a": "no", "b": "yes"}
        assert python_grid.selected == ["b"]
        assert self.python(page, "seen")[-1] == {"a": "no", "b": "yes"}

    @gen_test
    async def test_labels_for_unknown_items_or_outside_the_choices_are_refused(self):
        page = await self.open_page()
        classify = page.model("AnyModel", _view="classify")
        for labels in ({"99": "cat"}, {"0": "bird"}, ["not", "a", "mapping"]):
            answer = await page.set(classify, labels=labels)
            assert any(m["type"] == "reply_error" for m in answer), labels
        assert self.python(page, "classify").labels == {}
        await page.set(classify, labels={"0": "cat", "2": "dog"})
        assert self.python(page, "classify").labels == {0: "cat", 2: "dog"}

    @gen_test
    async def test_python_changes_reach_the_page_and_enter_reaches_on_submit(self):
        page = await self.open_page()
        classify = page.model("AnyModel", _view="classify")
        assert page.models[classify]["_per_page"] == 2
        assert page.models[classify]["_choices"] == ["cat", "dog"]

        def label_in_python():
            self.python(page, "classify").labels = {1: "dog"}

        await self.session_of(page).call(label_in_python)
        await page.until(lambda m: m["type"] == "comm_msg" and m.get("comm_id") == classify)
        assert page.models[classify]["labels"] == {"1": "dog"}

        data = {"method": "custom", "content": {"event": "submit"}}
        await page.handled({"type": "comm_msg", "comm_id": classify, "data": data})
        assert self.python(page, "submitted") == [{1: "dog"}]

    @gen_test
    async def test_a_choice_labelers_keys_label_undo_and_submit_through_its_keyboard_model(self):
        page = await self.open_page()
        keys = page.model("AnyModel", _keys=['"q"', '"r"'])  # the shown items, in order
        assert page.models[keys]["_choices"] == ["keep", "drop"]
        labeler = self.python(page, "choice")
        await page.set(keys, _labels={'"r"': "drop"})  # the `2` key on the second card
        assert labeler.labels == {"r": "drop"}
        assert labeler._buttons["r"].value == "drop"  # what an `each` stage saves
        await page.set(keys, _labels={})  # `u`
        assert labeler.labels == {}
        for refused in ({'"p"': "keep"}, {'"q"': "maybe"}, ["not", "a", "mapping"]):
            answer = await page.set(keys, _labels=refused)  # p is not on the page
            assert any(m["type"] == "reply_error" for m in answer), refused
        assert labeler.labels == {}

        def click_in_python():
            labeler._buttons["q"].value = "keep"  # as a click on the ToggleButtons does

        await self.session_of(page).call(click_in_python)
        await page.until(lambda m: m["type"] == "comm_msg" and m.get("comm_id") == keys)
        assert page.models[keys]["_labels"] == {'"q"': "keep"}  # the keys see it

        data = {"method": "custom", "content": {"event": "submit"}}
        await page.handled({"type": "comm_msg", "comm_id": keys, "data": data})
        assert self.python(page, "submitted") == [{"q": "keep"}]

    @gen_test
    async def test_corrected_boxes_come_back_to_python_checked(self):
        page = await self.open_page()
        boxes = page.model("AnyModel", _mime="image/png")
        assert page.models[boxes]["boxes"][0]["label"] == "car"
        moved = [
            {"id": 0, "x": 5, "y": 4, "width": 12, "height": 8, "label": "bus"},
            {"id": "new-1", "x": 20, "y": 10, "width": 5, "height": 5, "label": "car"},
        ]
        await page.set(boxes, boxes=moved)
        editor = self.python(page, "boxes")
        assert editor.boxes == moved
        assert editor.labels == {0: "bus"}
        bad = [{"id": 0, "x": 1, "y": 1, "width": 0, "height": 3, "label": "car"}]
        answer = await page.set(boxes, boxes=bad)
        assert any(m["type"] == "reply_error" for m in answer)
        assert editor.boxes == moved


def test_images_keep_their_greys_as_an_author_would_expect():
    from freezer.widgets.media import as_media

    def grey_of(array):
        data = Image.open(io.BytesIO(as_media(array).data))
        return data.getpixel((0, 0))

    assert grey_of(np.full((2, 2), 80)) == 80  # integers in 0-255 as they are
    assert grey_of(np.full((2, 2), 0.5)) == 128  # floats in 0-1 as fractions
    assert grey_of(np.array([[0.0, 16.0]])) == 0  # other ranges stretched
    assert grey_of(np.ones((2, 2), bool)) == 255


def test_a_reference_goes_beside_each_item_or_once_for_all_and_is_sent_with_the_batch():
    photos = {"a": np.zeros((2, 2)), "b": np.ones((2, 2))}
    each = Classify(["a", "b"], ["same", "other"], reference=lambda item: photos[item])
    references = [item["reference"] for item in each._items]
    assert [r["kind"] for r in references] == ["image", "image"]
    assert [each._images[r["image"]][:4] for r in references] == [b"\x89PNG"] * 2
    each.show([1])
    (only,) = each._items
    assert only["key"] == "1" and each._images[only["reference"]["image"]][:4] == b"\x89PNG"

    once = ImageGrid([np.zeros((2, 2))] * 3, reference=np.ones((4, 4)))
    assert once._reference["kind"] == "image" and once._reference_image[:4] == b"\x89PNG"
    assert all("reference" not in item for item in once._items)
    assert len(once._images) == 3  # the reference is not sent again with each batch
    worded = Classify(["x"], ["yes", "no"], reference="Is this the person in the photo?")
    assert worded._reference["text"] == "Is this the person in the photo?"


def test_a_held_batch_is_sent_unshown_and_advance_shows_it_without_sending_its_labels():
    grid = ImageGrid([np.full((4, 4), v) for v in range(6)])
    grid.show([0, 1])
    sent: list[dict] = []
    grid._send = lambda message, buffers=None: sent.append(message["state"])
    grid.prefetch([2, 3])
    assert [sorted(state) for state in sent] == [["_ahead_images", "_ahead_items"]]
    assert grid.shown == (0, 1) and len(grid._ahead_images) == 2
    assert not grid.advance([3, 4])  # not the held batch: nothing changes
    assert grid.shown == (0, 1)

    grid.labels = {0: "yes", 1: "no", 2: "yes"}  # the page picked 2 after moving to it
    sent.clear()
    assert grid.advance([2, 3])
    assert grid.shown == (2, 3) and grid.selected == [2]
    assert grid.labels == {2: "yes", 3: "no"}
    assert [sorted(state) for state in sent] == [
        ["_ahead_images", "_ahead_items", "_images", "_items"]
    ]
    assert [item["key"] for item in sent[0]["_items"]] == ["2", "3"]
    assert not grid.advance([2, 3])  # held no longer


def test_every_stock_labeler_holds_batches_ahead():
    assert isinstance(ImageGrid([np.zeros((2, 2))]), Prefetching)
    assert isinstance(Classify(["a"], ["x", "y"]), Prefetching)
    assert isinstance(ChoiceLabeler(["a"], ["x", "y"]), Prefetching)
    assert isinstance(BoxEditor(np.zeros((8, 8)), [(0, 0, 2, 2)]), Prefetching)


def test_a_choice_labeler_holds_cards_in_its_hidden_grid_and_advance_makes_it_the_shown_one():
    labeler = ChoiceLabeler(list("abcdef"), ["keep", "drop"])
    labeler.show([0, 1])
    shown, held = labeler._grid_showing(), labeler._grid_showing(held=True)
    assert held.layout.display == "none" and shown.layout.display is None
    labeler.prefetch([2, 3])
    assert labeler.shown == (0, 1) and len(held.children) == 2
    assert labeler._keyboard._ahead_keys == ["2", "3"]
    labeler._keyboard._labels = {"0": "keep", "1": "drop", "2": "drop"}  # 2: after the move
    assert labeler.labels == {0: "keep", 1: "drop", 2: "drop"}
    assert not labeler.advance([3, 4])  # not the held batch: nothing changes
    assert labeler.shown == (0, 1)

    assert labeler.advance([2, 3])
    assert labeler.shown == (2, 3) and labeler._grid_showing() is held
    assert held.layout.display is None and shown.layout.display == "none"
    assert labeler.labels == {2: "drop"}  # the page's label of the held item stays
    assert labeler._keyboard._keys == ["2", "3"] and labeler._keyboard._ahead_keys == []
    assert labeler._keyboard._labels == {"2": "drop"}
    assert not labeler.advance([2, 3])  # held no longer
    turn = labeler._keyboard._turn
    labeler.show([4])  # the server's own batch: the same grid, a new turn for the page
    assert labeler._grid_showing() is held and labeler._keyboard._turn == turn + 2


def test_a_box_editor_holds_the_next_boxes_and_advance_makes_them_the_editable_ones():
    editor = BoxEditor(np.zeros((8, 8)), [(0, 0, 2, 2, "object"), (1, 1, 3, 3), (2, 2, 4, 4)])
    editor.show([0])
    editor.prefetch([1, 2])
    assert editor._ahead == [1, 2] and editor._ahead_keys == ["1", "2"]
    assert not editor.advance([2])
    turn = editor._turn
    assert editor.advance([1, 2])
    assert editor.shown == (1, 2) and editor._shown == [1, 2] and editor._ahead == []
    assert editor._turn == turn + 1 and editor.labels == {0: "object"}  # boxes as they are
    assert not editor.advance([1, 2])
