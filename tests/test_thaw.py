"""Thawing: the served notebook back, run to the end in a real kernel on the app's
answers, with outputs equal to the original notebook run with those answers put into
its widgets by hand, and rerunning by itself the same."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbformat import v4
from staged_harness import Person, StagedTestCase, example_cells

from runtime.app import thaw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# The kernel that runs a thawed notebook imports this checkout's freezer, as Jupyter's
# kernel would import the installed one.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)

SMALL = (
    "import ipywidgets as widgets\nfrom freezer.widgets import ChoiceLabeler\n"
    "texts = {f't{i}': f'text {i}' for i in range(4)}",
    "md:How many texts to label?",
    "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=2, min=1, max=4)\nlimit",
    "#| stage: cut\nkept = dict(list(texts.items())[: limit.value])\nprint(f'{len(kept)} kept')",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 2\n"
    "labeler = ChoiceLabeler(kept, choices=['good', 'bad'])\nlabeler",
    "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))\n"
    "print(sorted(labeler.ties))\nprint(len(labeler.annotations))",
)


def shown(output: dict[str, Any]) -> tuple[Any, ...]:
    """What a person sees of an output: text as it is, the kinds of rich outputs (a
    figure's PNG may differ byte for byte, a widget's model id always does)."""
    kind = output["output_type"]
    if kind == "stream":
        return kind, output["name"], output["text"]
    if kind == "error":
        return kind, output["ename"], output["evalue"]
    data = output["data"]
    plain = None if WIDGET_VIEW in data else data.get("text/plain")
    return kind, sorted(data), plain


def outputs(notebook: nbformat.NotebookNode, *, inserted: bool) -> list[list[tuple[Any, ...]]]:
    """Each code cell's outputs, without the cells thawing inserted unless `inserted`."""
    return [
        [shown(o) for o in cell.outputs]
        for cell in notebook.cells
        if cell.cell_type == "code" and (inserted or thaw.TAG not in cell.metadata.get("tags", []))
    ]


def run(notebook: nbformat.NotebookNode, folder: Path) -> nbformat.NotebookNode:
    NotebookClient(notebook, resources={"metadata": {"path": str(folder)}}).execute()
    return notebook


def by_hand(source: Path, after: dict[int, str], folder: Path) -> nbformat.NotebookNode:
    """The original notebook run top to bottom with `after[n]`, code that puts the app's
    answers into a widget, run right after cell n."""
    notebook = nbformat.read(source, as_version=4)
    cells = []
    for index, cell in enumerate(notebook.cells, start=1):
        cells.append(cell)
        if index in after:
            cells.append(v4.new_code_cell(after[index], metadata={"tags": [thaw.TAG]}))
    notebook.cells = cells
    return run(notebook, folder)


def rerun(path: Path) -> nbformat.NotebookNode:
    """The thawed notebook as someone opens it and runs it again, in a fresh kernel."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    return run(notebook, path.parent)


def notes(notebook: nbformat.NotebookNode) -> str:
    return "\n".join(
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "markdown" and thaw.TAG in cell.metadata.get("tags", [])
    )


def ids_of(labels: dict[str, str]) -> dict[Any, str]:
    """Labels by item id, from labels by item key (the id as JSON)."""
    return {json.loads(key): label for key, label in labels.items()}


def labeled_by(labels: dict[str, str], firsts: dict[str, str]) -> str:
    """Code that gives a labeling widget merged labels and ties by hand: with overlap 2
    and the first labeler labeling first, the merged label is always the first's."""
    ties = {k: [firsts[k], labels[k]] for k in labels if firsts[k] != labels[k]}
    return f"merged = {firsts!r}\nties = {ties!r}\n"


class ThawCase(StagedTestCase):
    async def label_all(self, person: Person, stage: str, label_of) -> dict[str, str]:
        """Label every item the person is handed; their labels by item key."""
        given = {}
        while True:
            status, batch = await person.get_json(f"/api/v1/stages/{stage}/batch")
            if status != 200 or not batch["items"]:
                await self.advance()
                return given
            labels = {key: label_of(key) for key in batch["items"]}
            status, reply = await person.submit(stage, {"__labels__": labels})
            assert status == 200, reply
            given |= labels
            await self.advance()

    def thawed(self) -> tuple[thaw.Thawed, nbformat.NotebookNode]:
        """Thaw the app into done.ipynb, as `nbfreeze thaw` does, and read it back."""
        output = self.tmp / "done.ipynb"
        made = self.io_loop.run_sync(lambda: thaw.thaw(self.bundle_dir, self.store, output))
        return made, nbformat.read(made.notebook, as_version=4)


