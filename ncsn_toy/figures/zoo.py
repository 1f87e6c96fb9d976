"""The zoo's figures: every named target, and annealed Langevin with the networks ``fit`` made.

- :func:`targets`: ``targets.png``, exact samples over the density, one panel per name of
  ``TARGETS``.
- :func:`annealed_langevin_ring`, :func:`annealed_langevin_grid`, :func:`annealed_langevin_spiral`:
  annealed Langevin with the committed ``ncsn_<target>`` networks (made by
  :func:`~ncsn_toy.training.fit`), from the mixture's box, with their own levels and sampler
  settings.
- :func:`score_error_objectives`: the paper's Fig. 2 for both objectives, denoising (the original
  notebook's ``ScoreNet``) beside sliced score matching (the official code's network for that
  figure).
- :func:`target_figures`: the same GIF for any target (``render --target NAME``), from
  ``checkpoints/ncsn_<NAME>.pt`` when it exists, else fitted on the spot.

Each figure is a function ``(ctx, path) -> None`` like those of :mod:`~ncsn_toy.figures.gallery`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import torch

from ..checkpoints import load_checkpoint
from ..metrics import mode_weights, relative_score_error
from ..mixtures import GaussianMixture
from ..networks import NoiseConditionalScoreNet
from ..targets import TARGETS, target, two_gaussians
from ..training import fit
from .animations import network_annealed_animation
from .parts import Context, extent, field_panel, score_error_image
from .plotting import Panel, add_colorbar, new_figure, save_png

__all__ = [
    "targets",
    "score_error_objectives",
    "annealed_langevin_ring",
    "annealed_langevin_grid",
    "annealed_langevin_spiral",
    "annealed_langevin_target",
    "target_figures",
    "ZOO_FIGURES",
]

ZOO_COLUMNS = 3  # panels per row of targets.png


def targets(ctx: Context, path: Path) -> None:
    """The zoo: exact i.i.d. samples of every named target over its density, one panel each."""
    rows = math.ceil(len(TARGETS) / ZOO_COLUMNS)
    fig, axes = new_figure(ZOO_COLUMNS, rows)
    g = ctx.generator(11)
    first = None
    for ax, name in zip(axes, TARGETS, strict=False):
        mixture = target(name)
        panel = Panel(ax, extent(mixture), particles=True, resolution=ctx.config.resolution)
        panel.set_density(mixture.log_prob(panel.pixels))
        panel.set_particles(mixture.sample(ctx.config.n_particles, generator=g))
        w = mixture.weights
        if bool((w == w[0]).all()):
            weights = "equal weights"
        else:
            weights = f"weights {w.min().item():.2g}–{w.max().item():.2g}"
        k = mixture.n_components
        modes = "mode" if k == 1 else "modes"
        panel.set_title(f"{name}: {k} {modes}, {weights}")
        first = first or panel
    for ax in axes[len(TARGETS) :]:
        ax.set_visible(False)
    add_colorbar(fig, first, label="density p(x) / max")
    save_png(fig, path)


OBJECTIVES = {
    "score_net_two_gaussians": "denoising score matching (original ScoreNet)",
    "score_net_ssm_two_gaussians": "sliced score matching (2-128-128-2 Softplus)",
}


def score_error_objectives(ctx: Context, path: Path) -> None:
    """The paper's Fig. 2 for both objectives: each learned field above its squared error."""
    mixture = two_gaussians()
    fig, axes = new_figure(len(OBJECTIVES), 2)
    r = ctx.config.resolution
    top = None  # the first field panel, whose density the colour bar shows
    image = None  # the last error image, whose scale the second colour bar shows
    for col, (name, label) in enumerate(OBJECTIVES.items()):
        model = ctx.model(name)
        train = model.metadata["train"]
        # the score each objective learns: of p_sigma (denoising) or of p itself (sliced)
        sigma = train["sigma"] if train["objective"] == "dsm" else 0.0
        learned = field_panel(axes[col], ctx, mixture, sigma, arrow_scale=3.0)
        with torch.no_grad():
            learned.set_field(model(learned.grid.points))
        learned.set_title(f"{label}\n{train['steps']} steps x batch {train['batch_size']}")
        errors = Panel(axes[len(OBJECTIVES) + col], extent(mixture), density=False, resolution=r)
        image = score_error_image(errors, model, mixture, sigma, learned.pixels, r)
        numbers = relative_score_error(model, mixture, sigma, 20_000, ctx.generator(7))
        errors.set_title(
            f"squared error against ∇log p{'_σ' if sigma else ''}; relative error\n"
            f"{numbers.high_density:.3f} inside, {numbers.low_density:.2f} outside the 99% region"
        )
        top = top or learned
    add_colorbar(fig, top, axes[: len(OBJECTIVES)])
    fig.colorbar(
        image, ax=axes[len(OBJECTIVES) :], shrink=0.8, label="log10 squared error", pad=0.01
    )
    save_png(fig, path)


