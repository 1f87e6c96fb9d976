"""``python -m ncsn_toy``: see :mod:`ncsn_toy.cli`."""

import sys

from .cli import main

sys.exit(main())
