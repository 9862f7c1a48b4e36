"""Stored history back as celery-shaped events, oldest first: what ``tail --since`` replays
through the same index, filters and formatters as live events."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Any, Final

from lazycelery.store.backend import HistoryRow, Store, StoredGap
from lazycelery.store.batch import WorkerSample

__all__ = ["HISTORY_KEY", "history_events", "sample_event", "transition_event"]

#: Every replayed event carries ``"history": true`` (``tail --json`` prints it).
HISTORY_KEY: Final = "history"

# Fields of the task record each event type carries (CELERY-INTERNALS §1).
_IDENTITY: Final = ("name", "args", "kwargs", "root_id", "parent_id", "eta", "expires")
_BY_TYPE: Final[dict[str, tuple[str, ...]]] = {
    "task-sent": (*_IDENTITY, "queue", "exchange", "routing_key"),
    "task-received": _IDENTITY,
    "task-succeeded": ("result", "runtime"),
    "task-failed": ("exception", "traceback"),
    "task-retried": ("exception", "traceback"),
    "task-revoked": ("terminated", "expired", "signum"),
    "task-rejected": ("requeue",),
}


def transition_event(row: HistoryRow) -> dict[str, Any]:
    """The event a stored transition stands for, rebuilt from its task's record. Fields an
    event type carries come from the record (a retried task's exception is its latest)."""
    t = row.transition
    event: dict[str, Any] = {"type": t.type, "uuid": t.uuid, "timestamp": t.time,
                             "hostname": t.hostname}
    if t.retries is not None:
        event["retries"] = t.retries
    rec = row.record
    if rec is not None:
        for key in _BY_TYPE.get(t.type, ()):
            value = getattr(rec, key)
            if value is not None:
                event[key] = value
    event[HISTORY_KEY] = True
    if row.backfilled or t.backfilled:
        event["backfilled"] = True
    return event


def sample_event(sample: WorkerSample) -> dict[str, Any]:
    """A worker sample as the worker-online / -offline / -heartbeat event it was taken from."""
    event: dict[str, Any] = {"type": f"worker-{sample.kind}", "hostname": sample.hostname,
                             "timestamp": sample.time}
    for key in ("active", "processed", "pid", "freq", "sw_ver"):
        value = getattr(sample, key)
        if value is not None:
            event[key] = value
    load = [x for x in (sample.load1, sample.load5, sample.load15) if x is not None]
    if load:
        event["loadavg"] = load
    event[HISTORY_KEY] = True
    return event


def history_events(store: Store, since: float, until: float) -> Iterator[dict[str, Any] | StoredGap]:
    """Task events, worker samples and gaps in ``[since, until)``, in time order. Gaps come
    where they start (a gap that began before ``since`` comes first)."""
    Item = tuple[float, int, "dict[str, Any] | StoredGap"]
    tasks: Iterator[Item] = ((row.transition.time or 0.0, 1, transition_event(row))
                             for row in store.history(since, until))
    workers: Iterator[Item] = ((s.time, 1, sample_event(s))
                               for s in store.worker_samples(since, until))
    gaps: Iterator[Item] = ((max(g.start, since), 0, g) for g in store.gaps(since, until))
    for _, _, item in heapq.merge(gaps, tasks, workers, key=lambda x: (x[0], x[1])):
        yield item
