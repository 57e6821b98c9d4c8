"""Running one cell's code in a session's namespace the way IPython runs it.

The code is compiled under the cell's own file name, so a traceback says which cell
and line raised; a last line that is an expression is displayed (unless it ends with
`;`); an error is reported and swallowed, so later cells still run.
"""

from __future__ import annotations

import ast
import builtins
import functools
import linecache
from types import CodeType
from typing import Any

from IPython.core.display_functions import display
from IPython.core.getipython import get_ipython

from runtime.host.shell import SessionShell, cell_filename

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
        body, last, shown = _compiled(filename, code)
        exec(body, namespace)
        if last is not None:
            value = eval(last, namespace)
            if shown:
                shell.displayhook(value)
    except (Exception, SystemExit):
        shell.showtraceback()
    finally:
        shell.flush()
        shell.cell = None


@functools.lru_cache(maxsize=4096)
def _compiled(filename: str, code: str) -> tuple[CodeType, CodeType | None, bool]:
    """The cell's statements, its last expression if it ends in one, and whether that
    value is shown. Every visitor runs the same cells, so they are parsed and compiled
    once per process, not once per visit."""
    tree = ast.parse(code, filename)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    # dont_inherit: this module's `from __future__ import annotations` must not turn
    # the notebook's annotations into strings (interact reads them as types).
    body = compile(tree, filename, "exec", dont_inherit=True)
    if last is None:
        return body, None, False
    expression = compile(ast.Expression(last.value), filename, "eval", dont_inherit=True)
    return body, expression, not _quiet(code, last)


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
