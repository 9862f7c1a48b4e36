"""Fleet analysis, headless: finished tasks and worker heartbeats, from memory or the history
store, made into charts (docs/fleet.md). Modules: ``samples`` (what a finished task tells,
buckets, percentiles), ``tasks`` (heatmap, load, throughput, per-worker performance, trends),
``sla`` (targets and breaches), ``heartbeats`` (ages, missed beats, flips), ``resources``
(rusage sampling, CPU share), ``source`` (store or memory), ``render`` (block-character charts)
and ``text`` (the CLI's lines)."""

from __future__ import annotations

from lazycelery.analysis.fleet.samples import TaskSample, percentile, task_samples

__all__ = ["TaskSample", "percentile", "task_samples"]
