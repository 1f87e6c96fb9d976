"""``fit``: one training recipe for any Gaussian mixture, every setting derived from the mixture.

The noise levels and the annealed-Langevin settings come from :meth:`NoiseSchedule.from_mixture`
(NCSNv2's techniques 1, 2 and 4); the network is the noise-conditional layout fed log sigma with
its output divided by sigma (NCSNv2's technique 3), trained with the NCSN objective in the
mixture's own units and mapped back, so that ``fit`` is equivariant to shifts and scalings.

References: Y. Song, S. Ermon, "Generative Modeling by Estimating Gradients of the Data
Distribution", NeurIPS 2019; Y. Song, S. Ermon, "Improved Techniques for Training Score-Based
Generative Models" (NCSNv2), NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from . import _checks
from .mixtures import GaussianMixture, check_mixture
from .networks import NoiseConditionalScoreNet
from .noise_levels import NoiseSchedule, geometric_sigmas, narrowest_std
from .training import TrainConfig, seeded_init, train_noise_conditional

__all__ = ["fit", "NCSN_OPTIONS", "FIT_NETWORK", "FIT_TRAIN"]

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
