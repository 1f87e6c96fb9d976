"""The named 2-D problems, every one a Gaussian mixture, so that every score stays exact.

- :func:`two_gaussians`: the paper's p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I) (Sec. 3.2, Fig. 3).
- :func:`four_gaussians`: four modes with unequal weights, where the original notebook put them.
- :func:`ring`: modes with equal weights on a circle (the "8 Gaussians" of the GAN literature).
- :func:`grid`: modes with equal weights on a square grid (the "25 Gaussians").
- :func:`spiral`: a chain of small Gaussians along an Archimedean spiral, weights growing along it.
- :func:`anisotropic`: one rotated Gaussian with condition number 100 (the ill-conditioned case
  of the official NCSN toy code).

Every builder takes keyword options (radius, spacing, std, number of modes, ...), checks them
(``ValueError`` / ``TypeError`` naming the argument) and returns a float32 mixture unless
``dtype=torch.float64``.

:func:`target` builds one by name (:data:`TARGETS` lists the names). :func:`plot_extent` and
:func:`grid_points` give the square window a mixture is drawn in and the arrow positions inside it:
the training snapshots of :mod:`ncsn_toy.recipes` and every figure use the same ones.
:func:`uniform_in_box` draws the Langevin samplers' start, uniform over the data's box (as
in the paper).

References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
Distribution", NeurIPS 2019 (arXiv:1907.05600); the ring and grid follow Metz et al., "Unrolled
Generative Adversarial Networks", ICLR 2017, and Dumoulin et al., "Adversarially Learned
Inference", ICLR 2017, at the scale of the paper's mixture (unit standard deviations).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from . import _checks
from .mixtures import GaussianMixture, check_mixture

__all__ = [
    "TARGETS",
    "target",
    "two_gaussians",
    "four_gaussians",
    "ring",
    "grid",
    "spiral",
    "anisotropic",
    "plot_extent",
    "grid_points",
    "uniform_in_box",
]


def two_gaussians(*, dtype: torch.dtype = torch.float32) -> GaussianMixture:
    """The paper's toy mixture p = 1/5 N((-5, -5), I) + 4/5 N((5, 5), I) (Sec. 3.2, Fig. 3)."""
    return GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], dtype=dtype)


def four_gaussians(*, dtype: torch.dtype = torch.float32) -> GaussianMixture:
    """A four-mode 2-D mixture: weights 0.1, 0.2, 0.3, 0.4 at (+-10, +-10), unit covariances.

    The modes sit where the original notebook's four-mode figure put them; the weights differ so
    that getting them right is a real test of a sampler.
    """
    means = [[-10.0, 10.0], [10.0, -10.0], [-10.0, -10.0], [10.0, 10.0]]
    return GaussianMixture([0.1, 0.2, 0.3, 0.4], means, dtype=dtype)


def ring(
    *, n_modes: int = 8, radius: float = 10.0, std: float = 1.0, dtype: torch.dtype = torch.float32
) -> GaussianMixture:
    """``n_modes`` Gaussians N(mu_k, std^2 I) with equal weights 1 / n_modes on a circle around 0.

    mu_k = radius (cos 2 pi k / n_modes, sin 2 pi k / n_modes), k = 0..n_modes-1 (mode 0 on the
    positive x axis, counter-clockwise). With the defaults neighbouring modes are
    2 radius sin(pi / 8) = 7.7 standard deviations apart: separate modes, as in the paper's mixture.
    """
    n_modes = _checks.positive_int(n_modes, "n_modes")
    radius = _checks.positive_float(radius, "radius")
    std = _checks.positive_float(std, "std")
    angles = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes  # (K,)
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (K, 2)
    weights = torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64)  # (K,)
    variances = torch.full((n_modes,), std**2, dtype=torch.float64)  # (K,)
    return GaussianMixture(weights, means, variances, dtype=dtype)


