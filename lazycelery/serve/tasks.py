"""``GET /api/tasks``: Flower's parameters (limit, offset, sort_by, workername, taskname,
state, received_start, received_end, search) over a copy of the index's records.

The default order is most recently active first (the index's own order, read lazily, so the
first page of a million tasks costs a page, not a sort); ``sort_by`` sorts what matches."""

from __future__ import annotations

import heapq
import itertools
import operator
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.serve import params
from lazycelery.serve.errors import bad_param
from lazycelery.serve.search import Predicate, SearchError, compile_search

__all__ = ["MAX_LIMIT", "SORT_KEYS", "TaskQuery", "page", "parse_query"]

#: the most tasks one answer holds (Flower has no cap: a bare /api/tasks returns them all)
MAX_LIMIT = 10_000
#: records read under the index's lock for one page before falling back to a copy
SCAN_BUDGET = 20_000
SORT_KEYS = frozenset({"name", "state", "received", "started"})
_DATE = "%Y-%m-%d %H:%M"
_UUID = operator.attrgetter("uuid")


@dataclass(frozen=True)
class TaskQuery:
    limit: int
    offset: int
    sort_by: str | None
    descending: bool
    worker: str | None
    name: str | None
    state: str | None
    received_start: float | None
    received_end: float | None
    search: Predicate | None


def _all_means_none(value: str | None) -> str | None:
    return None if value in (None, "", "All") else value


def _date(query: Mapping[str, str], name: str) -> float | None:
    value = params.text(query, name)
    if not value:
        return None
    try:
        # local time, as Flower reads it (time.mktime)
        return time.mktime(datetime.strptime(value.strip(), _DATE).timetuple())
    except (ValueError, OverflowError):
        raise bad_param(name, f"expected 'YYYY-MM-DD HH:MM', got {value[:40]!r}") from None


def parse_query(query: Mapping[str, str]) -> TaskQuery:
    """The parameters, checked: a bad one raises ``ApiError`` 400 naming it."""
    limit = params.optional_int(query, "limit", minimum=0)
    offset = params.optional_int(query, "offset", minimum=0) or 0
    sort_by = params.text(query, "sort_by") or None
    if sort_by is not None and sort_by.lstrip("-") not in SORT_KEYS:
        raise bad_param("sort_by", f"expected one of {', '.join(sorted(SORT_KEYS))} "
                                   "(a leading - sorts descending)")
    search_text = params.text(query, "search")
    try:
        search = compile_search(search_text) if search_text else None
    except SearchError as exc:
        raise bad_param("search", str(exc)) from None
    return TaskQuery(
        limit=MAX_LIMIT if limit is None else min(limit, MAX_LIMIT), offset=offset,
        sort_by=sort_by.lstrip("-") if sort_by else None,
        descending=bool(sort_by and sort_by.startswith("-")),
        worker=_all_means_none(params.text(query, "workername")),
        name=_all_means_none(params.text(query, "taskname")),
        state=_all_means_none(params.text(query, "state")),
        received_start=_date(query, "received_start"),
        received_end=_date(query, "received_end"), search=search)


def _filter(q: TaskQuery) -> Callable[[TaskRecord], bool] | None:
    """The test a record must pass, or None when the query filters nothing (then no Python
    call per record: at 1M tasks that call alone cost ~0.2 s)."""
    if (q.state is None and q.name is None and q.worker is None and q.received_start is None
            and q.received_end is None and q.search is None):
        return None
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


def _sort_key(field: str) -> Callable[[TaskRecord], tuple[bool, object, str]]:
    numeric = field in ("received", "started")

    def key(rec: TaskRecord) -> tuple[bool, object, str]:
        value = getattr(rec, field)
        if value is None:
            return False, 0.0 if numeric else "", rec.uuid
        return True, value if numeric else str(value).casefold(), rec.uuid

    return key


