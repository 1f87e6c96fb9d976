"""Table 5 of ``reproduce``: the continuous-time samplers of the score SDEs (:mod:`ncsn_toy.sde`).

5. **Continuous-time samplers**: mode weights, max weight error, energy distance, within-mode
   std, score evaluations and seconds for the reverse SDE, predictor-corrector and the
   probability-flow ODE (Euler, Heun, multistep), with the exact score and with the trained
   networks, from the prior; plus the weight error and the spreads measured once on 40x the
   particles (their bias, without most of the sampling noise: the per-seed spreads average each
   run's extremes, which noise pushes outwards).

The VE SDE and grid each mixture is sampled with (:data:`SETTINGS`) were chosen by the scan of
:mod:`~ncsn_toy.commands.sde_settings_scan`; the ODE log-likelihood (table 6) is in
:mod:`~ncsn_toy.commands.sde_likelihood_study`, and tables 7 and 8, the trained networks as score
functions at any sigma, are in :mod:`~ncsn_toy.commands.sde_network_study`.

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..metrics import mode_statistics
from ..mixtures import GaussianMixture
from ..sde import (
    VESDE,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
    score_evaluations,
)
from ..targets import target
from .measure import ReproduceConfig, Run, max_weight_error, measure, quick_note, references
from .report import markdown_table, mean_std, over_seeds

__all__ = [
    "Settings",
    "SETTINGS",
    "NETS",
    "SDE_NETS",
    "BIAS_FACTOR",
    "sde_sampler_table",
    "format_sde_samplers",
    "sampler_rows",
    "flow_run",
    "prior_start",
    "large_run",
    "spreads",
    "modes",
]

# the trained network of each mixture (levels up to its recipe's sigma_max)
NETS = {"two_gaussians": "ncsn_two_gaussians", "four_gaussians": "ncsn_four_gaussians"}
# trained up to the exact score's sigma_max, for these samplers (recipes.py); four modes meet the
# target without one
SDE_NETS = {"two_gaussians": "ncsn_sde_two_gaussians"}
# the bias columns run once on this many times config.n_particles (200,000 at full size)
BIAS_FACTOR = 40


@dataclass(frozen=True)
class Settings:
    """The VE SDE and grid used with the exact score, per mixture (chosen with
    :func:`~ncsn_toy.commands.sde_settings_scan.settings_scan`)."""

    # the prior N(0, sigma_max^2 I); its mean 0 against the data's puts the weights off by
    # ~0.28 |E x| / sigma_max
    sigma_max: float
    # where sampling ends: within-mode std sqrt(1 + sigma_min^2) = 1.02
    sigma_min: float
    # EDM's grid exponent for the probability flow with Heun
    rho: float
    # the same for the multistep solver: larger widens the modes (settings_scan)
    multistep_rho: float = 7.0

    def sde(self) -> VESDE:
        """The VE SDE from sigma_max down to sigma_min."""
        return VESDE(self.sigma_min, self.sigma_max)


# two modes, multistep rho 10: spreads 1.004-1.030 in the scan against p_0.2's 1.020 (rho 7:
# 0.985-1.006, 1-3% narrow); four modes keep 6.5 (0.982-1.004): a larger rho widens their widest
# mode beyond 1.05 on 5000 particles
SETTINGS = {
    "two_gaussians": Settings(800.0, 0.2, 6.0, 10.0),
    "four_gaussians": Settings(500.0, 0.2, 10.0, 6.5),
}

# the budgets of table 5 with the exact score: steps per solver; predictor-corrector as
# (steps, snr, grid)
EXACT_SIZES = {
    "multistep": (10, 20, 50),
    "heun": (5, 10, 25, 50),
    "euler": (10, 25, 100),
    "sde": (20, 50, 200),
    "pc": ((10, 0.16, "geometric"), (25, 0.16, "geometric"), (100, 0.16, "geometric")),
}
# the budgets of table 5 with the trained networks
NET_SIZES = {
    "multistep": (20, 50),
    "heun": (10, 25),
    "sde": (50,),
    "pc": ((25, 0.16, "geometric"), (25, 0.3, "edm")),
}


def flow_run(score: Callable, sde: VESDE, n_steps: int, method: str, rho: float) -> Run:
    """The probability-flow ODE with these settings, as a run(x_T, generator)."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return probability_flow_sampling(score, x, sde, n_steps, method, rho=rho)

    return run


