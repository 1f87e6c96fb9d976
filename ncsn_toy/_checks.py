"""Input validation shared by the public entry points.

Every public function of the package checks what it is given with these helpers, so that bad
input fails early with a ``ValueError`` / ``TypeError`` that says what was wrong and what is
expected, instead of a shape error or a NaN deep inside a sampler.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

DEFAULT_SEED = 0  # seed of the generator used when a caller passes generator=None


def default_generator(
    generator: torch.Generator | None, device: torch.device | str = "cpu"
) -> torch.Generator:
    """Return ``generator``, or a fresh one seeded with ``DEFAULT_SEED`` on ``device``.

    Defaults are seeded on purpose: calling a random function twice without a generator gives
    the same numbers, so every figure and table of the project can be rerun exactly.
    """
    if generator is None:
        return torch.Generator(device=device).manual_seed(DEFAULT_SEED)
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if generator.device.type != torch.device(device).type:
        raise ValueError(
            f"generator is on {generator.device}, but the tensors it draws for are on {device}"
        )
    return generator


def positive_int(value: object, name: str) -> int:
    """Check that ``value`` is an integer >= 1 (bools are rejected) and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


def nonnegative_int(value: object, name: str) -> int:
    """Check that ``value`` is an integer >= 0 (bools are rejected) and return it as ``int``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value <= 0:
        if value < 0:
            raise ValueError(f"{name} must be a non-negative integer (>= 0), got {value}")
        return 0
    return positive_int(value, name)


def one_of(value: object, allowed: Sequence[str], name: str) -> str:
    """Check that ``value`` is one of the strings ``allowed`` and return it."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def flag(value: object, name: str) -> bool:
    """Check that ``value`` is a bool and return it."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def real_number(value: object, name: str) -> float:
    """Return ``value`` as a finite Python float; accepts numbers and one-element tensors."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive_float(value: object, name: str) -> float:
    """Return ``value`` as a finite float > 0."""
    value = real_number(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


# the largest noise level: sigma^2 (and the covariances C_k + sigma^2 I) must fit in float64
MAX_SIGMA = 1e150


def noise_level(value: object, name: str = "sigma") -> float:
    """Return a noise standard deviation as a float in [0, MAX_SIGMA]."""
    value = nonnegative_float(value, name)
    if value > MAX_SIGMA:
        raise ValueError(
            f"{name} must be <= {MAX_SIGMA:g} (its square must fit in float64), got {value:g}"
        )
    return value


def nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a finite float >= 0."""
    value = real_number(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def as_tensor(value: object, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert a tensor, NumPy array or (nested) list of numbers to a floating tensor.

    Floating tensors keep their dtype unless ``dtype`` is given; anything else becomes float32.
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        is_bool = False
        # ragged or odd input: torch.as_tensor says so below
        with contextlib.suppress(ValueError, TypeError):
            # [True, False] would become [1.0, 0.0] on the way
            is_bool = np.asarray(value).dtype == np.bool_
        if is_bool:
            raise TypeError(f"{name} must hold real numbers, got booleans")
        try:
            # straight to the target dtype: a list [0.2, 0.8] must not pass through float32
            tensor = torch.as_tensor(value, dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name} must be a tensor, array or list of numbers, got {type(value).__name__}"
            ) from err
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    if dtype is not None:
        tensor = tensor.to(dtype)
    elif not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return tensor


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` holds no NaN or infinity: max |t| is finite (NaN propagates through the
    max). One cheap reduction, where ``isfinite(t).all()`` makes a boolean copy first."""
    return tensor.numel() == 0 or math.isfinite(tensor.abs().amax().item())


def finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Raise ``ValueError`` if ``tensor`` holds NaN or infinite values."""
    if not all_finite(tensor):
        raise ValueError(f"{name} must be finite, but it contains NaN or infinite values")
    return tensor


def points(x: object, dim: int | None, name: str = "x") -> torch.Tensor:
    """Check a batch of points: a finite floating tensor of shape ``(n, dim)`` with n >= 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, d), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2 or x.shape[0] < 1 or (dim is not None and x.shape[1] != dim):
        expected = f"(n, {dim})" if dim is not None else "(n, d)"
        raise ValueError(f"{name} must have shape {expected} with n >= 1, got {tuple(x.shape)}")
    return finite(x, name)


def sigma_levels(sigmas: object, name: str = "sigmas") -> torch.Tensor:
    """Check noise levels: a non-empty 1-D tensor of finite, positive, decreasing values."""
    tensor = as_tensor(sigmas, name)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of noise levels, "
            f"got shape {tuple(tensor.shape)}"
        )
    finite(tensor, name)
    if bool((tensor <= 0).any()) or bool((tensor > MAX_SIGMA).any()):
        raise ValueError(f"{name} must all be > 0 and <= {MAX_SIGMA:g}, got {tensor.tolist()}")
    if tensor.numel() > 1 and not bool((tensor[1:] < tensor[:-1]).all()):
        raise ValueError(
            f"{name} must be strictly decreasing (largest noise first), got {tensor.tolist()}"
        )
    return tensor


