"""DDPM and DDIM: the variance-preserving noising, its samplers, and why they are NCSN's too.

DDPM (Ho et al. 2020) noises the data as x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) z, a_t = alpha_bar_t
= prod_{s <= t} (1 - beta_s), and trains a noise predictor eps(x_t, t). Two facts make it NCSN
in other coordinates (Song et al. 2021; Karras et al. 2022, EDM):

- eps predicts -sqrt(1 - a_t) times the score of the noised data:
  eps(x, t) = -sqrt(1 - a_t) grad log p_t(x), so both learn the same thing;
- divided by sqrt(a_t), x_t / sqrt(a_t) = x_0 + sigma_t z is the VE noising at
  sigma_t = sqrt(1 - a_t) / sqrt(a_t), so every sampler of one is a sampler of the other. DDIM
  with eta = 0 is exactly Euler's method on the VE probability-flow ODE in that sigma.

This module holds the discrete schedule (:class:`DDPMSchedule`), its continuous limit
(:class:`VPSDE`), the conversions between eps, score and denoiser (:func:`score_from_eps`,
:func:`eps_from_score`, :func:`denoised_from_eps`, :func:`ve_score_fn`), the exact eps of a
mixture (:func:`exact_eps`), and the two samplers, :func:`ddpm_sampling` (Ho et al.,
Algorithm 2) and :func:`ddim_sampling` (Song, Meng & Ermon, Eq. 12). Steps are counted as in
the DDPM paper and diffusers: t = 0..T-1, x_T ~ N(0, I) sits at t = T - 1.

References: J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020;
J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021; Y. Song et al.,
"Score-Based Generative Modeling through Stochastic Differential Equations", ICLR 2021;
T. Karras et al., "Elucidating the Design Space of Diffusion-Based Generative Models", 2022.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import _checks
from .mixtures import GaussianMixture, check_mixture
from .noise_levels import DDPM_BETA_END, DDPM_BETA_START, linear_betas
from .samplers import SamplerRun, Trajectory
from .sde import VESDE

__all__ = [
    "VPSDE",
    "DDPMSchedule",
    "ddpm_sampling",
    "ddim_sampling",
    "exact_eps",
    "score_from_eps",
    "eps_from_score",
    "denoised_from_eps",
    "ve_score_fn",
    "ddim_timesteps",
]

EpsFn = Callable[[torch.Tensor, int], torch.Tensor]
HINT = "check the noise predictor"


@dataclass(frozen=True)
class VPSDE:
    """The VP SDE dx = -beta(t)/2 x dt + sqrt(beta(t)) dw, beta(t) linear on t in (0, 1].

    Song et al. 2021, Eq. 11: the continuous limit of DDPM, beta(t) = beta_min + t (beta_max -
    beta_min) (DDPM's beta_i = beta(i / T) / T). Its marginal is x_t = scale(t) x_0 + std(t) z
    with scale^2 + std^2 = 1: the variance is preserved and the prior is N(0, I).
    """

    beta_min: float = 0.1  # beta(0)
    beta_max: float = 20.0  # beta(1); DDPM's 0.02 per step over 1000 steps

    def __post_init__(self) -> None:
        low = _checks.positive_float(self.beta_min, "beta_min")
        high = _checks.positive_float(self.beta_max, "beta_max")
        if high < low or high > 1e6:
            raise ValueError(f"beta_max must be in [beta_min, 1e6], got {high} (beta_min={low})")
        object.__setattr__(self, "beta_min", low)
        object.__setattr__(self, "beta_max", high)

    def beta(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """beta(t) = beta_min + t (beta_max - beta_min)."""
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def marginal(self, t: float | torch.Tensor) -> tuple[float | torch.Tensor, ...]:
        """(scale, std) of x_t = scale x_0 + std z, for t in [0, 1].

        log scale = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2 (the integral of -beta / 2);
        std = sqrt(1 - scale^2), computed as sqrt(-expm1(2 log scale)): exact at small t.
        """
        log_scale = -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
        if isinstance(t, torch.Tensor):
            return torch.exp(log_scale), torch.sqrt(-torch.expm1(2 * log_scale))
        return math.exp(log_scale), math.sqrt(-math.expm1(2 * log_scale))

    def sigma(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """The VE noise level of x_t / scale(t): std(t) / scale(t)."""
        scale, std = self.marginal(t)
        return std / scale

    def prior_sample(
        self,
        n: int,
        d: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``(n, d)`` draws of the prior N(0, I)."""
        return VESDE(0.5, 1.0).prior_sample(n, d, generator, dtype=dtype)


class DDPMSchedule:
    """DDPM's discrete noising: betas beta_t, t = 0..T-1, and what follows from them.

    ``alphas_cumprod[t]`` is a_t = prod_{s <= t} (1 - beta_s); x_t = sqrt(a_t) x_0 +
    sqrt(1 - a_t) z. Kept in float64. Also, per step: ``scales`` sqrt(a_t), ``stds``
    sqrt(1 - a_t) and ``sigmas`` sqrt(1 - a_t) / sqrt(a_t), the VE noise level of x_t / sqrt(a_t)
    (increasing with t).

    Args:
        betas: ``(T,)`` noise variances per step, each in (0, 1).
    """

    def __init__(self, betas: object) -> None:
        betas = _checks.as_tensor(betas, "betas", torch.float64).cpu()
        if betas.dim() != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D sequence, got {tuple(betas.shape)}")
        _checks.finite(betas, "betas")
        if bool((betas <= 0).any()) or bool((betas >= 1).any()):
            raise ValueError("betas must all be in (0, 1)")
        self.betas = betas  # (T,)
        self.alphas = 1 - betas  # (T,)
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # (T,)
        if not bool((self.alphas_cumprod > 0).all()):
            raise ValueError("alphas_cumprod underflows to 0: use fewer steps or smaller betas")
        self.scales = self.alphas_cumprod.sqrt()  # (T,)
        self.stds = (1 - self.alphas_cumprod).sqrt()  # (T,)
        self.sigmas = self.stds / self.scales  # (T,)

    @classmethod
    def linear(
        cls,
        n_steps: int = 1000,
        beta_start: float = DDPM_BETA_START,
        beta_end: float = DDPM_BETA_END,
    ) -> DDPMSchedule:
        """Ho et al.'s schedule: betas linear from beta_start to beta_end over n_steps steps."""
        return cls(linear_betas(n_steps, beta_start, beta_end))

    @property
    def n_steps(self) -> int:
        """T, the number of steps."""
        return len(self.betas)

    def step(self, t: object) -> int:
        """``t`` checked to be an integer step index in 0..T-1."""
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"t must be an integer step index, got {type(t).__name__} {t!r}")
        if not 0 <= t < self.n_steps:
            raise ValueError(f"t must be in 0..{self.n_steps - 1}, got {t}")
        return int(t)

    def timestep(self, sigma: float) -> float:
        """The (fractional) step at which the VE noise level is ``sigma``: log sigma_t is
        interpolated linearly between steps; clamped to [0, T - 1]."""
        sigma = _checks.positive_float(sigma, "sigma")
        log_sigmas = self.sigmas.log()
        position = torch.searchsorted(
            log_sigmas, torch.tensor([math.log(sigma)], dtype=torch.float64)
        )
        right = int(position.clamp(1, self.n_steps - 1))
        low = log_sigmas[right - 1].item()
        high = log_sigmas[right].item()
        fraction = (math.log(sigma) - low) / (high - low)
        return min(max(right - 1 + fraction, 0.0), self.n_steps - 1.0)

    def to_dict(self) -> dict:
        """The betas, e.g. for a checkpoint's metadata."""
        return {"betas": self.betas.tolist()}


