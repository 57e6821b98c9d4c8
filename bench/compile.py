"""How long the compiler takes on big notebooks, beside `ast.parse` of the same cells.

Generates notebooks of 100, 1,000 and 10,000 cells that look like real ones (imports,
helper functions, comprehensions, assignments that read what earlier cells made,
Markdown, a `#| stage:` header about every ten cells, now and then an input stage),
compiles each with `freezer.compile.compile_notebook`, and times `ast.parse` of every
cell's source as the floor: the compiler cannot be faster than parsing. The target is
within 5x of that floor, growing linearly with the notebook.

    .venv/bin/python bench/compile.py            # prints the table, writes bench/results/compile.md
    .venv/bin/python bench/compile.py --profile  # also a cProfile of the largest notebook
"""

from __future__ import annotations

import argparse
import ast
import cProfile
import io
import platform
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat import v4

from freezer.compile import compile_notebook

ROOT = Path(__file__).resolve().parent.parent
SIZES = (100, 1_000, 10_000)
RESULTS = ROOT / "bench" / "results" / "compile.md"

IMPORTS = """import math
import json
import statistics
from collections import Counter, defaultdict
import numpy as np
import ipywidgets as widgets"""


class Generator:
    """Cells of a plausible notebook; every name a cell reads was bound by an earlier one."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.values: list[str] = ["base"]
        self.functions: list[str] = []
        self.count = 0
        self.stage = 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def _value(self) -> str:
        return self.random.choice(self.values[-30:])

    def cells(self, total: int) -> list[nbformat.NotebookNode]:
        made = [v4.new_markdown_cell("# A generated notebook"), v4.new_code_cell(IMPORTS)]
        made.append(v4.new_code_cell("base = np.arange(100, dtype=float)\nbase.mean()"))
        while len(made) < total:
            if len(made) % 10 == 0:
                made.extend(self._stage())
            else:
                made.append(self._cell())
        return made[:total]

    def _stage(self) -> list[nbformat.NotebookNode]:
        self.stage += 1
        name = f"stage_{self.stage}"
        made = [v4.new_markdown_cell(f"## Step {self.stage}\n\nLook at the numbers, then go on.")]
        kind = self.random.random()
        if kind < 0.08:
            widget = self._name("picked")
            source = (
                f"#| stage: {name}\n#| input: owner\n#| title: Pick a threshold\n"
                f"{widget} = widgets.FloatSlider(value=float({self._value()}.mean()), "
                "min=0.0, max=100.0)\n"
                f"{widget}"
            )
            self.values.append(widget)
        elif kind < 0.14:
            widget = self._name("mine")  # per-labeler answers nobody reads later
            source = (
                f"#| stage: {name}\n#| input: each\n"
                f"{widget} = widgets.Dropdown(options=sorted({{int(v) for v in "
                f"{self._value()}[:5]}}))\n{widget}"
            )
        elif kind < 0.20:
            widget = self._name("pool")
            source = (
                f"#| stage: {name}\n#| input: pool\n#| overlap: 2\n#| batch: 5\n"
                f"{widget} = widgets.ToggleButtons(options=['yes', 'no'])\n{widget}"
            )
            self.values.append(widget)
        else:
            source = f"#| stage: {name}\n{self._statements()}"
        made.append(v4.new_code_cell(source))
        if kind < 0.20:  # an input stage is its one cell: the computing goes on in a new stage
            after = f"#| stage: {name}_after\n{self._statements()}"
            made.append(v4.new_code_cell(after))
        return made

    def _cell(self) -> nbformat.NotebookNode:
        if self.random.random() < 0.1:
            return v4.new_markdown_cell("Some notes on what the next cells do, and why.")
        return v4.new_code_cell(self._statements())

    def _statements(self) -> str:
        return "\n".join(self._statement() for _ in range(self.random.randint(1, 4)))

    def _statement(self) -> str:
        pick = self.random.random()
        a, b = self._value(), self._value()
        if pick < 0.25 or not self.functions:
            fn = self._name("scaled")
            self.functions.append(fn)
            return (
                f"def {fn}(values, factor={self.random.randint(1, 9)}):\n"
                f'    """Scale and clip the values."""\n'
                f"    out = [v * factor for v in values if v > {a}.min()]\n"
                f"    return np.clip(np.asarray(out), 0, math.inf)"
            )
        target = self._name("x")
        self.values.append(target)
        if pick < 0.45:
            return f"{target} = {self.random.choice(self.functions)}({a}) + {b}.mean()"
        if pick < 0.6:
            return (
                f"{target} = np.array([math.sqrt(abs(v)) for v in {a} if v == v])\n"
                f"counts = Counter(int(v) // 7 for v in {target})"
            )
        if pick < 0.72:
            return (
                f"groups = defaultdict(list)\nfor i, v in enumerate({a}):\n"
                f"    groups[i % 3].append(v)\n"
                f"{target} = np.array([statistics.fmean(g) for g in groups.values()])"
            )
        if pick < 0.85:
            return (
                f"{target} = {a} * 0.5 + {b} * 0.5 if len({a}) == len({b}) else {a}\n"
                f"print(json.dumps({{'n': len({target}), 'mean': float({target}.mean())}}))"
            )
        return f"{target} = np.sort({a})[::-1]\n{target}[:3]"


def write_notebook(cells: int, directory: Path) -> tuple[Path, list[str]]:
    made = Generator(seed=cells).cells(cells)
    notebook = v4.new_notebook(
        cells=made,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    path = directory / f"generated-{cells}.ipynb"
    nbformat.write(notebook, path)
    return path, [cell.source for cell in made if cell.cell_type == "code"]


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of `runs` timings in milliseconds of this process's CPU time (the
    least disturbed by whatever else the machine runs; the compiler is single-threaded)."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        work()
        times.append((time.process_time() - start) * 1000)
    return min(times)


def parse_all(sources: list[str]) -> None:
    """The floor: parse every code cell, keeping no tree (the compiler keeps none either;
    keeping 10,000 trees alive would make the garbage collector the bottleneck)."""
    for source in sources:
        ast.parse(source)


def measure(cells: int, directory: Path) -> dict[str, float]:
    path, sources = write_notebook(cells, directory)
    graph = compile_notebook(path)
    problems = [d for d in graph.diagnostics if d.severity == "error"]
    if problems:
        raise SystemExit(f"the generated {cells}-cell notebook does not compile: {problems[:3]}")
    runs = 5 if cells < 10_000 else 3
    floor = best_of(runs, lambda: parse_all(sources))
    took = best_of(runs, lambda: compile_notebook(path))
    return {
        "cells": cells,
        "stages": len(graph.stages),
        "parse": floor,
        "compile": took,
        "ratio": took / floor,
        "per_cell": took / cells,
    }


def table(rows: list[dict[str, float]]) -> str:
    lines = [
        "| cells | stages | ast.parse ms | compile ms | ratio | ms per cell |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['cells']:,} | {row['stages']:,} | {row['parse']:.1f} | "
            f"{row['compile']:.1f} | {row['ratio']:.1f}x | {row['per_cell']:.3f} |"
        )
    return "\n".join(lines)


def growth(rows: list[dict[str, float]]) -> str:
    per_cell = [row["per_cell"] for row in rows]
    spread = max(per_cell) / min(per_cell)
    verdict = "linear" if spread < 1.5 else "not linear"
    return (
        f"Time per cell from {rows[0]['cells']:,} to {rows[-1]['cells']:,} cells varies "
        f"{spread:.2f}x ({verdict}); the median ratio to the floor is "
        f"{statistics.median(r['ratio'] for r in rows):.1f}x (target: at most 5x)."
    )


def profile(path: Path) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    compile_notebook(path)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--profile", action="store_true", help="cProfile the largest notebook")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS}")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        rows = [measure(cells, directory) for cells in options.sizes]
        report = "\n\n".join(
            [
                "# Compiler speed",
                "`bench/compile.py`: generated notebooks (imports, helper functions, "
                "comprehensions, assignments, Markdown, a stage header about every ten "
                "cells, some input stages) through `freezer.compile.compile_notebook` "
                "(reading and validating the file included), beside `ast.parse` of the "
                "same cells' sources (each parsed, no tree kept). CPU time of the process, "
                "best of 5 runs (3 for 10,000 cells).",
                table(rows),
                growth(rows),
                f"Python {platform.python_version()} on {platform.machine()}, "
                f"{platform.system()} {platform.release()}.",
            ]
        )
        print(report)
        if not options.no_write:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(report + "\n")
        if options.profile:
            largest, _ = write_notebook(max(options.sizes), directory)
            print(profile(largest))


if __name__ == "__main__":
    main()
