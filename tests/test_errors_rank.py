"""The errors pane's ranking kept incrementally (lazycelery.tui.screen.errors: the groups a few
failures touched moved alone, the clusters made again only when their groups changed, the
first-seen index updated in place) equals a full recompute (sorting every group by count and
last seen, stable, in the groups' order; clusters of the top groups) after random failures:
new groups, repeated ones, equal times, times out of order, evictions, bursts bigger than the
incremental step."""

from __future__ import annotations

import random
import time
from operator import attrgetter

import pytest

from lazycelery.analysis import ErrorGroups, clusters
from lazycelery.tui.screen.errors import CLUSTER_GROUPS, INCREMENTAL, ErrorsModel

T0 = 1_800_000_000.0
WORDS = ("redis", "timeout", "refused", "host", "order", "payment", "socket", "reset", "peer")
TYPES = ("ConnectionError", "TimeoutError", "ValueError", "KeyError")


def failure(rng: random.Random, kinds: int, when: float) -> dict[str, object]:
    k = rng.randrange(kinds)
    words = " ".join(WORDS[(k + j) % len(WORDS)] for j in range(k % 4 + 2))
    return {"type": rng.choice(("task-failed", "task-failed", "task-retried")),
            "uuid": f"u{rng.random()}", "timestamp": when, "hostname": f"w{k % 3}@h",
            "exception": f"{TYPES[k % len(TYPES)]}('{words} {k}')"}


def full(model: ErrorsModel) -> tuple[list[str], list[float], dict[str, tuple[str, int]]]:
    """What the code before the incremental ranking computed, from scratch."""
    ranked = sorted(model.groups.groups.values(), key=attrgetter("count", "last_seen"),
                    reverse=True)
    found = clusters(ranked[:CLUSTER_GROUPS])
    return ([g.key for g in ranked], sorted(g.first_seen for g in ranked),
            {g.key: (c.key, len(c.groups)) for c in found for g in c.groups})


@pytest.mark.parametrize("seed", range(10))
def test_incremental_ranking_equals_a_full_recompute(seed: int) -> None:
    rng = random.Random(seed)
    now = [T0]
    model = ErrorsModel(clock=lambda: now[0])
    if seed % 3 == 0:
        model.groups = ErrorGroups(max_groups=40)  # evictions
    kinds = rng.choice((30, 80, 300))
    when = T0 - 600
    incremental = 0
    for step in range(80):
        burst = rng.choice((1, 1, 2, 5, INCREMENTAL, INCREMENTAL + 5))
        batch = []
        for _ in range(burst):
            if rng.random() < 0.8:
                when += rng.choice((0.0, 0.001, 1.0))  # equal times too
            batch.append(failure(rng, kinds, when - rng.choice((0.0, 0.0, 0.0, 30.0))))
        model.feed(batch)
        before = model._ranked_version
        model.refresh(force=True)
        incremental += 0 < model.groups.version - before <= INCREMENTAL
        keys, firsts, cluster_of = full(model)
        assert [g.key for g in model.list.items] == keys
        assert model._first_seen == firsts
        assert model._cluster_of == cluster_of
        assert len(model.list) == len(keys)
        selected = model.list.selected
        assert selected is not None and selected.key == model.list.selected_key
        assert model.list.items[model.list.selected_index()] is selected
        if step % 7 == 0:
            model.move(rng.randrange(-3, 10))
        now[0] += rng.choice((0.0, 30.0))
    assert incremental > 20  # the incremental path was the one tested


def test_a_new_group_keeps_the_selection_on_its_group() -> None:
    model = ErrorsModel(clock=time.time)
    rng = random.Random(1)
    model.feed([failure(rng, 10, T0 + i) for i in range(30)])
    model.refresh(force=True)
    model.move(3)
    chosen = model.list.selected_key
    model.feed([failure(rng, 50, T0 + 100 + i) for i in range(3)])
    model.refresh(force=True)
    assert model.list.selected_key == chosen
    assert model.selected is not None and model.selected.key == chosen


class ArrivingLock:
    """The groups' lock, and failures another thread (the history's) adds just before the
    ranking takes it: after the ranking read the version, before it reads the groups."""

    def __init__(self, model: ErrorsModel, batch: list[dict[str, object]]) -> None:
        self.real = model.groups.lock
        self.model = model
        self.batch = batch

    def __enter__(self) -> None:
        batch, self.batch = self.batch, []
        if batch:
            self.model.groups.observe_batch(batch)  # takes this lock again: batch is empty
        self.real.acquire()

    def __exit__(self, *exc: object) -> None:
        self.real.release()


def test_failures_arriving_while_ranking_are_ranked_too() -> None:
    rng = random.Random(5)
    model = ErrorsModel(clock=time.time)
    model.feed([failure(rng, 40, T0 + i) for i in range(200)])
    model.refresh(force=True)
    for k in range(5):
        model.feed([failure(rng, 40, T0 + 300 + k)])
        model.groups.lock = ArrivingLock(  # type: ignore[assignment]
            model, [failure(rng, 40, T0 + 400 + k + j / 10) for j in range(3)])
        model.refresh(force=True)
        model.groups.lock = model.groups.lock.real  # type: ignore[attr-defined]
        model.refresh(force=True)
        assert [g.key for g in model.list.items] == full(model)[0]
