"""Score-matching objectives: denoising, annealed denoising (NCSN), sliced, and DDPM's simple loss.

All three return a scalar tensor, differentiable in the network's parameters, estimated on a
batch ``x`` of shape ``(n, d)``.

References: Song & Ermon, NeurIPS 2019, Sec. 2.1 (Eqs. 2-3) and Sec. 4.2 (Eqs. 5-6);
Vincent, "A Connection Between Score Matching and Denoising Autoencoders", 2011;
Song, Garg, Shi & Ermon, "Sliced Score Matching", UAI 2019 (the variance-reduced form);
Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (Eq. 14).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import _checks
from .ddpm import DDPMSchedule

__all__ = ["dsm_loss", "anneal_dsm_loss", "sliced_score_matching_loss", "ddpm_loss"]


def dsm_loss(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Denoising score matching at one noise level (paper Eq. 2 with a Gaussian kernel).

        l(theta; sigma) = 0.5 * E_{x, z} || s_theta(x + sigma z) + z / sigma ||^2,   z ~ N(0, I)

    since grad log q_sigma(x~ | x) = -(x~ - x) / sigma^2 = -z / sigma. Its minimiser is the
    score of p_sigma = p * N(0, sigma^2 I).

    Args:
        score_fn: s_theta, ``(n, d) -> (n, d)``.
        x: ``(n, d)`` data batch.
        sigma: noise standard deviation, > 0.
        generator: for z; ``None`` uses a generator seeded with 0.
    """
    x = _checks.points(x, None)
    _checks.score_function(score_fn, with_sigma=False)
    sigma = _checks.sigma_for(_checks.positive_float(sigma, "sigma"), x.dtype)
    gen = _checks.default_generator(generator, x.device)
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)  # (n, d)
    score = _checks.score_output(score_fn(x + sigma * z), x)  # (n, d)
    return 0.5 * (score + z / sigma).square().sum(dim=1).mean()


def anneal_dsm_loss(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The NCSN objective (paper Eqs. 5-6) with lambda(sigma) = sigma^2.

        L(theta) = 1/L sum_i sigma_i^2 l(theta; sigma_i)
                 = 0.5 * E_{i, x, z} || sigma_i s_theta(x + sigma_i z, sigma_i) + z ||^2

    estimated with one level i drawn uniformly per sample.

    Args:
        model: s_theta(x, sigma), called with ``x`` ``(n, d)`` and ``sigma`` ``(n,)``.
        x: ``(n, d)`` data batch.
        sigmas: ``(L,)`` noise levels, positive and strictly decreasing.
        generator: for the levels and z; ``None`` uses a generator seeded with 0.
    """
    x = _checks.points(x, None)
    _checks.score_function(model, with_sigma=True, name="model")
    sigmas = _checks.sigma_levels(sigmas)
    for sigma in (sigmas[0].item(), sigmas[-1].item()):
        _checks.sigma_for(sigma, x.dtype, "sigmas")
    sigmas = sigmas.to(device=x.device, dtype=x.dtype)
    gen = _checks.default_generator(generator, x.device)
    return _anneal_dsm_loss(model, x, sigmas, gen)


def _anneal_dsm_loss(
    model: Callable,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    gen: torch.Generator,
    *,
    log_uniform: bool = False,
) -> torch.Tensor:
    """:func:`anneal_dsm_loss` on inputs already checked (the training loop checks them once).

    ``log_uniform``: sigma drawn continuously, log-uniform on [sigmas[-1], sigmas[0]] (the VE SDE's
    t ~ U(0, 1), Song et al. 2021), instead of one of the levels.
    """
    if log_uniform:
        t = torch.rand(x.shape[0], generator=gen, dtype=x.dtype, device=x.device)  # (n,)
        used = sigmas[-1] * (sigmas[0] / sigmas[-1]) ** t  # (n,)
    else:
        levels = torch.randint(len(sigmas), (x.shape[0],), generator=gen, device=x.device)  # (n,)
        used = sigmas[levels]  # (n,)
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)  # (n, d)
    score = _checks.score_output(model(x + used[:, None] * z, used), x)  # (n, d)
    return 0.5 * (used[:, None] * score + z).square().sum(dim=1).mean()


def ddpm_loss(
    eps_model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    schedule: DDPMSchedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ho et al.'s "simple" objective, halved: 0.5 E_{t, x, z} || eps(x_t, t) - z ||^2.

    x_t = sqrt(a_t) x + sqrt(1 - a_t) z with t uniform on 0..T-1 (Ho et al. 2020, Eq. 14). It
    is the NCSN objective in other words: with std_t = sqrt(1 - a_t) and the score the network
    implies, s(x_t) = -eps(x_t, t) / std_t,

        0.5 || eps(x_t, t) - z ||^2 = 0.5 || -std_t s(x_t) - z ||^2
                                    = std_t^2 * 0.5 || s(x_t) + z / std_t ||^2,

    denoising score matching at noise std_t (target -z / std_t, the score of q(x_t | x) up to
    the scale) weighted by lambda = std_t^2: :func:`anneal_dsm_loss` with sigma -> std_t.

    Args:
        eps_model: eps_theta(x_t, t), called with ``(n, d)`` points and ``(n,)`` integer steps.
        x: ``(n, d)`` data batch.
        schedule: a :class:`~ncsn_toy.ddpm.DDPMSchedule`.
        generator: for t and z; ``None`` uses a generator seeded with 0.
    """
    if not isinstance(schedule, DDPMSchedule):
        raise TypeError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")
    x = _checks.points(x, None)
    if not callable(eps_model):
        raise TypeError(f"eps_model must be callable, got {type(eps_model).__name__}")
    gen = _checks.default_generator(generator, x.device)
    return _ddpm_loss(eps_model, x, schedule, gen)


def _ddpm_loss(
    eps_model: Callable, x: torch.Tensor, schedule: DDPMSchedule, gen: torch.Generator
) -> torch.Tensor:
    """:func:`ddpm_loss` on inputs already checked (the training loop checks them once)."""
    t = torch.randint(schedule.n_steps, (x.shape[0],), generator=gen, device=x.device)  # (n,)
    scale = schedule.scales.to(device=x.device, dtype=x.dtype)[t, None]  # (n, 1)
    std = schedule.stds.to(device=x.device, dtype=x.dtype)[t, None]  # (n, 1)
    z = torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)  # (n, d)
    eps = _checks.score_output(eps_model(scale * x + std * z, t), x)  # (n, d)
    return 0.5 * (eps - z).square().sum(dim=1).mean()


