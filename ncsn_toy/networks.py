"""The original notebook's two small score networks, with keyword options around them.

``ScoreNet()`` is the original notebook's ``score_network`` (input (x, y)),
``NoiseConditionalScoreNet()`` its ``score_network2`` (input (x, y, sigma)); constructed with no
arguments both are exactly

    Linear(in, 64), LogSigmoid, Linear(64, 64), LogSigmoid, Linear(64, 64), LogSigmoid,
    Linear(64, 2)

Options: ``hidden`` width, ``n_hidden_layers`` depth, ``activation``, and for the
noise-conditional network how sigma enters:
- ``sigma_input="raw"`` feeds sigma itself as the third input (the original notebook);
  ``"log"`` feeds log sigma, which spreads geometric noise levels evenly over the input range;
- ``divide_by_sigma=True`` returns net(x, sigma) / sigma, the output parametrisation of
  NCSNv2 (Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative Models",
  Sec. 3.4), since the true score of p_sigma scales like 1 / sigma.

References: Song & Ermon, NeurIPS 2019 (NCSN, Sec. 4.1: s_theta(x, sigma)); Song & Ermon,
NeurIPS 2020 (NCSNv2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import _checks
from .noise_levels import (
    PAPER_N_LEVELS,
    PAPER_SIGMA_MAX,
    PAPER_SIGMA_MIN,
    geometric_sigmas,
    linear_betas,
)

__all__ = [
    "ScoreNet",
    "NoiseConditionalScoreNet",
    "EpsilonNet",
    "NonFiniteOutputError",
    "ACTIVATIONS",
    "SIGMA_INPUTS",
    "MAX_PRECONDITIONED_STEPS",
]

# the most steps a preconditioned EpsilonNet takes: it keeps one float per step, and a linear
# schedule with beta up to 0.02 has long reached pure noise (a_T = exp(-1000) at 100,000 steps)
MAX_PRECONDITIONED_STEPS = 100_000


class NonFiniteOutputError(ValueError):
    """A network's output is NaN or infinite: its input (x, sigma) or its weights are too large."""


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "logsigmoid": nn.LogSigmoid,  # the original notebook's choice
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}
SIGMA_INPUTS = ("raw", "log")
MAX_DEPTH = 1000  # hidden layers


def _mlp(
    in_dim: int, out_dim: int, hidden: int, n_hidden_layers: int, activation: str
) -> nn.Sequential:
    """Linear, act, (Linear, act) * (n_hidden_layers - 1), Linear: the original notebook's."""
    hidden = _checks.positive_int(hidden, "hidden")
    n_hidden_layers = _checks.positive_int(n_hidden_layers, "n_hidden_layers")
    # ten million layers would take minutes to build; no toy needs more
    if n_hidden_layers > MAX_DEPTH:
        raise ValueError(f"n_hidden_layers must be at most {MAX_DEPTH}, got {n_hidden_layers}")
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _check_input(x: torch.Tensor, net: nn.Sequential, dim: int) -> torch.Tensor:
    x = _checks.points(x, dim)
    weight_dtype = net[0].weight.dtype
    if x.dtype != weight_dtype:
        raise TypeError(
            f"x is {x.dtype} but the network's parameters are {weight_dtype}; "
            f"convert one of them (x.to({weight_dtype}) or model.to({x.dtype}))"
        )
    return x


