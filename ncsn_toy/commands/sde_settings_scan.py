"""The scan that chose the probability flow's settings.

Weight bias and spreads against sigma_max and rho, exact score.

Each setting runs once on 40x ``config.n_particles`` from the prior (seed 77, not the tables'
seeds), so that its weight error is mostly bias: Heun with 10 steps (19 score evaluations) against
sigma_max and rho, and the multistep solver with 20 steps against rho at the sigma_max of
:data:`~ncsn_toy.commands.sde_study.SETTINGS`. A larger rho (more steps at small sigma) widens
the modes: the two-mode rho of :data:`~ncsn_toy.commands.sde_study.SETTINGS` is the one whose
spreads come closest to p_sigma_min's sqrt(1 + sigma_min^2) = 1.020.

References: Song et al., ICLR 2021; Karras et al., NeurIPS 2022 (EDM, the grid's rho).
"""

from __future__ import annotations

from ..recipes import RECIPES
from ..sde import VESDE
from ..targets import target
from .measure import ReproduceConfig, quick_note
from .report import markdown_table
from .sde_study import BIAS_FACTOR, NETS, SETTINGS, flow_run, large_run, modes

__all__ = ["settings_scan", "format_settings_scan"]


def settings_scan(config: ReproduceConfig) -> list[dict]:
    """Exact score, one large run per setting: weight bias and within-mode spreads of Heun with 10
    steps against sigma_max and rho, and of the multistep solver with 20 steps against rho."""
    rows = []
    big = config.n_particles * BIAS_FACTOR
    for name, settings in SETTINGS.items():
        mixture = target(name)
        sigma_maxes = (RECIPES[NETS[name]].sigma_max, 100.0, 300.0, settings.sigma_max, 1200.0)
        for sigma_max in sigma_maxes:
            sde = VESDE(settings.sigma_min, sigma_max)
            for rho in (5.0, 6.0, 7.0, 10.0, 13.0):
                run = flow_run(mixture.score, sde, 10, "heun", rho)
                rows.append(
                    {
                        "mixture": name,
                        "solver": "Heun, 10 steps",
                        "sigma_max": sigma_max,
                        "rho": rho,
                        **large_run(run, mixture, sde, big),
                    }
                )
        sde = settings.sde()
        for rho in (6.0, 6.5, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0):
            run = flow_run(mixture.score, sde, 20, "multistep", rho)
            rows.append(
                {
                    "mixture": name,
                    "solver": "multistep, 20 steps",
                    "sigma_max": settings.sigma_max,
                    "rho": rho,
                    **large_run(run, mixture, sde, big),
                }
            )
    return rows


def format_settings_scan(result: dict) -> str:
    """The scan of a ``reproduce`` result, as Markdown ("" if the result has none)."""
    if "sde_settings" not in result:
        return ""
    quick = quick_note(result.get("config", {}))
    headers = [
        "mixture",
        "solver",
        "sigma_max",
        "rho",
        "max weight error (one large run)",
        "within-mode std",
    ]
    lines = []
    for r in result["sde_settings"]:
        lines.append(
            [
                modes(r["mixture"]),
                r.get("solver", "Heun, 10 steps"),
                f"{r['sigma_max']:g}",
                f"{r['rho']:g}",
                f"{r['bias_max_weight_error']:.4f}",
                f"{r['bias_std_min']:.3f}–{r['bias_std_max']:.3f}",
            ]
        )
    heading = f"### Probability flow, exact score: sigma_max and rho{quick}"
    return heading + "\n\n" + markdown_table(headers, lines)
