"""The tutorial notebook: committed clean, runs top to bottom in both modes, changes no file."""

import json
import subprocess

import nbformat
import pytest
from conftest import HANG_TIMEOUT, ROOT
from nbclient import NotebookClient

from ncsn_toy.figures import FIGURES

NOTEBOOK = ROOT / "NCSN_toy_Example.ipynb"


def committed_notebook() -> dict:
    """The notebook as committed (git's index), not a working copy a user may have run and saved."""
    result = subprocess.run(
        ["git", "show", f":{NOTEBOOK.name}"], capture_output=True, text=True, cwd=ROOT
    )
    if result.returncode != 0:  # not a git checkout (e.g. an unpacked release): the file itself
        return json.loads(NOTEBOOK.read_text())
    return json.loads(result.stdout)


def test_notebook_shows_the_committed_figures_without_running():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for name in FIGURES:
        assert f"(gif/{name})" in markdown, f"{name} is not referenced in a Markdown cell"


def test_notebook_is_committed_without_outputs():
    nb = committed_notebook()
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


def run_notebook(monkeypatch, fast: bool) -> nbformat.NotebookNode:
    monkeypatch.setenv("NCSN_TOY_FAST", "1" if fast else "0")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=HANG_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    return nb


def outputs_of(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def printed(nb):
    return "".join(o.get("text", "") for o in outputs_of(nb)).splitlines()


def images(nb):
    return [
        o
        for o in outputs_of(nb)
        if "image/png" in o.get("data", {}) or "image/gif" in o.get("data", {})
    ]


@pytest.fixture
def watched_files(tmp_path, monkeypatch):
    """The repository's committed results, and a private temporary folder for the kernel.

    A notebook run must change neither (its figures drawn again go to a temporary folder that it
    removes).
    """
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))  # the kernel inherits it: tempfile uses it

    def snapshot():
        return {
            p: p.read_bytes()
            for folder in ("gif", "checkpoints", "results")
            for p in (ROOT / folder).iterdir()
        }

    before = snapshot()
    yield
    assert snapshot() == before, "a notebook run changed a committed file"
    assert not [p for p in private.iterdir() if p.name.startswith("ncsn_toy_")], (
        "a notebook run left files behind"
    )


def test_notebook_runs_top_to_bottom_in_fast_mode_and_repeats(monkeypatch, watched_files):
    # one thread in both runs: sums split over another number of threads may round differently
    monkeypatch.setenv("NCSN_TOY_THREADS", "1")
    nb = run_notebook(monkeypatch, fast=True)
    assert not [o for o in outputs_of(nb) if o.get("output_type") == "error"]
    assert len(images(nb)) >= len(FIGURES)  # every figure is drawn again (smaller) and shown inline
    assert "fast=True" in "\n".join(printed(nb))
    # seeded: a second run prints the same
    again = run_notebook(monkeypatch, fast=True)
    assert printed(again) == printed(nb)


def test_notebook_in_full_mode_shows_each_figure_once(monkeypatch, watched_files, tmp_path):
    """With the committed checkpoints the figures are the committed ones, shown by Markdown only.

    So the executed notebook stays small: under 5 MB.
    """
    nb = run_notebook(monkeypatch, fast=False)
    assert "fast=False" in "\n".join(printed(nb))
    assert images(nb) == []
    nbformat.write(nb, tmp_path / "executed.ipynb")
    assert (tmp_path / "executed.ipynb").stat().st_size < 5 * 1024**2
