"""The explorer's picture: a recorded frame of an :class:`~.explore_core.ExploreResult` as a PNG.

Two panels, one figure (a matplotlib ``Figure`` on its own Agg canvas, no pyplot state):

- the particles over the density of their law at the frame's noise level, with the arrows of the
  score the sampler used times its noise (sigma s(x, sigma), or -eps(x, t) for DDPM and DDIM),
  drawn by the gallery's renderer (:class:`~.plotting.Panel`);
- under it, the mode weights along the run: at every recorded frame, which mode each particle
  lies in (:attr:`~.explore_core.ExploreResult.weights_along`), against the truth (dashed), over
  the step of the run, with the sigma of the frames on the top axis; a line marks the frame shown.

Like :class:`~.plotting.Animation`, it redraws only what changes (blitting): the axes, ticks and
colour bar are drawn once into a background, the curve's lines once per run over it (its axes
when they change); a frame restores that and draws the density, the arrows, the particles, the
title and the marker on top (a few milliseconds, where a full draw takes about 50), and the
density and the field are recomputed only when the noise level changes. So scrubbing through the
frames never resamples.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image

from ..targets import plot_extent
from .explore_core import ExploreResult
from .plotting import COLORS, DPI, PANEL_INCHES, FieldGrid, Panel, add_colorbar

__all__ = ["ExplorePicture"]

PNG_COMPRESSION = 1  # zlib level: fast; the flat colours compress well anyway
CURVE_INCHES = 2.0  # height of the mode weights' panel under the particles
SIGMA_TICKS = 5  # frames whose sigma the top axis of the curve names
CURVE_FONT = 8  # points: the curve's labels, smaller than the picture's


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
        # (target, score, noising, sigma) whose density and field are set
        self._level: tuple | None = None
        self._result: ExploreResult | None = None  # the run whose curve is in the background

    @staticmethod
    def size() -> tuple[int, int]:
        """``(width, height)`` of the pictures in pixels."""
        width, height = _figure_inches()
        return round(width * DPI), round(height * DPI)

    def forget_level(self) -> None:
        """Recompute the density and the field at the next frame (as after a change of settings)."""
        self._level = None

    def _layout(self, extent: tuple[float, ...]) -> None:
        """A new figure for a new plot window (another target), its static layers drawn once."""
        self.fig = Figure(figsize=_figure_inches(), dpi=DPI, layout="constrained")
        FigureCanvasAgg(self.fig)
        rows = self.fig.add_gridspec(2, 1, height_ratios=(PANEL_INCHES + 0.45, CURVE_INCHES))
        self.panel = Panel(
            self.fig.add_subplot(rows[0]),
            extent,
            grid=FieldGrid(extent, self.grid),
            arrow_scale=0.5,
            arrow_color=COLORS["faint_arrows"],
            particles=True,
            resolution=self.resolution,
        )
        add_colorbar(self.fig, self.panel, [self.panel.ax], label="density / max")
        # two empty lines, so that the layout leaves room for the titles to come
        self.panel.set_title("\n")
        self.curve = self.fig.add_subplot(rows[1])
        self.curve.set_xlabel("step of the run", fontsize=CURVE_FONT)
        self.curve.set_ylabel("mode weight", fontsize=CURVE_FONT)
        self.curve.tick_params(labelsize=CURVE_FONT)
        self.curve.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole
        self.curve.set_title(
            "which mode each particle lies in, at every frame (dashed: the truth)",
            fontsize=CURVE_FONT,
            loc="left",
        )
        # the sigma of a few frames, on the top; a child of the curve's axes, drawn under the
        # marker as when blitting
        self.sigma_axis = self.curve.secondary_xaxis("top")
        self.sigma_axis.tick_params(labelsize=CURVE_FONT, pad=1)
        self.sigma_axis.set_xlabel("σ", fontsize=CURVE_FONT, loc="right", labelpad=1)
        # over the weights, as it is drawn last when blitting
        self.marker = self.curve.axvline(0.0, color="#444444", linewidth=1.0, zorder=3)
        self.weight_lines: list = []  # one line per mode, and its truth, of the current run
        self.curve.set_animated(True)  # drawn over the static background, once per run
        ax = self.panel.ax
        self._layers = [
            self.panel.image,
            self.panel.arrows,
            *ax.spines.values(),
            self.panel.scatter,
            ax.title,
            self.marker,
        ]
        for artist in self._layers:
            artist.set_animated(True)  # drawn over the background, in this order, never into it
        # Lay the figure out once, then keep that layout: the background and the layers drawn
        # over it must share the axes' position.
        self.fig.canvas.draw()
        self.fig.set_layout_engine("none")
        self._static = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self._axes: tuple | None = None  # the curve's limits and ticks in _axes_background
        self._extent = extent
        self._level = None
        self._result = None

    def _draw_curve(self, result: ExploreResult) -> None:
        """The mode weights along ``result``'s run into the background (once per run).

        Its axes (limits, ticks, labels: some 30 texts, tens of milliseconds) are drawn again
        only when they change; the lines of a run are drawn over them.
        """
        steps = result.steps.numpy()  # (F,)
        along = result.weights_along.numpy()  # (F, K)
        truth = result.mixture.weights.tolist()  # (K,)
        # in tenths, so that the axes change with the target, not with every run
        top = np.ceil(11 * max(float(along.max()), *truth)) / 10
        positions = []
        labels = []
        for frame in np.unique(np.linspace(0, len(steps) - 1, SIGMA_TICKS).round().astype(int)):
            label = f"{result.frame_sigmas[frame]:.3g}"
            if labels and label == labels[-1]:
                continue  # a sampler at one noise level (plain Langevin) names it once
            positions.append(int(steps[frame]))
            labels.append(label)
        axes = (max(int(steps[-1]), 1), min(float(top), 1.0), tuple(positions), tuple(labels))
        if axes != self._axes:
            self.curve.set_xlim(0, axes[0])
            self.curve.set_ylim(0.0, axes[1])
            self.sigma_axis.set_xticks(positions, labels)
            self.fig.canvas.restore_region(self._static)
            self.fig.draw_artist(self.curve)  # without its lines and marker, which are animated
            self._axes_background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
            self._axes = axes
        for line in self.weight_lines:
            line.remove()
        self.weight_lines = []
        colors = matplotlib.colormaps["tab10"]
        # over the spines (zorder 2.5), as they are drawn after them when blitting
        style = {"animated": True, "zorder": 2.6}
        for k, weight in enumerate(truth):
            color = colors(k % 10)
            (line,) = self.curve.plot(steps, along[:, k], color=color, linewidth=1.3, **style)
            dashed = self.curve.axhline(weight, color=color, linewidth=0.9, ls="--", **style)
            self.weight_lines += [line, dashed]
        self.fig.canvas.restore_region(self._axes_background)
        for line in self.weight_lines:
            self.fig.draw_artist(line)
        self._background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        self._result = result

    def rgb(self, result: ExploreResult, frame: int) -> np.ndarray:
        """Frame ``frame`` of ``result`` as an ``(H, W, 3)`` uint8 array."""
        if not 0 <= frame < len(result.frames):
            raise ValueError(f"frame must be in 0..{len(result.frames) - 1}, got {frame}")
        extent = plot_extent(result.mixture)
        if extent != self._extent:
            self._layout(extent)
        if result is not self._result:
            self._draw_curve(result)
        panel = self.panel
        s = result.settings
        level = (s.target, s.score, result.entry.noising, result.frame_sigmas[frame])
        if level != self._level:
            panel.set_density(result.log_density(panel.pixels, frame))
            panel.set_field(result.field(panel.grid.points, frame))
            self._level = level
        measured = "/".join(f"{w:.2f}" for w in result.weights_along[frame].tolist())
        panel.set_particles(result.frames[frame])  # (n, d)
        panel.set_title(f"{result.frame_title(frame)}, weights {measured}")
        step = int(result.steps[frame])
        self.marker.set_xdata([step, step])
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


def _figure_inches() -> tuple[float, float]:
    """``(width, height)`` of the figure: one panel with its colour bar, the curve under it."""
    return PANEL_INCHES + 0.9, PANEL_INCHES + 0.45 + CURVE_INCHES
