"""The exact log-likelihood of a score model through the probability-flow ODE.

The instantaneous change of variables (Song et al. 2021, Eq. 39; Chen et al. 2018) along
dx/dsigma = -sigma s(x, sigma):

    d log p_sigma(x(sigma)) / dsigma = sigma div s(x(sigma), sigma),

integrated from sigma_min up to sigma_max, where the prior N(0, sigma_max^2 I) stands in for
p_{sigma_max}: on average the result is KL(p_{sigma_max} || prior) off. A DDPM model's
likelihood is the same integral after the conversion to VE (:func:`vp_log_likelihood`).

References: Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021; R. T. Q. Chen et al.,
"Neural Ordinary Differential Equations", NeurIPS 2018; M. F. Hutchinson, 1989 (trace estimator).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from . import _checks
from .ddpm import DDPMSchedule, ve_score_fn
from .samplers import SamplerDivergedError, SamplerRun
from .sde import LIKELIHOOD_METHODS, VESDE, ScoreFn, enter_grid_step, sampling_grid, sde_run

__all__ = ["ode_log_likelihood", "vp_log_likelihood", "METHODS"]

# the fixed-grid solvers, and torchdiffeq's adaptive one
METHODS = (*LIKELIHOOD_METHODS, "dopri5")
# dopri5's steps before it gives up (a few hundred suffice at the default tolerances)
MAX_ADAPTIVE_STEPS = 10_000


def ode_log_likelihood(
    score_fn: ScoreFn,
    x: torch.Tensor,
    sde: VESDE,
    n_steps: int | None = None,
    *,
    method: str = "heun",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    hutchinson: bool = False,
    generator: torch.Generator | None = None,
    rho: float = 7.0,
    prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """log p_{sigma_min}(x), ``(n,)``, through the probability-flow ODE (Song et al. 2021, Eq. 39).

    Integrates dx/dsigma = -sigma s and d delta/dsigma = sigma div s(x, sigma) up from sigma_min
    to sigma_max and returns ``prior(x(sigma_max)) - delta``; ``prior`` defaults to
    ``sde.prior_log_prob`` (pass the exact log p_{sigma_max} to take the prior's mismatch out).

    ``method``: ``"heun"`` (the trapezoid rule on every step) or ``"euler"``, on ``n_steps``
    steps of EDM's grid; or ``"dopri5"``, torchdiffeq's adaptive Runge-Kutta of order 5(4) with
    tolerances ``rtol`` and ``atol``, in u = log sigma (dx/du = -sigma^2 s: in sigma itself the
    first steps overshoot below sigma_min), ``n_steps`` unused. The divergence is exact
    (autograd, one backward pass per dimension) or, with ``hutchinson``, the unbiased
    v^T (ds/dx) v with a fresh Rademacher v per evaluation from ``generator``. ``score_fn`` must
    be differentiable in x.
    """
    method = _checks.one_of(method, METHODS, "method")
    hutchinson = _checks.flag(hutchinson, "hutchinson")
    if method == "dopri5":
        rtol = _checks.positive_float(rtol, "rtol")
        atol = _checks.positive_float(atol, "atol")
        sigmas = sampling_grid(sde, 1, "geometric", rho)[::-1]  # increasing: the two ends
    elif n_steps is None:
        raise TypeError(f"method {method!r} integrates on a grid: give n_steps")
    else:
        sigmas = sampling_grid(sde, n_steps, "edm", rho)[::-1]  # increasing
    run = sde_run("ODE log-likelihood", score_fn, x, "x", sigmas, len(sigmas) - 1, None, False)
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
        if method == "dopri5":
            y, delta = _adaptive(run, field, y, delta, sigmas, rtol, atol)
        for i in range(len(sigmas) - 1 if method != "dopri5" else 0):
            enter_grid_step(run, sigmas, i)
            h = sigmas[i + 1] - sigmas[i]
            dx, d_delta = field(y, sigmas[i], "the update")
            if method == "heun":
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


def vp_log_likelihood(
    eps_fn: Callable[[torch.Tensor, float], torch.Tensor],
    x: torch.Tensor,
    schedule: DDPMSchedule,
    n_steps: int | None = None,
    *,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    hutchinson: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log p_0(x), ``(n,)``, of a DDPM model: the law of x_0 = sqrt(a_0) x + sqrt(1 - a_0) z.

    Through the conversion to VE: p_0(x) = p_{sigma_0}(x / sqrt(a_0)) / sqrt(a_0)^d, with the VE
    score of the noise predictor (:func:`~ncsn_toy.ddpm.ve_score_fn`) integrated by
    :func:`ode_log_likelihood` from sigma_0 to sigma_{T-1}, where DDPM's prior N(0, I) of
    x_{T-1} is N(0, I / a_{T-1}) for x / sqrt(a_{T-1}). ``eps_fn`` must accept fractional steps
    (an ``EpsilonNet`` or :func:`~ncsn_toy.ddpm.exact_eps` do). Options as for
    :func:`ode_log_likelihood`.
    """
    if not isinstance(schedule, DDPMSchedule):
        raise TypeError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
    x = _checks.points(x, None)
    d = x.shape[1]
    first_scale = schedule.scales[0].item()
    last_scale = schedule.scales[-1].item()
    sde = VESDE(schedule.sigmas[0].item(), schedule.sigmas[-1].item())

    def prior(x_bar: torch.Tensor) -> torch.Tensor:
        """log N(sqrt(a) x_bar; 0, I) + d log sqrt(a): DDPM's prior, in x_bar."""
        return VESDE(0.5, 1.0).prior_log_prob(last_scale * x_bar) + d * math.log(last_scale)

    log_p = ode_log_likelihood(
        ve_score_fn(eps_fn, schedule),
        x / first_scale,
        sde,
        n_steps,
        method=method,
        rtol=rtol,
        atol=atol,
        hutchinson=hutchinson,
        generator=generator,
        prior=prior,
    )
    return log_p - d * math.log(first_scale)


def _adaptive(
    run: SamplerRun,
    field: Callable[[torch.Tensor, float, str], tuple[torch.Tensor, torch.Tensor]],
    y: torch.Tensor,
    delta: torch.Tensor,
    sigmas: list[float],
    rtol: float,
    atol: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, delta) at sigma_max by dopri5 in u = log sigma: d/du = sigma d/dsigma."""
    import torchdiffeq

    evaluations = 0

    def derivative(u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple:
        nonlocal evaluations
        evaluations += 1
        sigma = math.exp(u.item())
        run.enter_level(evaluations - 1, f"evaluation {evaluations} (sigma={sigma:.4g})")
        run.check(state[0], "dopri5")
        dx, d_delta = field(state[0], sigma, "dopri5")
        return sigma * dx, sigma * d_delta

    ends = torch.tensor([math.log(sigmas[0]), math.log(sigmas[-1])], dtype=y.dtype)
    # step_t: the last step ends at sigma_max exactly (by default torchdiffeq steps past the
    # end and interpolates back, which would evaluate the score above sigma_max)
    # first_step: torchdiffeq's guess of the first step comes from a derivative at sigma_min
    # and, in float32, can ask for sigma ~ 1e16 and fail ("underflow in dt"); a hundredth of
    # the interval is a safe start, from which the steps adapt
    options = {
        "max_num_steps": MAX_ADAPTIVE_STEPS,
        "step_t": ends[-1:],
        "first_step": (ends[1] - ends[0]).item() / 100,
    }
    try:
        xs, deltas = torchdiffeq.odeint(
            derivative, (y, delta), ends, method="dopri5", rtol=rtol, atol=atol, options=options
        )
    except AssertionError as err:  # torchdiffeq's "underflow in dt", "max_num_steps exceeded"
        raise SamplerDivergedError(
            f"{run.where('dopri5')}: {err}; check the score function or loosen rtol and atol"
        ) from err
    run.check(torch.cat([xs[-1], deltas[-1][:, None]], dim=1), "dopri5")
    return xs[-1], deltas[-1]


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
