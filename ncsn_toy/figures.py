"""The figure set of ``python -m ncsn_toy render``: twelve figures, one renderer.

Each figure is a function ``(ctx, path) -> None`` registered in :data:`FIGURES` under its file
name; all of them draw through :mod:`ncsn_toy.plotting`. Networks come from the committed
checkpoints (their training animations replay the fields recorded while they were trained), so
rendering trains nothing unless asked to (``retrain``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .metrics import mode_weights, relative_score_error
from .mixtures import GaussianMixture, two_gaussians
from .noise_levels import geometric_sigmas
from .plotting import (
    COLORS,
    Animation,
    FieldGrid,
    Panel,
    add_colorbar,
    arrow_vectors,
    grid_extent,
    new_figure,
    nice,
    save_png,
)
from .recipes import DEFAULT_CHECKPOINTS, load_or_train
from .samplers import annealed_langevin_dynamics, langevin_dynamics

__all__ = ["RenderConfig", "FIGURES", "render"]


@dataclass(frozen=True)
class RenderConfig:
    """Sizes of a render; :meth:`fast` for tests."""

    n_particles: int = 2000  # particles in every sampler figure
    n_frames: int = 60  # frames of a sampler animation
    frame_ms: int = 80  # display time of one frame
    grid: int = 21  # arrows per side of a score field
    resolution: int = 240  # pixels per side of a density image
    seed: int = 0  # seeds the particles and the samplers
    checkpoints: Path = DEFAULT_CHECKPOINTS  # where the trained networks are
    retrain: bool = False  # train the networks instead of loading them

    @classmethod
    def fast(cls, **changes: object) -> RenderConfig:
        return cls(**{"n_particles": 300, "n_frames": 6, "grid": 11, "resolution": 48, **changes})


@dataclass
class Context:
    config: RenderConfig
    _models: dict = field(default_factory=dict)

    def model(self, name: str) -> nn.Module:
        if name not in self._models:
            self._models[name] = load_or_train(name, self.config.checkpoints, retrain=self.config.retrain,
                                               progress=False)
        return self._models[name]

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self.config.seed + offset)


# ---------------------------------------------------------------------------- shared pieces
def _extent(mixture: GaussianMixture) -> tuple[float, float, float, float]:
    low, high = mixture.box()
    return grid_extent(low, high, pad=0.15 * float((high - low).max()) / 2)


def _uniform_box(mixture: GaussianMixture, n: int, g: torch.Generator) -> torch.Tensor:
    low, high = mixture.box()
    return low + (high - low) * torch.rand(n, mixture.dim, generator=g)


def _weights_text(mixture: GaussianMixture, x: torch.Tensor) -> str:
    measured = "/".join(f"{w:.2f}" for w in mode_weights(mixture, x).tolist())
    truth = "/".join(f"{w:.2f}" for w in mixture.weights.tolist())
    return f"weights {measured} (truth {truth})"


def _field_panel(ax, ctx, mixture, sigma, extent=None, **kwargs) -> Panel:
    extent = extent or _extent(mixture)
    panel = Panel(ax, extent, grid=FieldGrid(extent, ctx.config.grid), resolution=ctx.config.resolution, **kwargs)
    panel.set_density(mixture.log_prob(panel.pixels, sigma))
    return panel


def _sampler_animation(ctx, path, mixture, trajectory, title: Callable[[int, int], str], density_sigma,
                       field_fn=None, arrow_scale: float = 3.0) -> None:
    """Particles of a recorded trajectory over the density (and field) of the current level."""
    fig, axes = new_figure(1)
    panel = _field_panel(axes[0], ctx, mixture, density_sigma(0), particles=True, arrow_scale=arrow_scale,
                         arrow_color=COLORS["faint_arrows"]) if field_fn else Panel(
        axes[0], _extent(mixture), particles=True, resolution=ctx.config.resolution)
    if field_fn is None:
        panel.set_density(mixture.log_prob(panel.pixels, density_sigma(0)))
    add_colorbar(fig, panel)
    anim = Animation(fig, [panel.scatter, panel.ax.title])
    shown_level = None
    for frame, step, level in zip(trajectory.frames, trajectory.steps.tolist(), trajectory.levels.tolist(),
                                  strict=True):
        if level != shown_level:  # the density and field change with the noise level only
            panel.set_density(mixture.log_prob(panel.pixels, density_sigma(level)))
            if field_fn is not None:
                panel.set_field(field_fn(panel.grid.points, level))
            anim.redraw_background()
            shown_level = level
        panel.set_particles(frame)
        panel.set_title(title(step, level) + "\n" + _weights_text(mixture, frame))
        anim.capture(ctx.config.frame_ms)
    anim.save(path)


# ---------------------------------------------------------------------------- the figures
def forward_noising(ctx: Context, path: Path) -> None:
    """Samples of p_sigma as sigma grows from 0 to 20: x + sigma z with fixed x and z."""
    mixture, g = two_gaussians(), ctx.generator(1)
    x = mixture.sample(ctx.config.n_particles, generator=g)
    z = torch.randn(x.shape, generator=g)
    fig, axes = new_figure(1)
    panel = Panel(axes[0], (-40, 40, -40, 40), particles=True, resolution=ctx.config.resolution)
    add_colorbar(fig, panel)
    anim = Animation(fig, [panel.image, panel.scatter, panel.ax.title])  # the density changes too
    for t in np.linspace(0, 1, ctx.config.n_frames):
        sigma = 20.0 * float(t) ** 2  # slow at first, where the picture changes most
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
        panel.set_particles(x + sigma * z)
        panel.set_title(f"forward noising: p_σ = p * N(0, σ² I), σ = {sigma:.2f}")
        anim.capture(ctx.config.frame_ms)
    anim.save(path)


def langevin_exact_score(ctx: Context, path: Path) -> None:
    """Langevin dynamics with the exact score from a uniform start: the weights come out wrong."""
    mixture, g = two_gaussians(), ctx.generator(2)
    x0 = _uniform_box(mixture, ctx.config.n_particles, g)
    traj = langevin_dynamics(mixture.score, x0, 0.1, 1000, g, record=ctx.config.n_frames)
    _sampler_animation(ctx, path, mixture, traj, lambda step, _: f"Langevin, exact score (ε=0.1): step {step}/1000",
                       lambda _: 0.0, lambda pts, _: mixture.score(pts))


def score_field_mixture(ctx: Context, path: Path) -> None:
    """The exact score field, and the prior-weighted average the seed drew by mistake."""
    mixture = two_gaussians()
    fig, axes = new_figure(2)
    right = _field_panel(axes[0], ctx, mixture, 0.0, arrow_scale=3.0)
    right.set_field(mixture.score(right.grid.points))
    right.set_title("exact score ∇log p(x) = Σ_k r_k(x) ∇log N_k(x)\n(weighted by responsibilities)")
    wrong = _field_panel(axes[1], ctx, mixture, 0.0, arrow_scale=3.0, arrow_color="#b8312f")
    pts = wrong.grid.points
    by_prior = -(mixture.weights[None, :, None] * (pts[:, None, :] - mixture.means)).sum(1)
    wrong.set_field(by_prior)
    wrong.set_title("wrong: Σ_k w_k ∇log N_k(x)\n(prior-weighted, the seed's figure)")
    add_colorbar(fig, right)
    save_png(fig, path)


def score_field_components(ctx: Context, path: Path) -> None:
    """Each component's own field, and the field of the most likely component."""
    mixture = two_gaussians()
    fig, axes = new_figure(3)
    panels = [_field_panel(ax, ctx, mixture, 0.0, arrow_scale=3.0) for ax in axes]
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


