"""The explorer's controls: one widget per field of :class:`~.explore_core.ExploreSettings`.

The noise levels and the step size move over exact stops (1, 1.5, 2, 3, 5, 7 x 10^k, plus the
values the settings and the samplers' presets use), so that 20 stays 20: a log slider would snap
it to 10^1.30 = 19.95 in the page and quietly change the run. The counts (levels, steps per level)
are a :class:`CountControl`: a slider over 1, 2, ..., 10, 15, 20, 30, 50, 70, 100, ..., 1000,
where every small count is a few pixels apart and so within reach of a drag (a linear slider from
1 to 1000 on 170 pixels skips six counts per pixel), and a box beside it for any count.
"""

from __future__ import annotations

import ipywidgets as widgets
import traitlets

from ..targets import TARGETS
from .explore_core import SCORES, ExploreSettings
from .explore_samplers import samplers

__all__ = ["controls", "stops", "count_stops", "CountControl", "SAMPLER_FIELDS"]

# the settings a sampler may not read: greyed out when the chosen sampler does not
SAMPLER_FIELDS = ("sigma_max", "sigma_min", "n_levels", "step_size", "n_steps", "denoise", "eta")
# the label of each control whose label is not its field's name
NAMES = {
    "sigma_max": "sigma_max",
    "sigma_min": "sigma_min",
    "n_levels": "levels",
    "step_size": "step size",
    "n_steps": "steps per level",
    "n_particles": "particles",
    "denoise": "final denoising step",
    "eta": "DDIM's eta",
}
# the stops of every decade: 1, 1.5, 2, 3, 5, 7 x 10^k
MANTISSAS = (1, 1.5, 2, 3, 5, 7)
# DDIM's eta: 0 (deterministic) to 1 (DDPM's noise) in tenths, exact
ETAS = tuple(k / 10 for k in range(11))
DESCRIPTION_WIDTH = "110px"
WIDTH = "370px"  # of every control
COUNT_SLIDER_WIDTH = "290px"  # of a count's slider, with its description ...
BOX_WIDTH = "80px"  # ... and of the box beside it


def stops(*values: float, low: float = float("inf"), high: float = 0.0) -> list[tuple[str, float]]:
    """Slider stops (label, value): 1, 1.5, 2, 3, 5, 7 x 10^k within [low, high], and ``values``."""
    ladder = {round(m * 10.0**k, 12) for k in range(-6, 7) for m in MANTISSAS}
    in_range = {v for v in ladder if low <= v <= high}
    chosen = sorted(in_range | {float(v) for v in values})
    return [(f"{v:.4g}", v) for v in chosen]


def count_stops(*values: int, high: int = 1000) -> list[tuple[str, int]]:
    """Slider stops (label, value) for a count: 1..10, then 1, 1.5, 2, 3, 5, 7 x 10^k up to
    ``high``, and ``values``."""
    ladder = {round(m * 10**k) for k in range(1, 7) for m in MANTISSAS}
    chosen = sorted({*range(1, 11), *(v for v in ladder if v <= high), *values})
    return [(str(v), v) for v in chosen]


