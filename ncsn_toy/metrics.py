"""How good are the samples and the learned scores? Numbers, measured against the exact mixture.

- :func:`mode_weights`: the share of samples in each mode, by responsibilities.
- :func:`mode_statistics`: per-mode mean and covariance, responsibility-weighted.
- :func:`energy_distance`: a kernel-free two-sample distance to exact samples.
- :func:`relative_score_error`: E ||s_theta - grad log p_sigma||^2 / E ||grad log p_sigma||^2 under
  p_sigma, overall and in high- and low-density regions (the paper's Fig. 2 point: the learned
  score is only accurate where there is data).

References: Song & Ermon 2019, Sec. 3.2 (Figs. 2 and 3); Székely & Rizzo, "Energy statistics: A
class of statistics based on distances", J. Stat. Plan. Inference, 2013.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch

from . import _checks
from .mixtures import GaussianMixture, check_mixture
from .targets import uniform_in_box

__all__ = [
    "mode_weights",
    "mode_weights_along",
    "mode_statistics",
    "ModeStatistics",
    "energy_distance",
    "relative_score_error",
    "ScoreError",
]


def mode_weights(mixture: GaussianMixture, x: torch.Tensor, *, sigma: float = 0.0) -> torch.Tensor:
    """Share of the samples ``x`` ``(n, d)`` in each mode: the mean responsibility, ``(K,)``.

    Soft assignment: for exact samples E_p[r_k(X)] = w_k exactly, so the estimate is unbiased
    even where modes overlap (a hard argmax assignment is not). Responsibilities are taken
    under p_sigma (default sigma = 0: the data's modes); for samples of p_sigma pass its sigma.
    """
    return check_mixture(mixture).responsibilities(x, sigma).mean(dim=0)


def mode_weights_along(
    mixture: GaussianMixture, frames: torch.Tensor, frame_sigmas: Sequence[float]
) -> torch.Tensor:
    """The mode weights of every frame of a recorded run, ``(F, K)``: where they are decided.

    Frame f (``frames[f]``, ``(n, d)``) is weighed by mean responsibilities under
    p_{frame_sigmas[f]} (:func:`mode_weights`). Pass the noise each frame carries to compare it
    with p_sigma itself (at large sigma every point is shared out by the prior weights, so that
    says little); pass zeros to ask which mode each particle lies in now, which shows when the
    weights are decided.
    """
    if not isinstance(frames, torch.Tensor) or frames.dim() != 3:
        raise ValueError("frames must be a (F, n, d) tensor, as Trajectory.frames is")
    sigmas = list(frame_sigmas)
    if len(sigmas) != len(frames):
        raise ValueError(
            f"frame_sigmas must hold one sigma per frame ({len(frames)}), got {len(sigmas)}"
        )
    return torch.stack(
        [mode_weights(mixture, x, sigma=s) for x, s in zip(frames, sigmas, strict=True)]
    )


class ModeStatistics(NamedTuple):
    """The weights, means and covariances of each mode of a sample (:func:`mode_statistics`)."""

    weights: torch.Tensor  # (K,) mean responsibility
    means: torch.Tensor  # (K, d) responsibility-weighted mean of each mode
    covariances: torch.Tensor  # (K, d, d) responsibility-weighted covariance of each mode

    @property
    def stds(self) -> torch.Tensor:
        """``(K, d)`` per-mode standard deviation along each axis."""
        return torch.sqrt(torch.diagonal(self.covariances, dim1=1, dim2=2))


def mode_statistics(
    mixture: GaussianMixture, x: torch.Tensor, *, sigma: float = 0.0
) -> ModeStatistics:
    """Weights, means and covariances of each mode of the samples ``x``, by responsibilities.

    For samples of p_sigma (noisy data) pass their ``sigma``: the responsibilities of p_sigma split
    the merged bumps where p_sigma's components cross, so each mode's spread comes out as the true
    sqrt(Sigma_k + sigma^2 I); those of p (sigma = 0) would cut each bump at p's boundary. A mode
    with no responsibility at all gets NaN mean and covariance (nothing to measure).
    """
    resp = check_mixture(mixture).responsibilities(x, sigma)  # (n, K)
    mass = resp.sum(dim=0)  # (K,)
    means = resp.T @ x / mass[:, None]  # (K, d)
    centred = x[:, None, :] - means  # (n, K, d)
    covariances = torch.einsum("nk,nkd,nke->kde", resp, centred, centred) / mass[:, None, None]
    return ModeStatistics(mass / len(x), means, covariances)


def energy_distance(x: torch.Tensor, y: torch.Tensor, *, chunk: int = 2048) -> float:
    """Squared energy distance D^2 = 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    The unbiased U-statistic (pairs of a point with itself are excluded), so it is 0 in
    expectation when x and y come from the same distribution and may then be slightly
    negative. No kernel or bandwidth to choose; computed in float64 blocks of ``chunk`` rows, on
    the samples centred on their pooled mean and divided by their pooled scale (D^2 is invariant to
    a shift and scales with a scaling), so that distances far from the origin or at extreme scales
    lose no precision and cannot overflow.

    Args:
        x: ``(n, d)`` samples. y: ``(m, d)`` samples, n, m >= 2.
    """
    x = _checks.points(x, None, "x").double()
    y = _checks.points(y, x.shape[1], "y").double()
    chunk = _checks.positive_int(chunk, "chunk")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("energy_distance needs at least 2 samples on each side")
    pooled = torch.cat([x, y])  # (n + m, d)
    centre = pooled.mean(dim=0)
    scale = (pooled - centre).abs().amax().item()  # 0 only if every point is the same
    if scale == 0:
        return 0.0
    x = (x - centre) / scale
    y = (y - centre) / scale

    def mean_distance(a: torch.Tensor, b: torch.Tensor, same: bool) -> float:
        total = 0.0
        for start in range(0, len(a), chunk):
            total += torch.cdist(a[start : start + chunk], b).sum().item()
        pairs = len(a) * (len(b) - 1) if same else len(a) * len(b)  # the diagonal is 0
        return total / pairs

    between = mean_distance(x, y, False)
    within_x = mean_distance(x, x, True)
    within_y = mean_distance(y, y, True)
    distance = scale * (2 * between - within_x - within_y)
    if not math.isfinite(distance):
        raise ValueError(
            f"the energy distance does not fit in float64 (the samples' scale is {scale:.3g})"
        )
    return distance


class ScoreError(NamedTuple):
    """The relative score error of :func:`relative_score_error`, overall and where it lives."""

    # E ||s_theta - s||^2 / E ||s||^2 for x ~ p_sigma
    overall: float
    # the same ratio for x uniform on the box, inside the 99% region (NaN: no point there)
    high_density: float
    # the same ratio for x uniform on the box, outside the 99% region (NaN: no point there)
    low_density: float


def relative_score_error(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    mixture: GaussianMixture,
    sigma: float,
    n: int = 20_000,
    generator: torch.Generator | None = None,
    *,
    mass: float = 0.99,
) -> ScoreError:
    """Relative error of a score model at noise level ``sigma``.

    ``overall`` is the error under the data, the quantity score matching minimises:

        E_{x ~ p_sigma} ||s_theta(x) - grad log p_sigma(x)||^2
        / E_{x ~ p_sigma} ||grad log p_sigma(x)||^2

    ``high_density`` and ``low_density`` show where that error lives (the paper's Fig. 2): the same
    ratio for points spread uniformly over ``mixture.box(sigma=sigma)``, split by whether they lie
    inside the highest-density region holding ``mass`` (default 99%) of p_sigma, i.e. where
    p_sigma(x) is at least the (1 - mass) quantile of p_sigma(X), X ~ p_sigma. Where none of the
    ``n`` box points falls on one side (a box that lies inside the region, as for one Gaussian with
    ``mass`` near 1), that side has nothing to measure and is NaN; ``overall`` is always a number.

    Args:
        score_fn: ``(n, d) -> (n, d)``, evaluated at this sigma, e.g. ``lambda x: net(x, sigma)``.
        mixture: the data distribution p.
        sigma: noise level (>= 0).
        n: number of points for each of the two estimates.
        generator: for the points; ``None`` uses a generator seeded with 0.
        mass: probability mass of the high-density region, in (0, 1).
    """
    _checks.score_function(score_fn, with_sigma=False)
    check_mixture(mixture)
    sigma = _checks.noise_level(sigma)
    if sigma > 0:
        _checks.sigma_for(sigma, mixture.means.dtype)
    n = _checks.positive_int(n, "n")
    mass = _checks.positive_float(mass, "mass")
    if mass >= 1:
        raise ValueError(f"mass must be in (0, 1), got {mass}")
    gen = _checks.default_generator(generator)
    on_data = mixture.sample(n, generator=gen)
    noise = torch.randn(on_data.shape, generator=gen, dtype=on_data.dtype)
    on_data = on_data + sigma * noise  # (n, d) ~ p_sigma
    on_box = uniform_in_box(mixture, n, gen, sigma=sigma)  # (n, d)
    threshold = torch.quantile(mixture.log_prob(on_data, sigma).double(), 1 - mass).item()
    inside = mixture.log_prob(on_box, sigma) >= threshold  # (n,) bool

    def ratio(x: torch.Tensor) -> float:
        if len(x) == 0:
            return float("nan")  # nothing to measure (e.g. the box lies inside the region)
        exact = mixture.score(x, sigma)  # (m, d)
        with torch.no_grad():
            model = _checks.score_output(score_fn(x), x)
        return ((model - exact).double().square().sum() / exact.double().square().sum()).item()

    return ScoreError(ratio(on_data), ratio(on_box[inside]), ratio(on_box[~inside]))
