"""The committed checkpoints: how each is trained and how it is best sampled.

One :class:`Recipe` per file in ``checkpoints/``. ``python -m ncsn_toy train`` runs
:func:`train_recipe` for each and saves the result with :func:`save_recipe`; figures and
``reproduce`` load them with :func:`load_or_train`.

The choices below were measured (docs/training.md, "How sigma enters the network"): the original
notebook's exact network with its raw-sigma input does not reach a relative score error of 0.05 at
every level on four modes, while the same layout fed log(sigma) and with its output divided by sigma
(NCSNv2) does. Large batches (2048) matter on four modes: the mode weights that annealed Langevin
produces depend on the learned field between the modes, where the data is thin and the gradient
noise of small batches leaves errors that vary from one training run to the next. The smallest noise
level is 0.2, so the samples of p_0.2 have within-mode standard deviation sqrt(1 + 0.2^2) = 1.02;
the largest is about the largest distance between modes (NCSNv2, technique 1): 20 for two modes (the
paper's), 30 for four; 800 for the network of the score SDEs, whose prior must match p_sigma_max.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .checkpoints import load_checkpoint, save_checkpoint
from .ddpm import DDPMSchedule
from .mixtures import GaussianMixture
from .networks import EpsilonNet, NoiseConditionalScoreNet, ScoreNet
from .noise_levels import NoiseSchedule, data_std, geometric_sigmas
from .runtime import repository_root
from .targets import grid_points, plot_extent, target
from .training import (
    FIT_NETWORK,
    FIT_TRAIN,
    NCSN_OPTIONS,
    TrainConfig,
    fit,
    seeded_init,
    train_ddpm,
    train_noise_conditional,
    train_score_net,
)

__all__ = [
    "Recipe",
    "RECIPES",
    "train_recipe",
    "save_recipe",
    "load_or_train",
    "DEFAULT_CHECKPOINTS",
    "train_fitted",
]

DEFAULT_CHECKPOINTS = repository_root() / "checkpoints"  # the repository's folder
SNAPSHOTS = 40  # learned fields recorded during training (for the training GIFs)
SNAPSHOT_GRID = 17  # arrows per side of those fields


@dataclass(frozen=True)
class Recipe:
    """How one committed checkpoint is made and sampled."""

    name: str  # file stem in checkpoints/
    mixture: str  # a name of TARGETS
    noise_conditional: bool  # NoiseConditionalScoreNet (True) or ScoreNet (False)
    train: TrainConfig  # training settings
    network: dict = field(default_factory=dict)  # keyword options of the network
    sigma_max: float = 20.0  # noise levels (noise-conditional only): geometric, largest ...
    sigma_min: float = 0.2  # ... smallest ...
    n_levels: int = 15  # ... and how many
    step_size: float = 0.1  # sampler step: eps of annealed Langevin, or alpha of Langevin
    # Langevin steps (ScoreNet), steps per level (noise-conditional) or probability-flow steps
    n_steps: int = 1000
    # made by fit(): settings derived from the mixture, trained in its network units
    fitted: bool = False
    # for the continuous-time samplers: sampled by the probability flow, n_steps steps
    probability_flow: bool = False
    rho: float = 7.0  # probability flow only: EDM's grid exponent of the multistep solver
    # DDPM's noise predictor (EpsilonNet) on the linear schedule of n_steps steps, 1e-4 to 0.02
    ddpm: bool = False

    def build_mixture(self) -> GaussianMixture:
        """The mixture the network is trained on."""
        return target(self.mixture)

    def sigmas(self) -> torch.Tensor:
        """The ``(L,)`` noise levels of a noise-conditional network."""
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels)

    def model_class(self) -> type[nn.Module]:
        """The network this recipe trains."""
        if self.ddpm:
            return EpsilonNet
        return NoiseConditionalScoreNet if self.noise_conditional else ScoreNet

    def schedule(self) -> DDPMSchedule:
        """A DDPM recipe's schedule: Ho et al.'s linear betas over ``n_steps`` steps."""
        return DDPMSchedule.linear(self.n_steps)

    def sampler_settings(self) -> dict:
        """Recommended sampler settings, stored in the checkpoint's metadata."""
        if self.ddpm:  # ancestral sampling over the whole schedule (Ho et al., Algorithm 2)
            return {"sampler": "ddpm_sampling", "n_steps": self.n_steps}
        if self.probability_flow:  # DPM-Solver++(2M) from the prior N(0, sigma_max^2 I), sde.py
            return {
                "sampler": "probability_flow_sampling",
                "method": "multistep",
                "n_steps": self.n_steps,
                "rho": self.rho,
            }
        if self.noise_conditional:
            return {
                "sampler": "annealed_langevin_dynamics",
                "step_size": self.step_size,
                "n_steps_each": self.n_steps,
            }
        return {
            "sampler": "langevin_dynamics",
            "step_size": self.step_size,
            "n_steps": self.n_steps,
        }


