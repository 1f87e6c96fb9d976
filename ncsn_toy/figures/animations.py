"""The animated figures of the gallery (GIFs): forward noising, the samplers, training.

Registered, with the still images, in :data:`ncsn_toy.figures.FIGURES`.
"""

from __future__ import annotations

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
    mixture, g = two_gaussians(), ctx.generator(1)
    x = mixture.sample(ctx.config.n_particles, generator=g)
    z = torch.randn(x.shape, generator=g)
    fig, axes = new_figure(1)
    panel = Panel(axes[0], (-40, 40, -40, 40), particles=True, resolution=ctx.config.resolution)
    add_colorbar(fig, panel)
    anim = Animation(fig, [panel.image, panel.scatter, panel.ax.title])  # the density changes too
    for t in np.linspace(0, 1, ctx.config.n_frames):
        sigma = 20.0 * float(t) ** 2  # slow at first, where the picture changes most
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
        panel.set_particles(x + sigma * z)
        panel.set_title(f"forward noising: p_σ = p * N(0, σ² I), σ = {sigma:.2f}")
        anim.capture(ctx.config.frame_ms)
    anim.save(path)


def langevin_exact_score(ctx: Context, path: Path) -> None:
    """Langevin dynamics with the exact score from a uniform start: the weights come out wrong."""
    mixture, g = two_gaussians(), ctx.generator(2)
    x0 = uniform_in_box(mixture, ctx.config.n_particles, g)
    traj = langevin_dynamics(mixture.score, x0, 0.1, 1000, g, record=ctx.config.n_frames)
    sampler_animation(
        ctx,
        path,
        mixture,
        traj,
        lambda step, _: f"Langevin, exact score (ε=0.1): step {step}/1000",
        lambda _: 0.0,
        lambda pts, _: mixture.score(pts),
    )


def _training_animation(
    ctx: Context, path: Path, model: nn.Module, mixture: GaussianMixture, label: str
) -> None:
    """Replay the fields recorded while ``model`` was trained, over the exact ones."""
    snap = model.metadata["training"]
    sigmas = snap["sigmas"] or [model.metadata["train"]["sigma"]]
    fields, losses = snap["fields"].float(), snap["losses"]  # (snapshots, levels, m, 2), (steps,)
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
    anim = Animation(fig, [a for p in panels for a in (p.arrows, p.ax.title)])
    conditional = bool(snap["sigmas"])  # a NoiseConditionalScoreNet, or the one-level ScoreNet
    learned = "σ·s_θ(x, σ)" if conditional else "σ·s_θ(x)"
    for i, step in enumerate(snap["steps"]):
        loss = f"loss {losses[max(step - 50, 0) : step].mean().item():.3g}" if step else "untrained"
        for j, (panel, sigma) in enumerate(zip(panels, sigmas, strict=True)):
            panel.set_field(fields[i, j] * sigma)
            panel.set_title(
                f"{label}, σ = {nice(sigma)}: step {step}, {loss}\n"
                f"dark: learned {learned}, teal: exact σ·∇log p_σ(x)"
            )
        anim.capture(2 * ctx.config.frame_ms if i else 600)
    anim.save(path)


def score_network_training(ctx: Context, path: Path) -> None:
    model = ctx.model("score_net_two_gaussians")
    _training_animation(ctx, path, model, two_gaussians(), "ScoreNet (DSM)")


def noise_conditional_training(ctx: Context, path: Path) -> None:
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
    """Annealed Langevin with ``model`` and the settings it stores, from its mixture's box, over the density
    and the network's field sigma s(x, sigma) of each level. The title is ``heading`` + "σ = ... (level i/L),
    step k/N"; ``numbers(mixture, frame)`` replaces its line of mode weights (see ``sampler_animation``)."""
    mixture = checkpoint_mixture(model)
    sigmas, eps, steps = (
        model.sigmas.tolist(),
        model.metadata["step_size"],
        model.metadata["n_steps_each"],
    )
    g = ctx.generator(seed)
    traj = annealed_langevin_dynamics(
        model,
        uniform_in_box(mixture, ctx.config.n_particles, g),
        model.sigmas,
        eps,
        steps,
        g,
        record=ctx.config.n_frames,
    )

    def field(points, level):
        with torch.no_grad():
            return sigmas[level] * model(points, sigmas[level])

    def where(step, level):
        total = len(sigmas) * steps
        return f"{heading}σ = {nice(sigmas[level])} (level {level + 1}/{len(sigmas)}), step {step}/{total}"

    sampler_animation(
        ctx,
        path,
        mixture,
        traj,
        where,
        lambda level: sigmas[level],
        field,
        arrow_scale=0.5,
        numbers=(lambda frame: numbers(mixture, frame)) if numbers else None,
    )


def annealed_langevin_two_gaussians(ctx: Context, path: Path) -> None:
    network_annealed_animation(ctx, path, ctx.model("ncsn_two_gaussians"), 5)


def annealed_langevin_four_gaussians(ctx: Context, path: Path) -> None:
    network_annealed_animation(ctx, path, ctx.model("ncsn_four_gaussians"), 5)
