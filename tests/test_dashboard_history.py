"""History in the dashboard: the ``since:`` / ``before:`` range of a filter, the merge of stored
records into the index (live state never overwritten, history never evicts), the task list's
history part, the store reader's paging (real SQLite and PostgreSQL), and the headless
dashboard opening with a real SQLite store: preload, H/B marks, a task evicted from memory
opened from the store, a ``since:`` range read from the store, an unreachable store."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from lazycelery.core.index import BACKFILLED, FROM_HISTORY, TaskIndex
from lazycelery.core.model import READY_STATES, TaskRecord
from lazycelery.core.query import compile_filter
from lazycelery.core.task_list import TaskListView
from lazycelery.store import GapRow, Store, WriteBatch, open_store
from lazycelery.store.capture import BatchCapture
from lazycelery.store.reader import recent_tasks, task_page, workers_seen
from lazycelery.store.rows import merge_records
from lazycelery.tui.screen.history import CLOCK_SLACK, HistorySource, RangePage
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import DashboardHarness, SizedOutput, drive, screen_lines

NOW = 1_800_000_000.0
OLDEST = "0123abcd-0000-4000-8000-000000000001"


def _task_events(uuid: str, t: float, *, name: str = "app.add", state: str = "SUCCESS",
                 worker: str = "w1@host") -> list[dict[str, Any]]:
    events = [
        {"type": "task-received", "uuid": uuid, "name": name, "args": "(1, 2)", "kwargs": "{}",
         "hostname": worker, "timestamp": t},
        {"type": "task-started", "uuid": uuid, "hostname": worker, "timestamp": t + 0.1},
    ]
    if state == "SUCCESS":
        events.append({"type": "task-succeeded", "uuid": uuid, "result": "3", "runtime": 0.1,
                       "hostname": worker, "timestamp": t + 0.2})
    elif state == "FAILURE":
        events.append({"type": "task-failed", "uuid": uuid, "exception": "ValueError('x')",
                       "traceback": "Traceback ...", "hostname": worker, "timestamp": t + 0.2})
    return events


def _record(store: Store, events: list[dict[str, Any]], batch: int = 50) -> None:
    """Write events as ``lazycelery record`` does; the recorder's clock is the event time."""
    clock = {"t": 0.0}
    index = TaskIndex(max_tasks=1_000_000, clock=lambda: clock["t"])
    capture = BatchCapture()
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        clock["t"] = max(float(e.get("timestamp") or 0.0) for e in chunk)
        store.write(capture.capture(chunk, index.apply_batch(chunk)))


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}-0000-4000-8000-000000000000" for i in range(n)]


# --------------------------------------------------------------------------- filter tokens


def test_time_range_of_since_and_before() -> None:
    pred = compile_filter("state:failure since:2h before:30m", now=NOW)
    assert pred.time_range == (NOW - 7200, NOW - 1800)
    pred.refresh(NOW + 60)  # relative bounds move with the clock
    assert pred.time_range == (NOW - 7200 + 60, NOW - 1800 + 60)
    # the tightest bound wins; a negated bound does not narrow the range
    assert compile_filter("since:2h since:1h -before:10m", now=NOW).time_range == \
        (NOW - 3600, None)
    assert compile_filter("name:x", now=NOW).time_range == (None, None)
    iso = compile_filter("since:2026-12-06T10:00 before:2026-12-06T11:00+00:00", now=NOW)
    since, until = iso.time_range
    assert until == 1796554800.0  # 11:00 UTC
    assert since is not None and since < until + 86_400  # 10:00 local time
    # matching: last activity inside the range
    pred.refresh(NOW)
    assert pred(TaskRecord(uuid="a", state="FAILURE", last_seen=NOW - 3600))
    assert not pred(TaskRecord(uuid="a", state="SUCCESS", last_seen=NOW - 3600))
    assert not pred(TaskRecord(uuid="b", state="FAILURE", last_seen=NOW - 60))
    assert not pred(TaskRecord(uuid="c", state="FAILURE", last_seen=NOW - 3 * 3600))


def test_bad_time_tokens_say_what_they_need() -> None:
    from lazycelery.core.query import FilterError

    for text in ("since:yesterday", "before:10x", "since:"):
        with pytest.raises(FilterError) as err:
            compile_filter(text)
        assert "since" in str(err.value) or "before" in str(err.value)


