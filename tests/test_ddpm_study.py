"""The DDPM tables of ``reproduce`` (12-14), the dopri5 rows of table 6, and the DDPM figures."""

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from ncsn_toy.commands.ddpm_network_study import (
    ddpm_likelihood_table,
    ddpm_score_error_table,
    format_ddpm_networks,
)
from ncsn_toy.commands.ddpm_study import (
    DDIM_STEPS,
    VE_SIZES,
    ddpm_sampler_table,
    distance_in_standard_errors,
    format_ddpm_samplers,
)
from ncsn_toy.commands.measure import ReproduceConfig
from ncsn_toy.commands.report import mean_se
from ncsn_toy.commands.reproduce import format_tables
from ncsn_toy.commands.sde_likelihood_study import format_likelihood, likelihood_table
from ncsn_toy.figures import RenderConfig, render
from ncsn_toy.recipes import RECIPES, load_or_train
from ncsn_toy.sde import score_evaluations

ROOT = Path(__file__).resolve().parents[1]
# small sizes: the rows' structure, not their numbers (those are reproduce's)
TINY = ReproduceConfig.fast(n_particles=200, n_reference=200, n_seeds=2, n_headline_seeds=3)


@pytest.fixture(scope="module")
def models():
    return {name: load_or_train(name, progress=False) for name in RECIPES}


@pytest.fixture(scope="module")
def sampler_rows(models):
    return ddpm_sampler_table(models, TINY)


def test_the_sampler_table_has_every_row_with_its_evaluations_and_seeds(sampler_rows):
    rows = {(r["score"], r["sampler"]): r for r in sampler_rows}
    assert len(rows) == len(sampler_rows)  # no row twice
    exact_eps = "exact eps, DDPM's linear schedule"
    trained = "trained ddpm_two_gaussians"
    expected = {(exact_eps, "DDPM, 1000 steps"): 1000, (trained, "DDPM, 1000 steps"): 1000}
    for steps in DDIM_STEPS:
        for eta in (0, 1):
            expected[(exact_eps, f"DDIM, {steps} steps, eta={eta}")] = steps
    expected[(trained, "DDIM, 20 steps, eta=0")] = 20
    expected[(trained, "DDIM, 50 steps, eta=0")] = 50
    expected[(trained, "DDIM, 50 steps, eta=1")] = 50
    for key, evaluations in expected.items():
        assert rows[key]["evaluations"] == evaluations, key
        # exact samples, DDPM and DDIM with eta 0 run the headline's seeds
        seeds = TINY.n_seeds if key[1].endswith("eta=1") else TINY.n_headline_seeds
        assert len(rows[key]["weights"]) == seeds, key
    flows = [r for r in sampler_rows if r["sampler"].startswith("probability flow of x")]
    assert [len(r["weights"]) for r in flows] == [TINY.n_seeds, TINY.n_seeds]
    assert len(sampler_rows[0]["weights"]) == TINY.n_headline_seeds
    ve = [r for r in sampler_rows if r["score"].startswith("exact score, VE")]
    heun = [score_evaluations("probability_flow", n) for n in VE_SIZES["heun"]]
    assert sorted(r["evaluations"] for r in ve) == sorted(
        [*VE_SIZES["multistep"], *heun, *VE_SIZES["sde"]]
    )
    assert all(len(r["weights"]) == TINY.n_seeds for r in ve)
    assert sampler_rows[0]["sampler"] == "exact i.i.d. samples"
    for r in sampler_rows:
        assert all(abs(sum(w) - 1) < 1e-5 for w in r["weights"])
        assert all(math.isfinite(d) for d in r["distance"])
        truth = torch.tensor([0.2, 0.8])
        mean = torch.tensor(r["weights"]).mean(0)
        assert r["max_weight_error"] == pytest.approx((mean - truth).abs().max().item(), abs=1e-6)


def test_the_sampler_table_prints_one_line_a_row_and_says_what_each_plus_minus_is(sampler_rows):
    sizes = {**vars(TINY), "checkpoints": str(TINY.checkpoints)}
    text = format_ddpm_samplers({"config": sizes, "ddpm_samplers": sampler_rows})
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(sampler_rows)  # the header and a line a row
    assert "quick check (--fast): rough numbers" in text.splitlines()[0]
    assert "mean ± sd over 3 seeds of 200 particles for exact samples" in text
    assert "sd over 2 seeds of 200 particles for the other rows" in text
    assert "standard error over the same seeds" in text
    assert " | — | " in lines[1]  # exact samples are not compared with themselves


