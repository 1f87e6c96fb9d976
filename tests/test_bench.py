"""`bench --quick` runs and prints every row; the optimised paths give the plain paths' numbers; the
plain-script rows judge their targets and run the threads they name."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import HANG_TIMEOUT

from ncsn_toy import NoiseConditionalScoreNet, annealed_langevin_dynamics, two_gaussians
from ncsn_toy.commands.baselines import autograd_score, plain_annealed_langevin, sequential_score
from ncsn_toy.commands.bench_script import SETTINGS, format_script

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
        "### A plain script: the library's own choice of threads",
        "| annealed Langevin, exact score, 400 particles, 100 steps |",
        "| fit, three-mode ring, 10 steps |",
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


def script_result(seconds: dict[str, float]) -> dict:
    """A result of ``script_rows`` with the same ``seconds`` for both calls."""
    return {
        "sizes": {"particles": 4000, "steps_each": 100, "fit_steps": 200},
        "repeats": 5,
        "seconds": {"langevin": seconds, "fit": seconds},
        "threads": dict.fromkeys(SETTINGS, 1),
        "load_average": {"0": 0.1, "1": 1.1, "2": 2.1},
        "cores": 2,
    }


@pytest.mark.parametrize(
    ("seconds", "verdicts"),
    [
        # every target met: 0.25/0.3 = 0.83x >= 0.8, 0.25/0.5 = 0.5x >= 0.5, 0.26/0.25 = 1.04x
        (
            {"quiet_one": 0.25, "quiet_library": 0.26, "quiet_torch_default": 0.25}
            | {"busy1_library": 0.3, "busy2_library": 0.5},
            ["yes", "yes", "yes"],
        ),
        # every target missed: 0.79x, 0.49x, and 1.06x the time of torch's default
        (
            {"quiet_one": 0.79, "quiet_library": 1.06, "quiet_torch_default": 1.0}
            | {"busy1_library": 1.0, "busy2_library": 1.6122},
            ["**no**", "**no**", "**no**"],
        ),
    ],
)
def test_the_script_rows_judge_their_three_targets(seconds, verdicts):
    table = format_script(script_result(seconds))
    assert ">= 0.8x" in table
    assert ">= 0.5x" in table
    assert "<= 1.05x" in table
    rows = [line for line in table.splitlines() if line.startswith(("| annealed", "| fit"))]
    assert len(rows) == 2
    for row in rows:
        assert [cell.split()[1] for cell in row.strip("| ").split(" | ")[-3:]] == verdicts
    # a quick run states the ratios and judges none
    quick = format_script(script_result(seconds), judge=False)
    assert "yes" not in quick
    assert "**no**" not in quick


def fresh_torch_threads(environment: dict[str, str]) -> int:
    """torch's thread count in a new process with ``environment``."""
    result = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        timeout=HANG_TIMEOUT,
    )
    return int(result.stdout)


def test_the_script_settings_run_the_threads_they_name():
    """1 thread with OMP_NUM_THREADS=1; torch's own default with NCSN_TOY_THREADS set (the
    library then leaves torch alone), whatever the variables of the process that runs bench."""
    from ncsn_toy.commands.bench_script import _run_script
    from ncsn_toy.runtime import THREAD_ENV_VARS

    clean = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    tiny = (50, 2, 2)
    one = _run_script(tiny, SETTINGS["quiet_one"][1])
    default = _run_script(tiny, SETTINGS["quiet_torch_default"][1])
    assert one["threads"] == 1
    assert default["threads"] == fresh_torch_threads(clean)
    assert one["langevin"] > 0
    assert one["fit"] > 0


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
