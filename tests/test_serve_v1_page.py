"""/api/v1/tasks' memory page, two ways: ``scan_page`` (newest first under the lock, O(limit))
and ``memory_page`` (a copy, off the lock) give the page the definition gives (matches sorted
by (last_seen, uuid), newest first), on replayed events applied in batches (tasks of one batch
share a last_seen: ties), with filters, cursors and a budget too small for the page."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.query import Predicate, compile_filter
from lazycelery.serve.v1.tasks import Cursor, memory_page, scan_page
from tests.replay import load_events


def _index(batch: int) -> TaskIndex:
    clock = itertools.count(1_000_000.0, 0.5)
    index = TaskIndex(clock=lambda: next(clock))
    events = load_events("redis")
    for start in range(0, len(events), batch):
        index.apply_batch(events[start:start + batch])
    return index


@pytest.fixture(scope="module", params=[1, 7, 100_000], ids=["no-ties", "batches", "one-batch"])
def index(request: pytest.FixtureRequest) -> TaskIndex:
    return _index(request.param)


def _expected(index: TaskIndex, pred: Predicate | None, after: Cursor | None,
              limit: int) -> tuple[list[str], bool]:
    rows = [r for r in index.records() if pred is None or pred(r)]
    if after is not None:
        rows = [r for r in rows if (r.last_seen, r.uuid) < (after.time, str(after.key))]
    rows.sort(key=lambda r: (r.last_seen, r.uuid), reverse=True)
    return [r.uuid for r in rows[:limit]], len(rows) > limit


def _ids(page: tuple[list[TaskRecord], bool] | None) -> tuple[list[str], bool] | None:
    return None if page is None else ([r.uuid for r in page[0]], page[1])


@pytest.mark.parametrize("q", [None, "state:success", "state:failure", "name:nothing-is-called"])
@pytest.mark.parametrize("limit", [1, 7, 100])
def test_every_page_is_the_defined_page(index: TaskIndex, q: str | None, limit: int) -> None:
    pred = compile_filter(q) if q else None
    after: Cursor | None = None
    pages = 0
    while True:
        expected = _expected(index, pred, after, limit)
        assert _ids(scan_page(index, pred, after, limit, budget=10**9)) == expected
        assert _ids(memory_page(index, pred, after, limit)) == expected
        small = scan_page(index, pred, after, limit, budget=5)
        assert small is None or _ids(small) == expected  # too small: None, never a wrong page
        ids, more = expected
        pages += 1
        if not more or pages > 40:
            break
        last = index.get(ids[-1])
        assert last is not None
        after = Cursor("memory", last.last_seen, last.uuid)


def test_default_page_reads_a_page_not_the_index() -> None:
    index = _index(3)
    assert len(index) > 200
    # the first page of 10 needs the 11 newest (and their ties) only: a budget of 50 does
    assert scan_page(index, None, None, 10, budget=50) is not None
    # the oldest task's page does not fit such a budget: the copy works it out instead
    oldest = min(index.records(), key=lambda r: (r.last_seen, r.uuid))
    deep = Cursor("memory", oldest.last_seen + 1e-9, oldest.uuid)
    assert scan_page(index, None, deep, 10, budget=50) is None
    assert _ids(memory_page(index, None, deep, 10)) == ([oldest.uuid], False)


def test_empty_index() -> None:
    empty: Any = TaskIndex()
    assert scan_page(empty, None, None, 100) == ([], False)
    assert memory_page(empty, None, None, 100) == ([], False)
