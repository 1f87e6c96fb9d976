"""What every study of ``reproduce`` shares: its sizes, exact references, a measured sampler run.

The sizes (:class:`ReproduceConfig`), the exact reference samples (:func:`references`), and
:func:`measure`, which runs a sampler for every seed and measures the samples.

Every sampler starts uniformly over the data's box (``mixture.box()``; [-8, 8]^2 for two modes,
as in the paper) unless a study says otherwise; mode weights are mean responsibilities
(:func:`ncsn_toy.metrics.mode_statistics`), the distance is the squared energy distance to exact
samples (:func:`ncsn_toy.metrics.energy_distance`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..metrics import ScoreError, energy_distance, mode_statistics, relative_score_error
from ..mixtures import GaussianMixture
from ..recipes import DEFAULT_CHECKPOINTS
from ..targets import target, uniform_in_box

__all__ = [
    "ReproduceConfig",
    "measure",
    "references",
    "max_weight_error",
    "at_sigma",
    "score_error_at",
    "QUICK",
    "quick_note",
    "counted",
    "Run",
]

# appended to table headings in quick mode
QUICK = " — quick check (--fast): rough numbers"
# a sampler as the studies run it: (x0, generator) -> samples
Run = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def counted(fn: Callable, calls: list[int]) -> Callable:
    """``fn`` (a score or noise predictor), adding 1 to ``calls[0]`` at every call."""

    def wrapped(x: torch.Tensor, level: float) -> torch.Tensor:
        calls[0] += 1
        return fn(x, level)

    return wrapped


def quick_note(config: dict) -> str:
    """:data:`QUICK` for the ``config`` of a result made with --fast, else "" (table headings)."""
    return QUICK if config.get("quick") else ""


@dataclass(frozen=True)
class ReproduceConfig:
    """Sizes of a ``reproduce`` run (``fast()`` for a quick check with rough numbers)."""

    n_particles: int = 5000  # particles per sampler run
    n_reference: int = 5000  # exact samples the energy distance is measured against
    # runs per row of the sampler tables 3, 5 and 8, each with its own start and noise: their
    # "±" is the standard deviation over them
    n_seeds: int = 5
    # the same for table 1, the samplers of the paper's Fig. 3 and the README's headline: its
    # weights are the repository's main claim, so it runs more seeds
    n_headline_seeds: int = 20
    n_score_points: int = 20_000  # points per score-error estimate
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000)  # score evaluations, table 3
    sigma_study_steps: int | None = None  # Adam steps per network in table 4 (None: the recipe's)
    n_train_seeds: int = 3  # networks trained per variant in table 4 (seeds 0, 1, ...)
    checkpoints: Path = DEFAULT_CHECKPOINTS  # where the trained networks are
    retrain: bool = False  # train the networks instead of loading them
    quick: bool = False  # a quick check: tables say their numbers are rough
    # also the zoo study: fit on every target, the paper's Fig. 2 setup, the dimension study
    zoo: bool = True
    # targets of the zoo study (None: all of TARGETS, or two when quick)
    targets: tuple[str, ...] | None = None

    @classmethod
    def fast(cls, **changes: object) -> ReproduceConfig:
        """The sizes of a quick check (``--fast``), with ``changes`` applied: rough numbers."""
        # 600 Adam steps: with 100, the variants without output / sigma have not yet learned the
        # 1/sigma^2 scale of the score at the largest sigma, where the step
        # eps sigma_1^2 / sigma_L^2 = 160 amplifies any error, and annealed Langevin runs off to
        # |x| ~ 1e17
        small = {
            "n_particles": 500,
            "n_reference": 1000,
            "n_seeds": 2,
            "n_headline_seeds": 2,
            "n_score_points": 2000,
            "budgets": (10, 100, 1000),
            "sigma_study_steps": 600,
            "n_train_seeds": 1,
            "quick": True,
        }
        return cls(**{**small, **changes})


def measure(
    run: Run | None,
    mixture: GaussianMixture,
    reference: torch.Tensor,
    config: ReproduceConfig,
    start: Callable[[GaussianMixture, int, torch.Generator], torch.Tensor] = uniform_in_box,
) -> dict:
    """Run a sampler once per seed (``None``: exact i.i.d. samples); return the per-seed weights,
    spreads, distances and seconds."""
    out = {"weights": [], "std_min": [], "std_max": [], "distance": [], "seconds": []}
    for seed in range(config.n_seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        x0 = start(mixture, config.n_particles, g)
        begin = time.perf_counter()
        x = mixture.sample(config.n_particles, generator=g) if run is None else run(x0, g)
        out["seconds"].append(time.perf_counter() - begin)
        stats = mode_statistics(mixture, x)
        out["weights"].append(stats.weights.tolist())
        out["std_min"].append(stats.stds.min().item())
        out["std_max"].append(stats.stds.max().item())
        out["distance"].append(energy_distance(x, reference))
    return out


def at_sigma(model: Callable, sigma: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A noise-conditional network as the score of p_sigma: x -> model(x, sigma)."""

    def score(x: torch.Tensor) -> torch.Tensor:
        return model(x, sigma)

    return score


def score_error_at(
    model: Callable, mixture: GaussianMixture, sigma: float, config: ReproduceConfig
) -> ScoreError:
    """The relative score error of a noise-conditional ``model`` at ``sigma``, every study's way:
    on ``config.n_score_points`` points drawn with seed 7, so that rows compare on equal points."""
    return relative_score_error(
        at_sigma(model, sigma),
        mixture,
        sigma,
        config.n_score_points,
        generator=torch.Generator().manual_seed(7),
    )


def max_weight_error(weights: list[list[float]], mixture: GaussianMixture) -> float:
    """Largest |mean over seeds of a sampled weight - its true weight|."""
    return (torch.tensor(weights).mean(0) - mixture.weights).abs().max().item()


def references(
    config: ReproduceConfig, names: tuple[str, ...] = ("two_gaussians", "four_gaussians")
) -> dict:
    """Exact samples of each named target, the reference of every energy distance."""
    return {
        name: target(name).sample(config.n_reference, generator=torch.Generator().manual_seed(99))
        for name in names
    }
