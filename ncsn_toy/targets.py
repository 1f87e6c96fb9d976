"""The named 2-D problems, every one a Gaussian mixture, so that every score stays exact.

- :func:`two_gaussians`: the paper's p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I) (Sec. 3.2, Fig. 3).
- :func:`four_gaussians`: four modes with unequal weights, where the seed's figure put them.

:func:`target` builds one by name (:data:`TARGETS` lists the names). :func:`plot_extent` and
:func:`grid_points` give the square window a mixture is drawn in and the arrow positions inside
it: the training snapshots of :mod:`ncsn_toy.recipes` and every figure use the same ones.

Reference: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
Distribution", NeurIPS 2019 (arXiv:1907.05600).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from .mixtures import GaussianMixture

__all__ = ["TARGETS", "target", "two_gaussians", "four_gaussians", "plot_extent", "grid_points"]


def two_gaussians(*, dtype: torch.dtype = torch.float32) -> GaussianMixture:
    """The paper's toy mixture p = 1/5 N((-5, -5), I) + 4/5 N((5, 5), I) (Sec. 3.2, Fig. 3)."""
    return GaussianMixture([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], dtype=dtype)


def four_gaussians(*, dtype: torch.dtype = torch.float32) -> GaussianMixture:
    """A four-mode 2-D mixture with unequal weights 0.1, 0.2, 0.3, 0.4 at (+-10, +-10), unit covariances.

    The modes sit where the seed project's four-mode figure put them; the weights differ so
    that getting them right is a real test of a sampler.
    """
    means = [[-10.0, 10.0], [10.0, -10.0], [-10.0, -10.0], [10.0, 10.0]]
    return GaussianMixture([0.1, 0.2, 0.3, 0.4], means, dtype=dtype)


_BUILDERS: dict[str, Callable[..., GaussianMixture]] = {
    "two_gaussians": two_gaussians,
    "four_gaussians": four_gaussians,
}
TARGETS: tuple[str, ...] = tuple(_BUILDERS)  # the names :func:`target` knows


def target(name: str, **options: object) -> GaussianMixture:
    """The named target as a :class:`GaussianMixture`; ``options`` go to its builder."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _BUILDERS:
        raise ValueError(f"unknown target {name!r}; expected one of {', '.join(TARGETS)}")
    return _BUILDERS[name](**options)


def plot_extent(mixture: GaussianMixture, margin: float = 0.15) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)``: the square around ``mixture.box()``, widened by ``margin`` of its side."""
    low, high = mixture.box()
    half = max((high - low).tolist()) * (1 + margin) / 2
    cx, cy = ((low + high) / 2).tolist()
    return (cx - half, cx + half, cy - half, cy + half)


def grid_points(extent: Sequence[float], n: int) -> tuple[torch.Tensor, float]:
    """An ``n x n`` grid of points inside ``extent`` (no point on its border): ``(n*n, 2)`` points and the spacing."""
    x0, x1, y0, y1 = (float(v) for v in extent)
    xs, ys = torch.linspace(x0, x1, n + 2)[1:-1], torch.linspace(y0, y1, n + 2)[1:-1]
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    spacing = float(xs[1] - xs[0]) if n > 1 else (x1 - x0)
    return torch.stack([gx.flatten(), gy.flatten()], dim=1), spacing
