"""Tables 1 and 3 of ``reproduce``: the samplers, and their weight error against score evaluations.

1. **Samplers**: mode weights, within-mode standard deviation, energy distance to exact samples,
   score evaluations and seconds, for exact i.i.d. sampling, Langevin and annealed Langevin with
   the exact score (the paper's Fig. 3), with the trained networks, the final denoising step and
   consistent annealed sampling; mean ± std over seeds.
3. **Weight error against score evaluations** for Langevin, annealed Langevin and consistent
   annealed sampling with the exact score.

References: Song & Ermon 2019, Sec. 3.2 (Fig. 3) and Algorithm 1; Jolicoeur-Martineau et al. 2021.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..noise_levels import geometric_sigmas
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..targets import target
from .measure import QUICK, ReproduceConfig, max_weight_error, measure, references
from .report import markdown_table, mean_std

__all__ = [
    "sampler_rows",
    "sampler_table",
    "evaluation_study",
    "format_samplers",
    "format_evaluations",
    "PAPER_LANGEVIN",
    "PAPER_ANNEALED",
]

PAPER_LANGEVIN = {"step_size": 0.1, "n_steps": 1000}  # Fig. 3, Langevin dynamics
PAPER_ANNEALED = {
    "sigmas": (20.0, 1.0, 10),
    "step_size": 0.1,
    "n_steps_each": 100,
}  # Fig. 3, annealed


class Row(NamedTuple):
    label: str
    mixture: str  # a name of TARGETS
    run: (
        Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None
    )  # None: exact i.i.d. samples
    evaluations: int  # score evaluations per particle


def sampler_rows(models: dict[str, nn.Module]) -> list[Row]:
    """The rows of table 1: the paper's Fig. 3 with the exact score, the trained networks, and what lies beyond."""
    two, four = target("two_gaussians"), target("four_gaussians")
    score_net, ncsn2, ncsn4 = (
        models[k] for k in ("score_net_two_gaussians", "ncsn_two_gaussians", "ncsn_four_gaussians")
    )
    paper_sigmas = geometric_sigmas(*PAPER_ANNEALED["sigmas"])
    eps, steps = PAPER_ANNEALED["step_size"], PAPER_ANNEALED["n_steps_each"]

    def ald(score, sigmas, step_size, n_steps_each, denoise=False):
        return lambda x0, g: annealed_langevin_dynamics(
            score, x0, sigmas, step_size, n_steps_each, g, denoise=denoise
        )

    def ld(score, step_size, n_steps):
        return lambda x0, g: langevin_dynamics(score, x0, step_size, n_steps, g)

    def trained(model):  # annealed Langevin with the checkpoint's own sigmas and settings
        meta = model.metadata
        return (
            ald(model, model.sigmas, meta["step_size"], meta["n_steps_each"]),
            len(model.sigmas) * meta["n_steps_each"],
            f"eps={meta['step_size']}, T={meta['n_steps_each']}",
        )

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
        Row(
            "Langevin, exact score (paper: eps=0.1, T=1000)",
            "two_gaussians",
            ld(two.score, **PAPER_LANGEVIN),
            PAPER_LANGEVIN["n_steps"],
        ),
        Row(
            "annealed Langevin, exact score (paper: sigma 20->1, L=10, T=100, eps=0.1)",
            "two_gaussians",
            ald(two.score, paper_sigmas, eps, steps),
            10 * steps,
        ),
        Row(
            "  + final denoising step",
            "two_gaussians",
            ald(two.score, paper_sigmas, eps, steps, True),
            10 * steps + 1,
        ),
        Row(
            "consistent annealed sampling, exact score (sigma 20->1, L=100, eps=0.1)",
            "two_gaussians",
            lambda x0, g: consistent_annealed_sampling(two.score, x0, cas_sigmas, 0.1, g),
            100,
        ),
        Row(
            f"annealed Langevin, exact score ({sl}, {how2})",
            "two_gaussians",
            same_as(ncsn2, two),
            evals2,
        ),
        Row(
            "Langevin, trained ScoreNet (eps=0.1, T=1000)",
            "two_gaussians",
            ld(score_net, score_net.metadata["step_size"], score_net.metadata["n_steps"]),
            score_net.metadata["n_steps"],
        ),
        Row(f"annealed Langevin, trained NCSN ({sl}, {how2})", "two_gaussians", run2, evals2),
        Row("exact i.i.d. samples", "four_gaussians", None, 0),
        Row(
            "Langevin, exact score (eps=0.1, T=1000)",
            "four_gaussians",
            ld(four.score, **PAPER_LANGEVIN),
            PAPER_LANGEVIN["n_steps"],
        ),
        Row(
            f"annealed Langevin, exact score ({sl4}, {how4})",
            "four_gaussians",
            same_as(ncsn4, four),
            evals4,
        ),
        Row(f"annealed Langevin, trained NCSN ({sl4}, {how4})", "four_gaussians", run4, evals4),
    ]


