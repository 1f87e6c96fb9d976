"""The tutorial notebook: committed clean, runs top to bottom in both modes, changes no file, every
number of its prose printed by a cell, its teaching loops checked equal to the package, and
`git status` clean after a learner runs and saves it."""

import ast
import copy
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from conftest import HANG_TIMEOUT, ROOT
from nbclient import NotebookClient
from notebook_numbers import unsupported

from ncsn_toy.figures import FIGURES

NOTEBOOK = ROOT / "NCSN_toy_Example.ipynb"
NOTEBOOK_DOCS = ROOT / "docs" / "notebook.md"
# code no notebook cell may hold: networks and training loops are the package's
FORBIDDEN = ("class ", "nn.Linear", "torch.optim")
# functions the notebook may define without comparing them to the package, and why
ALLOWED_DEFINITIONS = {
    "counted_score": "counts the score evaluations of dopri5; it only calls p.score",
}
# the kernel spec's name the notebook is committed with (what Jupyter's server writes back)
KERNEL = "python3"


def committed_bytes() -> bytes:
    """The notebook as committed (git's index), not a working copy a user may have run and saved."""
    result = subprocess.run(["git", "show", f":{NOTEBOOK.name}"], capture_output=True, cwd=ROOT)
    if result.returncode != 0:  # not a git checkout (e.g. an unpacked release): the file itself
        return NOTEBOOK.read_bytes()
    return result.stdout


def committed_notebook() -> dict:
    return json.loads(committed_bytes())


def code_source(nb) -> str:
    return "\n".join(c["source"] for c in nb["cells"] if c["cell_type"] == "code")


def test_notebook_shows_the_committed_figures_without_running():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for name in FIGURES:
        assert f"(gif/{name})" in markdown, f"{name} is not referenced in a Markdown cell"


def test_notebook_is_committed_without_outputs():
    nb = committed_notebook()
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], "strip the outputs (nbstripout) before committing"
            assert cell["execution_count"] is None


# --- nothing of the package redefined without a check --------------------------------------------


def called_names(node: ast.AST) -> set[str]:
    """The names of the functions called anywhere in ``node`` (``f(...)`` and ``a.f(...)``)."""
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def unchecked_definitions(source: str) -> list[str]:
    """The functions ``source`` defines that no ``torch.testing.assert_close`` compares with a
    function imported from ncsn_toy: one side of the comparison computed by the definition (called
    there, or in the assignment of a variable used there), the other by the package."""
    tree = ast.parse(source)
    package = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ncsn_toy")
        for alias in node.names
    }
    defined = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    made_by = defaultdict(set)  # variable -> the functions called in its assignments
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    made_by[target.id] |= called_names(node.value)
    checked = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.testing.assert_close":
            sides = []
            for argument in node.args[:2]:
                used = {n.id for n in ast.walk(argument) if isinstance(n, ast.Name)}
                sides.append(called_names(argument).union(*(made_by[name] for name in used)))
            for one, other in (sides, sides[::-1]):
                if other & package:
                    checked |= one & set(defined)
    return [name for name in defined if name not in checked and name not in ALLOWED_DEFINITIONS]


def test_notebook_uses_the_package_and_checks_what_it_writes_out():
    """The notebook writes the core loops out to teach them, each checked equal to the package;
    it redefines nothing of the package without such a check, and holds no network or optimiser."""
    source = code_source(committed_notebook())
    assert "from ncsn_toy import" in source
    for forbidden in FORBIDDEN:
        assert forbidden not in source, f"the notebook redefines library code ({forbidden!r})"
    assert unchecked_definitions(source) == []
    # the three methods the notebook shows in plain sight, and their checks
    for name in ("langevin", "annealed_langevin", "denoising_score_matching"):
        assert f"def {name}(" in source


def test_the_definition_check_can_fail():
    imports = "import torch\nfrom ncsn_toy import langevin_dynamics\n"
    checked = (
        "def langevin(x):\n    return x\n"
        "mine = langevin(x0)\npackage = langevin_dynamics(x0)\n"
        "torch.testing.assert_close(mine, package)\n"
    )
    assert unchecked_definitions(imports + checked) == []
    direct = "def dsm(x):\n    return x\ntorch.testing.assert_close(dsm(1), langevin_dynamics(1))\n"
    assert unchecked_definitions(imports + direct) == []
    unchecked = "def langevin(x):\n    return x\nprint(langevin(x0))\n"
    assert unchecked_definitions(imports + unchecked) == ["langevin"]
    against_itself = (
        "def score(x):\n    return x\ntorch.testing.assert_close(score(1), max(score(1), 0))\n"
    )
    assert unchecked_definitions(imports + against_itself) == ["score"]


# --- running it --------------------------------------------------------------------------------


