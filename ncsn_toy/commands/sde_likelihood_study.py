"""Table 6 of ``reproduce``: the ODE log-likelihood against the exact log-density.

6. **ODE log-likelihood** (:func:`ncsn_toy.likelihood.ode_log_likelihood`) against
   ``log_prob(x, sigma_min)`` on x ~ p_sigma_min: mean signed and mean absolute gap (nats), with
   the prior and with the exact p_{sigma_max} in its place (the discretisation alone), against
   the number of steps, and -KL(p_{sigma_max} || prior), the prior's expected share of the gap.

References: Song et al., ICLR 2021 (Eq. 39, the instantaneous change of variables); Hutchinson,
1989 (the trace estimator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..likelihood import ode_log_likelihood
from ..mixtures import GaussianMixture
from ..sde import VESDE, score_evaluations
from ..targets import target
from .measure import QUICK, ReproduceConfig
from .report import markdown_table
from .sde_study import NETS, SDE_NETS, SETTINGS, modes

__all__ = ["likelihood_table", "format_likelihood"]


class _Case(NamedTuple):
    """One row of table 6: which score, on which SDE, with how many Heun steps."""

    label: str
    score: Callable
    sde: VESDE
    steps: int
    hutchinson: bool  # Hutchinson's trace estimate instead of the exact divergence


def _kl_to_prior(mixture: GaussianMixture, sde: VESDE, n: int) -> float:
    """KL(p_{sigma_max} || prior) by Monte Carlo with ``n`` draws of p_{sigma_max}."""
    g = torch.Generator().manual_seed(5)
    y = mixture.sample(n, generator=g).double()
    y = y + sde.sigma_max * torch.randn(y.shape, generator=g, dtype=y.dtype)
    return (mixture.log_prob(y, sde.sigma_max) - sde.prior_log_prob(y)).mean().item()


def _recording_prior(
    sde: VESDE, endpoints: list[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The SDE's prior log-density, keeping each point it is asked about in ``endpoints``."""

    def prior(y: torch.Tensor) -> torch.Tensor:
        endpoints.append(y)
        return sde.prior_log_prob(y)

    return prior


def _cases(
    name: str, models: dict[str, nn.Module], steps: tuple[int, ...], mixture: GaussianMixture
) -> list[_Case]:
    """The rows of table 6 for one mixture: the exact score at every number of steps, then the
    exact score with Hutchinson's estimator and on the network's SDE, and the trained networks."""
    settings = SETTINGS[name]
    model = models[NETS[name]]
    net_sde = VESDE(settings.sigma_min, model.sigmas[0].item())
    cases = [_Case("exact score", mixture.score, settings.sde(), k, False) for k in steps]
    cases += [
        _Case("exact score, Hutchinson", mixture.score, settings.sde(), steps[-2], True),
        _Case("exact score", mixture.score, net_sde, steps[-2], False),
        _Case(f"trained {NETS[name]}", model, net_sde, steps[-2], False),
    ]
    if name in SDE_NETS:
        wide = models[SDE_NETS[name]]
        wide_sde = VESDE(settings.sigma_min, wide.sigmas[0].item())
        cases.append(_Case(f"trained {SDE_NETS[name]}", wide, wide_sde, steps[-2], False))
    return cases


def likelihood_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 6: the ODE log-likelihood against log p_{sigma_min}(x), x ~ p_{sigma_min}."""
    n = min(config.n_particles, 2000)
    steps = (16, 64) if config.quick else (16, 32, 64, 128, 256)
    rows = []
    for name, settings in SETTINGS.items():
        mixture = target(name)
        g = torch.Generator().manual_seed(3)
        x = mixture.sample(n, generator=g)
        x = x + settings.sigma_min * torch.randn(n, mixture.dim, generator=g)
        exact = mixture.log_prob(x, settings.sigma_min)  # (n,)
        # (sigma_min, sigma_max) -> KL(p_{sigma_max} || prior): the same for every case on that SDE
        kl = {}
        for case in _cases(name, models, steps, mixture):
            sde = case.sde
            # the ODE's endpoint x(sigma_max): one integration serves both priors
            endpoints = []
            begin = time.perf_counter()
            ll = ode_log_likelihood(
                case.score,
                x,
                sde,
                case.steps,
                hutchinson=case.hutchinson,
                generator=torch.Generator().manual_seed(4),
                prior=_recording_prior(sde, endpoints),
            )
            seconds = time.perf_counter() - begin
            end = endpoints[0]
            # the same integration, with the exact p_{sigma_max} in place of the prior
            exact_prior = ll - sde.prior_log_prob(end) + mixture.log_prob(end, sde.sigma_max)
            key = (sde.sigma_min, sde.sigma_max)
            if key not in kl:
                kl[key] = _kl_to_prior(mixture, sde, 50 * n)
            rows.append(
                {
                    "mixture": name,
                    "score": case.label,
                    "sigma_max": sde.sigma_max,
                    "steps": case.steps,
                    "evaluations": score_evaluations("ode_log_likelihood", case.steps),
                    "hutchinson": case.hutchinson,
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


def format_likelihood(result: dict) -> str:
    """Table 6 of a ``reproduce`` result, as Markdown ("" if the result has none)."""
    if "sde_likelihood" not in result:
        return ""
    quick = QUICK if result.get("config", {}).get("quick") else ""
    headers = [
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
    ]
    lines = []
    for r in result["sde_likelihood"]:
        lines.append(
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
        )
    heading = f"### ODE log-likelihood against log p_sigma_min(x) (nats){quick}"
    return heading + "\n\n" + markdown_table(headers, lines)
