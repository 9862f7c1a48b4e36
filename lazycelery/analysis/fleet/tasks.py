"""What finished tasks say about the fleet: the duration heatmap (task name x time bucket),
the load distribution (each worker's share of the tasks), throughput per task name or worker
per bucket, each worker's performance per bucket (processed/s, failure rate, mean and p95
runtime) and the trends (this window against the previous one).

Pure functions of ``TaskSample`` lists (``samples.task_samples``); every figure is exact (no
sketch), so a test can compute it independently."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from lazycelery.analysis.fleet.samples import TaskSample, bucket_start, mean, percentile

__all__ = ["HEAT_VALUES", "Heatmap", "PerfRow", "Series", "Throughput", "Trend", "WindowStats",
           "WorkerLoad", "columns_between", "duration_heatmap", "load_distribution",
           "throughput", "trends", "window_stats", "worker_performance"]

HeatValue = Literal["p95", "mean", "count"]
#: what a heatmap cell can hold
HEAT_VALUES: Final[tuple[HeatValue, ...]] = ("p95", "mean", "count")
#: at most this many buckets in one chart (a week of hours is 168)
MAX_COLUMNS: Final = 2_000


def columns_between(samples: Sequence[TaskSample], bucket: float, since: float | None,
                    until: float | None) -> tuple[float, ...]:
    """The bucket starts from ``since`` (else the first sample) to ``until`` (else the last),
    every bucket present, empty ones included, so a chart's x axis is time."""
    if bucket <= 0:
        raise ValueError("bucket must be positive")
    first = since if since is not None else (samples[0].finished if samples else None)
    last = until if until is not None else (samples[-1].finished if samples else None)
    if first is None or last is None or last < first:
        return ()
    start = bucket_start(first, bucket)
    # an ``until`` on a bucket boundary excludes that bucket (ranges are half-open)
    stop = bucket_start(last, bucket) if until is None or last % bucket else last - bucket
    count = round((stop - start) / bucket) + 1
    if count > MAX_COLUMNS:
        raise ValueError(f"{count:,} buckets of {bucket:g} s: more than {MAX_COLUMNS:,} "
                         "(a larger bucket, or a shorter range)")
    return tuple(start + i * bucket for i in range(max(0, count)))


def _column_of(columns: Sequence[float], bucket: float) -> Callable[[float], int | None]:
    first = columns[0] if columns else 0.0

    def index(t: float) -> int | None:
        i = int((bucket_start(t, bucket) - first) // bucket)
        return i if 0 <= i < len(columns) else None

    return index


@dataclass(frozen=True)
class Heatmap:
    """Rows are task names (most tasks first), columns bucket starts; a cell is the value of
    the tasks that finished in that bucket (None: none did, or none had a runtime)."""

    value: HeatValue
    bucket: float
    columns: tuple[float, ...]
    rows: tuple[str, ...]
    cells: tuple[tuple[float | None, ...], ...]

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "bucket_seconds": self.bucket, "columns": list(self.columns),
                "rows": [{"name": name, "cells": list(cells)}
                         for name, cells in zip(self.rows, self.cells, strict=True)]}


def duration_heatmap(samples: Sequence[TaskSample], bucket: float, value: HeatValue = "p95",
                     since: float | None = None, until: float | None = None) -> Heatmap:
    columns = columns_between(samples, bucket, since, until)
    column = _column_of(columns, bucket)
    per: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    counts: Counter[str] = Counter()
    for s in samples:
        i = column(s.finished)
        if i is None:
            continue
        counts[s.name] += 1
        found = per[s.name][i]
        if value == "count":
            found.append(1.0)
        elif s.runtime is not None:
            found.append(s.runtime)
    rows = tuple(sorted(counts, key=lambda n: (-counts[n], n)))

    def cell(values: list[float] | None) -> float | None:
        if not values:
            return None
        if value == "count":
            return float(len(values))
        return percentile(values, 95) if value == "p95" else mean(values)

    cells = tuple(tuple(cell(per[name].get(i)) for i in range(len(columns))) for name in rows)
    return Heatmap(value, bucket, columns, rows, cells)


@dataclass(frozen=True)
class WorkerLoad:
    """One worker's part of the finished tasks."""

    worker: str
    tasks: int
    share: float
    failed: int
    names: tuple[tuple[str, int], ...]  # its task names, most first

    def as_json(self) -> dict[str, Any]:
        return {"worker": self.worker, "tasks": self.tasks, "share": self.share,
                "failed": self.failed, "names": dict(self.names)}


def load_distribution(samples: Sequence[TaskSample]) -> list[WorkerLoad]:
    """Each worker's share of the finished tasks (shares sum to 1), most loaded first."""
    total = len(samples)
    names: dict[str, Counter[str]] = defaultdict(Counter)
    failed: Counter[str] = Counter()
    for s in samples:
        names[s.worker][s.name] += 1
        failed[s.worker] += s.failed
    out = [WorkerLoad(worker, sum(c.values()), sum(c.values()) / total, failed[worker],
                      tuple(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))
           for worker, c in names.items()]
    return sorted(out, key=lambda w: (-w.tasks, w.worker))


