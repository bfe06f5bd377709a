"""``python -m pixray``: the ``pixray`` command."""

import sys

from .cli import main

sys.exit(main())
