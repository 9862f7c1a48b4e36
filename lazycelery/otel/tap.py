"""The tap on the ingest thread: after each applied batch, snapshots of the task records an
event finished (and the ``traceparent`` reports of the worker-side companion) go to a bounded
deque; when it is full they are counted as lost. O(1) per event, never blocks, no SDK import."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from lazycelery.core.model import READY_STATES, TaskRecord, WorkerRecord

__all__ = ["TRACEPARENT_EVENT", "Tap"]

#: the event the worker-side companion (plugins/lazycelery-traceparent) sends per task
TRACEPARENT_EVENT: Final = "task-traceparent"
_FINISHING: Final = frozenset({"task-succeeded", "task-failed", "task-revoked", "task-rejected",
                               "task-retried", TRACEPARENT_EVENT})
#: item kinds: (_DONE, record), (_RETRY, record, event time), (_TP, task id, traceparent)
_DONE, _RETRY, _TP = 0, 1, 2


class Tap:
    """Holds what the exporter side has not taken yet (``_queue``, at most ``limit`` items)."""

    def __init__(self, limit: int) -> None:
        self._queue: deque[tuple[Any, ...]] = deque()
        self._limit = limit
        self._wake = threading.Event()
        self.lost = 0
        self.queued = 0

    def on_batch(self, events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
        """Called on the ingest thread after each applied batch: O(1) per event, never blocks."""
        queue = self._queue
        limit = self._limit
        added = 0
        watched = _FINISHING
        for event, rec in zip(events, records, strict=False):
            # the index refused an event whose type is not a string: its record is None
            if rec.__class__ is not TaskRecord:
                continue
            kind = event.get("type")
            if kind not in watched:
                continue
            assert isinstance(rec, TaskRecord)
            if kind == TRACEPARENT_EVENT:
                item: tuple[Any, ...] = (_TP, rec.uuid, event.get("traceparent"))
            elif kind == "task-retried":
                # the record is read after the whole batch: the retry's own time is the event's
                item = (_RETRY, msgspec.structs.replace(rec), event.get("timestamp"))
            elif rec.state in READY_STATES:
                item = (_DONE, msgspec.structs.replace(rec))
            else:
                continue  # a rejection that requeued the task: not its end
            if len(queue) >= limit:
                self.lost += 1
                continue
            queue.append(item)
            added += 1
        if added:
            self.queued += added
            self._wake.set()

    def tee(self, first: Callable[..., None] | None) -> Callable[..., None]:
        """An ``on_batch`` that calls ``first`` (the store writer, the tail sink), then this."""
        if first is None:
            return self.on_batch
        mine = self.on_batch

        def both(events: Sequence[Mapping[str, Any]],
                 records: Sequence[TaskRecord | WorkerRecord | None]) -> None:
            first(events, records)
            mine(events, records)

        return both
