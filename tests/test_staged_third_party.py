"""Third-party widgets as a stage's widget, driven through the JSON API and a page's
socket: a bqplot selection, an ipycanvas drawing and an ipydatagrid selection are
answers like a slider's value (saved, replayed after a restart, each labeler's own),
and a pool labeler built on a bqplot Scatter is split and merged like the stock ones.

The answers hold what the person changed: a Scatter's `selected` inside a Figure (a
widget reached through `marks`, not `children`), binary values as {"$binary": base64}.
"""

from __future__ import annotations

import base64
import io
import json
import struct

import numpy as np
from PIL import Image
from staged_harness import StagedTestCase
from tornado.testing import gen_test

SCATTER = (
    "import bqplot as bq\n"
    "import numpy as np\n"
    "x = np.arange(8.0)\n"
    "xs, ys = bq.LinearScale(), bq.LinearScale()\n"
    "dots = bq.Scatter(x=x, y=x ** 2, scales={'x': xs, 'y': ys},\n"
    "                  interactions={'click': 'select'})\n"
    "brush = bq.interacts.BrushSelector(x_scale=xs, y_scale=ys, marks=[dots])\n"
    "fig = bq.Figure(marks=[dots], axes=[bq.Axis(scale=xs)], interaction=brush)\n"
    "fig"
)
BQPLOT = (
    "import ipywidgets as widgets",
    "#| stage: pick\n#| input: each\n" + SCATTER,
    "#| stage: picked\n#| show: true\n"
    "print('selected', [] if dots.selected is None else [int(i) for i in dots.selected])",
)


def selected(*indices: int) -> dict:
    """A Scatter's `selected` as bqplot serializes it, the buffer as base64."""
    data = struct.pack(f"<{len(indices)}i", *indices)
    return {
        "value": {"$binary": base64.b64encode(data).decode()},
        "dtype": "int32",
        "shape": [len(indices)],
    }


def restart(case: StagedTestCase):
    """Stop the app and serve the same bundle and database again, as a new process would."""

    async def again() -> None:
        await case.staged.shutdown()
        case._app = case.make()
        case.http_server.request_callback = case._app
        await case.advance()

    return again()


