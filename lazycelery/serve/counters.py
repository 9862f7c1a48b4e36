"""What the ingest thread counts for the metrics, Flower's way: events by (worker, type, task),
task runtimes into histogram buckets, prefetched tasks and prefetch time per (worker, task);
and ingest gaps. Plain dict updates on the ingest thread; the scrape copies under a lock."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

from lazycelery.core.ingest_status import IngestStatus
from lazycelery.core.model import TaskRecord, WorkerRecord

__all__ = ["BUCKETS", "FlowerCounters", "Histogram"]

#: prometheus_client's default buckets, as Flower uses them (``--task-runtime-metric-buckets``)
BUCKETS: Final = (.005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0,
                  float("inf"))

Key = tuple[str, str]


class Histogram:
    """Counts per bucket (not cumulative), the sum and the count."""

    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value
        self.count += 1

    def copy(self) -> Histogram:
        out = Histogram()
        out.counts, out.total, out.count = list(self.counts), self.total, self.count
        return out


class FlowerCounters:
    """Fed by ``on_batch`` and ``on_status`` on the ingest thread; ``copy()`` for a scrape."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: dict[tuple[str, str, str], int] = {}
        self.runtime: dict[Key, Histogram] = {}
        self.prefetched: dict[Key, int] = {}
        self.prefetch_time: dict[Key, float] = {}
        self.gaps = 0
        self.gap_seconds = 0.0
        self._last_gap: object = None

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        with self.lock:
            for event, rec in zip(events, records, strict=False):
                if isinstance(rec, TaskRecord):
                    self._task(event, rec)

    def _task(self, event: Mapping[str, Any], task: TaskRecord) -> None:
        kind = event.get("type")
        worker = event.get("hostname")
        if not isinstance(kind, str) or not isinstance(worker, str):
            return
        name = event.get("name")
        name = name if isinstance(name, str) and name else (task.name or "")
        key3 = (worker, kind, name)
        self.events[key3] = self.events.get(key3, 0) + 1
        key = (worker, name)
        runtime = event.get("runtime")
        if runtime.__class__ in (int, float) and runtime:
            hist = self.runtime.get(key)
            if hist is None:
                hist = self.runtime[key] = Histogram()
            hist.observe(float(runtime))
        if task.eta or not task.received:  # Flower: prefetch makes no sense for scheduled tasks
            return
        if kind == "task-received":
            self.prefetched[key] = self.prefetched.get(key, 0) + 1
        elif kind == "task-started" and task.started:
            self.prefetch_time[key] = task.started - task.received
            self.prefetched[key] = self.prefetched.get(key, 0) - 1
        elif kind in ("task-succeeded", "task-failed") and task.started:
            self.prefetch_time[key] = 0.0
        elif kind in ("task-revoked", "task-rejected") and not task.started:
            self.prefetched[key] = self.prefetched.get(key, 0) - 1

    def on_status(self, status: IngestStatus) -> None:
        gap = status.gap
        if gap is not None and gap is not self._last_gap:
            with self.lock:
                self._last_gap = gap
                self.gaps += 1
                self.gap_seconds += max(0.0, gap.seconds)

    def copy(self) -> dict[str, Any]:
        with self.lock:
            return {
                "events": dict(self.events),
                "runtime": {k: h.copy() for k, h in self.runtime.items()},
                "prefetched": dict(self.prefetched),
                "prefetch_time": dict(self.prefetch_time),
                "gaps": self.gaps,
                "gap_seconds": self.gap_seconds,
            }
