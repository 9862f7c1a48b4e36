"""A module a real worker imports (and reloads) on ``pool_restart(modules=["reload_probe"])``:
each import appends one line to the file named by ``$LC_RELOAD_PROBE``, so a test sees what the
worker did with the forwarded modules and reload flag."""

from __future__ import annotations

import os
import time

_PROBE = os.environ.get("LC_RELOAD_PROBE")
if _PROBE:
    with open(_PROBE, "a", encoding="utf-8") as _out:
        _out.write(f"imported {os.getpid()} {time.time():.3f}\n")
