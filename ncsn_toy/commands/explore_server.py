"""The explorer's web server: Voilà with a cap on the kernels it runs at once.

Every browser tab of the explorer gets its own kernel, a Python process of about 330 MB that runs
the package. :class:`CappedKernelManager` starts at most ``max_kernels`` of them: a tab opened
beyond that gets a page that says so, and no kernel. A place is free again when a tab is closed
(Voilà stops its kernel) or when an idle kernel whose page is gone is culled.

``python -m ncsn_toy explore`` runs this file as a script (``python explore_server.py NOTEBOOK
VOILA-OPTIONS``), so that the server imports neither the package nor torch: only the kernels do.
"""

from __future__ import annotations

import sys

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Integer

__all__ = ["CappedKernelManager", "FULL_MESSAGE"]

# the page a tab beyond the cap gets (an HTTP status line: one line, plain ASCII)
FULL_MESSAGE = (
    "The explorer is open in {limit} tab(s) already, its limit: each runs its own kernel of about "
    "330 MB. Close one, then reload this page (the limit: `python -m ncsn_toy explore "
    "--max-pages N`)."
)


class CappedKernelManager(AsyncMappingKernelManager):
    """Voilà's kernel manager, refusing a new kernel while ``max_kernels`` run or are starting."""

    max_kernels = Integer(4, config=True, help="kernels running or starting at once, at most")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._starting: set[str] = set()  # ids of the kernels whose start has not returned yet

    def _in_use(self) -> int:
        """Kernels running or starting (a starting kernel may already be listed as running)."""
        return len(set(self.list_kernel_ids()) | self._starting)

    async def start_kernel(self, *args: object, kernel_id: str | None = None, **kwargs: object):
        """Start a kernel as Voilà asks, or answer 503 with :data:`FULL_MESSAGE` at the cap."""
        if kernel_id is not None and kernel_id in self:  # an existing kernel: nothing new starts
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        # checked and counted with no await in between: concurrent requests cannot both pass
        if self._in_use() >= self.max_kernels:
            self.log.warning("kernel refused: %d running or starting", self._in_use())
            raise web.HTTPError(503, reason=FULL_MESSAGE.format(limit=self.max_kernels))
        kernel_id = kernel_id or self.new_kernel_id()
        self._starting.add(kernel_id)
        try:
            return await super().start_kernel(*args, kernel_id=kernel_id, **kwargs)
        finally:
            self._starting.discard(kernel_id)


if __name__ == "__main__":
    from voila.app import main

    sys.exit(main())
