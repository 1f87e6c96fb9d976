"""The DDPM figures of the gallery: NCSN's and DDPM's noisings of the same data, and DDIM's path.

- :func:`ncsn_vs_ddpm`: the same data and the same noise z under the two noisings side by side,
  x + sigma z (variance exploding, NCSN) and sqrt(a) x + sqrt(1 - a) z (variance preserving,
  DDPM), which differ only by the factor sqrt(a) = 1 / sqrt(1 + sigma^2); then sampling back
  from the same draws, the reverse VE SDE beside DDPM's ancestral sampling, both exact;
- :func:`ddim_path`: DDIM's steps lying on the VE probability-flow ODE's paths after rescaling
  by sqrt(a), in DDPM's coordinates and in NCSN's, and DDIM converging to the ODE's endpoint at
  first order (it is Euler's method in sigma).

References: Ho et al., NeurIPS 2020; Song, Meng & Ermon, ICLR 2021; Song et al., ICLR 2021;
Karras et al., NeurIPS 2022 (EDM).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..ddpm import DDPMSchedule, ddim_sampling, ddim_timesteps, ddpm_sampling, exact_eps
from ..mixtures import GaussianMixture
from ..sde import VESDE, probability_flow_sampling, reverse_sde_sampling
from ..targets import grid_points, two_gaussians
from .parts import Context, extent, weights_text
from .plotting import COLORS, Animation, Panel, add_colorbar, new_figure, nice, save_png
from .sde import _path_line, _zoom

__all__ = ["ncsn_vs_ddpm", "ddim_path"]

# DDIM's steps drawn in the paths of ddim_path, and the ODE's Heun steps behind them
PATH_STEPS = 10
ODE_STEPS = 200
# Heun steps of the ODE's endpoint DDIM converges to (its own error is far below DDIM's)
REFERENCE_STEPS = 1000
# particles whose paths ddim_path draws
TRACED = 14


def _frame_steps(schedule: DDPMSchedule, n: int) -> list[int]:
    """About ``n`` integer steps of the schedule, increasing, evenly spaced in log sigma from
    sigma_0 to sigma_{T-1} (repeats dropped)."""
    low = math.log(schedule.sigmas[0].item())
    high = math.log(schedule.sigmas[-1].item())
    steps = []
    for k in range(n):
        sigma = math.exp(low + (high - low) * k / max(n - 1, 1))
        step = round(schedule.timestep(sigma))
        if step not in steps:
            steps.append(step)
    return steps


def _noised(mixture: GaussianMixture, schedule: DDPMSchedule, t: int | None) -> GaussianMixture:
    """The law of DDPM's x_t (``None``: the data itself)."""
    if t is None:
        return mixture
    return mixture.perturb(schedule.scales[t].item(), schedule.stds[t].item())


def _show(panel: Panel, area: tuple[float, float, float, float], law: GaussianMixture) -> None:
    """Move ``panel`` to ``area`` and draw ``law``'s density there."""
    _zoom(panel, area)
    pixels, _ = grid_points(area, panel.resolution)
    panel.set_density(law.log_prob(pixels))


def _ve_area(sigma: float, smallest: float) -> tuple[float, float, float, float]:
    """The view of the VE panel at ``sigma``: the data's window, widened to 3 sigma."""
    half = max(smallest, 3.0 * sigma)
    return (-half, half, -half, half)


def _sampling_back(
    mixture: GaussianMixture,
    schedule: DDPMSchedule,
    prior_draws: torch.Tensor,
    backward: list[int],
    g: torch.Generator,
):
    """DDPM from ``prior_draws`` and the reverse VE SDE from ``prior_draws`` / sqrt(a_{T-1}),
    both exact, recorded at the steps ``backward`` (decreasing) and at the end: DDPM's frames,
    the SDE's frames and the SDE's sigma at each frame."""
    last = schedule.n_steps - 1
    # DDPM: the frame after s updates sits at step T - 1 - s; the last one (s = T) at the data
    ddpm = ddpm_sampling(
        exact_eps(mixture, schedule),
        prior_draws,
        schedule,
        g,
        record=[last - t for t in backward] + [schedule.n_steps],
    )
    # the reverse VE SDE, sigma_{T-1} -> sigma_0 in T geometric steps, then Tweedie's step to
    # sigma = 0: at each frame the grid's level nearest DDPM's
    sde = VESDE(schedule.sigmas[0].item(), schedule.sigmas[last].item())
    grid = [*sde.grid(schedule.n_steps, "geometric"), 0.0]
    ratio = math.log(sde.sigma_max / sde.sigma_min)
    indices = [
        round(schedule.n_steps * math.log(sde.sigma_max / schedule.sigmas[t].item()) / ratio)
        for t in backward
    ]
    indices.append(schedule.n_steps + 1)
    reverse = reverse_sde_sampling(
        mixture.score,
        prior_draws / schedule.scales[last].item(),
        sde,
        schedule.n_steps,
        g,
        denoise=True,
        record=indices,
    )
    return ddpm.frames, reverse.frames, [grid[i] for i in indices]


