"""The tutorial notebook: committed clean, and it runs top to bottom (fast mode)."""

import json
import os
from pathlib import Path

import nbformat
from conftest import HANG_TIMEOUT
from nbclient import NotebookClient

from ncsn_toy.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "NCSN_toy_Example.ipynb"


def test_notebook_shows_the_committed_figures_without_running():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for name in FIGURES:
        assert f"(gif/{name})" in markdown, f"{name} is not referenced in a Markdown cell"


def test_notebook_is_committed_without_outputs():
    nb = json.loads(NOTEBOOK.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], "strip the outputs (nbstripout) before committing"
            assert cell["execution_count"] is None


def test_notebook_uses_the_package_and_defines_nothing_of_it():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "from ncsn_toy import" in source
    for forbidden in ("class ", "nn.Linear", "torch.optim", "def langevin", "def score", "def dsm"):
        assert forbidden not in source, f"the notebook redefines library code ({forbidden!r})"


def run_notebook():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=HANG_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute()  # raises CellExecutionError on any failing cell
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def printed(outputs):
    # the printed numbers; the one line naming the temporary figure folder differs between runs
    text = "".join(o.get("text", "") for o in outputs)
    return [line for line in text.splitlines() if "figures in" not in line]


def test_notebook_runs_top_to_bottom_in_fast_mode_and_repeats(monkeypatch):
    monkeypatch.setenv("NCSN_TOY_FAST", "1")
    outputs = run_notebook()
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})]
    assert len(images) >= 12  # every figure is shown inline
    text = "".join(o.get("text", "") for o in outputs)
    assert "fast=True" in text
    assert str(ROOT / "gif") not in text  # a fast run never writes into the committed figures
    assert os.environ["NCSN_TOY_FAST"] == "1"
    assert printed(run_notebook()) == printed(outputs)  # seeded: a second run prints the same numbers
