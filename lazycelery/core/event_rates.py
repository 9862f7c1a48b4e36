"""Event rates for the dashboard's header and sparklines: events, successes and failures per
second over the last minutes (the queue rates of the broker monitor are ``broker.rates``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["EventRates"]


class EventRates:
    """Per-second counts of events, successes and failures over the last ``horizon`` seconds
    (a ring of buckets: O(1) per event, O(window) per query)."""

    def __init__(self, horizon: int = 600, clock: Callable[[], float] = time.time) -> None:
        self.horizon = horizon
        self._clock = clock
        self._events = [0] * horizon
        self._ok = [0] * horizon
        self._failed = [0] * horizon
        self._stamp = [-1] * horizon  # which second each slot currently holds

    def _slot(self, second: int) -> int:
        i = second % self.horizon
        if self._stamp[i] != second:
            self._stamp[i] = second
            self._events[i] = self._ok[i] = self._failed[i] = 0
        return i

    def add(self, events: Sequence[Mapping[str, Any]], now: float | None = None) -> None:
        """Count events (bucketed by their local receive time, else ``now``)."""
        now = self._clock() if now is None else now
        for event in events:
            when = event.get("local_received")
            second = int(when if isinstance(when, (int, float)) else now)
            if second <= now - self.horizon:
                continue
            i = self._slot(second)
            self._events[i] += 1
            kind = event.get("type")
            if kind == "task-succeeded":
                self._ok[i] += 1
            elif kind == "task-failed":
                self._failed[i] += 1

    def _sum(self, series: list[int], seconds: int, now: float) -> int:
        end = int(now)
        total = 0
        for second in range(end - seconds + 1, end + 1):
            i = second % self.horizon
            if self._stamp[i] == second:
                total += series[i]
        return total

    def events_per_second(self, window: int = 5, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        # the current second is incomplete: average over the completed ones
        return self._sum(self._events, window, now - 1) / window

    def totals(self, window: int = 300, now: float | None = None) -> tuple[int, int]:
        """(succeeded, failed) over the last ``window`` seconds."""
        now = self._clock() if now is None else now
        return self._sum(self._ok, window, now), self._sum(self._failed, window, now)

    def success_rate(self, window: int = 300, now: float | None = None) -> float | None:
        """Share of finished tasks that succeeded in the window (None if none finished)."""
        ok, failed = self.totals(window, now)
        return None if ok + failed == 0 else ok / (ok + failed)

    def series(self, kind: str, buckets: int, bucket_seconds: int = 1,
               now: float | None = None) -> list[float]:
        """Per-second rate of ``kind`` ("events", "ok", "failed") in ``buckets`` buckets,
        oldest first, ending with the last completed second."""
        now = self._clock() if now is None else now
        data = {"events": self._events, "ok": self._ok, "failed": self._failed}[kind]
        end = int(now) - 1
        out: list[float] = []
        for b in range(buckets - 1, -1, -1):
            hi = end - b * bucket_seconds
            total = 0
            for second in range(hi - bucket_seconds + 1, hi + 1):
                i = second % self.horizon
                if self._stamp[i] == second:
                    total += data[i]
            out.append(total / bucket_seconds)
        return out
