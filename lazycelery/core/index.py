"""TaskIndex: the bounded, in-memory index of tasks and workers that every view reads.

One writer (the ingest thread) applies events in batches under ``lock`` and bumps ``version``;
readers take the same lock only to copy what they show. Every operation per event is O(1):
dict lookups, ``OrderedDict.move_to_end`` and ``popitem`` for eviction, counter updates.

Eviction is least-recently-*active* first, and finished tasks go before unfinished ones:
celery's ``State`` evicts by first sighting, so a long task vanishes while it runs. Here a task
that is still PENDING / RECEIVED / STARTED / RETRY is only evicted when every retained task is
unfinished.
"""

from __future__ import annotations

import contextlib
import heapq
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from lazycelery.core.model import (
    READY_STATES,
    TaskRecord,
    WorkerRecord,
    apply_task_event,
    apply_worker_event,
    worker_status,
)
from lazycelery.core.sanitize import APPLY_FAILED, NOT_AN_EVENT, BadInput, field_kind

__all__ = ["DEFAULT_MAX_TASKS", "TaskIndex"]

DEFAULT_MAX_TASKS: Final = 100_000
#: distinct event types counted by name; further ones (any client can invent them) share one
TYPES_MAX: Final = 256
OTHER_TYPES: Final = "(other)"


def _bump(counter: dict[str, int], key: str | None, delta: int) -> None:
    if key is None:
        return
    value = counter.get(key, 0) + delta
    if value:
        counter[key] = value
    else:
        counter.pop(key, None)