class ScoreNet(nn.Module):
    """s_theta(x): a score network without noise input (the original notebook's ``score_network``).

    Args:
        dim: data dimension d (input and output size).
        hidden: width of every hidden layer.
        n_hidden_layers: number of hidden layers (each Linear + activation).
        activation: one of ``ACTIVATIONS``.

    ``forward(x)``: ``(n, d) -> (n, d)``.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        n_hidden_layers: int = 3,
        activation: str = "logsigmoid",
    ) -> None:
        super().__init__()
        self.dim = _checks.positive_int(dim, "dim")
        self.architecture = {
            "dim": self.dim,
            "hidden": hidden,
            "n_hidden_layers": n_hidden_layers,
            "activation": activation,
        }  # keyword arguments that rebuild this network (saved in checkpoints)
        self.net = _mlp(self.dim, self.dim, hidden, n_hidden_layers, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _finite_output(self.net(_check_input(x, self.net, self.dim)), "ScoreNet")


class NoiseConditionalScoreNet(nn.Module):
    """s_theta(x, sigma): a noise-conditional score network.

    The original notebook's ``score_network2``.

    Args:
        dim: data dimension d.
        hidden, n_hidden_layers, activation: as for :class:`ScoreNet`.
        sigma_input: ``"raw"`` (sigma is the extra input, as in the original notebook) or
            ``"log"`` (log sigma).
        divide_by_sigma: return net(x, sigma) / sigma (NCSNv2's output scaling).
        data_std: if given, feed x / sqrt(sigma^2 + data_std^2) instead of x, so that the input has
            about unit scale at every noise level (the c_in of Karras et al. 2022, "Elucidating the
            Design Space of Diffusion-Based Generative Models"); ``None`` feeds x as the original
            notebook does.
        sigmas: the noise levels the network is trained for, strictly decreasing; stored as the
            buffer ``sigmas`` (saved with the weights). Default: the paper's 10 geometric levels
            from 20 to 1.

    ``forward(x, sigma)``: ``x`` is ``(n, d)``; ``sigma`` a Python float, a 0-d tensor or an
    ``(n,)`` tensor; returns ``(n, d)``. A scalar sigma (sampling) is folded into the first
    layer's bias, W [x; sigma] + b = W_x x + (b + w_sigma sigma), which gives the numbers of the
    original notebook's concatenated input without building it; per-sample sigmas (training) are
    concatenated as there.
    """

    sigmas: torch.Tensor

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        n_hidden_layers: int = 3,
        activation: str = "logsigmoid",
        sigma_input: str = "raw",
        divide_by_sigma: bool = False,
        data_std: float | None = None,
        sigmas: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.dim = _checks.positive_int(dim, "dim")
        _checks.one_of(sigma_input, SIGMA_INPUTS, "sigma_input")
        if not isinstance(divide_by_sigma, bool):
            raise TypeError(f"divide_by_sigma must be a bool, got {type(divide_by_sigma).__name__}")
        self.sigma_input = sigma_input
        self.divide_by_sigma = divide_by_sigma
        self.data_std = (
            None
            if data_std is None
            else _checks.sigma_for(  # must fit the weights' float32
                _checks.positive_float(data_std, "data_std"), torch.float32, "data_std"
            )
        )
        self.architecture = {
            "dim": self.dim,
            "hidden": hidden,
            "n_hidden_layers": n_hidden_layers,
            "activation": activation,
            "sigma_input": sigma_input,
            "divide_by_sigma": divide_by_sigma,
            "data_std": self.data_std,
        }  # keyword arguments that rebuild this network, with the `sigmas` buffer
        self.net = _mlp(self.dim + 1, self.dim, hidden, n_hidden_layers, activation)
        if sigmas is None:
            sigmas = geometric_sigmas(PAPER_SIGMA_MAX, PAPER_SIGMA_MIN, PAPER_N_LEVELS)
        # checked again in float32, where levels closer than its precision would merge
        self.register_buffer(
            "sigmas", _checks.sigma_levels(_checks.sigma_levels(sigmas).to(torch.float32)).clone()
        )

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.net, self.dim)
        layers = iter(self.net)  # not self.net[1:], which builds a new Sequential on every call
        first = next(layers)
        if isinstance(sigma, torch.Tensor) and sigma.dim() > 0:
            sigma = self._sigma_column(sigma, x)  # (n, 1)
            feature = torch.log(sigma) if self.sigma_input == "log" else sigma
            if self.data_std is not None:
                x = x / torch.hypot(sigma, torch.full_like(sigma, self.data_std))
            # (n, h), the original notebook's input (x, y, sigma)
            h = first(torch.cat([x, feature], dim=1))
        else:
            sigma = self._sigma_scalar(sigma)
            feature = math.log(sigma) if self.sigma_input == "log" else sigma
            # W [x; sigma] + b = W_x x + (b + w_sigma sigma): no (n, d + 1) input to build
            w_x = first.weight[:, : self.dim]  # (h, d)
            w_sigma = first.weight[:, self.dim]  # (h,)
            if self.data_std is not None:
                w_x = w_x / math.hypot(sigma, self.data_std)
            h = F.linear(x, w_x, first.bias + feature * w_sigma)  # (n, h)
        for layer in layers:
            h = layer(h)
        out = h / sigma if self.divide_by_sigma else h  # (n, d)
        return _finite_output(out, "NoiseConditionalScoreNet")

    def _needs_positive_sigma(self) -> bool:
        return self.sigma_input == "log" or self.divide_by_sigma

    def _sigma_scalar(self, sigma: float | torch.Tensor) -> float:
        sigma = _checks.real_number(sigma, "sigma")
        if sigma > _checks.MAX_SIGMA:
            raise ValueError(f"sigma must be <= {_checks.MAX_SIGMA:g}, got {sigma:g}")
        if sigma < 0 or (sigma == 0 and self._needs_positive_sigma()):
            bound = "> 0" if self._needs_positive_sigma() else ">= 0"
            raise ValueError(f"sigma must be {bound}, got {sigma}")
        return sigma

    def _sigma_column(self, sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if sigma.dtype == torch.bool or sigma.is_complex():  # refused, as a scalar bool is
            raise TypeError(f"a per-sample sigma must hold real numbers, got dtype {sigma.dtype}")
        if sigma.shape != (x.shape[0],):
            raise ValueError(
                "sigma must be a float, a 0-d tensor or an (n,) tensor with n = "
                f"{x.shape[0]} (one per point), got shape {tuple(sigma.shape)}"
            )
        low, high = (v.item() for v in torch.aminmax(sigma))  # one pass; NaN propagates
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("sigma must be finite, but it contains NaN or infinite values")
        if low < 0 or (self._needs_positive_sigma() and low == 0) or high > _checks.MAX_SIGMA:
            bound = "> 0" if self._needs_positive_sigma() else ">= 0"
            raise ValueError(
                f"every sigma must be {bound} and <= {_checks.MAX_SIGMA:g}, got {low:g} to {high:g}"
            )
        return sigma.to(x.dtype).unsqueeze(1)


class EpsilonNet(nn.Module):
    """eps_theta(x, t): DDPM's noise predictor, the noise-conditional layout fed (x, t / T).

    The layout of :class:`NoiseConditionalScoreNet` with the step t in place of sigma. It predicts
    the noise z of x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) z (Ho et al. 2020), which is
    -sqrt(1 - a_t) times the score of the noised data: a target of unit scale at large t, but
    of size about sqrt(1 - a_t) ~ sigma_t near the data, where an error of 0.01 in eps is an
    error of 100% in the score at sigma_t = 0.01.

    Preconditioned (``data_std`` given; Karras et al. 2022, "Elucidating the Design Space of
    Diffusion-Based Generative Models", Sec. 5 and Table 1, written for eps): the layers see
    x_t / sqrt(a_t data_std^2 + 1 - a_t), of unit size at every step, and their output F is
    multiplied by std_t = sqrt(1 - a_t): eps_theta = std_t F(c_in x_t, t / T). Then F predicts
    -grad log p_t, of unit size at every step, so the score's relative error no longer grows as
    the noise vanishes. a_t is that of Ho et al.'s linear schedule of ``n_steps`` steps
    (:func:`~ncsn_toy.noise_levels.linear_betas`); between steps log sigma_t,
    sigma_t = std_t / sqrt(a_t), is interpolated linearly, as
    :meth:`~ncsn_toy.ddpm.DDPMSchedule.timestep` does.

    Args:
        dim, hidden, n_hidden_layers, activation: as for :class:`ScoreNet`.
        n_steps: T, the steps of the schedule it is trained for (the input is t / T).
        data_std: the data's standard deviation per axis (e.g.
            :func:`~ncsn_toy.noise_levels.data_std`) to precondition as above; ``None`` (the
            default) feeds x and returns the layers' output, as Ho et al. do.

    ``forward(x, t)``: ``x`` is ``(n, d)``; ``t`` a step in [0, T - 1] (an int, or a float: the
    ODE samplers ask between steps), a 0-d tensor or an ``(n,)`` tensor; returns ``(n, d)``.
    """

    def __init__(
        self,
        *,
        dim: int = 2,
        hidden: int = 64,
        n_hidden_layers: int = 3,
        activation: str = "logsigmoid",
        n_steps: int = 1000,
        data_std: float | None = None,
    ) -> None:
        super().__init__()
        self.dim = _checks.positive_int(dim, "dim")
        self.n_steps = _checks.positive_int(n_steps, "n_steps")
        if data_std is not None:
            data_std = _checks.positive_float(data_std, "data_std")
            if self.n_steps > MAX_PRECONDITIONED_STEPS:  # the table below holds one float per step
                raise ValueError(
                    f"a preconditioned EpsilonNet has at most {MAX_PRECONDITIONED_STEPS} steps, "
                    f"got n_steps={self.n_steps}"
                )
        self.data_std = data_std
        # keyword arguments that rebuild this network (saved in checkpoints)
        self.architecture = {
            "dim": self.dim,
            "hidden": hidden,
            "n_hidden_layers": n_hidden_layers,
            "activation": activation,
            "n_steps": self.n_steps,
            "data_std": data_std,
        }
        self.net = _mlp(self.dim + 1, self.dim, hidden, n_hidden_layers, activation)
        if data_std is not None:
            # log sigma_t of the linear schedule, (T,): a constant of the architecture, not saved
            log_alphas_cumprod = torch.cumsum(torch.log1p(-linear_betas(self.n_steps)), dim=0)
            log_sigmas = 0.5 * (torch.log(-torch.expm1(log_alphas_cumprod)) - log_alphas_cumprod)
            self.register_buffer("log_sigmas", log_sigmas.float(), persistent=False)

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        x = _check_input(x, self.net, self.dim)
        layers = iter(self.net)
        first = next(layers)
        if isinstance(t, torch.Tensor) and t.dim() > 0:
            if t.shape != (x.shape[0],) or t.dtype == torch.bool or t.is_complex():
                raise ValueError(
                    f"t must be a number or an (n,) tensor with n = {x.shape[0]}, "
                    f"got {t.dtype} of shape {tuple(t.shape)}"
                )
            low, high = (v.item() for v in torch.aminmax(t.double()))
            self._check_step(low)
            self._check_step(high)
            steps = t.to(x.dtype)  # (n,)
            feature = (steps / self.n_steps).unsqueeze(1)  # (n, 1)
            if self.data_std is not None:
                c_in, c_out = self._preconditioning(steps, x.dtype)  # (n, 1), (n, 1)
                x = x * c_in
            h = first(torch.cat([x, feature], dim=1))  # (n, h)
        else:
            step = self._check_step(_checks.real_number(t, "t"))
            # W [x; t / T] + b = W_x x + (b + w_t t / T): no (n, d + 1) input to build
            w_x = first.weight[:, : self.dim]  # (h, d)
            w_t = first.weight[:, self.dim]  # (h,)
            if self.data_std is not None:
                c_in, c_out = self._preconditioning(torch.tensor(step), x.dtype)  # (1,), (1,)
                w_x = w_x * c_in
            h = F.linear(x, w_x, first.bias + step / self.n_steps * w_t)  # (n, h)
        for layer in layers:
            h = layer(h)
        if self.data_std is not None:
            h = h * c_out
        return _finite_output(h, "EpsilonNet")

    def _preconditioning(
        self, steps: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(c_in, c_out) at the steps: 1 / sqrt(a data_std^2 + 1 - a) and sqrt(1 - a).

        For ``steps`` of shape (n,), columns (n, 1); for a 0-d step, (1,): each broadcasts over
        the points' coordinates (or the first layer's input weights).
        """
        table = self.log_sigmas.to(dtype)  # (T,)
        position = steps.to(device=table.device, dtype=dtype)
        low = position.floor().clamp(0, max(self.n_steps - 2, 0)).long()
        high = (low + 1).clamp(max=self.n_steps - 1)
        log_sigma = torch.lerp(table[low], table[high], position - low)
        sigma_squared = torch.exp(2 * log_sigma)  # (1 - a) / a
        # a (data_std^2 + sigma^2) = a data_std^2 + 1 - a, with a = 1 / (1 + sigma^2)
        c_in = torch.sqrt((1 + sigma_squared) / (self.data_std**2 + sigma_squared))
        c_out = torch.sqrt(sigma_squared / (1 + sigma_squared))
        return c_in.unsqueeze(-1), c_out.unsqueeze(-1)

    def _check_step(self, t: float) -> float:
        if not 0 <= t <= self.n_steps - 1:
            raise ValueError(f"t must be a step in [0, {self.n_steps - 1}], got {t}")
        return t


def _finite_output(out: torch.Tensor, name: str) -> torch.Tensor:
    """``out``, or :class:`NonFiniteOutputError`: a NaN never leaves the network silently.

    One reduction per call.
    """
    if not _checks.all_finite(out):
        raise NonFiniteOutputError(
            f"{name} returned NaN or infinite values: its input (x, or sigma, e.g. above 1e30 or "
            "below 1e-30 in float32) is beyond what its dtype can carry through the layers, or "
            "its weights are not finite"
        )
    return out
