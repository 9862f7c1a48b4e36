"""Error groups from the recorded real failures: counts, task names, workers, queues, times,
per-minute counts, "new since", bounds."""

from __future__ import annotations

from lazycelery.analysis import ErrorGroups
from lazycelery.analysis.report import groups_json, trend
from tests.errors_data import by_task, recorded_events, replay


def test_group_counts_by_dimension() -> None:
    groups = replay()
    cache = by_task(groups, "shop.cache_get")
    assert cache.count == 30
    assert cache.fp.exc_type == "redis.exceptions.ConnectionError"
    assert set(cache.workers.counts) == {"w-good@shop-1", "w-bad@shop-1"}
    assert cache.hosts.counts == {"shop-1": 30}
    assert cache.queues.counts == {"shop": 30}  # from task-sent (routing)
    assert cache.versions.counts == {"5.7.0": 30}  # from the workers' events
    assert len(cache.task_ids) == 30
    assert cache.first_seen <= cache.last_seen
    assert sum(cache.minutes.counts.values()) == 30
    assert groups.failures == sum(g.count for g in groups)
    assert groups.finished == 146 + 49


def test_new_since_and_sparkline() -> None:
    groups = replay()
    render = by_task(groups, "shop.render_page")
    assert render.is_new(render.first_seen + 60, within=120)
    assert not render.is_new(render.first_seen + 600, within=120)
    counts = render.sparkline_counts(render.last_seen, 5)
    assert len(counts) == 5 and sum(counts) == 20


def test_trend_overall_and_per_group() -> None:
    groups = replay()
    overall = trend(groups, None, "minute")
    assert sum(n for _, n in overall) == groups.failures
    assert all(b % 60 == 0 for b, _ in overall)
    resize = by_task(groups, "shop.resize")
    assert sum(n for _, n in trend(groups, resize.key[:6], "hour")) == 31
    assert trend(groups, "nosuchgroup", "day") == []


def test_bounded_groups_evict_the_least_recent() -> None:
    groups = ErrorGroups(max_groups=3)
    for i in range(5):
        groups.observe({"type": "task-failed", "uuid": f"u{i}", "timestamp": 1000.0 + i,
                        "hostname": "w@h", "exception": f"E{i}Error('x')"})
    assert len(groups) == 3 and groups.evicted == 2
    assert [g.fp.exc_type for g in groups] == ["E2Error", "E3Error", "E4Error"]


def test_bad_events_are_ignored() -> None:
    groups = ErrorGroups()
    groups.observe_batch([{"type": None}, {}, {"type": "task-failed"},
                          {"type": "task-failed", "timestamp": "soon", "uuid": "x"},
                          {"type": "worker-online", "hostname": 3, "timestamp": 1.0}])
    assert len(groups) == 0 and groups.failures == 0


def test_json_report_is_complete() -> None:
    groups = replay()
    doc = groups_json(groups, now=groups.last_time or 0.0, new_within=30)
    assert doc["groups_total"] == len(doc["groups"]) == 17
    first = doc["groups"][0]
    assert first["tasks"] == {"shop.resize": 31} and first["hints"]
    assert {c["count"] for c in doc["clusters"]} == {40, 10}
    assert sum(1 for g in doc["groups"] if g["new"]) >= 1


def test_record_is_real() -> None:
    """The fixture is a real worker's stream (not hand-written): celery's frames are there."""
    tracebacks = [e["traceback"] for e in recorded_events() if e.get("traceback")]
    assert len(tracebacks) > 100
    assert all("celery/app/trace.py" in tb for tb in tracebacks)
