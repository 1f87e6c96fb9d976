"""Tables of ``reproduce`` for the score SDEs (:mod:`ncsn_toy.sde`): samplers and likelihoods.

5. **Continuous-time samplers**: max weight error, energy distance, within-mode std, score evaluations
   and seconds for the reverse SDE, predictor-corrector and the probability-flow ODE (Euler, Heun,
   multistep), with the exact score and with the trained networks, from the prior; plus the weight
   error and the spreads measured once on 40x the particles (their bias, without most of the sampling
   noise: the 5-seed spreads average each run's extremes, which noise pushes outwards), and a scan of
   the ODE's settings (sigma_max, rho).
6. **ODE log-likelihood** against ``log_prob(x, sigma_min)``: mean signed and mean absolute gap (nats),
   with the prior and with the exact p_{sigma_max} in its place (the discretisation alone), against
   the number of steps, and -KL(p_{sigma_max} || prior), the prior's expected share.

Tables 7 and 8, the trained networks as score functions at any sigma, are in
:mod:`~ncsn_toy.commands.sde_network_study`.

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..likelihood import ode_log_likelihood
from ..metrics import mode_statistics
from ..mixtures import GaussianMixture
from ..recipes import RECIPES
from ..sde import (
    VESDE,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
    score_evaluations,
)
from ..targets import target
from .measure import QUICK, ReproduceConfig, max_weight_error, measure, references
from .report import markdown_table, mean_std

__all__ = [
    "Settings",
    "SETTINGS",
    "NETS",
    "SDE_NETS",
    "sde_sampler_table",
    "settings_scan",
    "likelihood_table",
    "format_sde_tables",
    "sampler_rows",
    "spreads",
    "modes",
]

NETS = {"two_gaussians": "ncsn_two_gaussians", "four_gaussians": "ncsn_four_gaussians"}
# trained up to the exact score's sigma_max, for these samplers (recipes.py); four modes meet the target without one
SDE_NETS = {"two_gaussians": "ncsn_sde_two_gaussians"}
BIAS_FACTOR = (
    40  # the bias column runs once on this many times config.n_particles (200,000 at full size)
)


@dataclass(frozen=True)
class Settings:
    """The VE SDE and grid used with the exact score, per mixture (chosen with :func:`settings_scan`)."""

    sigma_max: float  # the prior N(0, sigma_max^2 I); its mean 0 vs the data's: weights off by ~0.28 |E x| / sigma_max
    sigma_min: float  # where sampling ends: within-mode std sqrt(1 + sigma_min^2) = 1.02
    rho: float  # EDM's grid exponent for the probability flow with Heun
    multistep_rho: float = (
        7.0  # the same for the multistep solver: larger widens the modes (settings_scan)
    )

    def sde(self) -> VESDE:
        return VESDE(self.sigma_min, self.sigma_max)


# two modes, multistep rho 10: spreads 1.004-1.030 in the scan against p_0.2's 1.020 (rho 7: 0.985-1.006, 1-3% narrow);
# four modes keep 6.5 (0.982-1.004): a larger rho widens their widest mode beyond 1.05 on 5000 particles
SETTINGS = {
    "two_gaussians": Settings(800.0, 0.2, 6.0, 10.0),
    "four_gaussians": Settings(500.0, 0.2, 10.0, 6.5),
}
Run = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def sampler_rows(
    score: Callable, sde: VESDE, rho: float, sizes: dict, multistep_rho: float = 7.0
) -> list[tuple[str, Run, int]]:
    """(label, run, evaluations) for every sampler family at the budgets of ``sizes``."""
    rows = []
    for n in sizes.get("multistep", ()):
        rows.append(
            (
                f"probability flow, multistep (DPM-Solver++(2M)), {n} steps (EDM grid, rho={multistep_rho:g})",
                lambda x, g, n=n: probability_flow_sampling(
                    score, x, sde, n, "multistep", rho=multistep_rho
                ),
                score_evaluations("probability_flow", n, method="multistep"),
            )
        )
    for n in sizes.get("heun", ()):
        rows.append(
            (
                f"probability flow, Heun, {n} steps (EDM grid, rho={rho:g})",
                lambda x, g, n=n: probability_flow_sampling(score, x, sde, n, rho=rho),
                score_evaluations("probability_flow", n),
            )
        )
    for n in sizes.get("euler", ()):
        rows.append(
            (
                f"probability flow, Euler, {n} steps (EDM grid, rho={rho:g})",
                lambda x, g, n=n: probability_flow_sampling(score, x, sde, n, "euler", rho=rho),
                n,
            )
        )
    for n in sizes.get("sde", ()):
        rows.append(
            (
                f"reverse SDE, {n} steps (geometric grid)",
                lambda x, g, n=n: reverse_sde_sampling(score, x, sde, n, g),
                n,
            )
        )
    for n, snr, grid in sizes.get("pc", ()):
        rows.append(
            (
                f"predictor-corrector, {n} steps, 1 corrector, snr={snr:g} ({grid} grid)",
                lambda x, g, n=n, snr=snr, grid=grid: predictor_corrector_sampling(
                    score, x, sde, n, snr, 1, g, grid=grid
                ),
                2 * n,
            )
        )
    return rows


def _bias(run: Run | None, mixture: GaussianMixture, sde: VESDE, n: int) -> dict:
    """One run on ``n`` particles: weight error and spreads with little sampling noise."""
    g = torch.Generator().manual_seed(77)
    x = (
        mixture.sample(n, generator=g)
        if run is None
        else run(sde.prior_sample(n, mixture.dim, g), g)
    )
    stats = mode_statistics(mixture, x)
    return {
        "bias_max_weight_error": (stats.weights - mixture.weights).abs().max().item(),
        "bias_std_min": stats.stds.min().item(),
        "bias_std_max": stats.stds.max().item(),
        "bias_particles": n,
    }


def sde_sampler_table(
    models: dict[str, nn.Module],
    config: ReproduceConfig,
    refs: dict | None = None,
    between: Callable[[], object] = lambda: None,
) -> list[dict]:
    """Table 5: every continuous-time sampler, exact score (:data:`SETTINGS`) and trained networks."""
    refs = refs or references(config)
    big = config.n_particles * BIAS_FACTOR
    exact_sizes = {
        "multistep": (10, 20, 50),
        "heun": (5, 10, 25, 50),
        "euler": (10, 25, 100),
        "sde": (20, 50, 200),
        "pc": ((10, 0.16, "geometric"), (25, 0.16, "geometric"), (100, 0.16, "geometric")),
    }
    net_sizes = {
        "multistep": (20, 50),
        "heun": (10, 25),
        "sde": (50,),
        "pc": ((25, 0.16, "geometric"), (25, 0.3, "edm")),
    }
    rows = []
    for name, settings in SETTINGS.items():
        mixture, model = target(name), models[NETS[name]]
        net_sde = VESDE(settings.sigma_min, model.sigmas[0].item())
        noisy = lambda x, g, p=mixture, s=settings.sigma_min: (
            p.sample(len(x), generator=g) + s * torch.randn(x.shape, generator=g)
        )
        groups = [
            (
                "exact i.i.d.",
                settings.sde(),
                [
                    ("exact i.i.d. samples", None, 0),
                    (f"exact samples of p_{settings.sigma_min:g}", noisy, 0),
                ],
            ),
            (
                f"exact score, sigma {settings.sigma_max:g} -> {settings.sigma_min:g}",
                settings.sde(),
                sampler_rows(
                    mixture.score, settings.sde(), settings.rho, exact_sizes, settings.multistep_rho
                ),
            ),
            (
                f"exact score, sigma {net_sde.sigma_max:g} -> {net_sde.sigma_min:g}",
                net_sde,
                sampler_rows(mixture.score, net_sde, 7.0, {"heun": (25,)}),
            ),
            (
                f"trained {NETS[name]}, sigma {net_sde.sigma_max:g} -> {net_sde.sigma_min:g}",
                net_sde,
                sampler_rows(model, net_sde, 7.0, net_sizes),
            ),
        ]
        if name in SDE_NETS:
            wide = models[SDE_NETS[name]]
            wide_sde = VESDE(settings.sigma_min, wide.sigmas[0].item())
            groups.append(
                (
                    f"trained {SDE_NETS[name]}, sigma {wide_sde.sigma_max:g} -> {wide_sde.sigma_min:g}",
                    wide_sde,
                    sampler_rows(wide, wide_sde, settings.rho, net_sizes, settings.multistep_rho),
                )
            )
        for score, sde, samplers in groups:
            for label, run, evaluations in samplers:
                between()
                start = lambda m, n, g, sde=sde: sde.prior_sample(n, m.dim, g)
                numbers = measure(run, mixture, refs[name], config, start)
                rows.append(
                    {
                        "mixture": name,
                        "score": score,
                        "sampler": label,
                        "evaluations": evaluations,
                        "max_weight_error": max_weight_error(numbers["weights"], mixture),
                        **numbers,
                        **_bias(run, mixture, sde, big),
                    }
                )
    return rows


def settings_scan(config: ReproduceConfig) -> list[dict]:
    """Exact score, one large run each (seed 77, not the tables' seeds): weight bias and within-mode spreads
    of Heun with 10 steps (19 evaluations) against sigma_max and rho, and of the multistep solver with 20
    steps against rho at :data:`SETTINGS`' sigma_max, where a larger rho (more steps at small sigma)
    widens the modes: the two-mode rho is the one closest to p_sigma_min's sqrt(1 + sigma_min^2) = 1.020."""
    rows, big = [], config.n_particles * BIAS_FACTOR
    for name, settings in SETTINGS.items():
        mixture = target(name)
        for sigma_max in (RECIPES[NETS[name]].sigma_max, 100.0, 300.0, settings.sigma_max, 1200.0):
            sde = VESDE(settings.sigma_min, sigma_max)
            for rho in (5.0, 6.0, 7.0, 10.0, 13.0):
                run = lambda x, g, sde=sde, rho=rho, p=mixture: probability_flow_sampling(
                    p.score, x, sde, 10, rho=rho
                )
                rows.append(
                    {
                        "mixture": name,
                        "solver": "Heun, 10 steps",
                        "sigma_max": sigma_max,
                        "rho": rho,
                        **_bias(run, mixture, sde, big),
                    }
                )
        sde = settings.sde()
        for rho in (6.0, 6.5, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0):
            run = lambda x, g, sde=sde, rho=rho, p=mixture: probability_flow_sampling(
                p.score, x, sde, 20, "multistep", rho=rho
            )
            rows.append(
                {
                    "mixture": name,
                    "solver": "multistep, 20 steps",
                    "sigma_max": settings.sigma_max,
                    "rho": rho,
                    **_bias(run, mixture, sde, big),
                }
            )
    return rows


def _kl_to_prior(mixture: GaussianMixture, sde: VESDE, n: int) -> float:
    """KL(p_{sigma_max} || prior) by Monte Carlo with ``n`` draws of p_{sigma_max}."""
    g = torch.Generator().manual_seed(5)
    y = mixture.sample(n, generator=g).double()
    y = y + sde.sigma_max * torch.randn(y.shape, generator=g, dtype=y.dtype)
    return (mixture.log_prob(y, sde.sigma_max) - sde.prior_log_prob(y)).mean().item()


def likelihood_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 6: the ODE log-likelihood against log p_{sigma_min}(x), x ~ p_{sigma_min}."""
    n, rows = min(config.n_particles, 2000), []
    steps = (16, 32, 64, 128, 256) if not config.quick else (16, 64)
    for name, settings in SETTINGS.items():
        mixture, model = target(name), models[NETS[name]]
        g = torch.Generator().manual_seed(3)
        x = mixture.sample(n, generator=g) + settings.sigma_min * torch.randn(
            n, mixture.dim, generator=g
        )
        exact = mixture.log_prob(x, settings.sigma_min)
        net_sde = VESDE(settings.sigma_min, model.sigmas[0].item())
        cases = [("exact score", mixture.score, settings.sde(), k, False) for k in steps]
        cases += [
            ("exact score, Hutchinson", mixture.score, settings.sde(), steps[-2], True),
            ("exact score", mixture.score, net_sde, steps[-2], False),
            (f"trained {NETS[name]}", model, net_sde, steps[-2], False),
        ]
        if name in SDE_NETS:
            wide = models[SDE_NETS[name]]
            cases.append(
                (
                    f"trained {SDE_NETS[name]}",
                    wide,
                    VESDE(settings.sigma_min, wide.sigmas[0].item()),
                    steps[-2],
                    False,
                )
            )
        kl = {}  # (sigma_min, sigma_max) -> KL(p_{sigma_max} || prior): the same for every case on that SDE
        for label, score, sde, k, hutchinson in cases:
            end = []  # the ODE's endpoint x(sigma_max): one integration serves both priors
            begin = time.perf_counter()
            ll = ode_log_likelihood(
                score,
                x,
                sde,
                k,
                hutchinson=hutchinson,
                generator=torch.Generator().manual_seed(4),
                prior=lambda y, sde=sde, end=end: end.append(y) or sde.prior_log_prob(y),
            )
            seconds = time.perf_counter() - begin
            exact_prior = (
                ll - sde.prior_log_prob(end[0]) + mixture.log_prob(end[0], sde.sigma_max)
            )  # (n,)
            key = (sde.sigma_min, sde.sigma_max)
            if key not in kl:
                kl[key] = _kl_to_prior(mixture, sde, 50 * n)
            rows.append(
                {
                    "mixture": name,
                    "score": label,
                    "sigma_max": sde.sigma_max,
                    "steps": k,
                    "evaluations": score_evaluations("ode_log_likelihood", k),
                    "hutchinson": hutchinson,
                    "signed_gap": (ll - exact).mean().item(),
                    "absolute_gap": (ll - exact).abs().mean().item(),
                    "signed_gap_exact_prior": (exact_prior - exact).mean().item(),
                    "absolute_gap_exact_prior": (exact_prior - exact).abs().mean().item(),
                    "minus_kl": -kl[key],
                    "points": n,
                    "seconds": seconds,
                }
            )
    return rows


def spreads(r: dict) -> str:
    """A row's within-mode spreads over its seeds: mean smallest - mean largest."""
    return (
        f"{sum(r['std_min']) / len(r['std_min']):.3f}–{sum(r['std_max']) / len(r['std_max']):.3f}"
    )


def modes(name: str) -> str:
    """The table label of a mixture of this study."""
    return {"two_gaussians": "2 modes", "four_gaussians": "4 modes"}[name]


def format_sde_tables(result: dict) -> str:
    """Tables 5 and 6 of a ``reproduce`` result (the keys this module writes), as Markdown."""
    quick = QUICK if result.get("config", {}).get("quick") else ""
    parts = []
    if "sde_samplers" in result:
        parts.append(
            f"### Continuous-time samplers, from the prior{quick}\n\n"
            + markdown_table(
                [
                    "mixture",
                    "score",
                    "sampler",
                    "score evaluations",
                    "max weight error",
                    f"weight bias ({BIAS_FACTOR}x particles)",
                    "within-mode std",
                    f"within-mode std ({BIAS_FACTOR}x particles)",
                    "energy distance to exact samples",
                    "seconds",
                ],
                [
                    [
                        modes(r["mixture"]),
                        r["score"],
                        r["sampler"],
                        r["evaluations"],
                        f"{r['max_weight_error']:.4f}",
                        f"{r['bias_max_weight_error']:.4f}",
                        spreads(r),
                        f"{r['bias_std_min']:.3f}–{r['bias_std_max']:.3f}",
                        mean_std(r["distance"], 4),
                        mean_std(r["seconds"], 2),
                    ]
                    for r in result["sde_samplers"]
                ],
            )
        )
    if "sde_settings" in result:
        parts.append(
            f"### Probability flow, exact score: sigma_max and rho{quick}\n\n"
            + markdown_table(
                [
                    "mixture",
                    "solver",
                    "sigma_max",
                    "rho",
                    "max weight error (one large run)",
                    "within-mode std",
                ],
                [
                    [
                        modes(r["mixture"]),
                        r.get("solver", "Heun, 10 steps"),
                        f"{r['sigma_max']:g}",
                        f"{r['rho']:g}",
                        f"{r['bias_max_weight_error']:.4f}",
                        f"{r['bias_std_min']:.3f}–{r['bias_std_max']:.3f}",
                    ]
                    for r in result["sde_settings"]
                ],
            )
        )
    if "sde_likelihood" in result:
        parts.append(
            f"### ODE log-likelihood against log p_sigma_min(x) (nats){quick}\n\n"
            + markdown_table(
                [
                    "mixture",
                    "score",
                    "sigma_max",
                    "Heun steps",
                    "score evaluations",
                    "mean signed gap",
                    "mean |gap|",
                    "mean signed gap, exact p_sigma_max",
                    "mean |gap|, exact p_sigma_max",
                    "-KL(p_sigma_max || prior)",
                    "seconds",
                ],
                [
                    [
                        modes(r["mixture"]),
                        r["score"],
                        f"{r['sigma_max']:g}",
                        r["steps"],
                        r["evaluations"],
                        f"{r['signed_gap']:+.4f}",
                        f"{r['absolute_gap']:.4f}",
                        f"{r['signed_gap_exact_prior']:+.4f}",
                        f"{r['absolute_gap_exact_prior']:.4f}",
                        f"{r['minus_kl']:+.4f}",
                        f"{r['seconds']:.1f}",
                    ]
                    for r in result["sde_likelihood"]
                ],
            )
        )
    return "\n\n".join(parts) + "\n"
