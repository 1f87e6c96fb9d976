"""One renderer for every figure: panels of density, score arrows and particles.

A :class:`Panel` is one axes with up to four layers, each optional and each updated in place:
the density of p_sigma behind (relative to its maximum, so it stays visible at every sigma), a
quiver of score arrows, a scatter of particles, and a title. :class:`Animation` turns a figure
into GIF frames: static layers are drawn once, the changing artists are redrawn onto a copy of
that background (blitting), frames are taken straight from the Agg buffer, quantised to one
shared palette and written atomically.

No pyplot: figures are ``matplotlib.figure.Figure`` with a ``FigureCanvasAgg``, so the library
keeps no global plotting state.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from PIL import Image

from ..runtime import atomic_write
from ..targets import grid_points

__all__ = [
    "COLORS",
    "DENSITY_CMAP",
    "PANEL_INCHES",
    "DPI",
    "FieldGrid",
    "Panel",
    "Animation",
    "new_figure",
    "arrow_vectors",
    "add_colorbar",
    "save_png",
    "nice",
]

PANEL_INCHES = 4.6  # width of one panel; at DPI 100 about 460 px
DPI = 100
DENSITY_BANDS = 10  # colour bands of the density, like a filled contour plot
PALETTE_COLORS = 64  # colours of the shared GIF palette: plenty for flat plots, and small files
# the density behind every panel: white where p ~ 0, then the original notebook's orange
_ORANGE_BANDS = matplotlib.colormaps["Oranges"](np.linspace(0.12, 0.95, DENSITY_BANDS - 1))
DENSITY_CMAP = ListedColormap(["#ffffff", *_ORANGE_BANDS], name="density")
COLORS = {
    "particles": "#1f4e9c",  # samples / particles
    "arrows": "#222222",  # score arrows
    "faint_arrows": "#8a8a8a",  # score arrows behind particles
    "reference": "#2a9d8f",  # exact / reference arrows when two fields share a panel
}


class FieldGrid:
    """An ``n x n`` grid of arrow positions over ``extent = (x0, x1, y0, y1)``."""

    def __init__(self, extent: Sequence[float], n: int = 21) -> None:
        self.extent = tuple(float(v) for v in extent)
        # (n*n, 2) points, the same grid as the training snapshots'
        self.points, self.spacing = grid_points(self.extent, n)


def arrow_vectors(field: torch.Tensor, spacing: float, scale: float) -> np.ndarray:
    """Arrows along the field v, of length spacing * tanh(|v| / scale): ``(m, 2)`` from ``(m, 2)``.

    Visible at every magnitude, never overlapping, and zero where the field vanishes (at the modes).
    """
    norm = field.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (field / norm * torch.tanh(norm / scale) * 0.9 * spacing).numpy()


def new_figure(n_cols: int, n_rows: int = 1, *, colorbar: bool = True) -> tuple[Figure, np.ndarray]:
    """A figure of ``n_rows x n_cols`` square panels (room for one shared colour bar)."""
    width = n_cols * PANEL_INCHES + (0.9 if colorbar else 0.0)
    fig = Figure(figsize=(width, n_rows * (PANEL_INCHES + 0.45)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False).flatten())
    return fig, axes


class Panel:
    """One axes over ``extent`` with optional density, arrows, particles and title."""

    def __init__(
        self,
        ax,
        extent: Sequence[float],
        *,
        density: bool = True,
        grid: FieldGrid | None = None,
        arrow_scale: float = 1.0,
        particles: bool = False,
        arrow_color: str = COLORS["arrows"],
        resolution: int = 160,
    ) -> None:
        self.ax = ax
        self.extent = tuple(extent)
        self.grid = grid
        self.arrow_scale = arrow_scale
        x0, x1, y0, y1 = self.extent
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        self.image = None
        self.arrows = None
        self.scatter = None
        if density:
            xs = torch.linspace(x0, x1, resolution)
            ys = torch.linspace(y0, y1, resolution)
            gx, gy = torch.meshgrid(xs, ys, indexing="xy")
            self.pixels = torch.stack([gx.flatten(), gy.flatten()], dim=1)  # (r*r, 2)
            self.resolution = resolution
            # banded like a filled contour plot: easy to read, and flat colours keep GIFs small
            norm = BoundaryNorm(np.linspace(0.0, 1.0, DENSITY_BANDS + 1), ncolors=DENSITY_BANDS)
            self.image = ax.imshow(
                np.zeros((resolution, resolution)),
                origin="lower",
                extent=self.extent,
                cmap=DENSITY_CMAP,
                norm=norm,
                interpolation="nearest",
                zorder=0,
            )
        if grid is not None:
            self.arrows = self._quiver(arrow_color, zorder=2)
        if particles:
            # opaque dots: blended colours would multiply the palette and the GIF size
            self.scatter = ax.scatter(
                [], [], s=2.5, color=COLORS["particles"], linewidths=0, zorder=3
            )

    def set_density(self, log_density: torch.Tensor) -> None:
        """``log_density`` at ``self.pixels``; shown as p / max p (so every sigma is visible)."""
        relative = torch.exp(log_density - log_density.max())
        self.image.set_data(relative.reshape(self.resolution, self.resolution).numpy())

    def set_field(self, field: torch.Tensor) -> None:
        """``field`` ``(m, 2)`` at ``self.grid.points``."""
        v = arrow_vectors(field.detach().float(), self.grid.spacing, self.arrow_scale)
        self.arrows.set_UVC(v[:, 0], v[:, 1])

    def add_reference_field(self, field: torch.Tensor, color: str = COLORS["reference"]) -> None:
        """A second, fixed field under the arrows (e.g. the exact score beside a learned one)."""
        reference = self._quiver(color, zorder=1, alpha=0.55)
        v = arrow_vectors(field.detach().float(), self.grid.spacing, self.arrow_scale)
        reference.set_UVC(v[:, 0], v[:, 1])

    def _quiver(self, color: str, zorder: int, alpha: float = 1.0):
        points = self.grid.points.numpy()
        zeros = np.zeros(len(self.grid.points))
        return self.ax.quiver(
            points[:, 0],
            points[:, 1],
            zeros,
            zeros,
            angles="xy",
            scale_units="xy",
            scale=1.0,
            color=color,
            alpha=alpha,
            width=0.004,
            headwidth=3.5,
            headlength=4,
            pivot="mid",
            zorder=zorder,
        )

    def set_particles(self, x: torch.Tensor) -> None:
        self.scatter.set_offsets(x.detach().numpy())

    def set_title(self, text: str, fontsize: float = 10) -> None:
        self.ax.set_title(text, fontsize=fontsize)


def add_colorbar(
    fig: Figure, panel: Panel, axes: Sequence | None = None, label: str = "density p_σ(x) / max"
) -> None:
    """One colour bar for the density of ``panel``, beside ``axes`` (default: every panel)."""
    if axes is None:
        # the panels, not the colour bars already added
        axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    else:
        axes = list(axes)
    fig.colorbar(panel.image, ax=axes, shrink=0.8, label=label, pad=0.01)


def _frame(canvas: FigureCanvasAgg) -> np.ndarray:
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()  # (H, W, 3) uint8, copied


class Animation:
    """Frames of one figure, redrawing only ``artists`` (blitting), written as a looping GIF.

    ``artists`` are the ones that change in every frame; everything else is drawn once into a
    background. When a static layer changes now and then (the density at a new noise level),
    call :meth:`redraw_background` after changing it.
    """

    def __init__(self, fig: Figure, artists: Sequence) -> None:
        self.fig = fig
        self.canvas = fig.canvas
        self.artists = list(artists)
        self.frames: list[np.ndarray] = []
        self.durations: list[int] = []
        self._background = None

    def redraw_background(self) -> None:
        """Draw the static layers again at the next frame (after one of them changed)."""
        self._background = None

    def capture(self, duration_ms: int = 80) -> None:
        """Add the figure's current state as a frame shown for ``duration_ms`` (>= 20) ms."""
        if self._background is None:  # first frame: draw the static layers once
            for artist in self.artists:
                artist.set_animated(True)
            self.canvas.draw()
            self._background = self.canvas.copy_from_bbox(self.fig.bbox)
        self.canvas.restore_region(self._background)
        for artist in self.artists:
            self.fig.draw_artist(artist)
        self.frames.append(_frame(self.canvas))
        self.durations.append(max(20, int(duration_ms)))

    def save(self, path: str | os.PathLike, *, hold_last_ms: int = 2000) -> Path:
        """Write the frames as a GIF that loops forever, the last frame held ``hold_last_ms``."""
        if not self.frames:
            raise ValueError("no frames captured")
        durations = [*self.durations[:-1], max(self.durations[-1], hold_last_ms)]
        images = _quantise(self.frames)

        def write(tmp: str) -> None:
            images[0].save(
                tmp,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=durations,
                loop=0,
                # unchanged pixels become transparent: small files
                optimize=True,
                disposal=1,
            )

        return atomic_write(path, write)


def _quantise(frames: list[np.ndarray]) -> list[Image.Image]:
    """Every frame mapped onto one palette built from a few frames (no flicker, small files)."""
    picks = sorted({0, len(frames) // 2, len(frames) - 1})
    sample = Image.fromarray(np.concatenate([frames[i] for i in picks], axis=0))
    palette = sample.quantize(
        colors=PALETTE_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    return [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]


def save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` and write it as a PNG, atomically."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def nice(value: float) -> str:
    """A short number for titles."""
    return f"{value:.2g}" if value < 10 else f"{math.floor(value + 0.5)}"
