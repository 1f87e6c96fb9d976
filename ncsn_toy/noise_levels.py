"""Noise levels: the paper's geometric sequence, and levels and sampler settings derived from data.

The geometric sequence is that of Song & Ermon (2019), Sec. 4.1; the derivation from a mixture
follows Song & Ermon (2020), NCSNv2, Sec. 3.

The paper's toy experiment (Sec. 3.2, Fig. 3) uses L = 10 levels from sigma_1 = 20 down to
sigma_L = 1, with sigma_1 / sigma_2 = ... = sigma_{L-1} / sigma_L.

:meth:`NoiseSchedule.from_mixture` derives them from the data instead:

- sigma_1 (NCSNv2 technique 1): about the largest distance between two data points, so that
  p_sigma_1 is one broad bump and Langevin can carry a particle from any mode to any other;
- sigma_L: a fraction of the narrowest component's smallest standard deviation, so that p_sigma_L
  is the data up to a widening of sqrt(1 + fraction^2) (1.02 for the default 0.2);
- L (technique 2): geometric levels whose ratio lets each level's noise shell overlap the next;
  in d <= 4 dimensions the shells always overlap and the ratio is capped at sqrt(2) (the
  variance at most doubles from one level to the next);
- eps and T (technique 4): T steps per level, and the largest eps whose variance after T steps
  of annealed Langevin on a point mass stays within 10% of sigma_i^2 (NCSNv2, Proposition 3).

Reference: Y. Song and S. Ermon, "Improved Techniques for Training Score-Based Generative
Models", NeurIPS 2020 (arXiv:2006.09011), Sec. 3.1-3.4 and Appendix B.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from . import _checks
from .mixtures import GaussianMixture, check_mixture

__all__ = [
    "geometric_sigmas",
    "PAPER_SIGMA_MAX",
    "PAPER_SIGMA_MIN",
    "PAPER_N_LEVELS",
    "NoiseSchedule",
    "largest_distance",
    "narrowest_std",
    "data_std",
    "shell_overlap_ratio",
    "variance_ratio",
    "langevin_step",
    "DDPM_BETA_START",
    "DDPM_BETA_END",
    "linear_betas",
]

PAPER_SIGMA_MAX = 20.0  # sigma_1 of the paper's toy experiment
PAPER_SIGMA_MIN = 1.0  # sigma_L of the paper's toy experiment
PAPER_N_LEVELS = 10  # L of the paper's toy experiment


DDPM_BETA_START = 1e-4  # beta_1 of Ho et al.'s linear schedule
DDPM_BETA_END = 0.02  # beta_T of Ho et al.'s linear schedule


def linear_betas(
    n_steps: int, beta_start: float = DDPM_BETA_START, beta_end: float = DDPM_BETA_END
) -> torch.Tensor:
    """Ho et al.'s (2020) noise schedule: betas linear from beta_start to beta_end, ``(T,)``.

    In float64.

    :class:`~ncsn_toy.ddpm.DDPMSchedule` checks and derives from them; the preconditioned
    :class:`~ncsn_toy.networks.EpsilonNet` scales by them.
    """
    n_steps = _checks.positive_int(n_steps, "n_steps")
    start = _checks.positive_float(beta_start, "beta_start")
    end = _checks.positive_float(beta_end, "beta_end")
    return torch.linspace(start, end, n_steps, dtype=torch.float64)


def geometric_sigmas(
    sigma_max: float, sigma_min: float, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A strictly decreasing geometric sequence of ``n`` noise levels, sigma_max to sigma_min.

    sigma_i = sigma_max * (sigma_min / sigma_max) ** ((i - 1) / (n - 1)), i = 1..n, both ends
    included exactly. ``n = 1`` requires ``sigma_max == sigma_min``.

    Returns:
        ``(n,)`` tensor of ``dtype``.
    """
    sigma_max = _checks.positive_float(sigma_max, "sigma_max")
    sigma_min = _checks.positive_float(sigma_min, "sigma_min")
    n = _checks.positive_int(n, "n")
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    for value, name in ((sigma_max, "sigma_max"), (sigma_min, "sigma_min")):
        if not torch.finfo(dtype).tiny <= value <= torch.finfo(dtype).max:
            raise ValueError(f"{name} = {value:g} is not a positive number of {dtype}")
    if n == 1:
        if sigma_max != sigma_min:
            raise ValueError(
                f"one noise level needs sigma_max == sigma_min, got {sigma_max} and {sigma_min}"
            )
        return torch.tensor([sigma_max], dtype=dtype)
    if not sigma_max > sigma_min:
        raise ValueError(
            "sigma_max must be > sigma_min for a decreasing sequence, "
            f"got {sigma_max} <= {sigma_min}"
        )
    log_sigmas = torch.linspace(math.log(sigma_max), math.log(sigma_min), n, dtype=torch.float64)
    sigmas = torch.exp(log_sigmas)
    sigmas[0] = sigma_max
    sigmas[-1] = sigma_min
    sigmas = sigmas.to(dtype)
    if not bool((sigmas[1:] < sigmas[:-1]).all()):
        raise ValueError(
            f"{n} levels between {sigma_max} and {sigma_min} are too close to be strictly "
            f"decreasing in {dtype}; use fewer levels or a wider range"
        )
    return sigmas


