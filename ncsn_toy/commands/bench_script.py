"""``bench`` rows for a plain script: the library's own choice of threads, quiet and under load.

A script that calls the library directly has no command around it to set torch's threads; the
library's long calls choose them for the machine's load themselves
(:data:`ncsn_toy.runtime.LIBRARY_THREADS`). These rows run such a script (:data:`SCRIPT`:
annealed Langevin with the exact score, 4,000 particles, 10 levels x 100 steps, then ``fit`` on a
three-mode ring for 200 Adam steps) as a subprocess, and time each call inside it, in five settings:

- quiet, 1 thread (``OMP_NUM_THREADS=1``): the reference;
- quiet, the library's choice (no variable set: what a user gets);
- quiet, torch's default (``NCSN_TOY_THREADS`` set to the cores, so the library leaves torch's
  default of one thread per core alone: how the library behaved before it chose);
- the library's choice beside one busy neighbour process, and beside two
  (:func:`~ncsn_toy.commands.bench_load.busy_neighbour`).

The settings of one machine state alternate (ABCABC...), and the median of the repeats is kept.
Targets: beside one busy process, at least 0.8x the speed of the quiet 1-thread script; beside
two, at least 0.5x; quiet, at most 1.05x the time of torch's default.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..runtime import THREAD_ENV_VARS, allowed_cpus
from .bench_load import busy_neighbour
from .report import markdown_table

__all__ = ["SCRIPT", "SETTINGS", "TARGETS", "script_rows", "format_script"]

# the plain script: what a user writes after the README's first taste; its sizes are arguments
SCRIPT = """
import json, sys, time
import torch
from ncsn_toy import annealed_langevin_dynamics, fit, geometric_sigmas, target, uniform_in_box
n_particles, n_steps_each, fit_steps = (int(a) for a in sys.argv[1:])
threads = []
def score(x, sigma):  # the exact score; notes the threads the sampler runs with
    if not threads:
        threads.append(torch.get_num_threads())
    return mixture.score(x, sigma)
