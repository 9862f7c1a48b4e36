"""The fleet analysis on the recorded real event stream (two workers, ~2,900 finished tasks):
every figure is checked against one computed here straight from the raw events, by other
means (no TaskIndex, no shared helper; brute-force percentiles), and the headline numbers are
also pinned."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import pytest

from lazycelery.analysis.fleet import sla as slas
from lazycelery.analysis.fleet import tasks
from lazycelery.analysis.fleet.samples import TaskSample, percentile, task_samples
from lazycelery.core.index import TaskIndex
from tests.replay import load_events

EVENTS = load_events("redis")


def _raw_finished() -> dict[str, dict[str, Any]]:
    """uuid -> what the raw events say of each task that ended in success or failure: its
    name (first event carrying one), worker and time of its terminal event, runtime (the
    succeeded event's, else failed - last started), wait (last started - last sent)."""
    name: dict[str, str] = {}
    sent: dict[str, float] = {}
    started: dict[str, float] = {}
    done: dict[str, dict[str, Any]] = {}
    for e in EVENTS:
        uuid = e.get("uuid")
        if uuid is None:
            continue
        if "name" in e and uuid not in name:
            name[uuid] = e["name"]
        kind, ts = e["type"], e["timestamp"]
        if kind == "task-sent":
            sent[uuid] = max(ts, sent.get(uuid, ts))
        elif kind == "task-started":
            started[uuid] = max(ts, started.get(uuid, ts))
        elif kind == "task-succeeded":
            done[uuid] = {"ok": True, "time": ts, "worker": e["hostname"],
                          "runtime": e["runtime"]}
        elif kind == "task-failed" and not done.get(uuid, {}).get("ok"):
            done[uuid] = {"ok": False, "time": ts, "worker": e["hostname"], "runtime": None}
    for uuid, d in done.items():
        d["name"] = name.get(uuid, "?")
        if d["runtime"] is None and uuid in started:
            d["runtime"] = max(0.0, d["time"] - started[uuid])
        first = sent.get(uuid)
        d["wait"] = max(0.0, started[uuid] - first) if first is not None and uuid in started \
            else None
    return done


RAW = _raw_finished()


def brute_p95(values: list[float]) -> float:
    """The smallest value with at least 95 % of the values at or below it, by trying each."""
    n = len(values)
    return min(v for v in values if sum(1 for x in values if x <= v) >= 0.95 * n)


@pytest.fixture(scope="module")
def samples() -> list[TaskSample]:
    index = TaskIndex(max_tasks=1_000_000)
    index.apply_batch(EVENTS)
    return task_samples(index.snapshot())


def test_samples_are_the_finished_tasks_of_the_raw_stream(samples: list[TaskSample]) -> None:
    assert len(samples) == len(RAW) == 2906
    for s in samples:
        raw = RAW[s.uuid]
        assert (s.name, s.worker, s.finished, not s.failed) == (
            raw["name"], raw["worker"], raw["time"], raw["ok"])
        assert s.runtime == pytest.approx(raw["runtime"])
        assert s.wait == pytest.approx(raw["wait"])


def test_load_distribution(samples: list[TaskSample]) -> None:
    loads = tasks.load_distribution(samples)
    per = Counter(d["worker"] for d in RAW.values())
    failed = Counter(d["worker"] for d in RAW.values() if not d["ok"])
    assert [(x.worker, x.tasks, x.failed) for x in loads] == [
        ("rec1@vm", 1502, 52), ("rec2@vm", 1404, 69)]
    for x in loads:
        assert (x.tasks, x.failed) == (per[x.worker], failed[x.worker])
        assert x.share == x.tasks / 2906
        names = Counter(d["name"] for d in RAW.values() if d["worker"] == x.worker)
        assert dict(x.names) == dict(names)
    assert sum(x.share for x in loads) == pytest.approx(1.0)


def test_heatmap_p95_and_counts_per_name_and_bucket(samples: list[TaskSample]) -> None:
    bucket = 5.0
    heat = tasks.duration_heatmap(samples, bucket, "p95")
    counts = tasks.duration_heatmap(samples, bucket, "count")
    cells: dict[tuple[str, float], list[float]] = defaultdict(list)
    for d in RAW.values():
        cells[(d["name"], math.floor(d["time"] / bucket) * bucket)].append(d["runtime"])
    assert heat.columns == (1795825490.0, 1795825495.0, 1795825500.0, 1795825505.0)
    assert heat.rows[0] == "benchapp.add" and set(heat.rows) == {d["name"] for d in RAW.values()}
    checked = 0
    for name, row, count_row in zip(heat.rows, heat.cells, counts.cells, strict=True):
        for column, value, count in zip(heat.columns, row, count_row, strict=True):
            values = cells.get((name, column))
            if not values:
                assert value is None and count is None
                continue
            assert value == pytest.approx(brute_p95(values))
            assert count == len(values)
            checked += 1
    assert checked == sum(1 for v in cells.values() if v)


def test_p95_is_a_value_some_task_had() -> None:
    assert percentile([], 95) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 95) == 95.0 == brute_p95(values)
    assert percentile(values[:20], 95) == 19.0 == brute_p95(values[:20])


