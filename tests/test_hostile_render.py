"""Hostile input on the dashboard: every field of every record type, set to each hostile value
(non-finite and huge numbers, wrong types, very long strings, control sequences), renders in
every pane without an exception, without a marker and without a raw control character; a row
whose rendering raises shows a marker instead and the keys keep working."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from prompt_toolkit.application.current import set_app
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import UIContent

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.task_list import SORT_COLUMNS
from lazycelery.core.worker_rows import WorkerRow
from lazycelery.text import visible
from lazycelery.tui.app import Dashboard
from lazycelery.tui.columns import Column
from lazycelery.tui.guard import (
    PANE_MARKER,
    ROW_MARKER,
    SECTION_MARKER,
    GuardedContainer,
    RenderErrors,
)
from lazycelery.tui.panes.detail import build_detail
from lazycelery.tui.panes.tasks import task_columns
from lazycelery.tui.panes.workers import worker_columns
from lazycelery.tui.screen.lists import ListModel
from lazycelery.tui.screen.sources import DashboardInfo
from lazycelery.tui.table import VirtualTable
from tests.hostile import HOSTILE, RAW, TASK_FIELDS, TEXT_HOSTILE, build_index, records
from tests.tui_harness import (
    DashboardHarness,
    FakeIngestor,
    FakeMonitor,
    SizedOutput,
    drive,
    headless_dashboard,
    screen_lines,
)

MARKERS = (ROW_MARKER, SECTION_MARKER, PANE_MARKER)
# prompt_toolkit draws a raw control character as ^[ or <9b>: seeing one means it got through
PT_MAPPED = ("^[", "^G", "^@", "^J", "^M", "^I", "<9b>", "<90>", "<9c>")


def text_of_content(content: UIContent) -> list[str]:
    return ["".join(frag[1] for frag in content.get_line(i)) for i in range(content.line_count)]


def text_of_fragments(fragments: StyleAndTextTuples) -> str:
    return "".join(frag[1] for frag in fragments)


def assert_clean(lines: list[str], where: str) -> None:
    for line in lines:
        assert not RAW.search(line), f"raw control character in {where}: {line[:120]!r}"
        assert not any(m in line for m in MARKERS), f"marker in {where}: {line[:120]!r}"


def assert_screen_clean(screen: list[str], where: str) -> None:
    for line in screen:
        assert not RAW.search(line), f"raw control character on screen ({where}): {line!r}"
        assert not any(m in line for m in PT_MAPPED), f"unescaped control ({where}): {line!r}"
        assert not any(m in line for m in MARKERS), f"marker on screen ({where}): {line!r}"


def hostile_queues(value: object) -> QueueSnapshot:
    name = value if isinstance(value, str) and value else "celery"
    return QueueSnapshot(taken_at=time.time(), source="fake", queues=(
        # a broker figure of the wrong type, as a Struct built without validation holds it
        QueueStats(name=name, ready=value, reserved=value, consumers=value,  # type: ignore[arg-type]
                   in_rate=value, out_rate=value, net_rate=value,  # type: ignore[arg-type]
                   oldest_age_s=value),  # type: ignore[arg-type]
        QueueStats(name="plain", ready=3, consumers=1),
    ), error=value if isinstance(value, str) else None)


@contextmanager
def dashboard(index: TaskIndex, value: object, rows: int = 60,
              columns: int = 150) -> Iterator[Dashboard]:
    broker = f"redis://{value}@host/0" if isinstance(value, str) else "redis://host/0"
    info = DashboardInfo(broker=broker, env_name=value if isinstance(value, str) else "x")
    with headless_dashboard(index, info, SizedOutput(rows, columns)) as (d, _inp), \
            set_app(d.app):  # without it each get_app() builds a DummyApplication (10 ms)
        d.attach(FakeIngestor(rate=1.0), FakeMonitor(hostile_queues(value)))
        yield d


@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_field_renders_in_every_pane(name: str) -> None:
    value = HOSTILE[name]
    index = build_index(value)
    recs = records(index)
    assert len(recs) > 50 and len(index.workers) > 20
    with dashboard(index, value) as d:
        assert_screen_clean(screen_lines(d), "task list")
        width = 150
        # every row of every table at once (the screen shows only what fits)
        tasks = text_of_content(d.controls.tasks.create_content(width, len(d.tasks) + 1))
        assert len(tasks) == len(d.tasks) + 1
        assert_clean(tasks, "task list rows")
        workers = text_of_content(d.controls.workers.create_content(width, len(d.workers) + 1))
        assert len(workers) == len(d.workers) + 1
        assert_clean(workers, "workers rows")
        assert_clean(text_of_content(d.controls.queues.create_content(width, 10)), "queues")
        for column in SORT_COLUMNS:  # sorting compares the odd values
            d.tasks.set_sort(column)
            d.tasks.settle()
            assert_clean(text_of_content(d.controls.tasks.create_content(width, 20)), column)
        d.tasks.set_filter("hostile")  # filtering reads them too
        d.tasks.settle()
        d.tasks.set_filter("state:failure")
        d.tasks.settle()
        d.tasks.set_filter("")
        # every record's detail, whole
        d.ui.pane = "detail"
        for rec in recs:
            d.ui.detail_stack[:] = [rec]
            d.detail.show(rec)
            lines = text_of_content(d.controls.detail.create_content(120, 100_000))
            assert lines and lines[0], rec.uuid
            assert_clean(lines, f"detail of {rec.uuid!r}")
        assert_screen_clean(screen_lines(d), "detail pane")
        for pane in ("workers", "queues"):
            d.ui.pane = pane
            assert_screen_clean(screen_lines(d), f"{pane} pane")
        assert d.render_errors.count == 0


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_record_with_every_field_odd_at_once(name: str) -> None:
    value = HOSTILE[name]
    uuid = value if isinstance(value, str) and value else "all-odd"
    rec = TaskRecord(uuid=uuid, **{f: value for f in TASK_FIELDS})
    worker = WorkerRow(hostname=uuid, status="online", active=value,  # type: ignore[arg-type]
                       processed=value, load=value, heartbeat_age=value,  # type: ignore[arg-type]
                       version=value, tasks=0)  # type: ignore[arg-type]
    tasks: ListModel[TaskRecord] = ListModel(key=lambda r: r.uuid)
    tasks.set_items([rec])
    workers: ListModel[WorkerRow] = ListModel(key=lambda w: w.hostname)
    workers.set_items([worker])
    task_table = VirtualTable(lambda: tasks, task_columns())
    worker_table = VirtualTable(lambda: workers, worker_columns())
    assert_clean(text_of_content(task_table.create_content(150, 5)), "task row")
    assert_clean(text_of_content(worker_table.create_content(150, 5)), "worker row")
    errors = RenderErrors()
    lines = build_detail(rec, TaskIndex(), 100, errors)
    assert_clean([line.text for line in lines], "detail")
    assert task_table.errors.count == worker_table.errors.count == errors.count == 0


@pytest.mark.parametrize("name", list(TEXT_HOSTILE))
def test_text_values_are_shown_escaped_not_dropped(name: str) -> None:
    value = TEXT_HOSTILE[name]
    index = build_index(value)
    shown = visible(value)[:40]
    with dashboard(index, value, columns=200) as d:
        header = "\n".join(screen_lines(d)[:2])
        d.tasks.set_sort("name")
        d.tasks.settle()
        tasks = "\n".join(text_of_content(d.controls.tasks.create_content(200, len(d.tasks) + 1)))
        workers = "\n".join(text_of_content(d.controls.workers.create_content(200, 100)))
        rec = index.get("direct.name")
        assert rec is not None
        d.ui.pane = "detail"
        d.detail.show(rec)
        detail = "\n".join(text_of_content(d.controls.detail.create_content(200, 10_000)))
    assert shown[:8] in tasks  # task names (cut to the column)
    assert shown[:8] in workers  # hostnames
    assert shown[:8] in header  # the environment name
    assert shown in detail.replace("\n", "")


def test_timestamps_out_of_range_show_a_question_mark() -> None:
    # the task list's time column raised "timestamp out of range for platform time_t"
    for value in (1e20, 1e308, float("inf"), float("nan")):
        index = build_index(value)
        rec = index.get("task-succeeded.task-sent.timestamp")
        assert rec is not None and rec.first_seen is not None
        # ingest now replaces an out-of-range timestamp by the receive time (core/sanitize.py):
        # set it on the record as a record built without validation would hold it
        rec.sent = value
        with dashboard(index, value) as d:
            assert d.tasks.select(rec)
            lines = text_of_content(d.controls.tasks.create_content(150, len(d.tasks) + 1))
            row = lines[d.tasks.selected_index() + 1]
            assert row.startswith("?  ") and "SUCCESS" in row, row


def test_dialogs_messages_and_flashes_show_escapes() -> None:
    evil = "q\x1b]0;owned\x07\u202e\x9b2J"
    shown = visible(evil)
    info = DashboardInfo(broker="redis://host/0")
    with headless_dashboard(TaskIndex(), info, SizedOutput(40, 160)) as (d, _inp):
        d.operator.board.post(f"purge {evil}", [[("", f"  ok  {evil}")]], level="ok")
        d.operator.confirm(f"Purge {evil}", [[("", f"delete queue {evil}?")]], "Purge",
                           lambda: None, require=evil, prompt=f"{evil}:")
        d.ui.flash(f"filter {evil}", error=True)

        async def render() -> list[str]:  # the dialog's input line loads its history async
            return screen_lines(d)

        screen = asyncio.run(render())
    assert_screen_clean(screen, "dialog, messages, footer")
    text = "\n".join(screen)
    assert f"Purge {shown}" in text  # the dialog's title
    assert f"delete queue {shown}?" in text  # its body
    assert f"purge {shown}" in text and f"ok  {shown}" in text  # the action message
    assert f"filter {shown}" in screen[-1]  # the footer's flash


# --------------------------------------------------------------------------- the guards


class _Boom(Exception):
    pass


def _raising_for(uuid: str) -> Column[TaskRecord]:
    def cell(rec: TaskRecord) -> tuple[str, str]:
        if rec.uuid == uuid:
            raise _Boom("a formatting bug")
        return "", rec.uuid[:4]

    return Column("BUG", cell, width=6)


def test_a_row_that_raises_shows_a_marker_and_the_others_render() -> None:
    items = ["a", "b", "c"]
    model: ListModel[str] = ListModel(key=lambda s: s)
    model.set_items(items)

    def cell(s: str) -> tuple[str, str]:
        if s == "b":
            raise _Boom("b cannot be shown")
        return "", s.upper()

    table = VirtualTable(lambda: model, [Column("X", cell, min_width=4)])
    lines = text_of_content(table.create_content(40, 10))
    assert lines[1].startswith("A ") and lines[3].startswith("C ")
    assert lines[2].startswith(f" {ROW_MARKER}")
    assert table.errors.count == 1
    assert table.errors.take_new() == ["table row: _Boom: b cannot be shown"]
    table.create_content(40, 10)  # the same fault again: counted, not reported again
    assert table.errors.count == 2 and table.errors.take_new() == []


def test_a_table_whose_model_raises_shows_one_marker_line() -> None:
    class Broken:
        def __len__(self) -> int:
            raise _Boom("no length")

    table: VirtualTable[str] = VirtualTable(lambda: Broken(),  # type: ignore[arg-type,return-value]
                                            [Column("X", lambda s: ("", s))])
    lines = text_of_content(table.create_content(60, 10))
    assert lines == [f" {PANE_MARKER}".ljust(60)]
    assert table.errors.count == 1


def test_a_container_that_raises_is_replaced_by_a_marker() -> None:
    from prompt_toolkit.layout import Window
    from prompt_toolkit.layout.controls import FormattedTextControl
    from prompt_toolkit.layout.mouse_handlers import MouseHandlers
    from prompt_toolkit.layout.screen import Screen, WritePosition

    def text() -> StyleAndTextTuples:
        raise _Boom("header bug")

    errors = RenderErrors()
    guarded = GuardedContainer(Window(FormattedTextControl(text)), "header", errors)
    screen = Screen()
    guarded.preferred_height(40, 10)
    guarded.write_to_screen(screen, MouseHandlers(), WritePosition(0, 0, 40, 2), "", False, None)
    drawn = "".join(screen.data_buffer[0][x].char for x in range(40))
    assert drawn.startswith(f" {PANE_MARKER}"[:40])
    assert errors.count >= 1 and errors.take_new()[0].startswith("header: _Boom")


@dataclass
class _Harness(DashboardHarness):
    index: TaskIndex


def test_a_faulty_row_on_screen_never_takes_the_keys_away() -> None:
    """The issue: a row that raised made prompt_toolkit wait for Enter, Enter re-raised, q and
    Ctrl-C did nothing. Now the row shows a marker, the header counts it, and q quits."""
    index = build_index(1e20)  # real hostile records around the faulty one
    target = index.get("task-succeeded.task-received.timestamp")
    assert target is not None
    info = DashboardInfo(broker="redis://host/0")
    with headless_dashboard(index, info, SizedOutput(40, 140)) as (d, inp):
        d.attach(FakeIngestor(), FakeMonitor(hostile_queues(None)))
        d.controls.tasks.columns.append(_raising_for(target.uuid))
        h = _Harness(d, inp, index)

        async def scenario(h: _Harness) -> None:
            h.d.tasks.select(target)
            h.d.app.invalidate()
            await h.until(lambda: h.d.render_errors.count > 0)
            h.d.app.invalidate()  # the next frame counts it in the header and flashes it
            await h.until(lambda: h.d.render_errors.last_frame > 0)
            screen = screen_lines(h.d)
            assert any(ROW_MARKER in line for line in screen)
            assert any("1 row or pane not shown" in line for line in screen[:2])
            assert any("could not show: table row: _Boom: a formatting bug" in line
                       for line in screen[-2:])
            await h.send_keys("j", 0.1)  # keys still work with the faulty row on screen
            assert h.d.tasks.selected is not target
            await h.send_keys("q", 0.2)
            assert not h.d.app.is_running  # q quit

        drive(h, scenario)


def test_before_render_guard_counts_and_flashes() -> None:
    index = TaskIndex()
    with dashboard(index, None) as d:
        def broken() -> None:
            raise _Boom("pull bug")

        d.plugins.pull = broken  # type: ignore[method-assign]
        d._before_render()
        assert d.render_errors.count == 1
        flash = d.ui.current_flash()
        assert flash is not None and "update: _Boom: pull bug" in flash[0] and flash[1]