def largest_distance(mixture: GaussianMixture, n_std: float = 3.0) -> float:
    """About the largest distance between two data points (NCSNv2 technique 1), in closed form.

    For X ~ N(mu_k, Sigma_k), Y ~ N(mu_l, Sigma_l), |X - Y| has mean at most
    sqrt(|mu_k - mu_l|^2 + tr Sigma_k + tr Sigma_l) and, by Gaussian concentration, exceeds it
    by more than t with probability at most exp(-t^2 / (2 lambda)), with
    lambda = lambda_max(Sigma_k + Sigma_l) <= lambda_max(Sigma_k) + lambda_max(Sigma_l).
    Returns the maximum over pairs (k, l), k = l included, of that mean plus
    ``n_std`` sqrt(lambda_max(Sigma_k) + lambda_max(Sigma_l)): 18.5 for the paper's two
    Gaussians (the paper uses 20). Scales with the mixture, and grows like sqrt(d) with the
    dimension, as the distances between data points do.
    """
    n_std = _checks.nonnegative_float(n_std, "n_std")
    means, cov = _float64_parameters(mixture)  # (K, d), (K, d, d)
    trace = torch.diagonal(cov, dim1=1, dim2=2).sum(dim=1)  # (K,)
    top = torch.linalg.eigvalsh(cov)[:, -1]  # (K,) lambda_max
    squared = torch.cdist(means, means).square()  # (K, K)
    mean = torch.sqrt(squared + trace[:, None] + trace[None, :])  # (K, K)
    return float((mean + n_std * torch.sqrt(top[:, None] + top[None, :])).max())


def narrowest_std(mixture: GaussianMixture) -> float:
    """The smallest standard deviation of any component in any direction.

    min_k sqrt(lambda_min(Sigma_k)).
    """
    _, cov = _float64_parameters(mixture)  # (K, d, d)
    smallest = torch.linalg.eigvalsh(cov)[:, 0]  # (K,) lambda_min
    return float(smallest.min().sqrt())


def data_std(mixture: GaussianMixture) -> float:
    """The data's standard deviation per coordinate, sqrt(tr Cov[x] / d), in closed form.

    Cov[x] = sum_k w_k (Sigma_k + (mu_k - mu)(mu_k - mu)^T), mu = sum_k w_k mu_k (the law of
    total variance): sqrt(17) = 4.12 for the paper's two Gaussians. This is EDM's sigma_data, the
    input scale ``data_std`` of :class:`~ncsn_toy.networks.NoiseConditionalScoreNet` (Karras et
    al. 2022, c_in).
    """
    means, cov = _float64_parameters(mixture)  # (K, d), (K, d, d)
    weights = torch.tensor(mixture.to_dict()["weights"], dtype=torch.float64)  # (K,)
    centred = means - weights @ means  # (K, d)
    spread = torch.diagonal(cov, dim1=1, dim2=2).sum(dim=1) + centred.square().sum(dim=1)  # (K,)
    total = weights @ spread  # tr Cov[x]
    return math.sqrt(total.item() / means.shape[1])


