"""The exact log-likelihood of a score model through the probability-flow ODE.

The instantaneous change of variables (Song et al. 2021, Eq. 39; Chen et al. 2018) along
dx/dsigma = -sigma s(x, sigma):

    d log p_sigma(x(sigma)) / dsigma = sigma div s(x(sigma), sigma),

integrated from sigma_min up to sigma_max, where the prior N(0, sigma_max^2 I) stands in for
p_{sigma_max}: on average the result is KL(p_{sigma_max} || prior) off.

References: Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021; R. T. Q. Chen et al.,
"Neural Ordinary Differential Equations", NeurIPS 2018; M. F. Hutchinson, 1989 (trace estimator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import _checks
from .sde import LIKELIHOOD_METHODS, VESDE, ScoreFn, enter_grid_step, sampling_grid, sde_run

__all__ = ["ode_log_likelihood"]


def ode_log_likelihood(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sde: VESDE,
    n_steps: int,
    *,
    method: str = "heun",
    hutchinson: bool = False,
    generator: torch.Generator | None = None,
    rho: float = 7.0,
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """log p_{sigma_min}(x), ``(n,)``, through the probability-flow ODE (Song et al. 2021, Eq. 39).

    Integrates dx/dsigma = -sigma s and d delta/dsigma = sigma div s(x, sigma) up from sigma_min
    to sigma_max on EDM's grid (Heun on every step, i.e. the trapezoid rule; or Euler) and
    returns ``prior(x(sigma_max)) - delta``; ``prior`` defaults to ``sde.prior_log_prob`` (pass
    the exact log p_{sigma_max} to take the prior's mismatch out). The divergence is exact
    (autograd, one backward pass per dimension) or, with ``hutchinson``, the unbiased
    v^T (ds/dx) v with a fresh Rademacher v per evaluation from ``generator``. ``score_fn`` must
    be differentiable in x.
    """
    heun = _checks.one_of(method, LIKELIHOOD_METHODS, "method") == "heun"
    hutchinson = _checks.flag(hutchinson, "hutchinson")
    sigmas = sampling_grid(sde, n_steps, "edm", rho)[::-1]  # increasing
    run = sde_run("ODE log-likelihood", score_fn, x, "x", sigmas, n_steps, None, False)
    # checked even when unused: a wrong argument is a mistake either way
    generator = _checks.default_generator(generator, run.x.device)
    if prior is not None and not callable(prior):
        raise TypeError(f"prior must be callable or None, got {type(prior).__name__}")

    def field(point: torch.Tensor, sigma: float, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(dx/dsigma, d delta/dsigma) = (-sigma s, sigma div s) at ``point``: (n, d), (n,)."""
        with torch.enable_grad():
            z = point.detach().requires_grad_(True)
            score = run.score(z, sigma, what)  # (n, d)
            if hutchinson:
                div = _hutchinson_divergence(score, z, generator)
            else:
                div = _exact_divergence(score, z)
        return -sigma * score.detach(), sigma * div.detach()

    y = run.x  # (n, d)
    delta = torch.zeros(len(y), dtype=y.dtype, device=y.device)  # (n,)
    with run:
        for i in range(n_steps):
            enter_grid_step(run, sigmas, i)
            h = sigmas[i + 1] - sigmas[i]
            dx, d_delta = field(y, sigmas[i], "the update")
            if heun:
                # the trapezoid rule: the mean of the slopes at both ends
                run.check(y + h * dx, "the Euler point")
                dx_next, d_delta_next = field(y + h * dx, sigmas[i + 1], "the Euler point")
                dx = (dx + dx_next) / 2
                d_delta = (d_delta + d_delta_next) / 2
            y = y + h * dx
            delta = delta + h * d_delta
            run.check(torch.cat([y, delta[:, None]], dim=1), "the update")
    log_prior = (sde.prior_log_prob if prior is None else prior)(y)  # (n,)
    log_prior = _checks.score_output(log_prior, delta, "prior").detach()
    # -inf is a log density (a point the prior cannot produce); NaN and +inf are not
    if bool(torch.isnan(log_prior).any()) or bool((log_prior == math.inf).any()):
        raise ValueError("prior returned NaN or +inf log densities at the ODE's endpoints")
    return log_prior - delta


def _exact_divergence(score: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """div s = sum_j ds_j/dz_j, ``(n,)``: one backward pass per dimension."""
    _require_graph(score)
    d = z.shape[1]
    return sum(
        torch.autograd.grad(score[:, j].sum(), z, retain_graph=j < d - 1)[0][:, j] for j in range(d)
    )


def _hutchinson_divergence(
    score: torch.Tensor, z: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """v^T (ds/dz) v with a Rademacher v, ``(n,)``: unbiased, E_v v^T J v = tr J (Hutchinson)."""
    _require_graph(score)
    v = torch.randint(0, 2, z.shape, generator=generator, device=z.device).to(z.dtype)
    v = v.mul_(2).sub_(1)  # (n, d), +-1
    return (torch.autograd.grad((score * v).sum(), z)[0] * v).sum(dim=1)


def _require_graph(score: torch.Tensor) -> None:
    if not score.requires_grad:
        raise ValueError(
            "ode_log_likelihood needs a score function differentiable in x through autograd"
        )