# --------------------------------------------------------------------------- merge


def _apply(index: TaskIndex, events: list[dict[str, Any]]) -> None:
    index.apply_batch(events)


def _stored(events: list[dict[str, Any]]) -> TaskRecord:
    index = TaskIndex()
    index.apply_batch(events)
    rec = index.get(events[0]["uuid"])
    assert rec is not None
    return msgspec.structs.replace(rec)


def _counts_agree(index: TaskIndex) -> None:
    recs = index.snapshot()
    assert sum(index.by_state.values()) == len(recs) == len(index)
    by_state: dict[str, int] = {}
    for r in recs:
        by_state[r.state] = by_state.get(r.state, 0) + 1
    assert by_state == index.by_state
    names: dict[str, int] = {}
    for r in recs:
        if r.name is not None:
            names[r.name] = names.get(r.name, 0) + 1
    assert names == index.by_name


def test_merge_keeps_newer_live_state_and_fills_what_live_missed() -> None:
    uuid = _ids("a", 1)[0]
    events = _task_events(uuid, NOW)
    # the store saw received + started (name, args); live saw only the success
    stored = _stored(events[:2])
    index = TaskIndex()
    _apply(index, events[2:])
    live = index.get(uuid)
    assert live is not None and live.name is None and live.state == "SUCCESS"
    assert index.merge_stored([(stored, False)], merge_records, wait=0) == 1
    assert index.get(uuid) is live  # merged in place: the list keeps its object
    assert live.state == "SUCCESS" and live.name == "app.add" and live.args == "(1, 2)"
    assert live.result == "3"
    assert index.mark(uuid) == FROM_HISTORY
    _counts_agree(index)


def test_merge_is_order_independent() -> None:
    """Whatever part of a task's events the store and the live stream each saw, the merged
    record has the state of all the events applied together, in any split."""
    uuid = _ids("b", 1)[0]
    events = _task_events(uuid, NOW, state="FAILURE")
    whole = _stored(events)
    for r in range(1, len(events) + 1):
        for part in itertools.combinations(range(len(events)), r):
            stored = _stored([events[i] for i in part])
            rest = [events[i] for i in range(len(events)) if i not in part]
            index = TaskIndex()
            if rest:
                _apply(index, rest)
            index.merge_stored([(stored, False)], merge_records, wait=0)
            got = index.get(uuid)
            assert got is not None
            assert got.state == whole.state == "FAILURE"
            assert got.name == whole.name and got.exception == whole.exception
            _counts_agree(index)


def test_history_never_evicts_live_tasks_and_goes_to_the_old_end() -> None:
    index = TaskIndex(max_tasks=10, clock=lambda: NOW)
    live_ids = _ids("l", 6)
    for i, uuid in enumerate(live_ids):
        _apply(index, _task_events(uuid, NOW - 10 + i))
    stored = [(_stored(_task_events(u, NOW - 1000 - i)), i % 2 == 0)
              for i, u in enumerate(_ids("s", 8))]
    for rec, _ in stored:
        rec.last_seen = NOW + 5  # a recorder whose clock is ahead: still older than live
    taken = index.merge_stored(stored, merge_records, wait=0)
    assert taken == 4 and len(index) == 10 and index.evicted == 0
    newest = [r.uuid for r in index.snapshot()]
    assert newest[:6] == list(reversed(live_ids))  # live first, history after
    assert newest[6:] == [r.uuid for r, _ in stored[:4]]  # newest history first
    assert index.mark(stored[0][0].uuid) == FROM_HISTORY | BACKFILLED
    assert index.mark(stored[1][0].uuid) == FROM_HISTORY
    assert index.mark(live_ids[0]) == 0
    _counts_agree(index)
    # history records are the first to go, and their marks go with them
    for uuid in _ids("n", 4):
        _apply(index, _task_events(uuid, NOW + 1))
    assert all(index.get(r.uuid) is None and index.mark(r.uuid) == 0 for r, _ in stored[:4])
    assert all(index.get(u) is not None for u in live_ids)


