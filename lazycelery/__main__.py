"""`python -m lazycelery` runs the same entry point as the console script."""

from __future__ import annotations

import sys

from lazycelery.cli import main

sys.exit(main())
