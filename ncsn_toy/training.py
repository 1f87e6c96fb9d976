"""Training the score networks on a Gaussian mixture: Adam, a learning-rate schedule, EMA weights.

- :func:`train_score_net`: a :class:`ScoreNet` by denoising score matching at one small sigma or
  by sliced score matching (the paper's two objectives, Sec. 2.1 and Fig. 2).
- :func:`train_noise_conditional`: a :class:`NoiseConditionalScoreNet` with the NCSN objective
  over its ``sigmas`` (Eqs. 5-6).
- :func:`train_ddpm`: an :class:`EpsilonNet` with DDPM's simple loss (Ho et al. 2020, Eq. 14).
- :func:`fit`: one recipe for any mixture, every setting derived from the mixture (NCSNv2's
  techniques 1-4), trained in the mixture's own units and mapped back, so that ``fit`` is
  equivariant to shifts and scalings.

Every step draws a fresh batch from the mixture (the data distribution is known exactly, so
there is no finite training set to overfit). The returned model holds the exponential moving
average of the weights (NCSNv2, Song & Ermon 2020, Sec. 3.5), which is what gets evaluated,
sampled from and saved.

References: Y. Song, S. Ermon, "Generative Modeling by Estimating Gradients of the Data
Distribution", NeurIPS 2019; Y. Song, S. Ermon, "Improved Techniques for Training Score-Based
Generative Models" (NCSNv2), NeurIPS 2020.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from . import _checks
from .ddpm import DDPMSchedule
from .losses import _anneal_dsm_loss, _ddpm_loss, dsm_loss, sliced_score_matching_loss
from .mixtures import GaussianMixture, check_mixture
from .networks import EpsilonNet, NoiseConditionalScoreNet, NonFiniteOutputError, ScoreNet
from .noise_levels import NoiseSchedule, geometric_sigmas, linear_betas, narrowest_std
from .runtime import LIBRARY_THREADS

__all__ = [
    "fit",
    "NCSN_OPTIONS",
    "FIT_NETWORK",
    "FIT_TRAIN",
    "TrainConfig",
    "TrainResult",
    "TrainingDivergedError",
    "train_score_net",
    "train_noise_conditional",
    "train_ddpm",
    "seeded_init",
]

OBJECTIVES = ("dsm", "ssm")
# steps between checks that the loss and the weights are finite (and progress-bar updates)
CHECK_EVERY = 50
SCHEDULES = ("cosine", "constant")
# noise levels of the NCSN loss: its sigmas, or log-uniform between them
SIGMA_SAMPLING = ("levels", "log_uniform")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``dataclasses.replace(config, steps=...)`` to vary one."""

    steps: int = 3000  # Adam steps
    batch_size: int = 512  # fresh samples from the mixture per step
    lr: float = 3e-3  # Adam learning rate at the start
    lr_schedule: str = "cosine"  # "cosine" (decay to lr_final_fraction * lr) or "constant"
    lr_final_fraction: float = 0.01  # final learning rate / lr for the cosine schedule
    ema_decay: float = 0.99  # exponential moving average of the weights; 0 turns it off
    objective: str = "dsm"  # ScoreNet only: "dsm" (denoising) or "ssm" (sliced score matching)
    sigma: float = 0.1  # ScoreNet + "dsm": the noise level of denoising score matching
    n_projections: int = 1  # ScoreNet + "ssm": random directions per sample
    sigma_sampling: str = "levels"  # NoiseConditionalScoreNet: "levels" or "log_uniform"
    seed: int = 0  # seeds the initial weights, the batches and the noise
    device: str = "cpu"  # where to train

    def __post_init__(self) -> None:
        # tqdm and range() overflow long before 1e9
        if _checks.positive_int(self.steps, "steps") > 10**9:
            raise ValueError(f"steps must be at most 1e9, got {self.steps}")
        _checks.positive_int(self.batch_size, "batch_size")
        _checks.positive_float(self.lr, "lr")
        _checks.positive_int(self.n_projections, "n_projections")
        _checks.positive_float(self.sigma, "sigma")
        _checks.one_of(self.lr_schedule, SCHEDULES, "lr_schedule")
        _checks.one_of(self.sigma_sampling, SIGMA_SAMPLING, "sigma_sampling")
        _checks.one_of(self.objective, OBJECTIVES, "objective")
        if not 0 < _checks.real_number(self.lr_final_fraction, "lr_final_fraction") <= 1:
            raise ValueError(f"lr_final_fraction must be in (0, 1], got {self.lr_final_fraction}")
        if not 0 <= _checks.real_number(self.ema_decay, "ema_decay") < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        # what torch.manual_seed and a generator's seed take
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    def to_dict(self) -> dict:
        """Plain-Python settings, e.g. for a checkpoint's metadata."""
        return dataclasses.asdict(self)


