"""The explorer's computation: settings in, samples, recorded frames and numbers out. No widgets.

:func:`explore` runs one sampler of the package on one named target (exact score or trained
network) and measures the result with the package's metrics: mode weights against the truth,
the largest weight error, the energy distance to exact samples, score evaluations and seconds,
and, at every recorded frame, which mode each particle lies in (where the weights are decided).
The widgets of :mod:`ncsn_toy.figures.explorer` call it; so do the tests and ``bench``.

Each sampler of the drop-down is one entry of :func:`~.explore_samplers.samplers`; targets come
from :data:`ncsn_toy.targets.TARGETS`, trained networks from ``checkpoints/ncsn_<target>.pt``
(DDPM and DDIM: the noise predictor ``checkpoints/ddpm_<target>.pt``) where that file exists.

Randomness, in this order, from one generator seeded with ``settings.seed``: the start (uniform
over the data's box, as in the paper's Fig. 3, the prior N(0, sigma_max^2 I) for the
continuous-time samplers, or N(0, I) for DDPM and DDIM), the sampler's noise, then the exact
reference samples.

References: Song & Ermon, NeurIPS 2019 (Algorithm 1, Fig. 3); Jolicoeur-Martineau et al., ICLR 2021
(consistent annealed sampling); Song et al., ICLR 2021 (the variance-exploding SDE samplers);
Ho et al., NeurIPS 2020 (DDPM); Song, Meng & Ermon, ICLR 2021 (DDIM).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import _checks
from ..checkpoints import load_checkpoint
from ..ddpm import exact_eps
from ..metrics import energy_distance, mode_weights, mode_weights_along
from ..mixtures import GaussianMixture
from ..noise_levels import geometric_sigmas
from ..recipes import DEFAULT_CHECKPOINTS, load_or_train
from ..targets import TARGETS, target, uniform_in_box
from .explore_samplers import SamplerEntry, ScoreFn, ddpm_schedule, samplers

__all__ = [
    "ExploreSettings",
    "ExploreResult",
    "Networks",
    "Cancelled",
    "SCORES",
    "explore",
    "samplers",
]

# value -> label in the drop-down
SCORES = {"exact": "exact score", "trained": "trained network"}


@dataclass(frozen=True)
class ExploreSettings:
    """Everything one update of the explorer depends on.

    The defaults are the paper's annealed Langevin on two Gaussians (Fig. 3).
    """

    target: str = "two_gaussians"  # a name of TARGETS
    score: str = "exact"  # "exact" (closed form) or "trained" (checkpoints/ncsn_<target>.pt)
    sampler: str = "annealed Langevin"  # a label of samplers()
    sigma_max: float = 20.0  # largest noise level sigma_1 (annealed and continuous-time samplers)
    sigma_min: float = 1.0  # smallest noise level sigma_L; plain Langevin samples p_{sigma_min}
    n_levels: int = 10  # noise levels L (continuous-time samplers: time steps)
    # eps: the step at the smallest level (plain Langevin: alpha at every step)
    step_size: float = 0.1
    # Langevin steps per level (plain Langevin: all its steps; predictor-corrector: corrector steps)
    n_steps: int = 100
    n_particles: int = 2000  # particles, and exact samples the energy distance compares them with
    seed: int = 0  # seeds the start, the sampler's noise and the reference samples
    denoise: bool = False  # finish with x + sigma_L^2 s(x, sigma_L) (where the sampler offers it)
    eta: float = 0.0  # DDIM's share of fresh noise: 0 deterministic, 1 like DDPM
    n_frames: int = 50  # frames recorded for the scrubber (evenly spaced over the run)

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if self.sampler not in samplers():
            raise ValueError(
                f"sampler must be one of {', '.join(samplers())}, got {self.sampler!r}"
            )
        for name in ("sigma_max", "sigma_min", "step_size"):
            _checks.positive_float(getattr(self, name), name)
        for name in ("n_levels", "n_steps", "n_particles"):
            _checks.positive_int(getattr(self, name), name)
        _checks.nonnegative_float(self.eta, "eta")
        if _checks.positive_int(self.n_frames, "n_frames") < 2:
            raise ValueError(f"n_frames must be >= 2, got {self.n_frames}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**63
        ):
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if not isinstance(self.denoise, bool):
            raise TypeError(f"denoise must be a bool, got {type(self.denoise).__name__}")

    def sigmas(self) -> torch.Tensor:
        """``(L,)`` the geometric noise levels sigma_max -> sigma_min."""
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels)


class Networks:
    """The committed networks ``<directory>/<network>_<target>.pt``, loaded once.

    ``network`` is ``"ncsn"`` (the noise-conditional score networks) or ``"ddpm"`` (DDPM's noise
    predictors, loaded through their recipe, which checks the schedule they were trained for).
    """

    def __init__(self, directory: str | Path = DEFAULT_CHECKPOINTS) -> None:
        self.directory = Path(directory)
        self._loaded: dict[tuple[str, str], nn.Module] = {}

    def path(self, name: str, network: str = "ncsn") -> Path:
        return self.directory / f"{network}_{name}.pt"

    def scores(self, name: str, network: str = "ncsn") -> tuple[str, ...]:
        """The values of :data:`SCORES` available for target ``name``."""
        return ("exact", "trained") if self.path(name, network).is_file() else ("exact",)

    def get(self, name: str, network: str = "ncsn") -> nn.Module:
        key = (name, network)
        if key not in self._loaded:
            if network == "ncsn":
                self._loaded[key] = load_checkpoint(self.path(name))
            else:
                self._loaded[key] = load_or_train(
                    f"{network}_{name}", self.directory, progress=False
                )
        return self._loaded[key]

    def largest_sigma(self, name: str) -> float:
        """The largest noise level the score network of target ``name`` was trained for."""
        return self.get(name).sigmas.max().item()


# A request to stop, not an error (like StopIteration), hence no Error suffix in its name.
class Cancelled(Exception):  # noqa: N818
    """Raised by a progress callback to stop a run whose settings are no longer wanted."""


@dataclass(frozen=True)
class ExploreResult:
    """One run: the samples, the recorded frames and the numbers."""

    settings: ExploreSettings
    mixture: GaussianMixture  # the target
    # what the sampler called: the score (x, sigma) -> (n, d), or for DDPM and DDIM the noise
    # predictor eps(x, t) -> (n, d)
    model: ScoreFn
    samples: torch.Tensor  # (n, d) final samples
    frames: torch.Tensor  # (F, n, d) recorded particles
    steps: torch.Tensor  # (F,) global step of each frame (0 is the start)
    # (F,) noise-level index of each frame; DDPM and DDIM: the step t whose noise the particles
    # carry, -1 once they are clean samples
    levels: torch.Tensor
    # (F,) the sigma whose density and field each frame is drawn over (VE noise level)
    frame_sigmas: tuple[float, ...]
    # (F,) the signal scale of each frame's particles: sqrt(a_t) for DDPM and DDIM, else 1
    frame_scales: tuple[float, ...]
    # (F, K) at every frame, which mode each particle lies in: the mean responsibilities under p
    # of the particles divided by their signal scale (where the weights are decided)
    weights_along: torch.Tensor
    weights: torch.Tensor  # (K,) sampled mode weights (mean responsibilities)
    max_weight_error: float  # max_k |weights_k - w_k|
    energy_distance: float  # to as many exact samples of p
    evaluations: int  # score evaluations (calls of the score, each on every particle)
    seconds: float  # wall time of the sampler alone

    @property
    def entry(self) -> SamplerEntry:
        """The drop-down's entry of the sampler that ran."""
        return samplers()[self.settings.sampler]

    def numbers(self) -> str:
        """The line under the picture; it starts with "weights"."""
        sampled = "/".join(f"{w:.3f}" for w in self.weights.tolist())
        truth = "/".join(f"{w:.3f}" for w in self.mixture.weights.tolist())
        return (
            f"weights {sampled} (truth {truth}) · max weight error {self.max_weight_error:.3f} · "
            f"energy distance {self.energy_distance:.4f} · "
            f"{self.evaluations} score evaluations · {self.seconds:.2f} s"
        )

    def where(self, frame: int) -> str:
        """Where frame ``frame`` is on the noise scale: 'σ = 5.4' (DDPM: 't = 499, σ = 3.4')."""
        sigma = self.frame_sigmas[frame]
        if self.entry.noising != "vp":
            return f"σ = {sigma:.3g}"
        t = int(self.levels[frame])
        return f"t = {t}, σ = {sigma:.3g}" if t >= 0 else "the samples, σ = 0"

    def frame_title(self, frame: int) -> str:
        """The title of frame ``frame``: sampler, score, sigma, and how far the run is."""
        s = self.settings
        entry = self.entry
        level = int(self.levels[frame])
        step = int(self.steps[frame])
        # Only the Langevin family's frames name their noise level: the continuous-time samplers'
        # grid has n_levels + 1 points, and sigma already says where on it a frame is.
        if "n_levels" in entry.uses and entry.start == "box":
            where = f"level {level + 1}/{s.n_levels}, "
        else:
            where = ""
        coordinates = ", VP coordinates" if entry.noising == "vp" else ""
        return (
            f"{s.sampler}, {SCORES[s.score]}: {self.where(frame)}\n"
            f"{where}step {step}/{int(self.steps[-1])}{coordinates}"
        )

    def log_density(self, points: torch.Tensor, frame: int) -> torch.Tensor:
        """``(m,)`` log density at ``points`` ``(m, d)`` of the law of frame ``frame``'s particles.

        p_sigma, or for DDPM and DDIM the law of x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) z.
        """
        sigma = self.frame_sigmas[frame]
        if self.entry.noising != "vp":
            return self.mixture.log_prob(points, sigma)
        scale = self.frame_scales[frame]
        return self.mixture.perturb(scale, scale * sigma).log_prob(points)

    def field(self, points: torch.Tensor, frame: int) -> torch.Tensor:
        """``(m, d)`` arrows at ``points``: the score times its noise, of order 1 at every level.

        sigma s(x, sigma); for DDPM and DDIM -eps(x, t) = sqrt(1 - a_t) grad log p_t (zero once
        the samples are clean).
        """
        with torch.no_grad():
            if self.entry.noising != "vp":
                sigma = self.frame_sigmas[frame]
                return sigma * self.model(points, sigma)
            t = int(self.levels[frame])
            if t < 0:
                return torch.zeros_like(points)
            return -self.model(points, t)


