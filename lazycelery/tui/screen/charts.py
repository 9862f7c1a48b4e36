"""The charts pane's model, headless: the worker beats logged from every batch, the bucket
size chosen (a minute, ten minutes, an hour), the scroll offset, and the fleet analysis of what
memory holds, recomputed at most every ``EVERY`` seconds (and never more than a tenth of the
time: every ``COST_FACTOR`` times its own last duration) and only while the pane is drawn.

The analysis reads every record the index holds (about 1.5 s for 100,000 finished tasks on a
busy machine), so the dashboard runs it in a thread of its own (``background=True``): the pane
draws the last result, never waits for the next one, and is told (``on_done``) when it is
ready."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.analysis.fleet.heartbeats import LIVE, WorkerBeats, heartbeat_report
from lazycelery.analysis.fleet.samples import task_samples
from lazycelery.analysis.fleet.sla import SlaReport, evaluate, targets
from lazycelery.analysis.fleet.source import BeatLog
from lazycelery.analysis.fleet.tasks import (
    Heatmap,
    Throughput,
    WorkerLoad,
    columns_between,
    duration_heatmap,
    load_distribution,
    throughput,
)

if TYPE_CHECKING:
    from lazycelery.core.index import TaskIndex

__all__ = ["BUCKETS", "COLUMNS", "COST_FACTOR", "EVERY", "ChartsModel", "FleetView"]

#: the bucket sizes ``b`` cycles through (seconds)
BUCKETS: Final = (60.0, 600.0, 3600.0)
#: buckets shown (the x axis): an hour of minutes, ten hours of ten minutes, 60 hours
COLUMNS: Final = 60
EVERY: Final = 2.0
COST_FACTOR: Final = 10.0
#: with no new event, the analysis is still redone this often (the heartbeat ages grow)
IDLE: Final = 10.0


@dataclass(frozen=True)
class FleetView:
    """What the pane draws, computed together from one copy of the index."""

    computed_at: float
    bucket: float
    columns: tuple[float, ...]
    tasks: int
    throughput: Throughput
    load: list[WorkerLoad]
    heatmap: Heatmap
    heartbeats: list[WorkerBeats]
    sla: SlaReport | None


class ChartsModel:
    """State of the charts pane; ``feed`` runs on the UI thread with each drained batch."""

    def __init__(self, index: TaskIndex, clock: Callable[[], float] = time.time,
                 background: bool = True) -> None:
        self.index = index
        self.clock = clock
        self.background = background
        #: called from the analysis thread when a new view is ready (the pane: a redraw)
        self.on_done: Callable[[], None] = lambda: None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.beats = BeatLog()
        #: SLA targets (the settings' ``sla``; set by the dashboard)
        self.sla: Mapping[str, tuple[float | None, float | None]] = {}
        self.bucket_index = 0
        self.top = 0
        self._view: FleetView | None = None
        self._cost = 0.0
        self._key: tuple[Any, ...] = ()

    def feed(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.beats.feed(events)

    @property
    def bucket(self) -> float:
        return BUCKETS[self.bucket_index % len(BUCKETS)]

    def cycle_bucket(self) -> float:
        self.bucket_index = (self.bucket_index + 1) % len(BUCKETS)
        with self._lock:
            self._view = None
        return self.bucket

    @property
    def computing(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def view(self, force: bool = False) -> FleetView | None:
        """The last analysis (None before the first); starts the next one when it is due: in
        the calling thread, or in a thread of its own with ``background``."""
        now = self.clock()
        with self._lock:
            last = self._view
        key = (self.index.version, self.beats.version, self.bucket)
        if last is not None and last.bucket != self.bucket:
            last = None  # a bucket change while the previous one was computed
        age = now - last.computed_at if last is not None else float("inf")
        # nothing new: the heartbeat ages still grow, so redraw them now and then
        fresh = age < max(EVERY, COST_FACTOR * self._cost) or (key == self._key and age < IDLE)
        if last is not None and fresh and not force:
            return last
        if not self.background:
            self._run(now, key)
            return self._view
        if not self.computing:
            self._thread = threading.Thread(target=self._run, args=(now, key), daemon=True,
                                            name="lazycelery-charts")
            self._thread.start()
        return last

    def _run(self, now: float, key: tuple[Any, ...]) -> None:
        started = time.perf_counter()
        found = self._compute(now)
        with self._lock:
            self._view = found
            self._cost, self._key = time.perf_counter() - started, key
        if self.background:
            self.on_done()

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for the running analysis (tests)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _compute(self, now: float) -> FleetView:
        bucket = self.bucket
        until = (now // bucket + 1) * bucket  # the current bucket is the last column
        since = until - COLUMNS * bucket
        samples = task_samples(self.index.snapshot(), since, until)
        columns = columns_between(samples, bucket, since, until)
        found = targets(self.sla)
        return FleetView(
            computed_at=now, bucket=bucket, columns=columns, tasks=len(samples),
            throughput=throughput(samples, bucket, "worker", since, until),
            load=load_distribution(samples),
            heatmap=duration_heatmap(samples, bucket, "p95", since, until),
            heartbeats=heartbeat_report(self.beats.beats(since), columns, bucket, now, LIVE),
            sla=evaluate(samples, found) if found else None)

