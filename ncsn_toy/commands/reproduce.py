"""``python -m ncsn_toy reproduce``: the paper's toy claims, and what lies beyond them, as numbers.

Four tables, printed as Markdown and written as JSON:

1. **Samplers**: mode weights, within-mode standard deviation, energy distance to exact samples,
   score evaluations and seconds, for exact i.i.d. sampling, Langevin and annealed Langevin with
   the exact score (the paper's Fig. 3), with the trained networks, the final denoising step and
   consistent annealed sampling. Every sampler starts uniformly over the data's box
   (``mixture.box()``; [-8, 8]^2 for two modes, as in the paper); mean ± std over seeds.
2. **Score error** per sigma of the trained networks, under the data and in high- and
   low-density regions (the paper's Fig. 2).
3. **Weight error against score evaluations** for Langevin, annealed Langevin and consistent
   annealed sampling with the exact score.
4. **How sigma enters the network**: raw sigma (the seed), log sigma, output / sigma, both.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from ..metrics import energy_distance, mode_statistics, relative_score_error
from ..mixtures import GaussianMixture
from ..networks import NoiseConditionalScoreNet
from ..noise_levels import geometric_sigmas
from ..recipes import DEFAULT_CHECKPOINTS, NCSN_OPTIONS, RECIPES, load_or_train
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..targets import target
from ..training import seeded_init, train_noise_conditional
from .report import machine, markdown_table, mean_std

__all__ = ["ReproduceConfig", "reproduce", "format_tables", "evaluation_study", "PAPER_LANGEVIN", "PAPER_ANNEALED"]

PAPER_LANGEVIN = {"step_size": 0.1, "n_steps": 1000}  # Fig. 3, Langevin dynamics
PAPER_ANNEALED = {"sigmas": (20.0, 1.0, 10), "step_size": 0.1, "n_steps_each": 100}  # Fig. 3, annealed
SIGMA_VARIANTS = {  # network options compared in table 4 (every other option as in the recipe)
    "raw sigma (seed)": {"sigma_input": "raw", "divide_by_sigma": False},
    "log sigma": {"sigma_input": "log", "divide_by_sigma": False},
    "raw sigma, output / sigma": {"sigma_input": "raw", "divide_by_sigma": True},
    "log sigma, output / sigma": {"sigma_input": "log", "divide_by_sigma": True},
}
assert SIGMA_VARIANTS["log sigma, output / sigma"] == NCSN_OPTIONS  # the committed variant


@dataclass(frozen=True)
class ReproduceConfig:
    """Sizes of a ``reproduce`` run (``fast()`` for a quick check)."""

    n_particles: int = 5000  # particles per sampler run
    n_reference: int = 5000  # exact samples the energy distance is measured against
    n_seeds: int = 5  # runs per row, each with its own start and noise
    n_score_points: int = 20_000  # points per score-error estimate
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000)  # score evaluations, table 3
    sigma_study_steps: int | None = None  # Adam steps per network in table 4 (None: the recipe's)
    n_train_seeds: int = 3  # networks trained per variant in table 4 (seeds 0, 1, ...)
    checkpoints: Path = DEFAULT_CHECKPOINTS  # where the trained networks are
    retrain: bool = False  # train the networks instead of loading them

    @classmethod
    def fast(cls, **changes: object) -> ReproduceConfig:
        small = {"n_particles": 500, "n_reference": 1000, "n_seeds": 2, "n_score_points": 2000,
                 "budgets": (10, 100, 1000), "sigma_study_steps": 100, "n_train_seeds": 1}
        return cls(**{**small, **changes})


class Row(NamedTuple):
    label: str
    mixture: str  # a name of TARGETS
    run: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None  # None: exact i.i.d. samples
    evaluations: int  # score evaluations per particle


def _sampler_rows(models: dict[str, nn.Module]) -> list[Row]:
    two, four = target("two_gaussians"), target("four_gaussians")
    score_net, ncsn2, ncsn4 = (models[k] for k in ("score_net_two_gaussians", "ncsn_two_gaussians",
                                                     "ncsn_four_gaussians"))
    paper_sigmas = geometric_sigmas(*PAPER_ANNEALED["sigmas"])
    eps, steps = PAPER_ANNEALED["step_size"], PAPER_ANNEALED["n_steps_each"]

    def ald(score, sigmas, step_size, n_steps_each, denoise=False):
        return lambda x0, g: annealed_langevin_dynamics(score, x0, sigmas, step_size, n_steps_each, g,
                                                        denoise=denoise)

    def ld(score, step_size, n_steps):
        return lambda x0, g: langevin_dynamics(score, x0, step_size, n_steps, g)

    def trained(model):  # annealed Langevin with the checkpoint's own sigmas and settings
        meta = model.metadata
        return ald(model, model.sigmas, meta["step_size"], meta["n_steps_each"]), \
            len(model.sigmas) * meta["n_steps_each"], f"eps={meta['step_size']}, T={meta['n_steps_each']}"

    def same_as(model, mixture):  # the exact score with a checkpoint's sigmas and settings
        meta = model.metadata
        return ald(mixture.score, model.sigmas, meta["step_size"], meta["n_steps_each"])

    cas_sigmas = geometric_sigmas(20.0, 1.0, 100)
    run2, evals2, how2 = trained(ncsn2)
    run4, evals4, how4 = trained(ncsn4)
    sl = f"sigma {ncsn2.sigmas[0]:.3g}->{ncsn2.sigmas[-1]:.3g}, L={len(ncsn2.sigmas)}"
    sl4 = f"sigma {ncsn4.sigmas[0]:.3g}->{ncsn4.sigmas[-1]:.3g}, L={len(ncsn4.sigmas)}"
    return [
        Row("exact i.i.d. samples", "two_gaussians", None, 0),
        Row("Langevin, exact score (paper: eps=0.1, T=1000)", "two_gaussians",
            ld(two.score, **PAPER_LANGEVIN), PAPER_LANGEVIN["n_steps"]),
        Row("annealed Langevin, exact score (paper: sigma 20->1, L=10, T=100, eps=0.1)", "two_gaussians",
            ald(two.score, paper_sigmas, eps, steps), 10 * steps),
        Row("  + final denoising step", "two_gaussians", ald(two.score, paper_sigmas, eps, steps, True),
            10 * steps + 1),
        Row("consistent annealed sampling, exact score (sigma 20->1, L=100, eps=0.1)", "two_gaussians",
            lambda x0, g: consistent_annealed_sampling(two.score, x0, cas_sigmas, 0.1, g), 100),
        Row(f"annealed Langevin, exact score ({sl}, {how2})", "two_gaussians", same_as(ncsn2, two), evals2),
        Row("Langevin, trained ScoreNet (eps=0.1, T=1000)", "two_gaussians",
            ld(score_net, score_net.metadata["step_size"], score_net.metadata["n_steps"]),
            score_net.metadata["n_steps"]),
        Row(f"annealed Langevin, trained NCSN ({sl}, {how2})", "two_gaussians", run2, evals2),
        Row("exact i.i.d. samples", "four_gaussians", None, 0),
        Row("Langevin, exact score (eps=0.1, T=1000)", "four_gaussians", ld(four.score, **PAPER_LANGEVIN),
            PAPER_LANGEVIN["n_steps"]),
        Row(f"annealed Langevin, exact score ({sl4}, {how4})", "four_gaussians", same_as(ncsn4, four), evals4),
        Row(f"annealed Langevin, trained NCSN ({sl4}, {how4})", "four_gaussians", run4, evals4),
    ]


def _uniform_start(mixture: GaussianMixture, n: int, generator: torch.Generator) -> torch.Tensor:
    low, high = mixture.box()
    return low + (high - low) * torch.rand(n, mixture.dim, generator=generator)


def _measure(run, mixture: GaussianMixture, reference: torch.Tensor, config: ReproduceConfig) -> dict:
    """Run one sampler for every seed; return the per-seed numbers."""
    out = {"weights": [], "std_min": [], "std_max": [], "distance": [], "seconds": []}
    for seed in range(config.n_seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        x0 = _uniform_start(mixture, config.n_particles, g)
        start = time.perf_counter()
        x = mixture.sample(config.n_particles, generator=g) if run is None else run(x0, g)
        out["seconds"].append(time.perf_counter() - start)
        stats = mode_statistics(mixture, x)
        out["weights"].append(stats.weights.tolist())
        out["std_min"].append(stats.stds.min().item())
        out["std_max"].append(stats.stds.max().item())
        out["distance"].append(energy_distance(x, reference))
    return out


def _references(config: ReproduceConfig) -> dict[str, torch.Tensor]:
    return {name: target(name).sample(config.n_reference, generator=torch.Generator().manual_seed(99))
            for name in ("two_gaussians", "four_gaussians")}


def _sampler_table(models, config, refs, bar) -> list[dict]:
    rows = []
    for row in _sampler_rows(models):
        mixture = target(row.mixture)
        numbers = _measure(row.run, mixture, refs[row.mixture], config)
        weights = torch.tensor(numbers.pop("weights"))  # (seeds, K)
        error = (weights.mean(0) - mixture.weights).abs().max().item()
        rows.append({"sampler": row.label, "mixture": row.mixture, "evaluations": row.evaluations,
                     "weights": weights.tolist(), "max_weight_error": error, **numbers})
        bar.update()
    return rows


def _score_error_table(models, config) -> list[dict]:
    rows = []
    for name, model in models.items():
        mixture = target(model.metadata["mixture_name"])
        if isinstance(model, NoiseConditionalScoreNet):
            levels = [(s, lambda x, s=s, m=model: m(x, s)) for s in model.sigmas.tolist()]
        else:
            levels = [(model.metadata["train"]["sigma"], model)]
        for sigma, fn in levels:
            err = relative_score_error(fn, mixture, sigma, config.n_score_points,
                                       generator=torch.Generator().manual_seed(7))
            rows.append({"model": name, "sigma": sigma, **err._asdict()})
    return rows


def evaluation_study(config: ReproduceConfig, refs: dict[str, torch.Tensor] | None = None) -> list[dict]:
    """Weight error and distance against the number of score evaluations, exact score, two modes.

    For each budget in ``config.budgets``: Langevin with that many steps; annealed Langevin with
    the paper's 10 levels and budget / 10 steps each; consistent annealed sampling with that many
    levels from 20 to 1 and eta twice the smallest the levels allow.
    """
    refs = refs or _references(config)
    two = target("two_gaussians")
    rows = []
    for budget in config.budgets:
        cas_sigmas = geometric_sigmas(20.0, 1.0, max(budget, 2))
        ratio = (cas_sigmas[0] / cas_sigmas[1]).item()
        families = {
            "Langevin (eps=0.1)": lambda x0, g, b=budget: langevin_dynamics(two.score, x0, 0.1, b, g),
            "annealed Langevin (paper's sigmas, eps=0.1, T=budget/10)":
                lambda x0, g, b=budget: annealed_langevin_dynamics(
                    two.score, x0, geometric_sigmas(20.0, 1.0, 10), 0.1, max(b // 10, 1), g),
            # eta = 2 (1 - sigma_{i+1} / sigma_i): twice the smallest step the levels allow
            "consistent annealed (L=budget levels 20->1, eta=2(1-1/ratio))":
                lambda x0, g, s=cas_sigmas, r=ratio: consistent_annealed_sampling(
                    two.score, x0, s, min(1.0, 2 * (1 - 1 / r)), g),
        }
        for family, run in families.items():
            numbers = _measure(run, two, refs["two_gaussians"], config)
            mean_weight = torch.tensor(numbers["weights"]).mean(0)
            rows.append({"sampler": family, "evaluations": budget,
                         "max_weight_error": (mean_weight - two.weights).abs().max().item(),
                         "distance": numbers["distance"]})
    return rows


def _sigma_input_table(config, refs) -> list[dict]:
    rows = []
    for name in ("ncsn_two_gaussians", "ncsn_four_gaussians"):
        recipe = RECIPES[name]
        train = recipe.train if config.sigma_study_steps is None else dataclasses.replace(
            recipe.train, steps=config.sigma_study_steps)
        for variant, options in SIGMA_VARIANTS.items():
            runs = [_study_variant(recipe, dataclasses.replace(train, seed=seed), options, config,
                                   refs[recipe.mixture]) for seed in range(config.n_train_seeds)]
            rows.append({"mixture": recipe.mixture, "network": variant, "steps": train.steps,
                         **{key: [run[key] for run in runs] for key in runs[0]}})
    return rows


def _study_variant(recipe, train, options: dict, config, reference) -> dict:
    """Train one sigma-input variant with a recipe's settings; measure its scores and samples."""
    mixture, sigmas = recipe.build_mixture(), recipe.sigmas()
    model = seeded_init(train.seed, lambda: NoiseConditionalScoreNet(sigmas=sigmas, **{**recipe.network, **options}))
    start = time.perf_counter()
    model = train_noise_conditional(mixture, train, model, progress=False).model
    seconds = time.perf_counter() - start
    errors = [relative_score_error(lambda x, s=s: model(x, s), mixture, s, config.n_score_points,
                                   generator=torch.Generator().manual_seed(7)).overall for s in sigmas.tolist()]
    numbers = _measure(
        lambda x0, g: annealed_langevin_dynamics(model, x0, sigmas, recipe.step_size, recipe.n_steps, g),
        mixture, reference, dataclasses.replace(config, n_seeds=1))
    error = (torch.tensor(numbers["weights"][0]) - mixture.weights).abs().max().item()
    return {"max_score_error": max(errors), "score_error_smallest_sigma": errors[-1], "max_weight_error": error,
            "distance": numbers["distance"][0], "train_seconds": seconds}


