"""`nbfreeze serve` stops on SIGTERM as on Ctrl-C: it stops taking requests, lets the
answers in flight commit, says so, and exits 0 (a service manager's stop, a container's)."""

from __future__ import annotations

import signal
import subprocess
import sys

import nbformat
import pytest
from conftest import notebook_from
from tornado.testing import bind_unused_port

CELLS = (
    "import ipywidgets as widgets",
    "#| stage: name\n#| input: each\nname = widgets.Text()\nname",
)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_cleanly_and_says_so(tmp_path, stop):
    notebook = tmp_path / "app.ipynb"
    nbformat.write(notebook_from(CELLS), notebook)
    sock, port = bind_unused_port()
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "freezer", "serve", str(notebook), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    try:
        while not any(line.startswith("Ready.") for line in lines):
            line = process.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        process.send_signal(stop)
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, rest
    assert "Stopped" in rest and "Traceback" not in rest, rest