def score_output(score: object, x: torch.Tensor, name: str = "the score function") -> torch.Tensor:
    """Check that a score function returned a real tensor shaped like its input ``x``."""
    if not isinstance(score, torch.Tensor) or score.shape != x.shape:
        shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
        raise ValueError(f"{name} must return a tensor of shape {tuple(x.shape)}, got {shape}")
    if not score.is_floating_point():
        raise TypeError(f"{name} must return a floating-point tensor, got dtype {score.dtype}")
    return score


def score_function(score_fn: object, with_sigma: bool, name: str = "score_fn") -> Callable:
    """Check that ``score_fn`` is callable, and not the network of the other kind (a mix-up)."""
    if not callable(score_fn):
        raise TypeError(f"{name} must be callable, got {type(score_fn).__name__}")
    kind = type(score_fn).__name__
    if with_sigma and kind == "ScoreNet":
        raise TypeError(
            f"{name} is a ScoreNet, which takes no sigma; this needs score_fn(x, sigma): a "
            "NoiseConditionalScoreNet, or lambda x, sigma: net(x)"
        )
    if not with_sigma and kind == "NoiseConditionalScoreNet":
        raise TypeError(
            f"{name} is a NoiseConditionalScoreNet, which needs a sigma; this calls score_fn(x): "
            "pass lambda x: net(x, sigma)"
        )
    return score_fn


def sigma_for(sigma: float, dtype: torch.dtype, name: str = "sigma") -> float:
    """``sigma`` (> 0) such that sigma, 1 / sigma and their squares are numbers of ``dtype``."""
    info = torch.finfo(dtype)
    low = math.sqrt(info.tiny)
    high = math.sqrt(info.max)
    if not low <= sigma <= high:
        raise ValueError(
            f"{name} must be between {low:.3g} and {high:.3g} for {dtype} data, got {sigma:g}"
        )
    return sigma


def castable(tensor: torch.Tensor, dtype: torch.dtype, name: str) -> torch.Tensor:
    """``tensor`` cast to ``dtype``, checked to stay finite (1e300 becomes inf in float32)."""
    cast = tensor.to(dtype)
    if not all_finite(cast):
        raise ValueError(
            f"{name} do not fit in {dtype} (largest |value| {tensor.abs().max().item():.3g}); "
            "use dtype=torch.float64"
        )
    return cast


def record_steps(record: int | Sequence[int] | None, total: int) -> set[int]:
    """The global steps (0..total) to record: ``record`` frames evenly spaced, or those steps."""
    if record is None:
        return set()
    if isinstance(record, numbers.Integral) and not isinstance(record, bool):
        # at most every state: more frames would repeat them (and 10**9 of them would hang); the
        # explorer asks for 50 frames of any run, also of a 20-step one
        n_frames = min(positive_int(record, "record"), total + 1)
        if n_frames == 1:
            return {total}
        return {round(i * total / (n_frames - 1)) for i in range(n_frames)}
    if isinstance(record, torch.Tensor):
        record = record.tolist() if record.dim() == 1 else record
    if isinstance(record, (str, bytes, bool)) or not isinstance(record, (Sequence, range)):
        raise TypeError(
            f"record must be an int (number of frames) or a sequence of int steps, got {record!r}"
        )
    if isinstance(record, range):  # checked by its ends, not element by element
        if len(record) == 0 or min(record[0], record[-1]) < 0 or max(record[0], record[-1]) > total:
            raise ValueError(
                f"record steps must be a non-empty range within 0..{total}, got {record}"
            )
        return set(record)
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in record):
        raise TypeError(f"record steps must be integers, got {list(record)!r}")
    steps = {int(s) for s in record}
    if not steps or min(steps) < 0 or max(steps) > total:
        raise ValueError(
            f"record steps must be a non-empty set within 0..{total}, got {sorted(steps)}"
        )
    return steps


def covariances(covariances: object, n_components: int, dim: int) -> torch.Tensor:
    """Validate covariances; return them as ``(K, d, d)`` float64 matrices."""
    eye = torch.eye(dim, dtype=torch.float64)
    if covariances is None:
        return eye.repeat(n_components, 1, 1)
    cov = as_tensor(covariances, "covariances", torch.float64).cpu()
    finite(cov, "covariances")
    if cov.dim() == 1:
        if cov.shape[0] != n_components:
            raise ValueError(
                f"isotropic covariances must have shape (K,) = ({n_components},), "
                f"got {tuple(cov.shape)}"
            )
        if bool((cov <= 0).any()):
            raise ValueError(f"isotropic variances must all be > 0, got {cov.tolist()}")
        return cov.view(-1, 1, 1) * eye
    if cov.shape != (n_components, dim, dim):
        raise ValueError(
            "covariances must be None, (K,) isotropic variances or (K, d, d) matrices with "
            f"(K, d) = ({n_components}, {dim}), got shape {tuple(cov.shape)}"
        )
    scale = float(cov.abs().max())
    if bool(((cov - cov.transpose(1, 2)).abs() > 1e-6 * max(scale, 1.0)).any()):
        raise ValueError("covariances must be symmetric matrices (Sigma_k == Sigma_k^T)")
    cov = 0.5 * (cov + cov.transpose(1, 2))
    _, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        bad = torch.nonzero(info).flatten().tolist()
        raise ValueError(
            f"covariances must be positive definite; component(s) {bad} are not "
            "(check for negative or zero variances)"
        )
    return cov
