"""``GET /api/tasks?store=true`` (lazycelery's own parameter) and the Flower task endpoints'
fallback to the history store, for tasks no longer in memory.

Flower's ``/api/tasks`` answers from memory only and serve keeps that meaning; ``store=true``
continues a page into the store once memory has no more matches: tasks not in memory, most
recently active first, Flower's filters applied to each, at most ``STORE_SCAN`` stored rows read
per request (a rare filter answers a short page, never a request that runs for minutes)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Final

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve.tasks import TaskQuery, _filter, page

__all__ = ["STORE_SCAN", "page_with_store", "stored_result"]

#: stored rows read (and filtered) per request at most
STORE_SCAN: Final = 20_000
_BATCH: Final = 500
#: celery's ready states: a stored task in one of these has its outcome in the store
_READY = frozenset({"SUCCESS", "FAILURE", "REVOKED"})


def page_with_store(index: TaskIndex, q: TaskQuery,
                    open_store: Callable[[], Any]) -> list[TaskRecord]:
    """Memory's matches (``page``: Flower's order and ``sort_by``), then the store's, then
    ``offset`` and ``limit`` over the two. Blocks: run it in a thread. Raises StoreError."""
    end = q.offset + q.limit
    memory = page(index, dataclasses.replace(q, offset=0, limit=end))
    if len(memory) >= end:
        return memory[q.offset:end]
    return (memory + _stored(index, q, open_store, end - len(memory)))[q.offset:end]


def _stored(index: TaskIndex, q: TaskQuery, open_store: Callable[[], Any],
            wanted: int) -> list[TaskRecord]:
    from lazycelery.store import query as stored

    keep = _filter(q)
    # the state is an exact column in the store (celery's upper-case names); the other filters
    # compare case-insensitively, as in memory, so they are applied to each record
    flt = stored.TaskFilter(states=(q.state.upper(),) if q.state else ())
    store = open_store()
    out: list[TaskRecord] = []
    before = None
    scanned = 0
    try:
        while len(out) < wanted and scanned < STORE_SCAN:
            found = stored.page(store, flt, before, _BATCH)
            for task in found.tasks:
                rec = task.record
                if rec.uuid in index or (keep is not None and not keep(rec)):
                    continue
                out.append(rec)
                if len(out) >= wanted:
                    break
            scanned += len(found.tasks)
            if found.next is None:
                break
            before = found.next
    finally:
        store.close()
    return out


def stored_result(rec: TaskRecord) -> dict[str, Any]:
    """Flower's ``/api/task/result`` answer from a stored task: ``result`` is the text the
    worker's event carried (its repr; on failure the exception), ``traceback`` on failure."""
    out: dict[str, Any] = {"task-id": rec.uuid, "state": rec.state}
    if rec.state == "FAILURE":
        out["result"] = rec.exception
        out["traceback"] = rec.traceback
    elif rec.state in _READY:
        out["result"] = rec.result
    return out