def _float64_parameters(mixture: GaussianMixture) -> tuple[torch.Tensor, torch.Tensor]:
    """The means ``(K, d)`` and covariances ``(K, d, d)`` as the mixture keeps them, in float64."""
    check_mixture(mixture)
    exact = mixture.to_dict()
    return (
        torch.tensor(exact["means"], dtype=torch.float64),
        torch.tensor(exact["covariances"], dtype=torch.float64),
    )


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def shell_overlap_ratio(dim: int, overlap: float = 0.5) -> float:
    """The ratio gamma = sigma_(i-1) / sigma_i of NCSNv2 technique 2 in ``dim`` dimensions.

    Solves Phi(sqrt(2 d) (gamma - 1) + 3 gamma) - Phi(sqrt(2 d) (gamma - 1) - 3 gamma) = p, with p =
    ``overlap``: the chance that a point of the shell of level i lands within three standard
    deviations of the shell of level i - 1 (norms of N(0, sigma^2 I) are about N(sqrt(d) sigma,
    sigma^2 / 2)). For d <= 4 the left side exceeds 1/2 for every gamma (the shells are thick and
    always overlap): returns ``inf``, no constraint. About 4.0, 1.6 and 1.22 for d = 8, 32, 128.
    """
    dim = _checks.positive_int(dim, "dim")
    if not 0 < overlap < 1:
        raise ValueError(f"overlap must be in (0, 1), got {overlap}")
    root = math.sqrt(2 * dim)

    def chance(gamma: float) -> float:
        upper = _normal_cdf(root * (gamma - 1) + 3 * gamma)
        lower = _normal_cdf(root * (gamma - 1) - 3 * gamma)
        return upper - lower

    if root <= 3:  # the lower argument goes to -inf: the chance tends to 1, never reaches overlap
        return math.inf
    low = 1.0
    high = 2.0
    while chance(high) > overlap:
        low = high
        high = 2 * high
    for _ in range(100):  # bisection; the chance decreases in gamma
        mid = 0.5 * (low + high)
        if chance(mid) > overlap:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def variance_ratio(relative_step: float, ratio: float, n_steps: int) -> float:
    """s_T^2 / sigma_i^2 after T steps of annealed Langevin at level i on a point mass.

    NCSNv2, Proposition 3. The chain starts with variance sigma_(i-1)^2 = ratio^2 sigma_i^2 and runs
    x <- x + (a/2) s + sqrt(a) z with s = -x / sigma_i^2 and a = eps sigma_i^2 / sigma_L^2; with r =
    eps / sigma_L^2 (``relative_step``) and T = ``n_steps``, the variance contracts by (1 - r/2)^2
    per step towards the chain's own stationary value c sigma_i^2, c = 1 / (1 - r/4):

        s_T^2 / sigma_i^2 = (1 - r/2)^(2T) (ratio^2 - c) + c.

    (NCSNv2 writes the step as a s + sqrt(2a) z, which halves r.) The same at every level.
    """
    r = _checks.positive_float(relative_step, "relative_step")
    if r >= 4:
        return math.inf  # |1 - r/2| >= 1: the chain diverges
    c = 1.0 / (1.0 - r / 4.0)
    return (1.0 - r / 2.0) ** (2 * n_steps) * (ratio**2 - c) + c


def langevin_step(ratio: float, n_steps: int, variance_tolerance: float = 0.1) -> float:
    """eps / sigma_L^2 of technique 4: the largest relative step whose variance ratio is near 1.

    Near means within ``variance_tolerance`` of 1 (:func:`variance_ratio`); if no step is, the one
    closest to 1, NCSNv2's own rule. NCSNv2 takes the step that makes the ratio closest to 1; that
    analysis sees one Gaussian, while a mixture's weights also need the chain to move between modes
    at every level, so among the steps that keep the variance within tolerance we take the largest.
    For T = 100 and a tolerance of 0.1 this is 0.36 (the committed two- and four-Gaussian recipes
    use 0.4, found by measuring with the exact score); NCSNv2's own rule would give 0.06.
    """
    ratio = _checks.positive_float(ratio, "ratio")
    n_steps = _checks.positive_int(n_steps, "n_steps")
    tolerance = _checks.positive_float(variance_tolerance, "variance_tolerance")
    # the candidate relative steps r
    steps = torch.logspace(-4, math.log10(3.99), 4000, dtype=torch.float64).tolist()
    gaps = [abs(variance_ratio(r, ratio, n_steps) - 1) for r in steps]
    within = [r for r, gap in zip(steps, gaps, strict=True) if gap <= tolerance]
    return max(within) if within else steps[gaps.index(min(gaps))]