def run_notebook(fast: bool) -> nbformat.NotebookNode:
    """Execute the notebook as a learner's Run All would (NCSN_TOY_FAST chooses the mode)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=HANG_TIMEOUT, kernel_name=KERNEL, resources={"metadata": {"path": str(ROOT)}}
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NCSN_TOY_FAST", "1" if fast else "0")
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


def snapshot() -> dict[Path, bytes]:
    """The repository's committed results."""
    return {
        p: p.read_bytes()
        for folder in ("gif", "checkpoints", "results")
        for p in (ROOT / folder).iterdir()
    }


def watched_run(fast: bool, private: Path) -> nbformat.NotebookNode:
    """A run that must change no committed file and leave nothing in its temporary folder."""
    private.mkdir()
    before = snapshot()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TMPDIR", str(private))  # the kernel inherits it: tempfile uses it
        nb = run_notebook(fast)
    assert snapshot() == before, "a notebook run changed a committed file"
    assert not [p for p in private.iterdir() if p.name.startswith("ncsn_toy_")], (
        "a notebook run left files behind"
    )
    return nb


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> nbformat.NotebookNode:
    """The notebook run once in its default mode, the one a learner runs."""
    return watched_run(False, tmp_path_factory.mktemp("default") / "tmp")


def test_notebook_runs_top_to_bottom_in_fast_mode_and_repeats(tmp_path):
    # one thread in both runs: sums split over another number of threads may round differently
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NCSN_TOY_THREADS", "1")
        nb = watched_run(True, tmp_path / "first")
        assert not [o for o in outputs_of(nb) if o.get("output_type") == "error"]
        assert len(images(nb)) >= len(FIGURES)  # every figure is drawn again (smaller), inline
        assert "fast=True" in "\n".join(printed(nb))
        # seeded: a second run prints the same
        again = watched_run(True, tmp_path / "again")
    assert printed(again) == printed(nb)


def test_default_mode_shows_each_figure_once_and_stays_small(default_run, tmp_path):
    """With the committed checkpoints the figures are the committed ones, shown by Markdown only.

    So the executed notebook stays small: under 5 MB.
    """
    assert "fast=False" in "\n".join(printed(default_run))
    assert images(default_run) == []
    nbformat.write(default_run, tmp_path / "executed.ipynb")
    assert (tmp_path / "executed.ipynb").stat().st_size < 5 * 1024**2


def test_every_number_of_the_prose_is_printed_by_a_cell(default_run):
    """Each number with a decimal point in the Markdown is a float of the code, or printed by a
    cell of its section or an earlier one, within the rounding of both (notebook_numbers.py)."""
    assert unsupported(default_run.cells) == []


# --- git status after a learner runs and saves it -------------------------------------------------


def setup_line() -> str:
    """The one-time setup that docs/notebook.md gives for a clean `git status`."""
    text = NOTEBOOK_DOCS.read_text()
    section = text[text.index("## Keeping `git status` clean") :]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def as_jupyter_saves(nb: nbformat.NotebookNode, path: Path) -> None:
    """Write ``nb`` as Jupyter's server does after Run All and save: outputs, execution counts,
    the running kernel's language_info and spec, the widgets' state, nbformat's layout."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    saved = copy.deepcopy(nb)
    saved.metadata.kernelspec = {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": KERNEL,
    }
    nbformat.write(saved, path, version=nbformat.NO_CONVERT)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def test_git_status_stays_clean_after_running_and_saving(default_run, tmp_path):
    """In a repository holding the committed notebook and .gitattributes, the executed notebook,
    saved as Jupyter saves it, shows as modified; after the one-time setup of docs/notebook.md,
    `git status` is clean: the filter strips what a run adds."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    (repo / ".gitattributes").write_bytes((ROOT / ".gitattributes").read_bytes())
    (repo / NOTEBOOK.name).write_bytes(committed_bytes())
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the committed notebook")
    as_jupyter_saves(default_run, repo / NOTEBOOK.name)
    assert outputs_of(nbformat.read(repo / NOTEBOOK.name, as_version=4)), "nothing was run"
    assert git(repo, "status", "--porcelain") != "", "without the filter the run shows"
    # the setup line runs the nbstripout of this Python's environment
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    subprocess.run(
        ["bash", "-c", setup_line()], cwd=repo, check=True, env={**os.environ, "PATH": path}
    )
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "diff") == ""


def test_the_committed_notebook_is_what_the_filter_writes(tmp_path):
    """The filter of the one-time setup leaves the committed bytes unchanged (stable cell ids, no
    language_info), so a notebook opened and saved without running stays clean too."""
    keys = re.search(r'extrakeys "([^"]+)"', setup_line()).group(1)
    # outside any repository: no git config of this checkout adds keys of its own
    stripped = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--extra-keys", keys],
        input=committed_bytes(),
        capture_output=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert stripped == committed_bytes()


def test_readme_gives_the_one_time_setup():
    assert setup_line() in (ROOT / "README.md").read_text()
