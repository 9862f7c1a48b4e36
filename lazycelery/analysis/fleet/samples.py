"""Finished tasks as the fleet analysis sees them (name, worker, finish time, runtime, wait), the
time buckets they fall in, and the one percentile method every chart uses.

Headless and pure: the samples are made from ``TaskRecord``s, whether the dashboard's index
holds them or the history store returned them, so both give the same numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Final, NamedTuple

from lazycelery.core.model import FAILURE, SUCCESS, TaskRecord

__all__ = ["UNKNOWN", "TaskSample", "bucket_start", "mean", "percentile", "task_sample",
           "task_samples"]

#: the name / worker shown for a task whose name or worker no event told
UNKNOWN: Final = "?"


class TaskSample(NamedTuple):
    """One finished task (SUCCESS or FAILURE). ``finished`` is the sender time of its last
    task-succeeded / task-failed event; ``runtime`` is the worker's own ``runtime`` field
    (task-succeeded), else failed - started; ``wait`` is started - sent (else - received):
    how long it waited before a worker ran it. Either is None when an event is missing."""

    name: str
    worker: str
    finished: float
    failed: bool
    runtime: float | None
    wait: float | None
    uuid: str = ""


def _positive_gap(end: float | None, start: float | None) -> float | None:
    if end is None or start is None:
        return None
    return max(0.0, end - start)


def task_sample(rec: TaskRecord) -> TaskSample | None:
    """The sample of a finished record; None for one still running, revoked, or without time."""
    if rec.state == SUCCESS:
        finished, failed = rec.succeeded, False
    elif rec.state == FAILURE:
        finished, failed = rec.failed, True
    else:
        return None
    if finished is None:
        return None
    runtime = rec.runtime if rec.runtime is not None and rec.runtime >= 0 else None
    if runtime is None and failed:
        runtime = _positive_gap(rec.failed, rec.started)
    queued = rec.sent if rec.sent is not None else rec.received
    return TaskSample(name=rec.name or UNKNOWN, worker=rec.worker or UNKNOWN, finished=finished,
                      failed=failed, runtime=runtime, wait=_positive_gap(rec.started, queued),
                      uuid=rec.uuid)


def task_samples(records: Iterable[TaskRecord], since: float | None = None,
                 until: float | None = None) -> list[TaskSample]:
    """The finished tasks among ``records`` whose finish lies in ``[since, until)``, oldest
    first."""
    out = []
    for rec in records:
        sample = task_sample(rec)
        if sample is None:
            continue
        if (since is not None and sample.finished < since) or \
                (until is not None and sample.finished >= until):
            continue
        out.append(sample)
    out.sort(key=_ORDER)
    return out


_ORDER: Final = attrgetter("finished", "uuid")


def bucket_start(t: float, size: float) -> float:
    """The start of the bucket of ``size`` seconds holding ``t`` (aligned on the epoch, so
    hour buckets start on the UTC hour)."""
    return math.floor(t / size) * size


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``p`` % of the values at
    or below it (``sorted(values)[ceil(p/100 * n) - 1]``); None for no values. Always one of
    the values, so a p95 is a runtime some task really had."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
