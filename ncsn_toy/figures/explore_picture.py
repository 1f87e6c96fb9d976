"""The explorer's picture: a recorded frame of an :class:`~.explore_core.ExploreResult` as a PNG.

The gallery's renderer (:class:`~.plotting.Panel`): the particles over the density of p_sigma at
the frame's noise level, with the field sigma * s(x, sigma) of the score the sampler used (the
same scale at every sigma, as in the gallery's noise-conditional figures). Like
:class:`~.plotting.Animation`, it redraws only what changes (blitting): the axes, ticks and colour
bar are drawn once into a background; a frame restores it and draws the density, the arrows, the
particles and the title on top (a few milliseconds, where a full draw takes about 50), and the
density and the field are recomputed only when the noise level changes. So scrubbing through the
frames never resamples.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from ..metrics import mode_weights
from ..targets import plot_extent
from .explore_core import ExploreResult
from .plotting import COLORS, DPI, FieldGrid, Panel, add_colorbar, new_figure

__all__ = ["ExplorePicture"]

PNG_COMPRESSION = 1  # zlib level: fast; the flat colours compress well anyway


class ExplorePicture:
    """Draws frames of explorer results; keep one per view (it holds a figure).

    Args:
        grid: arrows per side of the score field.
        resolution: pixels per side of the density image.
    """

    def __init__(self, *, grid: int = 21, resolution: int = 160) -> None:
        self.grid = grid
        self.resolution = resolution
        self._extent: tuple[float, ...] | None = None
        self._level: tuple | None = None  # (target, score, sigma) whose density and field are set

    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the pictures in pixels."""
        width, height = new_figure(1)[0].get_size_inches() * DPI
        return round(width), round(height)

    def forget_level(self) -> None:
        """Recompute the density and the field at the next frame (as after a change of settings)."""
        self._level = None

    def _layout(self, extent: tuple[float, ...]) -> None:
        """A new figure for a new plot window (another target), its static layers drawn once."""
        self.fig, axes = new_figure(1)
        self.panel = Panel(
            axes[0],
            extent,
            grid=FieldGrid(extent, self.grid),
            arrow_scale=0.5,
            arrow_color=COLORS["faint_arrows"],
            particles=True,
            resolution=self.resolution,
        )
        add_colorbar(self.fig, self.panel)
        # two empty lines, so that the layout leaves room for the titles to come
        self.panel.set_title("\n")
        ax = self.panel.ax
        self._layers = [
            self.panel.image,
            self.panel.arrows,
            *ax.spines.values(),
            self.panel.scatter,
            ax.title,
        ]
        for artist in self._layers:
            artist.set_animated(True)  # drawn over the background, in this order, never into it
        # Lay the figure out once, then keep that layout: the background and the layers drawn
        # over it must share the axes' position.
        self.fig.canvas.draw()
        self.fig.set_layout_engine("none")
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self._extent = extent
        self._level = None

    def rgb(self, result: ExploreResult, frame: int) -> np.ndarray:
        """Frame ``frame`` of ``result`` as an ``(H, W, 3)`` uint8 array."""
        if not 0 <= frame < len(result.frames):
            raise ValueError(f"frame must be in 0..{len(result.frames) - 1}, got {frame}")
        extent = plot_extent(result.mixture)
        if extent != self._extent:
            self._layout(extent)
        panel = self.panel
        sigma = result.frame_sigmas[frame]
        level = (result.settings.target, result.settings.score, sigma)
        if level != self._level:
            panel.set_density(result.mixture.log_prob(panel.pixels, sigma))
            with torch.no_grad():
                # (m, 2): sigma * s(x, sigma)
                panel.set_field(sigma * result.score(panel.grid.points, sigma))
            self._level = level
        particles = result.frames[frame]  # (n, d)
        measured = "/".join(f"{w:.2f}" for w in mode_weights(result.mixture, particles).tolist())
        panel.set_particles(particles)
        panel.set_title(f"{result.frame_title(frame)}, weights {measured}")
        self.fig.canvas.restore_region(self._background)
        for artist in self._layers:
            self.fig.draw_artist(artist)
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def png(self, result: ExploreResult, frame: int) -> bytes:
        """Frame ``frame`` of ``result`` as PNG bytes (for an ``ipywidgets.Image``)."""
        out = io.BytesIO()
        Image.fromarray(self.rgb(result, frame)).save(
            out, format="PNG", compress_level=PNG_COMPRESSION
        )
        return out.getvalue()