def reproduce(config: ReproduceConfig = ReproduceConfig(), *, progress: bool = True) -> dict:
    """Measure everything; return the numbers as a JSON-ready dict."""
    start = time.perf_counter()
    models = {name: load_or_train(name, config.checkpoints, retrain=config.retrain, progress=progress)
              for name in RECIPES}
    refs = _references(config)
    with tqdm(total=len(_sampler_rows(models)), desc="samplers", disable=not progress, leave=False) as bar:
        samplers = _sampler_table(models, config, refs, bar)
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()},
        "machine": machine(),
        "samplers": samplers,
        "score_error": _score_error_table(models, config),
        "evaluations": evaluation_study(config, refs),
        "sigma_input": _sigma_input_table(config, refs),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def format_tables(result: dict) -> str:
    """The four tables of a :func:`reproduce` result, as Markdown."""
    sampler_rows = []
    for r in result["samplers"]:
        weights = torch.tensor(r["weights"])  # (seeds, K)
        w = ", ".join(mean_std(weights[:, k].tolist(), 3) for k in range(weights.shape[1]))
        stds = f"{sum(r['std_min']) / len(r['std_min']):.2f}–{sum(r['std_max']) / len(r['std_max']):.2f}"
        sampler_rows.append([r["mixture"].replace("_", " "), r["sampler"], w, f"{r['max_weight_error']:.3f}", stds,
                             mean_std(r["distance"], 4), r["evaluations"], mean_std(r["seconds"], 2)])
    parts = ["### Samplers", markdown_table(
        ["mixture", "sampler", "mode weights (mean ± std over seeds)", "max weight error", "within-mode std",
         "energy distance to exact samples", "score evaluations", "seconds"], sampler_rows)]
    parts += ["### Relative score error (under p_sigma; high / low density: inside / outside its 99% region)",
              markdown_table(["model", "sigma", "under the data", "high density", "low density"],
                             [[r["model"], f"{r['sigma']:.3g}", f"{r['overall']:.4f}", f"{r['high_density']:.4f}",
                               f"{r['low_density']:.4f}"] for r in result["score_error"]])]
    parts += ["### Weight error against score evaluations (exact score, two modes)",
              markdown_table(["sampler", "score evaluations", "max weight error", "energy distance"],
                             [[r["sampler"], r["evaluations"], f"{r['max_weight_error']:.3f}",
                               mean_std(r["distance"], 4)] for r in result["evaluations"]])]
    parts += ["### How sigma enters the network (mean ± std over training seeds)", markdown_table(
        ["mixture", "network", "Adam steps", "max relative score error", "at the smallest sigma",
         "annealed Langevin max weight error", "energy distance", "training seconds"],
        [[r["mixture"].replace("_", " "), r["network"], r["steps"], mean_std(r["max_score_error"], 4),
          mean_std(r["score_error_smallest_sigma"], 4), mean_std(r["max_weight_error"], 3),
          mean_std(r["distance"], 4), mean_std(r["train_seconds"], 1)] for r in result["sigma_input"]])]
    return "\n\n".join(parts) + "\n"
