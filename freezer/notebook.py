"""Reading a notebook file into cells, with a clear message for anything that is not one.

nbformat does the parsing and the schema validation; this module turns its failures
(and a missing file, another kernel's language, an empty notebook) into diagnostics.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from freezer.ir import ERROR, Cell, Diagnostic


@dataclass(frozen=True)
class SourceNotebook:
    """The notebook's raw cells and the hash of its bytes."""

    name: str
    data: bytes
    source_sha256: str
    cells: tuple[Cell, ...]
    diagnostics: tuple[Diagnostic, ...]


def _fail(name: str, message: str, hint: str | None = None) -> SourceNotebook:
    problem = Diagnostic(ERROR, name, message, hint=hint)
    return SourceNotebook(name, b"", "", (), (problem,))


def read_notebook(path: Path) -> SourceNotebook:
    """Read and validate `path`; problems come back as diagnostics, never raised."""
    name = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _fail(name, "no such file.", "check the path and the file name.")
    except IsADirectoryError:
        return _fail(name, "is a directory, not a notebook file.", "pass the .ipynb file.")
    except OSError as exc:
        return _fail(name, f"cannot be read: {exc.strerror}.")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return _fail(name, "is not a notebook: it is not UTF-8 text.")
    except json.JSONDecodeError as exc:
        return _fail(
            name,
            f"is not a notebook: not valid JSON at line {exc.lineno}, column {exc.colno} "
            f"({exc.msg}).",
            "open it in Jupyter and save it again, or restore it from version control.",
        )
    if not isinstance(raw, dict) or "cells" not in raw:
        return _fail(name, "is not a notebook: the JSON document has no `cells` list.")
    try:  # a lone surrogate escape is valid JSON but no text: later steps cannot encode it
        json.dumps(raw, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        return _fail(
            name,
            f"is not a notebook: its JSON holds an escape that is no Unicode text "
            f"({exc.object[exc.start : exc.end]!r}, a lone surrogate).",
            "remove that escape from the file, or restore it from version control.",
        )
    invalid: dict[str, nbformat.ValidationError] = {}
    try:
        node = nbformat.reads(data.decode("utf-8"), as_version=4, capture_validation_error=invalid)
        if "ValidationError" in invalid:
            raise invalid["ValidationError"]
    except nbformat.ValidationError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "the top level"
        return _fail(
            name,
            f"is not a valid nbformat 4 notebook: at {where}: {exc.message}.",
            "open it in Jupyter and save it again.",
        )
    except Exception as exc:  # nbformat raises plain errors for unknown versions
        return _fail(name, f"is not a valid notebook: {exc}.")
    language = _language(node)
    if language and language.lower() != "python":
        return _fail(
            name,
            f"is a {language} notebook; nbfreeze freezes Python notebooks only.",
        )
    cells = tuple(
        Cell(index=position, type=cell.cell_type, source=cell.source)
        for position, cell in enumerate(node.cells, start=1)
    )
    if not any(cell.type == "code" and cell.source.strip() for cell in cells):
        return _fail(
            name,
            "has no code cells: there is nothing to serve.",
            "add the notebook's code, or check that this is the right file.",
        )
    digest = hashlib.sha256(data).hexdigest()
    return SourceNotebook(name, data, digest, cells, ())


def _language(node: nbformat.NotebookNode) -> str | None:
    metadata = node.get("metadata", {})
    info = metadata.get("language_info", {}) or {}
    spec = metadata.get("kernelspec", {}) or {}
    return info.get("name") or spec.get("language")