@dataclass(frozen=True)
class Series:
    key: str
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Throughput:
    """Finished tasks per bucket, per task name or per worker (``by``), and in all."""

    by: Literal["name", "worker"]
    bucket: float
    columns: tuple[float, ...]
    series: tuple[Series, ...]
    total: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        return {"by": self.by, "bucket_seconds": self.bucket, "columns": list(self.columns),
                "total": list(self.total),
                "series": [{"key": s.key, "counts": list(s.counts), "total": s.total,
                            "per_second": [c / self.bucket for c in s.counts]}
                           for s in self.series]}


def throughput(samples: Sequence[TaskSample], bucket: float, by: Literal["name", "worker"],
               since: float | None = None, until: float | None = None) -> Throughput:
    columns = columns_between(samples, bucket, since, until)
    column = _column_of(columns, bucket)
    per: dict[str, list[int]] = defaultdict(lambda: [0] * len(columns))
    total = [0] * len(columns)
    for s in samples:
        i = column(s.finished)
        if i is None:
            continue
        per[s.name if by == "name" else s.worker][i] += 1
        total[i] += 1
    series = sorted((Series(k, tuple(v)) for k, v in per.items()),
                    key=lambda x: (-x.total, x.key))
    return Throughput(by, bucket, columns, tuple(series), tuple(total))


@dataclass(frozen=True)
class WindowStats:
    """Finished tasks of one time window."""

    tasks: int
    failed: int
    mean_runtime: float | None
    p95_runtime: float | None

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.tasks if self.tasks else None

    def as_json(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "failed": self.failed, "failure_rate": self.failure_rate,
                "mean_runtime": self.mean_runtime, "p95_runtime": self.p95_runtime}


def window_stats(samples: Sequence[TaskSample]) -> WindowStats:
    runtimes = [s.runtime for s in samples if s.runtime is not None]
    return WindowStats(len(samples), sum(s.failed for s in samples), mean(runtimes),
                       percentile(runtimes, 95))


@dataclass(frozen=True)
class PerfRow:
    """One worker in one bucket. ``per_second`` divides by the part of the bucket inside the
    range asked (the current hour, up to now, is not a whole hour)."""

    worker: str
    start: float
    seconds: float
    stats: WindowStats

    @property
    def per_second(self) -> float:
        return self.stats.tasks / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {"worker": self.worker, "start": self.start, "seconds": self.seconds,
                "processed": self.stats.tasks, "per_second": self.per_second,
                **{k: v for k, v in self.stats.as_json().items() if k != "tasks"}}


def worker_performance(samples: Sequence[TaskSample], bucket: float,
                       worker: str | None = None, since: float | None = None,
                       until: float | None = None) -> list[PerfRow]:
    """Per worker (or only ``worker``) per bucket with tasks: oldest first, then by worker."""
    groups: dict[tuple[str, float], list[TaskSample]] = defaultdict(list)
    for s in samples:
        if worker is None or s.worker == worker:
            groups[(s.worker, bucket_start(s.finished, bucket))].append(s)
    rows = []
    for (host, start), group in groups.items():
        lo = max(start, since) if since is not None else start
        hi = min(start + bucket, until) if until is not None else start + bucket
        rows.append(PerfRow(host, start, max(0.0, hi - lo), window_stats(group)))
    return sorted(rows, key=lambda r: (r.start, r.worker))


@dataclass(frozen=True)
class Trend:
    """One task name (``ALL`` for every task) now against the window before."""

    key: str
    current: WindowStats
    previous: WindowStats

    def change(self, field: str) -> float | None:
        """(current - previous) / previous of a figure; None when either is unknown or 0."""
        now, before = getattr(self.current, field), getattr(self.previous, field)
        if now is None or before is None or before == 0:
            return None
        return float((now - before) / before)

    def as_json(self) -> dict[str, Any]:
        fields = ("tasks", "failure_rate", "mean_runtime", "p95_runtime")
        return {"key": self.key, "current": self.current.as_json(),
                "previous": self.previous.as_json(),
                "change": {f: self.change(f) for f in fields}}


#: the key of the trend over every task name
ALL: Final = "*"


def trends(samples: Sequence[TaskSample], window: float, until: float) -> list[Trend]:
    """``[until - window, until)`` against ``[until - 2 window, until - window)``: all tasks
    first, then each task name seen in either window (most tasks now first)."""
    now_lo, before_lo = until - window, until - 2 * window
    current: dict[str, list[TaskSample]] = defaultdict(list)
    previous: dict[str, list[TaskSample]] = defaultdict(list)
    for s in samples:
        if now_lo <= s.finished < until:
            current[s.name].append(s)
        elif before_lo <= s.finished < now_lo:
            previous[s.name].append(s)
    names = sorted(set(current) | set(previous),
                   key=lambda n: (-len(current.get(n, ())), -len(previous.get(n, ())), n))
    every = Trend(ALL, window_stats([s for v in current.values() for s in v]),
                  window_stats([s for v in previous.values() for s in v]))
    return [every] + [Trend(n, window_stats(current.get(n, [])),
                            window_stats(previous.get(n, []))) for n in names]
