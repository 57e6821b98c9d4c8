"""Exports of a pool stage's labels: the per-item rows, each format read back by the
library that reads it, the owner's downloads, and `nbfreeze export` with its refusals."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete
from staged_harness import StagedTestCase
from tornado.testing import gen_test

from freezer.png import encode_png
from runtime.app.exports import image_size
from runtime.store import exports
from runtime.store.database import Annotation
from runtime.store.pools import Row

ROOT = Path(__file__).resolve().parents[1]
NAMES = {2: "alice", 3: "bob", 4: "carol"}
AT = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def rows() -> list[Row]:
    """t0: good, good, bad; t1: bad alone."""
    return [
        Row('"t0"', 2, "good", AT),
        Row('"t0"', 3, "good", AT),
        Row('"t1"', 2, "bad", AT),
        Row('"t0"', 4, "bad", AT.replace(tzinfo=None)),  # as SQLite hands it back
    ]


def test_an_item_has_its_merged_label_its_vote_share_and_every_raw_label():
    given = exports.items(rows(), exports.majority(rows()), names=NAMES)
    assert [item["id"] for item in given] == ["t0", "t1"]
    first = given[0]
    assert first["key"] == '"t0"' and first["label"] == "good"
    assert first["probability"] == pytest.approx(2 / 3)
    assert first["gold"] is False and first["review"] is False
    assert first["annotations"][2] == {
        "labeler": 4,
        "labeler_name": "carol",
        "label": "bad",
        "time": "2026-01-05T09:30:00+00:00",
    }
    assert given[1]["probability"] == 1.0


def test_another_merge_rules_labels_and_probabilities_are_what_the_export_shows():
    other = exports.Estimate({'"t0"': "bad", '"t1"': "bad"}, {'"t0"': 0.9, '"t1"': 0.6})
    given = exports.items(rows(), other, names=NAMES, ids={'"t0"': ("t", 0)})
    assert [(i["id"], i["label"], i["probability"]) for i in given] == [
        (("t", 0), "bad", 0.9),
        ("t1", "bad", 0.6),
    ]


def test_jsonl_is_an_item_a_line_with_its_raw_labels_nested():
    text = exports.as_jsonl(exports.items(rows(), exports.majority(rows()), names=NAMES))
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 2
    assert [a["labeler_name"] for a in lines[0]["annotations"]] == ["alice", "bob", "carol"]


def test_csv_is_a_row_per_raw_label_with_the_items_merged_label_repeated():
    given = exports.items(rows(), exports.majority(rows()), names=NAMES, ids={'"t1"': [1, 2]})
    read = list(csv.DictReader(io.StringIO(exports.as_csv(given))))
    assert list(read[0]) == list(exports.CSV_COLUMNS)
    assert len(read) == 4
    t0 = [r for r in read if r["id"] == "t0"]
    assert {r["label"] for r in t0} == {"good"}
    assert [r["labeler_label"] for r in t0] == ["good", "good", "bad"]
    assert read[-1]["id"] == "[1, 2]" and read[-1]["probability"] == "1.0"


def test_coco_reads_back_with_pycocotools(tmp_path):
    coco_module = pytest.importorskip("pycocotools.coco")
    boxes = {
        '"t0"': {"x": 10, "y": 20, "width": 30, "height": 40},
        '"t1"': {"x": 1, "y": 2, "width": 3, "height": 4},
    }
    given = exports.items(rows(), exports.majority(rows()), names=NAMES)
    image = {"file_name": "cars.png", "width": 100, "height": 80}
    path = tmp_path / "cars.json"
    path.write_text(json.dumps(exports.as_coco(given, boxes, ["good", "bad"], image)))
    coco = coco_module.COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["good", "bad"]
    assert coco.loadImgs(coco.getImgIds())[0]["file_name"] == "cars.png"
    shown = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [(a["bbox"], a["category_id"], a["area"]) for a in shown] == [
        ([10.0, 20.0, 30.0, 40.0], 1, 1200.0),
        ([1.0, 2.0, 3.0, 4.0], 2, 12.0),
    ]
    assert shown[0]["probability"] == pytest.approx(2 / 3) and shown[0]["item"] == "t0"


def test_the_hugging_face_directory_loads_with_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    given = exports.items(rows(), exports.majority(rows()), names=NAMES)
    files = exports.hf_files({"tone": given, "again": given[:1], "unlabeled": []})
    assert "unlabeled" not in files["README.md"] and "unlabeled.jsonl" not in files
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    tone = datasets.load_dataset(str(tmp_path), "tone", split="train")
    assert tone.num_rows == 2 and tone[0]["label"] == "good"
    assert [a["labeler_name"] for a in tone[0]["annotations"]] == ["alice", "bob", "carol"]
    assert datasets.load_dataset(str(tmp_path), split="train").num_rows == 2  # the default
    assert datasets.load_dataset(str(tmp_path), "again", split="train").num_rows == 1


def test_image_sizes_are_read_from_png_gif_and_jpeg_headers():
    assert image_size(encode_png(np.zeros((30, 50), dtype=np.uint8))) == (50, 30)
    assert image_size(b"GIF89a" + (7).to_bytes(2, "little") + (9).to_bytes(2, "little")) == (7, 9)
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + b"\xff\xc0\x00\x11\x08" + (12).to_bytes(2, "big")
    assert image_size(jpeg + (34).to_bytes(2, "big") + b"\x03") == (34, 12)
    assert image_size(b"RIFF....WEBP") is None


CELLS = (
    "import numpy as np\nfrom freezer.widgets import BoxEditor, ChoiceLabeler\n"
    "texts = {f't{i}': f'text {i}' for i in range(4)}\n"
    "image = np.zeros((60, 100), dtype=np.uint8)",
    "#| stage: tone\n#| input: pool\n#| overlap: 2\n#| batch: 4\n"
    "tone = ChoiceLabeler(texts, choices=['good', 'bad'])\ntone",
    "#| stage: boxes\n#| input: pool\n#| batch: 4\n"
    "boxes = BoxEditor(image, {'a': (10, 5, 40, 25), 'b': (50, 30, 90, 55)},\n"
    "                  labels=['car', 'bus'])\n"
    "boxes",
    "#| stage: report\n#| show: true\nprint(tone.labels, boxes.labels)",
)


def export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "freezer", "export", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


class TestExports(StagedTestCase):
    cells = CELLS

    async def labeled(self):
        """Alice and Bob label the texts (they differ on t1); Alice names both boxes."""
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person, label_of in (
            (alice, lambda k: "good"),
            (bob, lambda k: "bad" if k == '"t1"' else "good"),
        ):
            batch = (await person.get_json("/api/v1/stages/tone/batch"))[1]["items"]
            status, reply = await person.submit(
                "tone", {"__labels__": {k: label_of(k) for k in batch}}
            )
            assert status == 200, reply
        batch = (await alice.get_json("/api/v1/stages/boxes/batch"))[1]["items"]
        assert sorted(batch) == ['"a"', '"b"']
        status, reply = await alice.submit("boxes", {"__labels__": {'"a"': "car", '"b"': "bus"}})
        assert status == 200, reply
        await self.advance()
        return alice, await self.owner()

    @gen_test
    async def test_the_owner_downloads_every_format_and_a_labeler_none(self):
        alice, owner = await self.labeled()
        response = await owner.fetch("/api/v1/stages/tone/labels.jsonl")
        assert response.headers["Content-Disposition"] == 'attachment; filename="tone-labels.jsonl"'
        items = [json.loads(line) for line in response.body.decode().splitlines()]
        t1 = next(i for i in items if i["id"] == "t1")
        assert t1["probability"] == 0.5 and len(t1["annotations"]) == 2
        names = {user.id: user.name for user in self.store.users()}
        assert [a["labeler_name"] for a in t1["annotations"]] == [
            names[a["labeler"]] for a in t1["annotations"]
        ]
        response = await owner.fetch("/api/v1/stages/tone/labels.csv")
        assert response.headers["Content-Type"].startswith("text/csv")
        assert len(response.body.decode().splitlines()) == 1 + 8
        response = await owner.fetch("/api/v1/stages/boxes/labels.coco.json")
        assert (
            response.headers["Content-Disposition"]
            == 'attachment; filename="boxes-labels.coco.json"'
        )
        coco = json.loads(response.body)
        assert coco["images"] == [{"id": 1, "file_name": "boxes.png", "width": 100, "height": 60}]
        assert [(a["bbox"], a["category_id"]) for a in coco["annotations"]] == [
            ([10.0, 5.0, 30.0, 20.0], 1),
            ([50.0, 30.0, 40.0, 25.0], 2),
        ]
        response = await owner.fetch("/api/v1/stages/tone/labels.hf.zip")
        assert (
            response.headers["Content-Disposition"] == 'attachment; filename="tone-labels.hf.zip"'
        )
        names = zipfile.ZipFile(io.BytesIO(response.body)).namelist()
        assert sorted(names) == ["tone/README.md", "tone/tone.jsonl"]
        for suffix in ("jsonl", "csv", "coco.json", "hf.zip"):
            assert (await alice.fetch(f"/api/v1/stages/boxes/labels.{suffix}")).code == 403
        response = await owner.fetch("/api/v1/stages/tone/labels.coco.json")
        assert response.code == 400
        assert "'tone' shows a ChoiceLabeler, not a BoxEditor" in json.loads(response.body)["error"]
        assert (await owner.fetch("/api/v1/stages/report/labels.csv")).code == 404
        await self.store_has_no_labels()
        response = await owner.fetch("/api/v1/stages/tone/labels.hf.zip")
        assert response.code == 400
        assert json.loads(response.body)["error"] == (
            "no labels yet in 'tone': a Hugging Face dataset cannot be empty"
        )

    async def store_has_no_labels(self) -> None:
        with self.store.engine.begin() as connection:
            connection.execute(delete(Annotation))

    @gen_test
    async def test_the_owners_page_links_each_pools_downloads_and_coco_for_boxes_only(self):
        _, owner = await self.labeled()
        page = (await owner.fetch("/owner")).body.decode()
        for suffix in ("jsonl", "csv", "hf.zip"):
            assert f'href="/api/v1/stages/tone/labels.{suffix}"' in page
            assert f'href="/api/v1/stages/boxes/labels.{suffix}"' in page
        assert 'href="/api/v1/stages/boxes/labels.coco.json"' in page
        assert "tone/labels.coco.json" not in page and "report/labels" not in page

    @gen_test
    async def test_the_command_writes_every_format_from_the_notebook_and_the_database(self):
        await self.labeled()
        notebook, out = str(self.tmp / "notebook.ipynb"), self.tmp / "out"
        (self.tmp / "notebook.nbfreeze").symlink_to(self.bundle_dir)  # where serve builds it
        # the default database is app.sqlite in the bundle; this app's is beside it
        db = ("--db", self.db_url)
        done = export(notebook, *db, "--stage", "tone", "-o", str(out / "tone.jsonl"))
        assert done.returncode == 0, done.stderr
        assert len((out / "tone.jsonl").read_text().splitlines()) == 4
        done = export(self.db_url, "--format", "csv", "-o", str(out / "all"))
        assert done.returncode == 0, done.stderr
        assert sorted(p.name for p in (out / "all").iterdir()) == ["boxes.csv", "tone.csv"]
        done = export(str(self.bundle_dir), *db, "--format", "hf", "-o", str(out / "hf"))
        assert done.returncode == 0, done.stderr
        card = (out / "hf" / "README.md").read_text()
        assert "config_name: tone" in card and "config_name: boxes" in card
        done = export(
            notebook, *db, "--format", "coco", "--stage", "boxes", "-o", str(out / "c.json")
        )
        assert done.returncode == 0, done.stderr
        coco = json.loads((out / "c.json").read_text())
        assert len(coco["annotations"]) == 2 and (out / "boxes.png").read_bytes()[:4] == b"\x89PNG"
        assert [c["name"] for c in coco["categories"]] == ["car", "bus"]

    @gen_test
    async def test_the_command_refuses_in_one_line_naming_what_is_wrong(self):
        await self.labeled()
        bundle, db = str(self.bundle_dir), ("--db", self.db_url)
        out = str(self.tmp / "x")
        cases = [
            (
                (bundle, *db, "--stage", "nope", "-o", out),
                "no stage named 'nope' (its pool stages: tone, boxes)",
            ),
            (
                (bundle, *db, "--stage", "report", "-o", out),
                "stage 'report' is a compute stage, not a pool",
            ),
            (
                (bundle, *db, "--stage", "tone", "--format", "coco", "-o", out),
                "stage 'tone' shows a ChoiceLabeler, not a BoxEditor",
            ),
            (
                (str(self.tmp / "missing.ipynb"), "-o", out),
                "missing.ipynb: no such notebook or bundle",
            ),
            ((self.db_url, "--stage", "nope", "-o", out), "no pool stage named 'nope'"),
            ((self.db_url, "--format", "coco", "-o", out), "COCO needs the box stage's image"),
            ((str(ROOT / "README.md"), "-o", out), "README.md: is neither a notebook (.ipynb) nor"),
            (
                ("sqlite:////nowhere/app.sqlite", "-o", out),
                "sqlite:////nowhere/app.sqlite: no such database file",
            ),
        ]
        for args, message in cases:
            done = export(*args)
            assert done.returncode == 2, (args, done.stderr)
            assert message in done.stderr, (args, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert not Path(out).exists()


class TestExportsOnPostgres(TestExports):
    database = "postgresql"


RULED = (
    "from freezer.widgets import ChoiceLabeler\n"
    "texts = {f't{i}': f'text {i}' for i in range(4)}\n"
    "answers = {'t0': 'good'}\n"
    "def pessimist(labels):\n"
    "    return {item: ('bad' if 'bad' in given.values() else 'good', 0.9)\n"
    "            for item, given in labels.items()}",
    "#| stage: tone\n#| input: pool\n#| overlap: 2\n#| batch: 4\n"
    "#| merge: pessimist\n#| gold: answers\n#| gold_rate: 0.25\n"  # one gold item a batch
    "tone = ChoiceLabeler(texts, choices=['good', 'bad'])\ntone",
    "#| stage: report\n#| show: true\nprint(tone.labels)",
)


class TestExportsMergedByTheStagesRule(StagedTestCase):
    cells = RULED

    @gen_test
    async def test_the_download_is_merged_by_the_stages_rule_and_flags_its_gold(self):
        await self.advance()
        alice, bob = await self.labeler(), await self.labeler()
        for person, label in ((alice, "good"), (bob, "bad")):
            batch = (await person.get_json("/api/v1/stages/tone/batch"))[1]["items"]
            given = {key: label if key == '"t1"' else "good" for key in batch}
            status, reply = await person.submit("tone", {"__labels__": given})
            assert status == 200, reply
        await self.advance()
        owner = await self.owner()
        response = await owner.fetch("/api/v1/stages/tone/labels.jsonl")
        assert response.code == 200, response.body
        items = {i["id"]: i for i in map(json.loads, response.body.decode().splitlines())}
        assert (items["t1"]["label"], items["t1"]["probability"]) == ("bad", 0.9)  # pessimist
        assert (items["t2"]["label"], items["t2"]["probability"]) == ("good", 0.9)
        assert (items["t0"]["label"], items["t0"]["probability"], items["t0"]["gold"]) == (
            "good",
            1.0,
            True,
        )
        assert not any(items[i]["gold"] for i in ("t1", "t2", "t3"))
