"""Reading a compiled bundle (docs/bundle.md): the only door from `freezer` to `runtime`.

The runtime needs the notebook's cells in order: a code cell's transformed Python
(which keeps the cell's line numbering, so errors name the notebook's own lines) and a
Markdown cell's source. Everything is checked here, once, so later steps trust it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1


class BundleError(Exception):
    """The directory is not a bundle this runtime can serve; the message says why."""


@dataclass(frozen=True)
class Cell:
    index: int  # 1-based position among all cells, Markdown included
    type: str  # "code", "markdown" or "raw"
    text: str  # Python for a code cell, Markdown for a Markdown cell, else ""


@dataclass(frozen=True)
class Stage:
    """A stage of the compiled graph, as the runtime walks it."""

    name: str
    title: str
    kind: str  # "compute" or "input"
    input: str | None  # "each", "pool", "owner" or None
    scope: str  # "shared" or "user"
    cells: tuple[int, ...]
    depends_on: tuple[str, ...]
    defines: tuple[str, ...]
    options: dict[str, Any]
    widget: str | None
    star_imports: tuple[str, ...] = ()  # the modules of its `from m import *`

    @property
    def shown(self) -> bool:
        """Does the stage have a page of its own?"""
        return self.kind == "input" or bool(self.options.get("show"))


@dataclass(frozen=True)
class Notebook:
    name: str
    cells: tuple[Cell, ...]
    stages: tuple[Stage, ...] = ()

    @property
    def code_cells(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.type == "code")

    @property
    def staged(self) -> bool:
        """Is this a staged app (it has input stages) rather than a page per visitor?"""
        return any(stage.kind == "input" for stage in self.stages)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def cells_of(self, stage: Stage) -> tuple[Cell, ...]:
        chosen = set(stage.cells)
        return tuple(c for c in self.cells if c.index in chosen)


def load(bundle_dir: Path) -> Notebook:
    """The notebook a bundle directory holds."""
    path = Path(bundle_dir) / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir} is not a bundle: it has no manifest.json") from None
    except ValueError as error:
        raise BundleError(f"{path} is not valid JSON: {error}") from None
    if manifest.get("format") != FORMAT:
        raise BundleError(
            f"{path} has bundle format {manifest.get('format')!r}; this runtime reads format "
            f"{FORMAT}. Rebuild it with this version of nbfreeze."
        )
    try:
        cells = tuple(_cell(entry) for entry in manifest["cells"])
        stages = tuple(_stage(entry) for entry in manifest.get("stages", []))
        name = str(manifest["notebook"])
    except (KeyError, TypeError, ValueError) as error:
        raise BundleError(f"{path} is malformed: {error!r}") from None
    return Notebook(name=name, cells=cells, stages=stages)


def _cell(entry: dict[str, Any]) -> Cell:
    kind = entry["type"]
    text = {"code": entry.get("code"), "markdown": entry.get("source")}.get(kind, "")
    if not isinstance(text, str):
        raise ValueError(f"cell {entry.get('index')} has no text")
    return Cell(index=int(entry["index"]), type=kind, text=text)


def _stage(entry: dict[str, Any]) -> Stage:
    return Stage(
        name=str(entry["name"]),
        title=str(entry["title"]),
        kind=str(entry["kind"]),
        input=entry["input"],
        scope=str(entry["scope"]),
        cells=tuple(int(i) for i in entry["cells"]),
        depends_on=tuple(str(d) for d in entry["depends_on"]),
        defines=tuple(str(d) for d in entry["defines"]),
        options=dict(entry.get("options") or {}),
        widget=entry.get("widget"),
        star_imports=tuple(str(m) for m in entry.get("star_imports", ())),
    )
