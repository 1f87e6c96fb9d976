"""Tables 13 and 14 of ``reproduce``: the trained noise predictor as a score, and its likelihood.

13. **The noise predictor as a score**: relative score error of the trained ``EpsilonNet``
    read as a VE score (:func:`~ncsn_toy.ddpm.ve_score_fn`) at sigmas over its schedule's
    range, sigma_0 = 0.01 to sigma_{T-1} = 157 (the same measure as table 2), beside the size
    of the noise it predicts, E||eps*||^2, and its absolute error there,
    E||eps_theta - eps*||^2: what Ho et al.'s loss sees beyond its minimum.
14. **DDPM's likelihood through the VE conversion**
    (:func:`~ncsn_toy.likelihood.vp_log_likelihood`, dopri5) against the exact log p_0 of
    DDPM's x_0, with the exact noise predictor and the trained one; score evaluations counted
    by a counter around the noise predictor.

References: Ho et al., NeurIPS 2020; Song et al., ICLR 2021 (Eq. 39).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ..ddpm import DDPMSchedule, exact_eps, ve_score_fn
from ..likelihood import vp_log_likelihood
from ..targets import target
from .ddpm_study import MIXTURE, NET
from .measure import ReproduceConfig, counted, quick_note, score_error_at
from .report import markdown_table

__all__ = [
    "SCORE_SIGMAS",
    "TOLERANCE",
    "ddpm_score_error_table",
    "ddpm_likelihood_table",
    "format_ddpm_networks",
]

# VE noise levels of table 13, between the schedule's sigma_0 and sigma_{T-1} (added to them)
SCORE_SIGMAS = (0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
# dopri5's rtol = atol in table 14
TOLERANCE = 1e-5


def _eps_error(
    model: nn.Module, schedule: DDPMSchedule, sigma: float, n: int
) -> tuple[float, float]:
    """(E||eps*||^2, E||eps_theta - eps*||^2) at VE level ``sigma``, over ``n`` draws of
    x_bar ~ p_sigma: x = sqrt(a) x_bar is DDPM's x_t, eps* = -sigma grad log p_sigma(x_bar)."""
    mixture = target(MIXTURE)
    g = torch.Generator().manual_seed(8)
    x_bar = mixture.sample(n, generator=g)
    x_bar = x_bar + sigma * torch.randn(x_bar.shape, generator=g)  # (n, d)
    scale = 1 / math.sqrt(1 + sigma**2)
    exact = -sigma * mixture.score(x_bar, sigma)  # (n, d)
    with torch.no_grad():
        predicted = model(scale * x_bar, schedule.timestep(sigma))  # (n, d)
    size = exact.square().sum(dim=1).mean().item()
    error = (predicted - exact).square().sum(dim=1).mean().item()
    return size, error


def ddpm_score_error_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 13: the trained noise predictor's relative error as a VE score, per sigma."""
    model = models[NET]
    mixture = target(MIXTURE)
    schedule = DDPMSchedule.linear(model.n_steps)
    first = schedule.sigmas[0].item()
    last = schedule.sigmas[-1].item()
    score = ve_score_fn(model, schedule)
    rows = []
    for sigma in (first, *SCORE_SIGMAS, last):
        err = score_error_at(score, mixture, sigma, config)
        size, error = _eps_error(model, schedule, sigma, config.n_score_points)
        rows.append(
            {
                "model": NET,
                "sigma": sigma,
                "step": schedule.timestep(sigma),
                "eps_size": size,
                "eps_error": error,
                **err._asdict(),
            }
        )
    return rows


