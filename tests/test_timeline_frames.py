"""The timeline pane's frame drawing (the fused row renderer and the row cache in
lazycelery.tui.panes.timeline) draws exactly the lines the code before it drew
(tests/timeline_reference), on the recorded real stream and on random layouts, views,
selections and times, with round numbers that put bar ends on column edges; and a cache kept
across random changes (selection, zoom, pan, time passing, new layouts, another grouping)
gives what a full recompute gives."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.timeline import View
from lazycelery.tui.panes.timeline import RowCache, timeline_lines
from lazycelery.tui.screen.timeline import TimelineModel
from tests.replay import load_events
from tests.timeline_reference import timeline_lines as before_lines

T0 = 1_800_000_000.0
STATES = ("SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "RETRY", "STARTED", "REVOKED")


class Rows:
    """A task list as the timeline model reads it."""

    def __init__(self, records: list[TaskRecord]) -> None:
        self.records = records
        self.generation = 0

    def snapshot(self) -> list[TaskRecord]:
        return list(self.records)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def random_records(rng: random.Random, n: int, *, whole: bool) -> list[TaskRecord]:
    """``n`` tasks on a few workers; ``whole``: times on whole seconds (bar ends on column
    edges when the view's step is a whole second)."""
    out = []
    for k in range(n):
        start = T0 + (rng.randrange(0, 200) if whole else rng.uniform(0, 200))
        length = rng.choice((0, 1, 2, 5)) if whole else rng.expovariate(1.5)
        state = rng.choice(STATES)
        end: dict[str, Any] = {}
        if state == "SUCCESS":
            end["succeeded"] = start + length
        elif state == "FAILURE":
            end["failed"] = start + length
        elif state == "RETRY":
            end["retried"] = start + length
        elif state == "REVOKED" and rng.random() < 0.5:
            end["revoked"] = start + length
        out.append(TaskRecord(uuid=f"t{k}", worker=f"w{rng.randrange(3)}@h", state=state,
                              started=start, queue=rng.choice(("a", "b")), **end))
    return out


def same_lines(model: TimelineModel, width: int, height: int,
               cache: RowCache | None = None) -> None:
    today = timeline_lines(model, width, height, cache)
    before = before_lines(model, width, height)
    assert today == before


def test_the_recorded_stream_draws_as_before() -> None:
    index = TaskIndex(max_tasks=100_000)
    events = load_events("redis")
    for i in range(0, len(events), 200):
        index.apply_batch(events[i:i + 200])
    model = TimelineModel(Rows(index.newest(len(index))), clock=lambda: T0)
    model.feed(events)
    model.refresh(force=True)
    model.fit()
    for width in (40, 160, 237):
        same_lines(model, width, 45)
    model.move(1)
    model.step(5)
    same_lines(model, 160, 45)
    for _ in range(3):
        model.zoom_in()
        same_lines(model, 160, 45)


@pytest.mark.parametrize("seed", range(12))
def test_random_frames_draw_as_before(seed: int) -> None:
    rng = random.Random(seed)
    whole = seed % 2 == 0
    clock = Clock(T0 + 150.5)
    model = TimelineModel(Rows(random_records(rng, rng.choice((50, 400, 3000)), whole=whole)),
                          clock)
    model.refresh(force=True)
    model.fit()
    for _ in range(30):
        if whole and rng.random() < 0.5:  # a whole second per column: ends on the edges
            model.view = View(T0 + rng.randrange(-20, 150), 100.0)
            width = 100 + 23
        else:
            width = rng.choice((30, 100, 160, 237))
        same_lines(model, width, rng.choice((5, 20, 45)))
        rng.choice((model.zoom_in, model.zoom_out, lambda: model.pan(0.25),
                    lambda: model.pan(-1.0), lambda: model.move(1), lambda: model.move(-1),
                    lambda: model.step(1), model.fit))()
        clock.now += rng.choice((0.0, 0.3, 7.0))


@pytest.mark.parametrize("seed", range(8))
def test_a_cache_kept_across_random_changes_equals_a_full_recompute(seed: int) -> None:
    rng = random.Random(100 + seed)
    clock = Clock(T0 + 150.5)
    rows = Rows(random_records(rng, 2000, whole=seed % 2 == 0))
    model = TimelineModel(rows, clock)
    model.refresh(force=True)
    model.fit()
    cache = RowCache()
    width, height = 160, 30
    for _ in range(60):
        same_lines(model, width, height, cache)
        change = rng.randrange(9)
        if change == 0:
            model.zoom_in()
        elif change == 1:
            model.pan(rng.choice((-0.25, 0.25)))
        elif change == 2:
            model.move(rng.choice((-1, 1)))
        elif change == 3:
            model.step(rng.choice((-1, 1)))
        elif change == 4:  # time passes: only rows whose last task runs change
            clock.now += rng.choice((0.05, 0.5, 3.0))
        elif change == 5:  # a new layout (the list changed)
            rows.records = random_records(rng, 2000, whole=seed % 2 == 0)
            rows.generation += 1
            model.refresh(force=True)
        elif change == 6:
            model.toggle_grouping()
            model.refresh(force=True)
        elif change == 7:
            width = rng.choice((120, 160, 200))
        else:
            model.fit()
