"""Score SDEs: NCSN as the variance-exploding (VE) SDE, and its reverse-time samplers.

NCSN's levels become a continuum sigma(t) = sigma_min (sigma_max / sigma_min)^t (Song et al.
2021, Eq. 9), with p_sigma = p * N(0, sigma^2 I). Time only reparametrises sigma, so every
sampler here is written in sigma, on a grid s_0 = sigma_max > s_1 > ... > s_N = sigma_min:

- reverse SDE, the "reverse diffusion" step (Eqs. 6, 47):
  x <- x + (s_i^2 - s_{i+1}^2) s(x, s_i) + sqrt(s_i^2 - s_{i+1}^2) z;
- predictor-corrector (Algorithms 4, 5): that step, then Langevin corrector steps
  x <- x + eps s + sqrt(2 eps) z with eps = 2 (snr |z| / |s|)^2;
- the probability-flow ODE (Eq. 13; EDM Eq. 4), dx/dsigma = -sigma s(x, sigma): Euler, EDM's
  Heun (Algorithm 1) or the multistep DPM-Solver++(2M).

The samplers share :class:`~ncsn_toy.samplers.SamplerRun` with the Langevin samplers: they run
under ``no_grad``, never modify ``x_T`` or what the score returns, check the score's shape at
every evaluation, and raise :class:`SamplerDivergedError` naming the step and sigma on
non-finite values. :func:`score_evaluations` gives a call's cost.

References: Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-Based
Generative Modeling through Stochastic Differential Equations", ICLR 2021; T. Karras, M. Aittala,
T. Aila, S. Laine, "Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS
2022; C. Lu et al., "DPM-Solver++", arXiv:2211.01095, 2022.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from . import _checks
from .samplers import SamplerDivergedError, SamplerRun, Trajectory

__all__ = [
    "VESDE",
    "reverse_sde_sampling",
    "predictor_corrector_sampling",
    "probability_flow_sampling",
    "score_evaluations",
    "GRIDS",
    "METHODS",
    "LIKELIHOOD_METHODS",
]

# sigma(t) at uniform t (Song et al.), or EDM's rho grid (Karras et al.)
GRIDS = ("geometric", "edm")
# probability-flow ODE solvers
METHODS = ("heun", "euler", "multistep")
# solvers of the ODE likelihood (a multistep solver has no divergence term)
LIKELIHOOD_METHODS = ("heun", "euler")
# what score_evaluations counts
SAMPLERS = ("reverse_sde", "predictor_corrector", "probability_flow", "ode_log_likelihood")
# what the hint of a diverged SDE run says
SDE_HINT = "check the score function or use more steps"
# the longest grid: 8 MB of levels (a million steps of the smallest network take hours)
MAX_STEPS = 1_000_000

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class VESDE:
    """The VE SDE dx = sqrt(d sigma^2(t) / dt) dw, sigma(t) = sigma_min (sigma_max / sigma_min)^t.

    t runs over [0, 1]; the prior N(0, sigma_max^2 I) stands in for p_{sigma_max}.
    """

    sigma_min: float  # the smallest noise level, where sampling ends (p_{sigma_min} ~ the data)
    sigma_max: float  # the largest, where the prior N(0, sigma_max^2 I) stands in for p_{sigma_max}

    def __post_init__(self) -> None:
        low = _checks.positive_float(self.sigma_min, "sigma_min")
        high = _checks.noise_level(self.sigma_max, "sigma_max")
        if not high > low:
            raise ValueError(
                f"sigma_max must be > sigma_min, got sigma_max={high} <= sigma_min={low}"
            )
        # plain floats (the fields may be given as ints or tensors)
        object.__setattr__(self, "sigma_min", low)
        object.__setattr__(self, "sigma_max", high)

    def sigma(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """sigma(t) for t in [0, 1], a float or a tensor."""
        ratio = self.sigma_max / self.sigma_min
        if math.isfinite(ratio):
            return self.sigma_min * ratio**t
        # sigma_max / sigma_min beyond float64 (1e150 / 1e-300): the same, through logarithms
        log_min = math.log(self.sigma_min)
        log_ratio = math.log(self.sigma_max) - log_min
        if isinstance(t, torch.Tensor):
            return torch.exp(log_min + t * log_ratio)
        return math.exp(log_min + t * log_ratio)

    def prior_sample(
        self,
        n: int,
        d: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``(n, d)`` draws of the prior N(0, sigma_max^2 I), of a floating ``dtype``."""
        shape = (_checks.positive_int(n, "n"), _checks.positive_int(d, "d"))
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
        generator = _checks.default_generator(generator)
        return self.sigma_max * torch.randn(shape, generator=generator, dtype=dtype)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(n,)`` log N(x; 0, sigma_max^2 I)."""
        x = _checks.points(x, None)
        variance = self.sigma_max**2
        d = x.shape[1]
        return -0.5 * x.square().sum(dim=1) / variance - 0.5 * d * math.log(2 * math.pi * variance)

    def grid(self, n_steps: int, kind: str = "edm", *, rho: float = 7.0) -> list[float]:
        """``n_steps + 1`` noise levels from sigma_max down to sigma_min.

        ``"edm"``: Karras et al. 2022, Eq. 5, (a + i/N (b - a))^rho with a = sigma_max^(1/rho),
        b = sigma_min^(1/rho): dense at small sigma. ``"geometric"``: sigma(t) at t = 1 - i/N,
        NCSN's levels.
        """
        n_steps = _checks.positive_int(n_steps, "n_steps")
        if n_steps > MAX_STEPS:
            raise ValueError(f"n_steps must be at most {MAX_STEPS:,}, got {n_steps:,}")
        kind = _checks.one_of(kind, GRIDS, "grid")
        steps = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps  # (N + 1,) in [0, 1]
        if kind == "geometric":
            sigmas = self.sigma(1 - steps)
        else:
            rho = _checks.positive_float(rho, "rho")
            high = self.sigma_max ** (1 / rho)
            low = self.sigma_min ** (1 / rho)
            sigmas = (high + steps * (low - high)) ** rho
        sigmas[0] = self.sigma_max
        sigmas[-1] = self.sigma_min
        # sigma_max within float64 rounding of sigma_min gives repeated levels, and the
        # multistep solver divides by their gap
        what = (
            f"the {n_steps} steps' levels from sigma_max={self.sigma_max} to "
            f"sigma_min={self.sigma_min}"
        )
        return _checks.sigma_levels(sigmas, what).tolist()

    def marginal(self, t: float | torch.Tensor) -> tuple[float, float | torch.Tensor]:
        """(scale, std) of x_t = scale x_0 + std z: (1, sigma(t)), the noise only grows."""
        return 1.0, self.sigma(t)


def score_evaluations(
    sampler: str, n_steps: int, *, n_corrector: int = 1, method: str = "heun", denoise: bool = False
) -> int:
    """Score evaluations per particle of one call.

    ``sampler`` is ``"reverse_sde"``, ``"predictor_corrector"``, ``"probability_flow"`` or
    ``"ode_log_likelihood"`` (whose evaluations each cost d backward passes more).
    """
    steps = _checks.positive_int(n_steps, "n_steps") + _checks.flag(denoise, "denoise")
    sampler = _checks.one_of(sampler, SAMPLERS, "sampler")
    if sampler == "ode_log_likelihood":
        if denoise:  # it integrates up from sigma_min: nothing to denoise
            raise ValueError("denoise does not apply to ode_log_likelihood")
        method = _checks.one_of(method, LIKELIHOOD_METHODS, "method")
        return 2 * n_steps if method == "heun" else n_steps
    if sampler == "probability_flow":
        # Heun: 2 a step but the last; Euler and multistep: 1 a step
        method = _checks.one_of(method, METHODS, "method")
        return 2 * steps - 1 if method == "heun" else steps
    corrections = 0
    if sampler == "predictor_corrector":
        corrections = _checks.nonnegative_int(n_corrector, "n_corrector")
    return steps + n_steps * corrections


def reverse_sde_sampling(
    score_fn: ScoreFn,
    x_T: torch.Tensor,
    sde: VESDE,
    n_steps: int,
    generator: torch.Generator | None = None,
    *,
    grid: str = "geometric",
    rho: float = 7.0,
    denoise: bool = False,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """Euler-Maruyama on the reverse-time VE SDE (Song et al. 2021, Eq. 6; Eq. 47's step).

    ``n_steps`` steps x <- x + (s_i^2 - s_{i+1}^2) s(x, s_i) + sqrt(s_i^2 - s_{i+1}^2) z over
    ``sde.grid(n_steps, grid, rho=rho)`` (default: NCSN's geometric levels), ending at
    sigma_min; ``denoise`` adds Tweedie's x + sigma_min^2 s(x, sigma_min); ``record``,
    ``progress`` as for annealed Langevin (``levels`` index the grid). It is
    :func:`predictor_corrector_sampling` without corrector steps.
    """
    return predictor_corrector_sampling(
        score_fn,
        x_T,
        sde,
        n_steps,
        snr=1.0,
        n_corrector=0,
        generator=generator,
        grid=grid,
        rho=rho,
        denoise=denoise,
        record=record,
        progress=progress,
    )


def predictor_corrector_sampling(
    score_fn: ScoreFn,
    x_T: torch.Tensor,
    sde: VESDE,
    n_steps: int,
    snr: float = 0.16,
    n_corrector: int = 1,
    generator: torch.Generator | None = None,
    *,
    grid: str = "geometric",
    rho: float = 7.0,
    denoise: bool = False,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """Predictor-corrector sampling for the VE SDE (Song et al. 2021, Algorithms 4 and 5).

    Each of ``n_steps`` steps: the reverse-diffusion predictor from s_i to s_{i+1}, then
    ``n_corrector`` Langevin steps x <- x + eps g + sqrt(2 eps) z, g = s(x, s_{i+1}),
    eps = 2 (snr ||z|| / ||g||)^2 with the norms averaged over the batch as in the authors' code
    (so one particle's step depends on the batch); ``n_corrector=0`` is
    :func:`reverse_sde_sampling`, whose options these are (every update is a recorded step).
    """
    snr = _checks.positive_float(snr, "snr")
    n_corrector = _checks.nonnegative_int(n_corrector, "n_corrector")
    name = "predictor-corrector" if n_corrector else "reverse SDE"
    sigmas = sampling_grid(sde, n_steps, grid, rho, denoise)
    n_updates = n_steps * (1 + n_corrector) + denoise
    run = sde_run(name, score_fn, x_T, "x_T", sigmas, n_updates, record, progress)
    generator = _checks.default_generator(generator, run.x.device)
    x = run.x  # (n, d), a private copy of x_T
    noise = torch.empty_like(x)  # (n, d), refilled in place at every step
    with run:
        for i in range(n_steps):
            enter_grid_step(run, sigmas, i)
            variance = sigmas[i] ** 2 - sigmas[i + 1] ** 2
            score = run.score(x, sigmas[i], "the predictor")
            torch.randn(x.shape, generator=generator, out=noise)
            x.add_(score, alpha=variance).add_(noise, alpha=math.sqrt(variance))
            run.step("the predictor", level=i + 1)
            for _ in range(n_corrector):
                torch.randn(x.shape, generator=generator, out=noise)
                score = run.score(x, sigmas[i + 1], "a corrector step")
                eps = _corrector_step_size(run, score, noise, snr)
                x.add_(score, alpha=eps).add_(noise, alpha=math.sqrt(2 * eps))
                run.step("a corrector step", level=i + 1)
        if denoise:
            enter_grid_step(run, sigmas, n_steps)
            last = sigmas[-2]
            x.add_(run.score(x, last, "the denoising step"), alpha=last**2)
            run.step("the denoising step", level=n_steps + 1)
    return run.result()


def _corrector_step_size(
    run: SamplerRun, score: torch.Tensor, noise: torch.Tensor, snr: float
) -> float:
    """eps = 2 (snr ||z|| / ||s||)^2, the norms averaged over the batch (Algorithm 5)."""
    score_norm = score.norm(dim=1).mean().item()
    if not score_norm > 0:
        raise SamplerDivergedError(
            run.where("a corrector step") + ": the score is zero or not finite, so the step "
            "2 (snr ||z|| / ||s||)^2 is undefined"
        )
    noise_norm = noise.norm(dim=1).mean().item()
    try:
        eps = 2 * (snr * noise_norm / score_norm) ** 2
    except OverflowError:
        eps = math.inf
    # the noise's coefficient is sqrt(2 eps); the update must be a number of x's dtype
    if not 2 * eps <= torch.finfo(score.dtype).max:
        raise SamplerDivergedError(
            run.where("a corrector step") + f": its step 2 (snr ||z|| / ||s||)^2 = {eps:.3g} "
            f"does not fit in {score.dtype} (snr = {snr:g}); use a smaller snr"
        )
    return eps


def probability_flow_sampling(
    score_fn: ScoreFn,
    x_T: torch.Tensor,
    sde: VESDE,
    n_steps: int,
    method: str = "heun",
    *,
    grid: str = "edm",
    rho: float = 7.0,
    denoise: bool = False,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """The probability-flow ODE dx/dsigma = -sigma s(x, sigma) (Song et al. 2021 Eq. 13, EDM Eq. 4).

    ``n_steps`` steps over ``sde.grid(n_steps, grid, rho=rho)`` (default EDM's), and with
    ``denoise`` one more to sigma = 0 (that Euler step is Tweedie's x + sigma_min^2 s).

    - ``"euler"``: x <- x + h d, with d = -s_i s(x, s_i) and h = s_{i+1} - s_i;
    - ``"heun"`` (EDM Algorithm 1): then the trapezoid x <- x + h (d + d') / 2, d' the slope at
      the Euler point, on every step but the last;
    - ``"multistep"`` (DPM-Solver++(2M), Lu et al. 2022; one evaluation a step): see
      :func:`_multistep_update`.

    Deterministic; ``record``, ``progress`` as for :func:`reverse_sde_sampling`.
    """
    method = _checks.one_of(method, METHODS, "method")
    sigmas = sampling_grid(sde, n_steps, grid, rho, denoise)
    n_updates = len(sigmas) - 1
    name = f"probability flow ({method})"
    run = sde_run(name, score_fn, x_T, "x_T", sigmas, n_updates, record, progress)
    x = run.x  # (n, d), a private copy of x_T
    previous = None  # the multistep solver's last (denoised, log-sigma step)
    with run:
        for i in range(n_updates):
            enter_grid_step(run, sigmas, i)
            high = sigmas[i]
            low = sigmas[i + 1]
            if method == "multistep":
                last = i == n_updates - 1
                x_next, previous = _multistep_update(run, x, high, low, previous, last)
            else:
                # dx/dsigma at (x, s_i); a new tensor: what score_fn returned is left alone
                slope = torch.mul(run.score(x, high, "the update"), -high)  # (n, d)
                x_next = x + (low - high) * slope
                if method == "heun" and i < n_updates - 1:
                    run.check(x_next, "the Euler point")
                    slope_next = run.score(x_next, low, "the Euler point")
                    # the mean of the slopes at both ends: (slope - low s(x_next, low)) / 2
                    slope = torch.add(slope, slope_next, alpha=-low).mul_(0.5)
                    x_next = x + (low - high) * slope
            x.copy_(x_next)
            run.step("the update", level=i + 1)
    return run.result()


def _multistep_update(
    run: SamplerRun,
    x: torch.Tensor,
    high: float,
    low: float,
    previous: tuple[torch.Tensor, float] | None,
    last: bool,
) -> tuple[torch.Tensor, tuple[torch.Tensor, float]]:
    """One step of DPM-Solver++(2M) from sigma = ``high`` to ``low``, in lambda = -log sigma.

    With Tweedie's denoiser D = x + s_i^2 s(x, s_i) and h_i = log(s_i / s_{i+1}):
    x <- D~ + (s_{i+1} / s_i)(x - D~), where D~ = D + (D - D_prev) h_i / (2 h_{i-1}) extrapolates
    from the previous step, or D~ = D (first order, the Euler step) on the first and last steps.
    Returns the new x and this step's (D, h) for the next one.
    """
    denoised = x + high**2 * run.score(x, high, "the update")  # (n, d)
    h = math.log(high / low) if low else math.inf
    guess = denoised
    if previous is not None and not last:
        previous_denoised, previous_h = previous
        guess = denoised + (denoised - previous_denoised) * (h / (2 * previous_h))
    x_next = guess + (low / high) * (x - guess)
    return x_next, (denoised, h)


def sampling_grid(
    sde: object, n_steps: object, grid: object, rho: object, denoise: object = False
) -> list[float]:
    """The grid of an SDE sampler: from sigma_max down to sigma_min, then 0 for a denoising step."""
    if not isinstance(sde, VESDE):
        raise TypeError(f"sde must be a VESDE, got {type(sde).__name__}")
    levels = sde.grid(n_steps, grid, rho=rho)
    if _checks.flag(denoise, "denoise"):
        levels.append(0.0)
    return levels


def sde_run(
    name: str,
    score_fn: object,
    x: object,
    argument: str,
    sigmas: list[float],
    n_updates: int,
    record: int | Sequence[int] | None,
    progress: bool,
) -> SamplerRun:
    """A :class:`SamplerRun` for a sampler (or integrator) over the grid ``sigmas``."""
    _checks.score_function(score_fn, with_sigma=True)
    run = SamplerRun(
        name, score_fn, x, n_updates, record, progress, argument=argument, hint=SDE_HINT
    )
    # a step's variance s_i^2 - s_{i+1}^2 must be a number of x's dtype
    if max(sigmas) ** 2 > torch.finfo(run.x.dtype).max:
        raise ValueError(
            f"sde.sigma_max = {max(sigmas):.3g}: its square does not fit in {run.x.dtype}"
        )
    return run


def enter_grid_step(run: SamplerRun, sigmas: list[float], i: int) -> None:
    """Tell ``run`` it is in step i of the grid, from sigmas[i] to sigmas[i + 1]."""
    label = f"step {i + 1}/{len(sigmas) - 1} (sigma={sigmas[i]:.4g} -> {sigmas[i + 1]:.4g})"
    run.enter_level(i, label, sigma=sigmas[i])