def test_throughput_per_worker_per_second(samples: list[TaskSample]) -> None:
    found = tasks.throughput(samples, 1.0, "worker")
    expected: Counter[tuple[str, float]] = Counter(
        (d["worker"], float(math.floor(d["time"]))) for d in RAW.values())
    for series in found.series:
        assert series.counts == tuple(expected[(series.key, c)] for c in found.columns)
    assert sum(found.total) == 2906
    assert found.total == tuple(sum(s.counts[i] for s in found.series)
                                for i in range(len(found.columns)))


def test_worker_performance_per_bucket(samples: list[TaskSample]) -> None:
    rows = tasks.worker_performance(samples, 5.0, worker="rec2@vm")
    assert [r.stats.tasks for r in rows] == [207, 482, 435, 280]
    for r in rows:
        mine = [d for d in RAW.values() if d["worker"] == "rec2@vm"
                and r.start <= d["time"] < r.start + 5.0]
        runtimes = [d["runtime"] for d in mine]
        assert r.stats.tasks == len(mine)
        assert r.stats.failed == sum(1 for d in mine if not d["ok"])
        assert r.per_second == len(mine) / 5.0
        assert r.stats.mean_runtime == pytest.approx(sum(runtimes) / len(runtimes))
        assert r.stats.p95_runtime == pytest.approx(brute_p95(runtimes))


def test_trends_compare_two_windows(samples: list[TaskSample]) -> None:
    until = 1795825510.0
    found = tasks.trends(samples, 10.0, until)
    now = [d for d in RAW.values() if until - 10 <= d["time"] < until]
    before = [d for d in RAW.values() if until - 20 <= d["time"] < until - 10]
    every = found[0]
    assert every.key == tasks.ALL
    assert (every.current.tasks, every.previous.tasks) == (len(now), len(before))
    assert every.change("tasks") == pytest.approx((len(now) - len(before)) / len(before))
    add = next(t for t in found if t.key == "benchapp.add")
    add_now = [d["runtime"] for d in now if d["name"] == "benchapp.add"]
    assert add.current.p95_runtime == pytest.approx(brute_p95(add_now))


def test_sla_breaches_are_counted_and_listed(samples: list[TaskSample]) -> None:
    targets = slas.targets({"benchapp.add": (0.05, None), "benchapp.*": (None, 1.0)})
    report = slas.evaluate(samples, targets, listed=10)
    over_runtime = [d for d in RAW.values() if d["name"] == "benchapp.add" and d["runtime"] > 0.05]
    over_wait = [d for d in RAW.values() if d["name"] != "benchapp.add"
                 and d["name"].startswith("benchapp.") and d["wait"] is not None
                 and d["wait"] > 1.0]
    rows = {r.name: r for r in report.rows}
    assert rows["benchapp.add"].runtime_breaches == len(over_runtime) == 18
    assert rows["benchapp.add"].wait_breaches == 0  # the exact name wins over the glob
    assert sum(r.wait_breaches for r in report.rows) == len(over_wait) == 96
    assert report.total_breaches == 18 + 96 and len(report.breaches) == 10
    assert [b.finished for b in report.breaches] == sorted(
        (b.finished for b in report.breaches), reverse=True)
    assert all(b.value > b.limit for b in report.breaches)
    worst = max(d["runtime"] for d in over_runtime)
    assert rows["benchapp.add"].worst == {"runtime": pytest.approx(worst)}


def test_the_longest_glob_and_an_exact_name_win() -> None:
    found = slas.targets({"a.*": (1.0, None), "a.b*": (2.0, None), "a.bc": (3.0, None)})
    assert slas.target_for("a.bc", found).runtime == 3.0  # type: ignore[union-attr]
    assert slas.target_for("a.bd", found).runtime == 2.0  # type: ignore[union-attr]
    assert slas.target_for("a.x", found).runtime == 1.0  # type: ignore[union-attr]
    assert slas.target_for("b", found) is None


def test_columns_cover_the_range_half_open() -> None:
    assert tasks.columns_between([], 60.0, 120.0, 300.0) == (120.0, 180.0, 240.0)
    assert tasks.columns_between([], 60.0, 130.0, 301.0) == (120.0, 180.0, 240.0, 300.0)
    with pytest.raises(ValueError, match="more than"):
        tasks.columns_between([], 1.0, 0.0, 1e6)
