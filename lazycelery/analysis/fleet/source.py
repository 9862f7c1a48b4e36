"""Where the fleet analysis reads from: the history store (tasks active in the range and the
worker samples), or memory (a ``TaskIndex`` and the worker events kept by a ``BeatLog``)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from lazycelery.analysis.fleet.heartbeats import LIVE, STORED, Beat, beat_of
from lazycelery.core.model import TaskRecord
from lazycelery.store.history import sample_event
from lazycelery.store.reader import task_page

if TYPE_CHECKING:
    from lazycelery.core.index import TaskIndex
    from lazycelery.store.backend import Store

__all__ = ["BEATS_KEPT", "BeatLog", "FleetData", "from_index", "from_store"]

#: beats kept per worker in memory (an hour of beats every 2 s)
BEATS_KEPT: Final = 1_800


@dataclass(frozen=True)
class FleetData:
    """Task records and worker beats of ``[since, until)``; ``resolution`` of the beats
    (``heartbeats.LIVE`` or ``STORED``); ``origin`` says where they came from."""

    records: list[TaskRecord]
    beats: list[Beat]
    since: float
    until: float
    resolution: float
    origin: dict[str, Any] = field(default_factory=dict)


def from_store(store: Store, since: float, until: float) -> FleetData:
    """Every task whose last activity lies in the range (pages of 5,000, newest first) and
    every worker sample taken in it."""
    records: list[TaskRecord] = []
    cursor: float | None = None
    while True:
        page = task_page(store, since, until, cursor, limit=5_000)
        records.extend(t.record for t in page.tasks)
        if page.cursor is None:
            break
        cursor = page.cursor
    beats = [b for b in (beat_of(sample_event(s)) for s in store.worker_samples(since, until))
             if b is not None]
    return FleetData(records, beats, since, until, STORED, {"store": True})


class BeatLog:
    """The last ``BEATS_KEPT`` beats of each worker, fed from event batches (any thread)."""

    def __init__(self, kept: int = BEATS_KEPT) -> None:
        self._lock = threading.Lock()
        self._kept = kept
        self._beats: dict[str, deque[Beat]] = {}
        self.version = 0

    def feed(self, events: Iterable[Mapping[str, Any]]) -> None:
        found = [b for b in (beat_of(e) for e in events
                             if str(e.get("type", "")).startswith("worker-")) if b is not None]
        if not found:
            return
        with self._lock:
            for beat in found:
                kept = self._beats.get(beat.worker)
                if kept is None:
                    kept = self._beats[beat.worker] = deque(maxlen=self._kept)
                kept.append(beat)
            self.version += 1

    def beats(self, since: float | None = None) -> list[Beat]:
        with self._lock:
            every = [b for kept in self._beats.values() for b in kept]
        return [b for b in every if since is None or b.time >= since]


def from_index(index: TaskIndex, beats: BeatLog, since: float, until: float) -> FleetData:
    """The records the index holds (copied under its lock) and the logged beats."""
    return FleetData(index.snapshot(), beats.beats(since), since, until, LIVE, {"memory": True})
