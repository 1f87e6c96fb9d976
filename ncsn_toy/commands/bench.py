"""``python -m ncsn_toy bench``: our hot paths against the straightforward way, side by side.

Every row times our implementation and a baseline written the way a typical tutorial writes it
(:mod:`ncsn_toy.commands.baselines`), on the same sizes, in the same process, alternating the
two (ABAB...) so that load on a shared machine hits both alike, and reports the median of the
repeats and the ratio baseline / ours. Absolute times drift between machines and runs; the ratios
are the result.

1. exact score inside annealed Langevin: ``GaussianMixture.score`` against autograd of a
   ``torch.distributions`` mixture's ``log_prob`` (how the paper's code gets its exact score);
2. annealed Langevin with the original notebook's network against a loop of ``nn.Sequential`` +
   ``torch.cat``, and against the limit: the network's matrix products and activations alone;
3. a training step against a plain Adam loop;
4. a GIF frame of the renderer against a new figure + ``savefig`` to PNG + read back;
5. end to end: ``render`` of the full figure set and the notebook in fast mode (wall time);
6. score evaluations each sampler needs to reach a mode-weight error <= 0.02 (machine-independent);
7. under load: each hot path beside a busy neighbour process (:mod:`.bench_load`), and a plain
   script calling the library, quiet and beside one and two busy processes (:mod:`.bench_script`).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..figures.plotting import Animation, FieldGrid, Panel, new_figure
from ..mixtures import GaussianMixture
from ..networks import NoiseConditionalScoreNet
from ..noise_levels import geometric_sigmas
from ..runtime import ThreadPolicy
from ..samplers import annealed_langevin_dynamics
from ..targets import two_gaussians
from ..training import TrainConfig, seeded_init, train_noise_conditional
from .baselines import (
    autograd_score,
    gif_through_png,
    plain_annealed_langevin,
    plain_training,
    sequential_score,
)
from .bench_end_to_end import end_to_end_rows, evaluations_rows
from .bench_load import format_load, load_rows
from .bench_script import format_script, script_rows
from .explore import explorer_timings, format_timings
from .report import machine, markdown_table

__all__ = ["BenchConfig", "bench", "format_bench"]


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of a bench run; :meth:`quick` for a smoke test."""

    n_points: int = 10_000  # particles / points of the sampler rows
    steps_each: int = 5  # annealed-Langevin steps per level (10 levels)
    train_steps: int = 50  # training steps per timed run
    batch_size: int = 512  # training batch
    frames: int = 20  # GIF frames per timed run
    repeats: int = 9  # timed repeats of each side, alternating (median reported)
    end_to_end: bool = True  # also time `render` and the notebook (subprocesses)
    seeds: int = 3  # seeds of the score-evaluation study
    budgets: tuple[int, ...] = (10, 20, 50, 100, 200, 500, 1000, 2000)  # score evaluations tried

    load_repeats: int = 5  # repeats of each setting in the load rows
    script_repeats: int = 5  # runs of the plain script in each of its settings
    quick: bool = False  # a smoke test: tiny sizes, and no verdict on any target

    @classmethod
    def quick_check(cls) -> BenchConfig:
        """Tiny sizes: a smoke test whose numbers judge nothing."""
        return cls(
            n_points=1000,
            steps_each=2,
            train_steps=5,
            frames=3,
            repeats=2,
            end_to_end=False,
            seeds=1,
            budgets=(10, 100),
            load_repeats=1,
            script_repeats=1,
            quick=True,
        )


