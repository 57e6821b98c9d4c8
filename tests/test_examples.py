"""The examples as a new user meets them: each runs top to bottom in Jupyter as it is,
and served by nbfreeze, simulated labelers take it to the end through the JSON API."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from staged_harness import StagedTestCase, example_cells
from tornado.testing import gen_test

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GLITCHES = {"h05", "h17", "h26", "h33", "h41"}  # the readings examples/outliers.ipynb spoils


@pytest.mark.parametrize("name", ["survey.ipynb", "outliers.ipynb", "coins.ipynb"])
def test_the_example_runs_top_to_bottom_in_jupyter(name, tmp_path):
    notebook = nbformat.read(EXAMPLES / name, as_version=4)
    shutil.copy(EXAMPLES / name, tmp_path / name)  # the files it writes go beside it
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]


def printed(html: str) -> str:
    """The text a stage printed, from its output's HTML."""
    return re.sub(r"<[^>]+>", "", html).replace("&#39;", "'")


class TestSurvey(StagedTestCase):
    cells = example_cells(EXAMPLES / "survey.ipynb")

    @gen_test(timeout=120)
    async def test_each_person_answers_their_own_form_and_is_thanked_for_it(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        # Alice is an engineer (the second role) of 10 years; Bob keeps the first role.
        status, reply = await alice.submit("about", {"1": {"index": 1}, "2": {"value": 10}})
        assert (status, reply["next"]) == (200, "/stage/tools")
        assert (await bob.submit("about", {"2": {"value": 2}}))[0] == 200
        tools = await alice.open_stage("tools")
        assert "Docker" in json.dumps(tools.messages) and "PyTorch" not in json.dumps(
            tools.messages
        )
        answer = {"0": {"index": [1, 3]}, "1": {"index": 2}, "2": {"value": "More disk"}}
        assert (await alice.submit("tools", answer))[0] == 200
        assert (await bob.submit("tools", {"0": {"index": [0]}}))[0] == 200
        said = printed((await alice.open_stage("thanks")).html(5))
        assert "As a engineer of 10 years you use Docker, SQL," in said
        assert "you are very happy" in said and "You added: More disk" in said
        said = printed((await bob.open_stage("thanks")).html(5))
        assert "As a data scientist of 2 years you use Jupyter," in said
        assert "somewhat happy" in said and "You added" not in said


class TestOutliers(StagedTestCase):
    cells = example_cells(EXAMPLES / "outliers.ipynb")

    async def label_all(self, person, flagged: set[str]) -> None:
        while True:
            status, batch = await person.get_json("/api/v1/stages/flag/batch")
            assert status == 200, batch
            if not batch["items"]:
                return
            labels = {
                key: "outlier" if json.loads(key) in flagged else "fine" for key in batch["items"]
            }
            status, reply = await person.submit("flag", {"__labels__": labels})
            assert status == 200, reply

    @gen_test(timeout=180)
    async def test_two_labelers_flag_the_glitches_and_the_trend_leaves_them_out(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await self.label_all(alice, GLITCHES)
        await self.label_all(bob, GLITCHES | {"h10"})
        await self.advance()
        status = self.staged.pipeline.status["trend"]
        assert status.state == "done", status.reason
        said = printed("".join(o["html"] for o in status.outputs))
        # h10 ties (outlier / fine): the label given first, Alice's "fine", stands.
        assert "5 readings flagged: h05, h17, h26, h33, h41" in said
        assert "5 of the 5 glitches caught, 0 good readings flagged" in said
        assert "1 readings the two labelers disagreed on: ['h10']" in said


class TestCoins(StagedTestCase):
    cells = example_cells(EXAMPLES / "coins.ipynb")

    def setUp(self) -> None:
        super().setUp()
        self.was = os.getcwd()
        os.chdir(self.tmp)  # where `nbfreeze serve` runs the notebook: its own folder

    def tearDown(self) -> None:
        os.chdir(self.was)
        super().tearDown()

    async def name_all(self, person) -> None:
        """Every box as the detector guessed it but b12, a large coin it took for none."""
        while True:
            status, batch = await person.get_json("/api/v1/stages/name/batch")
            assert status == 200, batch
            if not batch["items"]:
                return
            labels = {key: "not a coin" if key == '"b00"' else "coin" for key in batch["items"]}
            status, reply = await person.submit("name", {"__labels__": labels})
            assert status == 200, reply

    @gen_test(timeout=180)
    async def test_labelers_fix_the_names_the_owner_draws_a_coin_and_coco_is_written(self):
        from pycocotools.coco import COCO

        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await self.name_all(alice)
        await self.name_all(bob)
        await self.advance()
        owner = await self.owner()
        fix = await owner.open_stage("fix")
        assert "23 of 24 boxes are coins, by the labelers" in printed(fix.html(4))
        kept = next(m["boxes"] for m in fix.models.values() if "boxes" in m)
        drawn = {"id": "new-1", "x": 20, "y": 28, "width": 48, "height": 48, "label": "coin"}
        status, reply = await owner.submit("fix", {"": {"boxes": [*kept, drawn]}})
        assert status == 200, reply
        await self.advance()
        count = self.staged.pipeline.status["count"]
        assert count.state == "done", count.reason
        said = printed("".join(o["html"] for o in count.outputs))
        assert "24 coins: 23 found by the detector, 1 drawn by hand" in said
        coco = COCO(str(self.tmp / "coins.coco.json"))
        assert len(coco.getAnnIds(catIds=coco.getCatIds(catNms=["coin"]))) == 24
        assert coco.loadAnns(24)[0]["bbox"] == [20, 28, 48, 48]


def test_every_example_is_in_the_examples_page_with_its_first_screen():
    page = (EXAMPLES.parent / "docs" / "examples.md").read_text()
    for notebook in sorted(EXAMPLES.glob("*.ipynb")):
        section = re.search(rf"^## `{re.escape(notebook.name)}`.*?(?=^## |\Z)", page, re.S | re.M)
        assert section, f"docs/examples.md has no section for {notebook.name}"
        pictures = re.findall(r"!\[[^\]]*\]\((screenshots/[^)]+)\)", section.group(0))
        assert pictures, f"docs/examples.md shows no screen of {notebook.name}"
        for picture in pictures:
            assert (EXAMPLES.parent / "docs" / picture).is_file(), picture
