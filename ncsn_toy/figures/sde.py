"""The score-SDE figures of the gallery: how far sampling came, ODE and SDE paths, ODE likelihoods.

- :func:`sampler_pareto`: weight error and energy distance against score evaluations for every
  sampler, with the exact score (the paper's Langevin samplers and the continuous-time ones);
- :func:`probability_flow`: deterministic probability-flow paths beside reverse-SDE paths from the
  same prior draws, the view zooming in with sigma;
- :func:`ode_likelihood`: the ODE log-likelihood against the exact log density, and its convergence.

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..likelihood import ode_log_likelihood
from ..metrics import energy_distance, mode_weights
from ..noise_levels import geometric_sigmas
from ..samplers import annealed_langevin_dynamics, consistent_annealed_sampling, langevin_dynamics
from ..sde import (
    VESDE,
    predictor_corrector_sampling,
    probability_flow_sampling,
    reverse_sde_sampling,
    score_evaluations,
)
from ..targets import two_gaussians, uniform_in_box
from .parts import Context, weights_text
from .plotting import COLORS, Animation, Panel, add_colorbar, new_figure, nice, save_png

__all__ = [
    "sampler_pareto",
    "probability_flow",
    "ode_likelihood",
    "SIGMA_MAX",
    "SIGMA_MIN",
    "RHO",
    "MULTISTEP_RHO",
]

# two modes: the settings of reproduce's tables (sde_study.SETTINGS): Heun's grid, and the multistep solver's
SIGMA_MAX, SIGMA_MIN, RHO, MULTISTEP_RHO = 800.0, 0.2, 6.0, 10.0
TRAIL = 8  # frames of path drawn behind each traced particle
LINE_COLORS = {
    "Langevin": "#8a8a8a",
    "annealed Langevin": "#b8312f",
    "consistent annealed": "#e07b39",
    "reverse SDE": "#6a4c93",
    "predictor-corrector": "#2a9d8f",
    "probability flow, Euler": "#7fb3d5",
    "probability flow, Heun": COLORS["particles"],
    "probability flow, multistep": "#0b7a3e",
}


def _families(score: Callable, sde: VESDE) -> dict[str, list[tuple[int, Callable]]]:
    """(score evaluations, run(x_uniform, x_prior, g)) per sampler family, exact score."""
    paper = geometric_sigmas(20.0, 1.0, 10)
    return {
        "Langevin": [
            (n, lambda u, p, g, n=n: langevin_dynamics(score, u, 0.1, n, g))
            for n in (10, 100, 1000)
        ],
        "annealed Langevin": [
            (10 * t, lambda u, p, g, t=t: annealed_langevin_dynamics(score, u, paper, 0.1, t, g))
            for t in (2, 10, 100, 200)
        ],
        "consistent annealed": [
            (
                n,
                lambda u, p, g, n=n: consistent_annealed_sampling(
                    score,
                    u,
                    geometric_sigmas(20.0, 1.0, n),
                    min(1.0, 2 * (1 - (1 / 20) ** (1 / (n - 1)))),
                    g,
                ),
            )
            for n in (10, 20, 50, 100)
        ],
        "reverse SDE": [
            (n, lambda u, p, g, n=n: reverse_sde_sampling(score, p, sde, n, g))
            for n in (20, 50, 200)
        ],
        "predictor-corrector": [
            (
                2 * n,
                lambda u, p, g, n=n: predictor_corrector_sampling(score, p, sde, n, generator=g),
            )
            for n in (10, 25, 100)
        ],
        "probability flow, Euler": [
            (n, lambda u, p, g, n=n: probability_flow_sampling(score, p, sde, n, "euler", rho=RHO))
            for n in (10, 25, 100)
        ],
        "probability flow, Heun": [
            (
                score_evaluations("probability_flow", n),
                lambda u, p, g, n=n: probability_flow_sampling(score, p, sde, n, rho=RHO),
            )
            for n in (5, 10, 25, 50)
        ],
        "probability flow, multistep": [
            (
                n,
                lambda u, p, g, n=n: probability_flow_sampling(
                    score, p, sde, n, "multistep", rho=MULTISTEP_RHO
                ),
            )
            for n in (10, 20, 50)
        ],
    }


def sampler_pareto(ctx: Context, path: Path) -> None:
    """Weight error and energy distance against score evaluations, every sampler, exact score, two modes."""
    mixture, sde, n = two_gaussians(), VESDE(SIGMA_MIN, SIGMA_MAX), ctx.config.n_particles
    reference = mixture.sample(n, generator=ctx.generator(20))
    exact = mixture.sample(n, generator=ctx.generator(21))
    floor = (
        (mode_weights(mixture, exact) - mixture.weights).abs().max().item(),
        energy_distance(exact, reference),
    )
    fig, axes = new_figure(2, colorbar=False)
    for family, runs in _families(mixture.score, sde).items():
        points = []
        for evaluations, run in runs:
            g = ctx.generator(22)
            x = run(uniform_in_box(mixture, n, g), sde.prior_sample(n, 2, g), g)
            points.append(
                (
                    evaluations,
                    (mode_weights(mixture, x) - mixture.weights).abs().max().item(),
                    energy_distance(x, reference),
                )
            )
        xs, errors, distances = (np.array(v) for v in zip(*points, strict=True))
        style = {"color": LINE_COLORS[family], "marker": "o", "markersize": 4, "label": family}
        axes[0].plot(xs, np.maximum(errors, 1e-4), **style)
        axes[1].plot(xs, np.maximum(distances, 1e-4), **style)
    labels = ("max |weight - truth|", "squared energy distance to exact samples")
    for ax, level, label in zip(axes, floor, labels, strict=True):
        ax.axhline(
            max(level, 1e-4),
            color="black",
            linestyle=":",
            linewidth=1,
            label="exact i.i.d. samples",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("score evaluations per particle")
        ax.set_ylabel(label)
        ax.grid(True, which="major", alpha=0.3)
    axes[0].axhline(0.02, color="#b8312f", linewidth=0.8, alpha=0.5)
    axes[0].set_title(
        f"two modes, exact score, {n} particles: weight error\n(values below 1e-4 drawn at 1e-4; "
        "red: the paper's 0.02)",
        fontsize=10,
    )
    axes[1].set_title(
        f"energy distance to {n} exact samples\nSDE, ODE: from N(0, {SIGMA_MAX:g}² I); Langevin: "
        "from the box",
        fontsize=10,
    )
    axes[1].legend(fontsize=7, loc="upper right")
    save_png(fig, path)


def probability_flow(ctx: Context, path: Path) -> None:
    """Probability-flow (Heun) paths beside reverse-SDE paths from the same prior draws, zooming in with sigma."""
    mixture, sde, g = two_gaussians(), VESDE(SIGMA_MIN, SIGMA_MAX), ctx.generator(23)
    steps, fine = (
        min(max(ctx.config.n_frames - 1, 2), 40),
        4,
    )  # frames at EDM's grid; the SDE: 4 steps per frame
    start = sde.prior_sample(
        min(ctx.config.n_particles, 400), 2, g
    )  # few: every pixel changes in every frame
    sigmas = sde.grid(steps, rho=RHO)
    ode = probability_flow_sampling(
        mixture.score, start, sde, steps, rho=RHO, record=list(range(steps + 1))
    )
    stochastic = reverse_sde_sampling(
        mixture.score,
        start,
        sde,
        steps * fine,
        g,
        grid="edm",
        rho=RHO,
        record=list(range(0, steps * fine + 1, fine)),
    )
    fig, axes = new_figure(2)
    panels = [
        Panel(ax, (-1, 1, -1, 1), particles=True, resolution=min(ctx.config.resolution, 120))
        for ax in axes
    ]
    add_colorbar(fig, panels[0])
    traced = min(12, len(start))  # particles whose paths are drawn
    lines = [
        [
            ax.plot([], [], color=COLORS["reference"], linewidth=0.7, alpha=0.8)[0]
            for _ in range(traced)
        ]
        for ax in axes
    ]
    anim = Animation(fig, [])
    low, high = mixture.box()
    centre, smallest = (
        (low + high) / 2,
        (high - low).max().item() / 2 * 1.15,
    )  # the data's window, where it ends
    for k, sigma in enumerate(sigmas):
        half = max(smallest, 3.0 * sigma)
        area = (
            centre[0].item() - half,
            centre[0].item() + half,
            centre[1].item() - half,
            centre[1].item() + half,
        )
        for panel, trajectory, paths, name in zip(
            panels,
            (ode, stochastic),
            lines,
            ("probability-flow ODE (Heun)", "reverse SDE"),
            strict=True,
        ):
            panel.ax.set_xlim(area[0], area[1])
            panel.ax.set_ylim(area[2], area[3])
            panel.extent = area
            panel.image.set_extent(area)
            pixels = torch.stack(
                torch.meshgrid(
                    torch.linspace(area[0], area[1], panel.resolution),
                    torch.linspace(area[2], area[3], panel.resolution),
                    indexing="xy",
                )
            )
            panel.set_density(mixture.log_prob(pixels.reshape(2, -1).T, sigma))
            frames = trajectory.frames[
                max(k - TRAIL, 0) : k + 1
            ]  # (<= TRAIL + 1, n, 2), the recent path
            for i, line in enumerate(paths):
                line.set_data(frames[:, i, 0].numpy(), frames[:, i, 1].numpy())
            panel.set_particles(frames[-1])
            panel.set_title(f"{name}, σ = {nice(sigma)}\n" + weights_text(mixture, frames[-1]))
        anim.redraw_background()  # the view and the density change in every frame
        anim.capture(ctx.config.frame_ms if k < steps else 3 * ctx.config.frame_ms)
    anim.save(path)


def ode_likelihood(ctx: Context, path: Path) -> None:
    """The ODE log-likelihood against log p_sigma_min, exact score and trained network; and its convergence."""
    mixture, model = two_gaussians(), ctx.model("ncsn_two_gaussians")
    n = min(ctx.config.n_particles, 1000)
    g = ctx.generator(24)
    x = mixture.sample(n, generator=g) + SIGMA_MIN * torch.randn(n, 2, generator=g)
    x = torch.cat(
        [x, uniform_in_box(mixture, n // 4, g)]
    )  # and some points where the density is low
    exact = mixture.log_prob(x, SIGMA_MIN)
    wide, narrow = VESDE(SIGMA_MIN, SIGMA_MAX), VESDE(SIGMA_MIN, model.sigmas[0].item())
    steps = (8, 16, 32, 64, 128) if ctx.config.n_frames > 10 else (8, 32)
    cases = {
        f"exact score, σ_max = {SIGMA_MAX:g}": (mixture.score, wide),
        f"trained NCSN, σ_max = {nice(narrow.sigma_max)}": (model, narrow),
    }
    fig, axes = new_figure(3, colorbar=False)
    for (label, (score, sde)), ax, color in zip(
        cases.items(), axes[:2], (COLORS["particles"], "#b8312f"), strict=True
    ):
        lls = [ode_log_likelihood(score, x, sde, k) for k in steps]  # (n + n // 4,) each
        gaps, ll = [(one - exact).abs()[:n].mean().item() for one in lls], lls[-1]
        ax.scatter(exact.numpy(), ll.numpy(), s=3, color=color, linewidths=0)
        low, high = exact.min().item(), exact.max().item()
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        gap = (ll - exact)[:n]
        ax.set_title(
            f"{label}, {steps[-1]} Heun steps\non p_σ samples: mean gap {gap.mean().item():+.3f}, "
            f"mean |gap| {gap.abs().mean().item():.3f} nats",
            fontsize=10,
        )
        ax.set_xlabel(f"exact log p_σ(x), σ = {SIGMA_MIN:g}")
        ax.set_ylabel("ODE log-likelihood")
        axes[2].plot(steps, gaps, marker="o", color=color, label=label)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("Heun steps (2 score evaluations each)")
    axes[2].set_ylabel("mean |ODE - exact| on p_σ samples (nats)")
    axes[2].set_title(
        "convergence: Heun's error falls 4x per doubling;\nthe network's floor is the prior's mismatch",
        fontsize=10,
    )
    axes[2].legend(fontsize=8)
    axes[2].grid(True, which="major", alpha=0.3)
    save_png(fig, path)
