"""The straightforward baselines ``bench`` measures us against, written as a typical tutorial would.

Plain code on purpose: new tensors every step, autograd of ``torch.distributions`` for the exact
score, ``nn.Sequential`` with ``torch.cat`` for the original notebook's network, a bare Adam loop,
and a GIF made of PNGs saved and read back. The tests also use them to check that our optimised
paths give the same numbers.
"""

from __future__ import annotations

import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal

from ..mixtures import GaussianMixture

__all__ = [
    "plain_annealed_langevin",
    "autograd_score",
    "sequential_score",
    "plain_training",
    "gif_through_png",
]


def plain_annealed_langevin(
    score: Callable,
    x0: torch.Tensor,
    sigmas: list[float],
    eps: float,
    steps: int,
    g: torch.Generator,
) -> torch.Tensor:
    """Annealed Langevin (Algorithm 1) with new tensors every step; same noise draws as ours."""
    x = x0.clone()
    for sigma in sigmas:
        alpha = eps * sigma**2 / sigmas[-1] ** 2
        for _ in range(steps):
            x = (
                x
                + alpha / 2 * score(x, sigma)
                + math.sqrt(alpha) * torch.randn(x.shape, generator=g, dtype=x.dtype)
            )
    return x


def autograd_score(mixture: GaussianMixture) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The exact score as the paper's code gets it: autograd of a ``torch.distributions``
    log-density."""

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        cov = mixture.covariances + sigma**2 * torch.eye(mixture.dim)
        p_sigma = MixtureSameFamily(
            Categorical(probs=mixture.weights), MultivariateNormal(mixture.means, cov)
        )
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(p_sigma.log_prob(x).sum(), x)
        return grad

    return score


def sequential_score(net: nn.Sequential) -> Callable[[torch.Tensor, float], torch.Tensor]:
    """The original notebook's ``score_network2`` call: a column of sigma beside the points."""

    def score(x: torch.Tensor, sigma: float) -> torch.Tensor:
        with torch.no_grad():
            return net(torch.cat([x, torch.full((len(x), 1), sigma)], dim=1))

    return score


def plain_training(
    model: nn.Module,
    mixture: GaussianMixture,
    steps: int,
    batch_size: int,
    g: torch.Generator,
    lr: float = 1e-3,
) -> None:
    """A bare Adam loop on the NCSN objective (no EMA, no schedule, no checks)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    sigmas = model.sigmas
    for _ in range(steps):
        x = mixture.sample(batch_size, generator=g)
        used = sigmas[torch.randint(len(sigmas), (len(x),), generator=g)][:, None]
        z = torch.randn(x.shape, generator=g)
        score = model.net(torch.cat([x + used * z, used], dim=1))
        loss = 0.5 * (used * score + z).square().sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def gif_through_png(
    mixture: GaussianMixture,
    extent: tuple[float, float, float, float],
    points: torch.Tensor,
    field: torch.Tensor,
    particles: list[torch.Tensor],
) -> None:
    """A GIF the usual way: per frame a new figure (density, arrows, particles), PNG, read back."""
    frames = []
    for i, x in enumerate(particles):
        fig = Figure(figsize=(5.5, 5.05), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        r = 160
        xs = torch.linspace(extent[0], extent[1], r)
        gx, gy = torch.meshgrid(xs, xs, indexing="xy")
        density = mixture.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp().reshape(r, r)
        image = ax.imshow(density.numpy(), origin="lower", extent=extent, cmap="Oranges")
        fig.colorbar(image, ax=ax)
        ax.quiver(*points.T.numpy(), *field.T.numpy())
        ax.scatter(x[:, 0].numpy(), x[:, 1].numpy(), s=2.5)
        ax.set_title(f"step {i}")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        frames.append(iio.imread(buffer.getvalue()))
    with tempfile.TemporaryDirectory() as tmp:
        iio.imwrite(
            Path(tmp) / "b.gif", np.stack([f[..., :3] for f in frames]), duration=80, loop=0
        )
