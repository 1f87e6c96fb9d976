"""Tables 1 and 3 of ``reproduce``: the samplers, and their weight error against score evaluations.

1. **Samplers**: mode weights, within-mode standard deviation, energy distance to exact samples,
   score evaluations and seconds, for exact i.i.d. sampling, Langevin and annealed Langevin with
   the exact score (the paper's Fig. 3), with the trained networks, the final denoising step,
   consistent annealed sampling and the probability-flow ODE of the score SDE in 20 score
   evaluations; mean ± sd over ``config.n_headline_seeds`` seeds.
3. **Weight error against score evaluations** for Langevin, annealed Langevin and consistent
   annealed sampling with the exact score.

References: Song & Ermon 2019, Sec. 3.2 (Fig. 3) and Algorithm 1; Jolicoeur-Martineau et al. 2021;
Song et al., ICLR 2021 (the probability flow); Lu et al. 2022 (DPM-Solver++, the multistep solver).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..mixtures import GaussianMixture
from ..noise_levels import geometric_sigmas
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..sde import score_evaluations
from ..targets import target, uniform_in_box
from .measure import ReproduceConfig, Run, max_weight_error, measure, quick_note, references
from .report import markdown_table, mean_std, over_seeds
from .sde_study import SETTINGS, flow_run, prior_start

__all__ = [
    "sampler_rows",
    "sampler_table",
    "evaluation_study",
    "format_samplers",
    "format_evaluations",
    "PAPER_LANGEVIN",
    "PAPER_ANNEALED",
]

# Fig. 3 of the paper: Langevin dynamics
PAPER_LANGEVIN = {"step_size": 0.1, "n_steps": 1000}
# Fig. 3 of the paper: annealed Langevin dynamics, sigmas = (sigma_1, sigma_L, L)
PAPER_ANNEALED = {"sigmas": (20.0, 1.0, 10), "step_size": 0.1, "n_steps_each": 100}
# the probability flow of table 1: steps of the multistep solver, one score evaluation each
FLOW_STEPS = 20
# where a sampler starts: (mixture, n, generator) -> (n, d) points
Start = Callable[[GaussianMixture, int, torch.Generator], torch.Tensor]


class Row(NamedTuple):
    """One sampler of table 1: how it is labelled, what it samples and how it runs."""

    label: str
    mixture: str  # a name of TARGETS
    run: Run | None  # None: exact i.i.d. samples
    evaluations: int  # score evaluations per particle
    start: Start = uniform_in_box  # the continuous-time sampler starts from its prior instead


def _langevin(score: Callable, step_size: float, n_steps: int) -> Run:
    """Langevin dynamics with these settings, as a run(x0, generator)."""

    def run(x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return langevin_dynamics(score, x0, step_size, n_steps, g)

    return run


def _annealed(
    score: Callable,
    sigmas: torch.Tensor,
    step_size: float,
    n_steps_each: int,
    denoise: bool = False,
) -> Run:
    """Annealed Langevin dynamics with these settings, as a run(x0, generator)."""

    def run(x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return annealed_langevin_dynamics(
            score, x0, sigmas, step_size, n_steps_each, g, denoise=denoise
        )

    return run


def _consistent(score: Callable, sigmas: torch.Tensor, step_size: float) -> Run:
    """Consistent annealed sampling with these settings, as a run(x0, generator)."""

    def run(x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return consistent_annealed_sampling(score, x0, sigmas, step_size, g)

    return run


def _checkpoint_label(model: nn.Module) -> str:
    """A trained NCSN's own sampler settings, as a label: its levels, step size, steps per level."""
    meta = model.metadata
    sigmas = model.sigmas
    levels = f"sigma {sigmas[0]:.3g}->{sigmas[-1]:.3g}, L={len(sigmas)}"
    return f"{levels}, eps={meta['step_size']}, T={meta['n_steps_each']}"


def _checkpoint_evaluations(model: nn.Module) -> int:
    """Score evaluations per particle of annealed Langevin with a checkpoint's settings."""
    return len(model.sigmas) * model.metadata["n_steps_each"]


