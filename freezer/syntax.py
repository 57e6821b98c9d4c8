"""IPython syntax to plain Python, with the magics a frozen app can and cannot keep.

IPython's own transformer turns `%magic`, `!cmd` and `%%cell` syntax into calls on
`get_ipython()`; we then find those calls in the AST, keep `%matplotlib` (the runtime's
shell switches the session's backend, as a kernel does), drop the display-only ones and
`%pip install` (with a warning), and reject the rest, all located by cell and line.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass

from IPython.core.inputtransformer2 import TransformerManager

from freezer.ir import ERROR, WARNING, Cell, Diagnostic

DISPLAY_ONLY = ("autoreload", "config", "gui")
# The `%matplotlib` backends a page shows: the inline backend's PNGs, ipympl's canvas.
MATPLOTLIB_BACKENDS = ("inline", "widget", "ipympl")
TIMING_CELL_MAGIC = "%%time"
_TRANSFORMER = TransformerManager()
_SHELL = {"system": "a shell escape (`!cmd`)", "getoutput": "a shell escape (`x = !cmd`)"}
_SHELL_CELL_MAGICS = ("bash", "sh", "script", "system", "cmd", "powershell")


@dataclass(frozen=True)
class Python:
    """A cell's code as plain Python (same line count as the cell) and what it needs."""

    code: str
    tree: ast.Module | None
    requirements: tuple[str, ...]
    diagnostics: tuple[Diagnostic, ...]


def to_python(cell: Cell, notebook: str) -> Python:
    """Transform one code cell; a syntax error comes back as a diagnostic."""
    source, timing = _without_timing(cell, notebook)
    code = source if source.endswith("\n") or not source else source + "\n"
    try:
        tree = ast.parse(code)
    except SyntaxError:
        # IPython syntax (%magic, !cmd, obj?) is never valid Python: only now is it worth
        # running IPython's transformer.
        try:
            code = _TRANSFORMER.transform_cell(source)
        except SyntaxError:  # its tokenizer refuses bad indentation: reported below
            pass
        tree = None
    try:
        tree = tree or ast.parse(code)
    except SyntaxError as exc:
        line = exc.lineno or 1
        problem = Diagnostic(
            ERROR,
            notebook,
            f"syntax error: {exc.msg}.",
            cell=cell.index,
            line=line,
            hint="fix the code so that the cell runs in Jupyter.",
        )
        return Python(code, None, (), (problem,))
    problems = [timing] if timing else []
    if "get_ipython" not in code or not any(
        isinstance(node, ast.Call) and _magic_call(node) for node in ast.walk(tree)
    ):
        return Python(code, tree, (), tuple(problems))
    return _drop_magics(cell, notebook, code, tree, problems)


def _without_timing(cell: Cell, notebook: str) -> tuple[str, Diagnostic | None]:
    """A `%%time` cell runs its body as it is: the timing is a Jupyter nicety."""
    first, newline, rest = cell.source.partition("\n")
    if first.strip() != TIMING_CELL_MAGIC:
        return cell.source, None
    warning = Diagnostic(
        WARNING,
        notebook,
        "`%%time` is dropped: the cell runs, but its timing is not shown in the app.",
        cell=cell.index,
        line=1,
    )
    return newline + rest, warning


def _drop_magics(
    cell: Cell, notebook: str, code: str, tree: ast.Module, problems: list[Diagnostic]
) -> Python:
    """Drop the allowed magics (blank lines, `pass` in blocks) and report the rest."""
    lines = code.split("\n")
    requirements: list[str] = []
    dropped: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _magic_call(node):
            continue
        verdict = _judge(node)
        where = {"cell": cell.index, "line": node.lineno}
        if verdict.error:
            problems.append(Diagnostic(ERROR, notebook, verdict.error, hint=verdict.hint, **where))
            continue
        if verdict.kept:
            if verdict.warning:
                problems.append(Diagnostic(WARNING, notebook, verdict.warning, **where))
            continue
        statement = _statement_of(tree, node)
        if statement is None:
            problems.append(
                Diagnostic(
                    ERROR,
                    notebook,
                    f"`%{verdict.name}` is used inside an expression; it can only be dropped "
                    "when it stands on its own line.",
                    hint="put the magic on a line of its own, or delete it.",
                    **where,
                )
            )
            continue
        requirements.extend(verdict.requirements)
        problems.append(Diagnostic(WARNING, notebook, verdict.warning, **where))
        first = statement.lineno - 1
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first] = indent + "pass" if indent else ""
        dropped.update(range(first + 1, statement.end_lineno))
    for index in dropped:
        lines[index] = ""
    code = "\n".join(lines)
    tree = ast.parse(code) if not any(p.severity == ERROR for p in problems) else None
    return Python(code, tree, tuple(requirements), tuple(problems))


