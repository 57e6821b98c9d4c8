"""Running one cell's code in a session's namespace the way IPython runs it.

The code is compiled under the cell's own file name, so a traceback says which cell
and line raised; a last line that is an expression is displayed (unless it ends with
`;`); an error is reported and swallowed, so later cells still run.
"""

from __future__ import annotations

import ast
import builtins
import linecache
from typing import Any

from IPython.core.display_functions import display
from IPython.core.getipython import get_ipython

from runtime.shell import SessionShell, cell_filename

# What IPython puts in a notebook's builtins, beside Python's own.
BUILTINS: dict[str, Any] = {**vars(builtins), "display": display, "get_ipython": get_ipython}


def new_namespace() -> dict[str, Any]:
    """The globals of a fresh notebook."""
    return {"__name__": "__main__", "__builtins__": BUILTINS}


def run_cell(shell: SessionShell, index: int, code: str, namespace: dict[str, Any]) -> None:
    """Run the code of cell `index`; whatever it shows or raises goes through `shell`."""
    filename = cell_filename(index)
    _remember_source(filename, code)
    shell.cell = index
    try:
        tree = ast.parse(code, filename)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        # dont_inherit: this module's `from __future__ import annotations` must not turn
        # the notebook's annotations into strings (interact reads them as types).
        exec(compile(tree, filename, "exec", dont_inherit=True), namespace)
        if last is not None:
            expression = ast.Expression(last.value)
            value = eval(compile(expression, filename, "eval", dont_inherit=True), namespace)
            if not _quiet(code, last):
                shell.displayhook(value)
    except (Exception, SystemExit):
        shell.showtraceback()
    finally:
        shell.flush()
        shell.cell = None


def _remember_source(filename: str, code: str) -> None:
    """Let tracebacks in the log show the cell's lines. Only a change is stored: a new
    copy per run would outlive the session and keep its memory from the OS."""
    entry = linecache.cache.get(filename)
    if entry is None or entry[0] != len(code) or "".join(entry[2]) != code:
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)


def _quiet(code: str, last: ast.Expr) -> bool:
    """Whether the last expression ends with `;`, which hides its value in IPython."""
    line = code.splitlines()[(last.end_lineno or 1) - 1]
    rest = line[last.end_col_offset or 0 :].lstrip()
    return rest.startswith(";")
