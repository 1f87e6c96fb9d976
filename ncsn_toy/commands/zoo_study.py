"""The zoo in numbers: ``fit`` on every target, the paper's Fig. 2 objectives, the dimensions.

Three studies, each a list of JSON-ready rows, formatted as Markdown by :func:`format_zoo`:

1. **Targets**: :func:`ncsn_toy.fit.fit` with its defaults on every name of ``TARGETS`` and on
   mixtures it has never seen (:func:`unseen_mixtures`): relative score error at each level, total
   variation between sampled and true mode weights (annealed Langevin from the mixture's box, with
   the fitted settings), within-mode spread, energy distance to exact samples, training seconds.
   Exact i.i.d. samples of the same size give the floor each number has from sampling alone.
2. **Fig. 2**: denoising (``score_net_two_gaussians``) against sliced score matching with the
   official code's network (``score_net_ssm_two_gaussians``): relative score error under the data
   and inside / outside the region holding 99% of it.
3. **Dimension** (:mod:`~ncsn_toy.commands.dimension_study`): the paper's two Gaussians embedded
   in d = 2, 8, 32, 128 dimensions, exact score, every sampler at the same budget of score
   evaluations per particle.

References: Song & Ermon 2019 (Figs. 2 and 3); Song & Ermon 2020 (NCSNv2, techniques 1, 2 and 4);
Jolicoeur-Martineau et al. 2021 (consistent annealed sampling).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..metrics import energy_distance, mode_statistics, relative_score_error
from ..mixtures import GaussianMixture
from ..recipes import DEFAULT_CHECKPOINTS, load_or_train
from ..samplers import annealed_langevin_dynamics
from ..targets import TARGETS, target, uniform_in_box
from ..training import fit
from .dimension_study import (
    DIMENSION_SAMPLERS,
    dimension_mixture,
    dimension_rows,
    format_dimensions,
)
from .measure import score_error_at
from .report import markdown_table, mean_std, over_seeds

__all__ = [
    "ZooConfig",
    "zoo_study",
    "format_zoo",
    "target_rows",
    "fig2_rows",
    "dimension_rows",
    "unseen_mixtures",
    "dimension_mixture",
    "DIMENSION_SAMPLERS",
]


@dataclass(frozen=True)
class ZooConfig:
    """Sizes of a zoo study (``fast()`` for tests)."""

    targets: tuple[str, ...] = TARGETS  # named targets to fit (then the unseen mixtures, if any)
    n_unseen: int = 3  # mixtures of unseen_mixtures() to fit as well
    fit_steps: int | None = None  # Adam steps of fit (None: its default)
    n_particles: int = 10_000  # particles per sampler run (and exact samples for the floor)
    n_reference: int = 5000  # exact samples the energy distance is measured against
    n_seeds: int = 3  # sampler runs per row, each with its own start and noise
    n_score_points: int = 20_000  # points per score-error estimate
    dims: tuple[int, ...] = (2, 8, 32, 128)  # dimensions of the dimension study
    budget: int = 1000  # score evaluations per particle in the dimension study
    n_dim_particles: int = 2000  # particles per run in the dimension study
    checkpoints: Path = DEFAULT_CHECKPOINTS  # where the Fig. 2 networks are
    retrain: bool = False  # train the Fig. 2 networks instead of loading them

    @classmethod
    def fast(cls, **changes: object) -> ZooConfig:
        """Small sizes for tests and ``reproduce --fast``, with ``changes`` applied."""
        small = {
            "targets": ("two_gaussians", "ring"),
            "n_unseen": 1,
            "fit_steps": 100,
            "n_particles": 400,
            "n_reference": 400,
            "n_seeds": 1,
            "n_score_points": 1000,
            "dims": (2, 8),
            "budget": 60,
            "n_dim_particles": 200,
        }
        return cls(**{**small, **changes})


# ------------------------------------------------------------------------------------------ targets
def unseen_mixtures(n: int = 3, seed: int = 0) -> dict[str, GaussianMixture]:
    """Mixtures ``fit`` was never tuned on, drawn from ``seed``; the first ``n`` of three.

    (1) six components with random means in [-10, 10]^2, Dirichlet(1) weights and random full
    covariances (standard deviations 0.5 to 2); (2) three such components scaled by 50 and moved
    to (1000, -500); (3) four in three dimensions.
    """
    g = torch.Generator().manual_seed(seed)

    def draw(k: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Weights, means and covariances of ``k`` random components in ``d`` dimensions."""
        # Exp(1): Dirichlet(1) once normalised
        weights = -torch.log(torch.rand(k, generator=g, dtype=torch.float64))
        means = 20 * torch.rand(k, d, generator=g, dtype=torch.float64) - 10
        rotations, _ = torch.linalg.qr(torch.randn(k, d, d, generator=g, dtype=torch.float64))
        # 0.5 to 2, log-uniform
        stds = 0.5 * 4 ** torch.rand(k, d, generator=g, dtype=torch.float64)
        covariances = rotations @ torch.diag_embed(stds**2) @ rotations.transpose(1, 2)
        symmetric = 0.5 * (covariances + covariances.transpose(1, 2))
        return weights / weights.sum(), means, symmetric

    mixtures = {"random_6": GaussianMixture(*draw(6, 2), dtype=torch.float32)}
    weights, means, covariances = draw(3, 2)
    far = 50 * means + torch.tensor([1000.0, -500.0], dtype=torch.float64)
    mixtures["random_3_far_x50"] = GaussianMixture(
        weights, far, 2500 * covariances, dtype=torch.float32
    )
    mixtures["random_4_in_3d"] = GaussianMixture(*draw(4, 3), dtype=torch.float32)
    return dict(list(mixtures.items())[:n])


