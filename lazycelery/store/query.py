"""Reading tasks back from the store for the dashboard and the CLI: a filtered page (newest
first, resumed by a cursor), one task by id with its transitions, and the first screen (the most
recent tasks, each worker's latest sample, the gaps among them). Every query is one index range
on ``tasks`` (schema migration 2 adds the state + name + time index), so its cost does not grow
with the size of the store (bench/bench_store_query.py: 10 million tasks)."""

from __future__ import annotations

import heapq
import itertools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from lazycelery.core.model import TaskRecord
from lazycelery.store.backend import Store, StoredGap
from lazycelery.store.batch import Transition, WorkerSample
from lazycelery.store.errors import StoreError
from lazycelery.store.rows import TASK_COLUMNS, record_from_row

__all__ = [
    "Cursor",
    "FirstScreen",
    "Page",
    "StoredTask",
    "TaskDetail",
    "TaskFilter",
    "first_screen",
    "get",
    "latest_worker_samples",
    "page",
    "task_names",
]

T = TypeVar("T")

#: (last_time, id) of the last task of a page: the next page starts after it.
Cursor = tuple[float, int]

#: A filter naming several states and names is run as one query per (state, name) pair, each an
#: exact index range, merged here: cheaper than one ``IN`` query that sorts every match.
MAX_SPLIT: Final = 16
_COLS: Final = ", ".join(TASK_COLUMNS) + ", id"
_LAST_TIME: Final = TASK_COLUMNS.index("last_time")
#: the SQLite indexes on tasks, per open store (read once)
_INDEXES: Final[weakref.WeakKeyDictionary[Store, frozenset[str]]] = weakref.WeakKeyDictionary()
_WORKER_COLS: Final = ("hostname, time, kind, active, processed, load1, load5, load15, pid, "
                       "freq, sw_ver")


@dataclass(frozen=True)
class TaskFilter:
    """Which tasks a page holds: every given field must match (a tuple: any of its values).
    ``since`` / ``until`` bound the task's latest event time: ``since <= last_time < until``."""

    states: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    workers: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None


@dataclass(frozen=True)
class StoredTask:
    record: TaskRecord
    backfilled: bool
    last_time: float
    id: int

    @property
    def cursor(self) -> Cursor:
        return (self.last_time, self.id)


@dataclass(frozen=True)
class Page:
    """Tasks newest first; ``next`` resumes after the last one (None: there are no more)."""

    tasks: list[StoredTask]
    next: Cursor | None


@dataclass(frozen=True)
class TaskDetail:
    record: TaskRecord
    backfilled: bool
    transitions: list[Transition]


@dataclass(frozen=True)
class FirstScreen:
    """What the dashboard reads at start: the ``limit`` most recent tasks (newest first), the
    latest sample of every worker (online / offline / heartbeat figures), and the gaps since
    the oldest of those tasks."""

    tasks: list[StoredTask]
    workers: list[WorkerSample] = field(default_factory=list)
    gaps: list[StoredGap] = field(default_factory=list)


def _reading(store: Store, read: Callable[[], T]) -> T:
    """Run a read; a lost connection is reconnected and the read tried once more. Any other
    failure (or a second one) is a ``StoreError``: one line naming the store, never the
    driver's traceback."""
    try:
        return read()
    except StoreError:
        raise
    except Exception as exc:
        if not store.is_transient(exc):
            raise StoreError(store.describe_error(exc)) from None
    try:
        store.reconnect()
        return read()
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(store.describe_error(exc)) from None


def _stored(row: Sequence[Any]) -> StoredTask:
    rec, backfilled = record_from_row(row)
    return StoredTask(rec, backfilled, float(row[_LAST_TIME]), int(row[-1]))


def _where(flt: TaskFilter, states: Sequence[str], names: Sequence[str],
           before: Cursor | None) -> tuple[str, list[Any]]:
    clauses = ["last_time IS NOT NULL"]
    params: list[Any] = []
    for column, values in (("state", states), ("name", names), ("worker", flt.workers),
                           ("queue", flt.queues)):
        if len(values) == 1:
            clauses.append(f"{column} = ?")
            params.append(values[0])
        elif values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
    if flt.since is not None:
        clauses.append("last_time >= ?")
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("last_time < ?")
        params.append(flt.until)
    if before is not None:
        # the first condition is an index bound; the second breaks ties of equal times by id
        clauses.append("last_time <= ? AND (last_time < ? OR id < ?)")
        params.extend((before[0], before[0], before[1]))
    return " AND ".join(clauses), params


def _sqlite_indexes(store: Store) -> frozenset[str]:
    found = _INDEXES.get(store)
    if found is None:
        found = _INDEXES[store] = frozenset(
            str(r[0]) for r in store.query("SELECT name FROM sqlite_master WHERE type = 'index' "
                                           "AND tbl_name = 'tasks'"))
    return found


