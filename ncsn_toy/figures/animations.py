"""The animated figures of the gallery (GIFs): forward noising, the samplers, training.

Registered, with the still images, in :data:`ncsn_toy.figures.FIGURES`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoints import checkpoint_mixture
from ..mixtures import GaussianMixture
from ..networks import NoiseConditionalScoreNet
from ..samplers import annealed_langevin_dynamics, langevin_dynamics
from ..targets import two_gaussians, uniform_in_box
from .parts import Context, sampler_animation
from .plotting import Animation, FieldGrid, Panel, add_colorbar, new_figure, nice

__all__ = [
    "forward_noising",
    "langevin_exact_score",
    "score_network_training",
    "noise_conditional_training",
    "annealed_langevin_two_gaussians",
    "annealed_langevin_four_gaussians",
    "network_annealed_animation",
]


def forward_noising(ctx: Context, path: Path) -> None:
    """Samples of p_sigma as sigma grows from 0 to 20: x + sigma z with fixed x and z."""
    mixture = two_gaussians()
    g = ctx.generator(1)
    x = mixture.sample(ctx.config.n_particles, generator=g)
    z = torch.randn(x.shape, generator=g)
    fig, axes = new_figure(1)
    panel = Panel(axes[0], (-40, 40, -40, 40), particles=True, resolution=ctx.config.resolution)
    add_colorbar(fig, panel)
    # the density changes in every frame too
    anim = Animation(fig, [panel.image, panel.scatter, panel.ax.title])
    for t in np.linspace(0, 1, ctx.config.n_frames):
        # slow at first, where the picture changes most
        sigma = 20.0 * float(t) ** 2
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
        panel.set_particles(x + sigma * z)
        panel.set_title(f"forward noising: p_σ = p * N(0, σ² I), σ = {sigma:.2f}")
        anim.capture(ctx.config.frame_ms)
    anim.save(path)


def langevin_exact_score(ctx: Context, path: Path) -> None:
    """Langevin dynamics with the exact score from a uniform start: the weights come out wrong."""
    mixture = two_gaussians()
    g = ctx.generator(2)
    x0 = uniform_in_box(mixture, ctx.config.n_particles, g)
    traj = langevin_dynamics(mixture.score, x0, 0.1, 1000, g, record=ctx.config.n_frames)

    def title(step: int, level: int) -> str:
        return f"Langevin, exact score (ε=0.1): step {step}/1000"

    def density_sigma(level: int) -> float:
        # plain Langevin dynamics samples p itself
        return 0.0

    def field(points: torch.Tensor, level: int) -> torch.Tensor:
        return mixture.score(points)

    sampler_animation(ctx, path, mixture, traj, title, density_sigma, field)


def _training_animation(
    ctx: Context, path: Path, model: nn.Module, mixture: GaussianMixture, label: str
) -> None:
    """Replay the fields recorded while ``model`` was trained, over the exact ones."""
    snap = model.metadata["training"]
    sigmas = snap["sigmas"] or [model.metadata["train"]["sigma"]]
    fields = snap["fields"].float()  # (snapshots, levels, m, 2)
    losses = snap["losses"]  # (steps,)
    fig, axes = new_figure(len(sigmas))
    grid = FieldGrid(snap["extent"], snap["grid"])
    panels = []
    for ax, sigma in zip(axes, sigmas, strict=True):
        panel = Panel(
            ax, snap["extent"], grid=grid, resolution=ctx.config.resolution, arrow_scale=0.5
        )
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
        panel.add_reference_field(sigma * mixture.score(grid.points, sigma))
        panels.append(panel)
    add_colorbar(fig, panels[0])
    changing = []
    for panel in panels:
        changing += [panel.arrows, panel.ax.title]
    anim = Animation(fig, changing)
    # a NoiseConditionalScoreNet, or the one-level ScoreNet
    conditional = bool(snap["sigmas"])
    learned = "σ·s_θ(x, σ)" if conditional else "σ·s_θ(x)"
    for i, step in enumerate(snap["steps"]):
        # the mean loss over the 50 steps before the snapshot (there are none before the first)
        recent = losses[max(step - 50, 0) : step]
        loss = f"loss {recent.mean().item():.3g}" if step else "untrained"
        for j, (panel, sigma) in enumerate(zip(panels, sigmas, strict=True)):
            panel.set_field(fields[i, j] * sigma)
            panel.set_title(
                f"{label}, σ = {nice(sigma)}: step {step}, {loss}\n"
                f"dark: learned {learned}, teal: exact σ·∇log p_σ(x)"
            )
        anim.capture(2 * ctx.config.frame_ms if i else 600)
    anim.save(path)


def score_network_training(ctx: Context, path: Path) -> None:
    """ScoreNet's field while it learns by denoising score matching, over the exact one."""
    model = ctx.model("score_net_two_gaussians")
    _training_animation(ctx, path, model, two_gaussians(), "ScoreNet (DSM)")


def noise_conditional_training(ctx: Context, path: Path) -> None:
    """The noise-conditional network's fields while it learns, one panel per recorded level."""
    model = ctx.model("ncsn_two_gaussians")
    _training_animation(ctx, path, model, two_gaussians(), "NCSN")


def network_annealed_animation(
    ctx: Context,
    path: Path,
    model: NoiseConditionalScoreNet,
    seed: int,
    heading: str = "annealed Langevin, trained NCSN: ",
    numbers: Callable[[GaussianMixture, torch.Tensor], str] | None = None,
) -> None:
    """Annealed Langevin with ``model`` and the sampler settings it stores, from its mixture's box.

    The particles move over the density and the network's field sigma s(x, sigma) of each level.
    The title is ``heading`` + "σ = ... (level i/L), step k/N"; ``numbers(mixture, frame)``
    replaces its line of mode weights (see :func:`~.parts.sampler_animation`).
    """
    mixture = checkpoint_mixture(model)
    sigmas = model.sigmas.tolist()
    step_size = model.metadata["step_size"]
    n_steps_each = model.metadata["n_steps_each"]
    g = ctx.generator(seed)
    traj = annealed_langevin_dynamics(
        model,
        uniform_in_box(mixture, ctx.config.n_particles, g),
        model.sigmas,
        step_size,
        n_steps_each,
        g,
        record=ctx.config.n_frames,
    )

    def field(points: torch.Tensor, level: int) -> torch.Tensor:
        with torch.no_grad():
            return sigmas[level] * model(points, sigmas[level])

    def density_sigma(level: int) -> float:
        return sigmas[level]

    def where(step: int, level: int) -> str:
        total = len(sigmas) * n_steps_each
        sigma = nice(sigmas[level])
        return f"{heading}σ = {sigma} (level {level + 1}/{len(sigmas)}), step {step}/{total}"

    sampler_animation(
        ctx,
        path,
        mixture,
        traj,
        where,
        density_sigma,
        field,
        arrow_scale=0.5,
        numbers=functools.partial(numbers, mixture) if numbers else None,
    )


def annealed_langevin_two_gaussians(ctx: Context, path: Path) -> None:
    """Annealed Langevin with the trained noise-conditional network on the paper's two modes."""
    network_annealed_animation(ctx, path, ctx.model("ncsn_two_gaussians"), 5)


def annealed_langevin_four_gaussians(ctx: Context, path: Path) -> None:
    """Annealed Langevin with the trained noise-conditional network on four modes."""
    network_annealed_animation(ctx, path, ctx.model("ncsn_four_gaussians"), 5)