def _spread(mixture: GaussianMixture, x: torch.Tensor) -> tuple[float, float, float]:
    """Total variation between the mode weights of ``x`` and the true ones; the smallest and
    largest per-mode, per-axis standard deviation."""
    stats = mode_statistics(mixture, x)
    tv = 0.5 * (stats.weights - mixture.weights).abs().sum().item()
    return tv, stats.stds.min().item(), stats.stds.max().item()


def _target_row(name: str, mixture: GaussianMixture, config: ZooConfig) -> dict:
    """Fit ``mixture`` (timed), then its score error per level and its samples against exact
    ones."""
    start = time.perf_counter()
    model = fit(mixture, steps=config.fit_steps)
    seconds = time.perf_counter() - start
    levels = model.sigmas.tolist()
    errors = []
    for sigma in levels:
        error = score_error_at(model, mixture, sigma, config)
        errors.append(error.overall)
    reference = mixture.sample(config.n_reference, generator=torch.Generator().manual_seed(99))
    runs: dict[str, list] = {"tv": [], "std_min": [], "std_max": [], "distance": []}
    floor: dict[str, list] = {"tv": [], "std_min": [], "std_max": [], "distance": []}
    meta = model.metadata
    for seed in range(config.n_seeds):
        g = torch.Generator().manual_seed(1000 + seed)
        x = annealed_langevin_dynamics(
            model,
            uniform_in_box(mixture, config.n_particles, g),
            model.sigmas,
            meta["step_size"],
            meta["n_steps_each"],
            g,
        )
        exact = mixture.sample(config.n_particles, generator=g)
        for out, samples in ((runs, x), (floor, exact)):
            tv, low, high = _spread(mixture, samples)
            out["tv"].append(tv)
            out["std_min"].append(low)
            out["std_max"].append(high)
            out["distance"].append(energy_distance(samples[: config.n_reference], reference))
    return {
        "target": name,
        "dim": mixture.dim,
        "n_modes": mixture.n_components,
        "schedule": meta["schedule"],
        "train_steps": meta["train"]["steps"],
        "train_seconds": seconds,
        "sigmas": levels,
        "score_errors": errors,
        "sampled": runs,
        "exact": floor,
    }


def target_rows(config: ZooConfig, *, progress: bool = False) -> list[dict]:
    """Study 1: ``fit`` with its defaults on ``config.targets`` and the first ``config.n_unseen``
    unseen mixtures."""
    mixtures = {name: target(name) for name in config.targets}
    mixtures |= unseen_mixtures(config.n_unseen)
    rows = []
    for name, mixture in tqdm(mixtures.items(), desc="zoo: fit", disable=not progress, leave=False):
        rows.append(_target_row(name, mixture, config))
    return rows


