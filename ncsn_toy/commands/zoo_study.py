"""The zoo in numbers: ``fit`` on every target, the paper's Fig. 2 objectives, and the dimension study.

Three studies, each a list of JSON-ready rows, formatted as Markdown by :func:`format_zoo`:

1. **Targets**: :func:`~ncsn_toy.recipes.fit` with its defaults on every name of ``TARGETS`` and on
   mixtures it has never seen (:func:`unseen_mixtures`): relative score error at each level, total
   variation between sampled and true mode weights (annealed Langevin from the mixture's box, with
   the fitted settings), within-mode spread, energy distance to exact samples, training seconds.
   Exact i.i.d. samples of the same size give the floor each number has from sampling alone.
2. **Fig. 2**: denoising (``score_net_two_gaussians``) against sliced score matching with the
   official code's network (``score_net_ssm_two_gaussians``): relative score error under the data
   and inside / outside the region holding 99% of it.
3. **Dimension**: the paper's two Gaussians (weights 0.2 / 0.8, means 10 sqrt(2) apart) embedded in
   d = 2, 8, 32, 128 dimensions, exact score, every sampler of :data:`DIMENSION_SAMPLERS` at the same
   budget of score evaluations per particle: weight error and within-mode standard deviation.
   Every sampler starts from N(0, sigma_1^2 I), which is about p_sigma_1 in any dimension (a box
   of fixed side is not: its points lie ever farther from the data as d grows).

References: Song & Ermon 2019 (Figs. 2 and 3); Song & Ermon 2020 (NCSNv2, techniques 1, 2 and 4);
Jolicoeur-Martineau et al. 2021 (consistent annealed sampling).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..metrics import energy_distance, mode_statistics, relative_score_error
from ..mixtures import GaussianMixture
from ..noise_levels import NoiseSchedule, geometric_sigmas
from ..recipes import DEFAULT_CHECKPOINTS, load_or_train
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..sde import VESDE, probability_flow_sampling, reverse_sde_sampling
from ..targets import TARGETS, target, uniform_in_box
from ..training import fit
from .report import markdown_table, mean_std

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
    """Mixtures ``fit`` was never tuned on, drawn from ``seed``: (1) six components with random means in
    [-10, 10]^2, Dirichlet(1) weights and random full covariances (standard deviations 0.5 to 2);
    (2) three such components scaled by 50 and moved to (1000, -500); (3) four in three dimensions."""
    g = torch.Generator().manual_seed(seed)

    def draw(k: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weights = -torch.log(
            torch.rand(k, generator=g, dtype=torch.float64)
        )  # Exp(1): Dirichlet(1) once normalised
        means = 20 * torch.rand(k, d, generator=g, dtype=torch.float64) - 10
        rotations, _ = torch.linalg.qr(torch.randn(k, d, d, generator=g, dtype=torch.float64))
        stds = 0.5 * 4 ** torch.rand(
            k, d, generator=g, dtype=torch.float64
        )  # 0.5 to 2, log-uniform
        covariances = rotations @ torch.diag_embed(stds**2) @ rotations.transpose(1, 2)
        return weights / weights.sum(), means, 0.5 * (covariances + covariances.transpose(1, 2))

    mixtures = {"random_6": GaussianMixture(*draw(6, 2), dtype=torch.float32)}
    w, mu, cov = draw(3, 2)
    far = 50 * mu + torch.tensor([1000.0, -500.0], dtype=torch.float64)
    mixtures["random_3_far_x50"] = GaussianMixture(w, far, 2500 * cov, dtype=torch.float32)
    mixtures["random_4_in_3d"] = GaussianMixture(*draw(4, 3), dtype=torch.float32)
    return dict(list(mixtures.items())[:n])


def _spread(mixture: GaussianMixture, x: torch.Tensor) -> tuple[float, float, float]:
    """Total variation between the mode weights of ``x`` and the true ones; the smallest and largest
    per-mode, per-axis standard deviation."""
    stats = mode_statistics(mixture, x)
    tv = 0.5 * (stats.weights - mixture.weights).abs().sum().item()
    return tv, stats.stds.min().item(), stats.stds.max().item()


def _target_row(name: str, mixture: GaussianMixture, config: ZooConfig) -> dict:
    """Fit ``mixture`` (timed), then its score error per level and its samples against exact ones."""
    start = time.perf_counter()
    model = fit(mixture, steps=config.fit_steps)
    seconds = time.perf_counter() - start
    levels = model.sigmas.tolist()
    errors = [
        relative_score_error(
            lambda x, s=s: model(x, s),
            mixture,
            s,
            config.n_score_points,
            generator=torch.Generator().manual_seed(7),
        ).overall
        for s in levels
    ]
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
    """Study 1: ``fit`` with its defaults on ``config.targets`` and the first ``config.n_unseen`` unseen mixtures."""
    mixtures = {name: target(name) for name in config.targets} | unseen_mixtures(config.n_unseen)
    return [
        _target_row(name, mixture, config)
        for name, mixture in tqdm(
            mixtures.items(), desc="zoo: fit", disable=not progress, leave=False
        )
    ]


# ------------------------------------------------------------------------------------------ Fig. 2
FIG2_MODELS = {
    "score_net_two_gaussians": "denoising (seed ScoreNet, sigma = 0.1)",
    "score_net_ssm_two_gaussians": "sliced (official 2-128-128-2 Softplus)",
}


def fig2_rows(config: ZooConfig) -> list[dict]:
    """Study 2: each objective's network, compared with the score it learns (p_0.1 for DSM, p for SSM)."""
    mixture, rows = target("two_gaussians"), []
    for name, label in FIG2_MODELS.items():
        model = load_or_train(name, config.checkpoints, retrain=config.retrain, progress=False)
        train = model.metadata["train"]
        sigma = (
            train["sigma"] if train["objective"] == "dsm" else 0.0
        )  # SSM learns the score of p itself
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


