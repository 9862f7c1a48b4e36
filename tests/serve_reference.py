"""`lazycelery.serve.tasks.page` as of a36e768 (before the sort_by fast path), kept as the
reference that tests/test_serve_perf_parity.py and bench/bench_serve_sort.py compare with."""

from __future__ import annotations

import heapq
import operator
from collections.abc import Callable
from typing import Any

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve.tasks import _sort_key

__all__ = ["old_page"]


def _old_filter(q: Any) -> Callable[[TaskRecord], bool]:
    worker = q.worker.casefold() if q.worker else None
    name = q.name.casefold() if q.name else None
    state = q.state.casefold() if q.state else None
    start, end, search = q.received_start, q.received_end, q.search

    def keep(rec: TaskRecord) -> bool:
        if state is not None and rec.state.casefold() != state:
            return False
        if name is not None and (rec.name or "").casefold() != name:
            return False
        if worker is not None and (rec.worker or "").casefold() != worker:
            return False
        received = rec.received
        if received is not None and ((start is not None and received < start)
                                     or (end is not None and received > end)):
            return False
        return search is None or search(rec)

    return keep


def old_page(index: TaskIndex, q: Any) -> list[TaskRecord]:
    """serve.tasks.page as of a36e768, sort_by branch (the one the fast path replaced)."""
    keep = _old_filter(q)
    end = q.offset + q.limit
    matching = (r for r in index.records() if keep(r))
    select = heapq.nlargest if q.descending else heapq.nsmallest
    if q.sort_by in ("received", "started"):
        field = q.sort_by
        timed: list[TaskRecord] = []
        untimed: list[TaskRecord] = []
        for rec in matching:
            (untimed if getattr(rec, field) is None else timed).append(rec)
        untimed.sort(key=lambda r: r.uuid, reverse=q.descending)
        if q.descending:
            timed.reverse()
        chosen = select(end, timed, key=operator.attrgetter(field, "uuid"))
        ordered = chosen + untimed if q.descending else untimed + chosen
        return ordered[q.offset:end]
    return select(end, matching, key=_sort_key(q.sort_by))[q.offset:end]