class TestSmallNotebook(ThawCase):
    cells = SMALL

    async def answer_and_label(self) -> tuple[dict[str, str], dict[str, str]]:
        """The owner keeps 3 texts; alice labels them all good, then bob t0 good and the
        others bad: ties on t1 and t2, which keep alice's label, given first."""
        await self.advance()
        owner = await self.owner()
        assert (await owner.submit("limit", {"": {"value": 3}}))[0] == 200
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        assert (await alice.fetch_json("/api/v1/me", {"name": "alice"}))[0] == 200
        assert (await bob.fetch_json("/api/v1/me", {"name": "bob"}))[0] == 200
        firsts = await self.label_all(alice, "label", lambda key: "good")
        seconds = await self.label_all(bob, "label", lambda key: "good" if "0" in key else "bad")
        assert self.staged.pipeline.status["report"].state == "done"
        return firsts, seconds

    def test_the_thawed_notebook_is_the_notebook_run_on_the_apps_answers(self):
        firsts, seconds = self.io_loop.run_sync(self.answer_and_label)
        made, done = self.thawed()
        assert made.failure is None
        rows = [dict(a, item=json.loads(a["item"])) for a in self.app_labels()]
        given = labeled_by(ids_of(seconds), ids_of(firsts)) + (
            f"labeler.labels = merged\nlabeler.ties = ties\nlabeler.annotations = {rows!r}"
        )
        expected = by_hand(self.tmp / "notebook.ipynb", {3: "limit.value = 3", 5: given}, self.tmp)
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        assert outputs(done, inserted=False)[-1] == [
            (
                "stream",
                "stdout",
                "[('t0', 'good'), ('t1', 'good'), ('t2', 'good')]\n['t1', 't2']\n6\n",
            )
        ]
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)
        said = notes(done)
        assert "6 labels of 3 items by 2 labelers: alice (3), bob (3)" in said
        assert "2 ties, `'t1'` (good / bad), `'t2'` (good / bad)" in said
        assert "answered by owner on" in said

    def app_labels(self) -> list[dict[str, Any]]:
        return json.loads(thaw.answers_beside(self.tmp / "done.ipynb").read_text())["stages"][
            "label"
        ]["labels"]

    def test_with_no_answers_yet_the_widgets_keep_the_notebooks_values_and_say_so(self):
        self.io_loop.run_sync(self.advance)
        made, done = self.thawed()
        assert made.failure is None
        assert outputs(done, inserted=False) == outputs(
            by_hand(self.tmp / "notebook.ipynb", {}, self.tmp), inserted=False
        )
        assert outputs(done, inserted=False)[-1] == [("stream", "stdout", "[]\n[]\n0\n")]
        said = notes(done)
        assert "the owner has not answered yet" in said and "no labels yet" in said
        assert not [c for c in done.cells if "load_answers" in c.source]

    async def download(self) -> tuple[int, int, int, Any, Any]:
        """The owner keeps one text, which alice labels (one of its two labels); then
        alice and the owner ask for the thawed notebook and its answers."""
        await self.advance()
        owner, alice = await self.owner(), await self.labeler()
        assert (await owner.submit("limit", {"": {"value": 1}}))[0] == 200
        await self.advance()
        await self.label_all(alice, "label", lambda key: "bad")
        page = await owner.fetch("/owner")
        assert b'href="/api/v1/thawed.ipynb"' in page.body
        refused = [
            (await alice.fetch("/api/v1/thawed.ipynb")).code,
            (await alice.fetch("/api/v1/thawed.answers.json")).code,
            (await owner.fetch("/api/v1/thawed.answers.json")).code,
        ]
        return (
            *refused,
            await owner.fetch("/api/v1/thawed.ipynb"),
            await owner.fetch("/api/v1/thawed.answers.json"),
        )

    def test_the_owner_downloads_the_notebook_with_the_answers_and_a_labeler_cannot(self):
        *refused, response, answers = self.io_loop.run_sync(self.download)
        assert refused == [403, 403, 404]  # the answers file is there once a thaw wrote it
        assert response.code == 200
        assert 'filename="notebook-thawed.ipynb"' in response.headers["Content-Disposition"]
        done = nbformat.reads(response.body.decode(), as_version=4)
        shown = outputs(done, inserted=False)
        assert shown[2] == [("stream", "stdout", "1 kept\n")]
        assert shown[-1] == [("stream", "stdout", "[('t0', 'bad')]\n[]\n1\n")]
        assert "Only 0 of 1 items have all their labels: these are the labels so far" in notes(done)
        assert json.loads(answers.body)["stages"]["limit"]["state"][""]["value"] == 1
        assert (self.tmp / "notebook-thawed.ipynb").is_file()