def _start(
    entry: SamplerEntry, mixture: GaussianMixture, s: ExploreSettings, g: torch.Generator
) -> torch.Tensor:
    """The particles a run starts from, drawn with ``g``: ``(n_particles, d)``."""
    if entry.start == "prior":
        # N(0, sigma_max^2 I), the continuous-time samplers' prior
        return s.sigma_max * torch.randn(s.n_particles, mixture.dim, generator=g)
    if entry.start == "standard normal":
        # x_T ~ N(0, I), DDPM's prior
        return torch.randn(s.n_particles, mixture.dim, generator=g)
    # uniform over the data's box: [-8, 8]^2 for the paper's two modes
    return uniform_in_box(mixture, s.n_particles, g)


@functools.cache
def _exact_eps(name: str) -> ScoreFn:
    """The exact noise predictor of target ``name`` on DDPM's schedule.

    Kept, with the noised mixtures of the steps it has seen, so that the next run is fast.
    """
    return exact_eps(target(name), ddpm_schedule())


def score_function(
    settings: ExploreSettings, mixture: GaussianMixture, networks: Networks
) -> ScoreFn:
    """What the sampler calls: the exact score of ``mixture`` at sigma or the trained network for
    ``settings.target``; for DDPM and DDIM the exact noise predictor or the trained one."""
    entry = samplers()[settings.sampler]
    if settings.score == "exact":
        return _exact_eps(settings.target) if entry.noising == "vp" else mixture.score
    model = networks.get(settings.target, entry.network)
    if entry.noising == "vp" and model.n_steps != ddpm_schedule().n_steps:
        raise ValueError(
            f"the trained noise predictor has {model.n_steps} steps, "
            f"DDPM's schedule here {ddpm_schedule().n_steps}"
        )

    def trained(x: torch.Tensor, condition: float) -> torch.Tensor:
        with torch.no_grad():
            return model(x, condition)

    return trained


