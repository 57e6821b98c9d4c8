"""What a star import binds: the names `from m import *` takes, where `m` can be imported.

The compiler never runs the notebook's code, but a star import's names are known only
to the module, so `star_names` imports it, the way pyflakes does not. It does so in a
child interpreter (this Python, with the notebook's folder first on the path, as in
Jupyter, then this process's path), so the module's import-time code can neither change
nor stop `nbfreeze check`: a module that fails to import or takes longer than
`IMPORT_SECONDS` has no list, and the compiler falls back to assuming that any name
nothing else binds comes from it. Running the module's code at check time is acceptable
because the notebook imports it anyway: the author's packages are trusted code (docs/design.md,
Trust). The names are `__all__` where the module defines it, else every name in its
namespace that does not start with `_`, as Python takes them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

IMPORT_SECONDS = 15.0

# Run by the child: find the module without importing it, then import it with its output
# sent to standard error, and print the names as the last line of standard output.
_CHILD = """
import importlib, importlib.util, json, sys
name, path = sys.argv[1], json.loads(sys.argv[2])
sys.path[:] = path
out, sys.stdout = sys.stdout, sys.stderr
try:
    if importlib.util.find_spec(name) is None:
        answer = {"reason": f"{name} is not installed where the notebook is checked"}
    else:
        module = importlib.import_module(name)
        names = getattr(module, "__all__", None)
        if names is None:
            names = [n for n in vars(module) if not n.startswith("_")]
        answer = {"names": sorted({n for n in names if isinstance(n, str) and n.isidentifier()})}
except BaseException as error:
    answer = {"reason": f"importing {name} failed: {type(error).__name__}: {error}"}
out.write("\\n" + json.dumps(answer) + "\\n")
out.flush()
"""


class StarNames(NamedTuple):
    """The names a star import binds, or None with the reason they cannot be listed."""

    names: tuple[str, ...] | None
    reason: str = ""


def star_names(module: str, folder: Path) -> StarNames:
    """The names `from module import *` binds in a notebook in `folder`, if they can be known."""
    if module.startswith("."):
        return StarNames(None, "a relative import has no package in a notebook")
    path = [str(folder), *(p for p in sys.path if p)]
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, module, json.dumps(path)],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=IMPORT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return StarNames(None, f"importing {module} took longer than {IMPORT_SECONDS:g} s")
    except OSError as error:
        return StarNames(None, f"no interpreter to import {module} in ({error})")
    lines = child.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        return StarNames(None, f"importing {module} stopped its interpreter")
    if "names" in answer:
        return StarNames(tuple(answer["names"]))
    return StarNames(None, str(answer["reason"]))
