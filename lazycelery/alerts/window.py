"""Sliding time windows kept in buckets: a count and a runtime histogram, each O(1) per event
and O(expired buckets) per read, so evaluating a rule never looks at the tasks themselves."""

from __future__ import annotations

import math
from collections import deque
from typing import Final

__all__ = ["BUCKETS", "BucketCounter", "RuntimeHistogram"]

#: a window is kept in this many buckets: counts are exact to 1/BUCKETS of the window
BUCKETS: Final = 20
#: runtime histogram: bins 10 % wide from 1 ms; the last one holds everything above ~2 days
_LOW: Final = 0.001
_GROWTH: Final = 1.1
_BINS: Final = 200
_LOG_GROWTH: Final = math.log(_GROWTH)


class BucketCounter:
    """How many events in the last ``window`` seconds (to one bucket's precision)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.width = window / BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket number, count]
        self._total = 0

    def add(self, now: float, n: int = 1) -> None:
        number = int(now // self.width)
        buckets = self._buckets
        if buckets and buckets[-1][0] >= number:
            # same bucket (or a clock step back: counted in the newest bucket)
            buckets[-1][1] += n
        else:
            buckets.append([number, n])
        self._total += n

    def total(self, now: float) -> int:
        oldest = int(now // self.width) - BUCKETS
        buckets = self._buckets
        while buckets and buckets[0][0] <= oldest:
            self._total -= buckets.popleft()[1]
        return self._total


def _bin(seconds: float) -> int:
    if seconds <= _LOW:
        return 0
    return min(_BINS - 1, int(math.log(seconds / _LOW) / _LOG_GROWTH) + 1)


def _upper(bin_number: int) -> float:
    return _LOW * _GROWTH ** bin_number


class RuntimeHistogram:
    """Runtimes of the last ``window`` seconds in log bins (10 % wide): percentiles to within
    10 %, a read costs at most ``_BINS`` steps whatever the number of tasks."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.width = window / BUCKETS
        self._buckets: deque[tuple[int, dict[int, int]]] = deque()
        self._counts = [0] * _BINS
        self._total = 0

    def add(self, now: float, runtime: float) -> None:
        number = int(now // self.width)
        buckets = self._buckets
        if not buckets or buckets[-1][0] < number:
            buckets.append((number, {}))
        bins = buckets[-1][1]
        b = _bin(runtime)
        bins[b] = bins.get(b, 0) + 1
        self._counts[b] += 1
        self._total += 1

    def _expire(self, now: float) -> None:
        oldest = int(now // self.width) - BUCKETS
        buckets, counts = self._buckets, self._counts
        while buckets and buckets[0][0] <= oldest:
            for b, n in buckets.popleft()[1].items():
                counts[b] -= n
                self._total -= n

    def count(self, now: float) -> int:
        self._expire(now)
        return self._total

    def percentile(self, now: float, q: float) -> float | None:
        """The ``q`` quantile (0.95 for p95) as its bin's upper edge; None when empty."""
        self._expire(now)
        if self._total == 0:
            return None
        rank = math.ceil(q * self._total)
        seen = 0
        for b, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                return _upper(b)
        return _upper(_BINS - 1)