def _magic_call(node: ast.Call) -> bool:
    """Is this `get_ipython().<method>(...)` as IPython's transformer writes it?"""
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Call)
        and isinstance(func.value.func, ast.Name)
        and func.value.func.id == "get_ipython"
        and func.attr in ("run_line_magic", "run_cell_magic", "system", "getoutput")
    )


@dataclass(frozen=True)
class _Verdict:
    name: str = ""
    error: str | None = None
    hint: str | None = None
    warning: str = ""
    requirements: tuple[str, ...] = ()
    kept: bool = False  # the call stays in the code: the runtime runs it


def _literal_args(node: ast.Call) -> list[str]:
    return [arg.value for arg in node.args if isinstance(arg, ast.Constant)]


def _judge(node: ast.Call) -> _Verdict:
    method = node.func.attr  # type: ignore[attr-defined]
    args = _literal_args(node)
    if method in _SHELL:
        return _Verdict(
            error=f"{_SHELL[method]} cannot run in a frozen stage: labelers' sessions run no "
            "shell commands.",
            hint="do it in Python (subprocess, pathlib), or once on the server before serving.",
        )
    name = args[0] if args else "?"
    rest = args[1] if len(args) > 1 else ""
    if method == "run_cell_magic":
        what = "a shell escape" if name in _SHELL_CELL_MAGICS else "a cell magic"
        return _Verdict(
            name,
            error=f"`%%{name}` is {what}; cell magics cannot run in a frozen stage.",
            hint="rewrite the cell in plain Python.",
        )
    if name == "pip":
        words = shlex.split(rest) if rest else []
        if words[:1] == ["install"]:
            packages = tuple(w for w in words[1:] if not w.startswith("-"))
            listing = ", ".join(packages) or "nothing"
            return _Verdict(
                name,
                warning=f"`%pip install` is dropped; install {listing} where the app is served.",
                requirements=packages,
            )
        return _Verdict(
            name, error=f"`%pip {rest}` cannot run in a frozen stage.", hint="delete it."
        )
    if name == "matplotlib":
        return _matplotlib(rest)
    if name == "load_ext" and rest.strip() == "autoreload" or name in DISPLAY_ONLY:
        written = f"%{name} {rest}".strip()
        return _Verdict(name, warning=f"`{written}` only affects Jupyter; it is dropped.")
    if name in ("pinfo", "pinfo2"):
        return _Verdict(
            name, error="`obj?` help syntax cannot run in a frozen stage.", hint="delete it."
        )
    return _Verdict(
        name,
        error=f"the magic `%{name}` cannot run in a frozen stage.",
        hint="only %matplotlib (kept), %load_ext autoreload, %autoreload, %config, %gui, %%time "
        "and %pip install (dropped) are allowed; rewrite the line in plain Python.",
    )


def _matplotlib(rest: str) -> _Verdict:
    """`%matplotlib` stays: `inline` (or no name) and `widget`/`ipympl` work as in
    Jupyter; a GUI toolkit's backend cannot draw in a page, so it falls back to inline."""
    words = [word for word in rest.split() if not word.startswith("-")]
    if not words or words[0] in MATPLOTLIB_BACKENDS:
        return _Verdict("matplotlib", kept=True)
    return _Verdict(
        "matplotlib",
        warning=f"`%matplotlib {rest.strip()}` cannot draw in a page; the app shows its "
        "figures as PNGs (`%matplotlib inline`); use `%matplotlib widget` for interactive ones.",
        kept=True,
    )


def _statement_of(tree: ast.Module, call: ast.Call) -> ast.stmt | None:
    """The statement that is exactly this call, or None when the call is inside one."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and node.value is call:
            return node
    return None