def ncsn_vs_ddpm(ctx: Context, path: Path) -> None:
    """The two noisings of the same data side by side, then sampling back from the same draws."""
    mixture = two_gaussians()
    schedule = DDPMSchedule.linear()
    g = ctx.generator(31)
    n = min(ctx.config.n_particles, 1000)
    x0 = mixture.sample(n, generator=g)  # (n, 2)
    z = torch.randn(x0.shape, generator=g)  # (n, 2), the same noise for both
    steps = _frame_steps(schedule, max(ctx.config.n_frames // 2, 3))
    fig, axes = new_figure(2)
    resolution = min(ctx.config.resolution, 120)
    data_area = extent(mixture)
    ve = Panel(axes[0], data_area, particles=True, resolution=resolution)
    vp = Panel(axes[1], data_area, particles=True, resolution=resolution)
    add_colorbar(fig, vp)
    anim = Animation(fig, [])

    def frame(sigma: float, t: int | None, x_ve, x_vp, noising: bool, ms: int) -> None:
        """Both panels: the VE points at ``sigma``, the VP points at step ``t``."""
        area = _ve_area(sigma, data_area[1])
        _show(ve, area, mixture.perturb(1.0, sigma))
        _show(vp, data_area, _noised(mixture, schedule, t))
        ve.set_particles(x_ve)
        vp.set_particles(x_vp)
        scale = 1.0 if t is None else schedule.scales[t].item()
        step = "the data" if t is None else f"t = {t}"
        level = f"σ = {nice(sigma)} (view ±{nice(area[1])})"
        if noising:
            left = f"NCSN, variance exploding: x + σ z\nnoising, {level}\n"
            right = "DDPM, variance preserving: √ā x + √(1−ā) z\n"
            right += f"noising, {step}: the left × √ā\n"
            left += f"std of the points {x_ve.std().item():.3g}"
            right += f"std of the points {x_vp.std().item():.3g}, √ā = {scale:.3g}"
        else:
            left = f"NCSN: the reverse VE SDE, exact score\n{level}\n"
            right = f"DDPM: ancestral sampling, exact ε\n{step}, √ā = {scale:.3g}\n"
            left += weights_text(mixture, x_ve)
            right += weights_text(mixture, x_vp)
        ve.set_title(left, fontsize=9)
        vp.set_title(right, fontsize=9)
        anim.redraw_background()
        anim.capture(ms)

    ms = ctx.config.frame_ms
    frame(0.0, None, x0, x0, True, 3 * ms)
    for t in steps:
        sigma = schedule.sigmas[t].item()
        x_ve = x0 + sigma * z
        # sqrt(a) x + sqrt(1 - a) z = sqrt(a) (x + sigma z): the same points, scaled
        x_vp = schedule.scales[t].item() * x_ve
        frame(sigma, t, x_ve, x_vp, True, 3 * ms if t == steps[-1] else ms)
    # sampling back from the last noised points (steps[-1] = T - 1: DDPM's x_T), through the
    # frames' steps in reverse
    backward = list(reversed(steps[:-1]))
    ddpm, reverse, sigmas = _sampling_back(mixture, schedule, x_vp, backward, g)
    for k, t in enumerate([*backward, None]):
        frame(sigmas[k], t, reverse[k], ddpm[k], False, ms)
    anim.save(path)


def _ode_paths(
    mixture: GaussianMixture,
    schedule: DDPMSchedule,
    prior_draws: torch.Tensor,
    n_steps: int = ODE_STEPS,
):
    """The VE probability flow of ``prior_draws`` / sqrt(a_T) (Heun, ``n_steps`` steps of EDM's
    grid, then Tweedie's step to sigma = 0): frames ``(F, n, 2)`` and their sigmas ``(F,)``."""
    sde = VESDE(schedule.sigmas[0].item(), schedule.sigmas[-1].item())
    sigmas = [*sde.grid(n_steps), 0.0]
    flow = probability_flow_sampling(
        mixture.score,
        prior_draws / schedule.scales[-1].item(),
        sde,
        n_steps,
        denoise=True,
        record=list(range(n_steps + 2)),
    )
    return flow.frames, torch.tensor(sigmas, dtype=torch.float64)


def _ddim_path(mixture: GaussianMixture, schedule: DDPMSchedule, prior_draws: torch.Tensor, n: int):
    """DDIM (eta 0) with ``n`` steps: its frames ``(n + 1, m, 2)`` in DDPM's x, and the VE sigma
    and sqrt(a) of each (0 and 1 after the last step)."""
    steps = ddim_timesteps(schedule, n)
    run = ddim_sampling(
        exact_eps(mixture, schedule), prior_draws, schedule, n, record=list(range(n + 1))
    )
    sigmas = torch.tensor([*schedule.sigmas[steps].tolist(), 0.0], dtype=torch.float64)
    scales = torch.tensor([*schedule.scales[steps].tolist(), 1.0], dtype=torch.float64)
    return run.frames, sigmas, scales


def ddim_path(ctx: Context, path: Path) -> None:
    """DDIM's steps on the VE probability-flow ODE's paths, in x and in x / sqrt(a), and its
    first-order convergence to the ODE's endpoint."""
    mixture = two_gaussians(dtype=torch.float64)
    schedule = DDPMSchedule.linear()
    g = ctx.generator(32)
    prior_draws = torch.randn(TRACED, 2, generator=g, dtype=torch.float64)
    ode, ode_sigmas = _ode_paths(mixture, schedule, prior_draws)
    ddim, ddim_sigmas, ddim_scales = _ddim_path(mixture, schedule, prior_draws, PATH_STEPS)
    fig, axes = new_figure(3, colorbar=False)
    # DDPM's coordinates: the ODE's path times sqrt(a) = 1 / sqrt(1 + sigma^2)
    area = extent(mixture)
    panel = Panel(axes[0], area, resolution=min(ctx.config.resolution, 160))
    panel.set_density(mixture.log_prob(panel.pixels.double()))
    ode_scales = 1 / torch.sqrt(1 + ode_sigmas**2)  # (F,)
    in_x = ode * ode_scales[:, None, None]  # (F, n, 2)
    for i in range(TRACED):
        line = _path_line(axes[0])
        line.set_data(in_x[:, i, 0].numpy(), in_x[:, i, 1].numpy())
    axes[0].scatter(
        ddim[:, :, 0].flatten().numpy(),
        ddim[:, :, 1].flatten().numpy(),
        s=9,
        color=COLORS["particles"],
        zorder=3,
    )
    panel.set_title(
        f"DDPM's x: DDIM, {PATH_STEPS} steps (dots), on the VE\nODE's paths × √ā (lines), "
        "from N(0, I) to the data",
        fontsize=10,
    )
    # NCSN's coordinates: the first coordinate of x / sqrt(a) against sigma
    ax = axes[1]
    shown = ode_sigmas > 0  # the log axis ends at sigma_0; the step to 0 is Tweedie's
    for i in range(TRACED):
        ax.plot(
            ode_sigmas[shown].numpy(),
            ode[shown, i, 0].numpy(),
            color=COLORS["reference"],
            linewidth=0.8,
        )
    in_ve = ddim / ddim_scales[:, None, None]  # (n + 1, m, 2)
    dots = ddim_sigmas > 0
    ax.scatter(
        np.repeat(ddim_sigmas[dots].numpy(), TRACED),
        in_ve[dots, :, 0].flatten().numpy(),
        s=9,
        color=COLORS["particles"],
        zorder=3,
    )
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_yscale("symlog", linthresh=10)
    ax.set_xlabel("σ = √(1−ā) / √ā (sampling runs left to right)")
    ax.set_ylabel("first coordinate of x / √ā")
    ax.set_title(
        "\n".join(
            [
                "NCSN's x: the same DDIM steps ÷ √ā (dots) on",
                "the VE probability-flow ODE (Heun, lines)",
            ]
        ),
        fontsize=10,
    )
    ax.grid(True, which="major", alpha=0.3)
    _convergence(ctx, axes[2], mixture, schedule)
    save_png(fig, path)


def _convergence(ctx: Context, ax, mixture: GaussianMixture, schedule: DDPMSchedule) -> None:
    """Median distance between DDIM's output and the ODE's endpoint against DDIM's steps.

    The median, not the mean: a particle near the line between the modes can change mode with a
    small change of the path, which puts it 14 away and the mean of 1000 particles 0.014 up."""
    n = min(ctx.config.n_particles, 1000)
    prior_draws = torch.randn(n, 2, generator=ctx.generator(33), dtype=torch.float64)
    ode, _ = _ode_paths(mixture, schedule, prior_draws, REFERENCE_STEPS)
    counts = (5, 10, 20, 50, 100, 200, 500, 1000) if ctx.config.n_frames > 10 else (5, 20, 100)
    gaps = []
    for count in counts:
        out = ddim_sampling(exact_eps(mixture, schedule), prior_draws, schedule, count)
        gaps.append((out - ode[-1]).norm(dim=1).median().item())
    ax.plot(counts, gaps, marker="o", color=COLORS["particles"], label="DDIM (eta 0)")
    guide = [gaps[0] * counts[0] / count for count in counts]
    ax.plot(counts, guide, color="black", linestyle=":", linewidth=1, label="∝ 1 / steps")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("DDIM steps (one evaluation each)")
    ax.set_ylabel("median |DDIM − ODE| at the data")
    ax.set_title(
        f"Euler's order: 10x the steps, 10x closer\n({n} particles; the ODE: Heun, "
        f"{REFERENCE_STEPS} steps)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
