"""ncsn_toy: the toy experiment of NCSN (Song & Ermon 2019) as a small, tested package.

"Generative Modeling by Estimating Gradients of the Data Distribution" (NeurIPS 2019): exact
Gaussian-mixture scores at every noise level, the original notebook's two small score networks,
denoising / annealed denoising / sliced score matching, Langevin and annealed Langevin samplers,
the score SDEs of Song et al. (2021) with exact ODE likelihoods, DDPM and DDIM as the same
score under the variance-preserving noising, and ``fit`` for any mixture.
"""

from .checkpoints import load_checkpoint, save_checkpoint
from .ddpm import VPSDE, DDPMSchedule, ddim_sampling, ddpm_sampling, exact_eps
from .likelihood import ode_log_likelihood
from .losses import anneal_dsm_loss, ddpm_loss, dsm_loss, sliced_score_matching_loss
from .metrics import (
    ModeStatistics,
    ScoreError,
    energy_distance,
    mode_statistics,
    mode_weights,
    relative_score_error,
)
from .mixtures import GaussianMixture
from .networks import EpsilonNet, NoiseConditionalScoreNet, ScoreNet
from .noise_levels import NoiseSchedule, geometric_sigmas
from .samplers import (
    SamplerDivergedError,
    Trajectory,
    annealed_langevin_dynamics,
    consistent_annealed_sampling,
    langevin_dynamics,
)
from .sde import (
    VESDE,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
)
from .targets import (
    TARGETS,
    anisotropic,
    four_gaussians,
    grid,
    ring,
    spiral,
    target,
    two_gaussians,
    uniform_in_box,
)
from .training import TrainingDivergedError, fit

__version__ = "0.1.0"

__all__ = [
    "GaussianMixture",
    "two_gaussians",
    "four_gaussians",
    "ring",
    "grid",
    "spiral",
    "anisotropic",
    "TARGETS",
    "target",
    "uniform_in_box",
    "fit",
    "NoiseSchedule",
    "ScoreNet",
    "NoiseConditionalScoreNet",
    "geometric_sigmas",
    "dsm_loss",
    "anneal_dsm_loss",
    "sliced_score_matching_loss",
    "langevin_dynamics",
    "annealed_langevin_dynamics",
    "consistent_annealed_sampling",
    "Trajectory",
    "VESDE",
    "reverse_sde_sampling",
    "predictor_corrector_sampling",
    "probability_flow_sampling",
    "ode_log_likelihood",
    "VPSDE",
    "DDPMSchedule",
    "ddpm_sampling",
    "ddim_sampling",
    "exact_eps",
    "EpsilonNet",
    "ddpm_loss",
    "SamplerDivergedError",
    "mode_weights",
    "mode_statistics",
    "ModeStatistics",
    "energy_distance",
    "relative_score_error",
    "ScoreError",
    "save_checkpoint",
    "load_checkpoint",
    "TrainingDivergedError",
    "explorer",
    "__version__",
]


def __getattr__(name: str) -> object:
    """``ncsn_toy.explorer``, imported on first use: ``import ncsn_toy`` needs no widget package."""
    if name == "explorer":
        from .figures.explorer import explorer

        return explorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
