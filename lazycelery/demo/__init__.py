"""`lazycelery demo`: a self-contained Celery cluster (broker, app, workers, beat, workload)."""

# Modules: environment (where a run lives; shared with its processes through LAZYCELERY_DEMO_*
# variables), broker (the embedded Redis-protocol broker and its child process), factory, app
# and tasks (what the workers and beat run), producer (the workload process), supervisor
# (process groups) and runner (the command's lifecycle). Importing this package imports none.

from __future__ import annotations
