"""Recent depths of each queue, sampled from successive queue snapshots (the dashboard's
depth sparklines)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from lazycelery.text import real

__all__ = ["QueueHistory"]


def _depth(ready: object) -> int:
    # a depth that is not a finite number (a broker figure of an odd type) counts as 0
    finite = real(ready)
    return 0 if finite is None else int(finite)


@dataclass
class QueueHistory:
    """Recent depth samples per queue, taken from each new queue snapshot (for sparklines)."""

    size: int = 60
    samples: dict[str, deque[int]] = field(default_factory=dict)
    _last: object = None

    def update(self, snapshot: Any) -> bool:
        """Record ``snapshot`` if it is new; returns True when it was."""
        if snapshot is None or snapshot is self._last:
            return False
        self._last = snapshot
        for stats in getattr(snapshot, "queues", ()):
            series = self.samples.get(stats.name)
            if series is None:
                series = self.samples[stats.name] = deque(maxlen=self.size)
            series.append(_depth(getattr(stats, "ready", None)))
        return True

    def series(self, name: str) -> list[int]:
        return list(self.samples.get(name, ()))
