"""Where the mode weights are decided: three samplers measured at every noise level of their run.

:func:`weights_along_the_run` draws ``weights_along_the_run.png`` for the paper's two modes and the
exact score, with three samplers: annealed Langevin dynamics (the paper's settings), the
probability-flow ODE (Heun, from N(0, 800^2 I)) and plain Langevin dynamics. At every noise level
it measures the particles three ways:

- the weight of the small mode: the mean responsibility under p itself (sigma = 0), i.e. the share
  of particles on the small mode's side of p's boundary, beside the same share for exact samples
  of p_sigma (what a sampler that is exact at that level shows). Responsibilities under p_sigma
  would say little: at large sigma every point is shared out by the prior weights;
- the share of particles already on the side where they end: where it reaches 1, the weights are
  decided;
- the energy distance to exact samples of p_sigma, on x / sqrt(1 + sigma^2) (the modes' spread at
  that level is sqrt(1 + sigma^2), so every level is measured on one scale), beside twice the
  standard deviation of the same estimate between two exact samples (its noise).

Each figure is a function ``(ctx, path) -> None`` like those of :mod:`~ncsn_toy.figures.gallery`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..metrics import energy_distance
from ..mixtures import GaussianMixture
from ..noise_levels import geometric_sigmas
from ..samplers import annealed_langevin_dynamics, langevin_dynamics
from ..sde import VESDE, probability_flow_sampling
from ..targets import two_gaussians, uniform_in_box
from .parts import Context
from .plotting import new_figure, save_png
from .sde import LINE_COLORS, RHO, SIGMA_MAX, SIGMA_MIN

__all__ = ["weights_along_the_run", "Curve", "curves"]

# the paper's annealed Langevin (Fig. 3): sigma 20 -> 1 in 10 levels, 100 steps each, eps = 0.1
PAPER_LEVELS = (20.0, 1.0, 10)
PAPER_STEPS_EACH = 100
PAPER_STEP_SIZE = 0.1
# plain Langevin as in the paper's Fig. 3, measured every LANGEVIN_EVERY steps
LANGEVIN_STEPS = 1000
LANGEVIN_EVERY = 100
# Heun steps of the probability-flow ODE: accurate (its weights are the prior's, 1.15 / 800 off)
ODE_STEPS = 50
# the ODE's energy distance is measured at every ODE_DISTANCE_EVERY-th step of its grid
ODE_DISTANCE_EVERY = 5
# particles per sampler, as a multiple of the render's n_particles: a weight's binomial standard
# error must be well below the 0.02 the figure is about (10,000 particles: 0.004)
PARTICLES_PER_RENDER_PARTICLE = 5
# points of the energy distance on each side, at most (three (m, m) distance matrices a frame)
DISTANCE_POINTS = 2000
# exact samples of p_sigma behind the reference curve (at most), at REFERENCE_LEVELS noise levels
REFERENCE_POINTS = 10_000
REFERENCE_LEVELS = 40
COLORS = {
    "annealed Langevin": LINE_COLORS["annealed Langevin"],
    "probability-flow ODE": LINE_COLORS["probability flow, Heun"],
    "plain Langevin": LINE_COLORS["Langevin"],
}


class Curve(NamedTuple):
    """One sampler measured along its run."""

    sigmas: list[float]  # the noise level of each measured frame (plain Langevin: 0)
    small_weight: list[float]  # weight of the small mode, by responsibilities under p
    decided: list[float]  # share of particles already on the side of p's boundary where they end
    distance_sigmas: list[float]  # the frames' noise levels where the distance is measured
    distance: list[float]  # energy distance to exact samples of p_sigma, on x / sqrt(1 + sigma^2)


def noisy_samples(
    mixture: GaussianMixture, n: int, sigma: float, g: torch.Generator
) -> torch.Tensor:
    """``(n, d)`` exact samples of p_sigma."""
    x = mixture.sample(n, generator=g)
    return x + sigma * torch.randn(x.shape, generator=g)


def scaled_distance(
    mixture: GaussianMixture, x: torch.Tensor, sigma: float, g: torch.Generator
) -> float:
    """Energy distance of ``x`` ``(n, d)`` to as many exact samples of p_sigma, on one scale."""
    scale = math.sqrt(1 + sigma**2)
    return energy_distance(x / scale, noisy_samples(mixture, len(x), sigma, g) / scale)


def measure(
    mixture: GaussianMixture,
    frames: torch.Tensor,
    sigmas: list[float],
    distance_frames: list[int],
    g: torch.Generator,
) -> Curve:
    """The measures of every frame of ``frames`` ``(F, n, d)``, frame f taken at sigmas[f]; the
    energy distance only at the frames ``distance_frames`` (on the first DISTANCE_POINTS)."""
    # (F, n, K): responsibilities under p itself, once per frame
    responsibilities = torch.stack([mixture.responsibilities(frame) for frame in frames])
    small = responsibilities[:, :, 0].mean(dim=1)  # (F,) mean responsibility: the weight
    side = responsibilities.argmax(dim=2)  # (F, n) the side of p's boundary each particle is on
    decided = (side == side[-1]).float().mean(dim=1)  # (F,)
    distance = [
        scaled_distance(mixture, frames[f, :DISTANCE_POINTS], sigmas[f], g) for f in distance_frames
    ]
    distance_sigmas = [sigmas[f] for f in distance_frames]
    return Curve(sigmas, small.tolist(), decided.tolist(), distance_sigmas, distance)


def curves(n_particles: int, seed: int = 0) -> dict[str, Curve]:
    """The three samplers with the exact score of the paper's mixture, measured along their runs.

    Annealed Langevin at the end of each level, the ODE at every step of its grid, plain Langevin
    every ``LANGEVIN_EVERY`` steps; ``n_particles`` per sampler, all randomness from ``seed``.
    """
    mixture = two_gaussians()
    g = torch.Generator().manual_seed(seed)
    start = uniform_in_box(mixture, n_particles, g)
    sigmas = geometric_sigmas(*PAPER_LEVELS).tolist()
    level_ends = [PAPER_STEPS_EACH * (i + 1) for i in range(len(sigmas))]
    annealed = annealed_langevin_dynamics(
        mixture.score, start, sigmas, PAPER_STEP_SIZE, PAPER_STEPS_EACH, g, record=level_ends
    )
    langevin_frames = list(range(0, LANGEVIN_STEPS + 1, LANGEVIN_EVERY))
    plain = langevin_dynamics(
        mixture.score, start, PAPER_STEP_SIZE, LANGEVIN_STEPS, g, record=langevin_frames
    )
    sde = VESDE(SIGMA_MIN, SIGMA_MAX)
    grid = sde.grid(ODE_STEPS, rho=RHO)
    prior = sde.prior_sample(n_particles, 2, g)
    ode = probability_flow_sampling(
        mixture.score, prior, sde, ODE_STEPS, rho=RHO, record=list(range(ODE_STEPS + 1))
    )
    all_levels = list(range(len(sigmas)))
    every_fifth = list(range(0, ODE_STEPS + 1, ODE_DISTANCE_EVERY))
    last = [len(langevin_frames) - 1]
    return {
        "annealed Langevin": measure(mixture, annealed.frames, sigmas, all_levels, g),
        "probability-flow ODE": measure(mixture, ode.frames, grid, every_fifth, g),
        "plain Langevin": measure(mixture, plain.frames, [0.0] * len(langevin_frames), last, g),
    }


def reference_weights(
    mixture: GaussianMixture, n: int, g: torch.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(sigmas, weight of the small mode) for n exact samples of p_sigma at each of
    REFERENCE_LEVELS noise levels over the figure's range."""
    levels = np.geomspace(SIGMA_MAX, SIGMA_MIN, REFERENCE_LEVELS)
    weights = []
    for sigma in levels.tolist():
        x = noisy_samples(mixture, n, sigma, g)
        weights.append(mixture.responsibilities(x)[:, 0].mean().item())
    return levels, np.array(weights)