def score_from_eps(eps: torch.Tensor, std: float) -> torch.Tensor:
    """grad log p_t = -eps / std, with std = sqrt(1 - a_t): what a noise predictor says."""
    return -eps / std


def eps_from_score(score: torch.Tensor, std: float) -> torch.Tensor:
    """eps = -std grad log p_t: the noise a score implies (Ho et al.'s target is this)."""
    return -std * score


def denoised_from_eps(x: torch.Tensor, eps: torch.Tensor, scale: float, std: float) -> torch.Tensor:
    """Tweedie's E[x_0 | x_t] = (x_t - std eps) / scale: the posterior mean of the clean point."""
    return (x - std * eps) / scale


def exact_eps(mixture: GaussianMixture, schedule: DDPMSchedule) -> EpsFn:
    """The exact noise predictor of ``mixture`` under ``schedule``: eps(x, t) = -sqrt(1 - a_t)
    grad log p_t(x), where p_t is the law of sqrt(a_t) X + sqrt(1 - a_t) Z
    (:meth:`GaussianMixture.perturb`). ``t`` an integer step, or a fractional one (a_t then from
    the VE sigma interpolated in log between steps)."""
    check_mixture(mixture)
    noised: dict[int, GaussianMixture] = {}  # the noised mixtures of the integer steps

    def eps(x: torch.Tensor, t: float) -> torch.Tensor:
        if isinstance(t, numbers.Integral) and not isinstance(t, bool):
            t = schedule.step(t)
            if t not in noised:
                noised[t] = mixture.perturb(schedule.scales[t].item(), schedule.stds[t].item())
            return -schedule.stds[t].item() * noised[t].score(x)
        sigma = _sigma_at(schedule, _checks.real_number(t, "t"))
        scale = 1 / math.sqrt(1 + sigma**2)
        return -sigma * scale * mixture.perturb(scale, sigma * scale).score(x)

    return eps


