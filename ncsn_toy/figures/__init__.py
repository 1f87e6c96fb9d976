"""Everything that draws: one renderer (:mod:`.plotting`), the gallery of ``render``
(:mod:`.gallery`: still images in :mod:`.stills`, GIFs in :mod:`.animations`, what they share
in :mod:`.parts`).

The science modules of :mod:`ncsn_toy` never import from here.
"""

from .gallery import FIGURES, RenderConfig, render

__all__ = ["FIGURES", "RenderConfig", "render"]
