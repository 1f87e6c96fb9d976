"""Small helpers to report results: Markdown tables, number formatting, the machine.

Shared by ``reproduce`` and ``bench``.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence

import torch

__all__ = ["markdown_table", "mean_std", "mean_se", "over_seeds", "machine"]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table (cells are converted with ``str``)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``"0.800 ± 0.004"`` (sample standard deviation over the values), or one value alone."""
    t = torch.tensor(values, dtype=torch.float64)
    if len(values) < 2:
        return f"{t.mean().item():.{digits}f}"
    return f"{t.mean().item():.{digits}f} ± {t.std().item():.{digits}f}"


def mean_se(values: Sequence[float], digits: int = 3) -> str:
    """``"0.0012 ± 0.0004"``: the mean and its standard error, sd / sqrt(len(values)), or one
    value alone."""
    t = torch.tensor(values, dtype=torch.float64)
    if len(values) < 2:
        return f"{t.mean().item():.{digits}f}"
    se = t.std().item() / len(values) ** 0.5
    return f"{t.mean().item():.{digits}f} ± {se:.{digits}f}"


def over_seeds(n_seeds: int, n_particles: int) -> str:
    """What the "±" of a sampler table is: ``"mean ± sd over 20 seeds of 5000 particles"``."""
    seeds = "1 seed" if n_seeds == 1 else f"{n_seeds} seeds"
    return f"mean ± sd over {seeds} of {n_particles} particles"


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }
