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
from functools import partial
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

# The VE SDE and the probability flow's grids on two modes, as in the tables of ``reproduce``
# (``ncsn_toy.commands.sde_study.SETTINGS``): Heun's grid has rho = RHO, the multistep solver's
# rho = MULTISTEP_RHO.
SIGMA_MAX = 800.0
SIGMA_MIN = 0.2
RHO = 6.0
MULTISTEP_RHO = 10.0
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

# run(x_uniform (n, 2), x_prior (n, 2), generator) -> (n, 2) samples
Run = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def _families(score: Callable, sde: VESDE) -> dict[str, list[tuple[int, Run]]]:
    """(score evaluations, run) for each sampler family at a few sizes, exact score.

    The Langevin family starts from ``x_uniform`` (the box), the continuous-time samplers from
    ``x_prior`` (N(0, sigma_max^2 I)).
    """
    paper = geometric_sigmas(20.0, 1.0, 10)  # the paper's noise levels (Fig. 3)

    def langevin(n_steps, uniform, prior, g):
        return langevin_dynamics(score, uniform, 0.1, n_steps, g)

    def annealed(n_steps_each, uniform, prior, g):
        return annealed_langevin_dynamics(score, uniform, paper, 0.1, n_steps_each, g)

    def consistent(n_levels, uniform, prior, g):
        sigmas = geometric_sigmas(20.0, 1.0, n_levels)
        # eta = 2 (1 - gamma) with gamma = sigma_{i+1} / sigma_i the ratio of the levels: above
        # the 1 - gamma the sampler needs, and at most sigma_L^2 = 1
        step_size = min(1.0, 2 * (1 - (1 / 20) ** (1 / (n_levels - 1))))
        return consistent_annealed_sampling(score, uniform, sigmas, step_size, g)

    def reverse_sde(n_steps, uniform, prior, g):
        return reverse_sde_sampling(score, prior, sde, n_steps, g)

    def predictor_corrector(n_steps, uniform, prior, g):
        return predictor_corrector_sampling(score, prior, sde, n_steps, generator=g)

    def euler(n_steps, uniform, prior, g):
        return probability_flow_sampling(score, prior, sde, n_steps, "euler", rho=RHO)

    def heun(n_steps, uniform, prior, g):
        return probability_flow_sampling(score, prior, sde, n_steps, rho=RHO)

    def multistep(n_steps, uniform, prior, g):
        return probability_flow_sampling(score, prior, sde, n_steps, "multistep", rho=MULTISTEP_RHO)

    def heun_evaluations(n_steps):
        return score_evaluations("probability_flow", n_steps)

    return {
        "Langevin": [(n, partial(langevin, n)) for n in (10, 100, 1000)],
        "annealed Langevin": [(10 * n, partial(annealed, n)) for n in (2, 10, 100, 200)],
        "consistent annealed": [(n, partial(consistent, n)) for n in (10, 20, 50, 100)],
        "reverse SDE": [(n, partial(reverse_sde, n)) for n in (20, 50, 200)],
        "predictor-corrector": [(2 * n, partial(predictor_corrector, n)) for n in (10, 25, 100)],
        "probability flow, Euler": [(n, partial(euler, n)) for n in (10, 25, 100)],
        "probability flow, Heun": [
            (heun_evaluations(n), partial(heun, n)) for n in (5, 10, 25, 50)
        ],
        "probability flow, multistep": [(n, partial(multistep, n)) for n in (10, 20, 50)],
    }


