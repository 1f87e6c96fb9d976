"""The explorer's sampler drop-down: one :class:`SamplerEntry` per sampler of the package, by label.

Adding a sampler to the explorer is one entry in :func:`samplers`: how to run it (recording
frames), which noise level each recorded frame is drawn over, how many score evaluations it makes,
which settings it reads (the others are greyed out in the page) and the settings it is usually run
with (loaded when it is chosen). Every sampler ends at sigma_min; plain Langevin dynamics runs on
p_{sigma_min} (a network has no sigma = 0; with the exact score, a small sigma_min gives p itself,
the paper's Fig. 3).

DDPM and DDIM run on DDPM's own noising (Ho et al.'s linear schedule of T = 1000 steps): they
call the noise predictor eps(x, t) instead of a score, start from N(0, I), and their particles are
x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) z (variance-preserving coordinates). Each of their frames
carries the step t whose noise its particles hold (-1 once they are clean samples), the VE noise
level of that step, sigma_t = sqrt(1 - a_t) / sqrt(a_t), and its signal scale sqrt(a_t).

The entries read the explorer's settings through :class:`SamplerSettings`, the part of
:class:`~.explore_core.ExploreSettings` a sampler needs; ``ExploreSettings`` checks its sampler
label against :func:`samplers`, so this module does not import it.

References: Song & Ermon, NeurIPS 2019 (Eq. 4, Algorithm 1); Jolicoeur-Martineau et al., ICLR 2021
(consistent annealed sampling, Algorithm 2); Song et al., "Score-Based Generative Modeling through
Stochastic Differential Equations", ICLR 2021 (the variance-exploding SDE, Eq. 31, and its
samplers); Ho et al., NeurIPS 2020 (DDPM, Algorithm 2); Song, Meng & Ermon, ICLR 2021 (DDIM,
Eq. 12).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..ddpm import DDPMSchedule, ddim_sampling, ddim_timesteps, ddpm_sampling
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

__all__ = ["SamplerEntry", "SamplerSettings", "samplers", "ScoreFn", "ddpm_schedule", "DDPM_STEPS"]

# (x (n, d), sigma) -> (n, d): a score s(x, sigma); for DDPM and DDIM the noise predictor eps(x, t)
ScoreFn = Callable[[torch.Tensor, float], torch.Tensor]
DDPM_STEPS = 1000  # T of DDPM's schedule, the one the committed eps-network is trained for


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
    def eta(self) -> float: ...

    @property
    def n_frames(self) -> int: ...

    def sigmas(self) -> torch.Tensor: ...


# (score, x0 (n, d), settings, generator) -> the trajectory, recording frames
RunFn = Callable[[ScoreFn, torch.Tensor, SamplerSettings, torch.Generator], Trajectory]


def _unit_scale(s: SamplerSettings, level: int) -> float:
    """The particles of the VE samplers are the data plus noise: a signal scale of 1."""
    return 1.0


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
    # "box": uniform over the data's box (the paper); "prior": N(0, sigma_max^2 I);
    # "standard normal": N(0, I), DDPM's x_T
    start: str = "box"
    # "ve": particles x_0 + sigma z, the sampler calls the score s(x, sigma);
    # "vp": particles sqrt(a_t) x_0 + sqrt(1 - a_t) z, it calls DDPM's noise predictor eps(x, t)
    noising: str = "ve"
    # (settings, level of a frame) -> the signal scale of its particles, sqrt(a_t) (1 for "ve")
    frame_scale: Callable[[SamplerSettings, int], float] = _unit_scale
    # the trained model's checkpoint: "<network>_<target>.pt"
    network: str = "ncsn"
    # a few sentences for the page: what is drawn, and why the preset is what it is
    note: str = ""


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


@functools.cache
def ddpm_schedule() -> DDPMSchedule:
    """Ho et al.'s linear schedule of T = 1000 steps, betas 1e-4 to 0.02 (built once)."""
    return DDPMSchedule.linear(DDPM_STEPS)