# ------------------------------------------------------------------------------------------ dimension
def dimension_mixture(dim: int) -> GaussianMixture:
    """0.2 N(-m, I) + 0.8 N(m, I) in ``dim`` >= 2 dimensions, m = (5, 5, 0, ..., 0): the paper's mixture, embedded."""
    means = torch.zeros(2, dim, dtype=torch.float64)
    means[0, :2], means[1, :2] = -5.0, 5.0
    return GaussianMixture([0.2, 0.8], means, dtype=torch.float32)


DimensionSampler = Callable[
    [GaussianMixture, torch.Tensor, NoiseSchedule, int, torch.Generator], torch.Tensor
]


def _langevin(mixture, x0, schedule, budget, g):
    """The paper's Fig. 3 Langevin step (eps = 0.1), ``budget`` steps with the score of p."""
    return langevin_dynamics(mixture.score, x0, 0.1, budget, g)


def _annealed(shells: bool) -> DimensionSampler:
    """Annealed Langevin with levels from techniques 1 and 2 (or with the 2-D ratio sqrt(2) in every d),
    budget / L steps per level and the technique-4 step for that many steps."""

    def run(mixture, x0, schedule, budget, g):
        levels = NoiseSchedule.from_mixture(mixture, shells=shells).n_levels
        tuned = NoiseSchedule.from_mixture(
            mixture, shells=shells, n_steps_each=max(budget // levels, 1)
        )
        return annealed_langevin_dynamics(
            mixture.score, x0, tuned.sigmas(dtype=x0.dtype), tuned.step_size, tuned.n_steps_each, g
        )

    return run


def _consistent(mixture, x0, schedule, budget, g):
    """Consistent annealed sampling: ``budget`` levels from sigma_1 to sigma_L, eta = 2 (1 - 1 / ratio)."""
    sigmas = geometric_sigmas(
        schedule.sigma_max, schedule.sigma_min, max(budget, 2), dtype=x0.dtype
    )
    ratio = (schedule.sigma_max / schedule.sigma_min) ** (1 / (len(sigmas) - 1))
    eta = min(1.0, 2 * (1 - 1 / ratio))
    return consistent_annealed_sampling(mixture.score, x0, sigmas, eta * schedule.sigma_min**2, g)


def _reverse_sde(mixture, x0, schedule, budget, g):
    """The reverse-time VE SDE from sigma_1 (x0 is its prior), ``budget`` steps."""
    return reverse_sde_sampling(
        mixture.score, x0, VESDE(schedule.sigma_min, schedule.sigma_max), budget, g
    )


def _multistep(mixture, x0, schedule, budget, g):
    """The probability-flow ODE from sigma_1, multistep solver, ``budget`` steps (one evaluation each)."""
    return probability_flow_sampling(
        mixture.score, x0, VESDE(schedule.sigma_min, schedule.sigma_max), budget, "multistep"
    )


# name -> sampler(mixture, x0, schedule, budget, generator); x0 ~ N(0, sigma_1^2 I), sigma_1 = schedule.sigma_max
DIMENSION_SAMPLERS: dict[str, DimensionSampler] = {
    "Langevin (eps = 0.1)": _langevin,
    "annealed Langevin, levels of techniques 1-2": _annealed(True),
    "annealed Langevin, 2-D ratio sqrt(2) in every d": _annealed(False),
    "consistent annealed sampling (one step per level)": _consistent,
    "reverse SDE (geometric grid)": _reverse_sde,
    "probability flow, multistep (EDM grid)": _multistep,
}


def dimension_rows(
    config: ZooConfig,
    samplers: dict[str, DimensionSampler] | None = None,
    *,
    progress: bool = False,
) -> list[dict]:
    """Study 3: weight error and within-mode standard deviation against the dimension, at a fixed budget."""
    samplers = DIMENSION_SAMPLERS if samplers is None else samplers
    rows = []
    for dim in tqdm(config.dims, desc="zoo: dimensions", disable=not progress, leave=False):
        mixture = dimension_mixture(dim)
        schedule = NoiseSchedule.from_mixture(mixture)
        for name, sampler in samplers.items():
            out: dict[str, list] = {
                "weight": [],
                "std_mean": [],
                "std_min": [],
                "std_max": [],
                "seconds": [],
            }
            for seed in range(config.n_seeds):
                g = torch.Generator().manual_seed(2000 + seed)
                x0 = schedule.sigma_max * torch.randn(config.n_dim_particles, dim, generator=g)
                start = time.perf_counter()
                x = sampler(mixture, x0, schedule, config.budget, g)
                out["seconds"].append(time.perf_counter() - start)
                stats = mode_statistics(mixture, x)
                out["weight"].append(stats.weights[1].item())
                out["std_mean"].append(stats.stds.mean().item())
                out["std_min"].append(stats.stds.min().item())
                out["std_max"].append(stats.stds.max().item())
            rows.append(
                {
                    "dim": dim,
                    "sampler": name,
                    "budget": config.budget,
                    "sigma_max": schedule.sigma_max,
                    "n_levels": schedule.n_levels,
                    **out,
                }
            )
    return rows


# ------------------------------------------------------------------------------------------ all
def zoo_study(config: ZooConfig = ZooConfig(), *, progress: bool = True) -> dict:
    """The three studies, JSON-ready."""
    start = time.perf_counter()
    result = {
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()
        },
        "targets": target_rows(config, progress=progress),
        "fig2": fig2_rows(config),
        "dimensions": dimension_rows(config, progress=progress),
    }
    result["seconds"] = time.perf_counter() - start
    return result