def _fitted(name: str, mixture: str) -> Recipe:
    """The recipe of ``fit(target(mixture))``: its derived levels, sampler settings and training."""
    schedule = NoiseSchedule.from_mixture(target(mixture))
    return Recipe(
        name,
        mixture,
        True,
        FIT_TRAIN,
        network=FIT_NETWORK,
        sigma_max=schedule.sigma_max,
        sigma_min=schedule.sigma_min,
        n_levels=schedule.n_levels,
        step_size=schedule.step_size,
        n_steps=schedule.n_steps_each,
        fitted=True,
    )


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        # the seed's score_network, denoising score matching at sigma = 0.1, sampled like the
        # paper's Fig. 3 (eps = 0.1, T = 1000)
        Recipe(
            "score_net_two_gaussians",
            "two_gaussians",
            False,
            TrainConfig(steps=3000, lr=3e-3, sigma=0.1),
        ),
        # eps = 0.016 is eps / sigma_L^2 = 0.4: measured with exact scores, weight errors <= 0.02
        Recipe(
            "ncsn_two_gaussians",
            "two_gaussians",
            True,
            TrainConfig(steps=4000, batch_size=2048, lr=1e-2),
            network=NCSN_OPTIONS,
            sigma_max=20.0,
            step_size=0.016,
            n_steps=100,
        ),
        Recipe(
            "ncsn_four_gaussians",
            "four_gaussians",
            True,
            TrainConfig(steps=4000, batch_size=2048, lr=1e-2),
            network=NCSN_OPTIONS,
            sigma_max=30.0,
            step_size=0.016,
            n_steps=100,
        ),
        # for the score SDEs (sde.py): the prior N(0, sigma_max^2 I) must match p_sigma_max, whose
        # mean is (3, 3): from sigma_max = 20 the probability flow biases the weights by ~1.15 /
        # sigma_max = 0.06 (docs/score-sdes.md, "Why sigma_max = 800"). Levels up to 800 as the
        # exact score's samplers start (commands/sde_study.SETTINGS), with EDM's input scaling
        # (data_std) and twice the steps (docs/score-sdes.md, "Continuous sigma in training")
        Recipe(
            "ncsn_sde_two_gaussians",
            "two_gaussians",
            True,
            TrainConfig(steps=8000, batch_size=2048, lr=1e-2),
            network={**NCSN_OPTIONS, "data_std": round(data_std(target("two_gaussians")), 2)},
            sigma_max=800.0,
            n_steps=20,
            probability_flow=True,
            rho=10.0,
        ),
        # the paper's Fig. 2 as the official code trains it (runners/toy_runner.py): 2 -> 128 -> 128
        # -> 2 with Softplus, sliced score matching, Adam lr 1e-3, batch 128, 10 000 steps, no
        # schedule, no EMA
        Recipe(
            "score_net_ssm_two_gaussians",
            "two_gaussians",
            False,
            TrainConfig(
                steps=10_000,
                batch_size=128,
                lr=1e-3,
                lr_schedule="constant",
                ema_decay=0.0,
                objective="ssm",
            ),
            network={"hidden": 128, "n_hidden_layers": 2, "activation": "softplus"},
        ),
        # DDPM (Ho et al. 2020) on the paper's mixture: the noise predictor eps(x, t) in the
        # noise-conditional layout fed t / T, with SiLU (LogSigmoid learns the small steps
        # several times worse: relative score error 4.5 against 0.15 at sigma = 0.1 after 4000
        # steps), on the linear schedule of 1000 steps, trained with the simple loss, and
        # preconditioned (data_std): unpreconditioned, its score was 9.4 off (relative error) at
        # sigma_0 = 0.01, scaled output alone 0.067, with the scaled input too 0.005
        Recipe(
            "ddpm_two_gaussians",
            "two_gaussians",
            False,
            TrainConfig(steps=12_000, batch_size=2048, lr=1e-2),
            network={"activation": "silu", "data_std": round(data_std(target("two_gaussians")), 2)},
            n_steps=1000,
            ddpm=True,
        ),
        # fit() on the zoo: every setting derived from the mixture (noise_levels.NoiseSchedule)
        _fitted("ncsn_ring", "ring"),
        _fitted("ncsn_grid", "grid"),
        _fitted("ncsn_spiral", "spiral"),
    )
}


