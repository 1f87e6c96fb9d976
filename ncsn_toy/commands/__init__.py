"""Everything that is a command of ``python -m ncsn_toy``.

The command line (:mod:`.cli`), ``reproduce`` (:mod:`.reproduce`), ``bench`` and its plain
baselines (:mod:`.bench`, :mod:`.baselines`), and the helpers that format their reports
(:mod:`.report`).

The science modules of :mod:`ncsn_toy` never import from here.
"""

from .cli import build_parser, main

__all__ = ["build_parser", "main"]