def _reverse_sde(score: Callable, sde: VESDE, n_steps: int) -> Run:
    """The reverse-time SDE with ``n_steps`` steps, as a run(x_T, generator)."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return reverse_sde_sampling(score, x, sde, n_steps, g)

    return run


def _predictor_corrector(score: Callable, sde: VESDE, n_steps: int, snr: float, grid: str) -> Run:
    """Predictor-corrector with one corrector step per step, as a run(x_T, generator)."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return predictor_corrector_sampling(score, x, sde, n_steps, snr, 1, g, grid=grid)

    return run


def sampler_rows(
    score: Callable, sde: VESDE, rho: float, sizes: dict, multistep_rho: float = 7.0
) -> list[tuple[str, Run, int]]:
    """(label, run, evaluations) for every sampler family at the budgets of ``sizes``."""
    rows = []
    for n in sizes.get("multistep", ()):
        label = (
            f"probability flow, multistep (DPM-Solver++(2M)), {n} steps "
            f"(EDM grid, rho={multistep_rho:g})"
        )
        run = flow_run(score, sde, n, "multistep", multistep_rho)
        rows.append((label, run, score_evaluations("probability_flow", n, method="multistep")))
    for n in sizes.get("heun", ()):
        label = f"probability flow, Heun, {n} steps (EDM grid, rho={rho:g})"
        run = flow_run(score, sde, n, "heun", rho)
        rows.append((label, run, score_evaluations("probability_flow", n)))
    for n in sizes.get("euler", ()):
        label = f"probability flow, Euler, {n} steps (EDM grid, rho={rho:g})"
        rows.append((label, flow_run(score, sde, n, "euler", rho), n))
    for n in sizes.get("sde", ()):
        label = f"reverse SDE, {n} steps (geometric grid)"
        rows.append((label, _reverse_sde(score, sde, n), n))
    for n, snr, grid in sizes.get("pc", ()):
        label = f"predictor-corrector, {n} steps, 1 corrector, snr={snr:g} ({grid} grid)"
        rows.append((label, _predictor_corrector(score, sde, n, snr, grid), 2 * n))
    return rows


def prior_start(sde: VESDE) -> Callable[[GaussianMixture, int, torch.Generator], torch.Tensor]:
    """The start of the continuous-time samplers, for :func:`~.measure.measure`: ``n`` draws of
    the SDE's prior N(0, sigma_max^2 I)."""

    def start(mixture: GaussianMixture, n: int, g: torch.Generator) -> torch.Tensor:
        return sde.prior_sample(n, mixture.dim, g)

    return start


