"""``python -m runtime``: the same as the ``armstack`` console script."""

import sys

from runtime.cli import main

sys.exit(main())
