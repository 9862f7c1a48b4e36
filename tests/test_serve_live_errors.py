"""serve's live error groups (``LiveErrors``): ``/api/v1/errors`` and its trend answered from
them equal the rebuild from memory's records, document for document, while recorded real
streams are fed (tests/data/errors, the redis and amqp recordings, repeated later in time),
windows that start inside a segment, tasks whose last activity is older than the window,
evictions, and a follower that fell behind its change log. ``ErrorGroups.absorb`` equals
feeding in order, and refuses when a bound was reached."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the serve extra")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from lazycelery.analysis import ErrorGroups
from lazycelery.analysis.report import groups_json
from lazycelery.analysis.window import OutcomeWindow
from lazycelery.core import index as index_module
from lazycelery.core.index import TaskIndex
from lazycelery.serve.app import build_app
from lazycelery.serve.auth import AuthConfig, Guard
from lazycelery.serve.live_errors import LiveErrors
from lazycelery.serve.service import Service
from tests.errors_data import recorded_events
from tests.replay import load_events

pytestmark = pytest.mark.timeout(300)


def _shifted(events: list[dict[str, Any]], start: float, tag: str) -> list[dict[str, Any]]:
    """The recording moved to begin at ``start``, its task ids made its own with ``tag``."""
    first = min(e["timestamp"] for e in events)
    out = []
    for event in events:
        e = dict(event)
        e["timestamp"] = event["timestamp"] - first + start
        if "local_received" in e:
            e["local_received"] = e["timestamp"]
        for key in ("uuid", "root_id", "parent_id"):
            if isinstance(e.get(key), str):
                e[key] = f"{e[key]}-{tag}"
        out.append(e)
    return out


def _stream() -> list[dict[str, Any]]:
    """The errors recording, then redis, amqp and redis again, 50 s apart: about 4 minutes
    of real events (failures, retries, workers going online) over several segments."""
    start = 1_790_000_000.0
    parts = [_shifted(recorded_events(), start, "e"),
             _shifted(load_events("redis"), start + 130, "r"),
             _shifted(load_events("amqp"), start + 180, "a"),
             _shifted(load_events("redis"), start + 230, "r2")]
    return [e for part in parts for e in part]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).isoformat()


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return _stream()


def _client(service: Service) -> TestClient:
    return TestClient(build_app(service, Guard(AuthConfig({}))), raise_server_exceptions=False)


def _service(index: TaskIndex) -> Service:
    from celery import Celery

    return Service(app=Celery("t", broker="memory://", set_as_current=False), index=index,
                   environment="test")


def _without_until(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for source in doc.get("sources", {}).values():
        source.pop("until", None)
    return doc


def _both(client: TestClient, live: LiveErrors, path: str,
          params: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(live's document, the rebuild's) for the same request."""
    live.enabled = True
    before = live.answered
    got = client.get(path, params=params)
    assert got.status_code == 200, got.text
    live.enabled = False
    want = client.get(path, params=params)
    live.enabled = True
    assert want.status_code == 200, want.text
    assert live.answered == before + 1
    return _without_until(got.json()), _without_until(want.json())


class _Feed:
    """Feeds the stream in batches of 100, the index's clock at the batch's newest event,
    every third batch 40 s behind it (the workers' clocks ahead of serve's): a task's last
    activity follows its events, and a window can leave out tasks whose outcome is in it."""

    def __init__(self, events: list[dict[str, Any]], max_tasks: int = 100_000) -> None:
        self.events = events
        self.now = events[0]["timestamp"]
        self.clock = self.now
        self.index = TaskIndex(max_tasks=max_tasks, clock=lambda: self.clock)
        self.pos = 0

    def step(self, n: int) -> bool:
        chunk = self.events[self.pos:self.pos + n]
        if not chunk:
            return False
        for i in range(0, len(chunk), 100):
            part = chunk[i:i + 100]
            self.now = max(self.now, max(e["timestamp"] for e in part))
            self.clock = self.now - (40.0 if (self.pos + i) % 300 == 0 else 0.0)
            self.index.apply_batch(part)
        self.pos += n
        return True