def _noisy_exact(mixture: GaussianMixture, sigma: float) -> Run:
    """Exact samples of p_sigma (the data plus N(0, sigma^2 I)), as a run that ignores its start."""

    def run(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return mixture.sample(len(x), generator=g) + sigma * torch.randn(x.shape, generator=g)

    return run


def large_run(run: Run | None, mixture: GaussianMixture, sde: VESDE, n: int) -> dict:
    """One run on ``n`` particles from the prior (seed 77; ``None``: exact i.i.d. samples): weight
    error and spreads with little sampling noise."""
    g = torch.Generator().manual_seed(77)
    if run is None:
        x = mixture.sample(n, generator=g)
    else:
        x = run(sde.prior_sample(n, mixture.dim, g), g)
    stats = mode_statistics(mixture, x)
    return {
        "bias_max_weight_error": (stats.weights - mixture.weights).abs().max().item(),
        "bias_std_min": stats.stds.min().item(),
        "bias_std_max": stats.stds.max().item(),
        "bias_particles": n,
    }


def _sampler_groups(
    name: str, settings: Settings, models: dict[str, nn.Module]
) -> list[tuple[str, VESDE, list]]:
    """The rows of table 5 for one mixture, in groups of (score label, SDE, sampler rows)."""
    mixture = target(name)
    model = models[NETS[name]]
    exact_sde = settings.sde()
    net_sde = VESDE(settings.sigma_min, model.sigmas[0].item())
    exact_rows = [
        ("exact i.i.d. samples", None, 0),
        (
            f"exact samples of p_{settings.sigma_min:g}",
            _noisy_exact(mixture, settings.sigma_min),
            0,
        ),
    ]
    exact_score_rows = sampler_rows(
        mixture.score, exact_sde, settings.rho, EXACT_SIZES, settings.multistep_rho
    )
    groups = [
        ("exact i.i.d.", exact_sde, exact_rows),
        (
            f"exact score, sigma {settings.sigma_max:g} -> {settings.sigma_min:g}",
            exact_sde,
            exact_score_rows,
        ),
        (
            f"exact score, sigma {net_sde.sigma_max:g} -> {net_sde.sigma_min:g}",
            net_sde,
            sampler_rows(mixture.score, net_sde, 7.0, {"heun": (25,)}),
        ),
        (
            f"trained {NETS[name]}, sigma {net_sde.sigma_max:g} -> {net_sde.sigma_min:g}",
            net_sde,
            sampler_rows(model, net_sde, 7.0, NET_SIZES),
        ),
    ]
    if name in SDE_NETS:
        wide = models[SDE_NETS[name]]
        wide_sde = VESDE(settings.sigma_min, wide.sigmas[0].item())
        groups.append(
            (
                f"trained {SDE_NETS[name]}, sigma {wide_sde.sigma_max:g} -> {wide_sde.sigma_min:g}",
                wide_sde,
                sampler_rows(wide, wide_sde, settings.rho, NET_SIZES, settings.multistep_rho),
            )
        )
    return groups


def sde_sampler_table(
    models: dict[str, nn.Module],
    config: ReproduceConfig,
    refs: dict | None = None,
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 5: every continuous-time sampler, exact score (:data:`SETTINGS`) and trained
    networks, from the prior."""
    refs = refs or references(config)
    big = config.n_particles * BIAS_FACTOR
    rows = []
    for name, settings in SETTINGS.items():
        mixture = target(name)
        for score, sde, samplers in _sampler_groups(name, settings, models):
            for label, run, evaluations in samplers:
                between()
                numbers = measure(run, mixture, refs[name], config, prior_start(sde))
                rows.append(
                    {
                        "mixture": name,
                        "score": score,
                        "sampler": label,
                        "evaluations": evaluations,
                        "max_weight_error": max_weight_error(numbers["weights"], mixture),
                        **numbers,
                        **large_run(run, mixture, sde, big),
                    }
                )
    return rows


def spreads(r: dict) -> str:
    """A row's within-mode spreads over its seeds: mean smallest - mean largest."""
    smallest = sum(r["std_min"]) / len(r["std_min"])
    largest = sum(r["std_max"]) / len(r["std_max"])
    return f"{smallest:.3f}–{largest:.3f}"


def modes(name: str) -> str:
    """The table label of a mixture of this study."""
    return {"two_gaussians": "2 modes", "four_gaussians": "4 modes"}[name]


def format_sde_samplers(result: dict) -> str:
    """Table 5 of a ``reproduce`` result, as Markdown ("" if the result has none)."""
    if "sde_samplers" not in result:
        return ""
    sizes = result["config"]
    quick = quick_note(sizes)
    headers = [
        "mixture",
        "score",
        "sampler",
        "score evaluations",
        "mode weights",
        "max weight error",
        f"weight bias ({BIAS_FACTOR}x particles)",
        "within-mode std",
        f"within-mode std ({BIAS_FACTOR}x particles)",
        "energy distance to exact samples",
        "seconds",
    ]
    lines = []
    for r in result["sde_samplers"]:
        weights = torch.tensor(r["weights"])  # (seeds, K)
        per_mode = [mean_std(weights[:, k].tolist(), 3) for k in range(weights.shape[1])]
        lines.append(
            [
                modes(r["mixture"]),
                r["score"],
                r["sampler"],
                r["evaluations"],
                ", ".join(per_mode),
                f"{r['max_weight_error']:.4f}",
                f"{r['bias_max_weight_error']:.4f}",
                spreads(r),
                f"{r['bias_std_min']:.3f}–{r['bias_std_max']:.3f}",
                mean_std(r["distance"], 4),
                mean_std(r["seconds"], 2),
            ]
        )
    heading = f"### Continuous-time samplers, from the prior{quick}"
    caption = (
        f"Mode weights, energy distance and seconds: "
        f"{over_seeds(sizes['n_seeds'], sizes['n_particles'])}. Max weight error: of the mean "
        f"weights. Weight bias and the second within-mode std: one run on {BIAS_FACTOR}x the "
        "particles. Within-mode std: the smallest and the largest over modes and axes (the first "
        "averaged over the seeds)."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)