def test_workers_from_history_never_replace_live_ones() -> None:
    index = TaskIndex(clock=lambda: NOW)
    index.apply({"type": "worker-heartbeat", "hostname": "live@h", "timestamp": NOW,
                 "active": 3, "freq": 2.0})
    added = index.merge_workers(wait=0, events=[
        {"type": "worker-heartbeat", "hostname": "live@h", "active": 0,
         "local_received": NOW - 100},
        {"type": "worker-offline", "hostname": "old@h", "local_received": NOW - 100},
        {"type": "worker-heartbeat", "hostname": "gone@h", "local_received": NOW - 100},
    ])
    assert added == 2
    status = {w.hostname: s for w, s in index.worker_rows(NOW)}
    assert status == {"gone@h": "lost", "live@h": "online", "old@h": "offline"}
    assert index.workers["live@h"].active == 3


# --------------------------------------------------------------------------- the task list


def test_task_list_history_part() -> None:
    index = TaskIndex(clock=lambda: NOW)
    for i, uuid in enumerate(_ids("l", 3)):
        _apply(index, _task_events(uuid, NOW - 10 + i))
    view = TaskListView(index, wall_clock=lambda: NOW)
    view.set_filter("since:1d")
    view.settle()
    old = [_stored(_task_events(u, NOW - 5000 - i)) for i, u in enumerate(_ids("h", 3))]
    for rec in old:
        rec.last_seen = NOW - 5000
    too_old = _stored(_task_events(_ids("x", 1)[0], NOW - 10 * 86400))
    too_old.last_seen = NOW - 10 * 86400
    live_dup = _stored(_task_events(_ids("l", 1)[0], NOW - 10))
    added = view.add_history([(old[0], FROM_HISTORY), (old[1], FROM_HISTORY | BACKFILLED),
                              (too_old, FROM_HISTORY), (live_dup, FROM_HISTORY),
                              (old[2], FROM_HISTORY)])
    assert added == 3 and view.history_count == 3  # filtered, and in-memory tasks skipped
    assert [r.uuid for r in view.rows(0, 10)] == [
        *reversed(_ids("l", 3)), *(r.uuid for r in old)]
    assert view.history_mark(old[1].uuid) == FROM_HISTORY | BACKFILLED
    view.reverse_sort()
    assert [r.uuid for r in view.rows(0, 10)] == [*(r.uuid for r in reversed(old)),
                                                  *_ids("l", 3)]
    view.reverse_sort()
    view.select(old[1])
    assert view.selected_index() == 4
    view.set_sort("name")  # a sort by column includes the tasks from history
    assert len(view) == 6
    view.set_sort("time")
    # the task arrives live: its history row leaves, the live record is listed
    _apply(index, _task_events(old[2].uuid, NOW))
    view.sync(index.newest(1))
    assert view.history_count == 2 and len(view) == 6
    assert view.row(0).uuid == old[2].uuid and view.row(0) is index.get(old[2].uuid)
    view.set_filter("state:success since:2d")  # a new filter starts a new query
    assert view.history_count == 0


# --------------------------------------------------------------------------- real stores


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.close()


def test_reader_pages_by_last_activity(store: Store) -> None:
    ids = _ids("p", 25)
    events = [e for i, u in enumerate(ids) for e in _task_events(u, NOW - 1000 + i * 10)]
    _record(store, events)
    # the same last_time twice: keyset paging must not lose or repeat either
    store.write(WriteBatch(tasks=[TaskRecord(uuid="tie-1", state="SUCCESS", succeeded=NOW - 500.0,
                                             last_seen=NOW - 500),
                                  TaskRecord(uuid="tie-2", state="SUCCESS", succeeded=NOW - 500.0,
                                             last_seen=NOW - 500)]))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = task_page(store, NOW - 900, NOW - 200, cursor, limit=4)
        pages += 1
        seen += [t.record.uuid for t in page.tasks]
        if page.cursor is None:
            break
        cursor = page.cursor
    expected = [u for i, u in enumerate(ids) if NOW - 900 <= NOW - 1000 + i * 10 + 0.2 < NOW - 200]
    assert sorted(seen) == sorted([*expected, "tie-1", "tie-2"])
    assert len(seen) == len(set(seen)) and pages >= 5
    times = [t.last_time for t in recent_tasks(store, 100)]
    assert times == sorted(times, reverse=True)  # newest first
    assert [t.record.uuid for t in recent_tasks(store, 3)] == ["tie-2", "tie-1", ids[-1]]