def grid(
    *,
    n_per_side: int = 5,
    spacing: float = 6.0,
    std: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """``n_per_side``^2 Gaussians N(mu_k, std^2 I) with equal weights on a square grid centred at 0.

    mu_k = spacing (i - (n - 1) / 2, j - (n - 1) / 2), i, j = 0..n-1, listed row by row (x fastest,
    y from bottom to top); with the defaults, 25 modes from -12 to 12 along each axis, neighbours
    6 standard deviations apart.
    """
    n = _checks.positive_int(n_per_side, "n_per_side")
    spacing = _checks.positive_float(spacing, "spacing")
    std = _checks.positive_float(std, "std")
    ticks = spacing * (torch.arange(n, dtype=torch.float64) - (n - 1) / 2)  # (n,)
    gy, gx = torch.meshgrid(ticks, ticks, indexing="ij")
    means = torch.stack([gx.flatten(), gy.flatten()], dim=1)  # (n * n, 2)
    weights = torch.full((n * n,), 1.0 / n**2, dtype=torch.float64)  # (n * n,)
    variances = torch.full((n * n,), std**2, dtype=torch.float64)  # (n * n,)
    return GaussianMixture(weights, means, variances, dtype=dtype)


def spiral(
    *,
    n_modes: int = 40,
    turns: float = 1.5,
    inner_radius: float = 2.0,
    outer_radius: float = 12.0,
    std: float = 0.7,
    weight_ratio: float = 4.0,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """A chain of ``n_modes`` small Gaussians N(mu_k, std^2 I) along an Archimedean spiral.

    The spiral is r = inner_radius + (outer_radius - inner_radius) theta / theta_max, theta from 0
    to theta_max = 2 pi turns, so consecutive arms are (outer - inner) / turns apart (9.5 standard
    deviations with the defaults). The means sit at equal arc length along it, mode 0 at the inner
    end: with the defaults 1.7 apart (2.4 standard deviations), so the beads merge into one ridge.
    The weights grow linearly along the chain, w_k proportional to
    1 + (weight_ratio - 1) k / (K - 1): the outermost mode is ``weight_ratio`` times as heavy as
    the innermost (0.01 to 0.04 by default).
    """
    n_modes = _checks.positive_int(n_modes, "n_modes")
    turns = _checks.positive_float(turns, "turns")
    std = _checks.positive_float(std, "std")
    inner = _checks.nonnegative_float(inner_radius, "inner_radius")
    outer = _checks.positive_float(outer_radius, "outer_radius")
    if outer <= inner:
        raise ValueError(f"outer_radius must be > inner_radius, got {outer} <= {inner}")
    ratio = _checks.positive_float(weight_ratio, "weight_ratio")
    theta_max = 2 * math.pi * turns
    theta = torch.linspace(0.0, theta_max, 20_001, dtype=torch.float64)  # a fine parametrisation
    radius = inner + (outer - inner) * theta / theta_max
    speed = torch.sqrt(radius**2 + ((outer - inner) / theta_max) ** 2)  # |d mu / d theta|
    start = torch.zeros(1, dtype=torch.float64)
    # (20001,) the arc length from the inner end
    arc = torch.cat([start, torch.cumulative_trapezoid(speed, theta)])
    # (K,) where each mode sits along the chain, from 0 (inner end) to 1 (outer end)
    if n_modes > 1:
        t = torch.linspace(0.0, 1.0, n_modes, dtype=torch.float64)
    else:
        t = torch.zeros(1, dtype=torch.float64)
    # (K,) the modes equal arc lengths apart
    index = torch.searchsorted(arc, t * arc[-1]).clamp(max=len(arc) - 1)
    if len(torch.unique(index)) < n_modes:
        raise ValueError(
            f"n_modes = {n_modes} is more modes than the spiral's parametrisation tells apart "
            f"(two would share a mean); use fewer modes or fewer turns"
        )
    direction = torch.stack([torch.cos(theta[index]), torch.sin(theta[index])], dim=1)  # (K, 2)
    means = radius[index, None] * direction  # (K, 2)
    weights = 1 + (ratio - 1) * t  # (K,)
    variances = torch.full((n_modes,), std**2, dtype=torch.float64)  # (K,)
    return GaussianMixture(weights / weights.sum(), means, variances, dtype=dtype)


def anisotropic(
    *,
    condition_number: float = 100.0,
    major_std: float = 5.0,
    angle: float = math.pi / 6,
    dtype: torch.dtype = torch.float32,
) -> GaussianMixture:
    """One Gaussian N(0, Sigma), Sigma = R diag(major_std^2, major_std^2 / condition_number) R^T.

    R rotates by ``angle`` (radians, counter-clockwise; default 30 degrees, so neither axis of the
    ellipse is a coordinate axis). The standard deviations are 5 and 0.5 with the defaults: the
    score is 100 times steeper across the ellipse than along it, the case where one step size
    cannot suit every direction.
    """
    cond = _checks.real_number(condition_number, "condition_number")
    if cond < 1:
        raise ValueError(f"condition_number must be >= 1, got {cond}")
    major = _checks.positive_float(major_std, "major_std")
    angle = _checks.real_number(angle, "angle")
    c = math.cos(angle)
    s = math.sin(angle)
    rotation = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)  # (2, 2)
    variances = torch.tensor([major**2, major**2 / cond], dtype=torch.float64)  # (2,)
    covariance = rotation @ torch.diag(variances) @ rotation.T  # (2, 2)
    return GaussianMixture(
        [1.0], torch.zeros(1, 2, dtype=torch.float64), covariance[None], dtype=dtype
    )


_BUILDERS: dict[str, Callable[..., GaussianMixture]] = {
    "two_gaussians": two_gaussians,
    "four_gaussians": four_gaussians,
    "ring": ring,
    "grid": grid,
    "spiral": spiral,
    "anisotropic": anisotropic,
}
TARGETS: tuple[str, ...] = tuple(_BUILDERS)  # the names :func:`target` knows


def target(name: str, **options: object) -> GaussianMixture:
    """The named target as a :class:`GaussianMixture`; ``options`` go to its builder."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _BUILDERS:
        raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    return _BUILDERS[name](**options)


def uniform_in_box(
    mixture: GaussianMixture,
    n: int,
    generator: torch.Generator | None = None,
    *,
    sigma: float = 0.0,
) -> torch.Tensor:
    """``(n, d)`` points uniform over ``mixture.box(sigma=sigma)``, in the mixture's dtype.

    Where the Langevin samplers start: [-8, 8]^2 for :func:`two_gaussians` (the paper's Sec. 3.2
    and Fig. 3). ``generator=None`` uses a generator seeded with 0.
    """
    mixture = check_mixture(mixture)
    n = _checks.positive_int(n, "n")
    low, high = mixture.box(sigma=sigma)  # (d,), (d,)
    generator = _checks.default_generator(generator)
    unit = torch.rand(n, mixture.dim, generator=generator, dtype=low.dtype)  # (n, d)
    return low + (high - low) * unit


def plot_extent(
    mixture: GaussianMixture, margin: float = 0.15
) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)``: the square around ``mixture.box()``, widened by ``margin``."""
    low, high = mixture.box()
    half = max((high - low).tolist()) * (1 + margin) / 2
    cx, cy = ((low + high) / 2).tolist()
    return (cx - half, cx + half, cy - half, cy + half)


def grid_points(extent: Sequence[float], n: int) -> tuple[torch.Tensor, float]:
    """An ``n x n`` grid of points inside ``extent``, none on its border.

    Returns the ``(n * n, 2)`` points and their spacing.
    """
    x0, x1, y0, y1 = (float(v) for v in extent)
    xs = torch.linspace(x0, x1, n + 2)[1:-1]  # (n,)
    ys = torch.linspace(y0, y1, n + 2)[1:-1]  # (n,)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    spacing = float(xs[1] - xs[0]) if n > 1 else (x1 - x0)
    return torch.stack([gx.flatten(), gy.flatten()], dim=1), spacing