def _noise_steps(trajectory: Trajectory, carried: list[int]) -> Trajectory:
    """``trajectory`` with ``levels`` replaced by the step t whose noise each frame carries.

    ``carried[k]`` is that step after k updates (-1: clean samples). The samplers record the step
    of the update that made a frame, whose particles already carry the next step's noise.
    """
    levels = torch.tensor([carried[step] for step in trajectory.steps.tolist()])
    return trajectory._replace(levels=levels)


def _ddpm(eps: ScoreFn, x_T: torch.Tensor, s: SamplerSettings, g: torch.Generator) -> Trajectory:
    schedule = ddpm_schedule()
    trajectory = ddpm_sampling(eps, x_T, schedule, g, record=s.n_frames)
    # after k of the T updates the particles carry the noise of step T - 1 - k
    carried = list(range(schedule.n_steps - 1, -2, -1))
    return _noise_steps(trajectory, carried)


def _ddim(eps: ScoreFn, x_T: torch.Tensor, s: SamplerSettings, g: torch.Generator) -> Trajectory:
    schedule = ddpm_schedule()
    if s.n_levels > schedule.n_steps:
        raise ValueError(
            f"DDIM takes at most the schedule's T = {schedule.n_steps} steps (levels), "
            f"got {s.n_levels}"
        )
    trajectory = ddim_sampling(eps, x_T, schedule, s.n_levels, s.eta, g, record=s.n_frames)
    return _noise_steps(trajectory, [*ddim_timesteps(schedule, s.n_levels), -1])


def _vp_sigma(s: SamplerSettings, level: int) -> float:
    """The VE noise level of step t, sqrt(1 - a_t) / sqrt(a_t); 0 for the clean samples."""
    return ddpm_schedule().sigmas[level].item() if level >= 0 else 0.0


def _vp_scale(s: SamplerSettings, level: int) -> float:
    """The signal scale sqrt(a_t) of step t; 1 for the clean samples."""
    return ddpm_schedule().scales[level].item() if level >= 0 else 1.0


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


def _ddpm_evaluations(s: SamplerSettings) -> int:
    return ddpm_schedule().n_steps  # one per step of the schedule


def _ddim_evaluations(s: SamplerSettings) -> int:
    return s.n_levels  # one per step of its subsequence


# the settings of the noise levels, which every annealed sampler reads
_ANNEALED = frozenset({"sigma_max", "sigma_min", "n_levels", "step_size"})
# the settings of the continuous-time samplers' time grid
_TIMES = frozenset({"sigma_max", "sigma_min", "n_levels"})
# the paper's noise levels (Fig. 3), loaded with the annealed samplers
_PAPER_SIGMAS = {"sigma_max": 20.0, "sigma_min": 1.0}
# where the docs and the tutorial start the samplers that start from the prior (exact score)
_PRIOR_SIGMAS = {"sigma_max": 800.0, "sigma_min": 0.2}

_VE_NOTE = (
    "Behind the particles: the density p_σ at the frame's noise level and the arrows σ·s(x, σ) "
    "of the score the sampler uses."
)
_PRIOR_NOTE = (
    f"{_VE_NOTE} The run starts from the prior N(0, σ_max² I) in place of p_σmax, which is "
    "centred on the data's mean, not on 0: unless σ_max is far larger than that mean, the "
    "difference stays to the end. With σ_max = 20 on two Gaussians the probability flow ends at "
    "weights of about 0.24/0.76 and the reverse SDE at about 0.23/0.77 (truth 0.2/0.8); the "
    "predictor-corrector's Langevin steps correct most of it. Hence σ_max = 800 in this preset. "
    "A trained network knows σ only up to its largest training level (20 for two Gaussians): "
    "with it, σ_max is set there, and the bias stays."
)
_VP_NOTE = (
    "DDPM's particles live in VP coordinates: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) z, "
    "about N(0, I) at t = 999 (Ho et al.'s linear schedule, T = 1000 steps). Behind them: the "
    "density of x_t and the arrows −ε(x, t) = √(1−ᾱ_t) ∇log p_t. The σ of a frame "
    "is the VE noise level of its step, √(1−ᾱ_t)/√ᾱ_t, since x_t/√ᾱ_t = x_0 + σ z; "
    "the curve asks which mode each x_t/√ᾱ_t lies in."
)
_DDIM_NOTE = (
    f"{_VP_NOTE} DDIM takes 'levels' steps, evenly spaced over t = 999…0 (one ε evaluation "
    "each); η = 0 is deterministic (Euler's method on the VE probability-flow ODE in σ), η = 1 "
    "adds DDPM's noise."
)