def _training_animation(ctx, path, model, mixture, label: str) -> None:
    """Replay the fields recorded while ``model`` was trained, beside the exact ones."""
    snap = model.metadata["training"]
    sigmas = snap["sigmas"] or [model.metadata["train"]["sigma"]]
    fields, losses = snap["fields"].float(), snap["losses"]
    n_cols = len(sigmas)
    fig, axes = new_figure(n_cols)
    grid = FieldGrid(snap["extent"], snap["grid"])
    panels = []
    for ax, sigma in zip(axes, sigmas, strict=True):
        panel = Panel(ax, snap["extent"], grid=grid, resolution=ctx.config.resolution, arrow_scale=0.5)
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
        exact = ax.quiver(*grid.points.T.numpy(), *_scaled(mixture.score(grid.points, sigma), sigma, grid).T,
                          angles="xy", scale_units="xy", scale=1.0, color=COLORS["reference"], alpha=0.55,
                          width=0.004, pivot="mid", zorder=1)
        exact.set_label("exact")
        panels.append(panel)
    add_colorbar(fig, panels[0])
    anim = Animation(fig, [a for p in panels for a in (p.arrows, p.ax.title)])
    steps = snap["steps"]
    for i, step in enumerate(steps):
        loss = losses[max(step - 50, 0):max(step, 1)].mean().item() if step else float("nan")
        for j, (panel, sigma) in enumerate(zip(panels, sigmas, strict=True)):
            panel.set_field(fields[i, j] * sigma)
            panel.set_title(f"{label}, σ = {nice(sigma)}: step {step}, loss {loss:.3g}\n"
                            "dark: learned σ·s(x, σ), teal: exact")
        anim.capture(2 * ctx.config.frame_ms if i else 600)
    anim.save(path)


def _scaled(field: torch.Tensor, sigma: float, grid: FieldGrid, scale: float = 0.5) -> np.ndarray:
    return arrow_vectors(field * sigma, grid.spacing, scale)


