"""Bounded counters and time buckets the error groups keep (memory stays flat however many
distinct values a field takes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

__all__ = ["OTHER", "BoundedCounter", "Buckets"]

#: the key that counts values beyond a counter's bound
OTHER: Final = "(other)"


class BoundedCounter:
    """Counts per value for at most ``limit`` distinct values; later new values count under
    ``OTHER`` (so shares stay exact, only the names of rare values are lost)."""

    __slots__ = ("counts", "limit", "total")

    def __init__(self, limit: int = 64) -> None:
        self.counts: dict[str, int] = {}
        self.limit = limit
        self.total = 0

    def add(self, value: str | None, n: int = 1) -> None:
        if value is None:
            return
        counts = self.counts
        if value not in counts and len(counts) >= self.limit:
            value = OTHER
        counts[value] = counts.get(value, 0) + n
        self.total += n

    def get(self, value: str) -> int:
        return self.counts.get(value, 0)

    def top(self, n: int | None = None) -> list[tuple[str, int]]:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked if n is None else ranked[:n]

    def __len__(self) -> int:
        return len(self.counts)


class Buckets:
    """Counts per time bucket of ``width`` seconds (epoch-aligned), the newest ``keep`` kept."""

    __slots__ = ("counts", "keep", "width")

    def __init__(self, width: int, keep: int) -> None:
        self.width = width
        self.keep = keep
        self.counts: dict[int, int] = {}

    def add(self, t: float, n: int = 1) -> None:
        b = int(t // self.width) * self.width
        counts = self.counts
        counts[b] = counts.get(b, 0) + n
        if len(counts) > self.keep * 2:  # prune now and then: amortised O(1)
            for old in sorted(counts)[: len(counts) - self.keep]:
                del counts[old]

    def series(self, start: float, end: float) -> list[tuple[int, int]]:
        """(bucket start, count) for every bucket from ``start`` to ``end``, zeros included."""
        w = self.width
        first, last = int(start // w) * w, int(end // w) * w
        if last < first:
            return []
        if (last - first) // w > 100_000:
            first = last - 100_000 * w
        return [(b, self.counts.get(b, 0)) for b in range(first, last + w, w)]

    def merged(self, others: Iterable[Buckets]) -> None:
        for other in others:
            for b, n in other.counts.items():
                self.add(b, n)