# torch imports its compiler stack (some 800 modules, 2-3 s) at the first optimizer step of a
# process, whatever the threads: paid here, outside the timings
weight = torch.nn.Parameter(torch.zeros(1))
weight.sum().backward()
torch.optim.Adam([weight]).step()
mixture = target("two_gaussians")
g = torch.Generator().manual_seed(0)
x0 = uniform_in_box(mixture, n_particles, g)
start = time.perf_counter()
annealed_langevin_dynamics(score, x0, geometric_sigmas(20, 1, 10), 0.1, n_steps_each, g)
langevin = time.perf_counter() - start
start = time.perf_counter()
fit(target("ring", n_modes=3), steps=fit_steps)
fitted = time.perf_counter() - start
print(json.dumps({"langevin": langevin, "fit": fitted, "threads": threads[0]}))
"""

# setting -> (busy neighbour processes, the thread variables of the script's environment)
SETTINGS: dict[str, tuple[int, dict[str, str]]] = {
    "quiet_one": (0, {"OMP_NUM_THREADS": "1"}),
    "quiet_library": (0, {}),
    "quiet_torch_default": (0, {"NCSN_TOY_THREADS": str(len(allowed_cpus()))}),
    "busy1_library": (1, {}),
    "busy2_library": (2, {}),
}
# ratio -> target: the speed beside busy processes against the quiet 1-thread script (at least),
# and the time of the library's choice against torch's default, quiet (at most)
TARGETS = {"busy1_vs_quiet_one": 0.8, "busy2_vs_quiet_one": 0.5, "quiet_vs_torch_default": 1.05}


def _run_script(sizes: tuple[int, int, int], variables: dict[str, str]) -> dict:
    """Run :data:`SCRIPT` once with only ``variables`` among the thread variables; its timings."""
    environment = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    environment.update(variables)
    # this package, wherever the script runs from
    package_parent = str(Path(__file__).resolve().parents[2])
    environment["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_parent, os.environ.get("PYTHONPATH")) if p
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, *(str(size) for size in sizes)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _load_average() -> float | None:
    """The 1-minute load average now (``None`` where there is none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def script_rows(
    *, quick: bool = False, repeats: int = 5, progress: Callable[[], object] = lambda: None
) -> dict:
    """Median seconds of each call of the script in every setting, with the threads the sampler
    ran with and the load average when each machine state began (``quick``: tiny sizes)."""
    sizes = (400, 10, 10) if quick else (4000, 100, 200)
    runs: dict[str, list[dict]] = {name: [] for name in SETTINGS}
    loads = {}
    for busy in sorted({count for count, _ in SETTINGS.values()}):
        names = [name for name, (count, _) in SETTINGS.items() if count == busy]
        with busy_neighbour(busy):
            loads[busy] = _load_average()
            for _ in range(repeats):
                for name in names:
                    runs[name].append(_run_script(sizes, SETTINGS[name][1]))
        progress()
    calls = {}
    for call in ("langevin", "fit"):
        calls[call] = {
            name: statistics.median(run[call] for run in runs[name]) for name in SETTINGS
        }
    return {
        "sizes": {"particles": sizes[0], "steps_each": sizes[1], "fit_steps": sizes[2]},
        "repeats": repeats,
        "seconds": calls,
        "threads": {name: statistics.median(run["threads"] for run in runs[name]) for name in runs},
        "load_average": {str(busy): load for busy, load in loads.items()},
        "cores": len(allowed_cpus()),
    }


def _ratios(seconds: dict[str, float]) -> dict[str, float]:
    """The three ratios the targets judge, from one call's median seconds per setting."""
    return {
        "busy1_vs_quiet_one": seconds["quiet_one"] / seconds["busy1_library"],
        "busy2_vs_quiet_one": seconds["quiet_one"] / seconds["busy2_library"],
        "quiet_vs_torch_default": seconds["quiet_library"] / seconds["quiet_torch_default"],
    }


def format_script(result: dict, judge: bool = True) -> str:
    """The rows as Markdown under their heading, with the targets (judged when ``judge``)."""
    sizes = result["sizes"]
    labels = {
        "langevin": f"annealed Langevin, exact score, {sizes['particles']} particles, "
        f"{10 * sizes['steps_each']} steps",
        "fit": f"fit, three-mode ring, {sizes['fit_steps']} steps",
    }
    threads = result["threads"]
    rows = []
    for call, label in labels.items():
        seconds = result["seconds"][call]
        ratios = _ratios(seconds)
        cells = [label]
        for name in SETTINGS:
            cells.append(f"{seconds[name]:.3f} ({threads[name]:g})")
        for key, target in TARGETS.items():
            met = (
                ratios[key] <= target if key == "quiet_vs_torch_default" else ratios[key] >= target
            )
            verdict = ("yes" if met else "**no**") if judge else "—"
            cells.append(f"{ratios[key]:.2f}x {verdict}")
        rows.append(cells)
    loads = ", ".join(
        f"{'quiet' if busy == '0' else busy + ' busy'} {load:.1f}"
        for busy, load in result["load_average"].items()
        if load is not None
    )
    return "\n\n".join(
        [
            "### A plain script: the library's own choice of threads, quiet and beside busy "
            "processes",
            f"Median seconds of each call over {result['repeats']} runs of a script "
            f"(threads in the sampler call in brackets; {result['cores']} cores; 1-minute load "
            f"average at the start of each machine state: {loads or 'unknown'}). Targets: beside "
            "one busy process >= 0.8x the speed of the quiet 1-thread script, beside two >= 0.5x; "
            "quiet, <= 1.05x the time of torch's default.",
            markdown_table(
                [
                    "script call",
                    "quiet, 1 thread",
                    "quiet, library",
                    "quiet, torch default",
                    "1 busy, library",
                    "2 busy, library",
                    "1 busy vs quiet 1 thread (>= 0.8x)",
                    "2 busy vs quiet 1 thread (>= 0.5x)",
                    "quiet library / torch default time (<= 1.05x)",
                ],
                rows,
            ),
        ]
    )