def weights_along_the_run(
    mixture: GaussianMixture, frames: torch.Tensor, frame_scales: tuple[float, ...]
) -> torch.Tensor:
    """``(F, K)`` which mode each particle of each frame ``(F, n, d)`` lies in.

    The particles are divided by their signal scale (DDPM's x_t / sqrt(a_t) = x_0 + sigma z) and
    weighed under p itself (sigma = 0): under p_sigma at a large sigma any cloud would get the
    prior weights, which says nothing about the particles.
    """
    scales = torch.tensor(frame_scales, dtype=frames.dtype)  # (F,)
    return mode_weights_along(mixture, frames / scales[:, None, None], [0.0] * len(frames))


def explore(
    settings: ExploreSettings,
    *,
    networks: Networks | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExploreResult:
    """Run ``settings.sampler`` and measure it: what every update of the explorer computes.

    Args:
        settings: what to run.
        networks: where the trained networks come from (default: the committed ``checkpoints/``).
        progress: called as ``progress(done, total)`` after every score evaluation; it may raise
            :class:`Cancelled` to stop the run.

    Raises:
        ValueError: settings the sampler rejects (e.g. sigma_min >= sigma_max).
        SamplerDivergedError: the run produced non-finite values (a step size that is too large).
        FileNotFoundError: ``score="trained"`` for a target without a committed network.
    """
    if not isinstance(settings, ExploreSettings):
        raise TypeError(f"settings must be an ExploreSettings, got {type(settings).__name__}")
    entry = samplers()[settings.sampler]
    mixture = target(settings.target)
    model = score_function(settings, mixture, networks or Networks())
    total = entry.evaluations(settings)
    calls = 0

    def counted(x: torch.Tensor, condition: float) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if progress is not None:
            progress(calls, total)
        return model(x, condition)

    g = torch.Generator().manual_seed(settings.seed)
    x0 = _start(entry, mixture, settings, g)
    start = time.perf_counter()
    trajectory = entry.run(counted, x0, settings, g)
    seconds = time.perf_counter() - start
    reference = mixture.sample(settings.n_particles, generator=g)  # (n, d) exact samples of p
    weights = mode_weights(mixture, trajectory.samples)
    levels = trajectory.levels.tolist()
    frame_scales = tuple(entry.frame_scale(settings, level) for level in levels)
    return ExploreResult(
        settings=settings,
        mixture=mixture,
        model=model,
        samples=trajectory.samples,
        frames=trajectory.frames,
        steps=trajectory.steps,
        levels=trajectory.levels,
        frame_sigmas=tuple(entry.frame_sigma(settings, level) for level in levels),
        frame_scales=frame_scales,
        weights_along=weights_along_the_run(mixture, trajectory.frames, frame_scales),
        weights=weights,
        max_weight_error=(weights - mixture.weights).abs().max().item(),
        energy_distance=energy_distance(trajectory.samples, reference),
        evaluations=calls,
        seconds=seconds,
    )
