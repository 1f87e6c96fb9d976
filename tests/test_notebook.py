"""The tutorial notebook: committed clean, runs top to bottom in both modes, changes no file.

Every number of its prose is printed by a cell, its teaching loops are checked equal to the
package, and `git status` stays clean after a learner runs and saves it (with the one-time setup
of docs/notebook.md).
"""

import ast
import copy
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

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
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")


def test_notebook_shows_the_committed_figures_without_running():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for name in FIGURES:
        assert f"(gif/{name})" in markdown, f"{name} is not referenced in a Markdown cell"


def redrawn_names(nb) -> list[str]:
    """The figure names of every ``tutorial.redraw(...)`` call in the notebook's code cells."""
    names = []
    for node in ast.walk(ast.parse(code_source(nb))):
        call = node if isinstance(node, ast.Call) else None
        if call and isinstance(call.func, ast.Attribute) and call.func.attr == "redraw":
            names += [arg.value for arg in call.args if isinstance(arg, ast.Constant)]
    return names


def test_retrained_networks_redraw_every_figure_once():
    """With LOAD_PRETRAINED = False every figure of the gallery is drawn again, once, by name."""
    names = redrawn_names(nbformat.read(NOTEBOOK, as_version=4))
    assert sorted(names) == sorted(FIGURES)


def test_redraw_shows_figures_only_for_networks_trained_in_the_notebook(monkeypatch, capsys):
    import IPython.display

    from ncsn_toy.figures.tutorial import Tutorial

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    Tutorial(fast=True, threads=1).redraw("score_field_mixture.png")
    assert shown == []  # fast mode alone: the committed figure stands
    retrained = Tutorial(fast=True, threads=1, retrain=True)
    retrained.redraw("score_field_mixture.png", "no_such_figure.png")
    assert len(shown) == 1
    assert shown[0].data.startswith(b"\x89PNG")  # drawn, as a PNG, inline
    assert "no_such_figure.png is not in this version's gallery" in capsys.readouterr().out


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
        assert images(nb) == []  # the committed figures, shown by Markdown, as in the default mode
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

# the server side of a save: Jupyter's server with the environment's extensions, saving the model
# the browser sends (the executed notebook, with the kernel spec of the running kernel)
SERVER_SAVE = """
import json, sys
import asyncio
from jupyter_core.utils import ensure_async
from jupyter_server.serverapp import ServerApp

root, executed = sys.argv[1], sys.argv[2]
app = ServerApp()
app.initialize(argv=[f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False"],
               new_httpserver=False)
model = {"type": "notebook", "format": "json", "content": json.load(open(executed))}
asyncio.run(ensure_async(app.contents_manager.save(model, "NCSN_toy_Example.ipynb")))
"""


def setup_line() -> str:
    """The one-time setup that docs/notebook.md gives for a clean `git status`."""
    text = NOTEBOOK_DOCS.read_text()
    section = text[text.index("## Keeping `git status` clean") :]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def as_the_browser_sends(nb: nbformat.NotebookNode) -> dict:
    """The executed notebook as JupyterLab sends it to the server after Run All: outputs,
    execution counts, the kernel's language_info, the widgets' state, the running kernel's spec."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    sent = json.loads(nbformat.writes(nb))
    sent["metadata"]["kernelspec"] = {
        "display_name": spec.display_name,
        "language": spec.language,
        "name": KERNEL,
    }
    return sent


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def checkout(tmp_path: Path) -> Path:
    """A repository holding the committed notebook, .gitattributes and .gitignore, and the
    package's folder beside them (what marks a checkout of this project)."""
    repo = tmp_path / "repo"
    (repo / "ncsn_toy" / "figures").mkdir(parents=True)
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "config", "user.name", "test")
    for name in (".gitattributes", ".gitignore"):
        (repo / name).write_bytes((ROOT / name).read_bytes())
    (repo / NOTEBOOK.name).write_bytes(committed_bytes())
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "the committed notebook")
    return repo


