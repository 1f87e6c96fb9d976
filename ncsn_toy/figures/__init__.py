"""Everything that draws: the figures of ``python -m ncsn_toy render``, and the explorer.

One renderer, :mod:`.plotting`. The gallery of ``render``, :mod:`.gallery`: still images in
:mod:`.stills`, GIFs in :mod:`.animations`, the score-SDE figures in :mod:`.sde`, the named
targets' in :mod:`.zoo`, what they share in :mod:`.parts`. The interactive explorer,
:mod:`.explorer`: its computation in :mod:`.explore_core` (samplers in :mod:`.explore_samplers`),
its controls in :mod:`.explore_controls`, its picture in :mod:`.explore_picture`.

The science modules of :mod:`ncsn_toy` never import from here.
"""

from .gallery import FIGURES, RenderConfig, render

__all__ = ["FIGURES", "RenderConfig", "render"]
