"""A pool page carries its batch, whatever the pool's size: what a labeler's page of a
2,000-item pool receives is what a 20-item pool's page receives, for every stock
labeling widget, and no session draws or encodes the items nobody is shown."""

from __future__ import annotations

from staged_harness import StagedTestCase
from tornado.testing import gen_test

from runtime.store.pools import annotations

BATCH = 5
SHOWN = "import runtime_harness\ndef shown(item):\n    runtime_harness.RUNS.append(item)\n"

WIDGETS = {
    "ChoiceLabeler": (
        "from freezer.widgets import ChoiceLabeler\n" + SHOWN + "    return item\n"
        "items = {f't{i}': f'text {i}' for i in range(SIZE)}",
        "ChoiceLabeler(items, choices=['good', 'bad'], render=shown)",
    ),
    "Classify": (
        "from freezer.widgets import Classify\n" + SHOWN + "    return item\n"
        "items = [f'text {i}' for i in range(SIZE)]",
        "Classify(items, ['good', 'bad'], show=shown)",
    ),
    "ImageGrid": (
        "import numpy as np\nfrom freezer.widgets import ImageGrid\n" + SHOWN + "    return item\n"
        "items = {i: np.full((4, 4), i % 256, dtype=np.uint8) for i in range(SIZE)}",
        "ImageGrid(items, image=shown)",
    ),
    "BoxEditor": (
        "import numpy as np\nfrom freezer.widgets import BoxEditor\n"
        "image = np.zeros((8, 8), dtype=np.uint8)\n"
        "items = [(i, i, i + 3, i + 3) for i in range(SIZE)]",
        "BoxEditor(image, items, labels=['cat', 'dog'])",
    ),
}


def cells(widget: str, size: int) -> tuple[str, ...]:
    setup, make = WIDGETS[widget]
    return (
        setup.replace("SIZE", str(size)),
        f"#| stage: label\n#| input: pool\n#| batch: {BATCH}\nlabeler = {make}\nlabeler",
        "#| stage: report\n#| show: true\nprint(len(labeler.labels))",
    )


class PoolPage(StagedTestCase):
    """What one labeler's page of the pool receives, and how many items were drawn."""

    async def a_page(self) -> tuple[int, int, int]:
        from runtime_harness import RUNS

        RUNS.clear()
        await self.advance()
        alice = await self.labeler()
        batch = (await alice.get_json("/api/v1/stages/label/batch"))[1]["items"]
        assert len(batch) == BATCH
        page = await alice.open_stage("label")
        opens = sum(m["type"] == "comm_open" for m in page.messages)
        drawn = len(RUNS)
        RUNS.clear()
        return len(page.messages), opens, drawn


def page_cases(widget: str) -> tuple[type[PoolPage], type[PoolPage]]:
    small = type(f"Small{widget}", (PoolPage,), {"cells": cells(widget, 20)})
    large = type(f"Large{widget}", (PoolPage,), {"cells": cells(widget, 2000)})
    return small, large


class TestAPoolPageReceivesItsBatchOnly:
    """Serves each widget's pool of 20 and of 2,000 items in turn and opens a page of each."""

    def measure(self, case: type[PoolPage]) -> tuple[int, int, int]:
        test = case("a_page")
        test.setUp()
        try:
            return test.io_loop.run_sync(test.a_page, timeout=120)
        finally:
            test.tearDown()

    def check(self, widget: str) -> None:
        small, large = (self.measure(case) for case in page_cases(widget))
        frames, opens, drawn = large
        assert (frames, opens) == small[:2], f"{widget}: 2,000 items {large}, 20 items {small}"
        # The pool's shared widget draws nothing; the page draws its batch, and a widget
        # that holds the next batch ahead (freezer.widgets.Prefetching) that one too
        # (BoxEditor's next boxes are on the page already: it draws nothing more).
        ahead = 1 if widget == "BoxEditor" else 2
        budget = 12 * ahead * BATCH
        assert opens <= budget, f"{widget}: a page of {BATCH} items opened {opens} comms"
        assert drawn <= ahead * BATCH, f"{widget}: {drawn} items of 2,000 were drawn for one page"

    def test_a_choice_labeler_page_of_2000_items_gets_what_one_of_20_gets(self):
        self.check("ChoiceLabeler")

    def test_a_classify_page_of_2000_items_gets_what_one_of_20_gets(self):
        self.check("Classify")

    def test_an_image_grid_page_of_2000_items_gets_what_one_of_20_gets(self):
        self.check("ImageGrid")

    def test_a_box_editor_page_of_2000_boxes_gets_as_many_frames_as_one_of_20(self):
        self.check("BoxEditor")


class TestALargePoolPage(StagedTestCase):
    cells = cells("ChoiceLabeler", 2000)

    @gen_test
    async def test_a_page_of_a_large_pool_shows_its_batch_and_saves_its_labels(self):
        await self.advance()
        alice = await self.labeler()
        page = await alice.open_stage("label")
        grids = [s for s in page.models.values() if s.get("_model_name") == "GridBoxModel"]
        shown = [g for g in grids if not page.models[g["layout"][len("IPY_MODEL_") :]]["display"]]
        assert [len(g["children"]) for g in grids] == [BATCH, BATCH]  # the batch, the next
        cards = [page.models[c[len("IPY_MODEL_") :]] for c in shown[0]["children"]]
        buttons = [card["children"][1][len("IPY_MODEL_") :] for card in cards]
        assert {page.models[b]["_model_name"] for b in buttons} == {"ToggleButtonsModel"}
        for comm_id in buttons:
            await page.set(comm_id, index=0)
        status, reply = await alice.submit("label")
        assert status == 200, reply
        saved = {row.item_key for row in annotations(self.store, "label")}
        assert len(saved) == BATCH
