"""The explorer's computation: settings in, samples, recorded frames and numbers out. No widgets.

:func:`explore` runs one sampler of the package on one named target (exact score or trained
network) and measures the result with the package's metrics: mode weights against the truth,
the largest weight error, the energy distance to exact samples, score evaluations and seconds.
The widgets of :mod:`ncsn_toy.figures.explorer` call it; so do the tests and ``bench``.

Each sampler of the drop-down is one entry of :func:`~.explore_samplers.samplers`; targets come
from :data:`ncsn_toy.targets.TARGETS`, trained networks from ``checkpoints/ncsn_<target>.pt``
where that file exists.

Randomness, in this order, from one generator seeded with ``settings.seed``: the start (uniform
over the data's box, as in the paper's Fig. 3, or the prior N(0, sigma_max^2 I) for the
continuous-time samplers), the sampler's noise, then the exact reference samples.

References: Song & Ermon, NeurIPS 2019 (Algorithm 1, Fig. 3); Jolicoeur-Martineau et al., ICLR 2021
(consistent annealed sampling); Song et al., ICLR 2021 (the variance-exploding SDE samplers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import _checks
from ..checkpoints import load_checkpoint
from ..metrics import energy_distance, mode_weights
from ..mixtures import GaussianMixture
from ..noise_levels import geometric_sigmas
from ..recipes import DEFAULT_CHECKPOINTS
from ..targets import TARGETS, target, uniform_in_box
from .explore_samplers import SamplerEntry, ScoreFn, samplers

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
    """The committed noise-conditional networks ``<directory>/ncsn_<target>.pt``, loaded once."""

    def __init__(self, directory: str | Path = DEFAULT_CHECKPOINTS) -> None:
        self.directory = Path(directory)
        self._loaded: dict[str, nn.Module] = {}

    def path(self, name: str) -> Path:
        return self.directory / f"ncsn_{name}.pt"

    def scores(self, name: str) -> tuple[str, ...]:
        """The values of :data:`SCORES` available for target ``name``."""
        return ("exact", "trained") if self.path(name).is_file() else ("exact",)

    def get(self, name: str) -> nn.Module:
        if name not in self._loaded:
            self._loaded[name] = load_checkpoint(self.path(name))
        return self._loaded[name]


# A request to stop, not an error (like StopIteration), hence no Error suffix in its name.
class Cancelled(Exception):  # noqa: N818
    """Raised by a progress callback to stop a run whose settings are no longer wanted."""


@dataclass(frozen=True)
class ExploreResult:
    """One run: the samples, the recorded frames and the numbers."""

    settings: ExploreSettings
    mixture: GaussianMixture  # the target
    score: ScoreFn  # the score the sampler used, (x, sigma) -> (n, d)
    samples: torch.Tensor  # (n, d) final samples
    frames: torch.Tensor  # (F, n, d) recorded particles
    steps: torch.Tensor  # (F,) global step of each frame (0 is the start)
    levels: torch.Tensor  # (F,) noise-level index of each frame
    # (F,) the sigma whose density and field each frame is drawn over
    frame_sigmas: tuple[float, ...]
    weights: torch.Tensor  # (K,) sampled mode weights (mean responsibilities)
    max_weight_error: float  # max_k |weights_k - w_k|
    energy_distance: float  # to as many exact samples of p
    evaluations: int  # score evaluations (calls of the score, each on every particle)
    seconds: float  # wall time of the sampler alone

    def numbers(self) -> str:
        """The line under the picture; it starts with "weights"."""
        sampled = "/".join(f"{w:.3f}" for w in self.weights.tolist())
        truth = "/".join(f"{w:.3f}" for w in self.mixture.weights.tolist())
        return (
            f"weights {sampled} (truth {truth}) · max weight error {self.max_weight_error:.3f} · "
            f"energy distance {self.energy_distance:.4f} · {self.evaluations} score evaluations · "
            f"{self.seconds:.2f} s"
        )

    def frame_title(self, frame: int) -> str:
        """The title of frame ``frame``: sampler, score, sigma, and how far the run is."""
        s = self.settings
        level = int(self.levels[frame])
        step = int(self.steps[frame])
        entry = samplers()[s.sampler]
        # Only the Langevin family's frames name their noise level: the continuous-time samplers'
        # grid has n_levels + 1 points, and sigma already says where on it a frame is.
        if "n_levels" in entry.uses and entry.start == "box":
            where = f"level {level + 1}/{s.n_levels}, "
        else:
            where = ""
        return (
            f"{s.sampler}, {SCORES[s.score]}: σ = {self.frame_sigmas[frame]:.3g}\n"
            f"{where}step {step}/{int(self.steps[-1])}"
        )


def _start(
    entry: SamplerEntry, mixture: GaussianMixture, s: ExploreSettings, g: torch.Generator
) -> torch.Tensor:
    """The particles a run starts from, drawn with ``g``: ``(n_particles, d)``."""
    if entry.start == "prior":
        # N(0, sigma_max^2 I), the continuous-time samplers' prior
        return s.sigma_max * torch.randn(s.n_particles, mixture.dim, generator=g)
    # uniform over the data's box: [-8, 8]^2 for the paper's two modes
    return uniform_in_box(mixture, s.n_particles, g)


def score_function(
    settings: ExploreSettings, mixture: GaussianMixture, networks: Networks
) -> ScoreFn:
    """The exact score of ``mixture`` at sigma, or the trained network for ``settings.target``."""
    if settings.score == "exact":
        return mixture.score
    model = networks.get(settings.target)

    def trained(x: torch.Tensor, sigma: float) -> torch.Tensor:
        with torch.no_grad():
            return model(x, sigma)

    return trained


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
    score = score_function(settings, mixture, networks or Networks())
    total = entry.evaluations(settings)
    calls = 0

    def counted(x: torch.Tensor, sigma: float) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if progress is not None:
            progress(calls, total)
        return score(x, sigma)

    g = torch.Generator().manual_seed(settings.seed)
    x0 = _start(entry, mixture, settings, g)
    start = time.perf_counter()
    trajectory = entry.run(counted, x0, settings, g)
    seconds = time.perf_counter() - start
    reference = mixture.sample(settings.n_particles, generator=g)  # (n, d) exact samples of p
    weights = mode_weights(mixture, trajectory.samples)
    levels = trajectory.levels.tolist()
    return ExploreResult(
        settings=settings,
        mixture=mixture,
        score=score,
        samples=trajectory.samples,
        frames=trajectory.frames,
        steps=trajectory.steps,
        levels=trajectory.levels,
        frame_sigmas=tuple(entry.frame_sigma(settings, level) for level in levels),
        weights=weights,
        max_weight_error=(weights - mixture.weights).abs().max().item(),
        energy_distance=energy_distance(trajectory.samples, reference),
        evaluations=calls,
        seconds=seconds,
    )