def test_reader_workers_seen(store: Store) -> None:
    _record(store, [
        {"type": "worker-online", "hostname": "a@h", "timestamp": NOW - 100, "freq": 2.0},
        {"type": "worker-offline", "hostname": "a@h", "timestamp": NOW - 50},
        {"type": "worker-online", "hostname": "b@h", "timestamp": NOW - 40},
    ])
    seen = {e["hostname"]: e["type"] for e in workers_seen(store, NOW - 1000)}
    assert seen == {"a@h": "worker-offline", "b@h": "worker-online"}


# --------------------------------------------------------------------------- the dashboard


def _recorded_store(path: Path, n: int, *, now: float) -> str:
    url = f"sqlite:///{path / 'history.sqlite3'}"
    store = open_store(url)
    try:
        events = _task_events(OLDEST, now - 3500)  # a real task id: found by `id:` too
        events += [e for i, u in enumerate(_ids("r", n))
                   for e in _task_events(u, now - 3000 + i, state="FAILURE" if i % 5 == 0
                                         else "SUCCESS")]
        _record(store, events)
        # one task the store has only from the result backend
        backfill = WriteBatch(tasks=[TaskRecord(uuid="bf-0000", state="SUCCESS", name="app.bf",
                                                succeeded=now - 2000, result="7")],
                              backfilled={"bf-0000"})
        store.write(backfill)
        store.write(WriteBatch(gaps=[GapRow(now - 1000.0, now - 990.0, "no recorder running",
                                            "recorder")]))
    finally:
        store.close()
    return url


