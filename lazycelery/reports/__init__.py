"""Reports of what the cluster did over a period (volume, failures, error groups, slow tasks,
queues, workers, monitoring gaps), read from the history store, on demand
(`lazycelery report --since 24h`) or on a cron schedule to notification channels and files."""

from __future__ import annotations
