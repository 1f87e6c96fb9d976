"""The zoo's figures: every target's exact samples over its density, and annealed Langevin with ``fit``'s networks.

- :func:`targets`: ``targets.png``, one panel per name of ``TARGETS``.
- :func:`annealed_langevin_ring`, :func:`annealed_langevin_grid`, :func:`annealed_langevin_spiral`:
  annealed Langevin with the committed ``ncsn_<target>`` networks (made by :func:`~ncsn_toy.recipes.fit`),
  from the mixture's box, with their own levels and sampler settings.
- :func:`target_figures`: the same GIF for any target (``render --target NAME``), from
  ``checkpoints/ncsn_<NAME>.pt`` when it exists, else fitted on the spot.

Each figure is a function ``(ctx, path) -> None`` like those of :mod:`~ncsn_toy.figures.gallery`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoints import load_checkpoint
from ..mixtures import GaussianMixture
from ..networks import NoiseConditionalScoreNet
from ..recipes import fit
from ..samplers import annealed_langevin_dynamics
from ..targets import TARGETS, target
from .parts import Context, extent, sampler_animation, uniform_box
from .plotting import Panel, add_colorbar, new_figure, nice, save_png

__all__ = ["targets", "annealed_langevin_ring", "annealed_langevin_grid", "annealed_langevin_spiral",
           "annealed_langevin_target", "target_figures", "ZOO_FIGURES"]

ZOO_COLUMNS = 3  # panels per row of targets.png


def targets(ctx: Context, path: Path) -> None:
    """The zoo: exact i.i.d. samples of every named target over its exact density, one panel each."""
    rows = -(-len(TARGETS) // ZOO_COLUMNS)
    fig, axes = new_figure(ZOO_COLUMNS, rows)
    g = ctx.generator(11)
    first = None
    for ax, name in zip(axes, TARGETS, strict=False):
        mixture = target(name)
        panel = Panel(ax, extent(mixture), particles=True, resolution=ctx.config.resolution)
        panel.set_density(mixture.log_prob(panel.pixels))
        panel.set_particles(mixture.sample(ctx.config.n_particles, generator=g))
        weights = mixture.weights
        spread = f"{weights.min().item():.2g}–{weights.max().item():.2g}" if mixture.n_components > 1 else "1"
        panel.set_title(f"{name}: {mixture.n_components} mode{'s' * (mixture.n_components > 1)}, weights {spread}")
        first = first or panel
    for ax in axes[len(TARGETS):]:
        ax.set_visible(False)
    add_colorbar(fig, first, label="density p(x) / max")
    save_png(fig, path)


def _annealed_with(ctx: Context, path: Path, model: NoiseConditionalScoreNet, label: str) -> None:
    """Annealed Langevin with ``model`` and its stored settings, from the mixture's box."""
    mixture = GaussianMixture.from_dict(model.metadata["mixture"])
    sigmas, eps, steps = model.sigmas.tolist(), model.metadata["step_size"], model.metadata["n_steps_each"]
    g = ctx.generator(12)
    trajectory = annealed_langevin_dynamics(model, uniform_box(mixture, ctx.config.n_particles, g), model.sigmas,
                                            eps, steps, g, record=ctx.config.n_frames)
    total = len(sigmas) * steps

    def field(points: torch.Tensor, level: int) -> torch.Tensor:
        with torch.no_grad():
            return sigmas[level] * model(points, sigmas[level])

    def title(step: int, level: int) -> str:
        return (f"{label}: annealed Langevin, fit's network, σ = {nice(sigmas[level])} "
                f"(level {level + 1}/{len(sigmas)}), step {step}/{total}")

    sampler_animation(ctx, path, mixture, trajectory, title, lambda level: sigmas[level], field, arrow_scale=0.5)


def annealed_langevin_target(ctx: Context, path: Path, name: str) -> None:
    """Annealed Langevin on target ``name`` with ``ncsn_<name>`` from the checkpoints (fitted if there is none)."""
    checkpoint = Path(ctx.config.checkpoints) / f"ncsn_{name}.pt"
    if ctx.config.retrain or not checkpoint.is_file():
        model = fit(target(name))
    else:
        model = load_checkpoint(checkpoint, expect=NoiseConditionalScoreNet)
    _annealed_with(ctx, path, model, name)


def annealed_langevin_ring(ctx: Context, path: Path) -> None:
    _annealed_with(ctx, path, ctx.model("ncsn_ring"), "ring")


def annealed_langevin_grid(ctx: Context, path: Path) -> None:
    _annealed_with(ctx, path, ctx.model("ncsn_grid"), "grid")


def annealed_langevin_spiral(ctx: Context, path: Path) -> None:
    _annealed_with(ctx, path, ctx.model("ncsn_spiral"), "spiral")


ZOO_FIGURES: dict[str, Callable[[Context, Path], None]] = {  # for the gallery's FIGURES
    "targets.png": targets,
    "annealed_langevin_ring.gif": annealed_langevin_ring,
    "annealed_langevin_grid.gif": annealed_langevin_grid,
    "annealed_langevin_spiral.gif": annealed_langevin_spiral,
}


def target_figures(names: list[str]) -> dict[str, Callable[[Context, Path], None]]:
    """``annealed_langevin_<name>.gif`` for each target name (``render --target NAME ...``)."""
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; expected names from {list(TARGETS)}")
    return {f"annealed_langevin_{name}.gif": functools.partial(annealed_langevin_target, name=name)
            for name in names}
