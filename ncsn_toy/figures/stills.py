"""The gallery's still images (PNGs): score fields, trained networks, the paper's Figs. 2 and 3.

Each is a function ``(ctx, path) -> None``, registered in :data:`ncsn_toy.figures.gallery.FIGURES`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..metrics import relative_score_error
from ..noise_levels import geometric_sigmas
from ..samplers import annealed_langevin_dynamics, langevin_dynamics
from ..targets import two_gaussians, uniform_in_box
from .parts import Context, extent, field_panel, score_error_image, weights_text
from .plotting import COLORS, FieldGrid, Panel, add_colorbar, new_figure, nice, save_png

__all__ = [
    "score_field_mixture",
    "score_field_components",
    "langevin_score_network",
    "noise_conditional_fields",
    "sampler_comparison",
    "score_error",
]


def score_field_mixture(ctx: Context, path: Path) -> None:
    """The exact score field, beside the prior-weighted average drawn by mistake.

    The original notebook drew the components' scores averaged with the prior weights w_k; the
    score weighs them with the responsibilities r_k(x) instead.
    """
    mixture = two_gaussians()
    fig, axes = new_figure(2)
    exact = field_panel(axes[0], ctx, mixture, 0.0, arrow_scale=3.0)
    exact.set_field(mixture.score(exact.grid.points))
    exact.set_title(
        "exact score ∇log p(x) = Σ_k r_k(x) ∇log N_k(x)\n(weighted by responsibilities)"
    )
    wrong = field_panel(axes[1], ctx, mixture, 0.0, arrow_scale=3.0, arrow_color="#b8312f")
    pts = wrong.grid.points
    # (m, 2): sum_k w_k (-(x - mu_k)), the components' scores (identity covariances) by prior weight
    by_prior = -(mixture.weights[None, :, None] * (pts[:, None, :] - mixture.means)).sum(1)
    wrong.set_field(by_prior)
    wrong.set_title(
        "wrong: Σ_k w_k ∇log N_k(x)\n(prior-weighted, as the original notebook drew it)"
    )
    add_colorbar(fig, exact)
    save_png(fig, path)


def score_field_components(ctx: Context, path: Path) -> None:
    """Each component's own field, and the field of the most likely component."""
    mixture = two_gaussians()
    fig, axes = new_figure(3)
    panels = [field_panel(ax, ctx, mixture, 0.0, arrow_scale=3.0) for ax in axes]
    pts = panels[0].grid.points
    component = -(pts[:, None, :] - mixture.means)  # (m, K, 2), identity covariances
    for k, panel in enumerate(panels[:2]):
        panel.set_field(component[:, k])
        mu = ", ".join(f"{v:g}" for v in mixture.means[k].tolist())
        panel.set_title(f"component {k}: ∇log N(x; ({mu}), I)")
    likeliest = mixture.responsibilities(pts).argmax(dim=1)
    panels[2].set_field(component[torch.arange(len(pts)), likeliest])
    panels[2].set_title("score of the most likely component\n(≈ exact away from the boundary)")
    add_colorbar(fig, panels[0])
    save_png(fig, path)


def langevin_score_network(ctx: Context, path: Path) -> None:
    """ScoreNet's field before and after training, and Langevin dynamics with it."""
    mixture = two_gaussians()
    model = ctx.model("score_net_two_gaussians")
    # the fields recorded while it was trained, and the noise level it was trained at
    snap = model.metadata["training"]
    sigma = model.metadata["train"]["sigma"]
    grid = FieldGrid(snap["extent"], snap["grid"])
    fig, axes = new_figure(3)
    panels = [
        Panel(
            ax,
            snap["extent"],
            grid=grid,
            resolution=ctx.config.resolution,
            arrow_scale=3.0,
            particles=(i == 2),
            arrow_color=COLORS["faint_arrows"] if i == 2 else COLORS["arrows"],
        )
        for i, ax in enumerate(axes)
    ]
    for panel in panels:
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
    panels[0].set_field(snap["fields"][0, 0].float())
    panels[0].set_title(
        "ScoreNet before training\n(the original notebook's network, seeded weights)"
    )
    panels[1].set_field(snap["fields"][-1, 0].float())
    panels[1].set_title(
        f"after {snap['steps'][-1]} Adam steps\n(denoising score matching, σ = {sigma:g})"
    )
    g = ctx.generator(3)
    x = langevin_dynamics(
        model,
        uniform_in_box(mixture, ctx.config.n_particles, g),
        model.metadata["step_size"],
        model.metadata["n_steps"],
        g,
    )
    panels[2].set_field(snap["fields"][-1, 0].float())
    panels[2].set_particles(x)
    panels[2].set_title(
        f"Langevin with it (ε={model.metadata['step_size']:g}, "
        f"T={model.metadata['n_steps']})\n" + weights_text(mixture, x)
    )
    add_colorbar(fig, panels[0])
    save_png(fig, path)


