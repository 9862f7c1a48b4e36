"""Queue analytics from the event stream: per queue, how long tasks waited (task-sent ->
task-received), the p95 of it, arrivals vs drains per second, and the time to empty the queue at
the current rates. O(new events) to feed; a summary costs O(samples in the window)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

__all__ = ["DEFAULT_WINDOW_S", "QueueWaitStats", "QueueWaits", "percentile", "time_to_empty"]

#: the sliding window the figures cover
DEFAULT_WINDOW_S = 300.0
#: rates are taken over at least this long (or the whole window when it is shorter)
MIN_SPAN_S = 10.0
#: wait samples kept per queue (the oldest go first)
MAX_SAMPLES = 20_000


class QueueWaitStats(msgspec.Struct, frozen=True, kw_only=True):
    """One queue's figures over the window; None = not known (no samples)."""

    queue: str
    samples: int
    wait_mean_s: float | None
    wait_p95_s: float | None
    #: task-sent per second (tasks published to this queue)
    arrival_rate: float
    #: task-received per second (taken from it by workers)
    drain_rate: float
    #: seconds until empty at (drain - arrival); inf = never at these rates; None: no depth
    time_to_empty_s: float | None = None
    window_s: float = DEFAULT_WINDOW_S


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def time_to_empty(ready: int | None, arrival: float, drain: float) -> float | None:
    """``ready / (drain - arrival)``; 0 when empty; inf when it does not shrink."""
    if ready is None:
        return None
    if ready <= 0:
        return 0.0
    net = drain - arrival
    return ready / net if net > 0 else math.inf


class QueueWaits:
    """Fed with (event, record) pairs from the ingest batches; the queue of a task comes from
    its task-sent event (``task_send_sent_event = True`` on the publishers), the only event
    that names it. Rates are stamped with this process's clock (arrival of the batch), waits
    use the event timestamps (a negative wait from clock skew counts as 0)."""

    def __init__(self, window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self._clock = clock
        self._started = clock()
        self._waits: dict[str, deque[tuple[float, float]]] = {}
        self._arrivals: dict[str, deque[float]] = {}
        self._drains: dict[str, deque[float]] = {}

    def add(self, events: Sequence[Mapping[str, Any]], records: Sequence[object],
            now: float | None = None) -> None:
        now = self._clock() if now is None else now
        for event, record in zip(events, records, strict=False):
            kind = event.get("type")
            if kind == "task-sent":
                queue = event.get("queue") or getattr(record, "queue", None)
                if isinstance(queue, str):
                    self._arrivals.setdefault(queue, deque()).append(now)
            elif kind == "task-received":
                self._received(record, now)

    def _received(self, record: object, now: float) -> None:
        queue = getattr(record, "queue", None)
        if not isinstance(queue, str):
            return
        self._drains.setdefault(queue, deque()).append(now)
        sent, received = getattr(record, "sent", None), getattr(record, "received", None)
        if isinstance(sent, (int, float)) and isinstance(received, (int, float)):
            samples = self._waits.setdefault(queue, deque(maxlen=MAX_SAMPLES))
            samples.append((now, max(0.0, float(received) - float(sent))))

    def _trim(self, now: float) -> None:
        horizon = now - self.window_s
        for series in (*self._arrivals.values(), *self._drains.values()):
            while series and series[0] < horizon:
                series.popleft()
        for samples in self._waits.values():
            while samples and samples[0][0] < horizon:
                samples.popleft()

    def queues(self) -> list[str]:
        return sorted(set(self._arrivals) | set(self._drains) | set(self._waits))

    def summary(self, ready: Mapping[str, int | None] | None = None,
                now: float | None = None) -> dict[str, QueueWaitStats]:
        """queue -> figures over the window; ``ready`` (depths) gives the time to empty."""
        now = self._clock() if now is None else now
        self._trim(now)
        # A dashboard that just started (or took in a backlog at once) has seen a fraction of
        # a second: rates over less than MIN_SPAN_S would be wildly high, so they are taken
        # over at least that long (an underestimate for the first seconds instead).
        span = max(min(self.window_s, MIN_SPAN_S), min(self.window_s, now - self._started))
        ready = ready or {}
        out: dict[str, QueueWaitStats] = {}
        for queue in self.queues():
            waits = sorted(w for _, w in self._waits.get(queue, ()))
            arrival = len(self._arrivals.get(queue, ())) / span
            drain = len(self._drains.get(queue, ())) / span
            out[queue] = QueueWaitStats(
                queue=queue, samples=len(waits),
                wait_mean_s=sum(waits) / len(waits) if waits else None,
                wait_p95_s=percentile(waits, 0.95), arrival_rate=arrival, drain_rate=drain,
                time_to_empty_s=time_to_empty(ready.get(queue), arrival, drain),
                window_s=span)
        return out
