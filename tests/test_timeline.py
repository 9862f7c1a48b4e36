"""The timeline's layout (lazycelery.core.timeline) and its view model
(lazycelery.tui.screen.timeline): bars from the recorded real event streams packed into lanes
per worker process and per queue, the zoom and pan arithmetic, what a row draws, and hostile
records (no start time, clock skew, zero length, odd values, huge counts)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.timeline import (
    BY_QUEUE,
    BY_WORKER,
    MAX_ROWS,
    MAX_SPAN,
    MIN_SPAN,
    Bar,
    Row,
    View,
    bar_of,
    build_layout,
    render_row,
    ticks,
)
from lazycelery.tui.screen.timeline import FOLLOW_STEPS, TimelineModel
from tests.replay import BROKERS, load_events, load_expected

T0 = 1_800_000_000.0


def replayed(broker: str) -> tuple[TaskIndex, list[dict[str, Any]]]:
    events = load_events(broker)
    index = TaskIndex(max_tasks=100_000)
    for i in range(0, len(events), 100):
        index.apply_batch(events[i:i + 100])
    return index, events


class Rows:
    """A task list as the timeline model reads it."""

    def __init__(self, records: list[TaskRecord]) -> None:
        self.records = records
        self.generation = 0

    def __len__(self) -> int:
        return len(self.records)

    def row(self, d: int) -> TaskRecord:
        return self.records[d]

    def snapshot(self) -> list[TaskRecord]:
        return list(self.records)


def rec(uuid: str, **kw: Any) -> TaskRecord:
    kw.setdefault("worker", "w1@h")
    kw.setdefault("state", "SUCCESS")
    return TaskRecord(uuid=uuid, **kw)


def no_overlap(row: Row) -> bool:
    return all(a.end is not None and a.end <= b.start for a, b in itertools.pairwise(row.bars))


def most_at_once(bars: list[Bar]) -> int:
    """The most bars overlapping at one time (a bar ending as another starts: not at once)."""
    edges = sorted([(b.start, 1) for b in bars] +
                   [(b.end if b.end is not None else math.inf, -1) for b in bars])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


# --------------------------------------------------------------------------- recorded streams


@pytest.mark.parametrize("broker", BROKERS)
def test_recorded_tasks_in_one_lane_per_worker_process(broker: str) -> None:
    index, events = replayed(broker)
    model = TimelineModel(Rows(index.newest(len(index))), clock=lambda: T0)
    model.feed(events)
    model.refresh(force=True)
    layout = model.layout
    expected = load_expected(broker)
    pids = {e["hostname"]: e["pid"] for e in events if e["type"] == "worker-online"}
    assert [lane.key for lane in layout.lanes] == sorted(
        f"{host} [{pid}]" for host, pid in pids.items())
    started = {r.uuid for r in index.newest(len(index))
               if r.started is not None or r.received is not None}
    assert layout.bars == len(started) and set(layout.where) == started
    assert layout.untimed == len(index) - len(started) > 0  # sent, never received
    assert layout.hidden == 0 and layout.skewed == 0
    for lane in layout.lanes:
        # as few rows as the most tasks at once (prefetched tasks count from received)
        assert len(lane.rows) == most_at_once([b for row in lane.rows for b in row.bars]) >= 2
        for row in lane.rows:
            assert no_overlap(row)
            worker = lane.key.split(" [")[0]
            assert {b.record.worker for b in row.bars} == {worker}
    assert {w for w in expected["workers"]} >= {lane.key.split(" [")[0]
                                                 for lane in layout.lanes}


@pytest.mark.parametrize("broker", BROKERS)
def test_recorded_tasks_in_one_lane_per_queue(broker: str) -> None:
    index, _ = replayed(broker)
    layout = build_layout(index.newest(len(index)), BY_QUEUE)
    assert [lane.key for lane in layout.lanes] == ["bench"]  # every task was sent to it
    assert sum(len(row.bars) for row in layout.lanes[0].rows) == layout.bars
    assert all(no_overlap(row) for row in layout.lanes[0].rows)


def test_every_bar_is_drawn_where_its_time_is() -> None:
    index, _ = replayed("redis")
    layout = build_layout(index.newest(len(index)))
    assert layout.first is not None and layout.last is not None
    view = View.fit(layout.first, layout.last)
    width = 200
    for d in range(len(layout.rows)):
        row = layout.row(d)
        segments = render_row(row, view, width, T0)
        assert segments, "every row has bars in the fitted view"
        assert all(0 <= col < stop <= width for col, stop, _ in segments)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(segments))
        for col, _, bar in segments:  # a segment starts in the column of its bar (or after)
            assert int(view.column(bar.start, width)) <= col
            assert view.column(bar.end_at(T0), width) >= col


# --------------------------------------------------------------------------- view arithmetic


def test_zoom_keeps_the_time_under_the_anchor_and_is_bounded() -> None:
    view = View(T0, 100.0)
    inside = view.zoom(2.0, at=T0 + 25)
    assert inside.span == 50.0
    assert inside.column(T0 + 25, 100) == pytest.approx(view.column(T0 + 25, 100))
    centred = view.zoom(4.0)
    assert centred.start + centred.span / 2 == pytest.approx(T0 + 50)
    assert view.zoom(1e12).span == MIN_SPAN and view.zoom(1e-12).span == MAX_SPAN
    assert view.zoom(2.0).zoom(0.5) == pytest.approx(view) or \
        view.zoom(2.0).zoom(0.5).span == pytest.approx(100.0)


def test_pan_and_showing() -> None:
    view = View(T0, 60.0)
    assert view.pan(0.25).start == T0 + 15 and view.pan(-1.0).end == T0
    assert view.showing(T0 + 30) is view
    moved = view.showing(T0 + 600)
    assert moved.span == 60 and moved.start <= T0 + 600 <= moved.end


def test_fit_holds_everything_and_a_single_instant() -> None:
    view = View.fit(T0, T0 + 100)
    assert view.start < T0 and view.end > T0 + 100
    point = View.fit(T0, T0)
    assert point.span == MIN_SPAN and point.start < T0 < point.end


def test_ticks_are_round_times_in_the_view() -> None:
    view = View(T0 + 0.3, 120.0)
    found = ticks(view, 160)
    assert found and all(view.start <= t < view.end for _, t in found)
    steps = {round(b - a, 6) for (_, a), (_, b) in itertools.pairwise(found)}
    assert len(steps) == 1 and all(t % next(iter(steps)) == pytest.approx(0, abs=1e-6)
                                   for _, t in found)
    assert all(0 <= col < 160 for col, _ in found)
    assert ticks(view, 0) == [] and ticks(View(T0, 0.0), 100) == []


# --------------------------------------------------------------------------- hostile input


def test_no_start_time_is_counted_not_drawn() -> None:
    layout = build_layout([rec("a", state="PENDING", sent=T0), rec("b", received=T0)])
    assert layout.untimed == 1 and set(layout.where) == {"b"}


def test_end_before_start_is_drawn_zero_length_and_counted() -> None:
    bar, skewed = bar_of(rec("a", started=T0, succeeded=T0 - 5))
    assert skewed and bar is not None and bar.end == bar.start == T0
    layout = build_layout([rec("a", started=T0, succeeded=T0 - 5)])
    assert layout.skewed == 1 and layout.bars == 1


def test_zero_length_and_finished_without_end_get_one_column() -> None:
    layout = build_layout([rec("a", started=T0, succeeded=T0),
                           rec("b", started=T0 + 50, state="FAILURE")])
    view = View(T0 - 10, 100.0)
    segs = render_row(layout.row(0), view, 100, T0)
    assert [(col, stop, bar.record.uuid) for col, stop, bar in segs] == [
        (10, 11, "a"), (60, 61, "b")]


def test_running_task_is_drawn_until_now() -> None:
    layout = build_layout([rec("a", state="STARTED", started=T0)])
    bar = layout.bar("a")
    assert bar is not None and bar.end is None
    segs = render_row(layout.row(0), View(T0, 100.0), 100, T0 + 40)
    assert [(col, stop) for col, stop, _ in segs] == [(0, 40)]


def test_odd_values_get_no_bar_and_no_error() -> None:
    odd: list[Any] = [math.nan, math.inf, "soon", True, 10**400, None]
    records = [rec(f"t{i}", started=v, received=v) for i, v in enumerate(odd)]
    records.append(rec("bad-end", started=T0, succeeded=math.nan))
    records.append(rec("no-worker", worker=None, started=T0))
    layout = build_layout(records)
    assert layout.untimed == len(odd)
    assert set(layout.where) == {"bad-end", "no-worker"}
    assert [lane.key for lane in layout.lanes] == ["(no worker)", "w1@h"]
    assert build_layout(records, BY_QUEUE).lanes[0].key == "(no queue)"


def test_more_overlaps_than_rows_are_counted_as_hidden() -> None:
    records = [rec(f"t{i}", started=T0, succeeded=T0 + 10) for i in range(MAX_ROWS + 5)]
    layout = build_layout(records)
    assert len(layout.lanes[0].rows) == MAX_ROWS and layout.hidden == 5
    assert layout.bars == MAX_ROWS


def test_a_hundred_thousand_tasks_draw_in_width_segments() -> None:
    records = [rec(f"t{i}", worker=f"w{i % 4}@h", started=T0 + i * 0.01,
                   succeeded=T0 + i * 0.01 + 0.005) for i in range(100_000)]
    layout = build_layout(records, BY_WORKER)
    assert layout.bars == 100_000 and len(layout.lanes) == 4
    assert layout.first is not None and layout.last is not None
    view = View.fit(layout.first, layout.last)
    for d in range(len(layout.rows)):
        segs = render_row(layout.row(d), view, 120, T0)
        assert 0 < len(segs) <= 120


# --------------------------------------------------------------------------- the view model


def model_of(records: list[TaskRecord], now: float = T0 + 100) -> TimelineModel:
    model = TimelineModel(Rows(records), clock=lambda: now)
    model.refresh(force=True)
    return model


def test_model_follows_now_until_panned() -> None:
    now = [T0 + 100]
    model = TimelineModel(Rows([rec("a", started=T0, succeeded=T0 + 1)]), clock=lambda: now[0])
    model.refresh(force=True)
    step = model.view.span / FOLLOW_STEPS  # following, the view moves in small steps
    assert model.follow and T0 + 100 <= model.view.end < T0 + 100 + step
    before = model.view
    now[0] += step / 3
    model.refresh()
    assert model.view is before  # within a step: the same view (the pane reuses its lines)
    model.zoom_in()
    assert model.view.end == pytest.approx(T0 + 100, abs=step) and model.view.span == 150.0
    end = model.view.end
    model.pan(-0.25)
    assert not model.follow and model.view.end == pytest.approx(end - 37.5)
    model.toggle_follow()
    assert model.follow and model.view.end == pytest.approx(now[0], abs=step)


def test_model_selection_moves_between_rows_and_tasks() -> None:
    records = [rec("a1", worker="a@h", started=T0, succeeded=T0 + 1),
               rec("a2", worker="a@h", started=T0 + 10, succeeded=T0 + 11),
               rec("b1", worker="b@h", started=T0 + 9, succeeded=T0 + 10)]
    model = model_of(records)
    model.fit()
    model.move(1)  # nothing selected: the top row, nearest the centre
    assert model.selected == "a2"
    model.step(-1)
    assert model.selected == "a1"
    model.step(-1)
    assert model.selected == "a1"  # stays at the row's first task
    model.move(1)
    assert model.selected == "b1"  # the nearest in time in the next row
    model.move(1)
    assert model.selected == "b1"  # the last row
    assert model.selected_record() is records[2]


def test_selecting_off_screen_brings_it_into_view() -> None:
    records = [rec("a", started=T0, succeeded=T0 + 1),
               rec("b", started=T0 + 5000, succeeded=T0 + 5001)]
    model = model_of(records, now=T0 + 6000)
    model.view = View(T0 - 10, 30.0)
    model.follow = False
    model.select("a")
    model.step(1)
    assert model.selected == "b"
    assert model.view.start <= T0 + 5000 <= model.view.end


def test_toggle_grouping_rebuilds_per_queue() -> None:
    records = [rec("a", queue="q1", started=T0), rec("b", queue="q2", started=T0)]
    model = model_of(records)
    assert [lane.key for lane in model.layout.lanes] == ["w1@h"]
    model.toggle_grouping()
    assert [lane.key for lane in model.layout.lanes] == ["q1", "q2"]
    assert "2 queues" in model.title()


def test_pids_are_remembered_bounded_and_odd_ones_ignored() -> None:
    model = model_of([rec("a", started=T0)])
    model.feed([{"type": "task-started", "uuid": "a", "pid": 7},
                {"type": "task-started", "uuid": "b", "pid": True},
                {"type": "task-started", "uuid": 5, "pid": 8},
                {"type": "task-sent", "uuid": "c", "pid": 9},
                {"type": "worker-heartbeat", "uuid": "d", "pid": 9},
                {"type": "task-revoked", "uuid": "e", "pid": 10}])
    assert dict(model.pids) == {"a": 7, "e": 10}
    model.refresh(force=True)
    assert [lane.key for lane in model.layout.lanes] == ["w1@h [7]"]


def test_rebuilds_are_throttled_while_the_list_changes() -> None:
    now = [T0]
    records = [rec("a", started=T0)]
    rows = Rows(records)
    model = TimelineModel(rows, clock=lambda: now[0])
    model.refresh()
    assert model.layout.bars == 1
    records.append(rec("b", started=T0))
    rows.generation += 1
    model.refresh()
    assert model.layout.bars == 1  # within BUILD_EVERY of the last build
    now[0] += 1.0
    model.refresh()
    assert model.layout.bars == 2


def test_visible_rows_keep_the_selection_on_screen() -> None:
    records = [rec(f"t{i}", worker=f"w{i:02d}@h", started=T0) for i in range(30)]
    model = model_of(records)
    assert model.visible_rows(10) == range(0, 10)
    model.select("t25")
    assert 25 in model.visible_rows(10)
    model.select("t0")
    assert model.visible_rows(10) == range(0, 10)
    assert model.visible_rows(0) == range(0, 0)


def test_threaded_build_is_taken_in_by_the_next_refresh() -> None:
    import threading

    records = [rec(f"t{i}", started=T0 + i) for i in range(1000)]
    rows = Rows(records)
    model = TimelineModel(rows, clock=lambda: T0, threaded=True)
    ready = threading.Event()
    model.on_built = ready.set
    assert model.refresh() is None
    assert ready.wait(10)
    assert not model.building
    model.refresh()
    assert model.layout.bars == 1000
    records.append(rec("late", started=T0))
    rows.generation += 1
    assert model.refresh() is not None  # held back: built within the last second
    assert model.layout.bars == 1000


@pytest.mark.parametrize(("filter_text", "sort"), [("", "time"), ("state:failure", "time"),
                                                  ("", "name"), ("-state:success", "runtime")])
def test_the_task_lists_snapshot_holds_its_rows(filter_text: str, sort: str) -> None:
    from lazycelery.core.task_list import TaskListView

    index, _ = replayed("redis")
    tasks = TaskListView(index)
    tasks.set_filter(filter_text)
    tasks.set_sort(sort)
    tasks.settle()
    shown = tasks.rows(0, len(tasks))
    snapshot = tasks.snapshot()
    assert len(snapshot) == len(shown) > 0
    assert {r.uuid for r in snapshot} == {r.uuid for r in shown}


def test_threaded_grouping_switch_builds_on_the_thread() -> None:
    import threading

    records = [rec(f"t{i}", queue=f"q{i % 3}", started=T0 + i) for i in range(300)]
    model = TimelineModel(Rows(records), clock=lambda: T0, threaded=True)
    built = threading.Event()
    model.on_built = built.set
    model.refresh()
    assert built.wait(10)
    model.refresh()
    assert [lane.key for lane in model.layout.lanes] == ["w1@h"]
    built.clear()
    before = model.layout
    model.toggle_grouping()
    assert model.layout is before  # not built on the caller's (the UI) thread
    assert built.wait(10)
    model.refresh()
    assert [lane.key for lane in model.layout.lanes] == ["q0", "q1", "q2"]
