"""The single writer's batching: events from a reader are applied to the TaskIndex in small
batches (by size, or when the stream pauses), counted, and handed on with the records they touched."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.core.sanitize import TIME_MAX
from lazycelery.mask import Masker
from lazycelery.urls import error_line

__all__ = ["FLUSH_DELAY", "RATE_TAU", "BatchSink", "EventSink", "OnBatch"]

log = logging.getLogger(__name__)

#: how long an event may wait in the buffer while more keep arriving
FLUSH_DELAY: Final = 0.02
#: time constant of the events-per-second average
RATE_TAU: Final = 2.0

OnBatch = Callable[[Sequence[Mapping[str, Any]], Sequence[TaskRecord | WorkerRecord | None]], None]


class EventSink(Protocol):
    """Where the fast-path readers put events (a :class:`BatchSink`)."""

    def extend(self, events: list[dict[str, Any]]) -> None: ...

    def flush(self) -> None: ...


class BatchSink:
    """Buffers events from the reader and applies them to the index in batches.

    Only the ingest thread calls ``add``/``extend``/``flush``: the single writer. A batch is
    applied when it reaches ``batch_max`` or when the reader sees the stream pause (it calls
    ``flush``), so no timer runs per event.
    """

    def __init__(self, index: TaskIndex, on_batch: OnBatch | None = None,
                 batch_max: int = 512, on_bad: Callable[[], None] | None = None,
                 keep: Callable[[Mapping[str, Any]], bool] | None = None,
                 masker: Masker | None = None) -> None:
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self.index = index
        self.on_batch = on_batch
        self.batch_max = batch_max
        #: called from ``tick`` while bad input has not been reported (it rate-limits itself)
        self.on_bad = on_bad
        #: events for which this returns False are dropped before the index sees them (a
        #: recorder's shard of task ids: ``lazycelery record --shard``)
        self.keep = keep
        #: masks each batch before the index, the sinks or the store see it (lazycelery.mask):
        #: the one place where masking is applied
        self.masker = masker
        self.bad = index.bad
        self.buffer: list[Mapping[str, Any]] = []
        self.first_at = 0.0
        self.events = 0
        self.batches = 0
        #: wall-clock time the last batch was applied, and the sender time of its last event:
        #: where a gap starts, if one follows (see ``Ingestor._on_failure``)
        self.last_event_at: float | None = None
        self.last_event_ts: float | None = None
        # (rate, monotonic time): a leaky integrator, swapped whole so readers see a pair
        self._rate: tuple[float, float] = (0.0, time.monotonic())

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def add(self, event: Mapping[str, Any]) -> None:
        buffer = self.buffer
        if not buffer:
            self.first_at = time.monotonic()
        buffer.append(event)
        if len(buffer) >= self.batch_max:
            self.flush()

    def extend(self, events: Sequence[Mapping[str, Any]]) -> None:
        if not self.buffer:
            self.first_at = time.monotonic()
        self.buffer.extend(events)
        if len(self.buffer) >= self.batch_max:
            self.flush()

    def due(self) -> bool:
        """True when the oldest buffered event has waited ``FLUSH_DELAY``."""
        return bool(self.buffer) and time.monotonic() - self.first_at >= FLUSH_DELAY

    def tick(self) -> None:
        """Readers call this (through ``flush``) at least every poll interval: bad input not
        yet reported goes to ``on_bad``. One attribute test when there is none."""
        if self.bad.pending and self.on_bad is not None:
            self.on_bad()
        if self.masker is not None:
            self.masker.tick()

    def flush(self) -> None:
        if not self.buffer:
            self.tick()
            return
        batch, self.buffer = self.buffer, []
        if self.keep is not None:
            keep = self.keep
            batch = [event for event in batch if keep(event)]
            if not batch:
                self.tick()
                return
        if self.masker is not None:
            self.masker.apply(batch)  # type: ignore[arg-type]  # the readers' own fresh dicts
        records = self.index.apply_batch(batch)
        self.last_event_at = time.time()
        sent = batch[-1].get("timestamp")  # O(1): a batch is in arrival order
        if sent.__class__ is float and 0.0 <= sent <= TIME_MAX:
            self.last_event_ts = sent
        self.events += len(batch)
        self.batches += 1
        now = time.monotonic()
        rate, at = self._rate
        self._rate = (rate * math.exp(-(now - at) / RATE_TAU) + len(batch) / RATE_TAU, now)
        if self.on_batch is not None:
            try:
                self.on_batch(batch, records)
            except Exception as exc:
                # one line, never a traceback on the user's terminal
                log.warning("on_batch callback failed: %s", error_line(exc, limit=300))
        self.tick()

    def rate(self) -> float:
        """Events per second, exponentially averaged over about ``RATE_TAU`` seconds."""
        rate, at = self._rate
        return rate * math.exp(-max(0.0, time.monotonic() - at) / RATE_TAU)