def score_network_training(ctx: Context, path: Path) -> None:
    model = ctx.model("score_net_two_gaussians")
    _training_animation(ctx, path, model, two_gaussians(), "ScoreNet (DSM)")


def noise_conditional_training(ctx: Context, path: Path) -> None:
    model = ctx.model("ncsn_two_gaussians")
    _training_animation(ctx, path, model, two_gaussians(), "NCSN")


def langevin_score_network(ctx: Context, path: Path) -> None:
    """ScoreNet's field before and after training, and Langevin dynamics with it."""
    mixture, model = two_gaussians(), ctx.model("score_net_two_gaussians")
    snap, sigma = model.metadata["training"], model.metadata["train"]["sigma"]
    grid = FieldGrid(snap["extent"], snap["grid"])
    fig, axes = new_figure(3)
    panels = [Panel(ax, snap["extent"], grid=grid, resolution=ctx.config.resolution, arrow_scale=3.0,
                    particles=(i == 2), arrow_color=COLORS["faint_arrows"] if i == 2 else COLORS["arrows"])
              for i, ax in enumerate(axes)]
    for panel in panels:
        panel.set_density(mixture.log_prob(panel.pixels, sigma))
    panels[0].set_field(snap["fields"][0, 0].float())
    panels[0].set_title("ScoreNet before training\n(the seed's network, seeded initial weights)")
    panels[1].set_field(snap["fields"][-1, 0].float())
    panels[1].set_title(f"after {snap['steps'][-1]} Adam steps\n(denoising score matching, σ = {sigma:g})")
    g = ctx.generator(3)
    x = langevin_dynamics(model, _uniform_box(mixture, ctx.config.n_particles, g), model.metadata["step_size"],
                          model.metadata["n_steps"], g)
    panels[2].set_field(snap["fields"][-1, 0].float())
    panels[2].set_particles(x)
    panels[2].set_title(f"Langevin with it (ε={model.metadata['step_size']:g}, "
                        f"T={model.metadata['n_steps']})\n" + _weights_text(mixture, x))
    add_colorbar(fig, panels[0])
    save_png(fig, path)


def noise_conditional_fields(ctx: Context, path: Path) -> None:
    """The trained field σ·s(x, σ) at five of its noise levels, above the exact one."""
    mixture, model = two_gaussians(), ctx.model("ncsn_two_gaussians")
    sigmas = model.sigmas.tolist()
    picks = sorted({round(i * (len(sigmas) - 1) / 4) for i in range(5)})
    fig, axes = new_figure(len(picks), 2)
    top = None
    for col, index in enumerate(picks):
        sigma = sigmas[index]
        learned = _field_panel(axes[col], ctx, mixture, sigma, arrow_scale=0.5)
        exact = _field_panel(axes[len(picks) + col], ctx, mixture, sigma, arrow_scale=0.5)
        with torch.no_grad():
            learned.set_field(sigma * model(learned.grid.points, sigma))
        exact.set_field(sigma * mixture.score(exact.grid.points, sigma))
        error = relative_score_error(lambda x, s=sigma: model(x, s), mixture, sigma, 4000, ctx.generator(4)).overall
        learned.set_title(f"learned σ·s(x, σ), σ = {nice(sigma)}\nrelative error {error:.3f}")
        exact.set_title(f"exact σ·∇log p_σ(x), σ = {nice(sigma)}")
        top = top or learned
    add_colorbar(fig, top)
    save_png(fig, path)


def _annealed_animation(ctx: Context, path: Path, name: str) -> None:
    model = ctx.model(name)
    mixture = GaussianMixture.from_dict(model.metadata["mixture"])
    sigmas, eps, steps = model.sigmas.tolist(), model.metadata["step_size"], model.metadata["n_steps_each"]
    g = ctx.generator(5)
    traj = annealed_langevin_dynamics(model, _uniform_box(mixture, ctx.config.n_particles, g), model.sigmas, eps,
                                      steps, g, record=ctx.config.n_frames)
    total = len(sigmas) * steps

    def field(points, level):
        with torch.no_grad():
            return sigmas[level] * model(points, sigmas[level])

    def title(step, level):
        return (f"annealed Langevin, trained NCSN: σ = {nice(sigmas[level])} "
                f"(level {level + 1}/{len(sigmas)}), step {step}/{total}")

    _sampler_animation(ctx, path, mixture, traj, title, lambda level: sigmas[level], field, arrow_scale=0.5)


def annealed_langevin_two_gaussians(ctx: Context, path: Path) -> None:
    _annealed_animation(ctx, path, "ncsn_two_gaussians")


def annealed_langevin_four_gaussians(ctx: Context, path: Path) -> None:
    _annealed_animation(ctx, path, "ncsn_four_gaussians")


