"""The bundle: what manifest.json says, what files are written, and that builds repeat exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from freezer.bundle import BuildError, build_bundle

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits.ipynb"


def files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_building_the_same_notebook_twice_is_byte_identical(tmp_path):
    first = build_bundle(EXAMPLE, tmp_path / "one")
    second = build_bundle(EXAMPLE, tmp_path / "two")
    assert files(first) == files(second)
    build_bundle(EXAMPLE, first)
    assert files(first) == files(second)


def test_manifest_describes_every_stage(tmp_path):
    manifest = json.loads((build_bundle(EXAMPLE, tmp_path / "b") / "manifest.json").read_text())
    assert manifest["format"] == 1
    assert len(manifest["source_sha256"]) == 64
    check = next(s for s in manifest["stages"] if s["name"] == "check")
    assert check["kind"] == "input" and check["input"] == "pool" and check["scope"] == "shared"
    assert check["options"] == {
        "overlap": 2,
        "batch": 8,
        "lease_seconds": 600,
        "merge": "majority",
        "gold": "gold",
        "gold_line": 6,
        "gold_rate": 0.25,
    }
    assert check["depends_on"] == ["start", "sample"]
    assert "to_label" in check["uses"] and check["defines"] == ["checker"]
    for stage in manifest["stages"]:
        for key in ("name", "kind", "input", "scope", "cells", "depends_on", "defines", "uses"):
            assert key in stage
        assert (tmp_path / "b" / stage["file"]).is_file()


def test_bundle_holds_stage_sources_instructions_and_the_notebook(tmp_path):
    bundle = build_bundle(EXAMPLE, tmp_path / "b")
    assert (bundle / "notebook.ipynb").read_bytes() == EXAMPLE.read_bytes()
    assert "Is each image a handwritten" in (bundle / "instructions" / "check.md").read_text()
    source = (bundle / "stages" / "08_check.py").read_text()
    assert "# %% cell" in source and "ChoiceLabeler" in source
    compile(source, "check.py", "exec")


def test_cell_code_keeps_the_cells_line_numbers(write_notebook, tmp_path):
    path = write_notebook("#| stage: a\n%matplotlib inline\nx = 1")
    manifest = json.loads((build_bundle(path, tmp_path / "b") / "manifest.json").read_text())
    code = manifest["cells"][0]["code"]
    assert code.splitlines()[2] == "x = 1"


def test_a_notebook_with_errors_writes_no_bundle(write_notebook, tmp_path):
    with pytest.raises(BuildError):
        build_bundle(write_notebook("print(nope)"), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_rebuilding_keeps_files_that_are_not_the_bundles(write_notebook, tmp_path):
    path = write_notebook("#| stage: a\nx = 1", "#| stage: b\ny = x")
    bundle = build_bundle(path, tmp_path / "b")
    (bundle / "app.sqlite").write_text("labels")
    path = write_notebook("#| stage: a\nx = 1")
    build_bundle(path, bundle)
    assert (bundle / "app.sqlite").read_text() == "labels"
    assert sorted(p.name for p in (bundle / "stages").iterdir()) == ["01_a.py"]


def test_build_command_writes_the_bundle(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "build", str(EXAMPLE), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "manifest.json").is_file()