def ve_score_fn(
    eps_fn: EpsFn, schedule: DDPMSchedule
) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """A noise predictor as a VE score function s(x_bar, sigma) of x_bar = x / sqrt(a).

    At VE level sigma, a = 1 / (1 + sigma^2) and the step is :meth:`DDPMSchedule.timestep`;
    s(x_bar, sigma) = -eps(sqrt(a) x_bar, t) / sigma. Every VE sampler and
    :func:`~ncsn_toy.likelihood.ode_log_likelihood` then runs on a DDPM model (``eps_fn`` must
    accept a fractional step).
    """

    def score(x_bar: torch.Tensor, sigma: float) -> torch.Tensor:
        scale = 1 / math.sqrt(1 + sigma**2)
        return -eps_fn(scale * x_bar, schedule.timestep(sigma)) / sigma

    return score


def ddim_timesteps(schedule: DDPMSchedule, n_steps: int) -> list[int]:
    """``n_steps`` steps evenly spaced over T - 1 down to 0 (rounded), the last at t = 0."""
    n_steps = _checks.positive_int(n_steps, "n_steps")
    last = schedule.n_steps - 1
    if n_steps > schedule.n_steps:
        raise ValueError(
            f"n_steps must be at most the schedule's {schedule.n_steps}, got {n_steps}"
        )
    if n_steps == 1:
        return [last]
    return [round(last * (n_steps - 1 - i) / (n_steps - 1)) for i in range(n_steps)]