def sampler_table(
    models: dict[str, nn.Module],
    config: ReproduceConfig,
    refs: dict[str, torch.Tensor],
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 1: every row of :func:`sampler_rows`, measured over ``config.n_seeds`` seeds."""
    rows = []
    for row in sampler_rows(models):
        between()
        mixture = target(row.mixture)
        numbers = measure(row.run, mixture, refs[row.mixture], config)
        weights = numbers.pop("weights")  # (seeds, K)
        rows.append(
            {
                "sampler": row.label,
                "mixture": row.mixture,
                "evaluations": row.evaluations,
                "weights": weights,
                "max_weight_error": max_weight_error(weights, mixture),
                **numbers,
            }
        )
    return rows


def evaluation_study(
    config: ReproduceConfig, refs: dict[str, torch.Tensor] | None = None
) -> list[dict]:
    """Weight error and distance against the number of score evaluations, exact score, two modes.

    For each budget in ``config.budgets``: Langevin with that many steps; annealed Langevin with
    the paper's 10 levels and budget / 10 steps each; consistent annealed sampling with that many
    levels from 20 to 1 and eta twice the smallest the levels allow.
    """
    refs = refs or references(config)
    two = target("two_gaussians")
    rows = []
    for budget in config.budgets:
        cas_sigmas = geometric_sigmas(20.0, 1.0, max(budget, 2))
        ratio = (cas_sigmas[0] / cas_sigmas[1]).item()
        families = {
            "Langevin (eps=0.1)": lambda x0, g, b=budget: langevin_dynamics(
                two.score, x0, 0.1, b, g
            ),
            "annealed Langevin (paper's sigmas, eps=0.1, T=budget/10)": lambda x0, g, b=budget: (
                annealed_langevin_dynamics(
                    two.score, x0, geometric_sigmas(20.0, 1.0, 10), 0.1, max(b // 10, 1), g
                )
            ),
            # eta = 2 (1 - sigma_{i+1} / sigma_i): twice the smallest step the levels allow
            "consistent annealed (L=budget levels 20->1, eta=2(1-1/ratio))": lambda x0, g, s=cas_sigmas, r=ratio: (
                consistent_annealed_sampling(two.score, x0, s, min(1.0, 2 * (1 - 1 / r)), g)
            ),
        }
        for family, run in families.items():
            numbers = measure(run, two, refs["two_gaussians"], config)
            rows.append(
                {
                    "sampler": family,
                    "evaluations": budget,
                    "max_weight_error": max_weight_error(numbers["weights"], two),
                    "distance": numbers["distance"],
                }
            )
    return rows


def format_samplers(rows: list[dict], quick: bool = False) -> str:
    """Table 1 as Markdown."""
    lines = []
    for r in rows:
        weights = torch.tensor(r["weights"])  # (seeds, K)
        w = ", ".join(mean_std(weights[:, k].tolist(), 3) for k in range(weights.shape[1]))
        stds = f"{sum(r['std_min']) / len(r['std_min']):.2f}–{sum(r['std_max']) / len(r['std_max']):.2f}"
        lines.append(
            [
                r["mixture"].replace("_", " "),
                r["sampler"],
                w,
                f"{r['max_weight_error']:.3f}",
                stds,
                mean_std(r["distance"], 4),
                r["evaluations"],
                mean_std(r["seconds"], 2),
            ]
        )
    return f"### Samplers{QUICK if quick else ''}\n\n" + markdown_table(
        [
            "mixture",
            "sampler",
            "mode weights (mean ± std over seeds)",
            "max weight error",
            "within-mode std",
            "energy distance to exact samples",
            "score evaluations",
            "seconds",
        ],
        lines,
    )


def format_evaluations(rows: list[dict], quick: bool = False) -> str:
    """Table 3 as Markdown."""
    return (
        f"### Weight error against score evaluations (exact score, two modes){QUICK if quick else ''}\n\n"
        + markdown_table(
            ["sampler", "score evaluations", "max weight error", "energy distance"],
            [
                [
                    r["sampler"],
                    r["evaluations"],
                    f"{r['max_weight_error']:.3f}",
                    mean_std(r["distance"], 4),
                ]
                for r in rows
            ],
        )
    )