def test_dashboard_opens_with_history_and_reads_past_memory(tmp_path: Path) -> None:
    now = time.time()
    url = _recorded_store(tmp_path, 60, now=now)
    index = TaskIndex(max_tasks=20)
    history = HistorySource(url, index)
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test")
    # the history source is given to the dashboard before its panes are built
    from prompt_toolkit.input import create_pipe_input

    from lazycelery.tui.app import Dashboard

    with create_pipe_input() as inp:
        d = Dashboard(index, info=info, input=inp, output=SizedOutput(30, 140),
                      refresh_interval=None, history=history)
        h = DashboardHarness(d, inp)

        async def scenario(h: DashboardHarness) -> None:
            d = h.d
            await h.until(lambda: history.state == "on" and len(d.tasks) == 20)
            # the index had room for 20: the 20 most recently active stored tasks, marked
            assert index.from_history == 20 and index.evicted == 0
            assert d.tasks.row(0).uuid == "bf-0000"  # the most recent: backfilled
            assert index.mark("bf-0000") == FROM_HISTORY | BACKFILLED
            lines = screen_lines(d)
            text = "\n".join(lines)
            assert "history: 20 tasks;" in text
            assert "; last gap " in text and "(10 s, no recorder running)" in text, lines[:2]
            rows = [line for line in lines if "app.add" in line or "app.bf" in line]
            assert rows[0].startswith("B ") and "app.bf" in rows[0]  # the backfilled mark
            assert all(r.startswith("H ") for r in rows[1:]) and len(rows) >= 10
            # a live task arrives: it is listed first; history never evicted a live task
            live = _task_events("live-0000", now)
            d.on_batch(live, index.apply_batch(live))
            await h.until(lambda: d.tasks.row(0).uuid == "live-0000")
            assert index.get("live-0000") is not None
            # since: reaching past memory: the rest of the range is read from the store
            h.inp.send_text("/since:2h\r")
            await h.until(lambda: d.screen.history_query.startswith("+"))
            # 62 stored; in memory: the live task and 19 from history (one was evicted by it)
            assert d.tasks.history_count == 62 - 19
            assert len(d.tasks) == 20 + 43
            assert [d.tasks.row(i).uuid for i in range(20, 63)] == [*_ids("r", 42)[::-1],
                                                                   OLDEST]
            title = "\n".join(screen_lines(d))
            assert "+43 from history" in title
            # a narrower range that memory holds reads nothing from the store
            d.screen.apply_filter("since:1m")
            d.pull()
            assert d.screen.history_query == "" and d.tasks.history_count == 0
            # a task id memory does not hold is looked up in the store
            d.screen.apply_filter(f"id:{OLDEST}")
            await h.until(lambda: d.screen.history_query == "+1 from history")
            assert len(d.tasks) == 1 and d.tasks.row(0).uuid == OLDEST
            assert d.tasks.history_mark(OLDEST) == FROM_HISTORY
            d.screen.apply_filter("since:2h")
            await h.until(lambda: d.screen.history_query.startswith("+4"))
            # the backfilled task carries its mark in the list and the detail
            bf = next(i for i in range(len(d.tasks)) if d.tasks.row(i).uuid == "bf-0000")
            d.tasks.select_index(bf)
            h.inp.send_text("\r")
            await h.until(lambda: d.ui.pane == "detail")
            title = "\n".join(screen_lines(d))  # a render builds the detail lines
            detail = "\n".join(line.text for line in d.detail.current)
            assert "backfilled" in detail and "app.bf" in detail, title
            assert "BACKFILLED" in "\n".join(screen_lines(d))
            # an evicted task opens from the store through the family link machinery
            oldest = _ids("r", 60)[0]
            assert index.get(oldest) is None
            assert d.screen.open_from_history(oldest)
            await h.until(lambda: d.detail.record is not None
                          and d.detail.record.uuid == oldest
                          and d.detail.record.name == "app.add")
            assert d.detail.record.state == "FAILURE"
            assert "FROM HISTORY" in "\n".join(screen_lines(d))
            # a task the store does not have either
            assert d.screen.open_from_history("nope-0000")
            assert "loading from history" in "\n".join(screen_lines(d))
            await h.until(lambda: d.ui.flash_text is not None
                          and "neither in memory nor in history" in d.ui.flash_text)
            # a task evicted while its detail is open is read again from the store
            h.inp.send_text("\x1b\x1b")
            await h.until(lambda: d.ui.pane == "tasks" and not d.ui.detail_stack)
            d.screen.apply_filter("")
            kept = _ids("r", 60)[50]
            assert index.get(kept) is not None
            assert d.tasks.select(index.get(kept))
            d.screen.focus_pane("detail")
            assert d.detail.record is index.get(kept)
            flood = [e for i in range(25) for e in _task_events(f"flood-{i:04d}", now + i)]
            d.on_batch(flood, index.apply_batch(flood))
            await h.until(lambda: index.get(kept) is None and d.detail.record is not None
                          and d.detail.record.uuid == kept
                          and d.screen.origin(d.detail.record) == FROM_HISTORY)
            assert "FROM HISTORY" in "\n".join(screen_lines(d))
            await asyncio.sleep(0.1)
            screen_lines(d)
            assert d.detail.record is not None and d.detail.record.uuid == kept

        drive(h, scenario)


def test_unreachable_store_leaves_the_live_view_and_says_why(tmp_path: Path) -> None:
    from prompt_toolkit.input import create_pipe_input

    from lazycelery.tui.app import Dashboard

    index = TaskIndex()
    history = HistorySource("postgresql://lc:s3cret@127.0.0.1:1/nowhere", index)
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0")
    with create_pipe_input() as inp:
        d = Dashboard(index, info=info, input=inp, output=SizedOutput(30, 160),
                      refresh_interval=None, history=history)
        h = DashboardHarness(d, inp)

        async def scenario(h: DashboardHarness) -> None:
            await h.until(lambda: history.state == "off")
            events = _task_events("live-0001", time.time())
            h.d.on_batch(events, index.apply_batch(events))
            await h.until(lambda: len(h.d.tasks) == 1)
            text = "\n".join(screen_lines(h.d))
            assert "history off: store postgresql://lc:********@127.0.0.1:1/nowhere" in text
            assert "s3cret" not in text
            assert not h.d.screen.open_from_history("live-0002")

        drive(h, scenario)
    assert all(r.state in READY_STATES for r in index.snapshot())


