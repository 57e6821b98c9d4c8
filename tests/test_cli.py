"""`nbfreeze check` as an author reads it: the table, DOT, JSON and the exit status."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits.ipynb"


def nbfreeze(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "freezer", *args], capture_output=True, text=True)


def test_check_prints_the_stage_table_and_exits_0():
    result = nbfreeze("check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    header, rule, *rows = result.stdout.strip().splitlines()
    assert header.split() == [
        "stage",
        "kind",
        "answered",
        "by",
        "scope",
        "depends",
        "on",
        "passes",
        "on",
    ]
    check_row = next(r for r in rows if r.startswith("check "))
    assert "input: pool" in check_row and "labelers, pooled (x2)" in check_row
    assert "9 stages, 0 errors, 0 warnings" in result.stderr


def test_check_exits_1_and_lists_every_error(write_notebook):
    result = nbfreeze("check", str(write_notebook("print(a)", "print(b)")))
    assert result.returncode == 1
    assert "cell 1, line 1: error: `a`" in result.stderr
    assert "cell 2, line 1: error: `b`" in result.stderr


def test_warnings_alone_exit_0(write_notebook):
    result = nbfreeze("check", str(write_notebook("%autoreload 2\nx = 1")))
    assert result.returncode == 0 and "warning" in result.stderr


def test_check_accepts_matplotlib_widget_without_a_word(write_notebook):
    notebook = write_notebook(
        "%matplotlib widget\nimport matplotlib.pyplot as plt", "plt.plot([1])"
    )
    result = nbfreeze("check", str(notebook))
    assert result.returncode == 0, result.stderr
    assert "0 errors, 0 warnings" in result.stderr, result.stderr


def test_check_json_has_the_graph_and_the_diagnostics(write_notebook):
    result = nbfreeze("check", "--json", str(write_notebook("x = 1", "#| stage: b\nprint(x, y)")))
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["ok"] is False
    assert [s["name"] for s in data["stages"]] == ["start", "b"]
    assert data["edges"] == [{"source": "start", "target": "b", "names": ["x"]}]
    [problem] = data["diagnostics"]
    assert (problem["cell"], problem["line"], problem["stage"]) == (2, 2, "b")
    assert problem["text"].startswith(str(Path(data["notebook"])))


def test_check_dot_tells_shared_user_and_input_stages_apart():
    result = nbfreeze("check", "--dot", str(EXAMPLE))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    warmup = next(line for line in lines if line.startswith('  "warmup" '))
    rank = next(line for line in lines if line.startswith('  "rank" '))
    assert "dashed" in warmup and "shape=house" in warmup
    assert "dashed" not in rank and "shape=box" in rank
    assert '  "sample" -> "check" [label="gold, to_label"];' in lines


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_dot_output_is_valid_graphviz():
    result = nbfreeze("check", "--dot", str(EXAMPLE))
    rendered = subprocess.run(["dot", "-Tsvg"], input=result.stdout, capture_output=True, text=True)
    assert rendered.returncode == 0, rendered.stderr


def test_usage_errors_are_explained():
    result = nbfreeze("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_nbfreeze_command_is_installed():
    script = Path(sys.executable).parent / "nbfreeze"
    result = subprocess.run([str(script), "check", str(EXAMPLE)], capture_output=True, text=True)
    assert result.returncode == 0


def test_a_relative_sqlite_database_keeps_naming_the_file_the_user_meant(tmp_path, monkeypatch):
    from freezer.cli import _absolute_sqlite

    monkeypatch.chdir(tmp_path)
    assert _absolute_sqlite("sqlite:///labels.db") == f"sqlite:///{tmp_path}/labels.db"
    assert _absolute_sqlite("sqlite:///:memory:") == "sqlite:///:memory:"
    assert _absolute_sqlite("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert _absolute_sqlite(None) is None


def test_serve_flags_become_the_serve_options():
    from freezer.cli import _parser, serve_options

    args = _parser().parse_args(
        ["serve", "nb.ipynb", "--allow-eval", "--allow-frames", "https://www.youtube.com"]
        + ["--allow-frames", "https://*.example.org:8443"]
    )
    options = serve_options(args)
    assert options.allow_eval
    assert options.allow_frames == ("https://www.youtube.com", "https://*.example.org:8443")
    assert not serve_options(_parser().parse_args(["serve", "nb.ipynb"])).allow_eval


def test_a_frame_origin_that_is_not_an_origin_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, "-m", "freezer", "serve", "nb.ipynb", "--allow-frames", "https://a/ *"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--allow-frames" in result.stderr and "origin" in result.stderr


def test_a_stage_memory_that_is_not_a_number_of_megabytes_is_a_usage_error():
    for value in ("lots", "0", "-5"):
        result = nbfreeze("serve", "nb.ipynb", "--stage-memory", value)
        assert result.returncode == 2
        assert "--stage-memory" in result.stderr and "megabytes" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_stage_memory_flag_sets_the_limit_and_half_the_machine_is_the_default():
    from freezer.cli import _parser, serve_options
    from runtime.app.stage_limits import machine_memory
    from runtime.server import limits

    default = limits(serve_options(_parser().parse_args(["serve", "nb.ipynb"])))
    assert abs(default.memory - machine_memory() / 2) < 2**20
    given = limits(
        serve_options(_parser().parse_args(["serve", "nb.ipynb", "--stage-memory", "512"]))
    )
    assert given.memory == 512 * 2**20
