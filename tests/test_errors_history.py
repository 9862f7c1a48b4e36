"""The errors pane's history: the recorded real failures (tests/data/errors) written to a
SQLite store (PostgreSQL: integration/test_errors_history.py), replayed by the dashboard's
errors history thread into the error groups, marked as from history, with their counts per
minute and hour; live failures added on top; a missing or broken store is one line, never a
traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lazycelery.analysis import ErrorGroups
from lazycelery.analysis.report import groups_json, trend_json
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from lazycelery.tui.panes.errors import error_columns, errors_title, group_lines
from lazycelery.tui.screen.errors_history import ErrorsHistory
from lazycelery.tui.screen.history import HistorySource
from lazycelery.tui.screen.model import ScreenModel
from tests.errors_data import recorded_events

EVENTS = recorded_events()
FIRST = min(e["timestamp"] for e in EVENTS)
LAST = max(e["timestamp"] for e in EVENTS)


def write_store(url: str) -> str:
    store = open_store(url)
    run, _ = store.begin_recorder("test", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    index = TaskIndex()
    for i in range(0, len(EVENTS), 50):
        chunk = EVENTS[i:i + 50]
        writer.on_batch(chunk, index.apply_batch(chunk))
    assert writer.stop(timeout=60)
    store.close()
    return url


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite here; integration/test_errors_history.py runs the same tests on PostgreSQL."""
    return write_store(f"sqlite:///{tmp_path / 'history.sqlite3'}")


def replayed(url: str, **kw: object) -> tuple[ErrorGroups, ErrorsHistory]:
    groups = ErrorGroups()
    changes: list[int] = []
    history = ErrorsHistory(url, groups, window=3600, until=LAST + 1,
                            on_change=lambda: changes.append(1), **kw)  # type: ignore[arg-type]
    history.start()
    assert history.join(60)
    assert changes  # the pane was asked to redraw
    return groups, history


def test_stored_failures_become_groups_marked_from_history(store_url: str) -> None:
    groups, history = replayed(store_url)
    assert history.state == "done" and history.status == "156 from history (last 1 h)"
    # as `lazycelery errors --since` reads them: the store keeps a task's latest exception
    assert len(groups) == 16 and groups.failures == 156 == groups.from_history
    assert all(g.from_history == g.count for g in groups)
    top = groups.ranked()[0]
    assert (top.fp.exc_type, top.count, top.workers.top(1)[0][0]) == (
        "FileNotFoundError", 31, "w-bad@shop-1")
    # counts per minute and per hour come from the store too
    hours = trend_json(groups, None, "hour")
    assert hours["total"] == 156 == sum(b["count"] for b in hours["buckets"])
    days = trend_json(groups, None, "day")
    assert days["total"] == 156
    minutes = trend_json(groups, top.key, "minute")
    assert minutes["total"] == 31 == sum(b["count"] for b in minutes["buckets"])
    doc = groups_json(groups, now=LAST, new_within=600)
    assert doc["from_history"] == 156 and doc["groups"][0]["from_history"] == 31


def test_live_failures_join_the_stored_ones(store_url: str) -> None:
    groups, _ = replayed(store_url)
    index = TaskIndex()
    live = [dict(e, uuid=f"live-{e['uuid']}", timestamp=e["timestamp"] + 7200)
            for e in EVENTS if "uuid" in e]
    for i in range(0, len(live), 50):
        chunk = live[i:i + 50]
        groups.observe_batch(chunk, index.apply_batch(chunk))
    top = groups.ranked()[0]
    # live, the retries of sync_inventory are their own group (17 live, 16 stored)
    assert top.from_history == 31 and top.count == 62
    assert groups.from_history == 156 and len(groups) == 17
    assert not all(g.from_history == g.count for g in groups)


def test_a_window_before_the_failures_reads_none(store_url: str) -> None:
    groups = ErrorGroups()
    history = ErrorsHistory(store_url, groups, window=60, until=FIRST - 3600)
    history.start()
    assert history.join(60)
    assert history.state == "done" and len(groups) == 0
    assert history.status == "0 from history (last 0.0166667 h)"


def test_a_missing_store_is_one_line_or_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'none.sqlite3'}"
    quiet = ErrorsHistory(url, ErrorGroups(), quiet_missing=True)
    quiet.start()
    assert quiet.join(10) and quiet.state == "off" and quiet.status == ""
    loud = ErrorsHistory(url, ErrorGroups())
    loud.start()
    assert loud.join(10) and loud.state == "off"
    assert loud.status.startswith("history: ") and "\n" not in loud.status
    assert "Traceback" not in loud.status


def test_a_bad_password_is_masked() -> None:
    url = "postgresql://lazy:s3cret-pw@127.0.0.1:1/nowhere"
    history = ErrorsHistory(url, ErrorGroups())
    history.start()
    assert history.join(30) and history.state == "off"
    assert "s3cret-pw" not in history.status and "\n" not in history.status


def test_the_errors_pane_marks_groups_from_history(store_url: str) -> None:
    index = TaskIndex()
    screen = ScreenModel(index, clock=lambda: LAST + 60)
    screen.attach_history(HistorySource(store_url, index))
    screen.start_errors_history()
    history = screen.errors.history
    assert history is not None and history.join(60) and history.state == "done"
    model = screen.errors
    model.refresh(force=True)
    assert len(model.list) == 16
    title = "".join(text for _, text in errors_title(model))
    assert "16 groups  156 failures" in title and "156 from history (last 24 h)" in title
    new_column = next(c for c in error_columns(model, screen) if c.title == "NEW")
    assert {new_column.cell(g)[1] for g in model.list.items} == {"hist"}
    lines = group_lines(model, model.selected, 150)
    assert "31 failures (31 failed, 0 retried, 31 from history)" in lines[0]
    screen.errors.stop_history()


def test_stop_while_loading_ends_the_thread(store_url: str) -> None:
    history = ErrorsHistory(store_url, ErrorGroups(), window=3600, until=LAST + 1)
    history.start()
    started = time.monotonic()
    history.stop(10)
    assert history.join(10) or history.state == "loading"
    assert time.monotonic() - started < 10  # bounded: stop never hangs the dashboard's exit