def _weights_tv(mixture: GaussianMixture, frame: torch.Tensor) -> str:
    """The total variation between the particles' mode weights and the true ones.

    For targets with dozens of modes, whose weights do not fit in a title.
    """
    tv = 0.5 * (mode_weights(mixture, frame) - mixture.weights).abs().sum().item()
    return f", weights' TV {tv:.3f}"


def _annealed_with(ctx: Context, path: Path, model: NoiseConditionalScoreNet, label: str) -> None:
    """Annealed Langevin with ``model`` and its stored settings, from the mixture's box."""
    network_annealed_animation(
        ctx, path, model, 12, f"{label}: annealed Langevin with fit's network\n", _weights_tv
    )


def annealed_langevin_target(ctx: Context, path: Path, name: str) -> None:
    """Annealed Langevin on target ``name`` with the network ``ncsn_<name>`` of the checkpoints.

    Without that checkpoint (or with ``retrain``), the network is fitted on the spot.
    """
    checkpoint = Path(ctx.config.checkpoints) / f"ncsn_{name}.pt"
    if ctx.config.retrain or not checkpoint.is_file():
        model = fit(target(name))
    else:
        model = load_checkpoint(checkpoint, expect=NoiseConditionalScoreNet)
    _annealed_with(ctx, path, model, name)


def annealed_langevin_ring(ctx: Context, path: Path) -> None:
    """Annealed Langevin on the ring target with its committed network."""
    _annealed_with(ctx, path, ctx.model("ncsn_ring"), "ring")


def annealed_langevin_grid(ctx: Context, path: Path) -> None:
    """Annealed Langevin on the grid target with its committed network."""
    _annealed_with(ctx, path, ctx.model("ncsn_grid"), "grid")


def annealed_langevin_spiral(ctx: Context, path: Path) -> None:
    """Annealed Langevin on the spiral target with its committed network."""
    _annealed_with(ctx, path, ctx.model("ncsn_spiral"), "spiral")


# the zoo's part of the gallery's FIGURES
ZOO_FIGURES: dict[str, Callable[[Context, Path], None]] = {
    "targets.png": targets,
    "score_error_objectives.png": score_error_objectives,
    "annealed_langevin_ring.gif": annealed_langevin_ring,
    "annealed_langevin_grid.gif": annealed_langevin_grid,
    "annealed_langevin_spiral.gif": annealed_langevin_spiral,
}


def target_figures(names: list[str]) -> dict[str, Callable[[Context, Path], None]]:
    """``annealed_langevin_<name>.gif`` for each target name (``render --target NAME ...``)."""
    unknown = sorted(set(names) - set(TARGETS))
    if unknown:
        raise ValueError(f"unknown target(s) {unknown}; expected names from {list(TARGETS)}")
    return {
        f"annealed_langevin_{name}.gif": functools.partial(annealed_langevin_target, name=name)
        for name in names
    }
