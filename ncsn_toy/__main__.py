"""``python -m ncsn_toy``: see :mod:`ncsn_toy.commands.cli`."""

import sys

from .commands import main

sys.exit(main())
