"""The tutorial notebook's plumbing, out of its way: threads, fast mode, figures, result tables.

The notebook ``NCSN_toy_Example.ipynb`` starts with::

    from ncsn_toy.figures.tutorial import setup

    tutorial = setup()

:func:`setup` sets torch's threads for the machine's load (as every command does), reads the fast
mode from the environment (``NCSN_TOY_FAST=1``, what the test suite runs) and prints the versions.
The returned :class:`Tutorial` draws a figure of the gallery again (:meth:`Tutorial.redraw`) only
where it would differ from the committed one that the notebook's Markdown already shows: with
networks trained in the notebook. Fast mode shrinks the notebook's own computations, not the
gallery: its figures are the committed ones (``render --fast`` is tested on its own).
:meth:`Tutorial.show_samplers_table` shows the sampler rows of ``results/reproduce.json``, the
numbers only a longer run gives.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..runtime import ThreadPolicy, repository_root
from .gallery import FIGURES, RenderConfig, render

__all__ = [
    "setup",
    "Tutorial",
    "samplers_table",
    "split_label",
    "FAST_ENVIRONMENT_VARIABLE",
    "REPRODUCE_JSON",
]

# the environment variable that asks for the fast mode (the test suite sets it)
FAST_ENVIRONMENT_VARIABLE = "NCSN_TOY_FAST"
# the committed results of `python -m ncsn_toy reproduce`
REPRODUCE_JSON = Path("results") / "reproduce.json"


@dataclass
class Tutorial:
    """What the notebook's setup decided, and the helpers that keep plumbing out of its cells."""

    fast: bool  # NCSN_TOY_FAST=1 in the environment: every size of the notebook's cells shrinks
    threads: int  # torch's intra-op threads, chosen for the machine's load
    retrain: bool = False  # networks are trained in the notebook, not loaded

    def use(self, *, fast: bool, retrain: bool) -> None:
        """The notebook's parameters: fast mode, and whether its networks are trained there."""
        self.fast = bool(fast)
        self.retrain = bool(retrain)

    @property
    def redraws(self) -> bool:
        """Whether figures are drawn again: only with networks trained in the notebook.

        Only then would they differ from the committed ones in substance. In fast mode they would
        only be smaller and noisier, and drawing all of them took two thirds of a fast run (41 of
        62 s), so fast mode shows the committed figures, as the default mode does.
        """
        return self.retrain

    def redraw(self, *names: str) -> None:
        """Draw these figures of the gallery again and show them, if they would differ from gif/.

        With networks trained in the notebook; at the fast sizes (:meth:`RenderConfig.fast`) in
        fast mode. Drawn into a temporary folder that is removed at once: a notebook run writes no
        file. A name this version's gallery does not draw is said so in a printed line, and
        skipped.
        """
        if not self.redraws:
            return
        from IPython.display import Image, display

        known = [name for name in names if name in FIGURES]
        for name in names:
            if name not in FIGURES:
                print(f"{name} is not in this version's gallery: not drawn again")
        if not known:  # render's only=[] would mean every figure
            return
        config = (RenderConfig.fast if self.fast else RenderConfig)(retrain=self.retrain)
        with tempfile.TemporaryDirectory(prefix="ncsn_toy_") as folder:
            for path, _ in render(folder, config, only=known, progress=False):
                display(Image(data=path.read_bytes(), format=path.suffix.lstrip(".")))

    def show_samplers_table(self, root: Path | None = None) -> None:
        """Show the sampler rows of results/reproduce.json as tables (:func:`samplers_table`)."""
        from IPython.display import Markdown, display

        display(Markdown(samplers_table(root)))