def test_git_status_stays_clean_after_running_and_saving(default_run, tmp_path):
    """The executed notebook saved by Jupyter's server: without the setup it shows as modified
    (git compares sizes before any clean filter); after the one-time setup of docs/notebook.md,
    run into a private prefix, the server saves the committed bytes and `git status` is clean."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    repo = checkout(tmp_path)
    sent = tmp_path / "sent.ipynb"
    sent.write_text(json.dumps(as_the_browser_sends(default_run)))
    model = {"type": "notebook", "format": "json", "content": json.loads(sent.read_text())}
    FileContentsManager(root_dir=str(repo)).save(model, NOTEBOOK.name)
    assert git(repo, "status", "--porcelain") == f" M {NOTEBOOK.name}\n", "a plain save shows"
    git(repo, "checkout", "-q", NOTEBOOK.name)
    # the setup line, into a private prefix; a server that reads only that prefix's config (and
    # keeps its runtime files private) then saves the same model
    jupyter = {name: str(tmp_path / name) for name in ("config", "data", "runtime")}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "JUPYTER_CONFIG_PATH": str(tmp_path / "prefix" / "etc" / "jupyter"),
        "JUPYTER_CONFIG_DIR": jupyter["config"],
        "JUPYTER_DATA_DIR": jupyter["data"],
        "JUPYTER_RUNTIME_DIR": jupyter["runtime"],
    }
    prefix = tmp_path / "prefix"
    subprocess.run(f"{setup_line()} --prefix {prefix}", shell=True, check=True, cwd=ROOT, env=env)
    subprocess.run(
        [sys.executable, "-c", SERVER_SAVE, str(repo), str(sent)],
        check=True,
        cwd=ROOT,
        env=env,
        capture_output=True,
    )
    assert (repo / NOTEBOOK.name).read_bytes() == committed_bytes()
    assert git(repo, "status", "--porcelain") == ""


def test_the_committed_notebook_is_what_saving_and_the_filter_write(tmp_path):
    """The committed bytes are what the hook makes of them (a notebook opened and saved without
    running stays clean) and what nbstripout, the filter .gitattributes names, writes."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    from ncsn_toy.figures.notebook_save import pre_save_hook

    repo = checkout(tmp_path)
    model = {"type": "notebook", "format": "json", "content": json.loads(committed_bytes())}
    server = FileContentsManager(root_dir=str(repo))
    server.register_pre_save_hook(pre_save_hook)  # as the extension does
    server.save(model, NOTEBOOK.name)
    assert (repo / NOTEBOOK.name).read_bytes() == committed_bytes()
    # outside any repository: no git config of this checkout adds keys of its own
    stripped = subprocess.run(
        [sys.executable, "-m", "nbstripout"],
        input=committed_bytes(),
        capture_output=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert stripped == committed_bytes()


def test_the_hook_leaves_other_notebooks_alone(default_run, tmp_path):
    from ncsn_toy.figures.notebook_save import pre_save_hook

    server = SimpleNamespace(root_dir=str(checkout(tmp_path)))
    model = {"type": "notebook", "content": json.loads(nbformat.writes(default_run))}
    elsewhere = copy.deepcopy(model)
    pre_save_hook(model=elsewhere, path="copy_of_the_tutorial.ipynb", contents_manager=server)
    assert elsewhere == model
    pre_save_hook(model=model, path=NOTEBOOK.name, contents_manager=server)
    assert outputs_of(nbformat.from_dict(elsewhere["content"]))
    assert not outputs_of(nbformat.from_dict(model["content"]))


def test_readme_gives_the_one_time_setup():
    assert setup_line() in (ROOT / "README.md").read_text()


# --- the sampler table it shows from results/reproduce.json ---------------------------------------


def test_the_sampler_table_counts_the_seeds_of_its_rows(tmp_path):
    """The caption gives the seeds the rows hold (not the config's count for other tables), a
    column does where rows differ, and the labels are split into sampler, score and settings."""
    from ncsn_toy.figures.tutorial import samplers_table, split_label

    assert split_label("annealed Langevin, exact score (paper: sigma 20->1, L=10)") == (
        "annealed Langevin",
        "exact score",
        "paper: sigma 20→1, L=10",
    )
    assert split_label("probability flow, exact score, multistep (DPM-Solver++(2M)), 20 steps") == (
        "probability flow, multistep, 20 steps",
        "exact score",
        "DPM-Solver++(2M)",
    )
    committed = json.loads((ROOT / "results" / "reproduce.json").read_text())
    seeds = {len(row["weights"]) for row in committed["samplers"]}
    table = samplers_table(ROOT)
    if len(seeds) == 1:
        assert f"Each row: {seeds.pop()} seeds" in table
    row = {"evaluations": 10, "max_weight_error": 0.01, "mixture": "two_gaussians"}
    rows = [
        {**row, "sampler": "a (x=1)", "weights": [[0.2, 0.8]] * 3, "distance": [0.0] * 3},
        {**row, "sampler": "  + a step", "weights": [[0.2, 0.8]] * 2, "distance": [0.0] * 2},
    ]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "reproduce.json").write_text(
        json.dumps({"config": {"n_seeds": 5, "n_particles": 100}, "samplers": rows})
    )
    table = samplers_table(tmp_path)
    assert "2 to 3 seeds" in table
    assert "5 seeds" not in table
    assert "| a | | x=1 | 3 |" in table.replace("|  |", "| |")
    assert "| a + a step | | x=1 | 2 |" in table.replace("|  |", "| |")