def samplers() -> dict[str, SamplerEntry]:
    """The drop-down, in order: label -> :class:`SamplerEntry`.

    The presets are the settings measured in docs/results.md: the paper's eps = 0.1 with T = 1000
    Langevin steps, or L = 10 levels of T = 100 steps from sigma 20 to 1 (Fig. 3); 100 levels for
    consistent annealed sampling (one step each). The continuous-time samplers (Song et al. 2021)
    start from their prior at sigma_max = 800 (their note says why). DDPM runs the 1000 steps of
    its schedule, DDIM 50 of them.
    """
    return {
        "Langevin dynamics": SamplerEntry(
            run=_langevin,
            frame_sigma=_sigma_min,
            evaluations=_langevin_evaluations,
            uses=frozenset({"sigma_min", "step_size", "n_steps"}),
            preset={"step_size": 0.1, "n_steps": 1000},
            note=_VE_NOTE,
        ),
        "annealed Langevin": SamplerEntry(
            run=_annealed,
            frame_sigma=_level_sigma,
            evaluations=_annealed_evaluations,
            uses=_ANNEALED | {"n_steps", "denoise"},
            preset={**_PAPER_SIGMAS, "n_levels": 10, "step_size": 0.1, "n_steps": 100},
            note=_VE_NOTE,
        ),
        "consistent annealed sampling": SamplerEntry(
            run=_consistent,
            frame_sigma=_level_sigma,
            evaluations=_consistent_evaluations,
            uses=_ANNEALED,
            preset={**_PAPER_SIGMAS, "n_levels": 100, "step_size": 0.1},
            note=_VE_NOTE,
        ),
        "reverse-time SDE": SamplerEntry(
            run=_reverse_sde,
            frame_sigma=_sde_sigma,
            evaluations=_reverse_sde_evaluations,
            uses=_TIMES,
            preset={**_PRIOR_SIGMAS, "n_levels": 1000},
            start="prior",
            note=_PRIOR_NOTE,
        ),
        "predictor-corrector": SamplerEntry(
            run=_predictor_corrector,
            frame_sigma=_sde_sigma,
            evaluations=_predictor_corrector_evaluations,
            uses=_TIMES | {"n_steps"},
            preset={**_PRIOR_SIGMAS, "n_levels": 500, "n_steps": 1},
            start="prior",
            note=_PRIOR_NOTE,
        ),
        "probability flow ODE (Heun)": SamplerEntry(
            run=_probability_flow("heun"),
            frame_sigma=_edm_sigma,
            evaluations=_heun_evaluations,
            uses=_TIMES,
            preset={**_PRIOR_SIGMAS, "n_levels": 50},
            start="prior",
            note=_PRIOR_NOTE,
        ),
        "probability flow ODE (multistep)": SamplerEntry(
            run=_probability_flow("multistep"),
            frame_sigma=_edm_sigma,
            evaluations=_multistep_evaluations,
            uses=_TIMES,
            preset={**_PRIOR_SIGMAS, "n_levels": 20},
            start="prior",
            note=_PRIOR_NOTE,
        ),
        "DDPM": SamplerEntry(
            run=_ddpm,
            frame_sigma=_vp_sigma,
            evaluations=_ddpm_evaluations,
            uses=frozenset(),
            start="standard normal",
            noising="vp",
            frame_scale=_vp_scale,
            network="ddpm",
            note=_VP_NOTE,
        ),
        "DDIM": SamplerEntry(
            run=_ddim,
            frame_sigma=_vp_sigma,
            evaluations=_ddim_evaluations,
            uses=frozenset({"n_levels", "eta"}),
            preset={"n_levels": 50, "eta": 0.0},
            start="standard normal",
            noising="vp",
            frame_scale=_vp_scale,
            network="ddpm",
            note=_DDIM_NOTE,
        ),
    }
