"""Table 12 of ``reproduce``: DDPM and DDIM beside the VE samplers, one score, equal evaluations.

12. **DDPM and DDIM**: mode weights, max weight error, within-mode std and energy distance to
    exact samples of DDPM's ancestral sampling (Ho et al. 2020, Algorithm 2) and of DDIM
    (Song, Meng & Ermon 2021, Eq. 12; eta 0 and 1) on the paper's mixture, with the exact
    noise predictor eps = -std grad log p_t and with the trained ``EpsilonNet``, beside the VE
    samplers of table 5 at 10, 20, 50 and 100 score evaluations. Every DDPM / DDIM row starts
    from DDPM's prior N(0, I); the VE rows from N(0, sigma_max^2 I). The energy distance is
    also given in standard errors above that of exact samples.

Exact samples, DDPM and DDIM with eta 0 (the rows of the targets) run
``config.n_headline_seeds`` seeds (20 at full size), the other rows ``config.n_seeds`` (5): at
20 seeds every row would take 22 min on the shared 2 cores, most of it in the energy distances.

References: Ho et al., NeurIPS 2020; Song, Meng & Ermon, ICLR 2021; Song et al., ICLR 2021;
Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..ddpm import VPSDE, DDPMSchedule, ddim_sampling, ddpm_sampling, exact_eps, ve_score_fn
from ..mixtures import GaussianMixture
from ..sde import VESDE, probability_flow_sampling
from ..targets import target
from .measure import ReproduceConfig, Run, max_weight_error, measure, quick_note, references
from .report import markdown_table, mean_se, mean_std
from .sde_study import SETTINGS, prior_start, sampler_rows, spreads

__all__ = [
    "NET",
    "DDIM_STEPS",
    "VE_SIZES",
    "ddpm_sampler_table",
    "format_ddpm_samplers",
    "distance_in_standard_errors",
]

# the trained noise predictor (recipes.py): EpsilonNet on DDPM's linear schedule of 1000 steps
NET = "ddpm_two_gaussians"
MIXTURE = "two_gaussians"
# DDIM's evaluations with the exact eps, each at eta 0 (deterministic) and 1 (DDPM-like)
DDIM_STEPS = (10, 20, 50, 100)
ETAS = (0.0, 1.0)
# DDIM with the trained network: (steps, eta)
NET_DDIM = ((20, 0.0), (50, 0.0), (50, 1.0))
# the probability flow through the VE conversion: steps of the multistep solver
FLOW_STEPS = 20
# the VE samplers of table 5 (sde_study.sampler_rows) at about 10, 20, 50, 100 evaluations:
# multistep and the reverse SDE take one a step, Heun 2 a step but the last (9, 19, 49, 99)
VE_SIZES = {"multistep": (10, 20, 50, 100), "heun": (5, 10, 25, 50), "sde": (10, 20, 50, 100)}
# where a sampler starts: (mixture, n, generator) -> (n, d) points
Start = Callable[[GaussianMixture, int, torch.Generator], torch.Tensor]


class Row(NamedTuple):
    """One sampler of table 12."""

    score: str  # which score: exact or trained, and on what noising
    label: str  # the sampler and its settings
    run: Run | None  # None: exact i.i.d. samples
    evaluations: int  # score (noise predictor) evaluations per particle
    start: Start  # the prior it starts from
    # measured over config.n_headline_seeds seeds (else config.n_seeds): exact samples, DDPM and
    # DDIM with eta 0
    headline: bool


def vp_start(mixture: GaussianMixture, n: int, g: torch.Generator) -> torch.Tensor:
    """DDPM's prior, for :func:`~.measure.measure`: ``n`` draws of N(0, I)."""
    return VPSDE().prior_sample(n, mixture.dim, g)


def _ddpm(eps_fn: Callable, schedule: DDPMSchedule) -> Run:
    """Ancestral sampling over the whole schedule, as a run(x_T, generator)."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return ddpm_sampling(eps_fn, x, schedule, g)

    return run


def _ddim(eps_fn: Callable, schedule: DDPMSchedule, n_steps: int, eta: float) -> Run:
    """DDIM on ``n_steps`` steps of the schedule, as a run(x_T, generator)."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return ddim_sampling(eps_fn, x, schedule, n_steps, eta, g)

    return run


def _flow_through_ve(eps_fn: Callable, schedule: DDPMSchedule, n_steps: int) -> Run:
    """The VE probability flow (multistep) run on x_T / sqrt(a_T) with the noise predictor as a
    VE score, from sigma_{T-1} to sigma_0, as a run(x_T, generator) returning x_bar at sigma_0.

    x_bar = x / sqrt(a): the VE coordinates of the same point (DDPM's x_0 = sqrt(a_0) x_bar is
    within 5e-5 of it)."""
    sde = VESDE(schedule.sigmas[0].item(), schedule.sigmas[-1].item())
    score = ve_score_fn(eps_fn, schedule)
    last_scale = schedule.scales[-1].item()

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return probability_flow_sampling(score, x / last_scale, sde, n_steps, "multistep")

    return run