@dataclass(frozen=True)
class NoiseSchedule:
    """Noise levels and annealed-Langevin settings for one mixture (:meth:`from_mixture`)."""

    # sigma_1, the largest level: about the largest distance between data points (technique 1)
    sigma_max: float
    # sigma_L, the smallest: min_fraction times the narrowest component's smallest std
    sigma_min: float
    # L geometric levels between them, ratio at most the technique-2 ratio and max_ratio
    n_levels: int
    step_size: float  # eps of annealed Langevin (alpha_i = eps sigma_i^2 / sigma_L^2), technique 4
    n_steps_each: int  # T, Langevin steps per level

    def __post_init__(self) -> None:
        geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels)  # checks the three
        _checks.positive_float(self.step_size, "step_size")
        _checks.positive_int(self.n_steps_each, "n_steps_each")

    @property
    def ratio(self) -> float:
        """sigma_(i-1) / sigma_i."""
        return (self.sigma_max / self.sigma_min) ** (1.0 / max(self.n_levels - 1, 1))

    def sigmas(self, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The ``(L,)`` levels, geometric from ``sigma_max`` to ``sigma_min``."""
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.n_levels, dtype=dtype)

    def to_dict(self) -> dict:
        """Plain-Python settings, e.g. for a checkpoint's metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_mixture(
        cls,
        mixture: GaussianMixture,
        *,
        n_steps_each: int = 100,
        min_fraction: float = 0.2,
        n_std: float = 3.0,
        max_ratio: float = math.sqrt(2.0),
        variance_tolerance: float = 0.1,
        shells: bool = True,
    ) -> NoiseSchedule:
        """Derive the levels and the sampler settings from ``mixture`` (module docstring).

        Every setting scales with the mixture: scaling it by c scales sigma_max, sigma_min by c
        and step_size by c^2, and keeps n_levels and n_steps_each.

        Args:
            mixture: the data distribution.
            n_steps_each: T, Langevin steps per level (technique 4: as many as the budget
                allows).
            min_fraction: sigma_L / the narrowest component's smallest standard deviation, in
                (0, 1].
            n_std: standard deviations of the distance between two data points added in
                technique 1.
            max_ratio: the largest ratio sigma_(i-1) / sigma_i (> 1), used where technique 2
                allows more.
            variance_tolerance: technique 4 (:func:`langevin_step`): how far from 1 the variance
                ratio may be.
            shells: apply technique 2 (False: the ratio is ``max_ratio`` in every dimension).
        """
        n_steps_each = _checks.positive_int(n_steps_each, "n_steps_each")
        min_fraction = _checks.positive_float(min_fraction, "min_fraction")
        if min_fraction > 1:
            raise ValueError(f"min_fraction must be in (0, 1], got {min_fraction}")
        max_ratio = _checks.positive_float(max_ratio, "max_ratio")
        if max_ratio <= 1:
            raise ValueError(f"max_ratio must be > 1, got {max_ratio}")
        tolerance = _checks.positive_float(variance_tolerance, "variance_tolerance")
        sigma_max = largest_distance(mixture, n_std)
        sigma_min = min_fraction * narrowest_std(mixture)
        if not sigma_max > sigma_min:
            raise ValueError(
                f"n_std = {n_std} gives sigma_max {sigma_max:.4g} <= sigma_min "
                f"{sigma_min:.4g}; use a larger n_std"
            )
        gamma = min(shell_overlap_ratio(mixture.dim), max_ratio) if shells else max_ratio
        n_levels = math.ceil(math.log(sigma_max / sigma_min) / math.log(gamma) - 1e-9) + 1
        ratio = (sigma_max / sigma_min) ** (1.0 / (n_levels - 1))
        relative = langevin_step(ratio, n_steps_each, tolerance)
        return cls(sigma_max, sigma_min, n_levels, relative * sigma_min**2, n_steps_each)
