"""``python -m ncsn_toy reproduce``: the paper's toy claims, and what lies beyond them, as numbers.

Each study is a function of the sizes (:class:`~ncsn_toy.commands.measure.ReproduceConfig`)
returning JSON-ready rows, with a formatter that prints them as a Markdown table:

1. the samplers, and 3. their weight error against score evaluations
   (:mod:`~ncsn_toy.commands.sampler_study`);
2. the trained networks' score errors, and 4. how sigma enters the network
   (:mod:`~ncsn_toy.commands.network_study`);
5. the continuous-time samplers (:mod:`~ncsn_toy.commands.sde_study`), with the scan of their
   settings (:mod:`~ncsn_toy.commands.sde_settings_scan`);
6. the ODE likelihood (:mod:`~ncsn_toy.commands.sde_likelihood_study`);
7.-8. the networks between their levels, and continuous-sigma training
   (:mod:`~ncsn_toy.commands.sde_network_study`);
9.-11. ``fit`` on every target, the paper's Fig. 2 setup, and the dimension study
   (:mod:`~ncsn_toy.commands.zoo_study`);
12. DDPM and DDIM beside the VE samplers (:mod:`~ncsn_toy.commands.ddpm_study`);
13.-14. the trained noise predictor as a score, and DDPM's likelihood
   (:mod:`~ncsn_toy.commands.ddpm_network_study`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from ..networks import EpsilonNet
from ..recipes import RECIPES, load_or_train
from .ddpm_network_study import ddpm_likelihood_table, ddpm_score_error_table, format_ddpm_networks
from .ddpm_study import ddpm_sampler_table, format_ddpm_samplers
from .measure import QUICK, ReproduceConfig, references
from .network_study import (
    format_score_errors,
    format_sigma_inputs,
    score_error_table,
    sigma_input_table,
)
from .report import machine
from .sampler_study import evaluation_study, format_evaluations, format_samplers, sampler_table
from .sde_likelihood_study import format_likelihood, likelihood_table
from .sde_network_study import between_levels_table, continuous_table, format_network_tables
from .sde_settings_scan import format_settings_scan, settings_scan
from .sde_study import format_sde_samplers, sde_sampler_table
from .zoo_study import ZooConfig, format_zoo, zoo_study

__all__ = ["ReproduceConfig", "reproduce", "format_tables"]


def reproduce(
    config: ReproduceConfig | None = None,
    *,
    progress: bool = True,
    between: Callable[[], object] = lambda: None,
) -> dict:
    """Measure everything (``config`` defaults to the full sizes); return the numbers as a
    JSON-ready dict.

    ``between()`` runs between rows (the command refreshes its thread policy there).
    """
    config = config or ReproduceConfig()
    start = time.perf_counter()
    models = {}
    for name in RECIPES:
        models[name] = load_or_train(
            name, config.checkpoints, retrain=config.retrain, progress=progress
        )
    refs = references(config)
    # the score networks of table 2 (the noise predictor has its own table, 13)
    score_models = {
        name: model for name, model in models.items() if not isinstance(model, EpsilonNet)
    }
    # the result's key of each study, and the study
    studies = {
        "samplers": functools.partial(sampler_table, models, config, refs, between),
        "score_error": functools.partial(score_error_table, score_models, config),
        "evaluations": functools.partial(evaluation_study, config, refs),
        "sigma_input": functools.partial(sigma_input_table, config, refs, between),
        "sde_samplers": functools.partial(sde_sampler_table, models, config, refs, between),
        "sde_settings": functools.partial(settings_scan, config),
        "sde_likelihood": functools.partial(likelihood_table, models, config),
        "sde_between_levels": functools.partial(between_levels_table, models, config),
        "sde_continuous": functools.partial(continuous_table, config, refs),
    }
    # the sizes as JSON: paths as strings
    sizes = dataclasses.asdict(config)
    for key, value in sizes.items():
        if isinstance(value, Path):
            sizes[key] = str(value)
    result = {"config": sizes, "machine": machine()}
    if config.zoo:
        zoo = ZooConfig.fast() if config.quick else ZooConfig()
        zoo = dataclasses.replace(zoo, checkpoints=config.checkpoints, retrain=config.retrain)
        if config.targets:
            zoo = dataclasses.replace(zoo, targets=tuple(config.targets))
        studies["zoo"] = functools.partial(zoo_study, zoo, progress=progress)
    studies["ddpm_samplers"] = functools.partial(ddpm_sampler_table, models, config, refs, between)
    studies["ddpm_score_error"] = functools.partial(ddpm_score_error_table, models, config)
    studies["ddpm_likelihood"] = functools.partial(ddpm_likelihood_table, models, config)
    # wall seconds of each study (the models and references are loaded before the first)
    study_seconds = {}
    for name, study in tqdm(studies.items(), desc="reproduce", disable=not progress, leave=False):
        between()
        begin = time.perf_counter()
        result[name] = study()
        study_seconds[name] = time.perf_counter() - begin
    result["study_seconds"] = study_seconds
    result["seconds"] = time.perf_counter() - start
    return result


def format_tables(result: dict) -> str:
    """The tables of a :func:`reproduce` result, as Markdown."""
    sizes = result["config"]
    quick = bool(sizes.get("quick"))
    parts = [
        format_samplers(result["samplers"], sizes),
        format_score_errors(result["score_error"], sizes),
        format_evaluations(result["evaluations"], sizes),
        format_sigma_inputs(result["sigma_input"], sizes),
        format_sde_samplers(result),
        format_settings_scan(result),
        format_likelihood(result),
        format_network_tables(result).rstrip(),
    ]
    if "zoo" in result:
        parts.append(format_zoo(result["zoo"], QUICK if quick else "").rstrip())
    parts.append(format_ddpm_samplers(result))
    parts.append(format_ddpm_networks(result))
    if quick:
        parts.insert(
            0,
            "Quick check (--fast): few particles, seeds and training steps, so the numbers are "
            "rough; `python -m ncsn_toy reproduce` makes the full tables.",
        )
    return "\n\n".join(part for part in parts if part) + "\n"
