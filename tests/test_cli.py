"""The command line: train and reproduce end to end on small sizes.

Outputs are checked before any work; nothing committed is replaced unasked; errors are one line
with exit status 2.
"""

import json
import os
import re

import pytest
from conftest import ROOT, run_command

from ncsn_toy.checkpoints import load_checkpoint
from ncsn_toy.figures import FIGURES
from ncsn_toy.recipes import RECIPES


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_train_writes_loadable_checkpoints(tmp_path):
    result = run_command("train", "--steps", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in RECIPES:
        path = tmp_path / f"{name}.pt"
        assert f"wrote {path}" in result.stdout  # says what it wrote
        assert load_checkpoint(path).metadata["train"]["steps"] == 3


def test_train_never_replaces_a_checkpoint_unasked(tmp_path):
    name = "score_net_two_gaussians"
    first = run_command("train", "--steps", "2", "--only", name, "--out", str(tmp_path))
    assert first.returncode == 0
    before = (tmp_path / f"{name}.pt").read_bytes()
    result = run_command("train", "--steps", "3", "--only", name, "--out", str(tmp_path))
    assert_one_line_error(result, str(tmp_path / f"{name}.pt"), "--overwrite")
    assert (tmp_path / f"{name}.pt").read_bytes() == before
    result = run_command(
        "train", "--steps", "3", "--only", name, "--out", str(tmp_path), "--overwrite"
    )
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(tmp_path / f"{name}.pt").metadata["train"]["steps"] == 3


def test_train_without_out_keeps_the_committed_checkpoints():
    before = {p: p.read_bytes() for p in (ROOT / "checkpoints").glob("*.pt")}
    result = run_command("train", "--steps", "2")
    assert_one_line_error(result, "--overwrite")
    assert {p: p.read_bytes() for p in (ROOT / "checkpoints").glob("*.pt")} == before


def test_train_target_with_a_recipe_trains_the_recipe(tmp_path):
    """``--target two_gaussians`` writes what ``--only ncsn_two_gaussians`` writes, not fit()'s.

    The gallery animates the recipe's recorded training. A target without a recipe is fitted.
    """
    by_target = run_command(
        "train",
        "--steps",
        "3",
        "--target",
        "two_gaussians",
        "anisotropic",
        "--out",
        str(tmp_path / "a"),
    )
    by_recipe = run_command(
        "train", "--steps", "3", "--only", "ncsn_two_gaussians", "--out", str(tmp_path / "b")
    )
    assert by_target.returncode == 0, by_target.stderr
    assert by_recipe.returncode == 0, by_recipe.stderr
    recipe_file = tmp_path / "a" / "ncsn_two_gaussians.pt"
    assert recipe_file.read_bytes() == (tmp_path / "b" / "ncsn_two_gaussians.pt").read_bytes()
    assert "training" in load_checkpoint(recipe_file).metadata
    fitted = load_checkpoint(tmp_path / "a" / "ncsn_anisotropic.pt").metadata
    assert fitted["mixture_name"] == "anisotropic"
    assert fitted["train"]["steps"] == 3


def test_retraining_gives_the_same_bytes(tmp_path):
    """Seeded training and a fixed archive name inside the file: a retrain gives the same file."""
    for out in ("a", "b"):
        result = run_command(
            "train", "--steps", "20", "--only", "ncsn_two_gaussians", "--out", str(tmp_path / out)
        )
        assert result.returncode == 0, result.stderr
    first = tmp_path / "a" / "ncsn_two_gaussians.pt"
    second = tmp_path / "b" / "ncsn_two_gaussians.pt"
    assert first.read_bytes() == second.read_bytes()


def test_reproduce_fast_prints_the_tables_and_writes_json(tmp_path):
    out = tmp_path / "numbers.json"
    result = run_command("reproduce", "--fast", "--json", str(out))
    assert result.returncode == 0, result.stderr
    for heading in (
        "### Samplers",
        "### Relative score error",
        "### Weight error against score evaluations",
        "### How sigma enters the network (one training seed)",
        "### Continuous-time samplers",
    ):
        assert heading in result.stdout
    assert "Quick check (--fast)" in result.stdout  # labelled as rough
    # every table is labelled as rough
    n_tables = result.stdout.count("\n### ")
    assert result.stdout.count("quick check (--fast): rough numbers") == n_tables
    data = json.loads(out.read_text())
    labels = [row["sampler"] for row in data["samplers"]]
    assert any(label.startswith("Langevin, exact score") for label in labels)
    assert any(label.startswith("annealed Langevin, trained NCSN") for label in labels)
    for row in data["samplers"]:  # every number is a number, not NaN
        assert all(0 <= w <= 1 for seed in row["weights"] for w in seed)
        assert all(d == d for d in row["distance"])
    # sane: every energy distance is a few units at most (two unit Gaussians 14 apart: the
    # distance between the worst sampler's output and the data is about 2)
    sampler_distances = [d for row in data["samplers"] for d in row["distance"]]
    sigma_input_distances = [d for row in data["sigma_input"] for d in row["distance"]]
    distances = sampler_distances + sigma_input_distances
    assert max(distances) < 50, max(distances)
    assert f"wrote {out}" in result.stdout


def test_reproduce_keeps_the_committed_results():
    committed = ROOT / "results" / "reproduce.json"
    before = committed.read_bytes()
    # full mode, default --json: the committed file
    result = run_command("reproduce", "--seeds", "1")
    assert_one_line_error(result, str(committed), "--overwrite")
    assert committed.read_bytes() == before


@pytest.mark.parametrize(
    "command",
    [
        ["reproduce", "--fast", "--json", "{file}/r.json"],
        ["bench", "--quick", "--json", "{file}/b.json"],
        ["train", "--steps", "2", "--out", "{file}/sub"],
        ["render", "--fast", "--out", "{file}"],
        ["reproduce", "--fast", "--json", "{dir}"],
    ],
)
def test_unusable_outputs_fail_at_once_with_the_path(tmp_path, command):
    """An output under an existing file, or a folder given as a file, is refused before any work."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = [a.format(file=blocker, dir=tmp_path) for a in command]
    result = run_command(*args)
    assert_one_line_error(result, str(blocker) if "{file}" in " ".join(command) else str(tmp_path))
    assert "Samplers" not in result.stdout  # no work was done


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    assert_one_line_error(run_command("train", "--steps", "2", "--out", str(folder)), str(folder))


def test_render_out_is_relative_to_the_current_directory(tmp_path):
    # PYTHONPATH: this checkout's package, whatever else is installed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = run_command(
        "render", "--fast", "--only", "score_field_mixture", "--out", "figs", cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "figs" / "score_field_mixture.png").is_file()


def test_render_help_lists_the_figures():
    text = run_command("render", "--help").stdout
    for name in FIGURES:
        assert re.search(rf"\b{re.escape(name.rsplit('.', 1)[0])}\b", text), name


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--steps", "0"], "--steps"),
        (["reproduce", "--seeds", "0"], "--seeds"),
        (["render", "--threads", "0"], "--threads"),
        (["render", "--only", "nope"], "nope"),
        (["render", "--fast", "--only", "score_error", "--checkpoints"], None),
    ],
)
def test_bad_arguments(args, fragment):
    result = run_command(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    if fragment:
        assert fragment in result.stderr


def test_bad_thread_variable_is_one_line(tmp_path):
    env = {**os.environ, "NCSN_TOY_THREADS": "many"}
    result = run_command(
        "render", "--fast", "--only", "score_field_mixture", "--out", str(tmp_path), env=env
    )
    assert_one_line_error(result, "NCSN_TOY_THREADS")


def test_threads_option_is_honoured(tmp_path):
    import torch

    from ncsn_toy.commands import main

    before = torch.get_num_threads()
    try:
        args = [
            "render",
            "--fast",
            "--only",
            "score_field_mixture",
            "--out",
            str(tmp_path),
            "--threads",
            "1",
        ]
        assert main(args) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
