"""Table 6 of ``reproduce``: the ODE log-likelihood against the exact log-density.

6. **ODE log-likelihood** (:func:`ncsn_toy.likelihood.ode_log_likelihood`) against
   ``log_prob(x, sigma_min)`` on x ~ p_sigma_min: mean signed and mean absolute gap (nats), with
   the prior and with the exact p_{sigma_max} in its place (the discretisation alone), against
   the number of Heun steps and for torchdiffeq's adaptive dopri5 at a few tolerances, and
   -KL(p_{sigma_max} || prior), the prior's expected share of the gap. Score evaluations are
   counted by a counter around the score function (Heun: 2 a step; dopri5: as many as it asks).

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
from ..sde import VESDE
from ..targets import target
from .measure import ReproduceConfig, counted, quick_note
from .report import markdown_table
from .sde_study import NETS, SDE_NETS, SETTINGS, modes

__all__ = ["likelihood_table", "format_likelihood"]


# dopri5's rtol = atol in table 6 (quick: the middle one)
TOLERANCES = (1e-4, 1e-5, 1e-6)


class _Case(NamedTuple):
    """One row of table 6: which score, on which SDE, with which solver."""

    label: str
    score: Callable
    sde: VESDE
    steps: int | None  # Heun steps (None for dopri5)
    hutchinson: bool  # Hutchinson's trace estimate instead of the exact divergence
    method: str = "heun"  # "heun" on EDM's grid, or "dopri5" (adaptive)
    tolerance: float | None = None  # dopri5's rtol = atol


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
    name: str,
    models: dict[str, nn.Module],
    steps: tuple[int, ...],
    others: int,
    tolerances: tuple[float, ...],
    mixture: GaussianMixture,
) -> list[_Case]:
    """The rows of table 6 for one mixture: the exact score at every number of ``steps`` and
    with dopri5 at every tolerance, then with ``others`` steps: the exact score with
    Hutchinson's estimator and on the network's SDE, and the trained networks."""
    settings = SETTINGS[name]
    model = models[NETS[name]]
    net_sde = VESDE(settings.sigma_min, model.sigmas[0].item())
    sde = settings.sde()
    cases = [_Case("exact score", mixture.score, sde, k, False) for k in steps]
    cases += [
        _Case("exact score", mixture.score, sde, None, False, "dopri5", tolerance)
        for tolerance in tolerances
    ]
    cases += [
        _Case("exact score, Hutchinson", mixture.score, sde, others, True),
        _Case("exact score", mixture.score, net_sde, others, False),
        _Case(f"trained {NETS[name]}", model, net_sde, others, False),
    ]
    if name in SDE_NETS:
        wide = models[SDE_NETS[name]]
        wide_sde = VESDE(settings.sigma_min, wide.sigmas[0].item())
        cases.append(_Case(f"trained {SDE_NETS[name]}", wide, wide_sde, others, False))
    return cases


def likelihood_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 6: the ODE log-likelihood against log p_{sigma_min}(x), x ~ p_{sigma_min}."""
    n = min(config.n_particles, 2000)
    # Heun steps of the exact score (1024: the floor the prior leaves), and of the other rows
    steps = (16, 64) if config.quick else (16, 32, 64, 128, 256, 1024)
    others = 16 if config.quick else 128
    tolerances = TOLERANCES[1:2] if config.quick else TOLERANCES
    rows = []
    for name, settings in SETTINGS.items():
        mixture = target(name)
        g = torch.Generator().manual_seed(3)
        x = mixture.sample(n, generator=g)
        x = x + settings.sigma_min * torch.randn(n, mixture.dim, generator=g)
        exact = mixture.log_prob(x, settings.sigma_min)  # (n,)
        # (sigma_min, sigma_max) -> KL(p_{sigma_max} || prior): the same for every case on that SDE
        kl = {}
        for case in _cases(name, models, steps, others, tolerances, mixture):
            sde = case.sde
            # the ODE's endpoint x(sigma_max): one integration serves both priors
            endpoints = []
            calls = [0]
            begin = time.perf_counter()
            ll = ode_log_likelihood(
                counted(case.score, calls),
                x,
                sde,
                case.steps,
                method=case.method,
                rtol=case.tolerance or 1e-5,
                atol=case.tolerance or 1e-5,
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
                    "method": case.method,
                    "tolerance": case.tolerance,
                    "evaluations": calls[0],
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
    quick = quick_note(result.get("config", {}))
    headers = [
        "mixture",
        "score",
        "sigma_max",
        "solver",
        "score evaluations",
        "mean signed gap",
        r"mean \|gap\|",
        "mean signed gap, exact p_sigma_max",
        r"mean \|gap\|, exact p_sigma_max",
        r"-KL(p_sigma_max \|\| prior)",
        "seconds",
    ]
    lines = []
    for r in result["sde_likelihood"]:
        lines.append(
            [
                modes(r["mixture"]),
                r["score"],
                f"{r['sigma_max']:g}",
                _solver(r),
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


def _solver(row: dict) -> str:
    """A row's solver: ``"Heun, 128 steps"`` or ``"dopri5, rtol = atol = 1e-05"`` (a row
    without a method is from before dopri5 joined the table: Heun)."""
    if row.get("method", "heun") == "dopri5":
        return f"dopri5, rtol = atol = {row['tolerance']:g}"
    return f"Heun, {row['steps']} steps"
