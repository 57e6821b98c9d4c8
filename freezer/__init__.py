"""nbfreeze's compiler and author-facing API: annotated notebook → checked stage graph → bundle."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from freezer.bundle import BuildError, build_bundle
    from freezer.compile import compile_notebook
    from freezer.labels import load_answers, load_labels

__all__ = ["BuildError", "build_bundle", "compile_notebook", "load_answers", "load_labels"]

# Imported when first used: `nbfreeze serve` starts a second interpreter at once (see
# freezer/cli.py, `_with_system_malloc`), and the first should not import nbformat and
# jsonschema (two seconds) only to be replaced.
_HOMES = {
    "BuildError": "freezer.bundle",
    "build_bundle": "freezer.bundle",
    "compile_notebook": "freezer.compile",
    "load_answers": "freezer.labels",
    "load_labels": "freezer.labels",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'freezer' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
