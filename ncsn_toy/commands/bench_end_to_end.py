"""``bench`` rows that run whole commands or studies.

The wall time of ``render`` and of the notebook, and the score evaluations each sampler needs to
reach a mode-weight error <= 0.02.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from ..runtime import repository_root

__all__ = ["end_to_end_rows", "evaluations_rows"]

ROOT = repository_root()


def end_to_end_rows() -> list[dict]:
    """Wall time of a full ``render`` (into a temporary folder) and of the notebook in fast mode."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "ncsn_toy", "render", "--out", tmp],
            check=True,
            cwd=ROOT,
            capture_output=True,
        )
        rows.append(
            {
                "benchmark": "render the full figure set (wall time)",
                "ours": time.perf_counter() - start,
            }
        )
    notebook = ROOT / "NCSN_toy_Example.ipynb"
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:  # a core install (`pip install .`) has no Jupyter: no notebook row
        return rows
    if notebook.is_file():
        nb = nbformat.read(notebook, as_version=4)
        env = os.environ.copy()
        os.environ["NCSN_TOY_FAST"] = "1"
        try:
            start = time.perf_counter()
            client = NotebookClient(
                nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
            )
            client.execute()
            rows.append(
                {
                    "benchmark": "notebook, fast mode (wall time)",
                    "ours": time.perf_counter() - start,
                }
            )
        finally:
            os.environ.clear()
            os.environ.update(env)
    return rows


def evaluations_rows(seeds: int, particles: int, budgets: tuple[int, ...]) -> list[dict]:
    """Score evaluations to reach a weight error <= 0.02, per sampler family (``reproduce``'s
    :func:`~ncsn_toy.commands.sampler_study.evaluation_study`)."""
    from .measure import ReproduceConfig
    from .sampler_study import evaluation_study

    study = evaluation_study(ReproduceConfig(n_seeds=seeds, n_particles=particles, budgets=budgets))
    rows = []
    # the families in the study's order, each once
    for family in dict.fromkeys(r["sampler"] for r in study):
        mine = [r for r in study if r["sampler"] == family]
        reached = [r["evaluations"] for r in mine if r["max_weight_error"] <= 0.02]
        # the smallest mean distance over the budgets
        best = min(sum(r["distance"]) / len(r["distance"]) for r in mine)
        rows.append(
            {
                "sampler": family,
                "evaluations_to_0.02": min(reached) if reached else None,
                "best_distance": best,
            }
        )
    return rows