def ddpm_likelihood_table(models: dict[str, nn.Module], config: ReproduceConfig) -> list[dict]:
    """Table 14: log p_0 of DDPM's x_0 through the VE probability flow (dopri5), against the
    exact one, on x ~ p_0."""
    model = models[NET]
    schedule = DDPMSchedule.linear(model.n_steps)
    n = min(config.n_particles, 2000)
    first_scale = schedule.scales[0].item()
    first_std = schedule.stds[0].item()
    last_scale = schedule.scales[-1].item()
    last_std = schedule.stds[-1].item()
    # the exact noise predictor in float64, the reference; the network in its own float32
    # (float32 runs too since dopri5's first step is set: 0.0209 nats against 0.0219, 200 points)
    cases = [
        ("exact eps", exact_eps(target(MIXTURE, dtype=torch.float64), schedule), torch.float64),
        (f"trained {NET}", model, torch.float32),
    ]
    rows = []
    for label, eps_fn, dtype in cases:
        mixture = target(MIXTURE, dtype=dtype)
        noised = mixture.perturb(first_scale, first_std)  # the law of DDPM's x_0
        x = noised.sample(n, generator=torch.Generator().manual_seed(3))
        exact = noised.log_prob(x)  # (n,)
        calls = [0]
        begin = time.perf_counter()
        log_p = vp_log_likelihood(
            counted(eps_fn, calls), x, schedule, rtol=TOLERANCE, atol=TOLERANCE
        )
        seconds = time.perf_counter() - begin
        # KL(p_{T-1} || N(0, I)) by Monte Carlo: the prior's expected share of the gap
        last = mixture.perturb(last_scale, last_std)
        y = last.sample(50 * n, generator=torch.Generator().manual_seed(5))
        prior = -0.5 * y.square().sum(dim=1) - 0.5 * y.shape[1] * math.log(2 * math.pi)
        kl = (last.log_prob(y) - prior).mean().item()
        rows.append(
            {
                "score": label,
                "dtype": str(dtype).removeprefix("torch."),
                "tolerance": TOLERANCE,
                "evaluations": calls[0],
                "signed_gap": (log_p - exact).mean().item(),
                "absolute_gap": (log_p - exact).abs().mean().item(),
                "minus_kl": -kl,
                "points": n,
                "seconds": seconds,
            }
        )
    return rows


def _format_score_errors(rows: list[dict], quick: str, points: int) -> str:
    headers = [
        "sigma",
        "step t",
        "E‖ε*‖²",
        "E‖ε_θ − ε*‖²",
        "relative score error, under the data",
        "high density",
        "low density",
    ]
    lines = [
        [
            f"{r['sigma']:.3g}",
            f"{r['step']:.1f}",
            f"{r['eps_size']:.3g}",
            f"{r['eps_error']:.3g}",
            f"{r['overall']:.3g}",
            f"{r['high_density']:.3g}",
            f"{r['low_density']:.3g}",
        ]
        for r in rows
    ]
    heading = f"### The trained noise predictor as a score, over its noise range{quick}"
    caption = (
        f"{rows[0]['model']} read as the VE score s(x_bar, sigma) = -eps_theta(sqrt(a) x_bar, "
        "t) / sigma, at the (fractional) step t of each sigma. Relative score error as in the "
        f"score error table ({points} points each). E‖ε*‖² is the size of the noise it "
        "predicts, sigma^2 E‖grad log p_sigma‖², and E‖ε_θ − ε*‖² its error there "
        "(their ratio is the relative error; other draws of the same size)."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)


def _format_likelihood(rows: list[dict], quick: str) -> str:
    headers = [
        "noise predictor",
        "dtype",
        "solver",
        "score evaluations",
        "mean signed gap",
        r"mean \|gap\|",
        r"-KL(p_T \|\| N(0, I))",
        "seconds",
    ]
    lines = [
        [
            r["score"],
            r["dtype"],
            f"dopri5, rtol = atol = {r['tolerance']:g}",
            r["evaluations"],
            f"{r['signed_gap']:+.4f}",
            f"{r['absolute_gap']:.4f}",
            f"{r['minus_kl']:+.4f}",
            f"{r['seconds']:.1f}",
        ]
        for r in rows
    ]
    heading = f"### DDPM's log-likelihood through the VE probability flow (nats){quick}"
    caption = (
        f"vp_log_likelihood on {rows[0]['points']} draws of DDPM's x_0 (the data noised to "
        "t = 0), against its exact log density: the ODE of x / sqrt(a) from sigma_0 to "
        "sigma_{T-1}, DDPM's prior N(0, I) at the end."
    )
    return heading + "\n\n" + caption + "\n\n" + markdown_table(headers, lines)


def format_ddpm_networks(result: dict) -> str:
    """Tables 13 and 14 of a ``reproduce`` result, as Markdown ("" if the result has none)."""
    quick = quick_note(result.get("config", {}))
    parts = []
    if "ddpm_score_error" in result:
        points = result["config"]["n_score_points"]
        parts.append(_format_score_errors(result["ddpm_score_error"], quick, points))
    if "ddpm_likelihood" in result:
        parts.append(_format_likelihood(result["ddpm_likelihood"], quick))
    return "\n\n".join(parts)
