"""What the dashboard reads from a store: the most recent tasks, one page of tasks by time of
last activity (keyset paging, newest first), the workers seen and the recent gaps.

Read-only (a ``SELECT``-only role is enough) and independent of the connection's thread: the
dashboard's history thread owns its own ``Store``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from lazycelery.core.model import TaskRecord
from lazycelery.store.backend import Store, StoredGap
from lazycelery.store.batch import WorkerSample
from lazycelery.store.history import sample_event
from lazycelery.store.rows import TASK_COLUMNS, record_from_row

__all__ = ["PAGE", "StoredTask", "TaskPage", "recent_gaps", "recent_tasks", "task_page",
           "workers_seen"]

#: tasks per page of a history query
PAGE: Final = 500
_COLS: Final = ", ".join(TASK_COLUMNS)
_LAST_TIME: Final = TASK_COLUMNS.index("last_time")
_WORKER_COLS: Final = ("hostname, time, kind, active, processed, load1, load5, load15, pid, "
                       "freq, sw_ver")


@dataclass(frozen=True)
class StoredTask:
    """A task record as stored, with its ``backfilled`` flag and time of last activity."""

    record: TaskRecord
    backfilled: bool
    last_time: float | None


@dataclass(frozen=True)
class TaskPage:
    """One page, newest first; ``cursor`` continues after it (None: the range is exhausted)."""

    tasks: list[StoredTask]
    cursor: float | None


def _stored(row: Sequence[Any]) -> StoredTask:
    rec, backfilled = record_from_row(row)
    last = row[_LAST_TIME]
    return StoredTask(rec, backfilled, float(last) if last is not None else None)


def recent_tasks(store: Store, limit: int, until: float | None = None) -> list[StoredTask]:
    """The ``limit`` most recently active tasks (before ``until`` if given), newest first."""
    return task_page(store, None, until, None, limit).tasks[:limit]


def task_page(store: Store, since: float | None, until: float | None,
              cursor: float | None, limit: int = PAGE) -> TaskPage:
    """Tasks whose last activity lies in ``[since, until)``, newest first, older than
    ``cursor`` (the previous page's ``cursor``). One backward walk of ``tasks_last_time`` (no
    sort): the page is cut at a change of time, and the tasks that share the time of its last
    row are read whole, so a page may hold a few more than ``limit`` and none is lost."""
    where, params = _range(since, until if cursor is None else
                           (cursor if until is None else min(cursor, until)))
    rows = store.query(f"SELECT {_COLS} FROM tasks WHERE {where} "
                       f"ORDER BY last_time DESC LIMIT {int(limit)}", params)
    tasks = [_stored(r) for r in rows]
    if len(tasks) < limit:
        return TaskPage(tasks, None)
    boundary = tasks[-1].last_time
    assert boundary is not None
    tasks = [t for t in tasks if t.last_time != boundary]
    tasks += [_stored(r) for r in store.query(
        f"SELECT {_COLS} FROM tasks WHERE last_time = ?", (boundary,))]
    return TaskPage(tasks, boundary)


def _range(since: float | None, until: float | None) -> tuple[str, list[Any]]:
    where = ["last_time IS NOT NULL"]
    params: list[Any] = []
    if since is not None:
        where.append("last_time >= ?")
        params.append(since)
    if until is not None:
        where.append("last_time < ?")
        params.append(until)
    return " AND ".join(where), params


def workers_seen(store: Store, since: float) -> list[dict[str, Any]]:
    """The latest sample of each worker seen since ``since``, as the worker event it was
    taken from (``local_received`` = its time, so a worker not heard live shows as lost)."""
    rows = store.query(
        f"SELECT {_WORKER_COLS} FROM worker_samples w WHERE time >= ? AND time = "
        "(SELECT MAX(time) FROM worker_samples x WHERE x.hostname = w.hostname) "
        "ORDER BY hostname", (since,))
    events: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in rows:
        sample = WorkerSample(*row)
        if sample.hostname in seen:
            continue
        seen.add(sample.hostname)
        event = sample_event(sample)
        event["local_received"] = sample.time
        events.append(event)
    return events


def recent_gaps(store: Store, since: float) -> list[StoredGap]:
    return store.gaps(since)
