"""The docs stay true: their examples run, and every key, flag and field is documented."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from freezer.annotations import KEYS
from freezer.bundle import build_bundle
from freezer.cli import _parser
from freezer.compile import compile_notebook, has_errors

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(\w+) (\w+)\n(.*?)^```", re.S | re.M)


def blocks(kind: str) -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]:
        for language, marker, body in BLOCK.findall(page.read_text()):
            if f"{language} {marker}" == kind:
                found.append((page.name, body))
    return found


@pytest.mark.parametrize("page,body", blocks("python notebook"))
def test_documented_notebooks_compile_cleanly(page, body, write_notebook):
    graph = compile_notebook(write_notebook(*body.split("# %%\n")))
    assert not has_errors(graph), [d.message for d in graph.diagnostics]


@pytest.mark.parametrize("page,body", blocks("sh runnable"))
def test_documented_commands_run(page, body):
    for line in body.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == "nbfreeze"
        result = subprocess.run(
            [sys.executable, "-m", "freezer", *words[1:]], cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{page}: {line}\n{result.stderr}"


@pytest.mark.parametrize("page,body", blocks("python runnable"))
def test_documented_python_runs(page, body, tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", body],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"{page}:\n{body}\n{result.stderr}"


def test_every_annotation_key_has_a_section():
    text = (DOCS / "annotations.md").read_text()
    for key in KEYS:
        assert f"## `{key}`" in text


def test_every_cli_flag_is_documented():
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *DOCS.glob("*.md")])
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        assert f"nbfreeze {name}" in text
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"{flag} of `nbfreeze {name}` is not documented"


def test_every_manifest_field_is_documented(tmp_path):
    manifest = json.loads(
        (build_bundle(ROOT / "examples" / "digits.ipynb", tmp_path) / "manifest.json").read_text()
    )
    text = (DOCS / "bundle.md").read_text()
    fields = (
        set(manifest)
        | set(manifest["stages"][0])
        | set(manifest["cells"][0])
        | set(manifest["cells"][1])
    )
    for field in fields:
        assert f"`{field}`" in text, f"manifest field `{field}` is not in docs/bundle.md"


def test_every_api_route_is_documented():
    from runtime.app.handlers import routes

    text = (DOCS / "api.md").read_text()
    routes = re.findall(r'\(r"(/api/v1[^"]*)"', Path(routes.__code__.co_filename).read_text())
    assert routes
    for route in routes:
        shown = route.replace("([^/]+)", "NAME").replace(
            "\\.(jsonl|csv|coco\\.json|hf\\.zip)", ".jsonl"
        )
        assert re.search(rf"`(GET|POST) {re.escape(shown)}[`?]", text), f"{shown} is not documented"


def test_the_custom_widget_guide_shows_its_example_whole_and_short():
    example = (ROOT / "examples" / "thumbs.py").read_text()
    guide = (DOCS / "custom-widgets.md").read_text()
    assert f"```python\n{example}```" in guide
    lines = len(example.splitlines())
    assert lines < 60
    assert f"{lines} lines of Python and JavaScript" in guide


def test_the_design_names_every_part_of_the_runtime_in_its_table_and_drawing():
    design = (DOCS / "design.md").read_text()
    drawing = (DOCS / "layout.dot").read_text()
    picture = (DOCS / "layout.svg").read_text()  # drawn from layout.dot
    parts = [p.parent.name for p in sorted((ROOT / "runtime").glob("*/__init__.py"))]
    assert parts == ["app", "host", "store"]
    for part in parts:
        assert f"| `runtime/{part}/` |" in design, part
        assert f"{part}/" in drawing and f"{part}/" in picture, part
    assert "](layout.svg)" in design


def test_every_serve_option_is_in_the_configuration_reference():
    from dataclasses import fields

    from runtime.server import ServeOptions

    text = (DOCS / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| `(--[\w-]+)` \|", text, re.M))
    assert set(rows) == {f.name for f in fields(ServeOptions)}
    serve = _parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    flags = {flag for action in serve._actions for flag in action.option_strings}
    assert set(rows.values()) <= flags
