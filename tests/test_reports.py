"""The activity report from a store filled by replaying a recorded event stream: its figures
agree with the index that saw the same events; Markdown, HTML and JSON; report schedules."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lazycelery.config_notify import ReportSchedule, ReportsTable
from lazycelery.core.index import TaskIndex
from lazycelery.notify.message import Notification
from lazycelery.reports.render import render_html, render_md, report_notification
from lazycelery.reports.schedule import ReportScheduler
from lazycelery.reports.summary import build_summary
from lazycelery.store import Store, open_store
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TaskIndex, float, float]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'h.sqlite3'}"
    store = open_store(url)
    writer = StoreWriter(store)
    writer.start()
    events = load_events("redis")
    index = TaskIndex(max_tasks=1_000_000)
    for start in range(0, len(events), 200):
        chunk = events[start:start + 200]
        writer.on_batch(chunk, index.apply_batch(chunk))
    assert writer.stop(timeout=60)
    store.close()
    times = [e["timestamp"] for e in events if isinstance(e.get("timestamp"), float)]
    yield url, index, min(times) - 1, max(times) + 1


def _summary(url: str, since: float, until: float) -> dict[str, object]:
    store = open_store(url, create=False, writer=False)
    try:
        return build_summary(store, since, until, environment="replay")
    finally:
        store.close()


def test_figures_agree_with_the_index(filled: tuple[str, TaskIndex, float, float]) -> None:
    url, index, since, until = filled
    doc = _summary(url, since, until)
    states = Counter(rec.state for rec in index.records())
    volume = doc["volume"]
    assert isinstance(volume, dict)
    assert volume["total"] == len(index)
    assert volume["states"] == dict(sorted(states.items()))
    assert volume["failure_rate"] == pytest.approx(
        states["FAILURE"] / (states["FAILURE"] + states["SUCCESS"]))
    errors = doc["errors"]
    assert isinstance(errors, list) and errors
    assert sum(group["count"] for group in errors) <= states["FAILURE"]
    for group in errors:  # every example is a failed task, with a filter to paste
        assert all(index.get(uuid).state == "FAILURE" for uuid in group["tasks"])
        assert group["filter"].startswith("state:FAILURE name:")
    slowest = doc["slowest"]
    assert isinstance(slowest, list)
    worst = max(r.runtime for r in index.records() if r.runtime is not None)
    assert slowest[0]["max_s"] == pytest.approx(worst)
    workers = doc["workers"]
    assert isinstance(workers, list) and workers
    assert all(0.0 < w["availability"] <= 1.0 for w in workers)
    assert doc["queues"] == {"peaks": [], "note": doc["queues"]["note"]}  # type: ignore[index]
    assert doc["gaps"] == {"count": 0, "recorded_s": 0.0, "period_s": until - since,
                           "seconds": 0, "lost_events": 0, "gaps": []}


def test_an_empty_period_says_so(filled: tuple[str, TaskIndex, float, float]) -> None:
    url, _, since, _ = filled
    doc = _summary(url, since - 7200, since - 3600)
    text = render_md(doc)
    assert doc["volume"] == {"total": 0, "states": {}, "failure_rate": 0.0}
    assert "No failure in this period." in text
    assert "No worker heard from in this period." in text


def test_formats(filled: tuple[str, TaskIndex, float, float]) -> None:
    url, _, since, until = filled
    doc = _summary(url, since, until)
    text = render_md(doc)
    for section in ("## Volume", "## Top error groups", "## Slowest tasks", "## Queue peaks",
                    "## Worker availability", "## Monitoring gaps"):
        assert section in text
    assert "Failures in the dashboard: filter `state:FAILURE`" in text
    page = render_html(doc)
    assert page.startswith("<!doctype html>") and "<table>" in page
    assert "<script" not in page
    assert json.loads(json.dumps(doc)) == doc
    notification = report_notification(doc, "html", name="daily")
    assert notification.kind == "report" and notification.key == "report:daily"
    assert notification.payload["html"] == page
    assert notification.links["filter"] == "state:FAILURE"
    assert notification.text == text


class Collecting:
    """A Notifier that keeps what it is given (the dispatcher is tested on real receivers)."""

    def __init__(self) -> None:
        self.got: list[tuple[Notification, Sequence[str]]] = []

    def submit(self, notification: Notification, channels: Sequence[str]) -> bool:
        self.got.append((notification, channels))
        return True


def test_schedules_run_once_per_cron_minute(filled: tuple[str, TaskIndex, float, float],
                                            tmp_path: Path) -> None:
    url, index, _, until = filled
    table = ReportsTable(schedules=(
        ReportSchedule(cron="0 8 * * *", name="daily", channels=("mail",), since="30d"),
        ReportSchedule(cron="*/30 * * * *", file=str(tmp_path / "r-{date}-{time}.json"),
                       format="json", since="30d"),
    ))
    notifier = Collecting()

    def store() -> Store:
        return open_store(url, create=False, writer=False)

    # 07:10 UTC the day after the replayed events: half-hourly at 07:30, daily at 08:00
    day = datetime.fromtimestamp(until, timezone.utc) + timedelta(days=1)
    start = day.replace(hour=7, minute=10, second=0, microsecond=0).timestamp()
    scheduler = ReportScheduler(table, open_store=store, notifier=notifier, now=start)
    assert [run.due - start for run in scheduler.runs] == [50 * 60, 20 * 60]
    assert scheduler.tick(start + 19 * 60) == 0
    assert scheduler.tick(start + 20 * 60) == 1  # 07:30: the file
    assert scheduler.tick(start + 20 * 60 + 30) == 0  # the same minute: not twice
    (written,) = tmp_path.glob("r-*.json")
    assert written.name == f"r-{day.strftime('%Y-%m-%d')}-0730.json"
    assert json.loads(written.read_text())["volume"]["total"] == len(index)
    assert notifier.got == []
    assert scheduler.tick(start + 50 * 60) == 2  # 08:00: both
    ((notification, channels),) = notifier.got
    assert channels == ("mail",)
    assert notification.title.startswith("lazycelery report")


def test_a_schedule_that_fails_says_one_line_and_the_others_run(tmp_path: Path) -> None:
    said: list[str] = []
    table = ReportsTable(schedules=(
        ReportSchedule(cron="* * * * *", name="broken", file=str(tmp_path / "x.md")),))

    def no_store() -> Store:
        return open_store(f"sqlite:///{tmp_path / 'missing' / 'none.sqlite3'}", create=False,
                          writer=False)

    scheduler = ReportScheduler(table, open_store=no_store, notifier=None, say=said.append,
                                now=0.0)
    assert scheduler.tick(120.0) == 0
    (line,) = said
    assert line.startswith("report broken: not made: ")
    assert "\n" not in line


def test_a_schedule_in_a_time_zone_runs_on_that_clock(filled: tuple[str, TaskIndex, float, float],
                                                      tmp_path: Path) -> None:
    url, _, _, _ = filled
    table = ReportsTable(schedules=(
        ReportSchedule(cron="30 0 * * *", tz="Asia/Tokyo", file=str(tmp_path / "r-{date}-{time}.md"),
                       since="30d"),))
    # 2026-12-06 15:00 UTC is 00:00 on the 7th in Tokyo (UTC+9): the run is 15:30 UTC
    start = datetime(2026, 12, 6, 15, 0, tzinfo=timezone.utc).timestamp()
    scheduler = ReportScheduler(table, open_store=lambda: open_store(url, create=False,
                                                                     writer=False), notifier=None,
                                now=start)
    assert [run.due - start for run in scheduler.runs] == [30 * 60]
    assert scheduler.tick(start + 30 * 60) == 1
    (written,) = tmp_path.glob("r-*.md")
    assert written.name == "r-2026-12-07-0030.md"  # the file is named on the schedule's clock
