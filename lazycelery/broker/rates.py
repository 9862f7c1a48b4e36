"""Per-queue rates from successive snapshots: an exponentially weighted moving average per key
(the dashboard's event rates are another thing: ``lazycelery.core.event_rates``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SmoothedRates"]


@dataclass
class _Sample:
    value: float
    at: float
    rate: float | None


class SmoothedRates:
    """Smoothed d(value)/dt per key.

    The weight of a new raw rate is ``1 - 2 ** (-dt / half_life_s)``: it depends on the time
    between samples, not on their count, so an irregular interval (a slow broker, a wake-up
    after a purge) does not change how fast old rates fade.
    """

    def __init__(self, half_life_s: float = 5.0, min_first_dt: float = 0.25) -> None:
        if half_life_s <= 0:
            raise ValueError("half_life_s must be > 0")
        self.half_life_s = half_life_s
        self.min_first_dt = min_first_dt
        self._samples: dict[str, _Sample] = {}

    def update(self, key: str, value: float, at: float) -> float | None:
        """Record ``value`` seen at ``at``; returns the smoothed rate, None after one sample."""
        previous = self._samples.get(key)
        if previous is None:
            self._samples[key] = _Sample(value, at, None)
            return None
        dt = at - previous.at
        if dt <= 0:
            return previous.rate
        if previous.rate is None and dt < self.min_first_dt:
            # The first rate is taken unsmoothed, so it needs a long enough baseline: two
            # reads 5 ms apart would turn one message into 200/s. Keep the older sample.
            return None
        raw = (value - previous.value) / dt
        if previous.rate is None:
            rate = raw
        else:
            weight = 1.0 - math.pow(2.0, -dt / self.half_life_s)
            rate = previous.rate + weight * (raw - previous.rate)
        self._samples[key] = _Sample(value, at, rate)
        return rate

    def rate(self, key: str) -> float | None:
        sample = self._samples.get(key)
        return sample.rate if sample else None

    def forget_except(self, keys: Iterable[str]) -> None:
        """Drop keys that are gone, so a queue that reappears starts afresh."""
        keep = set(keys)
        for key in [k for k in self._samples if k not in keep]:
            del self._samples[key]
