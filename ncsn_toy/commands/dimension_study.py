"""The zoo's dimension study: the paper's two Gaussians embedded in more dimensions.

Every sampler runs at the same budget of score evaluations.

The mixture 0.2 N(-m, I) + 0.8 N(m, I), m = (5, 5, 0, ..., 0) (means 10 sqrt(2) apart, as in the
paper), in d = 2, 8, 32, 128 dimensions, exact score, every sampler of
:data:`DIMENSION_SAMPLERS` at the same budget of score evaluations per particle: weight of the
0.8 mode and within-mode standard deviation. Every sampler starts from N(0, sigma_1^2 I), which
is about p_sigma_1 in any dimension (a box of fixed side is not: its points lie ever farther from
the data as d grows).

References: Song & Ermon 2020 (NCSNv2, techniques 1, 2 and 4); Jolicoeur-Martineau et al. 2021
(consistent annealed sampling); Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import torch
from tqdm.auto import tqdm

from ..metrics import mode_statistics
from ..mixtures import GaussianMixture
from ..noise_levels import NoiseSchedule, geometric_sigmas
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..sde import VESDE, probability_flow_sampling, reverse_sde_sampling
from .report import markdown_table, mean_std, over_seeds

__all__ = [
    "dimension_mixture",
    "DIMENSION_SAMPLERS",
    "DimensionSampler",
    "DimensionSizes",
    "dimension_rows",
    "format_dimensions",
]

# sampler(mixture, x0, schedule, budget, generator) -> samples
DimensionSampler = Callable[
    [GaussianMixture, torch.Tensor, NoiseSchedule, int, torch.Generator], torch.Tensor
]


class DimensionSizes(Protocol):
    """The sizes :func:`dimension_rows` reads (the zoo study's ``ZooConfig`` has them)."""

    dims: tuple[int, ...]  # dimensions of the study
    budget: int  # score evaluations per particle
    n_dim_particles: int  # particles per run
    n_seeds: int  # runs per row, each with its own start and noise


def dimension_mixture(dim: int) -> GaussianMixture:
    """0.2 N(-m, I) + 0.8 N(m, I) in ``dim`` >= 2 dimensions, m = (5, 5, 0, ..., 0): the paper's
    mixture, embedded."""
    means = torch.zeros(2, dim, dtype=torch.float64)
    means[0, :2] = -5.0
    means[1, :2] = 5.0
    return GaussianMixture([0.2, 0.8], means, dtype=torch.float32)


def _langevin(
    mixture: GaussianMixture,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    budget: int,
    g: torch.Generator,
) -> torch.Tensor:
    """The paper's Fig. 3 Langevin step (eps = 0.1), ``budget`` steps with the score of p."""
    return langevin_dynamics(mixture.score, x0, 0.1, budget, g)


def _annealed(shells: bool) -> DimensionSampler:
    """Annealed Langevin with levels from techniques 1 and 2 (or with the 2-D ratio sqrt(2) in
    every d), budget / L steps per level and the technique-4 step for that many steps."""

    def run(
        mixture: GaussianMixture,
        x0: torch.Tensor,
        schedule: NoiseSchedule,
        budget: int,
        g: torch.Generator,
    ) -> torch.Tensor:
        levels = NoiseSchedule.from_mixture(mixture, shells=shells).n_levels
        tuned = NoiseSchedule.from_mixture(
            mixture, shells=shells, n_steps_each=max(budget // levels, 1)
        )
        sigmas = tuned.sigmas(dtype=x0.dtype)
        return annealed_langevin_dynamics(
            mixture.score, x0, sigmas, tuned.step_size, tuned.n_steps_each, g
        )

    return run


def _consistent(
    mixture: GaussianMixture,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    budget: int,
    g: torch.Generator,
) -> torch.Tensor:
    """Consistent annealed sampling: ``budget`` levels from sigma_1 to sigma_L,
    eta = 2 (1 - 1 / ratio)."""
    sigmas = geometric_sigmas(
        schedule.sigma_max, schedule.sigma_min, max(budget, 2), dtype=x0.dtype
    )
    ratio = (schedule.sigma_max / schedule.sigma_min) ** (1 / (len(sigmas) - 1))
    eta = min(1.0, 2 * (1 - 1 / ratio))
    return consistent_annealed_sampling(mixture.score, x0, sigmas, eta * schedule.sigma_min**2, g)


def _reverse_sde(
    mixture: GaussianMixture,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    budget: int,
    g: torch.Generator,
) -> torch.Tensor:
    """The reverse-time VE SDE from sigma_1 (x0 is its prior), ``budget`` steps."""
    sde = VESDE(schedule.sigma_min, schedule.sigma_max)
    return reverse_sde_sampling(mixture.score, x0, sde, budget, g)


def _multistep(
    mixture: GaussianMixture,
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    budget: int,
    g: torch.Generator,
) -> torch.Tensor:
    """The probability-flow ODE from sigma_1, multistep solver, ``budget`` steps (one evaluation
    each)."""
    sde = VESDE(schedule.sigma_min, schedule.sigma_max)
    return probability_flow_sampling(mixture.score, x0, sde, budget, "multistep")


# name -> sampler; x0 ~ N(0, sigma_1^2 I), sigma_1 = schedule.sigma_max
DIMENSION_SAMPLERS: dict[str, DimensionSampler] = {
    "Langevin (eps = 0.1)": _langevin,
    "annealed Langevin, levels of techniques 1-2": _annealed(True),
    "annealed Langevin, 2-D ratio sqrt(2) in every d": _annealed(False),
    "consistent annealed sampling (one step per level)": _consistent,
    "reverse SDE (geometric grid)": _reverse_sde,
    "probability flow, multistep (EDM grid)": _multistep,
}


def dimension_rows(
    config: DimensionSizes,
    samplers: dict[str, DimensionSampler] | None = None,
    *,
    progress: bool = False,
) -> list[dict]:
    """Weight of the 0.8 mode and within-mode standard deviation against the dimension, at a fixed
    budget, for every sampler (default: :data:`DIMENSION_SAMPLERS`) and ``config.n_seeds`` seeds."""
    samplers = DIMENSION_SAMPLERS if samplers is None else samplers
    rows = []
    for dim in tqdm(config.dims, desc="zoo: dimensions", disable=not progress, leave=False):
        mixture = dimension_mixture(dim)
        schedule = NoiseSchedule.from_mixture(mixture)
        for name, sampler in samplers.items():
            out: dict[str, list] = {
                "weight": [],
                "std_mean": [],
                "std_min": [],
                "std_max": [],
                "seconds": [],
            }
            for seed in range(config.n_seeds):
                g = torch.Generator().manual_seed(2000 + seed)
                x0 = schedule.sigma_max * torch.randn(config.n_dim_particles, dim, generator=g)
                start = time.perf_counter()
                x = sampler(mixture, x0, schedule, config.budget, g)
                out["seconds"].append(time.perf_counter() - start)
                stats = mode_statistics(mixture, x)
                out["weight"].append(stats.weights[1].item())
                out["std_mean"].append(stats.stds.mean().item())
                out["std_min"].append(stats.stds.min().item())
                out["std_max"].append(stats.stds.max().item())
            rows.append(
                {
                    "dim": dim,
                    "sampler": name,
                    "budget": config.budget,
                    "sigma_max": schedule.sigma_max,
                    "n_levels": schedule.n_levels,
                    **out,
                }
            )
    return rows


def format_dimensions(rows: list[dict], sizes: dict, quick: str = "") -> str:
    """The dimension study as Markdown (``sizes``: the zoo study's config, for the caption;
    ``quick``: a suffix for the heading)."""
    budget = rows[0]["budget"] if rows else 0
    lines = []
    for r in rows:
        mean_weight = sum(r["weight"]) / len(r["weight"])
        spread = f"{mean_std(r['std_mean'], 2)}; {min(r['std_min']):.2f}–{max(r['std_max']):.2f}"
        lines.append(
            [
                r["dim"],
                r["sampler"],
                f"{r['sigma_max']:.1f}, {r['n_levels']}",
                mean_std(r["weight"], 3),
                f"{abs(mean_weight - 0.8):.3f}",
                spread,
                mean_std(r["seconds"], 1),
            ]
        )
    headers = [
        "d",
        "sampler",
        "sigma_1, levels (techniques 1-2)",
        "weight of the 0.8 mode",
        "weight error",
        "within-mode std (mean; range)",
        "seconds",
    ]
    heading = (
        "### Dimension: two Gaussians (0.2 / 0.8, 10 sqrt(2) apart), exact score, "
        f"{budget} score evaluations per particle{quick}"
    )
    caption = (
        f"Weight, mean within-mode std and seconds: "
        f"{over_seeds(sizes['n_seeds'], sizes['n_dim_particles'])}. Weight error: of the mean "
        "weight. Range: the smallest and the largest within-mode std over modes, axes and seeds."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)