class TestSmallNotebookOnPostgres(TestSmallNotebook):
    database = "postgresql"


FAILING = (
    "import ipywidgets as widgets",
    "#| stage: limit\n#| input: owner\nlimit = widgets.IntSlider(value=2, min=1, max=4)\nlimit",
    "#| stage: cut\nprint(10 // (limit.value - 3))",
    "#| stage: after\n#| show: true\nprint('after')",
)


class TestAFailingStage(ThawCase):
    cells = FAILING

    async def answer(self) -> None:
        await self.advance()
        owner = await self.owner()
        assert (await owner.submit("limit", {"": {"value": 3}}))[0] == 200

    def test_a_stage_that_fails_is_named_and_left_with_its_error_in_place(self):
        self.io_loop.run_sync(self.answer)
        saved = nbformat.read(self.bundle_dir / "notebook.ipynb", as_version=4)
        saved.cells[3].outputs = [v4.new_output("stream", name="stdout", text="the author's\n")]
        nbformat.write(saved, self.bundle_dir / "notebook.ipynb")  # as saved after a run
        made, done = self.thawed()
        assert made.failure == (
            f"{self.tmp / 'done.ipynb'}: stage `cut` failed at cell 3 of notebook.ipynb "
            "(cell 6 of the thawed notebook): ZeroDivisionError: integer division or modulo by zero"
        )
        assert outputs(done, inserted=False)[2] == [
            ("error", "ZeroDivisionError", "integer division or modulo by zero")
        ]
        assert outputs(done, inserted=False)[3] == []  # "Run all" stops at the error

    def test_an_answer_that_does_not_fit_its_widget_is_named_with_its_stage(self):
        self.store.submit(self.store.owner().id, "limit", {"": {"colour": "red"}}, "by hand")
        made, done = self.thawed()
        assert made.failure == (
            f"{self.tmp / 'done.ipynb'}: the answers of stage `limit` could not be put into "
            "its widget (cell 5 of the thawed notebook): ValueError: done.answers.json, "
            "stage 'limit': IntSlider at '' has no value 'colour'"
        )
        assert done.cells[4].outputs[0]["ename"] == "ValueError"


class TestTheExamples(ThawCase):
    """The flagship and the custom widget's example, served, labeled and thawed."""

    async def labelers(self) -> tuple[Person, Person]:
        alice, bob = await self.labeler(), await self.labeler()
        await alice.fetch_json("/api/v1/me", {"name": "alice"})
        await bob.fetch_json("/api/v1/me", {"name": "bob"})
        return alice, bob


class TestDigits(TestTheExamples):
    cells = example_cells(EXAMPLES / "digits.ipynb")

    async def answer_and_label(self) -> tuple[dict[str, str], ...]:
        """Alice picks every candidate, bob two in three; the owner samples 4 per
        threshold; alice answers the warm-up; alice finds every sample correct, bob the
        odd ones incorrect. Each labeler's labels of the two pools, by item key."""
        await self.advance()
        alice, bob = await self.labelers()
        pick_a = await self.label_all(alice, "pick", lambda key: "3")
        pick_b = await self.label_all(bob, "pick", lambda key: "3" if int(key) % 3 else "not a 3")
        owner = await self.owner()
        assert (await owner.submit("sample_size", {"": {"value": 4}}))[0] == 200
        await self.advance()
        assert (await alice.submit("warmup", {}))[0] == 200
        check_a = await self.label_all(alice, "check", lambda key: "correct")
        check_b = await self.label_all(
            bob, "check", lambda key: "incorrect" if int(key) % 2 else "correct"
        )
        assert self.staged.pipeline.status["report"].state == "done"
        return pick_a, pick_b, check_a, check_b

    def test_the_flagship_thaws_to_its_run_on_everyones_answers(self):
        pick_a, pick_b, check_a, check_b = self.io_loop.run_sync(self.answer_and_label)
        made, done = self.thawed()
        assert made.failure is None
        pick = labeled_by(ids_of(pick_b), ids_of(pick_a))
        check = labeled_by(ids_of(check_b), ids_of(check_a))
        labels = json.loads(thaw.answers_beside(made.notebook).read_text())["stages"]["check"]
        rows = [dict(a, item=json.loads(a["item"])) for a in labels["labels"]]
        expected = by_hand(
            self.tmp / "notebook.ipynb",
            {
                6: pick + "picker.labels = merged\npicker.ties = ties",
                9: "per_threshold.value = 4",
                15: check
                + f"checker.labels = merged\nchecker.ties = ties\nchecker.annotations = {rows!r}",
            },
            self.tmp,
        )
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        text = "".join(
            o[2] for cell in outputs(done, inserted=False) for o in cell if o[0] == "stream"
        )
        assert "centroid of 24 picked images" in text and "precision" in text
        # Alice calls every image a 3: right on the two gold 3s, wrong on the two others.
        assert "labeler 2: 2 of 4 gold images right (50%, 95% interval 15% to 85%)" in text
        assert "top 400:      1.00         1.00   0.25  4 of 4" in text
        said = notes(done)
        assert "48 labels of 24 items by 2 labelers: alice (24), bob (24)" in said
        assert "1 labeler answered it" in said and "left as the notebook builds it" in said
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)