def _with_checkpoint_settings(score: Callable, model: nn.Module) -> Run:
    """Annealed Langevin with ``score`` and a checkpoint's sigmas, step size and steps per level."""
    meta = model.metadata
    return _annealed(score, model.sigmas, meta["step_size"], meta["n_steps_each"])


def _flow_row(name: str) -> Row:
    """The probability-flow ODE with the exact score, the multistep solver and the settings of
    table 5 (:data:`~ncsn_toy.commands.sde_study.SETTINGS`), from its prior."""
    settings = SETTINGS[name]
    sde = settings.sde()
    label = (
        f"probability flow, exact score, multistep (DPM-Solver++(2M)), {FLOW_STEPS} steps "
        f"(sigma {settings.sigma_max:g}->{settings.sigma_min:g}, EDM grid, "
        f"rho={settings.multistep_rho:g}; from N(0, {settings.sigma_max:g}^2 I))"
    )
    run = flow_run(target(name).score, sde, FLOW_STEPS, "multistep", settings.multistep_rho)
    evaluations = score_evaluations("probability_flow", FLOW_STEPS, method="multistep")
    return Row(label, name, run, evaluations, prior_start(sde))


def sampler_rows(models: dict[str, nn.Module]) -> list[Row]:
    """The rows of table 1: the paper's Fig. 3 with the exact score, the trained networks, and what
    lies beyond."""
    two = target("two_gaussians")
    four = target("four_gaussians")
    score_net = models["score_net_two_gaussians"]
    ncsn2 = models["ncsn_two_gaussians"]
    ncsn4 = models["ncsn_four_gaussians"]
    paper_sigmas = geometric_sigmas(*PAPER_ANNEALED["sigmas"])
    eps = PAPER_ANNEALED["step_size"]
    steps = PAPER_ANNEALED["n_steps_each"]
    cas_sigmas = geometric_sigmas(20.0, 1.0, 100)
    settings2 = _checkpoint_label(ncsn2)
    settings4 = _checkpoint_label(ncsn4)
    evals2 = _checkpoint_evaluations(ncsn2)
    evals4 = _checkpoint_evaluations(ncsn4)
    return [
        Row("exact i.i.d. samples", "two_gaussians", None, 0),
        Row(
            "Langevin, exact score (paper: eps=0.1, T=1000)",
            "two_gaussians",
            _langevin(two.score, **PAPER_LANGEVIN),
            PAPER_LANGEVIN["n_steps"],
        ),
        Row(
            "annealed Langevin, exact score (paper: sigma 20->1, L=10, T=100, eps=0.1)",
            "two_gaussians",
            _annealed(two.score, paper_sigmas, eps, steps),
            10 * steps,
        ),
        Row(
            "  + final denoising step",
            "two_gaussians",
            _annealed(two.score, paper_sigmas, eps, steps, denoise=True),
            10 * steps + 1,
        ),
        Row(
            "consistent annealed sampling, exact score (sigma 20->1, L=100, eps=0.1)",
            "two_gaussians",
            _consistent(two.score, cas_sigmas, 0.1),
            100,
        ),
        Row(
            f"annealed Langevin, exact score ({settings2})",
            "two_gaussians",
            _with_checkpoint_settings(two.score, ncsn2),
            evals2,
        ),
        Row(
            "Langevin, trained ScoreNet (eps=0.1, T=1000)",
            "two_gaussians",
            _langevin(score_net, score_net.metadata["step_size"], score_net.metadata["n_steps"]),
            score_net.metadata["n_steps"],
        ),
        Row(
            f"annealed Langevin, trained NCSN ({settings2})",
            "two_gaussians",
            _with_checkpoint_settings(ncsn2, ncsn2),
            evals2,
        ),
        _flow_row("two_gaussians"),
        Row("exact i.i.d. samples", "four_gaussians", None, 0),
        Row(
            "Langevin, exact score (eps=0.1, T=1000)",
            "four_gaussians",
            _langevin(four.score, **PAPER_LANGEVIN),
            PAPER_LANGEVIN["n_steps"],
        ),
        Row(
            f"annealed Langevin, exact score ({settings4})",
            "four_gaussians",
            _with_checkpoint_settings(four.score, ncsn4),
            evals4,
        ),
        Row(
            f"annealed Langevin, trained NCSN ({settings4})",
            "four_gaussians",
            _with_checkpoint_settings(ncsn4, ncsn4),
            evals4,
        ),
        _flow_row("four_gaussians"),
    ]