class CountControl(widgets.HBox):
    """A whole number from 1 up: a slider over :func:`count_stops` and a box for any count.

    ``value`` is the box's number; the slider stands at the largest stop not above it. Moving
    the slider sets the box to the stop; typing a number moves the slider to its place.
    ``disabled`` greys out both.
    """

    value = traitlets.Int(1)
    disabled = traitlets.Bool(False)

    def __init__(self, value: int, *, description: str, high: int, most: int) -> None:
        self._syncing = False  # True while one half follows the other
        self.slider = widgets.SelectionSlider(
            options=count_stops(value, high=high),
            value=value,
            description=description,
            readout=False,  # the box says the count
            continuous_update=True,
            style={"description_width": DESCRIPTION_WIDTH},
            layout=widgets.Layout(width=COUNT_SLIDER_WIDTH),
        )
        self.box = widgets.BoundedIntText(
            value=value, min=1, max=most, layout=widgets.Layout(width=BOX_WIDTH)
        )
        super().__init__([self.slider, self.box], layout=widgets.Layout(width=WIDTH))
        self.value = value
        self.slider.observe(self._slid, names="value")
        self.box.observe(self._typed, names="value")
        self.observe(self._changed, names="value")
        self.observe(self._greyed, names="disabled")

    @property
    def description(self) -> str:
        return self.slider.description

    @traitlets.validate("value")
    def _within_the_box(self, proposal: dict) -> int:
        """Clamped to the box's range, as a slider clamps to its own."""
        return min(max(int(proposal["value"]), 1), self.box.max)

    def stop_at_or_below(self, count: int) -> int:
        """The slider's place for ``count``: its largest stop <= count (its first, if none)."""
        below = [stop for _, stop in self.slider.options if stop <= count]
        return below[-1] if below else self.slider.options[0][1]

    def _slid(self, change: dict) -> None:
        if not self._syncing:
            self.value = change["new"]

    def _typed(self, change: dict) -> None:
        if not self._syncing:
            self.value = change["new"]

    def _changed(self, change: dict) -> None:
        self._syncing = True
        try:
            self.box.value = change["new"]
            self.slider.value = self.stop_at_or_below(change["new"])
        finally:
            self._syncing = False

    def _greyed(self, change: dict) -> None:
        self.slider.disabled = change["new"]
        self.box.disabled = change["new"]

    def close(self) -> None:
        """Close the slider and the box with it."""
        self.slider.close()
        self.box.close()
        super().close()


def controls(s: ExploreSettings, scores: tuple[str, ...]) -> dict[str, widgets.Widget]:
    """One widget per field of :class:`ExploreSettings` (except ``n_frames``), set to ``s``."""
    common = {
        "style": {"description_width": DESCRIPTION_WIDTH},
        "layout": widgets.Layout(width=WIDTH),
    }
    slider = {**common, "continuous_update": True}
    presets = [entry.preset for entry in samplers().values()]

    def ladder(name: str, low: float, high: float) -> widgets.SelectionSlider:
        """A slider over exact stops in [low, high], with the value of ``s`` and the presets'."""
        preset_values = [preset[name] for preset in presets if name in preset]
        options = stops(getattr(s, name), *preset_values, low=low, high=high)
        return widgets.SelectionSlider(
            options=options, value=float(getattr(s, name)), description=NAMES[name], **slider
        )

    def count(name: str, most: int) -> CountControl:
        """Levels or steps: 1 to 1000 on the slider, up to ``most`` in the box."""
        return CountControl(getattr(s, name), description=NAMES[name], high=1000, most=most)

    return {
        "target": widgets.Dropdown(options=TARGETS, value=s.target, description="target", **common),
        "score": widgets.Dropdown(
            options=[(SCORES[k], k) for k in scores], value=s.score, description="score", **common
        ),
        "sampler": widgets.Dropdown(
            options=list(samplers()), value=s.sampler, description="sampler", **common
        ),
        "sigma_max": ladder("sigma_max", 0.1, 1000),  # up to the continuous-time samplers' priors
        "sigma_min": ladder("sigma_min", 0.01, 30),
        "n_levels": count("n_levels", 10_000),
        "step_size": ladder("step_size", 1e-4, 10),
        "n_steps": count("n_steps", 100_000),
        "n_particles": widgets.IntSlider(
            value=s.n_particles,
            min=100,
            max=10_000,
            step=100,
            description=NAMES["n_particles"],
            **slider,
        ),
        "seed": widgets.BoundedIntText(
            value=s.seed, min=0, max=2**31 - 1, description="seed", **common
        ),
        "denoise": widgets.Checkbox(value=s.denoise, description=NAMES["denoise"], **common),
        "eta": widgets.SelectionSlider(
            options=[(f"{eta:g}", eta) for eta in sorted({*ETAS, float(s.eta)})],
            value=float(s.eta),
            description=NAMES["eta"],
            **slider,
        ),
    }
