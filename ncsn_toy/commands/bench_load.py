"""``bench`` under load: each hot path on a quiet machine and beside a busy neighbour process.

Each runs with the thread policy (:class:`ncsn_toy.runtime.ThreadPolicy`) and with torch's old
default (one thread per core).

The neighbour is a Python process spinning on one core, started and stopped here. Each hot path
is timed, alternating the settings being compared so that drift hits them alike, and the median
of the repeats is kept. The ratios are judged against three targets: beside a busy neighbour,
the policy runs at >= 0.8x the speed of a quiet single thread and >= 2.5x the speed of the old
default; on a quiet machine it is as fast as the old default.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import torch

from ..noise_levels import geometric_sigmas
from ..recipes import load_or_train
from ..runtime import ThreadPolicy, allowed_cpus, busy_cores
from ..samplers import annealed_langevin_dynamics
from ..targets import two_gaussians
from ..training import TrainConfig, seeded_init, train_noise_conditional

__all__ = ["hot_paths", "busy_neighbour", "load_rows", "format_load"]


def hot_paths(quick: bool) -> dict[str, Callable[[], object]]:
    """The package's three hot paths: training, and annealed Langevin with the trained network and
    with the exact score, on 10,000 particles (``quick``: a tenth of the sizes)."""
    scale = 10 if quick else 1
    mixture = two_gaussians()
    n = 10_000 // scale
    model = load_or_train("ncsn_two_gaussians", progress=False)
    x0 = 16 * torch.rand(n, 2, generator=torch.Generator().manual_seed(0)) - 8
    train = TrainConfig(steps=100 // scale, batch_size=2048, lr=1e-2)

    def fresh_network() -> torch.nn.Module:
        return type(model)(**model.architecture, sigmas=model.sigmas)

    def training():
        return train_noise_conditional(
            mixture, train, seeded_init(0, fresh_network), progress=False
        )

    def trained_sampler():
        return annealed_langevin_dynamics(
            model, x0, model.sigmas, 0.016, 4, torch.Generator().manual_seed(1)
        )

    def exact_sampler():
        return annealed_langevin_dynamics(
            mixture.score,
            x0,
            geometric_sigmas(20.0, 1.0, 10),
            0.1,
            20,
            torch.Generator().manual_seed(1),
        )

    return {
        f"{train.steps} NCSN training steps, batch 2048": training,
        f"annealed Langevin, trained NCSN, {n} particles, 60 steps": trained_sampler,
        f"annealed Langevin, exact score, {n} particles, 200 steps": exact_sampler,
    }


@contextlib.contextmanager
def busy_neighbour(count: int = 1) -> Iterator[None]:
    """``count`` other processes, each keeping one core busy, for the duration of the block."""
    spinners: list[subprocess.Popen] = []
    # started inside the try: if the second cannot start, the first is stopped too
    try:
        for _ in range(count):
            spinners.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        # wait until they really run
        deadline = time.monotonic() + 5.0
        while busy_cores(0.1) < 0.8 * count and time.monotonic() < deadline:
            pass
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _alternate(runs: dict[str, tuple[int, Callable[[], object]]], repeats: int) -> dict[str, float]:
    """Median seconds of each ``(threads, fn)``, timed in turn (ABCABC...) after a warm-up round."""
    times: dict[str, list[float]] = {key: [] for key in runs}
    for repeat in range(repeats + 1):
        for key, (threads, fn) in runs.items():
            torch.set_num_threads(threads)
            start = time.perf_counter()
            fn()
            if repeat:  # the first round warms up
                times[key].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in times.items()}


def load_rows(
    *, quick: bool = False, repeats: int = 5, progress: Callable[[], object] = lambda: None
) -> list[dict]:
    """Each hot path, quiet (1 thread, the policy, all cores) and beside one busy neighbour (the
    policy, all cores): median seconds, and the thread counts the policy chose."""
    all_cores = len(allowed_cpus())
    before = torch.get_num_threads()
    rows = []
    try:
        for name, fn in hot_paths(quick).items():
            quiet_choice = ThreadPolicy().apply()
            quiet = _alternate(
                {
                    "quiet_one": (1, fn),
                    "quiet_policy": (quiet_choice, fn),
                    "quiet_all": (all_cores, fn),
                },
                repeats,
            )
            with busy_neighbour():
                busy_choice = ThreadPolicy().apply()
                busy = _alternate(
                    {"busy_policy": (busy_choice, fn), "busy_all": (all_cores, fn)}, repeats
                )
            rows.append(
                {
                    "hot_path": name,
                    **quiet,
                    **busy,
                    "threads_quiet": quiet_choice,
                    "threads_busy": busy_choice,
                    "cores": all_cores,
                }
            )
            progress()
    finally:
        torch.set_num_threads(before)
    return rows


def format_load(rows: list[dict], judge: bool = True) -> list[list[str]]:
    """Table rows: seconds, and the three ratios against their targets (judged only when
    ``judge``)."""

    def verdict(ratio: float, target: float) -> str:
        return ("yes" if ratio >= target else "**no**") if judge else "—"

    lines = []
    for r in rows:
        # speed beside a neighbour / quiet single-thread speed
        vs_quiet = r["quiet_one"] / r["busy_policy"]
        # how much faster than the old default beside a neighbour
        vs_old = r["busy_all"] / r["busy_policy"]
        # the policy's speed on a quiet machine / the old default's
        quiet_cost = r["quiet_all"] / r["quiet_policy"]
        lines.append(
            [
                r["hot_path"],
                f"{r['quiet_one']:.3f}",
                f"{r['quiet_policy']:.3f} ({r['threads_quiet']})",
                f"{r['quiet_all']:.3f} ({r['cores']})",
                f"{r['busy_policy']:.3f} ({r['threads_busy']})",
                f"{r['busy_all']:.3f} ({r['cores']})",
                f"{vs_quiet:.2f}x {verdict(vs_quiet, 0.8)}",
                f"{vs_old:.2f}x {verdict(vs_old, 2.5)}",
                f"{quiet_cost:.2f}x",
            ]
        )
    return lines
