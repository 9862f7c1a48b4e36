"""`lazycelery demo`: a self-contained Celery cluster (app, workers, workload) to look at."""

# Modules: environment (where a run lives; shared with its processes through LAZYCELERY_DEMO_*
# variables), factory, app and tasks (what the workers run), producer (the workload process),
# supervisor (process groups), housekeeping (the embedded broker's folder), transport (the
# embedded broker) and runner (the command's lifecycle). Importing this package imports none.

from __future__ import annotations