def exact_distances(
    mixture: GaussianMixture, sigmas: list[float], n: int, g: torch.Generator
) -> list[float]:
    """The same energy distance between two exact samples of p_sigma (n points each) at each of
    ``sigmas``: what the estimate's noise alone gives (0 on average)."""
    return [scaled_distance(mixture, noisy_samples(mixture, n, s, g), s, g) for s in sigmas]


def weights_along_the_run(ctx: Context, path: Path) -> None:
    """The weight of the small mode, the decided share and the energy distance along three runs.

    Against the noise level sigma of each measured frame (log axis, sigma falling to the right);
    plain Langevin has no noise level and is drawn as a horizontal line over the whole axis.
    """
    mixture = two_gaussians()
    n = PARTICLES_PER_RENDER_PARTICLE * ctx.config.n_particles
    runs = curves(n, ctx.config.seed)
    # twice the samplers' particles, at most REFERENCE_POINTS (a fast render stays fast)
    levels, reference = reference_weights(mixture, min(2 * n, REFERENCE_POINTS), ctx.generator(30))
    noise_sigmas = sorted({s for c in runs.values() for s in c.distance_sigmas if s > 0})
    noise = exact_distances(mixture, noise_sigmas, min(n, DISTANCE_POINTS), ctx.generator(31))
    fig, axes = new_figure(3, colorbar=False)
    axes[0].plot(levels, reference, color="black", linestyle="--", linewidth=1, label="exact p_σ")
    axes[0].axhline(0.2, color="black", linestyle=":", linewidth=1, label="truth: 0.2")
    axes[2].scatter(noise_sigmas, noise, s=14, color="#9a9a9a", label="two exact samples (noise)")
    axes[2].axhline(0, color="black", linewidth=0.8)
    for name, curve in runs.items():
        style = {"color": COLORS[name], "label": name}
        panels = (
            (axes[0], curve.sigmas, curve.small_weight),
            (axes[1], curve.sigmas, curve.decided),
            (axes[2], curve.distance_sigmas, curve.distance),
        )
        for ax, sigmas, values in panels:
            if name == "plain Langevin" and ax is axes[2]:
                # far above the others' scale: said in words
                ax.text(
                    0.03,
                    0.95,
                    f"plain Langevin: {values[-1]:.1f} (off this scale)",
                    transform=ax.transAxes,
                    color=style["color"],
                    fontsize=8,
                    va="top",
                )
            elif name == "plain Langevin":
                # no noise level: one line at its last value, over the whole axis
                ax.axhline(values[-1], linewidth=3, alpha=0.6, **style)
            else:
                ax.plot(sigmas, values, marker="o", markersize=3, **style)
    titles = (
        "weight of the small mode (-5, -5):\nshare of particles on its side of p's boundary",
        "share of particles already on the side\nwhere they end the run: decided",
        "energy distance to exact samples of p_σ\n"
        "(both on x / √(1 + σ²); unbiased, so it may be < 0)",
    )
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_xlim(SIGMA_MAX * 1.3, SIGMA_MIN / 1.3)  # sigma falls to the right, as a run goes
        ax.set_xlabel("noise level σ of the frame (the run goes left to right)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylim(0.15, 0.55)
    axes[1].set_ylim(0.45, 1.03)
    axes[0].legend(fontsize=8, loc="lower left")
    axes[1].legend(fontsize=8, loc="lower right")
    axes[2].legend(fontsize=8, loc="upper right")
    save_png(fig, path)
