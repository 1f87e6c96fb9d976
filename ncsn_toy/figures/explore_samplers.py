"""The explorer's sampler drop-down: one :class:`SamplerEntry` per sampler of the package, by label.

Adding a sampler to the explorer is one entry in :func:`samplers`: how to run it (recording frames),
which noise level each recorded frame is drawn over, how many score evaluations it makes, which
settings it reads (the others are greyed out in the page) and the settings it is usually run
with (loaded when it is chosen). Every sampler ends at sigma_min; plain Langevin dynamics runs on
p_{sigma_min} (a network has no sigma = 0; with the exact score, a small sigma_min gives p itself,
the paper's Fig. 3). The continuous-time samplers of ``ncsn_toy.sde`` appear when that
module exists and are imported only when run.

References: Song & Ermon, NeurIPS 2019 (Eq. 4, Algorithm 1); Jolicoeur-Martineau et al., ICLR 2021
(consistent annealed sampling, Algorithm 2); Song et al., "Score-Based Generative Modeling through
Stochastic Differential Equations", ICLR 2021 (the variance-exploding SDE, Eq. 31, and its samplers).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..samplers import (
    Trajectory,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    langevin_dynamics,
)

if TYPE_CHECKING:
    from .explore_core import ExploreSettings

__all__ = ["SamplerEntry", "samplers", "ScoreFn"]

ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]  # (x (n, d), sigma) -> (n, d)


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler of the drop-down: how to start it, run it, and what its frames show."""

    run: Callable[
        [ScoreFn, torch.Tensor, ExploreSettings, torch.Generator], Trajectory
    ]  # recording frames
    frame_sigma: Callable[
        [ExploreSettings, int], float
    ]  # (settings, level of a frame) -> sigma drawn behind
    evaluations: Callable[
        [ExploreSettings], int
    ]  # score evaluations of one run (for the progress bar)
    uses: frozenset[str]  # settings this sampler reads; the others are greyed out
    preset: dict = field(
        default_factory=dict
    )  # settings loaded when it is chosen (its usual values)
    start: str = (
        "box"  # "box": uniform over the data's box (the paper); "prior": N(0, sigma_max^2 I)
    )


def _langevin(
    score: ScoreFn, x0: torch.Tensor, s: ExploreSettings, g: torch.Generator
) -> Trajectory:
    return langevin_dynamics(
        lambda x: score(x, s.sigma_min), x0, s.step_size, s.n_steps, g, record=s.n_frames
    )


def _annealed(
    score: ScoreFn, x0: torch.Tensor, s: ExploreSettings, g: torch.Generator
) -> Trajectory:
    return annealed_langevin_dynamics(
        score, x0, s.sigmas(), s.step_size, s.n_steps, g, record=s.n_frames, denoise=s.denoise
    )


def _consistent(
    score: ScoreFn, x0: torch.Tensor, s: ExploreSettings, g: torch.Generator
) -> Trajectory:
    return consistent_annealed_sampling(score, x0, s.sigmas(), s.step_size, g, record=s.n_frames)


def _level_sigma(s: ExploreSettings, level: int) -> float:
    return s.sigmas()[level].item()


def _edm_sigma(s: ExploreSettings, level: int) -> float:
    """The probability flow's grid (EDM's, rho = 7) at a frame's level; 0 past its end."""
    from ..sde import VESDE

    grid = VESDE(s.sigma_min, s.sigma_max).grid(s.n_levels)
    return grid[min(level, len(grid) - 1)]


def _sde_sigma(s: ExploreSettings, level: int) -> float:
    """VESDE sigma(t) = sigma_min (sigma_max / sigma_min)^t at t = 1 - level / N (Song et al. 2021, Eq. 31)."""
    t = min(max(1 - level / s.n_levels, 0.0), 1.0)
    return s.sigma_min * (s.sigma_max / s.sigma_min) ** t


_ANNEALED = frozenset({"sigma_max", "sigma_min", "n_levels", "step_size"})


def _continuous_time_entries() -> dict[str, SamplerEntry]:
    """The samplers of ``ncsn_toy.sde`` (Song et al. 2021), imported when run; none if it is missing."""
    if importlib.util.find_spec("ncsn_toy.sde") is None:
        return {}

    def reverse_sde(score, x0, s, g):
        from ..sde import VESDE, reverse_sde_sampling

        return reverse_sde_sampling(
            score, x0, VESDE(s.sigma_min, s.sigma_max), s.n_levels, g, record=s.n_frames
        )

    def predictor_corrector(score, x0, s, g):
        from ..sde import VESDE, predictor_corrector_sampling

        return predictor_corrector_sampling(
            score,
            x0,
            VESDE(s.sigma_min, s.sigma_max),
            s.n_levels,
            n_corrector=s.n_steps,
            generator=g,
            record=s.n_frames,
        )

    def probability_flow(method):
        def run(score, x0, s, g):
            from ..sde import VESDE, probability_flow_sampling

            return probability_flow_sampling(
                score,
                x0,
                VESDE(s.sigma_min, s.sigma_max),
                s.n_levels,
                method=method,
                record=s.n_frames,
            )

        return run

    def count(sampler: str, s: ExploreSettings, **options: object) -> int:
        from ..sde import score_evaluations

        return score_evaluations(sampler, s.n_levels, **options)

    times = frozenset({"sigma_max", "sigma_min", "n_levels"})
    return {
        "reverse-time SDE": SamplerEntry(
            reverse_sde,
            _sde_sigma,
            lambda s: count("reverse_sde", s),
            times,
            {"n_levels": 1000},
            start="prior",
        ),
        "predictor-corrector": SamplerEntry(
            predictor_corrector,
            _sde_sigma,
            lambda s: count("predictor_corrector", s, n_corrector=s.n_steps),
            times | {"n_steps"},
            {"n_levels": 500, "n_steps": 1},
            start="prior",
        ),
        "probability flow ODE (Heun)": SamplerEntry(
            probability_flow("heun"),
            _edm_sigma,
            lambda s: count("probability_flow", s, method="heun"),
            times,
            {"n_levels": 50},
            start="prior",
        ),
        "probability flow ODE (multistep)": SamplerEntry(
            probability_flow("multistep"),
            _edm_sigma,
            lambda s: count("probability_flow", s, method="multistep"),
            times,
            {"n_levels": 20},
            start="prior",
        ),
    }


def samplers() -> dict[str, SamplerEntry]:
    """The drop-down, in order: label -> :class:`SamplerEntry`.

    The presets are the settings measured in the README: the paper's eps = 0.1 with T = 1000
    Langevin steps, or L = 10 levels of T = 100 steps (Fig. 3); 100 levels for consistent
    annealed sampling (one step each).
    """
    return {
        "Langevin dynamics": SamplerEntry(
            _langevin,
            lambda s, level: s.sigma_min,
            lambda s: s.n_steps,
            frozenset({"sigma_min", "step_size", "n_steps"}),
            {"step_size": 0.1, "n_steps": 1000},
        ),
        "annealed Langevin": SamplerEntry(
            _annealed,
            _level_sigma,
            lambda s: s.n_levels * s.n_steps + s.denoise,
            _ANNEALED | {"n_steps", "denoise"},
            {"n_levels": 10, "step_size": 0.1, "n_steps": 100},
        ),
        "consistent annealed sampling": SamplerEntry(
            _consistent,
            _level_sigma,
            lambda s: s.n_levels,
            _ANNEALED,
            {"n_levels": 100, "step_size": 0.1},
        ),
        **_continuous_time_entries(),
    }