def _noise_predictor_rows(
    score: str, eps_fn: Callable, schedule: DDPMSchedule, ddim: tuple[tuple[int, float], ...]
) -> list[Row]:
    """DDPM over the T steps, DDIM at each (steps, eta), and the VE probability flow through the
    conversion, all with ``eps_fn``."""
    n = schedule.n_steps
    rows = [Row(score, f"DDPM, {n} steps", _ddpm(eps_fn, schedule), n, vp_start, True)]
    for steps, eta in ddim:
        label = f"DDIM, {steps} steps, eta={eta:g}"
        run = _ddim(eps_fn, schedule, steps, eta)
        rows.append(Row(score, label, run, steps, vp_start, eta == 0))
    sigma_low = schedule.sigmas[0].item()
    sigma_high = schedule.sigmas[-1].item()
    label = (
        f"probability flow of x / sqrt(a), multistep, {FLOW_STEPS} steps "
        f"(sigma {sigma_high:.0f}->{sigma_low:.2g}, EDM grid, rho=7)"
    )
    flow = _flow_through_ve(eps_fn, schedule, FLOW_STEPS)
    rows.append(Row(score, label, flow, FLOW_STEPS, vp_start, False))
    return rows


def table_rows(models: dict[str, nn.Module]) -> list[Row]:
    """The rows of table 12: exact samples, the exact and the trained noise predictor, the VE
    samplers of table 5 with the exact score."""
    mixture = target(MIXTURE)
    model = models[NET]
    schedule = DDPMSchedule.linear(model.n_steps)
    settings = SETTINGS[MIXTURE]
    sde = settings.sde()
    exact_ddim = tuple((steps, eta) for eta in ETAS for steps in DDIM_STEPS)
    rows = [Row("exact i.i.d.", "exact i.i.d. samples", None, 0, vp_start, True)]
    rows += _noise_predictor_rows(
        "exact eps, DDPM's linear schedule", exact_eps(mixture, schedule), schedule, exact_ddim
    )
    rows += _noise_predictor_rows(f"trained {NET}", model, schedule, NET_DDIM)
    ve_score = f"exact score, VE sigma {settings.sigma_max:g} -> {settings.sigma_min:g}"
    for label, run, evaluations in sampler_rows(
        mixture.score, sde, settings.rho, VE_SIZES, settings.multistep_rho
    ):
        rows.append(Row(ve_score, label, run, evaluations, prior_start(sde), False))
    return rows


def ddpm_sampler_table(
    models: dict[str, nn.Module],
    config: ReproduceConfig,
    refs: dict | None = None,
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 12: every row of :func:`table_rows`, measured on the paper's mixture."""
    refs = refs or references(config)
    mixture = target(MIXTURE)
    headline = dataclasses.replace(config, n_seeds=config.n_headline_seeds)
    rows = []
    for row in table_rows(models):
        between()
        sizes = headline if row.headline else config
        numbers = measure(row.run, mixture, refs[MIXTURE], sizes, row.start)
        rows.append(
            {
                "mixture": MIXTURE,
                "score": row.score,
                "sampler": row.label,
                "evaluations": row.evaluations,
                "max_weight_error": max_weight_error(numbers["weights"], mixture),
                **numbers,
            }
        )
    return rows


def distance_in_standard_errors(row: dict, exact: dict) -> float:
    """How far a row's mean energy distance lies above that of exact samples, in standard errors
    of the difference: (mean - mean_exact) / sqrt(se^2 + se_exact^2), se = sd / sqrt(seeds).
    NaN with fewer than two seeds on either side (no sd to measure)."""
    if min(len(row["distance"]), len(exact["distance"])) < 2:
        return math.nan
    values = torch.tensor(row["distance"], dtype=torch.float64)
    reference = torch.tensor(exact["distance"], dtype=torch.float64)
    variance = values.var() / len(values) + reference.var() / len(reference)
    return (values.mean() - reference.mean()).item() / math.sqrt(variance.item())


def format_ddpm_samplers(result: dict) -> str:
    """Table 12 of a ``reproduce`` result, as Markdown ("" if the result has none)."""
    if "ddpm_samplers" not in result:
        return ""
    sizes = result["config"]
    rows = result["ddpm_samplers"]
    exact = next(r for r in rows if r["sampler"] == "exact i.i.d. samples")
    headers = [
        "score",
        "sampler",
        "score evaluations",
        "seeds",
        "mode weights",
        "max weight error",
        "within-mode std",
        "energy distance to exact samples",
        "above exact samples' (standard errors)",
        "seconds",
    ]
    lines = []
    for r in rows:
        weights = torch.tensor(r["weights"])  # (seeds, K)
        per_mode = [mean_std(weights[:, k].tolist(), 3) for k in range(weights.shape[1])]
        gap = math.nan if r is exact else distance_in_standard_errors(r, exact)
        lines.append(
            [
                r["score"],
                r["sampler"],
                r["evaluations"],
                len(r["weights"]),
                ", ".join(per_mode),
                f"{r['max_weight_error']:.4f}",
                spreads(r),
                mean_se(r["distance"], 4),
                "—" if math.isnan(gap) else f"{gap:+.1f}",
                mean_std(r["seconds"], 2),
            ]
        )
    quick = quick_note(sizes)
    heading = f"### DDPM and DDIM beside the VE samplers, one score{quick}"
    headline = sizes["n_headline_seeds"]
    seeds = sizes["n_seeds"]
    particles = sizes["n_particles"]
    caption = (
        f"The paper's mixture. Mode weights and seconds: mean ± sd over {headline} seeds of "
        f"{particles} particles for exact samples, DDPM and DDIM with eta 0, and sd over "
        f"{seeds} seeds of {particles} particles for the other rows (column seeds); energy "
        "distance: mean ± standard error over the same seeds (sd / sqrt(seeds)), and how "
        "far it lies above that of exact samples in standard errors of the difference. Max "
        "weight error: of the mean weights. Within-mode std: the smallest and the largest over "
        "modes and axes, each averaged over the seeds (DDPM and DDIM end at the data, std 1; the "
        "VE samplers at p_0.2, std 1.02). DDPM and DDIM start from N(0, I), the VE samplers "
        "from N(0, sigma_max^2 I)."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)