@pytest.mark.parametrize(("max_tasks", "segment", "block"),
                         [(100_000, 60, 10), (1_500, 60, 10), (100_000, 10, 3)])
def test_live_errors_equal_the_rebuild_while_fed(stream: list[dict[str, Any]],
                                                 max_tasks: int, segment: int,
                                                 block: int) -> None:
    feed = _Feed(stream, max_tasks)
    service = _service(feed.index)
    live = service.live_errors
    assert live is not None
    live.window = OutcomeWindow(segment, block)  # 10 s segments: blocks within 4 minutes
    compared = 0
    with _client(service) as client:
        while feed.step(3_000):
            for back in (10_000.0, 95.0, 61.5, 20.0):  # all, and windows cutting segments
                since = {"since": _iso(feed.now - back)}
                got, want = _both(client, live, "/api/v1/errors", since)
                assert got == want
                compared += 1 if got["groups"] else 0
            top = got["groups"][0]["group"] if got["groups"] else "all"
            for which in ("all", top[:10]):
                for unit in ("minute", "hour"):
                    got, want = _both(client, live, f"/api/v1/errors/{which}/trend",
                                      {"since": _iso(feed.now - 95.0), "bucket": unit})
                    assert got == want
    assert compared >= 8 and live.window.absorbed > 0
    if max_tasks < 100_000:
        assert feed.index.evicted > 0
    if segment == 10:
        assert live.window._blocks  # blocks were made and absorbed
    assert live.resyncs == 0