def page(index: TaskIndex, q: TaskQuery) -> list[TaskRecord]:
    """The page: filtered, ordered, ``offset`` skipped, at most ``limit``.

    Without ``sort_by`` the index is read newest first under its lock, lazily, for at most
    ``SCAN_BUDGET`` records (the first page of a million tasks costs a page). A page not found
    within the budget, or a ``sort_by``, works on a copy of the references, outside the lock."""
    keep = _filter(q)
    end = q.offset + q.limit
    if q.sort_by is None:
        with index.lock:
            found = _scan(index.iter_newest(), keep, end)
        if found is not None:
            return found[q.offset:end]
    records = index.records()
    matching = records if keep is None else [r for r in records if keep(r)]
    if q.sort_by is None:
        return heapq.nlargest(end, matching, key=_newest)[q.offset:end]
    if q.sort_by in ("received", "started"):
        return _by_time(matching, q.sort_by, q.descending, end)[q.offset:end]
    select = heapq.nlargest if q.descending else heapq.nsmallest
    chosen = select(end, matching, key=_sort_key(q.sort_by))
    return chosen[q.offset:end]


def _by_time(records: list[TaskRecord], field: str, descending: bool,
             end: int) -> list[TaskRecord]:
    """The first ``end`` records ordered by ``field`` (a time), then uuid.

    Tasks without the time sort as Flower's do, by uuid: before the others ascending, after
    them descending. Everything per record runs in C (map, compress, heapq without a key);
    only the few records at or past the ``end``-th best value are sorted with a key."""
    if end <= 0:
        return []
    times = list(map(operator.attrgetter(field), records))
    if descending:  # no untimed task can make the page: try without looking for them
        try:
            return _top(records, times, operator.attrgetter(field, "uuid"), True, end)
        except TypeError:  # a None met a time: some tasks have no time
            pass
    none = itertools.repeat(None)
    if None in times:
        untimed = list(itertools.compress(records, map(operator.is_, times, none)))
        timed = list(itertools.compress(records, map(operator.is_not, times, none)))
        times = list(itertools.compress(times, map(operator.is_not, times, none)))
    else:
        timed, untimed = records, []
    first, second = (timed, untimed) if descending else (untimed, timed)
    if first is timed:
        chosen = _top(timed, times, operator.attrgetter(field, "uuid"), descending, end)
    else:
        chosen = _top(untimed, list(map(_UUID, untimed)), _UUID, descending, end)
    if len(chosen) < end and second:
        rest = end - len(chosen)
        if second is timed:
            chosen += _top(timed, times, operator.attrgetter(field, "uuid"), descending, rest)
        else:
            chosen += _top(untimed, list(map(_UUID, untimed)), _UUID, descending, rest)
    return chosen


def _top(records: list[TaskRecord], values: list[Any], key: Callable[[TaskRecord], Any],
         descending: bool, n: int) -> list[TaskRecord]:
    """``sorted(records, key=key, reverse=descending)[:n]``, where ``values[i]`` is the first
    part of ``key(records[i])``: the n-th best value is found over the bare values, then only
    the records at or past it are sorted (at 1M tasks and a page of 100: ~100 records)."""
    if n >= len(records):
        return sorted(records, key=key, reverse=descending)
    if descending:  # records come roughly oldest first: read backwards, the heap rarely moves
        bound = heapq.nlargest(n, reversed(values))[-1]
        near = itertools.compress(records, map(operator.le, itertools.repeat(bound), values))
    else:
        bound = heapq.nsmallest(n, values)[-1]
        near = itertools.compress(records, map(operator.ge, itertools.repeat(bound), values))
    return sorted(near, key=key, reverse=descending)[:n]


def _uuid(rec: TaskRecord) -> str:
    return rec.uuid


def _newest(rec: TaskRecord) -> float:
    return rec.last_seen


def _scan(records: Iterator[TaskRecord], keep: Callable[[TaskRecord], bool] | None,
          end: int) -> list[TaskRecord] | None:
    """The first ``end`` matches, or None when ``SCAN_BUDGET`` records did not hold them."""
    out: list[TaskRecord] = []
    if end == 0:
        return out
    for seen, rec in enumerate(records, 1):
        if keep is None or keep(rec):
            out.append(rec)
            if len(out) >= end:
                return out
        if seen >= SCAN_BUDGET:
            return None
    return out