class TestReviews(TestTheExamples):
    cells = example_cells(EXAMPLES / "reviews.ipynb")

    def get_app(self):
        app = super().get_app()
        shutil.copy(EXAMPLES / "thumbs.py", self.tmp / "thumbs.py")
        sys.path.insert(0, str(self.tmp))  # the app imports it from beside the notebook
        return app

    def tearDown(self):
        sys.path.remove(str(self.tmp))
        sys.modules.pop("thumbs", None)
        super().tearDown()

    async def label(self) -> tuple[dict[str, str], dict[str, str]]:
        """Alice gives every review a thumbs up; bob too, but for review 1."""
        await self.advance()
        alice, bob = await self.labelers()
        firsts = await self.label_all(alice, "judge", lambda key: "up")
        seconds = await self.label_all(bob, "judge", lambda key: "down" if key == '"1"' else "up")
        return firsts, seconds

    def test_the_custom_widget_thaws_with_its_merged_labels(self):
        firsts, seconds = self.io_loop.run_sync(self.label)
        made, done = self.thawed()
        assert made.failure is None
        given = labeled_by(ids_of(seconds), ids_of(firsts))
        expected = by_hand(
            self.tmp / "notebook.ipynb", {3: given + "judge.labels = merged"}, self.tmp
        )
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        assert outputs(done, inserted=False)[-1][0][2].startswith("6 of 6 reviews are thumbs up")
        assert "1 tie, `'1'` (up / down)" in notes(done)
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)


class TestOutliers(TestTheExamples):
    cells = example_cells(EXAMPLES / "outliers.ipynb")

    async def label(self) -> tuple[dict[str, str], dict[str, str]]:
        """Alice flags the five glitches, bob the same and h10."""
        await self.advance()
        alice, bob = await self.labelers()
        glitches = {'"h05"', '"h17"', '"h26"', '"h33"', '"h41"'}
        firsts = await self.label_all(
            alice, "flag", lambda key: "outlier" if key in glitches else "fine"
        )
        seconds = await self.label_all(
            bob, "flag", lambda key: "outlier" if key in glitches | {'"h10"'} else "fine"
        )
        return firsts, seconds

    def test_the_bqplot_labeler_thaws_with_its_merged_labels(self):
        firsts, seconds = self.io_loop.run_sync(self.label)
        made, done = self.thawed()
        assert made.failure is None
        given = labeled_by(ids_of(seconds), ids_of(firsts))
        expected = by_hand(
            self.tmp / "notebook.ipynb",
            {4: given + "picker.labels = merged\npicker.ties = ties"},
            self.tmp,
        )
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        text = outputs(done, inserted=False)[-1][0][2]
        assert "5 of the 5 glitches caught" in text and "disagreed on: ['h10']" in text
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)