def test_a_follower_behind_its_change_log_resyncs(stream: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a short change log (the index's module constant, read when an index is made)
    monkeypatch.setattr(index_module, "CHANGE_LOG", 500)
    feed = _Feed(stream)
    service = _service(feed.index)
    live = service.live_errors
    assert live is not None
    with _client(service) as client:
        feed.step(2_000)
        got, want = _both(client, live, "/api/v1/errors", {"since": _iso(feed.now - 1e4)})
        assert got == want
        feed.step(5_000)  # more changes than the log keeps
        got, want = _both(client, live, "/api/v1/errors", {"since": _iso(feed.now - 1e4)})
        assert got == want and got["failures"] > 0
        metrics = client.get("/metrics").text.splitlines()
    assert live.resyncs == 1
    assert "lazycelery_live_errors_resyncs_total 1.0" in metrics
    assert 'lazycelery_live_errors_answers_total{source="live"} 2.0' in metrics


def test_the_follower_thread_keeps_up(stream: list[dict[str, Any]]) -> None:
    feed = _Feed(stream)
    live = LiveErrors(feed.index).start()
    try:
        feed.step(len(stream))
        live.notify()
        since = feed.now - 1e4
        rebuilt = ErrorGroups()
        from lazycelery.analysis.sources import events_from_records

        rebuilt.observe_batch(*events_from_records(
            [r for r in feed.index.records() if r.last_seen >= since],
            feed.index.workers, since))
        found = live.groups(since)
        assert found is not None
        groups, tasks = found
        assert groups_json(groups, now=0) == groups_json(rebuilt, now=0)
        assert tasks == sum(1 for r in feed.index.records() if r.last_seen >= since) > 0
    finally:
        live.stop()
    assert live._thread is None


def test_the_follower_waits_while_the_ingest_is_behind(stream: list[dict[str, Any]]) -> None:
    """While the ingest is behind its broker the follower thread reads nothing (it yields,
    counted); once the ingest keeps up it follows again. A request catches up by itself."""
    from conftest import wait_for
    from lazycelery.serve.admission import BEHIND_AFTER

    feed = _Feed(stream)
    live = LiveErrors(feed.index)
    behind = [BEHIND_AFTER]
    live.behind = lambda: behind[0]
    live.start()
    try:
        feed.step(len(stream))
        live.notify()
        wait_for(lambda: live.yielded >= 1, 10, what="the follower to yield")
        assert live._changes == -1  # nothing read while behind
        behind[0] = 0.0
        live.notify()
        wait_for(lambda: live._changes == feed.index.changes, 10,
                 what="the follower to catch up once the ingest keeps up")
    finally:
        live.stop()


# ---------------------------------------------------------------------- absorb


def _outcome_events(stream: list[dict[str, Any]]) -> Iterator[tuple[list[Any], list[Any]]]:
    index = TaskIndex()
    for i in range(0, len(stream), 200):
        chunk = stream[i:i + 200]
        yield chunk, index.apply_batch(chunk)


@pytest.mark.parametrize("cut", [1, 7, 20, 45])
def test_absorb_equals_feeding_in_order(stream: list[dict[str, Any]], cut: int) -> None:
    batches = list(_outcome_events(stream))
    task_only = [([e for e in ev if e["type"].startswith("task-")],
                  [r for e, r in zip(ev, recs, strict=True) if e["type"].startswith("task-")])
                 for ev, recs in batches]
    whole, first, second = ErrorGroups(), ErrorGroups(), ErrorGroups(bounded=False)
    for i, (events, records) in enumerate(task_only):
        whole.observe_batch(events, records)
        (first if i < cut else second).observe_batch(events, records)
    assert first.absorb(second)
    assert groups_json(first, now=0) == groups_json(whole, now=0)
    assert first.failures == whole.failures > 0


def test_absorb_refuses_past_a_bound(stream: list[dict[str, Any]]) -> None:
    batches = list(_outcome_events(stream))
    first, second = ErrorGroups(), ErrorGroups()  # bounded: its counters may have lost names
    for events, records in batches[:10]:
        first.observe_batch(events, records)
    for events, records in batches[10:]:
        second.observe_batch(events, records)
    group = next(iter(second))
    for i in range(group.names.limit):  # its task-name counter at its bound
        group.names.add(f"name{i}")
    before = groups_json(first, now=0)
    assert not first.absorb(second)
    assert groups_json(first, now=0) == before


def test_a_window_live_cannot_answer_exactly_is_rebuilt() -> None:
    """More task names than a per-name table holds (4,096): absorbing could differ from
    feeding, so the window is rebuilt (and counted), the document the same."""
    start = 1_790_000_000.0
    events: list[dict[str, Any]] = []
    for i in range(4_600):  # one task per name, over three minutes
        t = start + i * 0.04
        uuid = f"{i:08x}-0000-4000-8000-{i:012x}"
        events.append({"type": "task-received", "uuid": uuid, "name": f"proj.t{i}",
                       "args": "()", "kwargs": "{}", "hostname": "celery@w1", "timestamp": t})
        events.append({"type": "task-succeeded" if i % 7 else "task-failed", "uuid": uuid,
                       "hostname": "celery@w1", "timestamp": t + 0.01, "runtime": 0.01,
                       "result": "1", "exception": "ValueError('x')", "traceback": "tb"})
    feed = _Feed(events)
    feed.step(len(events))
    service = _service(feed.index)
    live = service.live_errors
    assert live is not None
    with _client(service) as client:
        params = {"since": _iso(start - 1)}
        got = client.get("/api/v1/errors", params=params).json()
        assert live.declined == 1 and live.answered == 0
        live.enabled = False
        want = client.get("/api/v1/errors", params=params).json()
    assert _without_until(got) == _without_until(want) and got["failures"] > 500


def test_switched_off_every_request_rebuilds_and_no_follower_starts(
        stream: list[dict[str, Any]]) -> None:
    """``serve --no-live-errors``: serve's background follower is never started, each
    request rebuilds from the records (the same document)."""
    from lazycelery.cli import build_parser

    assert build_parser().parse_args(["serve"]).live_errors is True
    assert build_parser().parse_args(["serve", "--no-live-errors"]).live_errors is False
    feed = _Feed(stream)
    feed.step(len(stream))
    service = _service(feed.index)
    live = service.live_errors
    assert live is not None
    live.background, live.enabled = True, False  # as serve sets them with the switch
    with _client(service) as client:
        params = {"since": _iso(feed.now - 10_000.0)}
        off = client.get("/api/v1/errors", params=params)
        assert off.status_code == 200, off.text
        assert live._thread is None and live.answered == live.declined == 0
        live.enabled = True
        on = client.get("/api/v1/errors", params=params)
        live.stop()
    assert _without_until(off.json()) == _without_until(on.json())
    assert off.json()["groups"]  # a window with failures: the comparison means something
