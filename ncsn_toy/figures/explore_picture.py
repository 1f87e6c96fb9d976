"""The explorer's picture: one recorded frame of an :class:`~.explore_core.ExploreResult` as PNG bytes.

The gallery's renderer (:class:`~.plotting.Panel`): the particles over the density of p_sigma at
the frame's noise level, with the field sigma * s(x, sigma) of the score the sampler used (the
same scale at every sigma, as in the gallery's noise-conditional figures). Like
:class:`~.plotting.Animation`, it redraws only what changes: the density, the arrows, the axes
and the colour bar of a noise level are drawn once into a background that is kept (the last
``cache_size`` levels), and a frame restores that background and draws the particles and the
title on top (blitting). So scrubbing through the frames never resamples and costs a few
milliseconds, plus one full draw the first time a level is shown.
"""

from __future__ import annotations

import io
from collections import OrderedDict

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
    """Draws frames of explorer results; keep one per view (it holds a figure and a cache).

    Args:
        grid: arrows per side of the score field.
        resolution: pixels per side of the density image.
        cache_size: noise levels whose background is kept.
    """

    def __init__(self, *, grid: int = 21, resolution: int = 160, cache_size: int = 16) -> None:
        self.grid, self.resolution, self.cache_size = grid, resolution, cache_size
        self._extent: tuple[float, ...] | None = None
        self._backgrounds: OrderedDict[tuple, object] = OrderedDict()

    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the pictures in pixels."""
        width, height = new_figure(1)[0].get_size_inches() * DPI
        return round(width), round(height)

    def _layout(self, extent: tuple[float, ...]) -> None:
        """A new figure when the plot window changes (another target)."""
        self.fig, axes = new_figure(1)
        self.panel = Panel(axes[0], extent, grid=FieldGrid(extent, self.grid), arrow_scale=0.5,
                           arrow_color=COLORS["faint_arrows"], particles=True, resolution=self.resolution)
        add_colorbar(self.fig, self.panel)
        self.panel.set_title("\n")  # two lines, so that the layout leaves room for the titles to come
        for artist in (self.panel.scatter, self.panel.ax.title):
            artist.set_animated(True)  # drawn over the background, never into it
        self.fig.canvas.draw()  # lay the figure out once, then keep that layout: every cached
        self.fig.set_layout_engine("none")  # background must share the axes' position
        self._extent = extent
        self._backgrounds.clear()

    def _background(self, result: ExploreResult, sigma: float) -> None:
        """Restore (or draw and keep) the background of noise level ``sigma``."""
        key = (result.settings.target, result.settings.score, sigma)
        if key in self._backgrounds:
            self._backgrounds.move_to_end(key)
        else:
            panel = self.panel
            panel.set_density(result.mixture.log_prob(panel.pixels, sigma))
            with torch.no_grad():
                panel.set_field(sigma * result.score(panel.grid.points, sigma))  # (m, 2): sigma * s(x, sigma)
            self.fig.canvas.draw()
            self._backgrounds[key] = self.fig.canvas.copy_from_bbox(self.fig.bbox)
            while len(self._backgrounds) > self.cache_size:
                self._backgrounds.popitem(last=False)
        self.fig.canvas.restore_region(self._backgrounds[key])

    def rgb(self, result: ExploreResult, frame: int) -> np.ndarray:
        """Frame ``frame`` of ``result`` as an ``(H, W, 3)`` uint8 array."""
        if not 0 <= frame < len(result.frames):
            raise ValueError(f"frame must be in 0..{len(result.frames) - 1}, got {frame}")
        extent = plot_extent(result.mixture)
        if extent != self._extent:
            self._layout(extent)
        self._background(result, result.frame_sigmas[frame])
        particles = result.frames[frame]  # (n, d)
        measured = "/".join(f"{w:.2f}" for w in mode_weights(result.mixture, particles).tolist())
        self.panel.set_particles(particles)
        self.panel.set_title(f"{result.frame_title(frame)}, weights {measured}")
        self.fig.draw_artist(self.panel.scatter)
        self.fig.draw_artist(self.panel.ax.title)
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()

    def png(self, result: ExploreResult, frame: int) -> bytes:
        """Frame ``frame`` of ``result`` as PNG bytes (for an ``ipywidgets.Image``)."""
        out = io.BytesIO()
        Image.fromarray(self.rgb(result, frame)).save(out, format="PNG", compress_level=PNG_COMPRESSION)
        return out.getvalue()
