"""Input validation shared by the public entry points.

Every public function of the package checks what it is given with these helpers, so that bad
input fails early with a ``ValueError`` / ``TypeError`` that says what was wrong and what is
expected, instead of a shape error or a NaN deep inside a sampler.
"""

from __future__ import annotations

import math
import numbers

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
    return generator


def positive_int(value: object, name: str) -> int:
    """Check that ``value`` is an integer >= 1 (bools are rejected) and return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


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
    """Check noise levels: a non-empty 1-D tensor of finite, positive, strictly decreasing values."""
    tensor = as_tensor(sigmas, name)
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of noise levels, got shape {tuple(tensor.shape)}"
        )
    finite(tensor, name)
    if bool((tensor <= 0).any()):
        raise ValueError(f"{name} must all be > 0, got {tensor.tolist()}")
    if tensor.numel() > 1 and not bool((tensor[1:] < tensor[:-1]).all()):
        raise ValueError(
            f"{name} must be strictly decreasing (largest noise first), got {tensor.tolist()}"
        )
    return tensor


def score_output(score: object, x: torch.Tensor, name: str = "the score function") -> torch.Tensor:
    """Check that a score function returned a tensor shaped like its input ``x``."""
    if not isinstance(score, torch.Tensor) or score.shape != x.shape:
        shape = tuple(score.shape) if isinstance(score, torch.Tensor) else type(score).__name__
        raise ValueError(f"{name} must return a tensor of shape {tuple(x.shape)}, got {shape}")
    return score
