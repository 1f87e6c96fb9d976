"""Tables 7 and 8 of ``reproduce``: the trained networks as score functions at any sigma.

7. **The networks between their levels**: relative score error on a fine sigma grid, at their
   levels, between them and beyond them (the continuous-time samplers evaluate them anywhere).
8. **Continuous sigma in training** (log-uniform, as EDM and Song et al. 2021 draw it) against the
   levels, over the networks' range and a wide one with EDM's input scaling: does either help the
   continuous-time samplers?

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import torch
from torch import nn

from ..networks import NoiseConditionalScoreNet
from ..noise_levels import data_std, geometric_sigmas
from ..recipes import RECIPES
from ..sde import VESDE
from ..targets import target
from ..training import seeded_init, train_noise_conditional
from .measure import (
    ReproduceConfig,
    max_weight_error,
    measure,
    quick_note,
    references,
    score_error_at,
)
from .report import markdown_table, mean_std, over_seeds
from .sde_study import NETS, SDE_NETS, SETTINGS, modes, prior_start, sampler_rows, spreads

__all__ = ["between_levels_table", "continuous_table", "format_network_tables"]


def between_levels_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 7: each trained network's relative score error at its levels, between them and
    beyond."""
    rows = []
    for name in (*NETS.values(), *SDE_NETS.values()):
        model = models[name]
        mixture = target(model.metadata["mixture_name"])
        levels = model.sigmas.double().log()
        # the levels and the geometric midpoints between them, largest first: levels at the even
        # places, midpoints at the odd ones
        midpoints = (levels[1:] + levels[:-1]) / 2
        grid = torch.cat([levels, midpoints]).exp().sort(descending=True).values.tolist()
        largest = levels[0].exp().item()
        smallest = levels[-1].exp().item()
        outside = [largest * 2, largest * 1.25, smallest * 0.75]
        for kind, sigmas in (("level", grid[::2]), ("between", grid[1::2]), ("outside", outside)):
            for sigma in sigmas:
                err = score_error_at(model, mixture, sigma, config)
                rows.append({"model": name, "sigma": sigma, "where": kind, **err._asdict()})
    return rows


def continuous_table(config: ReproduceConfig, refs: dict | None = None) -> list[dict]:
    """Table 8: levels against log-uniform sigma in training, over the recipe's range and a wide
    one (sigma_max of :data:`SETTINGS`, with EDM's input scaling c_in, ``data_std`` = the data's
    spread)."""
    refs = refs or references(config)
    rows = []
    names = list(SETTINGS)
    if config.quick:
        # quick: two modes only
        names = names[:1]
    for name in names:
        settings = SETTINGS[name]
        recipe = RECIPES[NETS[name]]
        mixture = target(name)
        steps = recipe.train.steps if config.sigma_study_steps is None else config.sigma_study_steps
        # EDM's c_in, as in recipes.py
        wide = {"data_std": round(data_std(mixture), 2)}
        for sigma_max, options in ((recipe.sigma_max, {}), (settings.sigma_max, wide)):
            for sampling in ("levels", "log_uniform"):
                train = dataclasses.replace(recipe.train, steps=steps, sigma_sampling=sampling)
                sigmas = geometric_sigmas(sigma_max, recipe.sigma_min, recipe.n_levels)
                network = functools.partial(
                    NoiseConditionalScoreNet, sigmas=sigmas, **recipe.network, **options
                )
                model = seeded_init(train.seed, network)
                model = train_noise_conditional(mixture, train, model, progress=False).model
                fine = torch.logspace(math.log10(recipe.sigma_min), math.log10(sigma_max), 12)
                errors = []
                for sigma in fine.tolist():
                    error = score_error_at(model, mixture, sigma, config)
                    errors.append(error.overall)
                sde = VESDE(recipe.sigma_min, sigma_max)
                # the wide range: the exact score's grid
                rho = settings.rho if options else 7.0
                for label, run, evaluations in sampler_rows(model, sde, rho, {"heun": (25,)}):
                    numbers = measure(run, mixture, refs[name], config, prior_start(sde))
                    rows.append(
                        {
                            "mixture": name,
                            "sigma_max": sigma_max,
                            "sampling": sampling,
                            "options": options,
                            "steps": steps,
                            "max_score_error": max(errors),
                            "score_error_at_sigma_min": errors[0],
                            "sampler": label,
                            "evaluations": evaluations,
                            "max_weight_error": max_weight_error(numbers["weights"], mixture),
                            **numbers,
                        }
                    )
    return rows


def format_network_tables(result: dict) -> str:
    """Tables 7 and 8 of a ``reproduce`` result (the keys this module writes), as Markdown."""
    sizes = result.get("config", {})
    quick = quick_note(sizes)
    parts = []
    if "sde_between_levels" in result:
        parts.append(_format_between_levels(result["sde_between_levels"], quick))
    if "sde_continuous" in result:
        caption = (
            f"Energy distance: {over_seeds(sizes['n_seeds'], sizes['n_particles'])}. Max weight "
            "error: of the mean weights."
        )
        parts.append(_format_continuous(result["sde_continuous"], quick, caption))
    return "\n\n".join(parts) + "\n"


def _format_between_levels(rows: list[dict], quick: str) -> str:
    """Table 7 as Markdown: per network and kind of sigma, the worst error and the three smallest
    sigmas."""
    summary = []
    # the models in the table's order, each once
    for model in dict.fromkeys(r["model"] for r in rows):
        for where in ("level", "between", "outside"):
            mine = [r for r in rows if r["model"] == model and r["where"] == where]
            worst = max(mine, key=lambda r: r["overall"])
            smallest = [f"{r['sigma']:.3g}: {r['overall']:.4f}" for r in mine[-3:]]
            summary.append(
                [
                    model,
                    where,
                    len(mine),
                    f"{worst['overall']:.4f} (sigma {worst['sigma']:.3g})",
                    ", ".join(smallest),
                ]
            )
    headers = ["model", "sigmas", "how many", "worst relative score error", "the smallest three"]
    heading = f"### Trained networks at, between and beyond their 15 levels{quick}"
    return heading + "\n\n" + markdown_table(headers, summary)


def _format_continuous(rows: list[dict], quick: str, caption: str) -> str:
    """Table 8 as Markdown, with ``caption`` below its heading."""
    lines = []
    for r in rows:
        sigma_range = f"0.2–{r['sigma_max']:g}"
        if r["options"]:
            sigma_range += " (c_in)"
        lines.append(
            [
                modes(r["mixture"]),
                sigma_range,
                r["sampling"],
                r["steps"],
                f"{r['max_score_error']:.4f}",
                f"{r['score_error_at_sigma_min']:.4f}",
                r["sampler"],
                r["evaluations"],
                f"{r['max_weight_error']:.4f}",
                spreads(r),
                mean_std(r["distance"], 4),
            ]
        )
    headers = [
        "mixture",
        "trained sigma range",
        "sigma drawn",
        "Adam steps",
        "max relative score error",
        "at sigma_min",
        "sampler (from the prior at its sigma_max)",
        "score evaluations",
        "max weight error",
        "within-mode std",
        "energy distance",
    ]
    heading = f"### Levels or log-uniform sigma in training{quick}"
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)
