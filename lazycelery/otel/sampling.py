"""Which traces are kept: a ratio for the plain successful ones, and tail rules that always
keep a trace with a failed, retried or slow task. Pure Python, used by the exporter thread only.

A trace is the spans of one workflow (same root task id). Its spans wait here until the root
task finished plus ``wait`` seconds (the rest of a chain or chord finishes meanwhile), or at most
``max_age`` seconds when the root is never seen finishing; then the trace is decided and its
spans are released or dropped. A span of an already decided trace follows the decision at once,
except that a failed, retried or slow span turns a "drop" into a "keep" for the rest of the trace
(its earlier spans are gone). Memory is bounded: at most ``max_spans`` spans wait (beyond that
the oldest trace is decided early) and the last ``max_decisions`` decisions are remembered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Generic, TypeVar

__all__ = ["MAX_DECISIONS", "TailSampler", "ratio_keeps"]

T = TypeVar("T")

#: decisions remembered for spans that finish after their trace was decided
MAX_DECISIONS: Final = 100_000
_MASK56: Final = (1 << 56) - 1


def ratio_keeps(trace_id: int, ratio: float) -> bool:
    """Keep when the trace id's rightmost 56 bits are under ratio * 2**56 (the random part
    by W3C Trace Context level 2, and OpenTelemetry's consistent-probability threshold), so
    every recorder agrees on the same traces. Not the low 64 bits of the SDK's older
    TraceIdRatioBased: trace ids here are uuid4 task ids, whose 57th-64th bits hold the UUID
    variant and are not random."""
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    return (trace_id & _MASK56) < round(ratio * (1 << 56))


@dataclass
class _Trace(Generic[T]):
    trace_id: int
    created: float
    items: list[T] = field(default_factory=list)
    deadline: float | None = None
    interesting: bool = False


class TailSampler(Generic[T]):
    """Holds spans (any item) per trace key until their trace is decided."""

    def __init__(self, ratio: float, *, wait: float = 5.0, max_age: float | None = None,
                 max_spans: int = 100_000, max_decisions: int = MAX_DECISIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ratio = ratio
        self.wait = wait
        self.max_age = max_age if max_age is not None else max(60.0, 4 * wait)
        self.max_spans = max_spans
        self.max_decisions = max_decisions
        self.clock = clock
        self._traces: OrderedDict[str, _Trace[T]] = OrderedDict()  # by creation
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self.held = 0
        self.kept_traces = 0
        self.dropped_traces = 0
        self.dropped_spans = 0

    def add(self, key: str, trace_id: int, item: T, *, root_done: bool,
            interesting: bool) -> list[T]:
        """File a finished span; returns the spans released now (its own, when its trace was
        already kept, and whatever an early decision released)."""
        decided = self._decided.get(key)
        if decided is not None:
            if decided or interesting:
                if not decided:
                    self._remember(key, True)
                return [item]
            self.dropped_spans += 1
            return []
        now = self.clock()
        trace = self._traces.get(key)
        if trace is None:
            trace = self._traces[key] = _Trace(trace_id, now)
        trace.items.append(item)
        self.held += 1
        trace.interesting = trace.interesting or interesting
        if root_done and trace.deadline is None:
            trace.deadline = now + self.wait
        released: list[T] = []
        while self.held > self.max_spans and self._traces:
            oldest = next(iter(self._traces))
            released.extend(self._decide(oldest))
        return released

    def due(self) -> list[T]:
        """Decide the traces whose wait is over; returns the spans kept."""
        now = self.clock()
        released: list[T] = []
        for key, trace in list(self._traces.items()):
            limit = trace.created + self.max_age
            if trace.deadline is not None:
                limit = min(limit, trace.deadline)
            if now >= limit:
                released.extend(self._decide(key))
        return released

    def flush(self) -> list[T]:
        """Decide every waiting trace now (at shutdown)."""
        released: list[T] = []
        for key in list(self._traces):
            released.extend(self._decide(key))
        return released

    @property
    def waiting_traces(self) -> int:
        return len(self._traces)

    def _decide(self, key: str) -> list[T]:
        trace = self._traces.pop(key)
        self.held -= len(trace.items)
        keep = trace.interesting or ratio_keeps(trace.trace_id, self.ratio)
        self._remember(key, keep)
        if keep:
            self.kept_traces += 1
            return trace.items
        self.dropped_traces += 1
        self.dropped_spans += len(trace.items)
        return []

    def _remember(self, key: str, keep: bool) -> None:
        self._decided[key] = keep
        self._decided.move_to_end(key)
        while len(self._decided) > self.max_decisions:
            self._decided.popitem(last=False)
