"""The explorer's sampler drop-down: one :class:`SamplerEntry` per sampler of the package, by label.

Adding a sampler to the explorer is one entry in :func:`samplers`: how to run it (recording
frames), which noise level each recorded frame is drawn over, how many score evaluations it makes,
which settings it reads (the others are greyed out in the page) and the settings it is usually run
with (loaded when it is chosen). Every sampler ends at sigma_min; plain Langevin dynamics runs on
p_{sigma_min} (a network has no sigma = 0; with the exact score, a small sigma_min gives p itself,
the paper's Fig. 3).

The entries read the explorer's settings through :class:`SamplerSettings`, the part of
:class:`~.explore_core.ExploreSettings` a sampler needs; ``ExploreSettings`` checks its sampler
label against :func:`samplers`, so this module does not import it.

References: Song & Ermon, NeurIPS 2019 (Eq. 4, Algorithm 1); Jolicoeur-Martineau et al., ICLR 2021
(consistent annealed sampling, Algorithm 2); Song et al., "Score-Based Generative Modeling through
Stochastic Differential Equations", ICLR 2021 (the variance-exploding SDE, Eq. 31, and its
samplers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..samplers import (
    Trajectory,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    langevin_dynamics,
)
from ..sde import (
    VESDE,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
    score_evaluations,
)

__all__ = ["SamplerEntry", "SamplerSettings", "samplers", "ScoreFn"]

# (x (n, d), sigma) -> (n, d)
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]


class SamplerSettings(Protocol):
    """The settings a sampler reads: these fields of :class:`~.explore_core.ExploreSettings`."""

    @property
    def sigma_max(self) -> float: ...

    @property
    def sigma_min(self) -> float: ...

    @property
    def n_levels(self) -> int: ...

    @property
    def step_size(self) -> float: ...

    @property
    def n_steps(self) -> int: ...

    @property
    def denoise(self) -> bool: ...

    @property
    def n_frames(self) -> int: ...

    def sigmas(self) -> torch.Tensor: ...


# (score, x0 (n, d), settings, generator) -> the trajectory, recording frames
RunFn = Callable[[ScoreFn, torch.Tensor, SamplerSettings, torch.Generator], Trajectory]


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler of the drop-down: how to start it, run it, and what its frames show."""

    # runs it, recording frames
    run: RunFn
    # (settings, level of a frame) -> the sigma drawn behind that frame
    frame_sigma: Callable[[SamplerSettings, int], float]
    # score evaluations of one run (for the progress bar)
    evaluations: Callable[[SamplerSettings], int]
    # the settings this sampler reads; the others are greyed out
    uses: frozenset[str]
    # settings loaded when it is chosen (its usual values)
    preset: dict = field(default_factory=dict)
    # "box": uniform over the data's box (the paper); "prior": N(0, sigma_max^2 I)
    start: str = "box"


def _langevin(
    score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator
) -> Trajectory:
    def score_at_sigma_min(x: torch.Tensor) -> torch.Tensor:
        return score(x, s.sigma_min)

    return langevin_dynamics(score_at_sigma_min, x0, s.step_size, s.n_steps, g, record=s.n_frames)


def _annealed(
    score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator
) -> Trajectory:
    return annealed_langevin_dynamics(
        score, x0, s.sigmas(), s.step_size, s.n_steps, g, record=s.n_frames, denoise=s.denoise
    )


def _consistent(
    score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator
) -> Trajectory:
    return consistent_annealed_sampling(score, x0, s.sigmas(), s.step_size, g, record=s.n_frames)


def _reverse_sde(
    score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator
) -> Trajectory:
    sde = VESDE(s.sigma_min, s.sigma_max)
    return reverse_sde_sampling(score, x0, sde, s.n_levels, g, record=s.n_frames)


def _predictor_corrector(
    score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator
) -> Trajectory:
    sde = VESDE(s.sigma_min, s.sigma_max)
    return predictor_corrector_sampling(
        score, x0, sde, s.n_levels, n_corrector=s.n_steps, generator=g, record=s.n_frames
    )


def _probability_flow(method: str) -> RunFn:
    """The probability-flow ODE solved with ``method`` (deterministic: ``g`` is unused)."""

    def run(score: ScoreFn, x0: torch.Tensor, s: SamplerSettings, g: torch.Generator) -> Trajectory:
        sde = VESDE(s.sigma_min, s.sigma_max)
        return probability_flow_sampling(
            score, x0, sde, s.n_levels, method=method, record=s.n_frames
        )

    return run


