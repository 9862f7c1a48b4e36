"""View models on the recorded real event streams: arrival order, incremental filtering equals
filtering from scratch, selection by task, follow, sorting, eviction, rates, workers, queues."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.event_rates import EventRates
from lazycelery.core.feed import TaskFeed
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.queue_history import QueueHistory
from lazycelery.core.task_list import TaskListView
from lazycelery.core.worker_rows import worker_rows

RECORDED = Path(__file__).parent / "data" / "recorded"


def load(broker: str = "redis") -> list[dict[str, Any]]:
    with gzip.open(RECORDED / broker / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


def batches(events: list[dict[str, Any]], size: int = 37) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(events), size):
        yield events[i:i + size]


def replay(index: TaskIndex, view: TaskListView, events: list[dict[str, Any]],
           size: int = 37) -> None:
    for batch in batches(events, size):
        view.sync(index.apply_batch(batch))
        view.step(0.001)
    view.settle()
    view.sync()


def uuids(view: TaskListView) -> list[str]:
    return [r.uuid for r in view.rows(0, len(view))]


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return load("redis")


def test_rows_are_every_task_newest_arrival_first(events: list[dict[str, Any]]) -> None:
    index = TaskIndex()
    view = TaskListView(index)
    replay(index, view, events)
    assert len(view) == len(index) == 3000
    first_seen: list[str] = []
    for event in events:
        uuid = event.get("uuid")
        if uuid and uuid not in first_seen:
            first_seen.append(uuid)
    assert uuids(view) == first_seen[::-1]
    assert view.follow and view.selected is view.row(0)


@pytest.mark.parametrize("text", [
    "state:failure", "state:success", "-state:success", "state:retry,started",
    "name:*.flaky", "runtime>0.05s", "retries>0", "always", "worker:rec1*", "-state:revoked x",
])
def test_incremental_filter_equals_filter_from_scratch(events: list[dict[str, Any]],
                                                       text: str) -> None:
    live_index = TaskIndex()
    live = TaskListView(live_index)
    live.set_filter(text)  # set before the events: maintained incrementally
    replay(live_index, live, events)

    index = TaskIndex()
    after = TaskListView(index)
    replay(index, after, events)
    after.set_filter(text)  # set after: one scan over everything
    after.settle()
    assert uuids(live) == uuids(after)
    assert len(after) == len(after.predicate.filter(index.snapshot()))  # type: ignore[union-attr]


def test_progressive_scan_shows_newest_matches_first(events: list[dict[str, Any]]) -> None:
    index = TaskIndex()
    view = TaskListView(index, chunk=100)
    replay(index, view, events)
    view.set_filter("state:success")
    assert view.busy and view.busy_kind == "scan"
    view.step(budget=0.0)  # one chunk: the newest 100 tasks
    partial = uuids(view)
    assert 0 < len(partial) <= 100
    assert 0.0 < view.progress < 1.0
    view.settle()
    assert not view.busy
    assert uuids(view)[:len(partial)] == partial  # the first screen did not move
    assert len(view) == 2785


def test_selection_stays_on_its_task(events: list[dict[str, Any]]) -> None:
    index = TaskIndex()
    view = TaskListView(index)
    replay(index, view, events[:3000])
    view.move(5)
    assert not view.follow
    chosen = view.selected
    assert chosen is not None and view.selected_index() == 5
    replay(index, view, events[3000:6000])
    assert view.selected is chosen
    assert view.selected_index() > 5  # new tasks arrived above it
    assert view.row(view.selected_index()) is chosen
    view.set_follow(True)
    replay(index, view, events[6000:])
    assert view.selected is view.row(0) and view.selected_index() == 0


def test_filter_then_clear_keeps_the_task(events: list[dict[str, Any]]) -> None:
    index = TaskIndex()
    view = TaskListView(index)
    replay(index, view, events)
    view.set_filter("state:failure")
    view.settle()
    view.move(3)
    chosen = view.selected
    assert chosen is not None and chosen.state == "FAILURE"
    view.set_filter("")
    assert view.selected is chosen
    assert view.row(view.selected_index()) is chosen


@pytest.mark.parametrize(("column", "key"), [
    ("state", lambda r: ["FAILURE", "RETRY", "REVOKED", "REJECTED", "STARTED", "RECEIVED",
                         "PENDING", "SUCCESS"].index(r.state)),
    ("name", lambda r: r.name or ""),
    ("runtime", lambda r: -(r.runtime if r.runtime is not None else -1.0)),
])
def test_sort_columns(events: list[dict[str, Any]], column: str, key: Any) -> None:
    index = TaskIndex()
    view = TaskListView(index)
    replay(index, view, events[:6000])
    view.set_sort(column)
    replay(index, view, events[6000:])
    view.sync()
    rows = view.rows(0, len(view))
    assert len(rows) == len(index)
    # arrivals are inserted in order; changed keys are re-sorted within a second or two
    view._last_sort = -1e9
    view.sync()
    rows = view.rows(0, len(view))
    assert [key(r) for r in rows] == sorted(key(r) for r in rows)
    view.reverse_sort()
    rows = view.rows(0, len(view))
    assert [key(r) for r in rows] == sorted((key(r) for r in rows), reverse=True)


def test_cycle_sort_visits_every_column() -> None:
    view = TaskListView(TaskIndex())
    seen = []
    for _ in range(5):
        view.cycle_sort()
        seen.append(view.sort_column)
    assert sorted(seen) == sorted(["time", "state", "name", "worker", "runtime"])


@pytest.mark.parametrize("text", ["", "-state:revoked", "state:success name:benchapp.add"])
@pytest.mark.parametrize("sort", ["time", "name"])
def test_evicted_tasks_leave_the_list_at_once(events: list[dict[str, Any]], text: str,
                                              sort: str) -> None:
    # "2,183 of 2,000": the list must never count tasks the index no longer holds
    index = TaskIndex(max_tasks=500)
    view = TaskListView(index, chunk=200)
    view.set_filter(text)
    view.set_sort(sort)
    view.settle()
    for batch in batches(events, 97):
        view.sync(index.apply_batch(batch))
        view.settle()
        rows = view.rows(0, len(view))
        assert len(view) <= len(index) == view.total
        assert all(index.get(r.uuid) is r for r in rows)
        wanted = index.snapshot() if not text else \
            view.predicate.filter(index.snapshot())  # type: ignore[union-attr]
        if sort == "time":
            assert {r.uuid for r in rows} == {r.uuid for r in wanted}
        else:  # a sorted list drops tasks that stopped matching at its next re-sort (1 s)
            assert {r.uuid for r in rows} >= {r.uuid for r in wanted}
        assert len(rows) == len({r.uuid for r in rows})
    assert index.evicted > 2000


def test_a_view_that_fell_behind_the_eviction_log_compacts(events: list[dict[str, Any]]) -> None:
    index = TaskIndex(max_tasks=50)
    view = TaskListView(index, chunk=200)
    view.set_filter("-state:revoked")
    view.settle()
    touched: list[Any] = []
    for batch in batches(events, 500):
        touched += index.apply_batch(batch)
    index._evicted_log.clear()  # as if more than EVICTION_LOG evictions happened since
    view.sync(touched)
    view.settle()
    view.sync()
    assert {r.uuid for r in view.rows(0, len(view))} == \
        {r.uuid for r in view.predicate.filter(index.snapshot())}  # type: ignore[union-attr]


def test_rebuild_from_a_filled_index(events: list[dict[str, Any]]) -> None:
    index = TaskIndex()
    index.apply_batch(events)
    view = TaskListView(index)
    assert len(view) == 3000
    view.set_filter("state:failure")
    view.settle()
    assert len(view) == 121


def test_feed_hands_over_batches_and_reports_overflow() -> None:
    feed = TaskFeed(limit=5)
    rec = TaskRecord(uuid="a")
    feed.push([{"type": "task-sent"}], [rec])
    feed.push([{"type": "task-started"}], [rec])
    evs, recs, overflowed = feed.drain()
    assert len(evs) == 2 and recs == [rec, rec] and not overflowed
    feed.push([{}] * 6, [rec] * 6)
    assert feed.drain()[2] is True
    assert feed.drain() == ([], [], False)


def test_rate_tracker() -> None:
    clock = Clock(1000.5)
    rates = EventRates(horizon=600, clock=clock)
    evs = [{"type": "task-succeeded", "local_received": 990.2}] * 9 + \
          [{"type": "task-failed", "local_received": 995.0}] + \
          [{"type": "worker-heartbeat", "local_received": 999.1}] * 5
    rates.add(evs)
    assert rates.totals(300) == (9, 1)
    assert rates.success_rate(300) == pytest.approx(0.9)
    assert rates.success_rate(6) == pytest.approx(0.0)  # only the failure at 995
    assert rates.events_per_second(window=5) == pytest.approx(1.2)  # 6 events in 995..999
    ok = rates.series("ok", buckets=12, bucket_seconds=1)
    assert len(ok) == 12 and ok[2] == 9.0  # buckets 988..999: 990 is the third
    clock.t = 2000.0
    assert rates.success_rate(300) is None


def test_worker_rows(events: list[dict[str, Any]]) -> None:
    clock = Clock(0.0)
    index = TaskIndex(clock=clock)
    for e in events:
        clock.t = e["local_received"]
        index.apply(e)
    rows = worker_rows(index, now=clock.t + 1.0)
    assert [r.hostname for r in rows] == ["rec1@vm", "rec2@vm"]
    assert {r.status for r in rows} <= {"online", "offline", "lost"}
    assert sum(r.tasks for r in rows) > 0
    assert all(r.version == "5.7.0" for r in rows)


@dataclass(frozen=True)
class _Q:
    name: str
    ready: int


@dataclass(frozen=True)
class _Snap:
    queues: tuple[_Q, ...]


def test_queue_history() -> None:
    hist = QueueHistory(size=3)
    snaps = [_Snap((_Q("celery", n), _Q("hipri", 10 * n))) for n in range(5)]
    for s in snaps:
        assert hist.update(s)
        assert not hist.update(s)  # the same snapshot again is not a new sample
    assert hist.series("celery") == [2, 3, 4]
    assert hist.series("hipri") == [20, 30, 40]
    assert hist.series("missing") == []
