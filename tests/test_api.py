"""The public contract of ../shared/API.md: names, signatures, command line, lint."""

import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HANG_TIMEOUT

import ncsn_toy

ROOT = Path(__file__).resolve().parents[1]

CONTRACT = {  # name -> the positional parameters the contract documents, in order
    "GaussianMixture": ["weights", "means", "covariances"],
    "two_gaussians": [],
    "four_gaussians": [],
    "ScoreNet": [],
    "NoiseConditionalScoreNet": [],
    "geometric_sigmas": ["sigma_max", "sigma_min", "n"],
    "dsm_loss": ["score_fn", "x", "sigma", "generator"],
    "anneal_dsm_loss": ["model", "x", "sigmas", "generator"],
    "sliced_score_matching_loss": ["score_fn", "x", "n_projections", "generator"],
    "langevin_dynamics": ["score_fn", "x0", "step_size", "n_steps", "generator"],
    "annealed_langevin_dynamics": [
        "score_fn",
        "x0",
        "sigmas",
        "step_size",
        "n_steps_each",
        "generator",
    ],
    "VESDE": ["sigma_min", "sigma_max"],
    "reverse_sde_sampling": ["score_fn", "x_T", "sde", "n_steps", "generator"],
    "predictor_corrector_sampling": [
        "score_fn",
        "x_T",
        "sde",
        "n_steps",
        "snr",
        "n_corrector",
        "generator",
    ],
    "probability_flow_sampling": ["score_fn", "x_T", "sde", "n_steps", "method"],
    "ode_log_likelihood": ["score_fn", "x", "sde", "n_steps"],
    "fit": ["mixture"],
    "save_checkpoint": ["model", "path"],
    "load_checkpoint": ["path"],
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_contract_names_and_signatures(name):
    assert name in ncsn_toy.__all__
    obj = getattr(ncsn_toy, name)
    target = obj.__init__ if inspect.isclass(obj) else obj
    params = [p for p in inspect.signature(target).parameters.values() if p.name != "self"]
    positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    assert positional == CONTRACT[name]
    for p in params:  # every addition beside the contract is keyword-only with a default
        if p.kind is p.KEYWORD_ONLY:
            assert p.default is not p.empty, f"{name}: keyword option {p.name} needs a default"


def test_all_is_explicit_and_importable():
    for name in ncsn_toy.__all__:
        assert hasattr(ncsn_toy, name)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "ncsn_toy", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=HANG_TIMEOUT,
    )


def test_cli_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("render", "train", "reproduce", "bench", "explore"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["render", "train", "reproduce", "bench", "explore"])
def test_every_command_has_help(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_ruff_is_clean():
    """`ruff check .` (lint, lines <= 100) and `ruff format --check .` (layout) both pass."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    failures = []
    for command in (["check", "--output-format", "concise", "."], ["format", "--check", "."]):
        result = subprocess.run(
            [ruff, *command], capture_output=True, text=True, cwd=ROOT, timeout=HANG_TIMEOUT
        )
        if result.returncode != 0:
            failures.append(f"$ ruff {' '.join(command)}\n{result.stdout}{result.stderr}")
    assert not failures, "\n".join(failures)


def test_explorer_is_imported_lazily():
    code = (
        "import sys, ncsn_toy; assert 'ipywidgets' not in sys.modules; "
        "assert 'ncsn_toy.figures' not in sys.modules; "
        "from ncsn_toy.figures.explorer import explorer; assert ncsn_toy.explorer is explorer"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=HANG_TIMEOUT)