def _sigma_min(s: SamplerSettings, level: int) -> float:
    return s.sigma_min


def _level_sigma(s: SamplerSettings, level: int) -> float:
    return s.sigmas()[level].item()


def _edm_sigma(s: SamplerSettings, level: int) -> float:
    """The probability flow's grid (EDM's, rho = 7) at a frame's level; sigma_min past its end."""
    grid = VESDE(s.sigma_min, s.sigma_max).grid(s.n_levels)
    return grid[min(level, len(grid) - 1)]


def _sde_sigma(s: SamplerSettings, level: int) -> float:
    """VESDE sigma(t) = sigma_min (sigma_max / sigma_min)^t at t = 1 - level / N.

    Song et al. 2021, Eq. 31.
    """
    t = min(max(1 - level / s.n_levels, 0.0), 1.0)
    return s.sigma_min * (s.sigma_max / s.sigma_min) ** t


def _langevin_evaluations(s: SamplerSettings) -> int:
    return s.n_steps


def _annealed_evaluations(s: SamplerSettings) -> int:
    # one per step at every level, and one more for the final denoising step
    return s.n_levels * s.n_steps + s.denoise


def _consistent_evaluations(s: SamplerSettings) -> int:
    return s.n_levels


def _reverse_sde_evaluations(s: SamplerSettings) -> int:
    return score_evaluations("reverse_sde", s.n_levels)


def _predictor_corrector_evaluations(s: SamplerSettings) -> int:
    return score_evaluations("predictor_corrector", s.n_levels, n_corrector=s.n_steps)


def _heun_evaluations(s: SamplerSettings) -> int:
    return score_evaluations("probability_flow", s.n_levels, method="heun")


def _multistep_evaluations(s: SamplerSettings) -> int:
    return score_evaluations("probability_flow", s.n_levels, method="multistep")


# the settings of the noise levels, which every annealed sampler reads
_ANNEALED = frozenset({"sigma_max", "sigma_min", "n_levels", "step_size"})
# the settings of the continuous-time samplers' time grid
_TIMES = frozenset({"sigma_max", "sigma_min", "n_levels"})


def samplers() -> dict[str, SamplerEntry]:
    """The drop-down, in order: label -> :class:`SamplerEntry`.

    The presets are the settings measured in the README: the paper's eps = 0.1 with T = 1000
    Langevin steps, or L = 10 levels of T = 100 steps (Fig. 3); 100 levels for consistent
    annealed sampling (one step each). The continuous-time samplers (Song et al. 2021) start from
    their prior.
    """
    return {
        "Langevin dynamics": SamplerEntry(
            run=_langevin,
            frame_sigma=_sigma_min,
            evaluations=_langevin_evaluations,
            uses=frozenset({"sigma_min", "step_size", "n_steps"}),
            preset={"step_size": 0.1, "n_steps": 1000},
        ),
        "annealed Langevin": SamplerEntry(
            run=_annealed,
            frame_sigma=_level_sigma,
            evaluations=_annealed_evaluations,
            uses=_ANNEALED | {"n_steps", "denoise"},
            preset={"n_levels": 10, "step_size": 0.1, "n_steps": 100},
        ),
        "consistent annealed sampling": SamplerEntry(
            run=_consistent,
            frame_sigma=_level_sigma,
            evaluations=_consistent_evaluations,
            uses=_ANNEALED,
            preset={"n_levels": 100, "step_size": 0.1},
        ),
        "reverse-time SDE": SamplerEntry(
            run=_reverse_sde,
            frame_sigma=_sde_sigma,
            evaluations=_reverse_sde_evaluations,
            uses=_TIMES,
            preset={"n_levels": 1000},
            start="prior",
        ),
        "predictor-corrector": SamplerEntry(
            run=_predictor_corrector,
            frame_sigma=_sde_sigma,
            evaluations=_predictor_corrector_evaluations,
            uses=_TIMES | {"n_steps"},
            preset={"n_levels": 500, "n_steps": 1},
            start="prior",
        ),
        "probability flow ODE (Heun)": SamplerEntry(
            run=_probability_flow("heun"),
            frame_sigma=_edm_sigma,
            evaluations=_heun_evaluations,
            uses=_TIMES,
            preset={"n_levels": 50},
            start="prior",
        ),
        "probability flow ODE (multistep)": SamplerEntry(
            run=_probability_flow("multistep"),
            frame_sigma=_edm_sigma,
            evaluations=_multistep_evaluations,
            uses=_TIMES,
            preset={"n_levels": 20},
            start="prior",
        ),
    }
