"""The flagship notebook runs top to bottom in a real Jupyter kernel, as it is."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

EXAMPLE = Path(__file__).parent.parent / "examples" / "digits.ipynb"


def test_flagship_runs_top_to_bottom_in_jupyter():
    notebook = nbformat.read(EXAMPLE, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3").execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "1797 images" in text and "and 4 gold images" in text
    # Alone in Jupyter nobody has labeled: the truth's precision per threshold is shown.
    assert "precision  majority  Dawid-Skene  truth" in text
    assert "top  50:       nan          nan   1.00  0 of 6" in text