def _index_hint(store: Store, states: Sequence[str], names: Sequence[str]) -> str:
    """SQLite keeps no statistics unless ANALYZE runs (the recorder never does): without them
    it may walk the name index and test the state of every task of that name (measured: 50x
    slower at 200,000 tasks). Name the index that makes the filter one exact range."""
    if store.dialect.name != "sqlite" or len(states) > 1 or len(names) > 1:
        return ""
    wanted = ("tasks_state_name_time" if states and names else "tasks_state_time" if states
              else "tasks_name_time" if names else "tasks_last_time")
    return f" INDEXED BY {wanted}" if wanted in _sqlite_indexes(store) else ""


def _query(store: Store, flt: TaskFilter, states: Sequence[str], names: Sequence[str],
           before: Cursor | None, limit: int) -> list[StoredTask]:
    where, params = _where(flt, states, names, before)
    hint = _index_hint(store, states, names)
    rows = store.query(f"SELECT {_COLS} FROM tasks{hint} WHERE {where} "
                       f"ORDER BY last_time DESC, id DESC LIMIT {int(limit)}", params)
    return [_stored(r) for r in rows]


def page(store: Store, filters: TaskFilter | None = None, before: Cursor | None = None,
         limit: int = 100) -> Page:
    """Up to ``limit`` tasks matching ``filters``, newest (latest event) first, starting after
    the cursor ``before`` (the previous page's ``next``). Raises ``StoreError`` (one line)."""
    return _reading(store, lambda: _page(store, filters, before, limit))


def _page(store: Store, filters: TaskFilter | None, before: Cursor | None, limit: int) -> Page:
    flt = filters or TaskFilter()
    if limit <= 0:
        return Page([], None)
    fetch = limit + 1  # one more than asked: is there a next page?
    pairs = list(itertools.product(flt.states or (None,), flt.names or (None,)))
    if 1 < len(pairs) <= MAX_SPLIT:
        parts = [_query(store, flt, () if s is None else (s,), () if n is None else (n,),
                        before, fetch) for s, n in pairs]
        merged = heapq.merge(*parts, key=lambda t: (t.last_time, t.id), reverse=True)
        found = list(itertools.islice(merged, fetch))
    else:
        found = _query(store, flt, flt.states, flt.names, before, fetch)
    tasks = found[:limit]
    more = len(found) > limit
    return Page(tasks, tasks[-1].cursor if more and tasks else None)


def get(store: Store, task_id: str) -> TaskDetail | None:
    """One task by its full id, with its transitions (oldest first); None if not stored.
    Raises ``StoreError`` (one line)."""

    def read() -> TaskDetail | None:
        found = store.get_task(task_id)
        if found is None:
            return None
        rec, backfilled = found
        return TaskDetail(rec, backfilled, store.transitions_of(task_id))

    return _reading(store, read)


def task_names(store: Store, limit: int = 1000) -> list[str] | None:
    """The distinct task names stored, sorted; None when there are more than ``limit``.
    Skips from name to name along the name index: the cost is per name, not per task."""
    return _reading(store, lambda: _task_names(store, limit))


def _task_names(store: Store, limit: int) -> list[str] | None:
    rows = store.query(
        "WITH RECURSIVE names(n) AS ("
        " SELECT MIN(name) FROM tasks"
        " UNION ALL SELECT (SELECT MIN(name) FROM tasks WHERE name > n)"
        " FROM names WHERE n IS NOT NULL"
        f") SELECT n FROM names WHERE n IS NOT NULL LIMIT {int(limit) + 1}")
    names = [str(r[0]) for r in rows]
    return names if len(names) <= limit else None


def latest_worker_samples(store: Store, since: float | None = None) -> list[WorkerSample]:
    """Each worker's latest sample (sorted by hostname) whose time is ``since`` or later."""
    return _reading(store, lambda: _latest_worker_samples(store, since))


def _latest_worker_samples(store: Store, since: float | None) -> list[WorkerSample]:
    # skipping from host to host along the (hostname, time) index: the cost is per worker,
    # not per sample
    host_rows = store.query(
        "WITH RECURSIVE hosts(h) AS ("
        " SELECT MIN(hostname) FROM worker_samples"
        " UNION ALL SELECT (SELECT MIN(hostname) FROM worker_samples WHERE hostname > h)"
        " FROM hosts WHERE h IS NOT NULL"
        ") SELECT h FROM hosts WHERE h IS NOT NULL")
    out = []
    for (host,) in host_rows:
        rows = store.query(f"SELECT {_WORKER_COLS} FROM worker_samples WHERE hostname = ? "
                           "ORDER BY time DESC LIMIT 1", (host,))
        if rows and (since is None or float(rows[0][1]) >= since):
            out.append(WorkerSample(*rows[0]))
    return out


def first_screen(store: Store, limit: int = 5000, *,
                 workers_since: float | None = None) -> FirstScreen:
    """The ``limit`` most recent tasks, the latest sample of every worker seen since
    ``workers_since`` (all when None), and the gaps from the oldest of those tasks on.
    Raises ``StoreError`` (one line)."""

    def read() -> FirstScreen:
        tasks = _page(store, None, None, limit).tasks
        workers = _latest_worker_samples(store, workers_since)
        gaps = store.gaps(tasks[-1].last_time if tasks else 0.0)
        return FirstScreen(tasks, workers, gaps)

    return _reading(store, read)
