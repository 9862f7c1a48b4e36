"""Tail's view of an event: the event plus its task's state right after it (TailEvent, TailIndex)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from lazycelery.core.index import DEFAULT_MAX_TASKS, TaskIndex
from lazycelery.core.model import TaskRecord, WorkerRecord

__all__ = ["HEARTBEAT", "KNOWN_TYPES", "TailEvent", "TailIndex", "enrich"]


#: Event types Celery itself sends (CELERY-INTERNALS §1). Others (custom task events) pass too.
KNOWN_TYPES: Final = (
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-revoked", "task-rejected", "task-cancelled",
    "worker-online", "worker-heartbeat", "worker-offline",
)
HEARTBEAT: Final = "worker-heartbeat"


class TailEvent(msgspec.Struct, frozen=True):
    """One event plus what the index knew about its task right after it was applied.

    A frozen msgspec Struct rather than a frozen dataclass: one is built per event on the
    ingest thread, and the dataclass ``__init__`` costs four times as much."""

    event: Mapping[str, Any]
    type: str
    uuid: str | None = None
    name: str | None = None
    state: str | None = None
    worker: str | None = None
    args: str | None = None
    kwargs: str | None = None
    retries: int | None = None
    parent_id: str | None = None
    root_id: str | None = None
    queue: str | None = None
    args_truncated: bool = False
    kwargs_truncated: bool = False
    result_truncated: bool = False

    @property
    def hostname(self) -> str | None:
        host = self.event.get("hostname")
        return host if isinstance(host, str) else None

    @property
    def timestamp(self) -> float | None:
        """The sender's epoch time, else the local receive time (None if neither is a number)."""
        for key in ("timestamp", "local_received"):
            value = self.event.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    return float(value)
                except OverflowError:  # an integer beyond any float: not a time
                    return None
        return None


# (state, worker, retries) of a task right after one event
_After = tuple[str, str | None, int]


class TailIndex(TaskIndex):
    """A TaskIndex that remembers each task's state right after every event of the last batch.

    The ingest thread applies a whole batch before ``on_batch`` runs, so a record touched twice
    in one batch (received and started often travel in the same ``task.multi`` message) would
    only show its final state, and ``--state SUCCESS`` would print the task-received line of a
    task that succeeded a millisecond later. Tail has no other reader of the index, so applying
    the events one at a time through the public API costs one uncontended lock per event.
    """

    def __init__(self, max_tasks: int = DEFAULT_MAX_TASKS,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(max_tasks, clock=clock)
        self._after: list[_After | None] = []

    def apply_batch(self, events: Iterable[Mapping[str, Any]]) -> list[TaskRecord | WorkerRecord | None]:
        touched: list[TaskRecord | WorkerRecord | None] = []
        after: list[_After | None] = []
        for event in events:
            rec = super().apply_batch((event,))[0]
            touched.append(rec)
            after.append((rec.state, rec.worker, rec.retries)
                         if isinstance(rec, TaskRecord) else None)
        self._after = after
        return touched

    def take_after(self, count: int) -> list[_After | None] | None:
        """The per-event snapshots of the last batch, if it had ``count`` events."""
        after, self._after = self._after, []
        return after if len(after) == count else None


def enrich(event: Mapping[str, Any], record: TaskRecord | WorkerRecord | None,
           after: _After | None) -> TailEvent | None:
    """Combine an event with its record; None for an event without a string ``type``."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return None
    if isinstance(record, TaskRecord):
        state, worker, retries = after if after is not None else (
            record.state, record.worker, record.retries)
        return TailEvent(
            event=event, type=kind, uuid=record.uuid, name=record.name, state=state,
            worker=worker, args=record.args, kwargs=record.kwargs, retries=retries,
            parent_id=record.parent_id, root_id=record.root_id, queue=record.queue,
            args_truncated=record.args_truncated, kwargs_truncated=record.kwargs_truncated,
            result_truncated="result" in event and record.result_truncated,
        )
    if isinstance(record, WorkerRecord):
        return TailEvent(event=event, type=kind, worker=record.hostname)
    uuid = event.get("uuid")
    host = event.get("hostname")
    return TailEvent(event=event, type=kind, uuid=uuid if isinstance(uuid, str) else None,
                     worker=host if isinstance(host, str) and kind.startswith("worker-") else None)
