"""`bench --quick` runs and prints every row; the optimised paths give the plain paths' numbers."""

import subprocess
import sys
from pathlib import Path

import torch
from conftest import HANG_TIMEOUT

from ncsn_toy import NoiseConditionalScoreNet, annealed_langevin_dynamics, two_gaussians
from ncsn_toy.commands.baselines import autograd_score, plain_annealed_langevin, sequential_score

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_prints_every_row():
    result = subprocess.run(
        [sys.executable, "-m", "ncsn_toy", "bench", "--quick"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=HANG_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    for row in (
        "exact score in annealed Langevin",
        "annealed Langevin, seed network",
        "against the limit",
        "training (",
        "GIF frames",
        "Score evaluations to a mode-weight error",
        "consistent annealed",
        "Machine:",
        "explorer update",
        "explorer scrub",
    ):
        assert row in result.stdout, row
    assert result.stdout.count("x | >= ") == 5  # five timed rows, each with a ratio and a target
    # a quick run is a smoke test: it judges no target and claims nothing
    assert "Quick run (--quick)" in result.stdout
    assert "**no**" not in result.stdout
    assert "| yes |" not in result.stdout
    assert "Best:" not in result.stdout
    assert "Beside a busy neighbour" in result.stdout
    # beside the neighbour the policy chose one thread on each hot path
    assert result.stdout.count("(1) |") >= 3


def test_optimised_network_sampler_matches_the_plain_loop():
    """Folded sigma bias, in-place updates and a reused noise buffer change no number.

    Up to float32 rounding: the same noise is drawn in the same order.
    """
    torch.manual_seed(0)
    model = NoiseConditionalScoreNet()
    x0 = 16 * torch.rand(500, 2, generator=torch.Generator().manual_seed(1)) - 8
    ours = annealed_langevin_dynamics(
        model, x0, model.sigmas, 0.01, 5, torch.Generator().manual_seed(2)
    )
    plain = plain_annealed_langevin(
        sequential_score(model.net),
        x0,
        model.sigmas.tolist(),
        0.01,
        5,
        torch.Generator().manual_seed(2),
    )
    torch.testing.assert_close(ours, plain, rtol=1e-4, atol=1e-4)


def test_closed_form_sampler_matches_the_autograd_loop():
    mixture = two_gaussians(dtype=torch.float64)
    start_generator = torch.Generator().manual_seed(1)
    x0 = 16 * torch.rand(300, 2, generator=start_generator, dtype=torch.float64) - 8
    sigmas = torch.tensor([20.0, 5.0, 1.0], dtype=torch.float64)
    ours = annealed_langevin_dynamics(
        mixture.score, x0, sigmas, 0.1, 4, torch.Generator().manual_seed(2)
    )
    plain = plain_annealed_langevin(
        autograd_score(mixture), x0, sigmas.tolist(), 0.1, 4, torch.Generator().manual_seed(2)
    )
    torch.testing.assert_close(ours, plain, rtol=1e-9, atol=1e-9)