def format_zoo(result: dict, quick: str = "") -> str:
    """The zoo study's tables, as Markdown (``quick``: a suffix for every heading)."""
    parts = [
        f"### Targets: fit with its defaults (annealed Langevin from the box; exact i.i.d. samples in "
        f"brackets){quick}"
    ]
    rows = []
    for r in result["targets"]:
        s, e = r["sampled"], r["exact"]
        spread = f"{min(s['std_min']):.2f}–{max(s['std_max']):.2f} ({min(e['std_min']):.2f}–{max(e['std_max']):.2f})"
        rows.append(
            [
                r["target"],
                r["dim"],
                r["n_modes"],
                r["schedule"]["n_levels"],
                f"{max(r['score_errors']):.4f}",
                f"{mean_std(s['tv'], 3)} ({mean_std(e['tv'], 3)})",
                spread,
                f"{mean_std(s['distance'], 4)} ({mean_std(e['distance'], 4)})",
                r["train_steps"],
                f"{r['train_seconds']:.0f}",
            ]
        )
    parts.append(
        markdown_table(
            [
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
            ],
            rows,
        )
    )
    parts.append(f"### Relative score error at each level (fit){quick}")
    levels = [
        [
            r["target"],
            ", ".join(
                f"{s:.3g}: {e:.3f}" for s, e in zip(r["sigmas"], r["score_errors"], strict=True)
            ),
        ]
        for r in result["targets"]
    ]
    parts.append(markdown_table(["target", "sigma: error, largest level first"], levels))
    parts.append(
        f"### The paper's Fig. 2: the two objectives on two Gaussians (relative score error){quick}"
    )
    parts.append(
        markdown_table(
            [
                "network",
                "objective",
                "compared with",
                "Adam steps x batch",
                "under the data",
                "high density",
                "low density",
            ],
            [
                [
                    r["model"],
                    r["objective"],
                    f"p_{r['sigma']:g}" if r["sigma"] else "p",
                    f"{r['steps']} x {r['batch_size']}",
                    f"{r['overall']:.4f}",
                    f"{r['high_density']:.4f}",
                    f"{r['low_density']:.4f}",
                ]
                for r in result["fig2"]
            ],
        )
    )
    parts.append(
        "### Dimension: two Gaussians (0.2 / 0.8, 10 sqrt(2) apart), exact score, "
        f"{result['dimensions'][0]['budget'] if result['dimensions'] else 0} score evaluations per "
        f"particle{quick}"
    )
    parts.append(
        markdown_table(
            [
                "d",
                "sampler",
                "sigma_1, levels (techniques 1-2)",
                "weight of the 0.8 mode",
                "weight error",
                "within-mode std (mean; range)",
                "seconds",
            ],
            [
                [
                    r["dim"],
                    r["sampler"],
                    f"{r['sigma_max']:.1f}, {r['n_levels']}",
                    mean_std(r["weight"], 3),
                    f"{abs(sum(r['weight']) / len(r['weight']) - 0.8):.3f}",
                    f"{mean_std(r['std_mean'], 2)}; {min(r['std_min']):.2f}–{max(r['std_max']):.2f}",
                    mean_std(r["seconds"], 1),
                ]
                for r in result["dimensions"]
            ],
        )
    )
    return "\n\n".join(parts) + "\n"