def noise_conditional_fields(ctx: Context, path: Path) -> None:
    """The trained field σ·s(x, σ) at five of its noise levels, above the exact one."""
    mixture = two_gaussians()
    model = ctx.model("ncsn_two_gaussians")
    sigmas = model.sigmas.tolist()
    # five levels evenly spread from the largest to the smallest
    picks = sorted({round(i * (len(sigmas) - 1) / 4) for i in range(5)})
    fig, axes = new_figure(len(picks), 2)
    top = None
    for col, index in enumerate(picks):
        sigma = sigmas[index]
        learned = field_panel(axes[col], ctx, mixture, sigma, arrow_scale=0.5)
        exact = field_panel(axes[len(picks) + col], ctx, mixture, sigma, arrow_scale=0.5)
        with torch.no_grad():
            learned.set_field(sigma * model(learned.grid.points, sigma))
        exact.set_field(sigma * mixture.score(exact.grid.points, sigma))
        at_sigma = functools.partial(model, sigma=sigma)
        error = relative_score_error(at_sigma, mixture, sigma, 4000, ctx.generator(4)).overall
        learned.set_title(f"learned σ·s(x, σ), σ = {nice(sigma)}\nrelative error {error:.3f}")
        exact.set_title(f"exact σ·∇log p_σ(x), σ = {nice(sigma)}")
        top = top or learned
    add_colorbar(fig, top)
    save_png(fig, path)


def sampler_comparison(ctx: Context, path: Path) -> None:
    """The paper's Fig. 3: exact samples, Langevin and annealed Langevin with the exact score."""
    mixture = two_gaussians()
    g = ctx.generator(6)
    x0 = uniform_in_box(mixture, ctx.config.n_particles, g)
    # drawn in this order from g: the exact samples, then each sampler's noise
    exact = mixture.sample(ctx.config.n_particles, generator=g)
    langevin = langevin_dynamics(mixture.score, x0, 0.1, 1000, g)
    sigmas = geometric_sigmas(20.0, 1.0, 10)
    annealed = annealed_langevin_dynamics(mixture.score, x0, sigmas, 0.1, 100, g)
    runs = {
        "exact i.i.d. samples": exact,
        "Langevin dynamics, exact score\n(ε = 0.1, T = 1000)": langevin,
        "annealed Langevin, exact score\n(σ 20→1, L = 10, T = 100, ε = 0.1)": annealed,
    }
    fig, axes = new_figure(3)
    panels = [
        Panel(ax, extent(mixture), particles=True, resolution=ctx.config.resolution) for ax in axes
    ]
    for panel, (label, x) in zip(panels, runs.items(), strict=True):
        panel.set_density(mixture.log_prob(panel.pixels))
        panel.set_particles(x)
        panel.set_title(label + "\n" + weights_text(mixture, x))
    add_colorbar(fig, panels[0])
    save_png(fig, path)


def score_error(ctx: Context, path: Path) -> None:
    """The paper's Fig. 2: the learned score is accurate only where the data is."""
    mixture = two_gaussians()
    model = ctx.model("score_net_two_gaussians")
    sigma = model.metadata["train"]["sigma"]
    fig, axes = new_figure(3)
    exact = field_panel(axes[0], ctx, mixture, sigma, arrow_scale=3.0)
    exact.set_field(mixture.score(exact.grid.points, sigma))
    exact.set_title(f"exact score ∇log p_σ(x), σ = {sigma:g}")
    learned = field_panel(axes[1], ctx, mixture, sigma, arrow_scale=3.0)
    with torch.no_grad():
        learned.set_field(model(learned.grid.points))
    learned.set_title("learned score s_θ(x) (ScoreNet, DSM)")
    r = ctx.config.resolution
    errors = Panel(axes[2], extent(mixture), density=False, resolution=r)
    image = score_error_image(errors, model, mixture, sigma, learned.pixels, r)
    numbers = relative_score_error(model, mixture, sigma, 20_000, ctx.generator(7))
    errors.set_title(
        f"squared error |s_θ − ∇log p_σ|² (teal: log p_σ = −8, −5, −3)\n"
        f"relative error {numbers.high_density:.3f} inside, {numbers.low_density:.2f} outside\n"
        "the region holding 99% of p_σ",
        fontsize=9,
    )
    add_colorbar(fig, exact, axes[:2])
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="log10 squared error", pad=0.01)
    save_png(fig, path)
