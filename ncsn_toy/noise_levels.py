"""Noise levels {sigma_i}: the geometric sequence of Song & Ermon (2019), Sec. 4.1.

The paper's toy experiment (Sec. 3.2, Fig. 3) uses L = 10 levels from sigma_1 = 20 down to
sigma_L = 1, with sigma_1 / sigma_2 = ... = sigma_{L-1} / sigma_L.
"""

from __future__ import annotations

import math

import torch

from . import _checks

__all__ = ["geometric_sigmas", "PAPER_SIGMA_MAX", "PAPER_SIGMA_MIN", "PAPER_N_LEVELS"]

PAPER_SIGMA_MAX = 20.0  # sigma_1 of the paper's toy experiment
PAPER_SIGMA_MIN = 1.0  # sigma_L of the paper's toy experiment
PAPER_N_LEVELS = 10  # L of the paper's toy experiment


def geometric_sigmas(
    sigma_max: float, sigma_min: float, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Strictly decreasing geometric sequence of ``n`` noise levels, ``sigma_max`` to ``sigma_min``.

    sigma_i = sigma_max * (sigma_min / sigma_max) ** ((i - 1) / (n - 1)), i = 1..n, both ends
    included exactly. ``n = 1`` requires ``sigma_max == sigma_min``.

    Returns:
        ``(n,)`` tensor of ``dtype``.
    """
    sigma_max = _checks.positive_float(sigma_max, "sigma_max")
    sigma_min = _checks.positive_float(sigma_min, "sigma_min")
    n = _checks.positive_int(n, "n")
    if n == 1:
        if sigma_max != sigma_min:
            raise ValueError(
                f"one noise level needs sigma_max == sigma_min, got {sigma_max} and {sigma_min}"
            )
        return torch.tensor([sigma_max], dtype=dtype)
    if not sigma_max > sigma_min:
        raise ValueError(
            f"sigma_max must be > sigma_min for a decreasing sequence, got {sigma_max} <= {sigma_min}"
        )
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    sigmas = torch.exp(log_sigmas)
    sigmas[0], sigmas[-1] = sigma_max, sigma_min
    sigmas = sigmas.to(dtype)
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(
            f"{n} levels between {sigma_max} and {sigma_min} are too close to be strictly "
            f"decreasing in {dtype}; use fewer levels or a wider range"
        )
    return sigmas