class TestCoins(TestTheExamples):
    cells = example_cells(EXAMPLES / "coins.ipynb")

    def setUp(self) -> None:
        super().setUp()
        self.was = os.getcwd()
        os.chdir(self.tmp)  # the app runs the notebook in its folder, as `nbfreeze serve` does

    def tearDown(self) -> None:
        os.chdir(self.was)
        super().tearDown()

    async def answer(self) -> tuple[dict[str, str], dict[str, str], list[dict[str, Any]]]:
        """Both labelers call b12 a coin, bob b03 none; the owner draws one coin more."""
        await self.advance()
        alice, bob = await self.labelers()
        firsts = await self.label_all(
            alice, "name", lambda key: "not a coin" if key == '"b00"' else "coin"
        )
        seconds = await self.label_all(
            bob, "name", lambda key: "not a coin" if key in ('"b00"', '"b03"') else "coin"
        )
        owner = await self.owner()
        fix = await owner.open_stage("fix")
        kept = next(m["boxes"] for m in fix.models.values() if "boxes" in m)
        boxes = [
            *kept,
            {"id": "new-1", "x": 20, "y": 28, "width": 48, "height": 48, "label": "coin"},
        ]
        assert (await owner.submit("fix", {"": {"boxes": boxes}}))[0] == 200
        await self.advance()
        assert self.staged.pipeline.status["count"].state == "done"
        return firsts, seconds, boxes

    def test_the_box_corrections_thaw_to_the_same_count_and_coco_file(self):
        firsts, seconds, boxes = self.io_loop.run_sync(self.answer)
        made, done = self.thawed()
        assert made.failure is None
        written = json.loads((self.tmp / "coins.coco.json").read_text())
        given = labeled_by(ids_of(seconds), ids_of(firsts))
        expected = by_hand(
            self.tmp / "notebook.ipynb",
            {3: given + "namer.labels = merged\nnamer.ties = ties", 4: f"fixer.boxes = {boxes!r}"},
            self.tmp,
        )
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        assert json.loads((self.tmp / "coins.coco.json").read_text()) == written
        assert (
            "24 coins: 23 found by the detector, 1 drawn by hand"
            in outputs(done, inserted=False)[-1][0][2]
        )
        assert "answered by owner on" in notes(done)


class TestSurvey(TestTheExamples):
    cells = example_cells(EXAMPLES / "survey.ipynb")

    def test_each_persons_answers_stay_theirs_and_the_note_says_so(self):
        async def answer() -> None:
            await self.advance()
            alice, _ = await self.labelers()
            assert (await alice.submit("about", {"1": {"index": 1}}))[0] == 200

        self.io_loop.run_sync(answer)
        made, done = self.thawed()
        assert made.failure is None
        expected = by_hand(self.tmp / "notebook.ipynb", {}, self.tmp)
        assert outputs(done, inserted=False) == outputs(expected, inserted=False)
        said = notes(done)
        assert "`about`** (input: each)" in said and "1 labeler answered it" in said
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)


def nbfreeze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freezer", *args], cwd=cwd, capture_output=True, text=True
    )


def served(folder: Path, cells: tuple[str, ...] = SMALL) -> Path:
    """A notebook as `nbfreeze serve` leaves it before anyone answers: its bundle and
    an empty database."""
    from freezer import build_bundle
    from runtime.store.database import default_url, open_store

    path = folder / "small.ipynb"
    made = [
        v4.new_markdown_cell(c[3:]) if c.startswith("md:") else v4.new_code_cell(c) for c in cells
    ]
    nbformat.write(v4.new_notebook(cells=made), path)
    open_store(default_url(build_bundle(path, folder / "small.nbfreeze"))).dispose()
    return path


