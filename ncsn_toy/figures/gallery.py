"""The gallery: every figure of ``python -m ncsn_toy render``, by file name, and :func:`render`.

Each figure is a function ``(ctx, path) -> None``: the still images are in
:mod:`~ncsn_toy.figures.stills`, the GIFs in :mod:`~ncsn_toy.figures.animations`, what they
share in :mod:`~ncsn_toy.figures.parts`, and all of them draw through
:mod:`~ncsn_toy.figures.plotting`. Networks come from the committed checkpoints (their training
animations replay the fields recorded while they were trained), so rendering trains nothing
unless asked to (``retrain``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from . import animations, ddpm, sde, stills, weights_along, zoo
from .parts import Context, RenderConfig

__all__ = ["FIGURES", "RenderConfig", "render"]

FIGURES: dict[str, Callable[[Context, Path], None]] = {
    "forward_noising.gif": animations.forward_noising,
    "langevin_exact_score.gif": animations.langevin_exact_score,
    "score_field_mixture.png": stills.score_field_mixture,
    "score_field_components.png": stills.score_field_components,
    "score_network_training.gif": animations.score_network_training,
    "langevin_score_network.png": stills.langevin_score_network,
    "noise_conditional_fields.png": stills.noise_conditional_fields,
    "noise_conditional_training.gif": animations.noise_conditional_training,
    "annealed_langevin_two_gaussians.gif": animations.annealed_langevin_two_gaussians,
    "annealed_langevin_four_gaussians.gif": animations.annealed_langevin_four_gaussians,
    "sampler_comparison.png": stills.sampler_comparison,
    "score_error.png": stills.score_error,
    "sampler_pareto.png": sde.sampler_pareto,
    "probability_flow.gif": sde.probability_flow,
    "ode_likelihood.png": sde.ode_likelihood,
    "ncsn_vs_ddpm.gif": ddpm.ncsn_vs_ddpm,
    "ddim_path.png": ddpm.ddim_path,
    "weights_along_the_run.png": weights_along.weights_along_the_run,
    # targets.png, score_error_objectives.png, annealed_langevin_{ring,grid,spiral}.gif
    **zoo.ZOO_FIGURES,
}


def render(
    out: str | Path = "gif",
    config: RenderConfig | None = None,
    *,
    only: list[str] | None = None,
    progress: bool = True,
    between: Callable[[], object] | None = None,
    targets: Sequence[str] = (),
) -> list[tuple[Path, int]]:
    """Render the figures (all, or ``only`` these names) into ``out``; return (path, bytes) pairs.

    ``config`` defaults to ``RenderConfig()`` (the full-size gallery); ``between()`` runs before
    each figure (the commands refresh their thread policy there); ``targets``: also
    ``annealed_langevin_<target>.gif`` for these names of ``TARGETS`` (fitted on the spot when no
    ``checkpoints/ncsn_<target>.pt`` exists).
    """
    config = config or RenderConfig()
    stems = {Path(name).stem: name for name in FIGURES}
    # a name may be given with or without its extension: "x" or "x.gif"
    names = [stems.get(name, name) for name in only] if only else list(FIGURES)
    unknown = sorted(set(names) - set(FIGURES))
    if unknown:
        raise ValueError(f"unknown figure(s) {unknown}; expected names from {list(FIGURES)}")
    # annealed_langevin_<target>.gif for each of ``targets``
    extra = zoo.target_figures(list(targets))
    # a target of the gallery keeps the gallery's figure
    figures = {**extra, **FIGURES}
    names += [name for name in extra if name not in names]
    out = Path(out)
    folders = [str(out / name) for name in names if (out / name).is_dir()]
    # checked before any work: a figure cannot replace a folder
    if folders:
        raise ValueError(f"cannot write figures over folders: {', '.join(folders)}")
    ctx = Context(config)
    written = []
    for name in tqdm(names, desc="render", disable=not progress, leave=False):
        if between is not None:
            between()
        path = out / name
        figures[name](ctx, path)
        written.append((path, path.stat().st_size))
    return written
