"""Score SDEs: NCSN as the variance-exploding (VE) SDE, its reverse-time samplers, exact ODE likelihoods.

NCSN's levels become a continuum sigma(t) = sigma_min (sigma_max / sigma_min)^t (Song et al. 2021, Eq. 9),
p_sigma = p * N(0, sigma^2 I); time only reparametrises sigma, so all is written in sigma (grid s_i):
- reverse SDE, "reverse diffusion" step (Eqs. 6, 47): x <- x + (s_i^2 - s_{i+1}^2) s + sqrt(s_i^2 - s_{i+1}^2) z;
- predictor-corrector (Algorithms 4, 5): then Langevin x <- x + eps s + sqrt(2 eps) z, eps = 2 (snr |z| / |s|)^2;
- probability-flow ODE (Eq. 13; EDM Eq. 4) dx/dsigma = -sigma s: Euler, EDM's Heun (Algorithm 1) or DPM-Solver++(2M);
- instantaneous change of variables (Eq. 39; Chen et al. 2018): d log p_sigma(x(sigma)) / dsigma = sigma div s,
  with the prior N(0, sigma_max^2 I) standing in for p_{sigma_max}: on average -KL(p_{sigma_max} || prior) off.
Samplers run under ``no_grad``, never modify ``x_T``, check the score's shape at every evaluation, raise
:class:`SamplerDivergedError` naming the step and sigma on non-finite values; :func:`score_evaluations`
gives a call's cost (Heun: 2 evaluations per step but the last).

References: Y. Song, J. Sohl-Dickstein, D. P. Kingma, A. Kumar, S. Ermon, B. Poole, "Score-Based Generative
Modeling through Stochastic Differential Equations", ICLR 2021; T. Karras, M. Aittala, T. Aila, S. Laine,
"Elucidating the Design Space of Diffusion-Based Generative Models", NeurIPS 2022; C. Lu et al., "DPM-Solver++",
arXiv:2211.01095, 2022; R. T. Q. Chen et al., "Neural Ordinary Differential Equations", NeurIPS 2018;
M. F. Hutchinson, 1989 (trace estimator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from . import _checks
from .samplers import SamplerDivergedError, Trajectory, checked_score

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

GRIDS = (
    "geometric",
    "edm",
)  # sigma(t) at uniform t (Song et al.), or EDM's rho grid (Karras et al.)
METHODS, LIKELIHOOD_METHODS = (
    ("heun", "euler", "multistep"),
    ("heun", "euler"),
)  # probability-flow ODE solvers
SAMPLERS = (
    "reverse_sde",
    "predictor_corrector",
    "probability_flow",
    "ode_log_likelihood",
)  # score_evaluations
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class VESDE:
    """The VE SDE dx = sqrt(d sigma^2(t) / dt) dw, sigma(t) = sigma_min (sigma_max / sigma_min)^t, t in [0, 1]."""

    sigma_min: float  # the smallest noise level, where sampling ends (p_{sigma_min} ~ the data)
    sigma_max: float  # the largest, where the prior N(0, sigma_max^2 I) stands in for p_{sigma_max}

    def __post_init__(self) -> None:
        low = _checks.positive_float(self.sigma_min, "sigma_min")
        high = _checks.noise_level(self.sigma_max, "sigma_max")
        if not high > low:
            raise ValueError(
                f"sigma_max must be > sigma_min, got sigma_max={high} <= sigma_min={low}"
            )
        object.__setattr__(
            self, "sigma_min", low
        )  # plain floats (the fields may be given as ints or tensors)
        object.__setattr__(self, "sigma_max", high)

    def sigma(
        self, t: float | torch.Tensor
    ) -> float | torch.Tensor:  # t in [0, 1], a float or a tensor
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def prior_sample(
        self,
        n: int,
        d: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``(n, d)`` draws of the prior N(0, sigma_max^2 I)."""
        shape = (_checks.positive_int(n, "n"), _checks.positive_int(d, "d"))
        return self.sigma_max * torch.randn(
            shape, generator=_checks.default_generator(generator), dtype=dtype
        )

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``(n,)`` log N(x; 0, sigma_max^2 I)."""
        x, var = _checks.points(x, None), self.sigma_max**2
        return -0.5 * x.square().sum(dim=1) / var - 0.5 * x.shape[1] * math.log(2 * math.pi * var)

    def grid(self, n_steps: int, kind: str = "edm", *, rho: float = 7.0) -> list[float]:
        """``n_steps + 1`` noise levels, sigma_max down to sigma_min: ``"edm"`` (Karras et al. 2022, Eq. 5:
        dense at small sigma), or ``"geometric"``, sigma(t) at t = 1 - i / n_steps (NCSN's levels)."""
        n_steps, kind = (
            _checks.positive_int(n_steps, "n_steps"),
            _checks.one_of(kind, GRIDS, "grid"),
        )
        steps = torch.arange(n_steps + 1, dtype=torch.float64) / n_steps  # (N + 1,) in [0, 1]
        if kind == "geometric":
            sigmas = self.sigma(1 - steps)
        else:
            rho = _checks.positive_float(rho, "rho")
            high, low = self.sigma_max ** (1 / rho), self.sigma_min ** (1 / rho)
            sigmas = (high + steps * (low - high)) ** rho
        sigmas[0], sigmas[-1] = self.sigma_max, self.sigma_min
        # sigma_max within float64 rounding of sigma_min gives repeated levels (multistep divides by their gap)
        return _checks.sigma_levels(
            sigmas,
            f"the {n_steps} steps' levels from sigma_max={self.sigma_max} to "
            f"sigma_min={self.sigma_min}",
        ).tolist()


def score_evaluations(
    sampler: str, n_steps: int, *, n_corrector: int = 1, method: str = "heun", denoise: bool = False
) -> int:
    """Score evaluations per particle of one call: ``sampler`` is ``"reverse_sde"``, ``"predictor_corrector"``,
    ``"probability_flow"`` or ``"ode_log_likelihood"`` (whose evaluations cost d backward passes more)."""
    steps = _checks.positive_int(n_steps, "n_steps") + _checks.flag(denoise, "denoise")
    sampler = _checks.one_of(sampler, SAMPLERS, "sampler")
    if sampler == "ode_log_likelihood":
        if denoise:  # it integrates up from sigma_min: nothing to denoise
            raise ValueError("denoise does not apply to ode_log_likelihood")
        return (
            2 * n_steps
            if _checks.one_of(method, LIKELIHOOD_METHODS, "method") == "heun"
            else n_steps
        )
    if sampler == "probability_flow":  # Heun: 2 a step but the last; Euler and multistep: 1 a step
        return 2 * steps - 1 if _checks.one_of(method, METHODS, "method") == "heun" else steps
    corrections = (
        _checks.nonnegative_int(n_corrector, "n_corrector")
        if sampler == "predictor_corrector"
        else 0
    )
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
    """Euler-Maruyama on the reverse-time VE SDE (Song et al. 2021, Eq. 6; the reverse-diffusion step, Eq. 47).

    ``n_steps`` steps x <- x + (s_i^2 - s_{i+1}^2) s(x, s_i) + sqrt(s_i^2 - s_{i+1}^2) z over ``sde.grid(n_steps,
    grid, rho=rho)`` (default: NCSN's geometric levels), ending at sigma_min; ``denoise`` adds Tweedie's x +
    sigma_min^2 s(x, sigma_min); ``record``, ``progress`` as for annealed Langevin (``levels`` index the grid).
    """
    return predictor_corrector_sampling(
        score_fn,
        x_T,
        sde,
        n_steps,
        1.0,
        0,
        generator,
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

    Each of ``n_steps`` steps: the reverse-diffusion predictor from s_i to s_{i+1}, then ``n_corrector``
    Langevin steps x <- x + eps g + sqrt(2 eps) z, g = s(x, s_{i+1}), eps = 2 (snr ||z|| / ||g||)^2 with
    the norms averaged over the batch as in the authors' code (so one particle's step depends on the
    batch); ``n_corrector=0`` is :func:`reverse_sde_sampling`, whose options these are (every update
    is a recorded step).
    """
    snr, n_corrector = (
        _checks.positive_float(snr, "snr"),
        _checks.nonnegative_int(n_corrector, "n_corrector"),
    )
    name = "predictor-corrector" if n_corrector else "reverse SDE"
    sigmas = _sigmas(sde, n_steps, grid, rho, denoise)
    run = _Run(
        name, score_fn, x_T, "x_T", sigmas, n_steps * (1 + n_corrector) + denoise, record, progress
    )
    gen = _checks.default_generator(generator, run.x.device)
    x, noise = run.x, torch.empty_like(run.x)  # (n, d) each; x is a private copy of x_T
    with torch.no_grad(), run.bar:
        for i in range(n_steps):
            variance = sigmas[i] ** 2 - sigmas[i + 1] ** 2
            score = run.score(x, sigmas[i], i, "the predictor")
            torch.randn(x.shape, generator=gen, out=noise)
            run.step(
                x.add_(score, alpha=variance).add_(noise, alpha=math.sqrt(variance)),
                i,
                "the predictor",
            )
            for _ in range(n_corrector):
                torch.randn(x.shape, generator=gen, out=noise)
                score = run.score(x, sigmas[i + 1], i, "a corrector step")
                norm = score.norm(dim=1).mean().item()  # batch means of ||s|| and ||z||
                if not norm > 0:
                    raise SamplerDivergedError(
                        run.where(i, "a corrector step") + ": the score is zero or not "
                        "finite, so the step 2 (snr ||z|| / ||s||)^2 is undefined"
                    )
                eps = 2 * (snr * noise.norm(dim=1).mean().item() / norm) ** 2
                run.step(
                    x.add_(score, alpha=eps).add_(noise, alpha=math.sqrt(2 * eps)),
                    i,
                    "a corrector step",
                )
        if denoise:
            last = n_steps, "the denoising step"
            run.step(x.add_(run.score(x, sigmas[-2], *last), alpha=sigmas[-2] ** 2), *last)
    return run.result()


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
    """The probability-flow ODE dx/dsigma = -sigma s(x, sigma) (Song et al. 2021, Eq. 13; EDM Eq. 4).

    ``n_steps`` steps over ``sde.grid(n_steps, grid, rho=rho)`` (default EDM's), and with ``denoise``
    one more to sigma = 0 (that Euler step is Tweedie's x + sigma_min^2 s). ``"euler"``: x <- x + h d,
    d = -s_i s(x, s_i), h = s_{i+1} - s_i; ``"heun"`` (EDM Algorithm 1): then the trapezoid
    x <- x + h (d + d') / 2 with d' the slope at the Euler point, on every step but the last.
    ``"multistep"`` (DPM-Solver++(2M), Lu et al. 2022; one evaluation a step): in lambda = -log sigma,
    x <- D~ + (s_{i+1} / s_i)(x - D~) with D = x + s_i^2 s(x, s_i) (Tweedie) and D~ = D + (D - D_prev)
    h_i / (2 h_{i-1}), h = log(s_i / s_{i+1}); first order (D~ = D, the Euler step) on the first and
    last steps. Deterministic; ``record``, ``progress`` as for :func:`reverse_sde_sampling`.
    """
    method, sigmas = (
        _checks.one_of(method, METHODS, "method"),
        _sigmas(sde, n_steps, grid, rho, denoise),
    )
    steps, previous = (
        len(sigmas) - 1,
        None,
    )  # previous: the last multistep step's (denoised, log-sigma step)
    run = _Run(
        f"probability flow ({method})", score_fn, x_T, "x_T", sigmas, steps, record, progress
    )
    x = run.x
    with torch.no_grad(), run.bar:
        for i in range(steps):
            high, low = sigmas[i], sigmas[i + 1]
            if (
                method == "multistep"
            ):  # DPM-Solver++(2M) in log sigma on Tweedie's D = x + s^2 s(x, s)
                denoised = run.score(x, high, i, "the update").mul_(high**2).add_(x)  # (n, d)
                h = math.log(high / low) if low else math.inf
                guess = denoised  # first order on the first and the last step, else extrapolated
                if previous is not None and i < steps - 1:
                    guess = denoised + (denoised - previous[0]) * (h / (2 * previous[1]))
                end, previous = guess + (low / high) * (x - guess), (denoised, h)
                run.step(x.copy_(end), i, "the update")
                continue
            slope = run.score(x, high, i, "the update").mul_(-high)  # (n, d) dx/dsigma at (x, s_i)
            end = x + (low - high) * slope
            if method == "heun" and i < steps - 1:
                run.check(end, i, "the Euler point")
                slope.add_(run.score(end, low, i, "the Euler point"), alpha=-low).mul_(
                    0.5
                )  # mean of the slopes
                end = x + (low - high) * slope
            run.step(x.copy_(end), i, "the update")
    return run.result()


# ---------------------------------------------------------------------------- shared machinery
def _sigmas(
    sde: object, n_steps: object, grid: object, rho: object, denoise: object = False
) -> list[float]:
    """The grid from sigma_max down to sigma_min, then 0 for a denoising step."""
    if not isinstance(sde, VESDE):
        raise TypeError(f"sde must be a VESDE, got {type(sde).__name__}")
    return [*sde.grid(n_steps, grid, rho=rho), *([0.0] if _checks.flag(denoise, "denoise") else [])]


class _Run:
    """One call: a private copy of the points, checked score calls, divergence checks, frames, progress."""

    def __init__(
        self,
        name: str,
        score_fn: object,
        x: object,
        arg: str,
        sigmas: list[float],
        updates: int,
        record: int | Sequence[int] | None,
        progress: bool,
    ) -> None:
        _checks.score_function(score_fn, with_sigma=True)
        self.name, self.score_fn, self.sigmas = (
            name,
            score_fn,
            sigmas,
        )  # the grid, with 0 after a denoising step
        self.x = (
            _checks.points(x, None, arg).detach().clone(memory_format=torch.contiguous_format)
        )  # (n, d), own
        if (
            max(sigmas) ** 2 > torch.finfo(self.x.dtype).max
        ):  # a step's variance must be a number of x's dtype
            raise ValueError(
                f"sde.sigma_max = {max(sigmas):.3g}: its square does not fit in {self.x.dtype}"
            )
        self.keep, self.record, self.done = (
            _checks.record_steps(record, updates),
            record is not None,
            0,
        )
        self.frames, self.steps, self.levels = (
            [],
            [],
            [],
        )  # the recorded copies, their steps and grid levels
        self.bar = tqdm(
            total=updates, desc=name, disable=not _checks.flag(progress, "progress"), leave=False
        )
        self._snapshot(0)

    def score(self, x: torch.Tensor, sigma: float, i: int, what: str) -> torch.Tensor:
        """The score at ``sigma``, evaluated for ``what`` of step ``i`` (named if the network overflows)."""
        return checked_score(
            self.score_fn,
            x,
            sigma,
            lambda: SamplerDivergedError(
                f"{self.where(i, what)}: the score network returned non-finite values at sigma={sigma:.4g}"
            ),
        )

    def where(self, i: int, what: str) -> str:
        return (
            f"{self.name} diverged (non-finite values) at {what} of step {i + 1}/{len(self.sigmas) - 1} "
            f"(sigma={self.sigmas[i]:.4g} -> {self.sigmas[i + 1]:.4g})"
        )

    def check(self, x: torch.Tensor, i: int, what: str) -> None:
        if not _checks.all_finite(x):
            raise SamplerDivergedError(
                self.where(i, what) + "; check the score function or use more steps"
            )

    def step(self, x: torch.Tensor, i: int, what: str) -> None:
        """After an update in step ``i``: check ``x``, count it, keep a frame at grid level i + 1."""
        self.check(x, i, what)
        self.done += 1
        self.bar.update()
        self._snapshot(i + 1)

    def _snapshot(self, level: int) -> None:
        if self.done in self.keep:
            self.frames.append(self.x.to("cpu", copy=True))
            self.steps.append(self.done)
            self.levels.append(level)

    def result(self) -> torch.Tensor | Trajectory:
        if not self.record:
            return self.x
        return Trajectory(
            self.x, torch.stack(self.frames), torch.tensor(self.steps), torch.tensor(self.levels)
        )
