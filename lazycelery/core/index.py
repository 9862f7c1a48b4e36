"""TaskIndex: the bounded, in-memory index of tasks and workers that every view reads.

One writer (the ingest thread) applies events in batches under ``lock`` and bumps ``version``;
readers take the same lock only to copy what they show. Every operation per event is O(1):
dict lookups, ``OrderedDict.move_to_end`` and ``popitem`` for eviction, counter updates.

Eviction is least-recently-*active* first, and finished tasks go before unfinished ones:
celery's ``State`` evicts by first sighting, so a long task vanishes while it runs. Here a task
that is still PENDING / RECEIVED / STARTED / RETRY is only evicted when every retained task is
unfinished (a burst larger than ``max_tasks``). Such a task will send more events, and its
``task-started`` / ``task-succeeded`` carry no name or args: the last ``limbo_size`` evicted
unfinished records are kept aside (not counted, not listed) and taken back whole when their task
comes back, so it keeps its name instead of showing as ``SUCCESS ?``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from lazycelery.core.model import (
    READY_STATES,
    TaskRecord,
    WorkerRecord,
    apply_task_event,
    apply_worker_event,
    derive_state,
    worker_status,
)
from lazycelery.core.sanitize import APPLY_FAILED, NOT_AN_EVENT, BadInput, field_kind

log = logging.getLogger(__name__)

__all__ = ["BACKFILLED", "DEFAULT_MAX_TASKS", "FROM_HISTORY", "TaskIndex"]

DEFAULT_MAX_TASKS: Final = 100_000
#: evicted task ids remembered for readers that drop them from their own lists (``evicted_since``)
EVICTION_LOG: Final = 16_384
#: ids of changed task records remembered for readers that cache text (``changed_since``)
CHANGE_LOG: Final = 65_536
#: unnamed tasks remembered for the reconciler to name from the result backend
UNNAMED_LOG: Final = 10_000
#: distinct event types counted by name; further ones (any client can invent them) share one
TYPES_MAX: Final = 256
OTHER_TYPES: Final = "(other)"
#: marks of a task record that came from the history store (``TaskIndex.mark``)
FROM_HISTORY: Final = 1
#: ... and that the store has only from the result backend (backfilled after a gap)
BACKFILLED: Final = 2

#: merges a stored record with a newer one (``lazycelery.store.rows.merge_records``)
Merge = Callable[[TaskRecord, TaskRecord], TaskRecord]


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
        # evicted unfinished records, kept aside until their task sends another event
        self.limbo_size = max(100, max_tasks // 10)
        self._limbo: OrderedDict[str, TaskRecord] = OrderedDict()
        #: evicted tasks that came back with a later event and were restored from limbo
        self.restored = 0
        # ids of the last EVICTION_LOG evictions; the n-th eviction is evicted_log[n - 1 - base]
        self._evicted_log: deque[str] = deque(maxlen=EVICTION_LOG)
        # tasks first seen through an event without a name (a task-started / task-succeeded of
        # a task started before we listened, or evicted and forgotten): the reconciler asks the
        # result backend for their names (``take_unnamed``, ``fill_identity``)
        self._unnamed: deque[str] = deque(maxlen=UNNAMED_LOG)
        #: bad input by kind, skipped or repaired: the index's and its readers' (the Ingestor
        #: hands this to its decoders, so one object counts a whole stream)
        self.bad = BadInput()
        #: tasks whose record came (in part) from the history store: uuid -> FROM_HISTORY |
        #: BACKFILLED (bounded: evicted tasks leave it)
        self._marks: dict[str, int] = {}
        #: tasks taken in from the store (``merge_stored``)
        self.from_history = 0
        #: task records changed in place so far (events, reconciliation, names filled in);
        #: the ids of the last CHANGE_LOG of them in ``_change_log`` (``changed_since``)
        self.changes = 0
        self._change_log: deque[str] = deque(maxlen=CHANGE_LOG)
        # work other threads hand to the writer: run by the next ``apply_batch``
        self._handed: deque[tuple[Callable[[], None], threading.Event]] = deque()

    # ------------------------------------------------------------------ writing

    def apply_batch(self, events: Iterable[Mapping[str, Any]]) -> list[TaskRecord | WorkerRecord | None]:
        """Apply events in order under the lock; returns the record each one touched
        (None for a malformed or unknown event). Bumps ``version`` once. Never raises for a
        bad event: it is counted and the batch's other events are applied."""
        with self.lock:
            if self._handed:  # work handed to the writer (``hand_over``) goes first
                self._run_handed()
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
        old_state: str | None = None
        if rec is not None:
            old_state = rec.state
            old_name, old_worker, old_parent = rec.name, rec.worker, rec.parent_id
        else:
            # new to the index (or back from limbo: counted again like a new task)
            rec = self._limbo.pop(uuid, None) if self._limbo else None
            if rec is None:
                rec = TaskRecord(uuid=uuid)
                if event.get("name") is None:
                    self._unnamed.append(uuid)
            else:
                self.restored += 1
            old_name = old_worker = old_parent = None
        try:
            apply_task_event(rec, event, self.bad)
        except Exception as exc:  # pragma: no cover - the model checks every field it reads
            # keep what was merged so far and the record in the index, count it, go on
            self._refuse(APPLY_FAILED, exc.__class__.__name__)
        rec.last_seen = now
        self._change_log.append(uuid)  # after the fields (see ``_logged``), inline: per event
        self.changes += 1
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
            if self._done:
                _, rec = self._done.popitem(last=False)
            else:
                uuid, rec = self._active.popitem(last=False)
                limbo = self._limbo
                limbo[uuid] = rec  # it will send more events: keep its name and args aside
                if len(limbo) > self.limbo_size:
                    limbo.popitem(last=False)
            self._forget(rec)

    def _forget(self, rec: TaskRecord) -> None:
        self.evicted += 1
        if self._marks:
            self._marks.pop(rec.uuid, None)
        self._evicted_log.append(rec.uuid)
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

    # ------------------------------------------------------------------ from the store

    def hand_over(self, work: Callable[[], None], wait: float) -> None:
        """Run ``work`` on the writer: the ingest thread runs it, under the lock, before its
        next batch. If the writer applies no batch within ``wait`` seconds (an idle cluster, a
        broker that is down), the caller runs it, under the same lock, so it never waits for
        events to come. Either way it runs once, and has run when this returns."""
        done = threading.Event()
        self._handed.append((work, done))
        if not done.wait(wait):
            with self.lock:
                self._run_handed()

    def _run_handed(self) -> None:
        """Under the lock: run the work handed over, in order."""
        while self._handed:
            work, done = self._handed.popleft()
            try:
                work()
            except Exception:  # never into the writer's batch: the caller sees no result
                log.exception("work handed to the index writer failed")
            finally:
                done.set()

    def merge_stored(self, stored: Iterable[tuple[TaskRecord, bool]], merge: Merge,
                     wait: float = 1.0) -> int:
        """Take in task records read from the history store (newest first), through the
        writer (``hand_over``).

        A task in memory is merged by the store's order-independent rules with the live
        record as the newer one, in place (live state is never overwritten by older stored
        state; the record object, its place in the LRU and its ``last_seen`` stay). A task
        not in memory is added at the *old* end of the LRU, only while there is room: history
        never evicts a live task. Returns how many records were added or merged."""
        records = list(stored)
        taken: list[int] = []
        self.hand_over(lambda: taken.append(self._merge_all(records, merge)), wait)
        return taken[0] if taken else 0

    def _merge_all(self, stored: Iterable[tuple[TaskRecord, bool]], merge: Merge) -> int:
        taken = 0
        for rec, backfilled in stored:
            if self._merge_one(rec, backfilled, merge):
                taken += 1
        if taken:
            self.from_history += taken
            self.version += 1
        return taken

    def _merge_one(self, stored: TaskRecord, backfilled: bool, merge: Merge) -> bool:
        uuid = stored.uuid
        mark = FROM_HISTORY | (BACKFILLED if backfilled else 0)
        live = self.get(uuid)
        if live is not None:
            merged = merge(stored, live)
            merged.last_seen = live.last_seen
            old_parent = live.parent_id
            fields = {f: getattr(merged, f) for f in merged.__struct_fields__
                      if f not in ("uuid", "state") and getattr(merged, f) != getattr(live, f)}
            self._set_state(live, merged.state, fields)
            self.version -= 1  # counted once per merge_stored
            if old_parent is None and live.parent_id is not None:
                self._children.setdefault(live.parent_id, []).append(uuid)
            self._marks[uuid] = self._marks.get(uuid, 0) | mark
            return True
        if len(self) >= self.max_tasks:
            return False
        waiting = self._limbo.pop(uuid, None)
        rec = merge(stored, waiting) if waiting is not None else stored
        pool = self._done if rec.state in READY_STATES else self._active
        last = rec.last_seen or stored.last_seen
        if pool:
            oldest = pool[next(iter(pool))].last_seen
            last = min(last, oldest) if last else oldest
        rec.last_seen = last  # iter_newest needs each pool in last_seen order
        pool[uuid] = rec
        pool.move_to_end(uuid, last=False)
        _bump(self.by_state, rec.state, +1)
        _bump(self.by_name, rec.name, +1)
        _bump(self.by_worker, rec.worker, +1)
        if rec.parent_id is not None:
            self._children.setdefault(rec.parent_id, []).append(uuid)
        self._marks[uuid] = mark
        return True

    def merge_workers(self, events: Iterable[Mapping[str, Any]], wait: float = 1.0) -> int:
        """Workers the store has seen and memory has not (their latest sample as an event);
        a worker already known live is left alone. Returns how many were added."""
        samples = list(events)
        added: list[int] = []

        def work() -> None:
            count = 0
            now = self.clock()
            for event in samples:
                host = event.get("hostname")
                if not isinstance(host, str) or not host or host in self.workers:
                    continue
                worker = self.workers[host] = WorkerRecord(hostname=host)
                apply_worker_event(worker, event, now, self.bad)
                count += 1
            if count:
                self.version += 1
            added.append(count)

        self.hand_over(work, wait)
        return added[0] if added else 0

    def oldest_activity(self) -> float | None:
        """``last_seen`` of the least recently active task in memory (None: no task)."""
        with self.lock:
            times = [pool[next(iter(pool))].last_seen for pool in (self._active, self._done)
                     if pool]
        return min(times) if times else None

    def mark(self, uuid: str) -> int:
        """FROM_HISTORY / BACKFILLED bits of a task in memory (0: live only)."""
        return self._marks.get(uuid, 0)

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

    def evicted_since(self, mark: int) -> list[str] | None:
        """Ids of the tasks evicted after the ``mark``-th eviction (``evicted`` read earlier), in
        order; None when the log no longer reaches back that far (then rescan). A restored
        task's id stays in it: check ``get(uuid)``."""
        with self.lock:
            missed = self.evicted - mark
            if missed <= 0:
                return []
            log = self._evicted_log
            if missed > len(log):
                return None
            newest_first = list(itertools.islice(reversed(log), missed))
        newest_first.reverse()
        return newest_first

    def changed_since(self, mark: int) -> tuple[int, list[str] | None]:
        """(``changes`` now, ids of the records changed after the ``mark``-th change, oldest
        first, possibly repeated); None instead of the ids when the log no longer reaches back
        that far (then drop what was cached). A reader that reads records after this call
        sees every later change in its next call."""
        with self.lock:
            now = self.changes
            missed = now - mark
            if missed <= 0:
                return now, []
            log = self._change_log
            if missed > len(log):
                return now, None
            newest_first = list(itertools.islice(reversed(log), missed))
        newest_first.reverse()
        return now, newest_first

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

    def records(self) -> list[TaskRecord]:
        """Every record in no particular order: a copy of the references taken under the lock,
        for readers that filter or sort without holding it. Read through the plain dicts
        (an OrderedDict's own iteration looks every key up again: ~100x slower at 1M)."""
        with self.lock:
            return [*dict.values(self._active), *dict.values(self._done)]

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
                "restored": self.restored,
                "malformed": self.malformed,
                "version": self.version,
            }

    def worker_rows(self, now: float | None = None) -> list[tuple[WorkerRecord, str]]:
        """(worker, status) pairs sorted by hostname, status computed at ``now``."""
        now = self.clock() if now is None else now
        with self.lock:
            return [(w, worker_status(w, now)) for _, w in sorted(self.workers.items())]

    def take_unnamed(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of tasks first seen without a name that still have none (the
        oldest first); each is handed out once."""
        out: list[str] = []
        with self.lock:
            while self._unnamed and len(out) < limit:
                uuid = self._unnamed.popleft()
                rec = self.get(uuid)
                if rec is not None and rec.name is None:
                    out.append(uuid)
        return out

    def fill_identity(self, uuid: str, *, name: str, args: str | None = None,
                      kwargs: str | None = None, queue: str | None = None) -> TaskRecord | None:
        """Name a task that events left nameless (from the result backend); fields already
        known are kept. Returns the record, or None if it is gone or was named meanwhile."""
        with self.lock:
            rec = self.get(uuid)
            if rec is None or rec.name is not None:
                return None
            rec.name = sys.intern(name)
            _bump(self.by_name, rec.name, +1)
            if rec.args is None:
                rec.args = args
            if rec.kwargs is None:
                rec.kwargs = kwargs
            if rec.queue is None and queue is not None:
                rec.queue = sys.intern(queue)
            self._logged(uuid)
            self.version += 1
            return rec

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
            self._set_state(rec, state, fields)
            rec.reconciled = True
            return rec

    def mark_by_action(self, uuid: str, only_from: frozenset[str], note: str,
                       **fields: Any) -> TaskRecord | None:
        """Record what an action of lazycelery did to a task (``fields`` set, e.g. ``purged`` or
        ``revoked``; the state is derived from them as for events, so a later event still
        counts). Only while the task is in one of ``only_from``; returns the record or None."""
        with self.lock:
            rec = self.get(uuid)
            if rec is None or rec.state not in only_from:
                return None
            for key, value in fields.items():
                setattr(rec, key, value)
            rec.note = note
            self._set_state(rec, derive_state(rec), {})
            return rec

    def _set_state(self, rec: TaskRecord, state: str, fields: Mapping[str, Any]) -> None:
        """Apply ``fields`` and ``state`` to a held record, keeping counters and pools right."""
        old_state, old_name, old_worker = rec.state, rec.name, rec.worker
        for key, value in fields.items():
            setattr(rec, key, value)
        rec.state = state
        if state != old_state:
            _bump(self.by_state, old_state, -1)
            _bump(self.by_state, state, +1)
            if state in READY_STATES and rec.uuid in self._active:
                self._done[rec.uuid] = self._active.pop(rec.uuid)
        if rec.name != old_name:
            _bump(self.by_name, old_name, -1)
            _bump(self.by_name, rec.name, +1)
        if rec.worker != old_worker:
            _bump(self.by_worker, old_worker, -1)
            _bump(self.by_worker, rec.worker, +1)
        self._logged(rec.uuid)
        self.version += 1

    def _logged(self, uuid: str) -> None:
        """Log a change of a record, *after* writing it: a reader that read ``changes``
        before reading the record then either saw the new fields or gets the id later."""
        self._change_log.append(uuid)
        self.changes += 1