def ddpm_sampling(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    schedule: DDPMSchedule,
    generator: torch.Generator | None = None,
    *,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """Ancestral sampling, Ho et al. 2020, Algorithm 2 (sigma_t^2 = beta_t).

    For t = T-1, ..., 0: x <- (x - beta_t / sqrt(1 - a_t) eps(x, t)) / sqrt(1 - beta_t), plus
    sqrt(beta_t) z for t > 0. To first order in beta_t this is Euler-Maruyama on the reverse
    VP SDE, x <- x + beta_t (x / 2 + grad log p_t) + sqrt(beta_t) z.

    Args:
        eps_fn: ``(x (n, d), t: int) -> (n, d)``, e.g. :func:`exact_eps` or an ``EpsilonNet``.
        x_T: ``(n, d)`` draws of N(0, I) (not modified).
        schedule: the :class:`DDPMSchedule`; T evaluations of ``eps_fn``.
        generator, record, progress: as for the Langevin samplers (``levels`` are the steps t).
    """
    _check_schedule(schedule)
    n = schedule.n_steps
    run = _ddpm_run("DDPM", eps_fn, x_T, n, record, progress)
    generator = _checks.default_generator(generator, run.x.device)
    x = run.x  # (n, d), a private copy of x_T
    noise = torch.empty_like(x)  # (n, d), refilled in place at every step
    with run:
        for t in reversed(range(n)):
            run.enter_level(t, f"step t={t} ({n - t}/{n})")
            beta = schedule.betas[t].item()
            eps = run.score(x, t, "the update")
            x.sub_(eps, alpha=beta / schedule.stds[t].item()).div_(math.sqrt(1 - beta))
            if t > 0:
                torch.randn(x.shape, generator=generator, out=noise)
                x.add_(noise, alpha=math.sqrt(beta))
            run.step("the update")
    return run.result()


def ddim_sampling(
    eps_fn: EpsFn,
    x_T: torch.Tensor,
    schedule: DDPMSchedule,
    n_steps: int,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    *,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """DDIM, Song, Meng & Ermon 2021, Eq. 12, on ``n_steps`` steps of the schedule.

    Over :func:`ddim_timesteps` t > s (and s = -1, a_{-1} = 1, after the last):
    x0 = (x - sqrt(1 - a_t) eps) / sqrt(a_t), then
    x <- sqrt(a_s) x0 + sqrt(1 - a_s - c^2) eps + c z, with
    c = eta sqrt((1 - a_s) / (1 - a_t)) sqrt(1 - a_t / a_s). eta = 0 is deterministic: in
    x_bar = x / sqrt(a) it is x_bar <- x_bar + (sigma_s - sigma_t) eps, Euler's step on the VE
    probability-flow ODE dx_bar / dsigma = eps = -sigma grad log p_sigma. eta = 1 adds the noise
    of the posterior, as DDPM does.

    Args:
        eps_fn, x_T, schedule: as for :func:`ddpm_sampling`.
        n_steps: evaluations of ``eps_fn``, 1..T.
        eta: >= 0, the share of fresh noise.
        generator, record, progress: as for :func:`ddpm_sampling`.
    """
    _check_schedule(schedule)
    steps = ddim_timesteps(schedule, n_steps)
    eta = _checks.nonnegative_float(eta, "eta")
    run = _ddpm_run(f"DDIM (eta={eta:g})", eps_fn, x_T, len(steps), record, progress)
    generator = _checks.default_generator(generator, run.x.device)
    x = run.x  # (n, d), a private copy of x_T
    noise = torch.empty_like(x)  # (n, d)
    with run:
        for i, t in enumerate(steps):
            run.enter_level(t, f"step t={t} ({i + 1}/{len(steps)})")
            a_t = schedule.alphas_cumprod[t].item()
            a_s = schedule.alphas_cumprod[steps[i + 1]].item() if i + 1 < len(steps) else 1.0
            c = eta * math.sqrt((1 - a_s) / (1 - a_t) * (1 - a_t / a_s))
            eps = run.score(x, t, "the update")
            x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)  # (n, d), Tweedie
            x_next = math.sqrt(a_s) * x0 + math.sqrt(max(0.0, 1 - a_s - c**2)) * eps
            if c > 0:
                torch.randn(x.shape, generator=generator, out=noise)
                x_next.add_(noise, alpha=c)
            x.copy_(x_next)
            run.step("the update")
    return run.result()


def _ddpm_run(
    name: str,
    eps_fn: object,
    x_T: object,
    n_updates: int,
    record: int | Sequence[int] | None,
    progress: bool,
) -> SamplerRun:
    if not callable(eps_fn):
        raise TypeError(f"eps_fn must be callable, got {type(eps_fn).__name__}")
    return SamplerRun(
        name, eps_fn, x_T, n_updates, record, progress, argument="x_T", hint=HINT, condition="t"
    )


def _check_schedule(schedule: object) -> None:
    if not isinstance(schedule, DDPMSchedule):
        raise TypeError(f"schedule must be a DDPMSchedule, got {type(schedule).__name__}")


def _sigma_at(schedule: DDPMSchedule, t: float) -> float:
    """The VE sigma at a fractional step, log-linear between integer steps."""
    if not 0 <= t <= schedule.n_steps - 1:
        raise ValueError(f"t must be in [0, {schedule.n_steps - 1}], got {t}")
    low = min(int(t), schedule.n_steps - 2) if schedule.n_steps > 1 else 0
    fraction = t - low
    log_sigmas = schedule.sigmas.log()
    if schedule.n_steps == 1:
        return schedule.sigmas[0].item()
    return math.exp((1 - fraction) * log_sigmas[low].item() + fraction * log_sigmas[low + 1].item())