def test_which_store_the_dashboard_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--store / LAZYCELERY_STORE / the environment's store; else the default file, only if a
    recorder created it (and then quietly: a missing default file is no news)."""
    import argparse

    from lazycelery.config import resolve
    from lazycelery.store import default_store_path
    from lazycelery.tui.run import history_source

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    env = {"LAZYCELERY_CONFIG": "/dev/null", "XDG_DATA_HOME": str(tmp_path / "data")}
    index = TaskIndex()
    named = history_source(resolve(argparse.Namespace(), {**env,
                                   "LAZYCELERY_STORE": "sqlite:///x.sqlite3"}), index)
    assert named is not None and named.url == "sqlite:///x.sqlite3" and not named.quiet_missing
    assert history_source(resolve(argparse.Namespace(), env), index) is None
    path = default_store_path(env)
    open_store(f"sqlite:///{path}").close()
    default = history_source(resolve(argparse.Namespace(), env), index)
    assert default is not None and default.quiet_missing and str(path) in default.url


# --------------------------------------------------------------------------- tail's switch


class _Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.afters: list[Any] = []

    def on_batch(self, events: Any, touched: Any, after: Any = None) -> None:
        assert len(events) == len(touched)
        self.events += events
        self.afters += list(after) if after is not None else [None] * len(events)


def test_live_gate_holds_then_drops_what_history_printed() -> None:
    from lazycelery.tail.events import TailIndex
    from lazycelery.tail.history import LiveGate, event_key

    index = TailIndex()
    sink = _Sink()
    gate = LiveGate(sink, index)
    events = [e for i, u in enumerate(_ids("g", 20)) for e in _task_events(u, NOW + i)]
    for start in range(0, len(events), 7):  # batches as the ingest thread hands them over
        chunk = events[start:start + 7]
        gate.on_batch(chunk, index.apply_batch(chunk))
    assert sink.events == []  # held while history prints
    assert gate.first_task == event_key(events[0])
    printed = {k for k in (event_key(e) for e in events[:25]) if k is not None}
    gate.release(printed, NOW + 100)
    assert sink.events == events[25:]  # in order, without what history printed
    # the states the index had right after each event travel with them
    assert len(sink.afters) == len(sink.events) and all(a is not None for a in sink.afters)
    assert gate.dropped == 25
    # after the switch: live events pass at once; a late copy of a printed one is dropped
    late = [events[3], *_task_events("late-0000", NOW + 50)]
    gate.on_batch(late, index.apply_batch(late))
    assert sink.events[-3:] == late[1:] and gate.dropped == 26


def test_history_goes_through_the_writer_when_it_runs() -> None:
    """Work handed to the index runs on the writer (the thread applying batches), before its
    next batch; with no batch within the wait, on the caller, under the lock."""
    import threading

    index = TaskIndex()
    ran_on: list[str] = []
    caller = threading.Thread(target=lambda: index.hand_over(
        lambda: ran_on.append(threading.current_thread().name), wait=30.0), name="history")
    caller.start()
    # the writer (this thread) applies a batch: the handed work runs first, here
    while not index._handed:  # the caller has handed it over
        threading.Event().wait(0.001)
    index.apply_batch(_task_events(_ids("w", 1)[0], NOW))
    caller.join(5)
    assert ran_on == [threading.current_thread().name]
    # no writer: the caller runs it after the wait
    index.hand_over(lambda: ran_on.append("caller"), wait=0.01)
    assert ran_on[-1] == "caller"
    # a failing piece of work never breaks the writer's batch
    failing = threading.Thread(target=lambda: index.hand_over(lambda: 1 / 0, wait=30.0))
    failing.start()
    while not index._handed:
        threading.Event().wait(0.001)
    assert index.apply_batch(_task_events(_ids("w", 2)[1], NOW))[0] is not None
    failing.join(5)


def test_history_thread_survives_a_lost_connection(postgres_url: str) -> None:
    """PostgreSQL drops the history thread's connection: that request fails with one line
    in the header, the next one reconnects and the line is the summary again."""
    import psycopg

    store = open_store(postgres_url)
    uuid = _ids("c", 1)[0]
    try:
        _record(store, _task_events(uuid, NOW))
    finally:
        store.close()
    answers: list[Any] = []
    history = HistorySource(postgres_url, TaskIndex(), preload=0, writer_wait=0)
    history.start()
    try:
        deadline = time.monotonic() + 30
        while history.loaded == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        summary = history.status
        assert history.state == "on" and summary.startswith("history: 0 tasks")
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")

        def ask() -> Any:
            history.lookup(uuid)
            end = time.monotonic() + 30
            while time.monotonic() < end:
                got = history.take()
                if got:
                    return got[0]
                time.sleep(0.01)
            raise AssertionError("no answer")

        answers.append(ask())
        assert answers[0].record is None  # the request that met the dropped connection
        assert history.status.startswith("history: store postgresql://"), history.status
        answers.append(ask())
        assert answers[-1].record is not None and answers[-1].record.uuid == uuid
        assert history.status == summary and history.state == "on"
    finally:
        history.stop()


def _range_uuids(source: HistorySource, store: Store, text: str, *, walk: bool) -> list[str]:
    """The uuids a range query answers, through the store's index (``_range``) or by walking
    the time index and filtering here (``_range_walk``)."""
    predicate = compile_filter(text, now=NOW)
    since, until = predicate.time_range
    source._generation += 1
    generation = source._generation
    if walk:
        assert since is not None
        source._range_walk(store, generation, predicate, since - CLOCK_SLACK,
                           None if until is None else until + CLOCK_SLACK)
    else:
        source._range(store, (generation, predicate, since, until))
    pages = source.take()
    assert pages and all(isinstance(p, RangePage) and p.generation == generation for p in pages)
    assert pages[-1].done  # type: ignore[union-attr]
    return [rec.uuid for p in pages for rec, _ in p.records]  # type: ignore[union-attr]


def test_range_pushed_down_to_the_store_returns_what_the_walk_does(store: Store) -> None:
    names = ["app.add", "app.addx", "app.billing.charge", "app.billing.refund", "App.Mail"]
    states = ["SUCCESS", "FAILURE", "RETRY"]
    events: list[dict[str, Any]] = []
    for i, u in enumerate(_ids("q", 240)):
        events += _task_events(u, NOW - 5000 + i * 20, name=names[i % 5], state=states[i % 3])
    # a task seen only by its start (no name stored) and one outside the range
    events.append({"type": "task-started", "uuid": "noname-1", "hostname": "w1@host",
                   "timestamp": NOW - 100})
    events += _task_events("old-0001", NOW - 90_000, name="app.add", state="FAILURE")
    _record(store, events)
    source = HistorySource("sqlite:///unused", TaskIndex(max_tasks=10))
    stored = sorted({"app.add", "app.addx", "app.billing.charge", "app.billing.refund",
                     "App.Mail"})
    assert source_pushdown("state:failure,retry name:billing -name:refund", stored) == (
        ("FAILURE", "RETRY"), ("app.billing.charge", "app.billing.refund"))
    assert source_pushdown("name:re:^app\\.add$ state:done", stored) == (
        ("FAILURE", "PURGED", "REJECTED", "REVOKED", "SUCCESS"), ("app.add",))
    assert source_pushdown("name:mail", stored) == ((), ("App.Mail",))
    assert source_pushdown("name:Mail", stored) == ((), ("App.Mail",))  # smart case
    assert source_pushdown("name:MAIL", stored) is None  # matches no stored name
    assert source_pushdown("state:failure state:success", stored) is None
    assert source_pushdown("-state:failure billing", stored) == ((), ())  # nothing to push
    found = {}
    for text in ("state:failure", "name:billing", "name:app.add state:failure,success",
                 "name:re:^app\\.b -state:retry", "name:*charge state:done", "name:mail",
                 "name:MAIL", "state:started", "state:failure runtime<1s billing",
                 "state:failure state:success", "-state:failure name:add"):
        for span in ("since:2h", "since:3h before:1h"):
            query = f"{text} {span}"
            pushed = _range_uuids(source, store, query, walk=False)
            walked = _range_uuids(source, store, query, walk=True)
            assert sorted(pushed) == sorted(walked), query
            assert len(pushed) == len(set(pushed)), query
            found[query] = len(pushed)
    assert found["state:failure since:2h"] == 80 and found["state:started since:2h"] == 81
    assert found["name:app.add state:failure,success since:2h"] == 64
    assert found["name:MAIL since:2h"] == 0 and found["name:mail since:2h"] == 48


def source_pushdown(text: str, names: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    from lazycelery.tui.screen.history import pushdown

    return pushdown(compile_filter(text, now=NOW), lambda: names)