def sliced_score_matching_loss(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n_projections: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sliced score matching, variance-reduced (paper Eq. 3; Song et al. 2019, SSM-VR).

        J(theta) = E_{x, v} [ v^T (grad_x s_theta(x)) v + 0.5 || s_theta(x) ||^2 ],  v ~ N(0, I)

    equal, up to a constant, to 0.5 E || s_theta(x) - grad log p(x) ||^2. The second term is
    the closed-form expectation over v of 0.5 (v^T s)^2 (the "variance reduction"). The
    Jacobian-vector term uses one extra backward pass (a Hessian-vector product), with
    ``create_graph=True`` so the loss can be back-propagated into the network.

    Args:
        score_fn: s_theta, ``(n, d) -> (n, d)``, differentiable in its input.
        x: ``(n, d)`` data batch.
        n_projections: number of random directions v per data point.
        generator: for v; ``None`` uses a generator seeded with 0.
    """
    x = _checks.points(x, None)
    _checks.score_function(score_fn, with_sigma=False)
    n_projections = _checks.positive_int(n_projections, "n_projections")
    gen = _checks.default_generator(generator, x.device)
    with torch.enable_grad():  # works inside no_grad() too, e.g. for evaluation
        xs = x.detach().repeat(n_projections, 1).requires_grad_(True)  # (P n, d)
        v = torch.randn(xs.shape, generator=gen, dtype=x.dtype, device=x.device)  # (P n, d)
        score = _checks.score_output(score_fn(xs), xs)  # (P n, d)
        if not score.requires_grad:
            raise ValueError(
                "sliced_score_matching_loss needs a score function that is differentiable in its "
                "input (its output does not depend on x through autograd)"
            )
        (jvp,) = torch.autograd.grad((score * v).sum(), xs, create_graph=True, allow_unused=True)
        trace_term = (jvp * v).sum(dim=1) if jvp is not None else torch.zeros_like(v[:, 0])
        return (trace_term + 0.5 * score.square().sum(dim=1)).mean()
