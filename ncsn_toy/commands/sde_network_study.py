"""Tables of ``reproduce`` on the trained networks as score functions at any sigma (issue 13).

7. **The networks between their levels**: relative score error on a fine sigma grid, at their levels,
   between them and beyond them (the continuous-time samplers evaluate them anywhere).
8. **Continuous sigma in training** (log-uniform, as EDM and Song et al. 2021 draw it) against the
   levels, over the networks' range and a wide one with EDM's input scaling: does either help the
   continuous-time samplers?

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ..metrics import relative_score_error
from ..networks import NoiseConditionalScoreNet
from ..noise_levels import data_std, geometric_sigmas
from ..recipes import RECIPES
from ..sde import VESDE
from ..targets import target
from ..training import seeded_init, train_noise_conditional
from .measure import QUICK, ReproduceConfig, max_weight_error, measure, references
from .report import markdown_table, mean_std
from .sde_study import NETS, SDE_NETS, SETTINGS, modes, sampler_rows, spreads

__all__ = ["between_levels_table", "continuous_table", "format_network_tables"]


def between_levels_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 7: each trained network's relative score error at its levels, between them and beyond."""
    rows = []
    for name in (*NETS.values(), *SDE_NETS.values()):
        model = models[name]
        mixture, levels = target(model.metadata["mixture_name"]), model.sigmas.double().log()
        grid = (
            torch.cat([levels, (levels[1:] + levels[:-1]) / 2])
            .exp()
            .sort(descending=True)
            .values.tolist()
        )
        outside = [
            levels[0].exp().item() * 2,
            levels[0].exp().item() * 1.25,
            levels[-1].exp().item() * 0.75,
        ]
        for kind, sigmas in (("level", grid[::2]), ("between", grid[1::2]), ("outside", outside)):
            for sigma in sigmas:
                err = relative_score_error(
                    lambda x, s=sigma, m=model: m(x, s),
                    mixture,
                    sigma,
                    config.n_score_points,
                    generator=torch.Generator().manual_seed(7),
                )
                rows.append({"model": name, "sigma": sigma, "where": kind, **err._asdict()})
    return rows


def continuous_table(config: ReproduceConfig, refs: dict | None = None) -> list[dict]:
    """Table 8: levels against log-uniform sigma in training, over the recipe's range and a wide one
    (sigma_max of :data:`SETTINGS`, with EDM's input scaling c_in, ``data_std`` = the data's spread)."""
    refs, rows = refs or references(config), []
    for name, settings in list(SETTINGS.items())[
        : 1 if config.quick else None
    ]:  # quick: two modes only
        recipe, mixture = RECIPES[NETS[name]], target(name)
        steps = recipe.train.steps if config.sigma_study_steps is None else config.sigma_study_steps
        wide = {"data_std": round(data_std(mixture), 2)}  # EDM's c_in, as in recipes.py
        for sigma_max, options in ((recipe.sigma_max, {}), (settings.sigma_max, wide)):
            for sampling in ("levels", "log_uniform"):
                train = dataclasses.replace(recipe.train, steps=steps, sigma_sampling=sampling)
                sigmas = geometric_sigmas(sigma_max, recipe.sigma_min, recipe.n_levels)
                model = seeded_init(
                    train.seed,
                    lambda s=sigmas, o=options, r=recipe: NoiseConditionalScoreNet(
                        sigmas=s, **r.network, **o
                    ),
                )
                model = train_noise_conditional(mixture, train, model, progress=False).model
                fine = torch.logspace(
                    math.log10(recipe.sigma_min), math.log10(sigma_max), 12
                ).tolist()
                errors = [
                    relative_score_error(
                        lambda x, s=s, m=model: m(x, s),
                        mixture,
                        s,
                        config.n_score_points,
                        generator=torch.Generator().manual_seed(7),
                    ).overall
                    for s in fine
                ]
                sde = VESDE(recipe.sigma_min, sigma_max)
                rho = settings.rho if options else 7.0  # the wide range: the exact score's grid
                for label, run, evaluations in sampler_rows(model, sde, rho, {"heun": (25,)}):
                    numbers = measure(
                        run,
                        mixture,
                        refs[name],
                        config,
                        lambda m, n, g, sde=sde: sde.prior_sample(n, m.dim, g),
                    )
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
    quick = QUICK if result.get("config", {}).get("quick") else ""
    parts = []
    if "sde_between_levels" in result:
        summary = []
        for model in dict.fromkeys(r["model"] for r in result["sde_between_levels"]):
            for where in ("level", "between", "outside"):
                rs = [
                    r
                    for r in result["sde_between_levels"]
                    if r["model"] == model and r["where"] == where
                ]
                worst = max(rs, key=lambda r: r["overall"])
                summary.append(
                    [
                        model,
                        where,
                        len(rs),
                        f"{worst['overall']:.4f} (sigma {worst['sigma']:.3g})",
                        ", ".join(f"{r['sigma']:.3g}: {r['overall']:.4f}" for r in rs[-3:]),
                    ]
                )
        parts.append(
            f"### Trained networks at, between and beyond their 15 levels{quick}\n\n"
            + markdown_table(
                ["model", "sigmas", "how many", "worst relative score error", "the smallest three"],
                summary,
            )
        )
    if "sde_continuous" in result:
        parts.append(
            f"### Levels or log-uniform sigma in training{quick}\n\n"
            + markdown_table(
                [
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
                ],
                [
                    [
                        modes(r["mixture"]),
                        f"0.2–{r['sigma_max']:g}" + (" (c_in)" if r["options"] else ""),
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
                    for r in result["sde_continuous"]
                ],
            )
        )
    return "\n\n".join(parts) + "\n"
