"""Gaussian mixtures with exact densities and scores at every noise level.

The ground truth of the project. For p(x) = sum_k w_k N(x; mu_k, Sigma_k), the density perturbed
by Gaussian noise of standard deviation sigma is again a mixture,

    p_sigma(x) = (p * N(0, sigma^2 I))(x) = sum_k w_k N(x; mu_k, Sigma_k + sigma^2 I),

so its log-density, its score grad_x log p_sigma(x) and the posterior component probabilities
(responsibilities) all have closed forms. This is the q_sigma of Song & Ermon (2019), Sec. 4.1,
for a mixture data distribution.

Two notes for readers comparing with other code:
- The paper's own toy code widens each component to standard deviation sigma instead of
  sqrt(1 + sigma^2); we use the exact convolution above.
- The score of a mixture is NOT the prior-weighted average sum_k w_k grad log N_k(x) of the
  component scores (the mistake of a figure of the original notebook); it is the average
  weighted by the responsibilities r_k(x) = w_k N_k(x) / p(x):
  grad log p(x) = sum_k r_k(x) grad log N_k(x).

References: Song & Ermon, "Generative Modeling by Estimating Gradients of the Data
Distribution", NeurIPS 2019 (arXiv:1907.05600); Bishop, "Pattern Recognition and Machine
Learning", Sec. 9.2 (responsibilities).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from . import _checks

__all__ = ["GaussianMixture", "check_mixture"]

_CACHE_SIZE = 64  # noise levels whose constants are kept (an annealed run uses L of them)
_CANCELLATION = 1e-3  # largest rounding error (nats) the direct formula may leave in a log-joint


class _Level(NamedTuple):
    """Constants of p_sigma for one noise level, computed in float64 and cast once.

    Everything is laid out component-major, ``(K, d, n)``, so that the arithmetic runs along the
    long axis n: with the usual tiny K and d a ``(n, K, d)`` layout is several times slower.
    """

    means: torch.Tensor  # (K, d, 1)
    log_norm: torch.Tensor  # (K, 1) log w_k - 0.5 log det(2 pi C_k), C_k = Sigma_k + sigma^2 I
    whiten: torch.Tensor  # (K, d, d) L_k^{-1}, with C_k = L_k L_k^T (Cholesky)
    whiten_t: torch.Tensor  # (K, d, d) L_k^{-T}; C_k^{-1} = L_k^{-T} L_k^{-1}

    def to(self, dtype: torch.dtype, device: torch.device) -> _Level:
        return _Level(*(t.to(device=device, dtype=dtype).contiguous() for t in self))


class GaussianMixture:
    """A mixture of K Gaussians in d dimensions, p(x) = sum_k w_k N(x; mu_k, Sigma_k).

    Args:
        weights: ``(K,)`` mixture weights, finite, >= 0, summing to 1 (within 1e-6).
        means: ``(K, d)`` component means, finite.
        covariances: ``None`` (identity for every component), ``(K,)`` isotropic variances
            (Sigma_k = c_k I), or ``(K, d, d)`` symmetric positive-definite matrices.
        dtype: dtype of the public attributes and of ``sample``; default float32, or float64
            when ``means`` is a float64 tensor. Parameters are kept in float64 internally.
            ``log_prob``, ``score`` and ``responsibilities`` compute in the dtype of their
            input ``x``.

    Every method takes a noise level ``sigma`` (a standard deviation, default 0) and describes
    p_sigma = p convolved with N(0, sigma^2 I), the mixture with covariances Sigma_k + sigma^2 I.
    All constants are computed in float64 (Cholesky factors, log-determinants) and cached per
    noise level, so repeated calls inside a sampler cost only the (K, d, n) arithmetic.
    """

    def __init__(
        self,
        weights: object,
        means: object,
        covariances: object = None,
        *,
        dtype: torch.dtype | None = None,
    ) -> None:
        if dtype is None:
            is_double = isinstance(means, torch.Tensor) and means.dtype == torch.float64
            dtype = torch.float64 if is_double else torch.float32
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        w = _checks.as_tensor(weights, "weights", torch.float64).cpu()
        mu = _checks.as_tensor(means, "means", torch.float64).cpu()
        if w.dim() != 1 or w.numel() == 0:
            raise ValueError(
                f"weights must be a non-empty 1-D sequence (K,), got shape {tuple(w.shape)}"
            )
        _checks.finite(w, "weights")
        if bool((w < 0).any()):
            raise ValueError(f"weights must all be >= 0, got {w.tolist()}")
        if abs(float(w.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must sum to 1 (within 1e-6), got sum {float(w.sum()):.9g}")
        n_components = w.numel()
        if mu.dim() != 2 or mu.shape[0] != n_components or mu.shape[1] < 1:
            raise ValueError(
                f"means must have shape (K, d) = ({n_components}, d) with d >= 1 to match the "
                f"{n_components} weights, got {tuple(mu.shape)}"
            )
        _checks.finite(mu, "means")
        dim = mu.shape[1]
        cov = _checks.covariances(covariances, n_components, dim)

        self._w64 = w  # (K,), float64 like every internal parameter
        self._mu64 = mu  # (K, d)
        self._cov64 = cov  # (K, d, d)
        self._dtype = dtype
        self._levels: dict[tuple[float, torch.dtype, torch.device], _Level] = {}
        self.n_components: int = n_components
        self.dim: int = dim
        self.weights: torch.Tensor = w.to(dtype)  # (K,)
        self.means: torch.Tensor = _checks.castable(mu, dtype, "means")  # (K, d)
        self.covariances: torch.Tensor = _checks.castable(cov, dtype, "covariances")  # (K, d, d)
        # Sigma_k = L_k L_k^T, for sampling
        self._chol = _checks.castable(torch.linalg.cholesky(cov), dtype, "covariances' roots")
        if bool((torch.diagonal(self.covariances, dim1=1, dim2=2) < torch.finfo(dtype).tiny).any()):
            raise ValueError(
                f"covariances are too small for {dtype} (below its smallest normal number); "
                "use dtype=torch.float64 or rescale the data"
            )

    # ------------------------------------------------------------------ exact quantities
    def log_prob(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Log density of p_sigma at ``x``.

        Args:
            x: ``(n, d)`` points.
            sigma: noise standard deviation, >= 0.

        Returns:
            ``(n,)`` log p_sigma(x), computed with log-sum-exp over components.
        """
        log_joint, _, _, offset = self._log_joint(x, sigma)
        log_p = torch.logsumexp(log_joint, dim=0)  # (n,)
        return log_p if offset is None else log_p + offset

    def responsibilities(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Posterior component probabilities r_k(x) = w_k N_k(x) / p_sigma(x), shape ``(n, K)``."""
        log_joint, _, _, _ = self._log_joint(x, sigma)
        return torch.softmax(log_joint, dim=0).T

    def score(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Exact score grad_x log p_sigma(x), shape ``(n, d)``.

        grad log p_sigma(x) = -sum_k r_k(x) C_k^{-1} (x - mu_k) with C_k = Sigma_k + sigma^2 I:
        the component scores averaged with the responsibilities (not the prior weights). Finite
        for any finite x whose score fits the dtype (|x| up to about 1e38 * the smallest variance
        in float32), even where |x|^2 overflows; beyond that a ``ValueError``.
        """
        log_joint, white, level, offset = self._log_joint(x, sigma)  # (K, n), (K, d, n)
        resp = torch.softmax(log_joint, dim=0)  # (K, n)
        # C_k^{-1} (x - mu_k) = L_k^{-T} y_k, weighted by r_k and summed over k
        score = -torch.matmul(level.whiten_t, white * resp[:, None, :]).sum(dim=0).T.contiguous()
        if offset is not None and not _checks.all_finite(score):
            raise ValueError(
                f"x is too far from the data for its score to fit in {x.dtype} (max |x| = "
                f"{x.abs().max().item():.3g}); use float64 or smaller x"
            )
        return score

    def _log_joint(
        self, x: torch.Tensor, sigma: float
    ) -> tuple[torch.Tensor, torch.Tensor, _Level, torch.Tensor | None]:
        """The log-joints log w_k N(x; mu_k, C_k), ``(K, n)``, and what the score needs.

        Returns the log-joints, y_k = L_k^{-1} (x - mu_k) ``(K, d, n)``, the level, and ``None``.
        Far from the data, where |y_k|^2 is too large for its differences to be exact in the dtype
        (or overflows), those points' log-joints come shifted by a per-point offset (softmax does
        not mind), returned as the fourth value ``(n,)`` for log-sum-exp to add back.
        """
        x = _checks.points(x, self.dim)
        level = self._level(sigma, x.dtype, x.device)
        white = torch.matmul(level.whiten, x.T[None] - level.means)  # (K, d, n), exact differences
        squared = white.square().sum(dim=1)  # (K, n)
        log_joint = level.log_norm - 0.5 * squared
        # the largest |y|^2 whose rounding error is _CANCELLATION
        exact_below = _CANCELLATION / torch.finfo(x.dtype).eps
        if squared.amax().item() <= exact_below:  # the usual case: one reduction, no copy
            return log_joint, white, level, None
        far = ~(squared.amax(dim=0) <= exact_below)  # (n,); inf counts as far
        offset = torch.zeros_like(log_joint[0])  # (n,)
        relative, far_offset = self._far_log_joint(x[far], _checks.noise_level(sigma))
        log_joint[:, far] = relative
        offset[far] = far_offset
        return log_joint, white, level, offset

    def _far_log_joint(self, x: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-joints relative to the heaviest component r, and log_joint_r, for x far away.

        With x = s v (s = max_i |x_i|, so |v| <= sqrt(d)) and c_k = log w_k - log det(2 pi C_k) / 2:
            log_joint_k - log_joint_r = g_k - s (s q_k / 2 - v . h_k),
        q_k = v^T (C_k^-1 - C_r^-1) v,  h_k = C_k^-1 mu_k - C_r^-1 mu_r,
        g_k = c_k - c_r - (mu_k^T C_k^-1 mu_k - mu_r^T C_r^-1 mu_r) / 2:
        |x|^2 never forms, and components with equal covariances (q_k = 0 exactly) still differ by
        their linear term. In float64; a difference that overflows is +-inf (+inf clamped).
        """
        level = self._compute_level(sigma)
        ref = int(torch.argmax(self._w64))
        inverse = level.whiten_t @ level.whiten  # (K, d, d) C_k^{-1}
        pulls = torch.einsum("kde,ke->kd", inverse, self._mu64)  # (K, d) C_k^{-1} mu_k
        c = level.log_norm[:, 0] - 0.5 * (pulls * self._mu64).sum(dim=1)  # (K,)
        s = x.double().abs().amax(dim=1).clamp_min(1.0)  # (n,)
        v = x.double() / s[:, None]  # (n, d)
        q = torch.einsum("nd,kde,ne->kn", v, inverse - inverse[ref], v)  # (K, n)
        relative = (c - c[ref])[:, None] - s * (0.5 * s * q - (pulls - pulls[ref]) @ v.T)  # (K, n)
        # a zero weight: never responsible (not -inf minus -inf)
        relative[self._w64 == 0] = -math.inf
        # +inf would make softmax NaN
        relative = relative.clamp(max=torch.finfo(x.dtype).max).to(x.dtype)
        y_ref = level.whiten[ref] @ (x.double() - self._mu64[ref]).T  # (d, n)
        # (n,), -inf once it overflows
        offset = level.log_norm[ref, 0] - 0.5 * y_ref.square().sum(dim=0)
        return relative, offset.to(x.dtype)

    def _level(self, sigma: float, dtype: torch.dtype, device: torch.device) -> _Level:
        sigma = _checks.noise_level(sigma)
        key = (sigma, dtype, device)
        level = self._levels.get(key)
        if level is None:
            level = self._compute_level(sigma).to(dtype, device)
            if len(self._levels) >= _CACHE_SIZE:
                self._levels.clear()
            self._levels[key] = level
        return level

    def _compute_level(self, sigma: float) -> _Level:
        d = self.dim
        eye = torch.eye(d, dtype=torch.float64)
        chol = torch.linalg.cholesky(self._cov64 + sigma**2 * eye)  # (K, d, d)
        whiten = torch.linalg.solve_triangular(chol, eye.expand_as(chol), upper=False)  # L^{-1}
        log_det = 2 * torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)  # (K,)
        # log w_k; a zero weight gives -inf, which log-sum-exp and softmax handle
        log_norm = torch.log(self._w64) - 0.5 * (log_det + d * math.log(2 * math.pi))
        return _Level(self._mu64[:, :, None], log_norm[:, None], whiten, whiten.transpose(1, 2))

    # ------------------------------------------------------------------ sampling and helpers
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Draw ``n`` i.i.d. samples of p (sigma = 0), shape ``(n, d)``, in the mixture's dtype.

        Components are drawn with ``torch.multinomial`` and the Gaussian noise is shaped by
        the Cholesky factor of Sigma_k. With ``generator=None`` a generator seeded with 0 is used.
        """
        n = _checks.positive_int(n, "n")
        gen = _checks.default_generator(generator, device)
        weights = self._w64.to(device)
        component = torch.multinomial(weights, n, replacement=True, generator=gen)  # (n,)
        noise = torch.randn(n, self.dim, generator=gen, dtype=self._dtype, device=device)  # (n, d)
        chol = self._chol.to(device)  # (K, d, d), Sigma_k = L_k L_k^T
        return self.means.to(device)[component] + torch.einsum("nde,ne->nd", chol[component], noise)

    def box(self, n_std: float = 3.0, sigma: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """The axis-aligned box holding every component of p_sigma within ``n_std`` std devs.

        For ``two_gaussians()`` and the defaults this is [-8, 8]^2, the paper's starting box.
        Returns ``(low, high)``, each ``(d,)``.
        """
        n_std = _checks.nonnegative_float(n_std, "n_std")
        sigma = _checks.noise_level(sigma)
        std = torch.sqrt(torch.diagonal(self._cov64, dim1=1, dim2=2) + sigma**2)  # (K, d)
        low = (self._mu64 - n_std * std).min(dim=0).values
        high = (self._mu64 + n_std * std).max(dim=0).values
        name = f"the box for n_std={n_std:g}, sigma={sigma:g}"
        low = _checks.castable(low, self._dtype, name)
        high = _checks.castable(high, self._dtype, name)
        return low, high

    def perturb(self, scale: float, std: float) -> GaussianMixture:
        """The law of scale X + std Z, X ~ p, Z ~ N(0, I), as a mixture: exact under any noising.

        Means times ``scale``, covariances times scale^2 plus std^2 I. ``perturb(1, sigma)`` is
        p_sigma of the variance-exploding noising (NCSN); ``perturb(sqrt(a), sqrt(1 - a))`` the
        variance-preserving one of DDPM at alpha_bar = a (Ho et al. 2020, Eq. 4). Its ``score``,
        ``log_prob`` and ``sample`` are those of the noised data. Computed in float64, returned
        in this mixture's dtype.

        Args:
            scale: the signal coefficient, finite and > 0.
            std: the noise's standard deviation, >= 0 (0: the data, rescaled).
        """
        scale = _checks.positive_float(scale, "scale")
        std = _checks.noise_level(std, "std")
        eye = torch.eye(self.dim, dtype=torch.float64)
        covariances = scale**2 * self._cov64 + std**2 * eye  # (K, d, d)
        return GaussianMixture(self._w64, scale * self._mu64, covariances, dtype=self._dtype)

    def to_dict(self) -> dict[str, list]:
        """Plain-Python description (lists of floats), e.g. for a checkpoint or JSON."""
        return {
            "weights": self._w64.tolist(),
            "means": self._mu64.tolist(),
            "covariances": self._cov64.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, *, dtype: torch.dtype | None = None) -> GaussianMixture:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(data["weights"], data["means"], data.get("covariances"), dtype=dtype)
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(
                "a mixture description must be a dict with 'weights', 'means' and optional "
                f"'covariances', got {data!r}"
            ) from err

    def __repr__(self) -> str:
        weights = ", ".join(f"{w:.3g}" for w in self._w64.tolist())
        return f"GaussianMixture(K={self.n_components}, d={self.dim}, weights=[{weights}])"


def check_mixture(mixture: object) -> GaussianMixture:
    """``mixture``, or a ``TypeError`` saying what it is instead.

    The check of every public function that takes a mixture.
    """
    if not isinstance(mixture, GaussianMixture):
        raise TypeError(f"mixture must be a GaussianMixture, got {type(mixture).__name__}")
    return mixture
