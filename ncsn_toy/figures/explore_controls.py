"""The explorer's controls: one widget per field of :class:`~.explore_core.ExploreSettings`.

The noise levels and the step size move over exact stops (1, 1.5, 2, 3, 5, 7 x 10^k, plus the
values the settings and the samplers' presets use), so that 20 stays 20: a log slider would snap
it to 10^1.30 = 19.95 in the page and quietly change the run.
"""

from __future__ import annotations

import ipywidgets as widgets

from ..targets import TARGETS
from .explore_core import SCORES, ExploreSettings
from .explore_samplers import samplers

__all__ = ["controls", "stops", "SAMPLER_FIELDS"]

# the settings a sampler may not read: greyed out when the chosen sampler does not
SAMPLER_FIELDS = ("sigma_max", "sigma_min", "n_levels", "step_size", "n_steps", "denoise")
# the label of each control whose label is not its field's name
NAMES = {
    "sigma_max": "sigma_max",
    "sigma_min": "sigma_min",
    "n_levels": "levels",
    "step_size": "step size",
    "n_steps": "steps per level",
    "n_particles": "particles",
    "denoise": "final denoising step",
}
# the stops of every decade: 1, 1.5, 2, 3, 5, 7 x 10^k
MANTISSAS = (1, 1.5, 2, 3, 5, 7)


def stops(*values: float, low: float = float("inf"), high: float = 0.0) -> list[tuple[str, float]]:
    """Slider stops (label, value): 1, 1.5, 2, 3, 5, 7 x 10^k within [low, high], and ``values``."""
    ladder = {round(m * 10.0**k, 12) for k in range(-6, 7) for m in MANTISSAS}
    in_range = {v for v in ladder if low <= v <= high}
    chosen = sorted(in_range | {float(v) for v in values})
    return [(f"{v:.4g}", v) for v in chosen]


def controls(s: ExploreSettings, scores: tuple[str, ...]) -> dict[str, widgets.Widget]:
    """One widget per field of :class:`ExploreSettings` (except ``n_frames``), set to ``s``."""
    common = {"style": {"description_width": "110px"}, "layout": widgets.Layout(width="370px")}
    slider = {**common, "continuous_update": True}
    presets = [entry.preset for entry in samplers().values()]

    def ladder(name: str, low: float, high: float) -> widgets.SelectionSlider:
        """A slider over exact stops in [low, high], with the value of ``s`` and the presets'."""
        preset_values = [preset[name] for preset in presets if name in preset]
        options = stops(getattr(s, name), *preset_values, low=low, high=high)
        return widgets.SelectionSlider(
            options=options, value=float(getattr(s, name)), description=NAMES[name], **slider
        )

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
        "n_levels": widgets.IntSlider(
            value=s.n_levels, min=1, max=1000, description=NAMES["n_levels"], **slider
        ),
        "step_size": ladder("step_size", 1e-4, 10),
        "n_steps": widgets.IntSlider(
            value=s.n_steps, min=1, max=1000, description=NAMES["n_steps"], **slider
        ),
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
    }
