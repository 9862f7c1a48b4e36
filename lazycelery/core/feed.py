"""The hand-off of ingest batches to the UI thread: the ingest thread pushes the events and the
records they touched, the UI drains them before a frame (bounded; an overflow is reported)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TaskFeed"]


class TaskFeed:
    """Thread-safe hand-off of ingest batches to the UI thread (push there, drain here).

    Bounded: if the UI does not drain (suspended terminal), batches beyond ``limit`` events are
    dropped and ``drain`` reports ``overflowed`` so the reader resynchronises from the index.
    """

    def __init__(self, limit: int = 2_000_000) -> None:
        self._lock = threading.Lock()
        self._batches: list[tuple[Sequence[Mapping[str, Any]], Sequence[object]]] = []
        self._pending = 0
        self._limit = limit
        self._overflowed = False

    def push(self, events: Sequence[Mapping[str, Any]], records: Sequence[object]) -> None:
        """Called on the ingest thread after the index applied ``events``."""
        with self._lock:
            if self._pending + len(records) > self._limit:
                self._batches.clear()
                self._pending = 0
                self._overflowed = True
                return
            self._batches.append((events, records))
            self._pending += len(records)

    def drain(self) -> tuple[list[Mapping[str, Any]], list[object], bool]:
        """(events, touched records, overflowed) since the last drain, in order."""
        with self._lock:
            batches, self._batches = self._batches, []
            overflowed, self._overflowed = self._overflowed, False
            self._pending = 0
        events: list[Mapping[str, Any]] = []
        records: list[object] = []
        for evs, recs in batches:
            events.extend(evs)
            records.extend(recs)
        return events, records, overflowed
