"""Langevin samplers: Langevin dynamics, annealed Langevin dynamics, consistent annealed sampling.

Step convention of the paper (Song & Ermon 2019, Eq. 4):

    x <- x + (alpha / 2) * score(x) + sqrt(alpha) * z,    z ~ N(0, I)

Annealed Langevin dynamics (Algorithm 1) runs ``n_steps_each`` such steps at each noise level
sigma_1 > ... > sigma_L with alpha_i = eps * sigma_i^2 / sigma_L^2, so that the signal-to-noise
ratio of a step is the same at every level (Sec. 4.3).

Both samplers run under ``torch.no_grad()`` (a score that needs autograd must enable it
itself), reuse one noise buffer filled in place from ``generator`` (bitwise reproducible on the
CPU), never modify ``x0``, and raise :class:`SamplerDivergedError` naming the level and step as
soon as a non-finite value appears.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from . import _checks
from .networks import NonFiniteOutputError

__all__ = [
    "langevin_dynamics",
    "annealed_langevin_dynamics",
    "consistent_annealed_sampling",
    "Trajectory",
    "SamplerDivergedError",
]


class SamplerDivergedError(FloatingPointError):
    """A sampler produced NaN or infinite values (usually: the step size is too large)."""


class Trajectory(NamedTuple):
    """What a sampler returns when asked to ``record`` frames.

    samples: ``(n, d)`` final samples (what the sampler returns without ``record``).
    frames: ``(F, n, d)`` copies of the particles at the recorded steps (on the CPU).
    steps: ``(F,)`` global step of each frame: 0 is ``x0``, s is after s updates.
    levels: ``(F,)`` index of the noise level each frame was taken at (0 for plain Langevin).
    """

    samples: torch.Tensor
    frames: torch.Tensor
    steps: torch.Tensor
    levels: torch.Tensor


class _Level(NamedTuple):
    """Steps x <- x + drift * score(x, sigma) + noise * z, repeated n_steps times."""

    sigma: float | None  # passed to the score function; None for plain Langevin
    drift: float  # alpha / 2 for Langevin steps
    noise: float  # sqrt(alpha) for Langevin steps
    n_steps: int

    @classmethod
    def langevin(cls, sigma: float | None, alpha: float, n_steps: int) -> _Level:
        return cls(sigma, alpha / 2, math.sqrt(alpha), n_steps)


def langevin_dynamics(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator | None = None,
    *,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """Langevin dynamics (paper Eq. 4): ``n_steps`` steps of size alpha = ``step_size``.

    Args:
        score_fn: ``(n, d) -> (n, d)``, e.g. ``lambda x: mixture.score(x)`` or a ``ScoreNet``.
        x0: ``(n, d)`` starting points (not modified).
        step_size: alpha > 0.
        n_steps: number of steps T >= 1.
        generator: for the noise; ``None`` uses a generator seeded with 0.
        record: also return frames: an int F (F frames evenly spaced over steps 0..T) or the
            list of global steps to keep. Only those frames are kept in memory.
        progress: show a tqdm progress bar.

    Returns:
        ``(n, d)`` samples, or a :class:`Trajectory` when ``record`` is given.
    """
    step_size = _checks.positive_float(step_size, "step_size")
    n_steps = _checks.positive_int(n_steps, "n_steps")
    levels = [_Level.langevin(None, step_size, n_steps)]
    _checks.score_function(score_fn, with_sigma=False)
    return _run(
        lambda x, sigma: score_fn(x),
        x0,
        levels,
        generator,
        record,
        progress,
        denoise_sigma=None,
        name="Langevin dynamics",
    )


def annealed_langevin_dynamics(
    score_fn: Callable[[torch.Tensor, float], torch.Tensor],
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    step_size: float,
    n_steps_each: int,
    generator: torch.Generator | None = None,
    *,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
    denoise: bool = False,
) -> torch.Tensor | Trajectory:
    """Annealed Langevin dynamics (paper Algorithm 1).

    For i = 1..L: alpha_i = step_size * sigma_i^2 / sigma_L^2, then ``n_steps_each`` Langevin
    steps with ``score_fn(x, sigma_i)``.

    Args:
        score_fn: ``(x (n, d), sigma: float) -> (n, d)``, e.g. ``mixture.score`` or a
            ``NoiseConditionalScoreNet``.
        x0: ``(n, d)`` starting points (not modified).
        sigmas: ``(L,)`` noise levels, positive and strictly decreasing.
        step_size: eps > 0, the step size at the last level.
        n_steps_each: T >= 1 steps per level.
        generator: for the noise; ``None`` uses a generator seeded with 0.
        record: also return frames, as for :func:`langevin_dynamics`; steps run over
            0..L*T (and L*T + 1, the denoised samples, when ``denoise``).
        progress: show a tqdm progress bar.
        denoise: finish with one denoising step x + sigma_L^2 s(x, sigma_L) (Tweedie's formula:
            the posterior mean of the clean point; Jolicoeur-Martineau et al. 2020; NCSNv2).

    Returns:
        ``(n, d)`` samples, or a :class:`Trajectory` when ``record`` is given.
    """
    _checks.score_function(score_fn, with_sigma=True)
    sigma_list = _checks.sigma_levels(sigmas).tolist()
    step_size = _checks.positive_float(step_size, "step_size")
    n_steps_each = _checks.positive_int(n_steps_each, "n_steps_each")
    if not isinstance(denoise, bool):
        raise TypeError(f"denoise must be a bool, got {type(denoise).__name__}")
    last = sigma_list[-1]
    levels = [
        _Level.langevin(s, _or_inf(lambda s=s: step_size * s**2 / last**2), n_steps_each)
        for s in sigma_list
    ]
    return _run(
        score_fn,
        x0,
        levels,
        generator,
        record,
        progress,
        denoise_sigma=last if denoise else None,
        name="annealed Langevin dynamics",
    )


def consistent_annealed_sampling(
    score_fn: Callable[[torch.Tensor, float], torch.Tensor],
    x0: torch.Tensor,
    sigmas: torch.Tensor,
    step_size: float,
    generator: torch.Generator | None = None,
    *,
    record: int | Sequence[int] | None = None,
    progress: bool = False,
) -> torch.Tensor | Trajectory:
    """Consistent annealed sampling (Jolicoeur-Martineau et al. 2021, Algorithm 2).

    One step per noise level, with eta = step_size / sigma_L^2 (so alpha_i = eta sigma_i^2, the
    annealed-Langevin step sizes) and sigma_{L+1} = 0:

        x <- x + eta sigma_i^2 s(x, sigma_i) + beta_i sigma_{i+1} z,
        beta_i = sqrt(1 - (1 - eta)^2 sigma_i^2 / sigma_{i+1}^2).

    If x carries noise of standard deviation sigma_i, the step removes a share eta of it and
    adds just enough fresh noise for x to carry exactly sigma_{i+1}: the noise level follows
    the schedule (it is "consistent"), which annealed Langevin's steps do not guarantee. The
    last step adds no noise. It needs (1 - eta) sigma_i / sigma_{i+1} <= 1 at every level, i.e.
    fine enough levels for the step size: spend score evaluations on more levels, not on more
    steps per level.

    Args:
        score_fn: ``(x (n, d), sigma: float) -> (n, d)``.
        x0: ``(n, d)`` starting points (not modified).
        sigmas: ``(L,)`` noise levels, positive and strictly decreasing; L score evaluations.
        step_size: eps, with 0 < eps <= sigma_L^2.
        generator, record, progress: as for :func:`annealed_langevin_dynamics`.

    Reference: A. Jolicoeur-Martineau, R. Piché-Taillefer, R. Tachet des Combes, I. Mitliagkas,
    "Adversarial score matching and improved sampling for image generation", ICLR 2021.
    """
    _checks.score_function(score_fn, with_sigma=True)
    sigma_list = _checks.sigma_levels(sigmas).tolist()
    step_size = _checks.positive_float(step_size, "step_size")
    eta = _or_inf(lambda: step_size / sigma_list[-1] ** 2)
    if eta > 1:
        raise ValueError(
            f"step_size must be <= sigma_L^2 = {sigma_list[-1]:.4g}^2 for consistent annealed "
            f"sampling (eta = step_size / sigma_L^2 <= 1), got {step_size}"
        )
    next_sigmas = [*sigma_list[1:], 0.0]
    ratio = max((s / t for s, t in itertools.pairwise(sigma_list)), default=1.0)
    if (1 - eta) * ratio > 1:
        needed = sigma_list[-1] ** 2 * (1 - 1 / ratio)
        raise ValueError(
            f"consistent annealed sampling needs (1 - eta) sigma_i / sigma_(i+1) <= 1 at every level; with "
            f"these sigmas (largest ratio {ratio:.4g}) step_size must be >= {needed:.4g}, got {step_size}: "
            "use more noise levels or a larger step_size"
        )
    levels = []
    for sigma, next_sigma in zip(sigma_list, next_sigmas, strict=True):
        shrink = (
            _or_inf(lambda s=sigma, t=next_sigma: (1 - eta) ** 2 * (s / t) ** 2)
            if next_sigma
            else 0.0
        )
        beta = math.sqrt(max(0.0, 1 - shrink))
        levels.append(_Level(sigma, _or_inf(lambda s=sigma: eta * s**2), beta * next_sigma, 1))
    return _run(
        score_fn,
        x0,
        levels,
        generator,
        record,
        progress,
        denoise_sigma=None,
        name="consistent annealed sampling",
    )


def _run(
    score_fn: Callable[[torch.Tensor, float | None], torch.Tensor],
    x0: torch.Tensor,
    levels: list[_Level],
    generator: torch.Generator | None,
    record: int | Sequence[int] | None,
    progress: bool,
    *,
    denoise_sigma: float | None,
    name: str,
) -> torch.Tensor | Trajectory:
    """The shared loop: Langevin steps level by level, recording, progress, checks."""
    # (n, d), never aliases x0; contiguous, so the noise fills it in the same order whatever x0's strides
    x = _checks.points(x0, None, "x0").detach().clone(memory_format=torch.contiguous_format)
    _check_coefficients(
        [
            *levels,
            *(
                [_Level(denoise_sigma, _or_inf(lambda: denoise_sigma**2), 0.0, 1)]
                if denoise_sigma is not None
                else []
            ),
        ],
        x.dtype,
        name,
    )
    gen = _checks.default_generator(generator, x.device)
    total = sum(level.n_steps for level in levels) + (denoise_sigma is not None)
    keep = _checks.record_steps(record, total)
    frames, frame_steps, frame_levels = (
        [],
        [],
        [],
    )  # the recorded copies, their global steps and levels

    def snapshot(step: int, level: int) -> None:
        if step in keep:
            frames.append(x.to("cpu", copy=True))
            frame_steps.append(step)
            frame_levels.append(level)

    def diverged(where: str) -> SamplerDivergedError:
        return SamplerDivergedError(
            f"{name} diverged (non-finite values) at {where}; try a smaller step_size"
        )

    noise = torch.empty_like(x)  # (n, d), refilled in place at every step
    step = 0
    snapshot(step, 0)
    bar = tqdm(total=total, desc=name, disable=not progress, leave=False)
    with torch.no_grad(), bar:
        for index, level in enumerate(levels):
            if level.sigma is not None:
                bar.set_postfix(sigma=f"{level.sigma:.3g}", refresh=False)
            for t in range(level.n_steps):
                score = checked_score(
                    score_fn,
                    x,
                    level.sigma,
                    lambda: diverged(_where(index, len(levels), level, t)),  # noqa: B023 (called within this step)
                )
                torch.randn(x.shape, generator=gen, out=noise)
                x.add_(score, alpha=level.drift).add_(noise, alpha=level.noise)
                # one reduction per step; a non-finite score shows up here too, as x absorbs it
                if not _checks.all_finite(x):
                    raise diverged(_where(index, len(levels), level, t))
                step += 1
                snapshot(step, index)
                bar.update()
        if denoise_sigma is not None:
            x.add_(
                checked_score(
                    score_fn, x, denoise_sigma, lambda: diverged("the final denoising step")
                ),
                alpha=denoise_sigma**2,
            )
            if not _checks.all_finite(x):
                raise diverged("the final denoising step")
            step += 1
            snapshot(step, len(levels) - 1)
            bar.update()
    if record is None:
        return x
    return Trajectory(x, torch.stack(frames), torch.tensor(frame_steps), torch.tensor(frame_levels))


def checked_score(
    score_fn: Callable,
    x: torch.Tensor,
    sigma: float | None,
    diverged: Callable[[], SamplerDivergedError],
) -> torch.Tensor:
    """``score_fn(x, sigma)``, checked to be shaped like ``x``; a network that overflows (on points that
    ran away) raises ``diverged()``: the run diverged, and the sampler says where."""
    try:
        return _checks.score_output(
            score_fn(x, sigma), x
        )  # every evaluation: a shape compare is free
    except NonFiniteOutputError as err:
        raise diverged() from err


def _or_inf(coefficient: Callable[[], float]) -> float:
    """``coefficient()``, or inf where Python's float arithmetic overflows or divides by an underflowed 0."""
    try:
        return coefficient()
    except (OverflowError, ZeroDivisionError):
        return math.inf


def _check_coefficients(levels: list[_Level], dtype: torch.dtype, name: str) -> None:
    """Every step's coefficients must be finite numbers of ``dtype`` (else torch fails with a raw error)."""
    limit = torch.finfo(dtype).max
    for index, level in enumerate(levels):
        if not all(math.isfinite(c) and abs(c) <= limit for c in (level.drift, level.noise)):
            where = (
                f" at noise level {index + 1} (sigma={level.sigma:.4g})"
                if level.sigma is not None
                else ""
            )
            raise ValueError(
                f"{name}: the step{where} (drift {level.drift:.3g}, noise {level.noise:.3g}) does not fit in "
                f"{dtype}; use a smaller step_size or a narrower range of sigmas"
            )


def _where(index: int, n_levels: int, level: _Level, t: int) -> str:
    step = f"step {t + 1}/{level.n_steps}"
    if level.sigma is None:
        return step
    return f"noise level {index + 1}/{n_levels} (sigma={level.sigma:.4g}), {step}"
