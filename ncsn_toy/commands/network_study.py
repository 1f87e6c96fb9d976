"""Tables 2 and 4 of ``reproduce``: the networks' score errors, and how sigma enters the network.

2. **Score error** per sigma of the trained networks, under the data and in high- and
   low-density regions (the paper's Fig. 2).
4. **How sigma enters the network**: raw sigma (as in the original notebook's network), log
   sigma, output / sigma, both, each trained with a committed recipe's settings.

References: Song & Ermon 2019, Sec. 3.2 (Fig. 2); Song & Ermon 2020 (NCSNv2, output / sigma).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import torch
from torch import nn

from ..metrics import relative_score_error
from ..networks import NoiseConditionalScoreNet
from ..recipes import RECIPES
from ..samplers import annealed_langevin_dynamics
from ..targets import target
from ..training import NCSN_OPTIONS, seeded_init, train_noise_conditional
from .measure import (
    ReproduceConfig,
    at_sigma,
    max_weight_error,
    measure,
    quick_note,
    score_error_at,
)
from .report import markdown_table, mean_std

__all__ = [
    "SIGMA_VARIANTS",
    "score_error_table",
    "sigma_input_table",
    "format_score_errors",
    "format_sigma_inputs",
]

# network options compared in table 4 (every other option as in the recipe)
SIGMA_VARIANTS = {
    "raw sigma (the original notebook's)": {"sigma_input": "raw", "divide_by_sigma": False},
    "log sigma": {"sigma_input": "log", "divide_by_sigma": False},
    "raw sigma, output / sigma": {"sigma_input": "raw", "divide_by_sigma": True},
    "log sigma, output / sigma": {"sigma_input": "log", "divide_by_sigma": True},
}
# the variant the committed networks use
assert SIGMA_VARIANTS["log sigma, output / sigma"] == NCSN_OPTIONS


def score_error_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 2: relative score error of each trained network at each of its sigmas (the paper's
    Fig. 2)."""
    rows = []
    for name, model in models.items():
        mixture = target(model.metadata["mixture_name"])
        if isinstance(model, NoiseConditionalScoreNet):
            levels = [(sigma, at_sigma(model, sigma)) for sigma in model.sigmas.tolist()]
        else:
            train = model.metadata["train"]
            # denoising learns the score of p_sigma; sliced score matching that of p itself
            sigma = train["sigma"] if train["objective"] == "dsm" else 0.0
            levels = [(sigma, model)]
        for sigma, fn in levels:
            err = relative_score_error(
                fn,
                mixture,
                sigma,
                config.n_score_points,
                generator=torch.Generator().manual_seed(7),
            )
            rows.append({"model": name, "sigma": sigma, **err._asdict()})
    return rows


def sigma_input_table(
    config: ReproduceConfig,
    refs: dict[str, torch.Tensor],
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 4: each way sigma can enter the network, trained ``config.n_train_seeds`` times per
    mixture."""
    rows = []
    for name in ("ncsn_two_gaussians", "ncsn_four_gaussians"):
        recipe = RECIPES[name]
        train = recipe.train
        if config.sigma_study_steps is not None:
            train = dataclasses.replace(recipe.train, steps=config.sigma_study_steps)
        for variant, options in SIGMA_VARIANTS.items():
            between()
            runs = [
                _study_variant(
                    recipe,
                    dataclasses.replace(train, seed=seed),
                    options,
                    config,
                    refs[recipe.mixture],
                )
                for seed in range(config.n_train_seeds)
            ]
            row = {"mixture": recipe.mixture, "network": variant, "steps": train.steps}
            # each measured number as a list over the training seeds
            for key in runs[0]:
                row[key] = [run[key] for run in runs]
            rows.append(row)
    return rows


def _study_variant(recipe, train, options: dict, config, reference) -> dict:
    """Train one sigma-input variant with a recipe's settings; measure its scores and samples."""
    mixture = recipe.build_mixture()
    sigmas = recipe.sigmas()
    network = {**recipe.network, **options}
    model = seeded_init(
        train.seed, functools.partial(NoiseConditionalScoreNet, sigmas=sigmas, **network)
    )
    start = time.perf_counter()
    model = train_noise_conditional(mixture, train, model, progress=False).model
    seconds = time.perf_counter() - start
    errors = []
    for sigma in sigmas.tolist():
        error = score_error_at(model, mixture, sigma, config)
        errors.append(error.overall)

    def run(x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return annealed_langevin_dynamics(model, x0, sigmas, recipe.step_size, recipe.n_steps, g)

    # one sampler run per trained network: the spread over training seeds is the one reported
    numbers = measure(run, mixture, reference, dataclasses.replace(config, n_seeds=1))
    return {
        "max_score_error": max(errors),
        "score_error_smallest_sigma": errors[-1],
        "max_weight_error": max_weight_error(numbers["weights"], mixture),
        "distance": numbers["distance"][0],
        "train_seconds": seconds,
    }


def format_score_errors(rows: list[dict], sizes: dict) -> str:
    """Table 2 as Markdown (``sizes``: the result's config)."""
    lines = []
    for r in rows:
        lines.append(
            [
                r["model"],
                f"{r['sigma']:.3g}",
                f"{r['overall']:.4f}",
                f"{r['high_density']:.4f}",
                f"{r['low_density']:.4f}",
            ]
        )
    headers = ["model", "sigma", "under the data", "high density", "low density"]
    heading = (
        "### Relative score error (under p_sigma; high / low density: inside / outside its 99% "
        f"region){quick_note(sizes)}"
    )
    return heading + "\n\n" + markdown_table(headers, lines)


def format_sigma_inputs(rows: list[dict], sizes: dict) -> str:
    """Table 4 as Markdown (``sizes``: the result's config, for the heading)."""
    seeds = len(rows[0]["max_score_error"]) if rows else 0
    if seeds > 1:
        over = (
            f"mean ± sd over {seeds} training seeds; each network samples once, "
            f"{sizes['n_particles']} particles"
        )
    else:
        over = "one training seed"
    lines = []
    for r in rows:
        lines.append(
            [
                r["mixture"].replace("_", " "),
                r["network"],
                r["steps"],
                mean_std(r["max_score_error"], 4),
                mean_std(r["score_error_smallest_sigma"], 4),
                mean_std(r["max_weight_error"], 3),
                mean_std(r["distance"], 4),
                mean_std(r["train_seconds"], 1),
            ]
        )
    headers = [
        "mixture",
        "network",
        "Adam steps",
        "max relative score error",
        "at the smallest sigma",
        "annealed Langevin max weight error",
        "energy distance",
        "training seconds",
    ]
    heading = f"### How sigma enters the network ({over}){quick_note(sizes)}"
    return heading + "\n\n" + markdown_table(headers, lines)
