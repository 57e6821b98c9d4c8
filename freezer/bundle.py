"""Writing a compiled graph as a bundle directory: the only thing the runtime reads.

The same notebook always gives byte-identical files: sorted keys, no timestamps, and
nothing in the directory that depends on where or when it was built.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from freezer.compile import compile_notebook, has_errors
from freezer.ir import Graph
from freezer.report import diagnostic_json, dumps, stage_json

FORMAT = 1


class BuildError(Exception):
    """The notebook has errors; `graph.diagnostics` says which."""

    def __init__(self, graph: Graph) -> None:
        super().__init__(f"{graph.notebook} has errors")
        self.graph = graph


def stage_file(position: int, name: str) -> str:
    """The bundle-relative path of a stage's Python file."""
    return f"stages/{position:02d}_{name}.py"


def manifest(graph: Graph) -> dict[str, object]:
    """The bundle's manifest.json as data."""
    cells = []
    owner = {index: stage.name for stage in graph.stages for index in stage.cells}
    for cell in graph.cells:
        entry: dict[str, object] = {
            "index": cell.index,
            "type": cell.type,
            "stage": owner.get(cell.index),
        }
        if cell.type == "code":
            entry["code"] = cell.code
        else:
            entry["source"] = cell.source
        cells.append(entry)
    stages = []
    for position, stage in enumerate(graph.stages, start=1):
        entry = stage_json(graph, stage)
        entry["file"] = stage_file(position, stage.name)
        entry["instructions"] = (
            f"instructions/{stage.name}.md" if _instructions(graph, stage.cells) else None
        )
        stages.append(entry)
    return {
        "format": FORMAT,
        "notebook": Path(graph.notebook).name,
        "source_sha256": graph.source_sha256,
        "requirements": list(graph.requirements),
        "cells": cells,
        "stages": stages,
        "diagnostics": [diagnostic_json(d) for d in graph.diagnostics],
    }


def _instructions(graph: Graph, indices: tuple[int, ...]) -> str:
    chosen = set(indices)
    parts = [c.source.strip() for c in graph.cells if c.index in chosen and c.type == "markdown"]
    return "\n\n".join(p for p in parts if p)


def _stage_source(graph: Graph, indices: tuple[int, ...], name: str) -> str:
    chosen = set(indices)
    parts = [f"# Stage `{name}` of {Path(graph.notebook).name}, compiled by nbfreeze.\n"]
    for cell in graph.cells:
        if cell.index in chosen and cell.type == "code":
            parts.append(f"\n# %% cell {cell.index}\n{cell.code.rstrip()}\n")
    return "".join(parts)


def write_bundle(graph: Graph, notebook_bytes: bytes, out: Path) -> Path:
    """Write the bundle of an error-free graph into `out` and return `out`."""
    if has_errors(graph):
        raise BuildError(graph)
    out.mkdir(parents=True, exist_ok=True)
    for generated in ("stages", "instructions"):
        shutil.rmtree(out / generated, ignore_errors=True)
        (out / generated).mkdir()
    for position, stage in enumerate(graph.stages, start=1):
        _write(
            out / stage_file(position, stage.name), _stage_source(graph, stage.cells, stage.name)
        )
        text = _instructions(graph, stage.cells)
        if text:
            _write(out / "instructions" / f"{stage.name}.md", text + "\n")
    (out / "notebook.ipynb").write_bytes(notebook_bytes)
    _write(out / "manifest.json", dumps(manifest(graph)))
    return out


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def build_bundle(notebook: Path | str, out: Path | str) -> Path:
    """Compile `notebook` and write its bundle to `out`; raises BuildError on errors."""
    path = Path(notebook)
    graph = compile_notebook(path)
    if has_errors(graph):
        raise BuildError(graph)
    return write_bundle(graph, path.read_bytes(), Path(out))