class TestBqplotSelection(StagedTestCase):
    cells = BQPLOT

    @gen_test
    async def test_a_selection_inside_a_figure_is_the_answer_and_the_next_stage_sees_it(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        status, reply = await alice.submit("pick", {"marks.0": {"selected": selected(1, 4)}})
        assert (status, reply["next"]) == (200, "/stage/picked"), reply
        assert (await bob.submit("pick", {"marks.0": {"selected": selected(6)}}))[0] == 200
        assert "selected [1, 4]" in (await alice.open_stage("picked")).html(3)
        assert "selected [6]" in (await bob.open_stage("picked")).html(3)
        _, saved = await alice.get_json("/api/v1/stages/pick")
        # The figure's data, which nobody changed, is not in the answer; nor is wiring.
        assert saved["answer"]["marks.0"] == {"selected": selected(1, 4) | {"type": None}}
        assert "IPY_MODEL_" not in json.dumps(saved["answer"])
        assert len(json.dumps(saved["answer"])) < 1000

        await restart(self)
        assert "selected [1, 4]" in (await alice.open_stage("picked")).html(3)
        assert "selected [6]" in (await bob.open_stage("picked")).html(3)

    @gen_test
    async def test_a_selection_made_on_the_page_arrives_as_a_buffer_and_is_submitted(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("pick")
        scatter = page.model("ScatterModel")
        update = {
            "method": "update",
            "state": {"selected": {"dtype": "int32", "shape": [2]}},
            "buffer_paths": [["selected", "value"]],
        }
        message = {"type": "comm_msg", "comm_id": scatter, "data": update}
        await page.handled(message, [struct.pack("<2i", 2, 5)])
        status, reply = await alice.submit("pick")  # what the page holds, as Submit sends
        assert (status, reply["next"]) == (200, "/stage/picked"), reply
        assert "selected [2, 5]" in (await alice.open_stage("picked")).html(3)
        await restart(self)
        assert "selected [2, 5]" in (await alice.open_stage("picked")).html(3)
        # Back on the page, the selection is where it was.
        page = await alice.open_stage("pick")
        values = page.models[page.model("ScatterModel")]
        assert values["selected"]["shape"] == [2]

    @gen_test
    async def test_an_answer_that_does_not_fit_is_refused_naming_where(self):
        await self.advance()
        alice = await self.labeler()
        bad = {
            "marks.0": {"selected": {"value": {"$binary": "not base64!"}}},
            "marks.7": {"selected": None},
            "": {"marks": []},
            "axes.0": {"scale": "IPY_MODEL_x"},
        }
        expected = {
            "marks.0": "Scatter at 'marks.0', 'selected': $binary holds no valid base64",
            "marks.7": "no part at path 'marks.7'",
            "": "Figure at '': 'marks' holds widgets",
            "axes.0": "Axis at 'axes.0': 'scale' holds widgets",
        }
        for path, state in bad.items():
            status, reply = await alice.submit("pick", {path: state})
            assert status == 400 and expected[path] in reply["error"], (path, reply)
        wrong_size = {"value": {"$binary": "AAAAAAA="}, "dtype": "int32", "shape": [2]}
        status, reply = await alice.submit("pick", {"marks.0": {"selected": wrong_size}})
        assert status == 400 and "Scatter at 'marks.0', 'selected': ValueError" in reply["error"]
        no_dtype = {"value": {"$binary": "AAAAAA=="}}
        status, reply = await alice.submit("pick", {"marks.0": {"selected": no_dtype}})
        assert status == 400 and "Scatter at 'marks.0', 'selected': KeyError" in reply["error"]
        assert (await alice.get_json("/api/v1/stages/pick"))[1]["answer"] is None


class TestStandardWidgetsAnswerAsBefore(StagedTestCase):
    """A Box's children keep their paths and every synced value, as saved answers have."""

    cells = (
        "import ipywidgets as widgets",
        "#| stage: ask\n#| input: each\n"
        "form = widgets.VBox([widgets.Text(value='x'), widgets.HBox([widgets.IntSlider()])])\n"
        "form",
        "#| stage: seen\n#| show: true\nprint(form.children[1].children[0].value)",
    )

    @gen_test
    async def test_children_paths_and_values_are_unchanged(self):
        await self.advance()
        alice = await self.labeler()
        assert (await alice.submit("ask", {"1.0": {"value": 7}}))[0] == 200
        answer = (await alice.get_json("/api/v1/stages/ask"))[1]["answer"]
        assert set(answer) == {"", "0", "1", "1.0"}
        assert answer["1.0"]["value"] == 7 and answer["0"]["value"] == "x"
        assert answer["0"]["disabled"] is False  # every synced value, changed or not
        await restart(self)
        assert "7" in (await alice.open_stage("seen")).html(3)


def png(width: int, height: int, boxes: list[tuple[int, int, int, int]]) -> bytes:
    """A canvas's image data as its front end syncs it: a PNG, transparent but for boxes."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    for x, y, w, h in boxes:
        pixels[y : y + h, x : x + w] = (255, 0, 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="PNG")
    return out.getvalue()


class TestCanvasDrawing(StagedTestCase):
    cells = (
        "import numpy as np\nfrom ipycanvas import Canvas",
        "#| stage: draw\n#| input: each\n"
        "canvas = Canvas(width=60, height=40, sync_image_data=True)\ncanvas",
        "#| stage: drawn\n#| show: true\n"
        "print('inked', int((canvas.get_image_data()[:, :, 3] > 0).sum()), 'pixels')",
    )

    @gen_test
    async def test_a_drawing_is_the_answer_and_survives_a_restart(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        image = base64.b64encode(png(60, 40, [(0, 0, 10, 10)])).decode()
        assert (await alice.submit("draw", {"": {"image_data": {"$binary": image}}}))[0] == 200
        image = base64.b64encode(png(60, 40, [(0, 0, 5, 4), (20, 20, 3, 3)])).decode()
        assert (await bob.submit("draw", {"": {"image_data": {"$binary": image}}}))[0] == 200
        assert "inked 100 pixels" in (await alice.open_stage("drawn")).html(3)
        assert "inked 29 pixels" in (await bob.open_stage("drawn")).html(3)
        await restart(self)
        assert "inked 100 pixels" in (await alice.open_stage("drawn")).html(3)
        assert "inked 29 pixels" in (await bob.open_stage("drawn")).html(3)


class TestDataGridSelection(StagedTestCase):
    cells = (
        "import pandas as pd\nfrom ipydatagrid import DataGrid\n"
        "table = pd.DataFrame({'a': [1, 2, 3], 'b': [4, 5, 6]})",
        "#| stage: choose\n#| input: each\ngrid = DataGrid(table, selection_mode='cell')\ngrid",
        "#| stage: chosen\n#| show: true\n"
        "print('cells', sorted((c['r'], c['c']) for c in grid.selected_cells))",
    )

    @gen_test
    async def test_a_grid_selection_over_the_api_is_replayed_after_a_restart(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        mine = [{"r1": 0, "c1": 0, "r2": 1, "c2": 0}]
        status, reply = await alice.submit("choose", {"": {"selections": mine}})
        assert status == 200, reply
        theirs = [{"r1": 2, "c1": 1, "r2": 2, "c2": 1}]
        assert (await bob.submit("choose", {"": {"selections": theirs}}))[0] == 200
        assert "cells [(0, 0), (1, 0)]" in (await alice.open_stage("chosen")).html(3)
        assert "cells [(2, 1)]" in (await bob.open_stage("chosen")).html(3)
        await restart(self)
        assert "cells [(0, 0), (1, 0)]" in (await alice.open_stage("chosen")).html(3)
        assert "cells [(2, 1)]" in (await bob.open_stage("chosen")).html(3)


# A labeling widget built on a bqplot Scatter: the person picks a label, then selects
# points, and those points get it (docs/custom-widgets.md shows the same class).
POINT_LABELER = '''
import bqplot as bq
import ipywidgets as widgets
import traitlets
from freezer.widgets import first_shown


class PointLabeler(widgets.VBox):
    """Points of a scatter plot; selecting points gives them the label chosen above."""

    labels = traitlets.Dict()  # item id -> label; observers see it change

    def __init__(self, points, choices):
        self.item_ids = tuple(points)
        self.choices = tuple(choices)
        self.points = dict(points)
        self.choice = widgets.ToggleButtons(options=self.choices)
        scales = {"x": bq.LinearScale(), "y": bq.LinearScale()}
        self.dots = bq.Scatter(scales=scales, interactions={"click": "select"})
        self.dots.observe(self._picked, "selected")
        super().__init__([self.choice, bq.Figure(marks=[self.dots])])
        self.show(first_shown(self.item_ids))

    def show(self, ids):
        self.shown = tuple(ids)
        with self.dots.hold_sync():
            self.dots.selected = None
            self.dots.x = [self.points[i][0] for i in self.shown]
            self.dots.y = [self.points[i][1] for i in self.shown]

    def _picked(self, change):
        chosen = [] if change["new"] is None else change["new"]  # None: nothing selected
        picked = [self.shown[int(n)] for n in chosen if int(n) < len(self.shown)]
        self.labels = {**self.labels, **dict.fromkeys(picked, self.choice.value)}
'''
POOL = (
    POINT_LABELER + "\npoints = {f'p{n}': (n, n * n % 7) for n in range(6)}",
    "#| stage: outliers\n#| input: pool\n#| overlap: 2\n#| batch: 3\n"
    "marker = PointLabeler(points, choices=['outlier', 'fine'])\nmarker",
    "#| stage: merged\n#| show: true\n"
    "print('labels', sorted(marker.labels.items()))\nprint('ties', sorted(marker.ties))",
)


class TestPoolOnAScatter(StagedTestCase):
    cells = POOL

    async def label_all(self, person, choose) -> None:
        while True:
            status, batch = await person.get_json("/api/v1/stages/outliers/batch")
            assert status == 200, batch
            if not batch["items"]:
                return
            labels = {key: choose(json.loads(key)) for key in batch["items"]}
            status, reply = await person.submit("outliers", {"__labels__": labels})
            assert status == 200, reply

    @gen_test
    async def test_three_labelers_at_once_and_the_merged_labels_survive_a_restart(self):
        await self.advance()
        people = [await self.labeler() for _ in range(3)]
        votes = [
            lambda i: "outlier" if i in ("p1", "p2") else "fine",
            lambda i: "outlier" if i in ("p1", "p3") else "fine",
            lambda i: "outlier" if i == "p1" else "fine",
        ]
        # Turn by turn, a batch each: the three hold leases at the same time.
        for _ in range(6):
            for person, vote in zip(people, votes, strict=True):
                _, batch = await person.get_json("/api/v1/stages/outliers/batch")
                if batch["items"]:
                    labels = {key: vote(json.loads(key)) for key in batch["items"]}
                    assert (await person.submit("outliers", {"__labels__": labels}))[0] == 200
        await self.advance()
        for _ in range(50):
            if self.staged.pipeline.done("outliers"):
                break
            await self.advance()
        marker = self.staged.pipeline.namespace["marker"]
        assert len(marker.annotations) == 12  # six points, two labels each
        assert marker.labels["p1"] == "outlier"
        assert marker.labels["p0"] == marker.labels["p4"] == marker.labels["p5"] == "fine"
        page = await people[0].open_stage("merged")
        text = page.html(3)
        assert "(&#39;p1&#39;, &#39;outlier&#39;)" in text and "ties [&#39;p2&#39;]" in text
        await restart(self)
        again = self.staged.pipeline.namespace["marker"]
        assert again.labels == marker.labels and again.ties == marker.ties
        assert text == (await people[0].open_stage("merged")).html(3)

    @gen_test
    async def test_points_selected_on_the_page_are_the_labelers_labels(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("outliers")
        scatter = page.model("ScatterModel")
        assert page.models[scatter]["x"]["shape"] == [3]  # the batch alone is drawn
        buttons = page.model("ToggleButtonsModel")
        await page.set(buttons, index=0)  # "outlier"
        update = {
            "method": "update",
            "state": {"selected": {"dtype": "int32", "shape": [2]}},
            "buffer_paths": [["selected", "value"]],
        }
        message = {"type": "comm_msg", "comm_id": scatter, "data": update}
        await page.handled(message, [struct.pack("<2i", 0, 2)])
        _, batch = await alice.get_json("/api/v1/stages/outliers/batch")
        status, reply = await alice.submit("outliers")  # the page's labels, as Submit sends
        assert status == 200, reply
        mine = {key: label for key, label in self.store_labels(alice_id=await self.id_of(alice))}
        first, _, third = batch["items"]
        assert mine == {first: "outlier", third: "outlier"}

    async def id_of(self, person) -> int:
        return (await person.get_json("/api/v1/stages"))[1]["user"]["id"]

    def store_labels(self, alice_id: int):
        from runtime.store import pools

        return pools.labels_of(self.store, "outliers", alice_id).items()