def sampler_comparison(ctx: Context, path: Path) -> None:
    """The paper's Fig. 3: exact samples, Langevin and annealed Langevin with the exact score."""
    mixture, g = two_gaussians(), ctx.generator(6)
    x0 = _uniform_box(mixture, ctx.config.n_particles, g)
    runs = {
        "exact i.i.d. samples": mixture.sample(ctx.config.n_particles, generator=g),
        "Langevin dynamics, exact score\n(ε = 0.1, T = 1000)": langevin_dynamics(mixture.score, x0, 0.1, 1000, g),
        "annealed Langevin, exact score\n(σ 20→1, L = 10, T = 100, ε = 0.1)": annealed_langevin_dynamics(
            mixture.score, x0, geometric_sigmas(20.0, 1.0, 10), 0.1, 100, g),
    }
    fig, axes = new_figure(3)
    panels = [Panel(ax, _extent(mixture), particles=True, resolution=ctx.config.resolution) for ax in axes]
    for panel, (label, x) in zip(panels, runs.items(), strict=True):
        panel.set_density(mixture.log_prob(panel.pixels))
        panel.set_particles(x)
        panel.set_title(label + "\n" + _weights_text(mixture, x))
    add_colorbar(fig, panels[0])
    save_png(fig, path)


def score_error(ctx: Context, path: Path) -> None:
    """The paper's Fig. 2: the learned score is accurate only where the data is."""
    mixture, model = two_gaussians(), ctx.model("score_net_two_gaussians")
    sigma = model.metadata["train"]["sigma"]
    fig, axes = new_figure(3)
    exact = _field_panel(axes[0], ctx, mixture, sigma, arrow_scale=3.0)
    exact.set_field(mixture.score(exact.grid.points, sigma))
    exact.set_title(f"exact score ∇log p_σ(x), σ = {sigma:g}")
    learned = _field_panel(axes[1], ctx, mixture, sigma, arrow_scale=3.0)
    with torch.no_grad():
        learned.set_field(model(learned.grid.points))
    learned.set_title("learned score s_θ(x) (ScoreNet, DSM)")
    errors = Panel(axes[2], _extent(mixture), density=False, resolution=ctx.config.resolution)
    pixels = learned.pixels
    with torch.no_grad():
        err = (model(pixels) - mixture.score(pixels, sigma)).square().sum(1)
    r = ctx.config.resolution
    image = errors.ax.imshow(torch.log10(err + 1e-6).reshape(r, r).numpy(), origin="lower", extent=errors.extent,
                             cmap="magma_r", vmin=-3, vmax=2, zorder=0)
    errors.ax.contour(pixels[:, 0].reshape(r, r).numpy(), pixels[:, 1].reshape(r, r).numpy(),
                      mixture.log_prob(pixels, sigma).reshape(r, r).numpy(), levels=[-8.0, -5.0, -3.0],
                      colors=COLORS["reference"], linewidths=1.0)
    numbers = relative_score_error(model, mixture, sigma, 20_000, ctx.generator(7))
    errors.set_title(f"squared error; teal: log p_σ = -8, -5, -3\nrelative error {numbers.high_density:.3f} "
                     f"inside, {numbers.low_density:.2f} outside the 99% region")
    add_colorbar(fig, exact, axes[:2])
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="log10 squared error", pad=0.01)
    save_png(fig, path)


FIGURES: dict[str, Callable[[Context, Path], None]] = {
    "forward_noising.gif": forward_noising,
    "langevin_exact_score.gif": langevin_exact_score,
    "score_field_mixture.png": score_field_mixture,
    "score_field_components.png": score_field_components,
    "score_network_training.gif": score_network_training,
    "langevin_score_network.png": langevin_score_network,
    "noise_conditional_fields.png": noise_conditional_fields,
    "noise_conditional_training.gif": noise_conditional_training,
    "annealed_langevin_two_gaussians.gif": annealed_langevin_two_gaussians,
    "annealed_langevin_four_gaussians.gif": annealed_langevin_four_gaussians,
    "sampler_comparison.png": sampler_comparison,
    "score_error.png": score_error,
}


def render(out: str | Path = "gif", config: RenderConfig = RenderConfig(), *, only: list[str] | None = None,
           progress: bool = True) -> list[tuple[Path, int]]:
    """Render the figures (all, or ``only`` these names) into ``out``; return (path, bytes) pairs."""
    stems = {Path(name).stem: name for name in FIGURES}
    names = [stems.get(name, name) for name in only] if only else list(FIGURES)  # "x" or "x.gif"
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; expected names from {list(FIGURES)}")
    out = Path(out)
    ctx = Context(config)
    written = []
    for name in tqdm(names, desc="render", disable=not progress, leave=False):
        path = out / name
        FIGURES[name](ctx, path)
        written.append((path, path.stat().st_size))
    return written