def sampler_pareto(ctx: Context, path: Path) -> None:
    """Weight error and energy distance against score evaluations: every sampler, exact score.

    On two modes; the Langevin samplers start from the box, the continuous-time ones from the
    prior.
    """
    mixture = two_gaussians()
    sde = VESDE(SIGMA_MIN, SIGMA_MAX)
    n = ctx.config.n_particles
    reference = mixture.sample(n, generator=ctx.generator(20))
    # exact samples against the reference: the lowest values a sampler can expect
    exact = mixture.sample(n, generator=ctx.generator(21))
    exact_weight_error = (mode_weights(mixture, exact) - mixture.weights).abs().max().item()
    exact_distance = energy_distance(exact, reference)
    floor = (exact_weight_error, exact_distance)
    fig, axes = new_figure(2, colorbar=False)
    for family, runs in _families(mixture.score, sde).items():
        evaluations = []
        errors = []
        distances = []
        for evaluations_of_run, run in runs:
            g = ctx.generator(22)
            x = run(uniform_in_box(mixture, n, g), sde.prior_sample(n, 2, g), g)
            evaluations.append(evaluations_of_run)
            errors.append((mode_weights(mixture, x) - mixture.weights).abs().max().item())
            distances.append(energy_distance(x, reference))
        xs = np.array(evaluations)
        style = {"color": LINE_COLORS[family], "marker": "o", "markersize": 4, "label": family}
        # log axes: values below 1e-4 are drawn at 1e-4
        axes[0].plot(xs, np.maximum(np.array(errors), 1e-4), **style)
        axes[1].plot(xs, np.maximum(np.array(distances), 1e-4), **style)
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
    """Probability-flow (Heun) paths beside reverse-SDE paths from the same prior draws.

    The view zooms in with sigma, down to the data's window.
    """
    mixture = two_gaussians()
    sde = VESDE(SIGMA_MIN, SIGMA_MAX)
    g = ctx.generator(23)
    # one frame per step of EDM's grid; the SDE takes `fine` steps per frame
    steps = min(max(ctx.config.n_frames - 1, 2), 40)
    fine = 4
    # few particles: every pixel changes in every frame
    start = sde.prior_sample(min(ctx.config.n_particles, 400), 2, g)
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
    resolution = min(ctx.config.resolution, 120)
    panels = [Panel(ax, (-1, 1, -1, 1), particles=True, resolution=resolution) for ax in axes]
    add_colorbar(fig, panels[0])
    traced = min(12, len(start))  # particles whose paths are drawn
    lines = []  # per panel, one line per traced particle
    for ax in axes:
        lines.append([_path_line(ax) for _ in range(traced)])
    anim = Animation(fig, [])
    low, high = mixture.box()
    # the data's window, where the zoom ends
    centre = (low + high) / 2
    smallest = (high - low).max().item() / 2 * 1.15
    names = ("probability-flow ODE (Heun)", "reverse SDE")
    for k, sigma in enumerate(sigmas):
        half = max(smallest, 3.0 * sigma)
        area = (
            centre[0].item() - half,
            centre[0].item() + half,
            centre[1].item() - half,
            centre[1].item() + half,
        )
        for panel, trajectory, paths, name in zip(
            panels, (ode, stochastic), lines, names, strict=True
        ):
            _zoom(panel, area)
            pixels = torch.stack(
                torch.meshgrid(
                    torch.linspace(area[0], area[1], panel.resolution),
                    torch.linspace(area[2], area[3], panel.resolution),
                    indexing="xy",
                )
            )
            panel.set_density(mixture.log_prob(pixels.reshape(2, -1).T, sigma))
            # (<= TRAIL + 1, n, 2), the recent path
            frames = trajectory.frames[max(k - TRAIL, 0) : k + 1]
            for i, line in enumerate(paths):
                line.set_data(frames[:, i, 0].numpy(), frames[:, i, 1].numpy())
            panel.set_particles(frames[-1])
            panel.set_title(f"{name}, σ = {nice(sigma)}\n" + weights_text(mixture, frames[-1]))
        # the view and the density change in every frame
        anim.redraw_background()
        # the last frame, at sigma_min, is shown longer
        anim.capture(ctx.config.frame_ms if k < steps else 3 * ctx.config.frame_ms)
    anim.save(path)


def _path_line(ax):
    """An empty line for the recent path of one particle."""
    return ax.plot([], [], color=COLORS["reference"], linewidth=0.7, alpha=0.8)[0]


def _zoom(panel: Panel, area: tuple[float, float, float, float]) -> None:
    """Move the panel's view, and the density image's extent, to ``area``."""
    panel.ax.set_xlim(area[0], area[1])
    panel.ax.set_ylim(area[2], area[3])
    panel.extent = area
    panel.image.set_extent(area)


def ode_likelihood(ctx: Context, path: Path) -> None:
    """The ODE log-likelihood against log p_sigma_min, and its convergence with the steps.

    With the exact score and with the trained network.
    """
    mixture = two_gaussians()
    model = ctx.model("ncsn_two_gaussians")
    n = min(ctx.config.n_particles, 1000)
    g = ctx.generator(24)
    # samples of p_sigma_min, and some points where the density is low
    x = mixture.sample(n, generator=g) + SIGMA_MIN * torch.randn(n, 2, generator=g)
    x = torch.cat([x, uniform_in_box(mixture, n // 4, g)])
    exact = mixture.log_prob(x, SIGMA_MIN)
    # the exact score reaches any sigma_max; the network only its own largest level
    wide = VESDE(SIGMA_MIN, SIGMA_MAX)
    narrow = VESDE(SIGMA_MIN, model.sigmas[0].item())
    steps = (8, 16, 32, 64, 128) if ctx.config.n_frames > 10 else (8, 32)
    cases = [
        (f"exact score, σ_max = {SIGMA_MAX:g}", mixture.score, wide, COLORS["particles"]),
        (f"trained NCSN, σ_max = {nice(narrow.sigma_max)}", model, narrow, "#b8312f"),
    ]
    fig, axes = new_figure(3, colorbar=False)
    for ax, (label, score, sde, color) in zip(axes[:2], cases, strict=True):
        lls = [ode_log_likelihood(score, x, sde, k) for k in steps]  # (n + n // 4,) each
        # mean |gap| on the p_sigma samples, for each number of steps
        gaps = [(one - exact).abs()[:n].mean().item() for one in lls]
        ll = lls[-1]
        ax.scatter(exact.numpy(), ll.numpy(), s=3, color=color, linewidths=0)
        low = exact.min().item()
        high = exact.max().item()
        ax.plot([low, high], [low, high], color="black", linewidth=0.8)
        gap = (ll - exact)[:n]
        ax.set_title(
            f"{label}, {steps[-1]} Heun steps\n"
            f"on p_σ samples: mean gap {gap.mean().item():+.3f}, "
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
        "convergence: Heun's error falls 4x per doubling;\n"
        "the network's floor is the prior's mismatch",
        fontsize=10,
    )
    axes[2].legend(fontsize=8)
    axes[2].grid(True, which="major", alpha=0.3)
    save_png(fig, path)
