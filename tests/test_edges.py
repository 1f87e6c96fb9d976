"""The library's edges: absurd but possible input gets our own clear error or a correct number,
never a raw error from deep inside torch or Python, and never a silent NaN or a wrong value."""

import itertools
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ncsn_toy import (
    VESDE,
    fit,
    load_checkpoint,
    ode_log_likelihood,
    predictor_corrector_sampling,
    reverse_sde_sampling,
    save_checkpoint,
    target,
    two_gaussians,
)
from ncsn_toy.recipes import DEFAULT_CHECKPOINTS, load_or_train
from ncsn_toy.samplers import SamplerDivergedError
from ncsn_toy.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("snr", [1e25, 1e200])
def test_an_absurd_snr_is_the_run_diverging_at_a_corrector_step(snr):
    """Was a raw OverflowError (1e200: Python's float) or RuntimeError (torch's, when the step
    does not fit in float32)."""
    sde = VESDE(0.2, 20.0)
    x_t = sde.prior_sample(10, 2)
    with pytest.raises(SamplerDivergedError, match=r"a corrector step of step 1/3.*snr"):
        predictor_corrector_sampling(two_gaussians().score, x_t, sde, 3, snr=snr)


@pytest.mark.parametrize("snr", [1e15, 1e19, 1e21])
def test_a_large_snr_gives_numbers_or_our_error(snr):
    """Between the usual 0.16 and the absurd, a finite result or SamplerDivergedError."""
    sde = VESDE(0.2, 20.0)
    x_t = sde.prior_sample(10, 2)
    try:
        out = predictor_corrector_sampling(two_gaussians().score, x_t, sde, 3, snr=snr)
    except SamplerDivergedError:
        return
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, "float32"])
def test_the_prior_needs_a_floating_dtype(dtype):
    with pytest.raises(TypeError, match=r"dtype must be a floating-point torch\.dtype"):
        VESDE(0.2, 20.0).prior_sample(3, 2, dtype=dtype)


def test_sigma_of_a_range_beyond_float64_is_still_right():
    """sigma_max / sigma_min = 1e450 overflows float64; sigma(1/2) = sqrt(1e-300 1e150) = 1e-75."""
    sde = VESDE(1e-300, 1e150)
    assert sde.sigma(0.5) == pytest.approx(1e-75, rel=1e-9)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    expected = torch.tensor([1e-300, 1e-75, 1e150], dtype=torch.float64)
    torch.testing.assert_close(sde.sigma(t), expected, rtol=1e-9, atol=0)
    levels = sde.grid(8, "geometric")
    assert all(math.isfinite(s) for s in levels)
    assert all(a > b for a, b in itertools.pairwise(levels))


def test_the_usual_ranges_keep_their_exact_formula():
    """The logarithmic path is only for ratios beyond float64: the grid stays bit for bit."""
    sde = VESDE(0.2, 800.0)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.equal(sde.sigma(t), 0.2 * (800.0 / 0.2) ** t)


@pytest.mark.parametrize("n_steps", [10**7, 10**9])
def test_a_huge_grid_is_refused_before_it_is_built(n_steps):
    """Was 8 GB asked of torch (10^9), or 782 MB held before the first step (10^7)."""
    with pytest.raises(ValueError, match="n_steps must be at most 1,000,000"):
        VESDE(0.2, 20.0).grid(n_steps)
    with pytest.raises(ValueError, match="n_steps must be at most"):
        reverse_sde_sampling(two_gaussians().score, torch.zeros(3, 2), VESDE(0.2, 20.0), n_steps)


def test_a_prior_that_returns_nan_is_refused():
    """Was a NaN log-likelihood, returned silently."""
    x = two_gaussians().sample(4)

    def nan_prior(y):
        return torch.full((len(y),), float("nan"))

    with pytest.raises(ValueError, match="prior returned NaN"):
        ode_log_likelihood(two_gaussians().score, x, VESDE(0.2, 20.0), 4, prior=nan_prior)


