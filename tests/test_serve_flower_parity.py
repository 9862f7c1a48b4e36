"""The serve's task listing, search and Flower metric counters replayed against Flower's own
code (its search engine over celery's State, its Prometheus metrics) on the recorded streams."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.serve import tasks as serve_tasks
from lazycelery.serve.counters import FlowerCounters
from lazycelery.serve.errors import ApiError
from lazycelery.serve.search import SearchError, compile_search
from lazycelery.serve.tasks import MAX_LIMIT, page, parse_query
from tests.replay import BROKERS, load_events

flower_events = pytest.importorskip("flower.events", reason="Flower is in the test extra")
from flower.utils import search as flower_search  # noqa: E402
from flower.utils import tasks as flower_tasks  # noqa: E402


@pytest.fixture(scope="module", params=BROKERS)
def both(request: pytest.FixtureRequest) -> Iterator[tuple[TaskIndex, Any, FlowerCounters]]:
    events = load_events(request.param)
    index = TaskIndex(max_tasks=100_000)
    counters = FlowerCounters()
    for start in range(0, len(events), 256):
        batch = events[start:start + 256]
        counters.on_batch(batch, index.apply_batch(batch))
    state = flower_events.EventsState(max_tasks_in_memory=100_000)
    for event in events:
        state.event(dict(event))
    yield index, types.SimpleNamespace(state=state), counters


def ours(index: TaskIndex, **query: str) -> list[str]:
    return [r.uuid for r in page(index, parse_query(query))]


def theirs(flower: Any, **query: Any) -> list[str]:
    sort_by = query.pop("sort_by", None)
    limit = query.pop("limit", None)
    return [uuid for uuid, _ in flower_tasks.iter_tasks(
        flower, limit=int(limit) if limit is not None else None,
        offset=int(query.pop("offset", 0)), sort_by=sort_by,
        type=query.pop("taskname", None), worker=query.pop("workername", None),
        state=query.pop("state", None), search=query.pop("search", None))]


FILTERS = [
    {}, {"state": "FAILURE"}, {"state": "revoked"}, {"taskname": "benchapp.add"},
    {"search": "state:retry"}, {"search": "name:flaky"}, {"search": "always_fail OR sleepy"},
    {"search": "(name:add OR name:tsum) AND state:success"}, {"search": '"benchapp.process"'},
    {"search": "result:None"}, {"search": "args:142"}, {"search": "kwargs:fail_for=1"},
]


@pytest.mark.parametrize("query", FILTERS)
def test_the_same_tasks_match(both: tuple[TaskIndex, Any, FlowerCounters],
                              query: dict[str, str]) -> None:
    index, flower, _ = both
    mine, flowers = ours(index, **query), theirs(flower, **dict(query))
    if not query:
        assert len(mine) > 1000
    assert set(mine) == set(flowers)


@pytest.mark.parametrize("query", [
    {"sort_by": "received"}, {"sort_by": "-started"}, {"sort_by": "name", "limit": "50"},
    {"sort_by": "-state", "limit": "20", "offset": "30"},
    {"sort_by": "received", "taskname": "benchapp.flaky", "limit": "10"},
])
def test_sorted_pages_are_the_same(both: tuple[TaskIndex, Any, FlowerCounters],
                                   query: dict[str, str]) -> None:
    index, flower, _ = both
    assert ours(index, **query) == theirs(flower, **dict(query))


def test_a_page_without_sort_is_newest_first(both: tuple[TaskIndex, Any, FlowerCounters],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    index, _, _ = both
    newest = [r.uuid for r in index.newest(len(index))]
    assert ours(index, limit="5", offset="2") == newest[2:7]
    failed = [u for u in newest if index.get(u).state == "FAILURE"]  # type: ignore[union-attr]
    assert ours(index, state="FAILURE", limit="3", offset="1") == failed[1:4]
    # past the scan budget the page comes from the copy, sorted by last activity (records of
    # one batch share their time: among them the order may differ)
    monkeypatch.setattr(serve_tasks, "SCAN_BUDGET", 10)

    def times(ids: list[str]) -> list[float]:
        return [index.get(u).last_seen for u in ids]  # type: ignore[union-attr]

    copied = ours(index, state="FAILURE", limit="3", offset="1")
    assert times(copied) == times(failed[1:4])
    assert {index.get(u).state for u in copied} == {"FAILURE"}  # type: ignore[union-attr]
    assert times(ours(index, limit="20", offset="2")) == times(newest[2:22])


@pytest.mark.parametrize("query", [
    "", "a", "ab", "name:", "-x", "NOT foo", '"open', "(add", "add)", "()", "add OR",
    "AND add", "((((((add))))))", "kwargs:a=1", "state:x", "x" * 3000, "ok AND OR x",
])
def test_search_refuses_what_flower_refuses(query: str) -> None:
    try:
        flower_search.parse_query(query)
        flower_ok = True
    except flower_search.QuerySyntaxError:
        flower_ok = False
    try:
        compile_search(query)
        ours_ok = True
    except SearchError:
        ours_ok = False
    assert ours_ok == flower_ok


def test_bad_parameters_name_themselves() -> None:
    for query, name in (({"limit": "ten"}, "limit"), ({"offset": "-3"}, "offset"),
                        ({"sort_by": "uuid"}, "sort_by"), ({"search": "a"}, "search"),
                        ({"received_end": "2024-13-01 00:00"}, "received_end")):
        with pytest.raises(ApiError) as caught:
            parse_query(query)
        assert caught.value.status == 400 and caught.value.parameter == name
    assert parse_query({"limit": str(10**12)}).limit == MAX_LIMIT
    assert parse_query({"state": "All", "taskname": "All"}).state is None


def _flower_samples(name: str) -> dict[tuple[str, ...], float]:
    metric = getattr(flower_events.get_prometheus_metrics(), name)
    out: dict[tuple[str, ...], float] = {}
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith(("_created",)):
                continue
            out[(sample.name, *sorted(sample.labels.items()))] = sample.value  # type: ignore[arg-type]
    return out


def test_flower_counters_agree(both: tuple[TaskIndex, Any, FlowerCounters]) -> None:
    """Flower's metrics are process-global and see both recorded streams (module fixture runs
    per broker): compare ours against the sum of what both streams gave."""
    from prometheus_client import CollectorRegistry

    from lazycelery.serve.metrics import ServeCollector
    from lazycelery.serve.service import Service

    index, _, counters = both
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServeCollector(Service(app=None, index=index, environment="-",
                                             counters=counters)))
    mine: dict[tuple[Any, ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            mine[(sample.name, *sorted(sample.labels.items()))] = sample.value
    events = _flower_samples("events")
    assert events, "Flower counted nothing"
    for key, value in mine.items():
        if key[0] == "flower_events_total":
            assert events.get(key, 0) >= value  # Flower's also holds the other stream's
    runtime = _flower_samples("runtime")
    for key, value in mine.items():
        if key[0].startswith("flower_task_runtime_seconds"):
            assert runtime.get(key, 0) == pytest.approx(value) or runtime.get(key, 0) > value