def samplers_table(root: Path | None = None) -> str:
    """The sampler rows of results/reproduce.json as Markdown tables, one per mixture.

    Each row's numbers are over its own seeds (``len(row["weights"])``): the caption gives their
    count, and a column does where rows differ. The max weight error is that of the weights
    averaged over the seeds (``max_k |mean weight_k - w_k|``), as ``reproduce`` computes it; the
    energy distance is the mean over the seeds. A sampler's label is split into the sampler, the
    score it uses and its settings (the label's parenthesised parts), to keep the table narrow.
    """
    path = (root or repository_root()) / REPRODUCE_JSON
    if not path.is_file():
        return f"{path} is missing: run `python -m ncsn_toy reproduce` to make it"
    result = json.loads(path.read_text())
    rows = result["samplers"]
    particles = result["config"]["n_particles"]
    seeds = sorted({len(row["weights"]) for row in rows})
    same = len(seeds) == 1
    worst_sd = math.sqrt(0.25 / (min(seeds) * particles))  # a mean weight near 1/2, fewest seeds
    counted = f"{seeds[0]} seeds" if same else f"{seeds[0]} to {seeds[-1]} seeds (column 'seeds')"
    lines = [
        f"Each row: {counted} of {particles:,} particles each. *Max weight error*: the largest "
        "|mean weight over the seeds - true weight|, the error of the seed-mean weights (the "
        f"binomial standard deviation of a seed-mean weight is at most {worst_sd:.4f}); *energy "
        "distance*: the mean over the seeds.",
    ]
    header = ["sampler", "score", "settings"] + ([] if same else ["seeds"])
    header += ["max weight error", "energy distance", "score evaluations"]
    for mixture in dict.fromkeys(row["mixture"] for row in rows):
        lines += ["", f"**{mixture.replace('_', ' ')}**", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        above = ("", "", "")
        for row in (r for r in rows if r["mixture"] == mixture):
            sampler, score, settings = split_label(row["sampler"])
            if sampler.startswith("+"):  # "  + final denoising step": the row above, plus a step
                sampler, score, settings = f"{above[0]} {sampler}", above[1], above[2]
            above = (sampler, score, settings)
            distance = sum(row["distance"]) / len(row["distance"])
            cells = [sampler, score, settings] + ([] if same else [str(len(row["weights"]))])
            cells += [f"{row['max_weight_error']:.3f}", f"{distance:.4f}", str(row["evaluations"])]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# the scores a sampler label of reproduce.json names, after the sampler
SCORES = ("exact score", "trained NCSN", "trained ScoreNet")


def split_label(label: str) -> tuple[str, str, str]:
    """A reproduce.json sampler label as (sampler, score, settings).

    The settings are the label's top-level parenthesised parts, joined by "; " ("paper:" kept);
    the score is the part named in :data:`SCORES`. "annealed Langevin, exact score (paper: sigma
    20->1, L=10, T=100, eps=0.1)" gives ("annealed Langevin", "exact score", "paper: sigma 20→1,
    L=10, T=100, eps=0.1").
    """
    outside, inside, depth, part = [], [], 0, ""
    for char in label:
        if char == "(":
            if depth == 0:
                outside.append(part)
                part = ""
            else:
                part += char
            depth += 1
        elif char == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                inside.append(part)
                part = ""
            else:
                part += char
        else:
            part += char
    outside.append(part)
    words = [w.strip() for w in ",".join(outside).split(",")]
    words = [w for w in words if w]
    score = next((w for w in words if w in SCORES), "")
    sampler = ", ".join(w for w in words if w != score) or label.strip()
    settings = "; ".join(p.strip() for p in inside).replace("->", "→")
    return sampler, score, settings


def setup() -> Tutorial:
    """The notebook's first cell: threads for this machine's load, fast mode, the versions.

    Threads: two threads that wait for each other on the notebook's small tensors run many times
    slower as soon as another program is busy (docs/speed.md), so the count follows the load,
    unless ``NCSN_TOY_THREADS`` (or ``OMP_NUM_THREADS``) chooses it.
    """
    import torch

    import ncsn_toy

    threads = ThreadPolicy().apply()
    fast = os.environ.get(FAST_ENVIRONMENT_VARIABLE) == "1"
    plural = "s" if threads > 1 else ""
    print(
        f"ncsn_toy {ncsn_toy.__version__}, torch {torch.__version__} ({threads} thread{plural}), "
        f"fast={fast}"
    )
    return Tutorial(fast=fast, threads=threads)
