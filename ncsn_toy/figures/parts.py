"""What every figure of the gallery shares: sizes, the trained networks, the plot area, helpers.

Used by :mod:`~ncsn_toy.figures.stills` (the still images) and :mod:`~ncsn_toy.figures.animations`
(the GIFs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..metrics import mode_weights
from ..mixtures import GaussianMixture
from ..recipes import DEFAULT_CHECKPOINTS, load_or_train
from ..samplers import Trajectory
from ..targets import plot_extent
from .plotting import COLORS, Animation, FieldGrid, Panel, add_colorbar, new_figure

__all__ = [
    "RenderConfig",
    "Context",
    "extent",
    "weights_text",
    "field_panel",
    "score_error_image",
    "sampler_animation",
]


@dataclass(frozen=True)
class RenderConfig:
    """Sizes of a render; :meth:`fast` for tests."""

    n_particles: int = 2000  # particles in every sampler figure
    n_frames: int = 60  # frames of a sampler animation
    frame_ms: int = 80  # display time of one frame
    grid: int = 21  # arrows per side of a score field
    resolution: int = 240  # pixels per side of a density image
    seed: int = 0  # seeds the particles and the samplers
    checkpoints: Path = DEFAULT_CHECKPOINTS  # where the trained networks are
    retrain: bool = False  # train the networks instead of loading them

    @classmethod
    def fast(cls, **changes: object) -> RenderConfig:
        return cls(**{"n_particles": 300, "n_frames": 6, "grid": 11, "resolution": 48, **changes})


@dataclass
class Context:
    """A render in progress: its sizes, and the networks loaded so far (each once)."""

    config: RenderConfig
    _models: dict = field(default_factory=dict)

    def model(self, name: str) -> nn.Module:
        if name not in self._models:
            self._models[name] = load_or_train(
                name, self.config.checkpoints, retrain=self.config.retrain, progress=False
            )
        return self._models[name]

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed + offset)


def extent(mixture: GaussianMixture) -> tuple[float, float, float, float]:
    """The plot area of a mixture: the square around its box, with a margin.

    The same area as the training snapshots' fields.
    """
    return plot_extent(mixture)


def weights_text(mixture: GaussianMixture, x: torch.Tensor) -> str:
    """The mode weights of the particles ``x`` ``(n, d)`` beside the true ones, for a title."""
    measured = "/".join(f"{w:.2f}" for w in mode_weights(mixture, x).tolist())
    truth = "/".join(f"{w:.2f}" for w in mixture.weights.tolist())
    return f"weights {measured} (truth {truth})"


def field_panel(ax, ctx: Context, mixture: GaussianMixture, sigma: float, **kwargs) -> Panel:
    """A panel over the mixture's plot area with arrows, the density of p_sigma behind."""
    area = extent(mixture)
    panel = Panel(
        ax, area, grid=FieldGrid(area, ctx.config.grid), resolution=ctx.config.resolution, **kwargs
    )
    panel.set_density(mixture.log_prob(panel.pixels, sigma))
    return panel


def score_error_image(
    errors: Panel,
    model: nn.Module,
    mixture: GaussianMixture,
    sigma: float,
    pixels: torch.Tensor,
    resolution: int,
):
    """Draw log10 |s_θ(x) − ∇log p_σ(x)|² over ``pixels`` (r*r, 2) on ``errors``,
    with the contours log p_σ = −8, −5, −3 that bound where the samples live; returns the
    image for a colour bar."""
    with torch.no_grad():
        err = (model(pixels) - mixture.score(pixels, sigma)).square().sum(1)  # (r*r,)
    r = resolution
    image = errors.ax.imshow(
        torch.log10(err + 1e-6).reshape(r, r).numpy(),
        origin="lower",
        extent=errors.extent,
        cmap="magma_r",
        vmin=-3,
        vmax=2,
        zorder=0,
    )
    errors.ax.contour(
        pixels[:, 0].reshape(r, r).numpy(),
        pixels[:, 1].reshape(r, r).numpy(),
        mixture.log_prob(pixels, sigma).reshape(r, r).numpy(),
        levels=[-8.0, -5.0, -3.0],
        colors=COLORS["reference"],
        linewidths=1.0,
    )
    return image


def sampler_animation(
    ctx: Context,
    path: Path,
    mixture: GaussianMixture,
    trajectory: Trajectory,
    title: Callable[[int, int], str],
    density_sigma: Callable[[int], float],
    field_fn: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    arrow_scale: float = 3.0,
    numbers: Callable[[torch.Tensor], str] | None = None,
) -> None:
    """Particles of a recorded trajectory over the density (and field) of the current noise level.

    Only the particles and the title change in every frame; the density and the field are redrawn
    into the background when the level changes. The title is
    ``title(step, level) + numbers(frame)``; ``numbers`` defaults to a second line with the
    particles' mode weights and the true ones.
    """
    fig, axes = new_figure(1)
    area = extent(mixture)
    grid = FieldGrid(area, ctx.config.grid) if field_fn is not None else None
    panel = Panel(
        axes[0],
        area,
        grid=grid,
        arrow_scale=arrow_scale,
        arrow_color=COLORS["faint_arrows"],
        particles=True,
        resolution=ctx.config.resolution,
    )
    add_colorbar(fig, panel)
    anim = Animation(fig, [panel.scatter, panel.ax.title])
    shown_level = None
    for frame, step, level in zip(
        trajectory.frames, trajectory.steps.tolist(), trajectory.levels.tolist(), strict=True
    ):
        if level != shown_level:
            panel.set_density(mixture.log_prob(panel.pixels, density_sigma(level)))
            if field_fn is not None:
                panel.set_field(field_fn(panel.grid.points, level))
            anim.redraw_background()
            shown_level = level
        panel.set_particles(frame)
        caption = numbers(frame) if numbers is not None else "\n" + weights_text(mixture, frame)
        panel.set_title(title(step, level) + caption)
        anim.capture(ctx.config.frame_ms)
    anim.save(path)