def _format_targets(rows: list[dict], sizes: dict, quick: str) -> list[str]:
    """Study 1 as Markdown: its heading, caption and table, then the score error at each level
    (``sizes``: the study's config, for the caption)."""
    lines = []
    for r in rows:
        sampled = r["sampled"]
        exact = r["exact"]
        spread = (
            f"{min(sampled['std_min']):.2f}–{max(sampled['std_max']):.2f} "
            f"({min(exact['std_min']):.2f}–{max(exact['std_max']):.2f})"
        )
        lines.append(
            [
                r["target"],
                r["dim"],
                r["n_modes"],
                r["schedule"]["n_levels"],
                f"{max(r['score_errors']):.4f}",
                f"{mean_std(sampled['tv'], 3)} ({mean_std(exact['tv'], 3)})",
                spread,
                f"{mean_std(sampled['distance'], 4)} ({mean_std(exact['distance'], 4)})",
                r["train_steps"],
                f"{r['train_seconds']:.0f}",
            ]
        )
    headers = [
        "target",
        "d",
        "modes",
        "levels",
        "max relative score error",
        "mode-weight total variation",
        "within-mode std",
        "energy distance",
        "Adam steps",
        "training seconds",
    ]
    levels = []
    for r in rows:
        pairs = zip(r["sigmas"], r["score_errors"], strict=True)
        levels.append([r["target"], ", ".join(f"{s:.3g}: {e:.3f}" for s, e in pairs)])
    caption = (
        f"Total variation and energy distance: {over_seeds(sizes['n_seeds'], sizes['n_particles'])}"
        f" (the energy distance on the first {sizes['n_reference']} of them). Within-mode std: the "
        "smallest and the largest over modes, axes and seeds."
    )
    return [
        "### Targets: fit with its defaults (annealed Langevin from the box; exact i.i.d. samples "
        f"in brackets){quick}",
        caption,
        markdown_table(headers, lines),
        f"### Relative score error at each level (fit){quick}",
        markdown_table(["target", "sigma: error, largest level first"], levels),
    ]


# ------------------------------------------------------------------------------------------ Fig. 2
FIG2_MODELS = {
    "score_net_two_gaussians": "denoising (the original notebook's ScoreNet, sigma = 0.1)",
    "score_net_ssm_two_gaussians": "sliced (official 2-128-128-2 Softplus)",
}


def fig2_rows(config: ZooConfig) -> list[dict]:
    """Study 2: each objective's network, compared with the score it learns (p_0.1 for DSM, p for
    SSM)."""
    mixture = target("two_gaussians")
    rows = []
    for name, label in FIG2_MODELS.items():
        model = load_or_train(name, config.checkpoints, retrain=config.retrain, progress=False)
        train = model.metadata["train"]
        # SSM learns the score of p itself
        sigma = train["sigma"] if train["objective"] == "dsm" else 0.0
        err = relative_score_error(
            model, mixture, sigma, config.n_score_points, torch.Generator().manual_seed(7)
        )
        rows.append(
            {
                "model": name,
                "objective": label,
                "sigma": sigma,
                "steps": train["steps"],
                "batch_size": train["batch_size"],
                **err._asdict(),
            }
        )
    return rows


def _format_fig2(rows: list[dict], quick: str) -> list[str]:
    """Study 2 as Markdown: its heading and table."""
    lines = []
    for r in rows:
        lines.append(
            [
                r["model"],
                r["objective"],
                f"p_{r['sigma']:g}" if r["sigma"] else "p",
                f"{r['steps']} x {r['batch_size']}",
                f"{r['overall']:.4f}",
                f"{r['high_density']:.4f}",
                f"{r['low_density']:.4f}",
            ]
        )
    headers = [
        "network",
        "objective",
        "compared with",
        "Adam steps x batch",
        "under the data",
        "high density",
        "low density",
    ]
    return [
        "### The paper's Fig. 2: the two objectives on two Gaussians (relative score error)"
        f"{quick}",
        markdown_table(headers, lines),
    ]


# ------------------------------------------------------------------------------------------ all
def zoo_study(config: ZooConfig = ZooConfig(), *, progress: bool = True) -> dict:
    """The three studies, JSON-ready."""
    start = time.perf_counter()
    sizes = dataclasses.asdict(config)
    for key, value in sizes.items():
        if isinstance(value, Path):
            sizes[key] = str(value)
    result = {
        "config": sizes,
        "targets": target_rows(config, progress=progress),
        "fig2": fig2_rows(config),
        "dimensions": dimension_rows(config, progress=progress),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def format_zoo(result: dict, quick: str = "") -> str:
    """The zoo study's tables, as Markdown (``quick``: a suffix for every heading)."""
    sizes = result["config"]
    parts = _format_targets(result["targets"], sizes, quick)
    parts += _format_fig2(result["fig2"], quick)
    parts.append(format_dimensions(result["dimensions"], sizes, quick))
    return "\n\n".join(parts) + "\n"