def sampler_table(
    models: dict[str, nn.Module],
    config: ReproduceConfig,
    refs: dict[str, torch.Tensor],
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 1: every row of :func:`sampler_rows`, measured over ``config.n_headline_seeds``
    seeds."""
    headline = dataclasses.replace(config, n_seeds=config.n_headline_seeds)
    rows = []
    for row in sampler_rows(models):
        between()
        mixture = target(row.mixture)
        numbers = measure(row.run, mixture, refs[row.mixture], headline, row.start)
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
    paper_sigmas = geometric_sigmas(20.0, 1.0, 10)
    rows = []
    for budget in config.budgets:
        cas_sigmas = geometric_sigmas(20.0, 1.0, max(budget, 2))
        ratio = (cas_sigmas[0] / cas_sigmas[1]).item()
        # eta = 2 (1 - sigma_{i+1} / sigma_i): twice the smallest step the levels allow
        eta = min(1.0, 2 * (1 - 1 / ratio))
        families = {
            "Langevin (eps=0.1)": _langevin(two.score, 0.1, budget),
            "annealed Langevin (paper's sigmas, eps=0.1, T=budget/10)": _annealed(
                two.score, paper_sigmas, 0.1, max(budget // 10, 1)
            ),
            "consistent annealed (L=budget levels 20->1, eta=2(1-1/ratio))": _consistent(
                two.score, cas_sigmas, eta
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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def format_samplers(rows: list[dict], sizes: dict) -> str:
    """Table 1 as Markdown (``sizes``: the result's config, for the caption)."""
    lines = []
    for r in rows:
        weights = torch.tensor(r["weights"])  # (seeds, K)
        per_mode = [mean_std(weights[:, k].tolist(), 3) for k in range(weights.shape[1])]
        # the smallest and the largest spread of a mode, each averaged over the seeds
        spreads = f"{_mean(r['std_min']):.2f}–{_mean(r['std_max']):.2f}"
        lines.append(
            [
                r["mixture"].replace("_", " "),
                r["sampler"],
                ", ".join(per_mode),
                f"{r['max_weight_error']:.3f}",
                spreads,
                mean_std(r["distance"], 4),
                r["evaluations"],
                mean_std(r["seconds"], 2),
            ]
        )
    headers = [
        "mixture",
        "sampler",
        "mode weights",
        "max weight error",
        "within-mode std",
        "energy distance to exact samples",
        "score evaluations",
        "seconds",
    ]
    heading = f"### Samplers{quick_note(sizes)}"
    # a result without n_headline_seeds ran table 1 over n_seeds
    seeds = sizes.get("n_headline_seeds", sizes["n_seeds"])
    caption = (
        f"Mode weights, energy distance and seconds: {over_seeds(seeds, sizes['n_particles'])}. "
        "Max weight error: of the mean weights. Within-mode std: the smallest and the largest "
        "over modes and axes, each averaged over the seeds. Every sampler starts uniformly over "
        "the data's box, the probability flow from its prior."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)


def format_evaluations(rows: list[dict], sizes: dict) -> str:
    """Table 3 as Markdown (``sizes``: the result's config, for the caption)."""
    lines = []
    for r in rows:
        lines.append(
            [
                r["sampler"],
                r["evaluations"],
                f"{r['max_weight_error']:.3f}",
                mean_std(r["distance"], 4),
            ]
        )
    headers = ["sampler", "score evaluations", "max weight error", "energy distance"]
    heading = (
        f"### Weight error against score evaluations (exact score, two modes){quick_note(sizes)}"
    )
    caption = (
        f"Energy distance: {over_seeds(sizes['n_seeds'], sizes['n_particles'])}. Max weight "
        "error: of the mean weights."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)