class TaskIndex:
    """Tasks by uuid (LRU by last activity), workers by hostname, and O(1) counters."""

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS,
                 clock: Callable[[], float] = time.time) -> None:
        if max_tasks < 1:
            raise ValueError("max_tasks must be at least 1")
        self.max_tasks = max_tasks
        self.clock = clock
        self.lock = threading.Lock()
        #: bumped once per applied batch; views cache what they derive per version
        self.version = 0
        # unfinished and finished tasks, each ordered least -> most recently active
        self._active: OrderedDict[str, TaskRecord] = OrderedDict()
        self._done: OrderedDict[str, TaskRecord] = OrderedDict()
        self.workers: dict[str, WorkerRecord] = {}
        self.by_state: dict[str, int] = {}
        self.by_name: dict[str, int] = {}
        self.by_worker: dict[str, int] = {}
        self._children: dict[str, list[str]] = {}
        self.events_total = 0
        self.events_by_type: dict[str, int] = {}
        self.evicted = 0
        #: events refused (no type, no uuid ...); details by kind in ``bad``
        self.malformed = 0
        #: bad input by kind, skipped or repaired: the index's and its readers' (the Ingestor
        #: hands this to its decoders, so one object counts a whole stream)
        self.bad = BadInput()

    # ------------------------------------------------------------------ writing

    def apply_batch(self, events: Iterable[Mapping[str, Any]]) -> list[TaskRecord | WorkerRecord | None]:
        """Apply events in order under the lock; returns the record each one touched
        (None for a malformed or unknown event). Bumps ``version`` once. Never raises for a
        bad event: it is counted and the batch's other events are applied."""
        with self.lock:
            now = self.clock()  # one clock read per batch: batches span milliseconds
            touched = [self._apply(event, now) for event in events]
            self.version += 1
        return touched

    def apply(self, event: Mapping[str, Any]) -> TaskRecord | WorkerRecord | None:
        return self.apply_batch((event,))[0]

    def _refuse(self, kind: str, detail: str | None = None) -> None:
        self.malformed += 1
        self.bad.skip(kind, detail)

    def _apply(self, event: Mapping[str, Any], now: float) -> TaskRecord | WorkerRecord | None:
        try:  # free in CPython 3.11 until something raises
            kind = event["type"]
            if kind.__class__ is not str:
                self._refuse(field_kind("type"))
                return None
            self.events_total += 1
            by_type = self.events_by_type
            count = by_type.get(kind)
            if count is not None:
                by_type[kind] = count + 1
            elif len(by_type) < TYPES_MAX:
                by_type[kind] = 1
            else:
                by_type[OTHER_TYPES] = by_type.get(OTHER_TYPES, 0) + 1
            if kind.startswith("task-"):
                uuid = event.get("uuid")
                if uuid.__class__ is not str or not uuid:
                    self._refuse(field_kind("uuid"))
                    return None
                return self._apply_task(uuid, event, now)
            if kind.startswith("worker-"):
                host = event.get("hostname")
                if host.__class__ is not str or not host:
                    self._refuse(field_kind("hostname"))
                    return None
                worker = self.workers.get(host)
                if worker is None:
                    worker = self.workers[host] = WorkerRecord(hostname=host)
                apply_worker_event(worker, event, now, self.bad)
                return worker
            return None
        except (KeyError, TypeError, AttributeError) as exc:
            if not isinstance(event, Mapping) or "type" not in event:
                self._refuse(NOT_AN_EVENT)
                return None
            self._refuse(APPLY_FAILED, exc.__class__.__name__)
            return None
        except Exception as exc:  # the model checks every field; never one event's failure
            self._refuse(APPLY_FAILED, exc.__class__.__name__)
            return None

    def _apply_task(self, uuid: str, event: Mapping[str, Any], now: float) -> TaskRecord:
        rec = self._active.pop(uuid, None)
        if rec is None:
            rec = self._done.pop(uuid, None)
        if rec is None:
            rec = TaskRecord(uuid=uuid)
            old_state: str | None = None
        else:
            old_state = rec.state
        old_name, old_worker, old_parent = rec.name, rec.worker, rec.parent_id
        try:
            apply_task_event(rec, event, self.bad)
        except Exception as exc:  # pragma: no cover - the model checks every field it reads
            # keep what was merged so far and the record in the index, count it, go on
            self._refuse(APPLY_FAILED, exc.__class__.__name__)
        rec.last_seen = now
        state = rec.state
        (self._done if state in READY_STATES else self._active)[uuid] = rec
        if state != old_state:  # nearly every event: _bump written out
            by_state = self.by_state
            if old_state is not None:
                left = by_state[old_state] - 1
                if left:
                    by_state[old_state] = left
                else:
                    del by_state[old_state]
            by_state[state] = by_state.get(state, 0) + 1
        if rec.name is not old_name:
            _bump(self.by_name, old_name, -1)
            _bump(self.by_name, rec.name, +1)
        if rec.worker is not old_worker:
            _bump(self.by_worker, old_worker, -1)
            _bump(self.by_worker, rec.worker, +1)
        if old_parent is None and rec.parent_id is not None:
            self._children.setdefault(rec.parent_id, []).append(uuid)
        if old_state is None and len(self._active) + len(self._done) > self.max_tasks:
            self._evict_over_capacity()
        return rec

    def _evict_over_capacity(self) -> None:
        while len(self._active) + len(self._done) > self.max_tasks:
            pool = self._done if self._done else self._active
            _, rec = pool.popitem(last=False)
            self._forget(rec)

    def _forget(self, rec: TaskRecord) -> None:
        self.evicted += 1
        _bump(self.by_state, rec.state, -1)
        _bump(self.by_name, rec.name, -1)
        _bump(self.by_worker, rec.worker, -1)
        if rec.parent_id is not None:
            siblings = self._children.get(rec.parent_id)
            if siblings is not None:
                # O(siblings): a parent has few children (a chain step has one).
                with contextlib.suppress(ValueError):
                    siblings.remove(rec.uuid)
                if not siblings:
                    del self._children[rec.parent_id]

    # ------------------------------------------------------------------ reading
    # Callers that iterate must hold ``lock`` (or accept a RuntimeError if the writer
    # changes the dicts meanwhile); single lookups are safe without it.

    def __len__(self) -> int:
        return len(self._active) + len(self._done)

    def __contains__(self, uuid: object) -> bool:
        return uuid in self._active or uuid in self._done

    def get(self, uuid: str) -> TaskRecord | None:
        rec = self._active.get(uuid)
        return rec if rec is not None else self._done.get(uuid)

    def children_of(self, uuid: str) -> list[str]:
        return list(self._children.get(uuid, ()))

    def iter_newest(self) -> Iterator[TaskRecord]:
        """Tasks, most recently active first (lazy: the first k cost O(k log 2))."""
        return heapq.merge(reversed(self._active.values()), reversed(self._done.values()),
                           key=lambda r: r.last_seen, reverse=True)

    def iter_unfinished(self) -> Iterator[TaskRecord]:
        """Tasks not in a ready state, least recently active first."""
        return iter(self._active.values())

    def newest(self, n: int) -> list[TaskRecord]:
        with self.lock:
            out: list[TaskRecord] = []
            for rec in self.iter_newest():
                if len(out) >= n:
                    break
                out.append(rec)
            return out

    def snapshot(self) -> list[TaskRecord]:
        """Every record, most recently active first (O(n): for filters and sorts)."""
        with self.lock:
            return list(self.iter_newest())

    def counts(self) -> dict[str, Any]:
        """A consistent copy of the counters."""
        with self.lock:
            return {
                "tasks": len(self),
                "by_state": dict(self.by_state),
                "by_name": dict(self.by_name),
                "by_worker": dict(self.by_worker),
                "events": self.events_total,
                "evicted": self.evicted,
                "malformed": self.malformed,
                "version": self.version,
            }

    def worker_rows(self, now: float | None = None) -> list[tuple[WorkerRecord, str]]:
        """(worker, status) pairs sorted by hostname, status computed at ``now``."""
        now = self.clock() if now is None else now
        with self.lock:
            return [(w, worker_status(w, now)) for _, w in sorted(self.workers.items())]

    def mark_reconciled(self, uuid: str, state: str, *, expect_state: str | None = None,
                        **fields: Any) -> TaskRecord | None:
        """Correct a task from a source other than events (result backend, inspect).

        With ``expect_state``, nothing changes unless the task is still in that state (an event
        may have moved it on while the caller was asking the backend). Returns the record, or
        None if the task is gone or was not in ``expect_state``."""
        with self.lock:
            rec = self.get(uuid)
            if rec is None or (expect_state is not None and rec.state != expect_state):
                return None
            old_state, old_name, old_worker = rec.state, rec.name, rec.worker
            for key, value in fields.items():
                setattr(rec, key, value)
            rec.state = state
            rec.reconciled = True
            if state != old_state:
                _bump(self.by_state, old_state, -1)
                _bump(self.by_state, state, +1)
                if state in READY_STATES and uuid in self._active:
                    self._done[uuid] = self._active.pop(uuid)
            if rec.name != old_name:
                _bump(self.by_name, old_name, -1)
                _bump(self.by_name, rec.name, +1)
            if rec.worker != old_worker:
                _bump(self.by_worker, old_worker, -1)
                _bump(self.by_worker, rec.worker, +1)
            self.version += 1
            return rec