def test_a_prior_that_returns_minus_infinity_is_a_log_density():
    x = two_gaussians().sample(4)

    def impossible(y):
        return torch.full((len(y),), -math.inf)

    out = ode_log_likelihood(two_gaussians().score, x, VESDE(0.2, 20.0), 4, prior=impossible)
    assert bool((out == -math.inf).all())


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"generator": "abc"}, TypeError, "generator must be a torch.Generator"),
        ({"prior": "abc"}, TypeError, "prior must be callable"),
    ],
)
def test_the_likelihood_checks_every_argument_even_unused(changes, error, match):
    """generator='abc' was accepted whenever Hutchinson's estimator was off."""
    x = two_gaussians().sample(4)
    with pytest.raises(error, match=match):
        ode_log_likelihood(two_gaussians().score, x, VESDE(0.2, 20.0), 4, **changes)


def test_a_spiral_with_more_modes_than_it_tells_apart_is_refused():
    """Was 100 000 modes, most of them copies of a neighbour (equal means)."""
    with pytest.raises(ValueError, match="n_modes = 100000 is more modes"):
        target("spiral", n_modes=100_000)
    spiral = target("spiral")
    assert len(torch.unique(spiral.means, dim=0)) == spiral.n_components == 40


@pytest.mark.parametrize(("seed", "error"), [(2**64, ValueError), (-1, ValueError)])
def test_a_seed_outside_what_torch_takes_is_refused(seed, error):
    """fit(seed=2**64) was an overflow from inside torch."""
    with pytest.raises(error, match=r"seed must be in \[0, 2\*\*63\)"):
        fit(two_gaussians(), steps=2, seed=seed)
    with pytest.raises(error, match="seed must be in"):
        TrainConfig(seed=seed)


def test_fit_checks_progress_before_training():
    with pytest.raises(TypeError, match="progress must be a bool"):
        fit(two_gaussians(), steps=10**6, progress="no")


WRITE_WITH_A_FILE_SIZE_LIMIT = """
import os, resource, signal, sys
from pathlib import Path
import ncsn_toy
model = ncsn_toy.load_checkpoint(sys.argv[1])
target = Path(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
try:
    ncsn_toy.save_checkpoint(model, target, **model.metadata)
except OSError as err:
    print("OSError:", err)
print(sorted(os.listdir(target.parent)))
"""


def test_a_failed_write_is_an_os_error_naming_the_file_and_leaves_nothing(tmp_path):
    """A full disk (here: a file size limit, which fails torch's writer the same way) was
    torch's raw RuntimeError '[enforce fail at inline_container.cc...]'."""
    target_path = tmp_path / "out" / "model.pt"
    target_path.parent.mkdir()
    honest = DEFAULT_CHECKPOINTS / "ncsn_two_gaussians.pt"
    result = subprocess.run(
        [sys.executable, "-c", WRITE_WITH_A_FILE_SIZE_LIMIT, str(honest), str(target_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(f"OSError: could not write {target_path}")
    assert lines[1] == "[]"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"step_size": "abc"}, "step_size = 'abc'"),
        ({"training": None}, "no training snapshots"),
        ({"train": {"steps": -1}}, "mixture or train"),
        ({"recipe": "another"}, "recipe 'another'"),
    ],
)
def test_a_committed_checkpoint_with_wrong_metadata_is_refused_by_name(tmp_path, change, match):
    """A hash-valid file whose metadata is not what `train` writes made `render` die with a
    traceback (KeyError, TypeError) deep in a figure."""
    model = load_checkpoint(DEFAULT_CHECKPOINTS / "ncsn_two_gaussians.pt")
    metadata = {**model.metadata, **change}
    metadata = {key: value for key, value in metadata.items() if value is not None}
    path = save_checkpoint(model, tmp_path / "ncsn_two_gaussians.pt", **metadata)
    with pytest.raises(ValueError, match=match) as info:
        load_or_train("ncsn_two_gaussians", tmp_path)
    assert str(path) in str(info.value)
    assert "train --only ncsn_two_gaussians" in str(info.value)