def test_distance_in_standard_errors_is_the_difference_over_its_standard_error():
    row = {"distance": [1.0, 2.0, 3.0]}  # mean 2, variance 1: se^2 = 1 / 3
    exact = {"distance": [0.0, 1.0, -1.0, 0.0]}  # mean 0, variance 2 / 3: se^2 = 1 / 6
    assert distance_in_standard_errors(row, exact) == pytest.approx(2 / math.sqrt(0.5))
    assert math.isnan(distance_in_standard_errors({"distance": [1.0]}, exact))  # no sd
    assert mean_se([1.0, 2.0, 3.0], 2) == "2.00 ± 0.58"  # sd 1 / sqrt(3)
    assert mean_se([0.5], 2) == "0.50"


def test_the_noise_predictor_as_a_score(models):
    rows = ddpm_score_error_table(models, TINY)
    sigmas = [r["sigma"] for r in rows]
    steps = [r["step"] for r in rows]
    assert sigmas == sorted(sigmas)
    assert sigmas[0] == pytest.approx(0.01, rel=1e-4)  # sigma_0 = sqrt(1e-4 / (1 - 1e-4))
    assert sigmas[-1] == pytest.approx(157.4, rel=1e-3)
    assert steps[0] == 0.0
    assert steps[-1] == 999.0
    assert steps == sorted(steps)
    # the committed network, preconditioned, is within 0.05 over its whole range (measured on
    # 20,000 points: at most 0.0053, at sigma_0); 2,000 points here, and the bar is ten times that
    for r in rows:
        assert r["overall"] < 0.05, r
    # the noise it predicts vanishes at small sigma: sigma^2 E||grad log p_sigma||^2 ~ 2 sigma^2
    assert rows[0]["eps_size"] < 1e-3 < 1.5 < rows[-1]["eps_size"]
    text = format_ddpm_networks({"config": vars(TINY), "ddpm_score_error": rows})
    assert text.count("\n| ") == 1 + len(rows)  # the header and a line a row


def test_the_likelihood_of_ddpm_counts_its_evaluations(models):
    rows = ddpm_likelihood_table(models, TINY)
    assert [r["score"] for r in rows] == ["exact eps", "trained ddpm_two_gaussians"]
    for r in rows:
        assert 50 < r["evaluations"] <= 300  # dopri5 at 1e-5: 164 measured
    # with the exact noise predictor only the prior is off: its KL is ~1e-3 nats, and the mean
    # gap on 200 points within a few of its sd (0.03 pointwise here) / sqrt(200) = 0.002
    assert abs(rows[0]["signed_gap"]) < 0.01
    assert rows[0]["absolute_gap"] < 0.05


def test_table_6_gains_dopri5_and_counts_every_evaluation(models):
    rows = likelihood_table(models, TINY)
    dopri5 = [r for r in rows if r["method"] == "dopri5"]
    assert {r["mixture"] for r in dopri5} == {"two_gaussians", "four_gaussians"}
    for r in rows:
        if r["method"] == "heun":  # counted calls agree with the formula: 2 a step
            assert r["evaluations"] == score_evaluations("ode_log_likelihood", r["steps"])
    for r in dopri5:
        assert r["steps"] is None
        assert 50 < r["evaluations"] <= 300
        # the discretisation alone (the exact p_sigma_max as the prior): below 0.001 nats
        assert r["absolute_gap_exact_prior"] < 1e-3
    text = format_likelihood({"config": {"quick": True}, "sde_likelihood": rows})
    assert "| dopri5, rtol = atol = 1e-05 |" in text
    assert "| Heun, 16 steps |" in text


def test_a_result_from_before_these_tables_still_formats():
    """No DDPM tables, and table 6's rows without a method are Heun's."""
    result = json.loads((ROOT / "results" / "reproduce.json").read_text())
    for key in ("ddpm_samplers", "ddpm_score_error", "ddpm_likelihood"):
        result.pop(key, None)
    result["sde_likelihood"] = [
        {key: value for key, value in row.items() if key not in ("method", "tolerance")}
        for row in result["sde_likelihood"]
        if row["steps"] is not None
    ]
    text = format_tables(result)
    assert "DDPM" not in text
    assert "| Heun, 256 steps |" in text


def test_the_ddpm_figures_render_the_same_bytes_twice(tmp_path):
    names = ["ncsn_vs_ddpm.gif", "ddim_path.png"]
    config = RenderConfig.fast()
    first = render(tmp_path / "a", config, only=names, progress=False)
    second = render(tmp_path / "b", config, only=names, progress=False)
    for (a, _), (b, _) in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
    with Image.open(first[0][0]) as gif:
        # noising: the data and 3 steps; sampling back: 2 steps and the data
        assert gif.n_frames == 7
        assert gif.size == (1010, 505)