def test_thaw_of_an_app_nobody_answered_yet_runs_on_the_notebooks_own_values(tmp_path):
    served(tmp_path)
    result = nbfreeze("thaw", "small.nbfreeze", "-o", "done.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote done.ipynb and done.answers.json" in result.stderr
    answers = json.loads((tmp_path / "done.answers.json").read_text())["stages"]
    assert answers["limit"]["state"] is None and answers["label"]["labels"] == []
    done = nbformat.read(tmp_path / "done.ipynb", as_version=4)
    assert outputs(done, inserted=False)[2] == [("stream", "stdout", "2 kept\n")]
    assert "the owner has not answered yet" in notes(done)


def test_thaw_refuses_what_it_cannot_thaw_in_one_line(tmp_path):
    served(tmp_path)
    (tmp_path / "plain").mkdir()
    refusals = {
        ("missing.ipynb", "-o", "done.ipynb"): "missing.ipynb: no such notebook or bundle",
        ("plain", "-o", "done.ipynb"): "plain: no bundle at plain",
        ("small.ipynb", "-o", "nowhere/done.ipynb"): "its folder nowhere does not exist",
        ("small.ipynb", "-o", "done.txt"): "name must end in .ipynb",
        ("small.ipynb", "-o", "other.ipynb", "--db", "sqlite:///gone.sqlite"): "no such database",
        ("sqlite:///x.sqlite", "-o", "done.ipynb"): "pass the served notebook or its bundle",
    }
    (tmp_path / "plain.ipynb").mkdir()
    refusals[("small.ipynb", "-o", "plain.ipynb")] = "plain.ipynb: is a directory"
    for args, message in refusals.items():
        result = nbfreeze("thaw", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "done.ipynb").exists()


def test_thaw_exits_1_when_a_cell_fails_and_still_writes_the_notebook(tmp_path):
    served(tmp_path, ("1 / 0",))
    result = nbfreeze("thaw", "small.ipynb", "-o", "done.ipynb", cwd=tmp_path)
    assert result.returncode == 1
    assert "stage `start` failed at cell 1 of small.ipynb" in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    done = nbformat.read(tmp_path / "done.ipynb", as_version=4)
    assert done.cells[1].outputs[0]["ename"] == "ZeroDivisionError"


def test_thaw_reads_another_database_with_db(tmp_path, postgres_database):
    served(tmp_path)
    result = nbfreeze(
        "thaw", "small.ipynb", "-o", "done.ipynb", "--db", postgres_database, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "no labels yet" in notes(nbformat.read(tmp_path / "done.ipynb", as_version=4))


def test_load_answers_says_what_is_wrong_with_the_file_the_stage_or_the_widget(tmp_path):
    from freezer import load_answers

    stages = {
        "pick": {"input": "pool", "overlap": 1, "batch": 1, "lease_seconds": 1, "labels": []},
        "warmup": {"input": "each", "answered": 2},
        "limit": {"input": "owner", "state": {"": {"value": 1}}},
    }
    (tmp_path / "a.json").write_text(json.dumps({"format": 1, "stages": stages}))
    (tmp_path / "b.json").write_text("[1, 2]")
    for source, stage, message in [
        ("a.json", "check", "has no answers for stage 'check' (it has: pick, warmup, limit)"),
        ("gone.json", "check", "gone.json: no such answers file"),
        ("b.json", "check", "b.json: is not an answers file (it has no `stages`)"),
        ("a.json", "warmup", "answered by each labeler for themselves"),
        ("a.json", "pick", "`into` must be its labeling widget (item_ids, labels, choices, show)"),
        ("a.json", "limit", "`into` must be the widget the stage shows, not a NoneType"),
    ]:
        try:
            load_answers(tmp_path / source, stage, into=None)
        except (ValueError, TypeError, FileNotFoundError) as error:
            assert message in str(error), (source, stage, str(error))
        else:
            raise AssertionError(f"no error for {source}, {stage}")


RULED = (
    "from freezer.widgets import ChoiceLabeler\n"
    "texts = {f't{i}': f'text {i}' for i in range(4)}\n"
    "known = {'t0': 'good'}\n"
    "def first_word(given):\n"
    "    return {item: sorted(labels.values())[0] for item, labels in given.items()}",
    "#| stage: label\n#| input: pool\n#| overlap: 2\n#| batch: 4\n#| gold: known\n"
    "#| merge: first_word\nlabeler = ChoiceLabeler(texts, choices=['bad', 'good'])\nlabeler",
    "#| stage: report\n#| show: true\nprint(sorted(labeler.labels.items()))\n"
    "print(sorted(labeler.probabilities.items()))",
)


class TestNotebookMergeAndGold(ThawCase):
    """A pool merged by the notebook's own function with gold items: the thawed
    notebook's later stage prints what the app's did."""

    cells = RULED

    async def label(self) -> None:
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        await self.label_all(alice, "label", lambda key: "good")
        await self.label_all(bob, "label", lambda key: "bad")
        assert self.staged.pipeline.status["report"].state == "done"

    def test_the_thawed_report_is_the_apps_report(self):
        self.io_loop.run_sync(self.label)
        served = "".join(o["html"] for o in self.staged.pipeline.status["report"].outputs)
        printed = html.unescape(re.search(r"<pre>(.*?)</pre>", served, re.S).group(1))
        assert printed.startswith("[('t0', 'good'), ('t1', 'bad')")
        made, done = self.thawed()
        assert made.failure is None
        assert outputs(done, inserted=False)[-1] == [("stream", "stdout", printed)]
        answer_cell = next(c for c in done.cells if "load_answers(" in c.source)
        assert "gold=known" in answer_cell.source and "merge=first_word" in answer_cell.source
        said = notes(done)
        assert "the notebook's function `first_word`" in said
        assert outputs(rerun(made.notebook), inserted=True) == outputs(done, inserted=True)