def _interleaved(
    ours: Callable[[], object], baseline: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of ``ours`` and ``baseline``, timed alternately after one warm-up each."""
    ours()
    baseline()
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(repeats):
        for key, fn in (("ours", ours), ("baseline", baseline)):
            start = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times["ours"]), statistics.median(times["baseline"])


# ---------------------------------------------------------------------------- rows
def _exact_score_row(config: BenchConfig) -> dict:
    """The exact score inside annealed Langevin, ours against autograd of a ``torch.distributions``
    mixture."""
    mixture = two_gaussians()
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    x0 = 16 * torch.rand(config.n_points, 2, generator=torch.Generator().manual_seed(0)) - 8

    def ours():
        return annealed_langevin_dynamics(
            mixture.score, x0, sigmas, 0.1, config.steps_each, torch.Generator().manual_seed(1)
        )

    def baseline():
        return plain_annealed_langevin(
            autograd_score(mixture),
            x0,
            sigmas.tolist(),
            0.1,
            config.steps_each,
            torch.Generator().manual_seed(1),
        )

    t_ours, t_base = _interleaved(ours, baseline, config.repeats)
    return {
        "benchmark": f"exact score in annealed Langevin ({config.n_points} points, "
        f"{10 * config.steps_each} steps)",
        "ours": t_ours,
        "baseline": t_base,
        "target": 3.0,
        "baseline_is": "autograd of torch.distributions log_prob",
    }


def _network_sampler_rows(config: BenchConfig) -> list[dict]:
    """Annealed Langevin with the original notebook's network: against a plain loop, and against
    the network's arithmetic alone (the limit)."""
    # an untrained network of the original notebook's shape: the timing does not depend on training
    model = seeded_init(0, NoiseConditionalScoreNet)
    sigmas = model.sigmas.tolist()
    x0 = 16 * torch.rand(config.n_points, 2, generator=torch.Generator().manual_seed(0)) - 8
    n_steps = len(sigmas) * config.steps_each

    def ours():
        return annealed_langevin_dynamics(
            model, x0, model.sigmas, 0.1, config.steps_each, torch.Generator().manual_seed(1)
        )

    def baseline():
        return plain_annealed_langevin(
            sequential_score(model.net),
            x0,
            sigmas,
            0.1,
            config.steps_each,
            torch.Generator().manual_seed(1),
        )

    # the first layer's weights split into the columns for x and the one for sigma
    first = model.net[0]
    rest = model.net[1:]
    w_x = first.weight[:, :2].contiguous()
    w_s = first.weight[:, 2]

    def limit():
        # the network's matrix products and activations alone, no sampler, no checks
        with torch.no_grad():
            for sigma in sigmas:
                bias = first.bias + sigma * w_s
                for _ in range(config.steps_each):
                    rest(F.linear(x0, w_x, bias))

    t_ours, t_base = _interleaved(ours, baseline, config.repeats)
    t_ours_again, t_limit = _interleaved(ours, limit, config.repeats)
    label = f"annealed Langevin, seed network ({config.n_points} particles, {n_steps} steps)"
    return [
        {
            "benchmark": label,
            "ours": t_ours,
            "baseline": t_base,
            "target": 1.0,
            "baseline_is": "nn.Sequential + torch.cat per step",
        },
        {
            "benchmark": label + ": against the limit",
            "ours": t_ours_again,
            "baseline": t_limit,
            "target": 1 / 1.3,
            "baseline_is": "matrix products + activations alone (the limit)",
        },
    ]


def _training_row(config: BenchConfig) -> dict:
    """Training steps of ``train_noise_conditional`` against a bare Adam loop."""
    mixture = two_gaussians()
    train = TrainConfig(steps=config.train_steps, batch_size=config.batch_size, lr=1e-3)

    def ours():
        train_noise_conditional(mixture, train, progress=False)

    def baseline():
        plain_training(
            seeded_init(0, NoiseConditionalScoreNet),
            mixture,
            config.train_steps,
            config.batch_size,
            torch.Generator().manual_seed(0),
        )

    t_ours, t_base = _interleaved(ours, baseline, config.repeats)
    return {
        "benchmark": f"training ({config.train_steps} steps, batch {config.batch_size}; "
        f"ours {config.train_steps / t_ours:.0f} steps/s)",
        "ours": t_ours,
        "baseline": t_base,
        "target": 1.0,
        "baseline_is": "plain Adam loop (no EMA, no schedule)",
    }


def _frame_content(n: int) -> tuple[GaussianMixture, torch.Tensor, torch.Tensor]:
    """What the GIF frames show: the mixture, ``n`` particles and their drift per frame."""
    mixture = two_gaussians()
    g = torch.Generator().manual_seed(0)
    particles = 16 * torch.rand(n, 2, generator=g) - 8
    drift = torch.randn(n, 2, generator=g) * 0.05
    return mixture, particles, drift


def _gif_row(config: BenchConfig) -> dict:
    """GIF frames of the renderer against a new figure, PNG and read back per frame."""
    mixture, x, drift = _frame_content(2000)
    extent = (-9.0, 9.0, -9.0, 9.0)
    grid = FieldGrid(extent, 21)
    field = mixture.score(grid.points)
    log_density = None

    def ours():
        nonlocal log_density
        fig, axes = new_figure(1)
        panel = Panel(axes[0], extent, grid=grid, particles=True, arrow_scale=3.0)
        if log_density is None:
            log_density = mixture.log_prob(panel.pixels)
        panel.set_density(log_density)
        panel.set_field(field)
        # only the particles and the title change between frames
        anim = Animation(fig, [panel.scatter, panel.ax.title])
        for i in range(config.frames):
            panel.set_particles(x + i * drift)
            panel.set_title(f"step {i}")
            anim.capture()
        with tempfile.TemporaryDirectory() as tmp:
            anim.save(Path(tmp) / "a.gif")

    def baseline():
        gif_through_png(
            mixture, extent, grid.points, field, [x + i * drift for i in range(config.frames)]
        )

    t_ours, t_base = _interleaved(ours, baseline, config.repeats)
    return {
        "benchmark": f"GIF frames ({config.frames} frames; "
        f"ours {1000 * t_ours / config.frames:.0f} ms/frame)",
        "ours": t_ours,
        "baseline": t_base,
        "target": 8.0,
        "baseline_is": "new figure + savefig PNG + read back, per frame",
    }


def bench(
    config: BenchConfig | None = None, *, threads: ThreadPolicy | None = None, progress: bool = True
) -> dict:
    """Run every benchmark (``config`` defaults to the full sizes); return the rows as a JSON-ready
    dict.

    ``threads``: the policy the timed rows run under (re-measured before each row; default: a new
    :class:`ThreadPolicy`); the load rows set their own thread counts and restore it.
    """
    config = config or BenchConfig()
    threads = threads or ThreadPolicy()

    def timed() -> list[dict]:
        return [
            _exact_score_row(config),
            *_network_sampler_rows(config),
            _training_row(config),
            _gif_row(config),
        ]

    def load() -> list[dict]:
        return load_rows(quick=config.quick, repeats=config.load_repeats)

    def script() -> dict:
        return script_rows(quick=config.quick, repeats=config.script_repeats)

    def end_to_end() -> list[dict]:
        return end_to_end_rows() if config.end_to_end else []

    def explorer() -> list[dict]:
        return explorer_timings(repeats=config.repeats)

    def evaluations() -> list[dict]:
        return evaluations_rows(config.seeds, min(config.n_points, 5000), config.budgets)

    steps = {
        "timed": timed,
        "load": load,
        "script": script,
        "end_to_end": end_to_end,
        "explorer": explorer,
        "evaluations": evaluations,
    }
    result = {"machine": machine(), "config": dataclasses.asdict(config)}
    for name, step in tqdm(steps.items(), desc="bench", disable=not progress, leave=False):
        # measure the load again: the rows below take from seconds to a minute each
        threads.apply()
        result[name] = step()
    return result


def format_bench(result: dict) -> str:
    """The bench result as Markdown; a quick run's verdicts are withheld (its sizes are too small
    to judge)."""
    judge = not result["config"]["quick"]

    def verdict(ratio: float, target: float) -> str:
        return ("yes" if ratio >= target else "**no**") if judge else "— (quick)"

    parts = []
    if not judge:
        parts.append(
            "Quick run (--quick): tiny sizes and few repeats, a smoke test. Targets are judged on "
            "full runs only (`python -m ncsn_toy bench`)."
        )
    rows = []
    for r in result["timed"]:
        ratio = r["baseline"] / r["ours"]
        rows.append(
            [
                r["benchmark"],
                f"{1000 * r['ours']:.1f}",
                f"{1000 * r['baseline']:.1f}",
                r["baseline_is"],
                f"{ratio:.2f}x",
                f">= {r['target']:.2f}x",
                verdict(ratio, r["target"]),
            ]
        )
    parts += [
        "### Speed (median of repeats, ms; ratio = baseline / ours)",
        markdown_table(
            ["benchmark", "ours (ms)", "baseline (ms)", "baseline", "ratio", "target", "met"], rows
        ),
    ]
    parts += [
        "### Beside a busy neighbour: the thread policy against the old default "
        "(one thread per core)",
        "Median seconds (threads in brackets). Targets: beside one busy process, >= 0.8x the speed "
        "of a quiet single thread and >= 2.5x the speed of the old default; quiet, about 1x the "
        "old default.",
        markdown_table(
            [
                "hot path",
                "quiet, 1 thread",
                "quiet, policy",
                "quiet, old default",
                "busy, policy",
                "busy, old default",
                "busy policy vs quiet 1 thread",
                "busy policy vs busy old default",
                "quiet policy vs quiet old default",
            ],
            format_load(result["load"], judge),
        ),
    ]
    # results written before the script rows existed have none
    if result.get("script"):
        parts.append(format_script(result["script"], judge))
    if result["end_to_end"]:
        wall = [[r["benchmark"], f"{r['ours']:.1f}"] for r in result["end_to_end"]]
        parts += ["### End to end", markdown_table(["what", "seconds"], wall)]
    ev = result["evaluations"]
    paper = 1000  # annealed Langevin with the paper's settings: L = 10 levels x T = 100 steps
    evaluation_rows = []
    for r in ev:
        reached = r["evaluations_to_0.02"] or "not reached"
        evaluation_rows.append([r["sampler"], reached, f"{r['best_distance']:.4f}"])
    parts += [
        f"### Score evaluations to a mode-weight error <= 0.02 (exact score; the paper's annealed "
        f"Langevin uses {paper})",
        markdown_table(
            ["sampler", "evaluations to reach 0.02", "best energy distance"], evaluation_rows
        ),
    ]
    reached = [r["evaluations_to_0.02"] for r in ev if r["evaluations_to_0.02"]]
    if reached and judge:
        parts.append(
            f"Best: {min(reached)} evaluations, {paper / min(reached):.0f}x fewer than the paper's "
            f"annealed Langevin (target: at least 5x)."
        )
    if result.get("explorer"):
        parts.append(format_timings(result["explorer"], judge))
    m = result["machine"]
    parts.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} "
        f"({m['torch_threads']} threads at the start), Python {m['python']}."
    )
    return "\n\n".join(parts) + "\n"
