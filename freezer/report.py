"""Rendering a compiled graph for people and tools: diagnostics, the stage table, DOT, JSON.

Diagnostics are rendered here and only here, so the terminal, the page and editors
all say the same thing.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from freezer.ir import ERROR, Diagnostic, Graph, Stage

_ANSWERED_BY = {"each": "every labeler", "owner": "the owner", None: "-"}


def diagnostic_text(diagnostic: Diagnostic) -> str:
    """`notebook, stage `s`, cell 7, line 3: error: message; hint.`"""
    where = [diagnostic.notebook]
    if diagnostic.stage:
        where.append(f"stage `{diagnostic.stage}`")
    if diagnostic.cell is not None:
        where.append(f"cell {diagnostic.cell}")
    if diagnostic.line is not None:
        where.append(f"line {diagnostic.line}")
    text = f"{', '.join(where)}: {diagnostic.severity}: {diagnostic.message}"
    if diagnostic.hint:
        text += f"\n    hint: {diagnostic.hint}"
    return text


def answered_by(stage: Stage) -> str:
    """Who answers a stage, in words."""
    if stage.input == "pool":
        least = stage.options.get("overlap", 1)
        most = stage.options.get("overlap_max", least)
        return f"labelers, pooled (x{least if most == least else f'{least}..{most}'})"
    return _ANSWERED_BY[stage.input]


def passes_on(graph: Graph, stage: Stage) -> tuple[str, ...]:
    """The names of `stage` that later stages read."""
    return tuple(sorted({n for e in graph.edges if e.source == stage.name for n in e.names}))


def table(graph: Graph) -> str:
    """The stage graph as a plain-text table."""
    header = ("stage", "kind", "answered by", "scope", "depends on", "passes on")
    rows = [header] + [
        (
            stage.name,
            stage.input and f"input: {stage.input}" or "compute",
            answered_by(stage),
            stage.scope,
            ", ".join(stage.depends_on) or "-",
            ", ".join(passes_on(graph, stage)) or "-",
        )
        for stage in graph.stages
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary(graph: Graph) -> str:
    """`3 stages, 1 error, 2 warnings`."""
    errors = sum(d.severity == ERROR for d in graph.diagnostics)
    warnings = len(graph.diagnostics) - errors
    return (
        f"{len(graph.stages)} stage{'s' * (len(graph.stages) != 1)}, "
        f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    )


def dot(graph: Graph) -> str:
    """Graphviz DOT: shared stages solid, per-user stages dashed, input stages as houses."""
    lines = [
        "digraph stages {",
        "  rankdir=TB;",
        '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", shape=box];',
        '  edge [fontname="Helvetica", fontsize=9, color="#555555"];',
    ]
    for stage in graph.stages:
        shared = stage.scope == "shared"
        fill = "#dbe9f6" if shared else "#fdebd0"
        style = "rounded,filled" if shared else "rounded,filled,dashed"
        shape = "house" if stage.kind == "input" else "box"
        kind = f"input: {stage.input}" if stage.input else "compute"
        label = f"{stage.title}\\n{kind} · {stage.scope}"
        if stage.input:
            style = style.replace("rounded,", "")
        lines.append(
            f'  {_id(stage.name)} [label="{_escape(label)}", shape={shape}, '
            f'style="{style}", fillcolor="{fill}", penwidth={2 if stage.input else 1}];'
        )
    for edge in graph.edges:
        names = _escape(", ".join(edge.names[:4]) + (", …" if len(edge.names) > 4 else ""))
        lines.append(f'  {_id(edge.source)} -> {_id(edge.target)} [label="{names}"];')
    lines += [
        "  subgraph cluster_legend {",
        '    label="legend"; fontname="Helvetica"; fontsize=9; color="#bbbbbb";',
        '    legend_shared [label="shared: runs once", fillcolor="#dbe9f6", fontsize=9];',
        '    legend_user [label="user: per labeler", fillcolor="#fdebd0", '
        'style="rounded,filled,dashed", fontsize=9];',
        '    legend_input [label="input stage", shape=house, style=filled, '
        'fillcolor="#ffffff", penwidth=2, fontsize=9];',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _id(name: str) -> str:
    return f'"{name}"'


def _escape(text: str) -> str:
    return text.replace('"', '\\"')


def graph_json(graph: Graph) -> dict[str, object]:
    """The graph and its diagnostics as plain JSON data (what `check --json` prints)."""
    return {
        "notebook": graph.notebook,
        "source_sha256": graph.source_sha256,
        "ok": not any(d.severity == ERROR for d in graph.diagnostics),
        "stages": [stage_json(graph, s) for s in graph.stages],
        "edges": [asdict(e) | {"names": list(e.names)} for e in graph.edges],
        "requirements": list(graph.requirements),
        "diagnostics": [diagnostic_json(d) for d in graph.diagnostics],
    }


def stage_json(graph: Graph, stage: Stage) -> dict[str, object]:
    """One stage as the manifest and `check --json` describe it."""
    return {
        "name": stage.name,
        "title": stage.title,
        "kind": stage.kind,
        "input": stage.input,
        "scope": stage.scope,
        "cells": list(stage.cells),
        "depends_on": list(stage.depends_on),
        "defines": list(stage.defines),
        "uses": list(stage.uses),
        "star_imports": list(stage.star_imports),
        "passes_on": list(passes_on(graph, stage)),
        "options": dict(stage.options),
        "widget": stage.widget,
    }


def diagnostic_json(diagnostic: Diagnostic) -> dict[str, object]:
    """One diagnostic as JSON data, with its rendered text."""
    return asdict(diagnostic) | {"text": diagnostic_text(diagnostic)}


def dumps(data: object) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, a final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