class TrainingDivergedError(FloatingPointError):
    """Training produced a NaN or infinite loss or weights (usually: too large a learning rate)."""


class TrainResult(NamedTuple):
    """What a training run returns."""

    model: nn.Module  # the trained network (EMA weights), in eval mode
    losses: list[float]  # the loss of every step (of the raw, not the averaged, weights)


def seeded_init(seed: int, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with the global RNG seeded, so initial weights depend on ``seed`` only.

    The global RNG state is restored afterwards (no hidden global state is changed).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def train_score_net(
    mixture: GaussianMixture,
    config: TrainConfig = TrainConfig(),
    model: ScoreNet | None = None,
    *,
    progress: bool = True,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train a :class:`ScoreNet` (default: the original notebook's) on samples of ``mixture``.

    ``config.objective`` picks the loss: ``"dsm"`` is :func:`dsm_loss` at ``config.sigma`` (so
    the network learns the score of p_sigma), ``"ssm"`` is :func:`sliced_score_matching_loss`
    (the score of p itself). ``callback(step, ema_model)`` runs after every step (e.g. to draw
    the field during training); ``step`` counts from 1.
    """
    _check_arguments(mixture, config)
    if model is None:
        model = seeded_init(config.seed, lambda: ScoreNet(dim=mixture.dim))
    if config.objective == "dsm":

        def loss_fn(net: nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            return dsm_loss(net, x, config.sigma, generator=gen)
    else:

        def loss_fn(net: nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            return sliced_score_matching_loss(net, x, config.n_projections, generator=gen)

    return _train(
        mixture, config, model, loss_fn, progress, callback, f"ScoreNet ({config.objective})"
    )


def train_noise_conditional(
    mixture: GaussianMixture,
    config: TrainConfig = TrainConfig(),
    model: NoiseConditionalScoreNet | None = None,
    *,
    progress: bool = True,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train a :class:`NoiseConditionalScoreNet` with :func:`anneal_dsm_loss` over its ``sigmas``.

    ``model`` defaults to the original notebook's network with the paper's noise levels; pass one
    built with other options or ``sigmas`` to train that instead. ``callback`` as in
    :func:`train_score_net`.
    """
    _check_arguments(mixture, config)
    if model is None:
        model = seeded_init(config.seed, lambda: NoiseConditionalScoreNet(dim=mixture.dim))

    # checked once, not every step
    sigmas = _checks.sigma_levels(model.sigmas).to(config.device)

    def loss_fn(net: nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return _anneal_dsm_loss(
            net, x, sigmas, gen, log_uniform=config.sigma_sampling == "log_uniform"
        )

    return _train(mixture, config, model, loss_fn, progress, callback, "NoiseConditionalScoreNet")


def train_ddpm(
    mixture: GaussianMixture,
    config: TrainConfig = TrainConfig(),
    model: EpsilonNet | None = None,
    schedule: DDPMSchedule | None = None,
    *,
    progress: bool = True,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train an :class:`EpsilonNet` with DDPM's simple loss (:func:`ddpm_loss`) on ``schedule``.

    ``schedule`` defaults to :meth:`DDPMSchedule.linear` with the model's T; ``model`` to the
    original notebook's layout fed (x, t / T). ``callback`` as in :func:`train_score_net`.
    """
    _check_arguments(mixture, config)
    if model is None:
        model = seeded_init(config.seed, lambda: EpsilonNet(dim=mixture.dim))
    if not isinstance(model, EpsilonNet):
        raise TypeError(f"model must be an EpsilonNet, got {type(model).__name__}")
    if schedule is None:
        schedule = DDPMSchedule.linear(model.n_steps)
    if not isinstance(schedule, DDPMSchedule) or schedule.n_steps != model.n_steps:
        raise ValueError(f"schedule must be a DDPMSchedule of the model's {model.n_steps} steps")
    if model.data_std is not None and not torch.equal(schedule.betas, linear_betas(model.n_steps)):
        # its scaling is the linear schedule's std: on another schedule F would not be the score
        raise ValueError(
            "a preconditioned EpsilonNet (data_std given) scales by the std of "
            f"DDPMSchedule.linear({model.n_steps}); train it on that schedule"
        )

    def loss_fn(net: nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return _ddpm_loss(net, x, schedule, gen)

    return _train(mixture, config, model, loss_fn, progress, callback, "EpsilonNet")


def _check_arguments(mixture: object, config: object) -> None:
    check_mixture(mixture)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")


def _train(
    mixture: GaussianMixture,
    config: TrainConfig,
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    progress: bool,
    callback: Callable[[int, nn.Module], None] | None,
    name: str,
) -> TrainResult:
    progress = _checks.flag(progress, "progress")
    device = torch.device(config.device)
    model = model.to(device).train()
    gen = torch.Generator(device=device).manual_seed(config.seed)
    # fused: one kernel per step
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    if config.lr_schedule == "cosine":
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.steps, eta_min=config.lr * config.lr_final_fraction
        )
    else:
        schedule = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    # the EMA copy (buffers such as sigmas are constants and stay exact); updated with lerp_,
    # which is what torch.optim.swa_utils does, without its per-step module traversal
    ema = copy.deepcopy(model).requires_grad_(False)
    averaged = list(ema.parameters())
    current = list(model.parameters())
    losses: list[float] = []
    bar = tqdm(
        range(1, config.steps + 1), desc=f"training {name}", disable=not progress, leave=False
    )
    # threads for the machine's load, for this call only (unless the caller chose them)
    with LIBRARY_THREADS.call():
        for step in bar:
            x = mixture.sample(config.batch_size, generator=gen, device=device).to(torch.float32)
            try:
                loss = loss_fn(model, x, gen)
            except NonFiniteOutputError as err:
                # the network blew up: training diverged before this step
                raise _diverged(step, config) from err
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            # averaged <- decay * averaged + (1 - decay) * current, in one kernel
            with torch.no_grad():
                torch._foreach_lerp_(averaged, current, 1.0 - config.ema_decay)
            losses.append(loss.detach())
            if step % CHECK_EVERY == 0 or step == config.steps:
                recent = torch.stack(losses[-CHECK_EVERY:])
                _check_finite(recent, model, step, config)
                bar.set_postfix(loss=f"{recent.mean().item():.4g}", refresh=False)
            if callback is not None:
                callback(step, ema)
    return TrainResult(ema.eval(), torch.stack(losses).tolist())


def _check_finite(recent: torch.Tensor, model: nn.Module, step: int, config: TrainConfig) -> None:
    """Raise :class:`TrainingDivergedError` if a recent loss or a weight is not finite.

    Checked every ``CHECK_EVERY`` steps rather than every step: one reduction per check, and a
    diverged run is caught at most ``CHECK_EVERY`` steps late, naming the first bad step.
    """
    if _checks.all_finite(recent) and all(_checks.all_finite(p) for p in model.parameters()):
        return
    bad = (~torch.isfinite(recent)).nonzero()
    first = step - len(recent) + 1 + int(bad[0]) if len(bad) else step
    raise _diverged(first, config)


def _diverged(step: int, config: TrainConfig) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged at step {step} of {config.steps} with learning rate {config.lr:g}: "
        "the loss, the weights or the network's output became NaN or infinite; try a smaller lr"
    )


# ---------------------------------------------------------------- fit: any mixture, one recipe
# The way sigma enters the network that measures best: log sigma in, output divided by sigma.
NCSN_OPTIONS = {"sigma_input": "log", "divide_by_sigma": True}
# fit's network: that variant with SiLU, whose smooth gates learn many modes several times faster
# than the original notebook's LogSigmoid at small sigma.
FIT_NETWORK = {**NCSN_OPTIONS, "activation": "silu"}
# Three times the steps of the committed recipes at half their batch (docs/training.md).
FIT_TRAIN = TrainConfig(steps=12_000, batch_size=1024, lr=1e-2)


def fit(
    mixture: GaussianMixture, *, steps: int | None = None, seed: int = 0, progress: bool = False
) -> NoiseConditionalScoreNet:
    """Train a :class:`NoiseConditionalScoreNet` for any mixture, every setting derived from it.

    The noise levels and annealed-Langevin settings come from :meth:`NoiseSchedule.from_mixture`
    (NCSNv2 techniques 1, 2 and 4; sigma_L from the narrowest component); the network is the
    committed variant (``NCSN_OPTIONS``: log sigma in, output / sigma, NCSNv2 technique 3) with
    SiLU activations (``FIT_NETWORK``), trained with the NCSN objective (paper Eqs. 5-6) and
    ``FIT_TRAIN``. It trains in the mixture's *network units* x' = (x - c) / u, c the mixture's
    mean and u its narrowest standard deviation (the units of the committed recipes, whose
    components have standard deviation 1), then folds that map into the first layer, so the
    returned network takes x and sigma as they are. Hence ``fit`` is equivariant: shifting or
    scaling the mixture shifts or scales the levels, the step size and the learned score.

    Args:
        mixture: the data distribution, any dimension.
        steps: Adam steps (default ``FIT_TRAIN.steps``; fewer for quick runs).
        seed: seeds the initial weights, the batches and the noise.
        progress: show a tqdm progress bar.

    Returns:
        The trained network (EMA weights, eval mode), its ``sigmas`` the derived levels, with
        ``metadata``: ``sampler``, ``step_size``, ``n_steps_each`` (for annealed Langevin over
        ``model.sigmas``), ``schedule`` (every derived setting), ``mixture`` (its ``to_dict()``),
        ``network_units``, ``train`` and ``final_loss``; and ``losses`` (every step's loss).
    """
    check_mixture(mixture)
    progress = _checks.flag(progress, "progress")
    schedule = NoiseSchedule.from_mixture(mixture)
    if steps is None:
        steps = FIT_TRAIN.steps
    config = dataclasses.replace(FIT_TRAIN, seed=seed, steps=steps)
    exact = mixture.to_dict()  # float64 parameters
    weights = torch.tensor(exact["weights"], dtype=torch.float64)  # (K,)
    means = torch.tensor(exact["means"], dtype=torch.float64)  # (K, d)
    covariances = torch.tensor(exact["covariances"], dtype=torch.float64)  # (K, d, d)
    # the network units x' = (x - center) / unit
    center = weights @ means  # (d,)
    unit = narrowest_std(mixture)
    in_units = GaussianMixture(weights, (means - center) / unit, covariances / unit**2)
    sigma_max = schedule.sigma_max / unit
    sigma_min = schedule.sigma_min / unit
    sigmas = geometric_sigmas(sigma_max, sigma_min, schedule.n_levels)

    def build() -> NoiseConditionalScoreNet:
        return NoiseConditionalScoreNet(dim=mixture.dim, sigmas=sigmas, **FIT_NETWORK)

    model = seeded_init(seed, build)
    result = train_noise_conditional(in_units, config, model, progress=progress)
    model = _from_network_units(result.model, center, unit, schedule.sigmas())
    model.metadata = {
        "mixture": exact,
        "schedule": schedule.to_dict(),
        "network_units": {"center": center.tolist(), "scale": unit},
        "train": config.to_dict(),
        "final_loss": sum(result.losses[-100:]) / len(result.losses[-100:]),
        "sampler": "annealed_langevin_dynamics",
        "step_size": schedule.step_size,
        "n_steps_each": schedule.n_steps_each,
    }
    model.losses = result.losses
    return model


def _from_network_units(
    model: NoiseConditionalScoreNet, center: torch.Tensor, unit: float, sigmas: torch.Tensor
) -> NoiseConditionalScoreNet:
    """The network s(x, sigma) = s'((x - c) / u, sigma / u) / u, for ``model`` = s'.

    s' was trained in network units.

    With log sigma in and output / sigma, only the first layer changes:

        W_x (x - c) / u + w_s log(sigma / u) + b
            = (W_x / u) x + w_s log sigma + (b - W_x c / u - w_s log u),

    and s'(.) / (sigma / u) / u = s'(.) / sigma. ``sigmas`` (the levels in data units) replace
    the buffer.
    """
    if (
        model.architecture["sigma_input"] != "log"
        or not model.divide_by_sigma
        or model.data_std is not None
    ):
        raise ValueError(
            "network units need sigma_input='log', divide_by_sigma=True and no data_std"
        )
    first = model.net[0]
    with torch.no_grad():
        w_x = first.weight[:, : model.dim].double()  # (h, d)
        w_s = first.weight[:, model.dim].double()  # (h,)
        bias = first.bias.double() - w_x @ center / unit - w_s * math.log(unit)  # (h,)
        first.weight[:, : model.dim] = (w_x / unit).to(first.weight.dtype)
        first.bias.copy_(bias.to(first.bias.dtype))
        model.sigmas.copy_(sigmas.to(model.sigmas.dtype))
    return model