class _FieldSnapshots:
    """Records the learned field on a grid during training, for the training animations.

    ``SNAPSHOTS`` fields (plus the untrained one) on a ``SNAPSHOT_GRID``^2 grid over the data's
    box, at the largest, a middle and the smallest noise level for a noise-conditional network;
    stored in float16 in the checkpoint (about 30 KB per level), so rendering the training GIFs
    needs no retraining.
    """

    def __init__(
        self, recipe: Recipe, mixture: GaussianMixture, model: nn.Module, steps: int
    ) -> None:
        self.extent = list(plot_extent(mixture))  # the extent of every figure of this mixture
        self.points, _ = grid_points(self.extent, SNAPSHOT_GRID)  # (m, 2)
        sigmas = recipe.sigmas().tolist() if recipe.noise_conditional else []
        self.sigmas = [sigmas[0], sigmas[len(sigmas) // 2], sigmas[-1]] if sigmas else []
        self.keep = {round(i * steps / SNAPSHOTS) for i in range(1, SNAPSHOTS + 1)}
        self.steps: list[int] = []
        self.fields: list[torch.Tensor] = []
        self(0, model)

    def __call__(self, step: int, model: nn.Module) -> None:
        if step != 0 and step not in self.keep:
            return
        with torch.no_grad():
            if self.sigmas:
                field = torch.stack([model(self.points, s) for s in self.sigmas])  # (3, m, 2)
            else:
                field = model(self.points)[None]  # (1, m, 2)
        self.steps.append(step)
        self.fields.append(field.to(torch.float16))

    def to_dict(self, losses: list[float]) -> dict:
        return {
            "steps": self.steps,
            "extent": self.extent,
            "grid": SNAPSHOT_GRID,
            "sigmas": self.sigmas,
            "fields": torch.stack(self.fields),
            "losses": torch.tensor(losses, dtype=torch.float32),
        }


def train_recipe(recipe: Recipe, *, steps: int | None = None, progress: bool = True) -> nn.Module:
    """Train the network of ``recipe`` from scratch (seeded: the same weights every run).

    ``steps`` overrides the number of Adam steps (for quick runs). Returns the model with
    ``model.metadata`` and ``model.losses`` set, ready for :func:`save_recipe`.
    """
    if recipe.fitted:  # made by fit(): trained in the mixture's network units
        return train_fitted(recipe, steps=steps, progress=progress)
    config = recipe.train if steps is None else dataclasses.replace(recipe.train, steps=steps)
    mixture = recipe.build_mixture()
    if recipe.ddpm:
        return _train_ddpm_recipe(recipe, config, mixture, progress)
    if recipe.noise_conditional:
        model = seeded_init(
            config.seed,
            lambda: NoiseConditionalScoreNet(
                dim=mixture.dim, sigmas=recipe.sigmas(), **recipe.network
            ),
        )
    else:
        model = seeded_init(config.seed, lambda: ScoreNet(dim=mixture.dim, **recipe.network))
    train = train_noise_conditional if recipe.noise_conditional else train_score_net
    snapshots = _FieldSnapshots(recipe, mixture, model, config.steps)
    result = train(mixture, config, model, progress=progress, callback=snapshots)
    model = result.model
    model.metadata = {
        "recipe": recipe.name,
        "mixture": mixture.to_dict(),
        "mixture_name": recipe.mixture,
        "train": config.to_dict(),
        "final_loss": sum(result.losses[-100:]) / len(result.losses[-100:]),
        "training": snapshots.to_dict(result.losses),
        **recipe.sampler_settings(),
    }
    model.losses = result.losses
    return model


def _train_ddpm_recipe(
    recipe: Recipe, config: TrainConfig, mixture: GaussianMixture, progress: bool
) -> nn.Module:
    """A DDPM recipe: its EpsilonNet trained with the simple loss on the recipe's schedule."""

    def build() -> EpsilonNet:
        return EpsilonNet(dim=mixture.dim, n_steps=recipe.n_steps, **recipe.network)

    model = seeded_init(config.seed, build)
    result = train_ddpm(mixture, config, model, recipe.schedule(), progress=progress)
    model = result.model
    model.metadata = {
        "recipe": recipe.name,
        "mixture": mixture.to_dict(),
        "mixture_name": recipe.mixture,
        "train": config.to_dict(),
        "final_loss": sum(result.losses[-100:]) / len(result.losses[-100:]),
        "schedule": {"kind": "linear", "n_steps": recipe.n_steps},
        **recipe.sampler_settings(),
    }
    model.losses = result.losses
    return model


def save_recipe(model: nn.Module, directory: str | os.PathLike = DEFAULT_CHECKPOINTS) -> Path:
    """Save a model made by :func:`train_recipe` as ``<directory>/<recipe>.pt``."""
    return save_checkpoint(
        model, Path(directory) / f"{model.metadata['recipe']}.pt", **model.metadata
    )


def load_or_train(
    name: str,
    directory: str | os.PathLike = DEFAULT_CHECKPOINTS,
    *,
    retrain: bool = False,
    progress: bool = True,
) -> nn.Module:
    """The committed checkpoint ``name`` from ``directory``, or a freshly trained one.

    With ``retrain`` the network is trained anew (not saved). A missing file raises
    ``FileNotFoundError`` saying how to make it.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; expected one of {sorted(RECIPES)}")
    if retrain:
        return train_recipe(RECIPES[name], progress=progress)
    path = Path(directory) / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: run `python -m ncsn_toy train` to make it, "
            "or retrain (--retrain)"
        )
    model = load_checkpoint(path, expect=RECIPES[name].model_class())
    problem = _metadata_problem(model.metadata, RECIPES[name])
    if problem:
        raise ValueError(
            f"{path} does not hold what `python -m ncsn_toy train` writes for {name} ({problem}); "
            f"retrain it with `python -m ncsn_toy train --only {name} --overwrite`"
        )
    return model


def _metadata_problem(metadata: dict, recipe: Recipe) -> str | None:
    """What is wrong with a checkpoint's metadata for ``recipe`` (``None``: nothing).

    The figures and tables read these entries; a file that is a valid checkpoint may still hold
    other ones (made by hand, or by another version).
    """
    if metadata.get("recipe") != recipe.name:
        return f"recipe {metadata.get('recipe')!r}"
    for key, value in recipe.sampler_settings().items():
        if metadata.get(key) != value:
            return f"{key} = {metadata.get(key)!r}, not {value!r}"
    if metadata.get("mixture_name") != recipe.mixture:
        return f"mixture_name {metadata.get('mixture_name')!r}"
    try:
        GaussianMixture.from_dict(metadata.get("mixture"))
        TrainConfig(**metadata["train"])
    except (KeyError, TypeError, ValueError) as err:
        return f"mixture or train: {err}"
    loss = metadata.get("final_loss")
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss):
        return f"final_loss {loss!r}"
    if recipe.fitted:
        return None
    if recipe.ddpm:
        expected = {"kind": "linear", "n_steps": recipe.n_steps}
        if metadata.get("schedule") != expected:
            return f"schedule {metadata.get('schedule')!r}, not {expected!r}"
        return None
    return _snapshots_problem(metadata.get("training"))


def _snapshots_problem(snapshots: object) -> str | None:
    """What is wrong with the training snapshots :class:`_FieldSnapshots` writes (``None``)."""
    if not isinstance(snapshots, dict):
        return "no training snapshots"
    steps = snapshots.get("steps")
    sigmas = snapshots.get("sigmas")
    grid = snapshots.get("grid")
    fields = snapshots.get("fields")
    losses = snapshots.get("losses")
    extent = snapshots.get("extent")
    if not (isinstance(steps, list) and all(type(s) is int for s in steps) and steps):
        return "training steps"
    if not (isinstance(sigmas, list) and all(isinstance(s, float) and s > 0 for s in sigmas)):
        return "training sigmas"
    if not (isinstance(extent, list) and len(extent) == 4):
        return "training extent"
    if type(grid) is not int or grid < 1:
        return "training grid"
    shape = (len(steps), max(1, len(sigmas)), grid * grid, 2)
    if not isinstance(fields, torch.Tensor) or tuple(fields.shape) != shape:
        return f"training fields, not of shape {shape}"
    if not isinstance(losses, torch.Tensor) or losses.dim() != 1:
        return "training losses"
    return None


def train_fitted(
    recipe: Recipe, *, steps: int | None = None, progress: bool = True
) -> NoiseConditionalScoreNet:
    """:func:`fit` on a ``fit`` recipe's mixture, with the metadata :func:`save_recipe` needs."""
    if not recipe.fitted:
        raise ValueError(f"recipe {recipe.name!r} is not made by fit(); use train_recipe")
    model = fit(recipe.build_mixture(), steps=steps, seed=recipe.train.seed, progress=progress)
    model.metadata.update(recipe=recipe.name, mixture_name=recipe.mixture)
    return model
