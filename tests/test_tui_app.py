"""The dashboard driven headlessly (pipe input + DummyOutput): navigation, filtering, help,
palette, detail, follow, sorting, resize / too small, the stale banner; assertions are on the
dashboard's state and on the characters of the rendered screen, never on escape sequences."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.data_structures import Size

from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import IngestStatus
from lazycelery.tui.app import Dashboard
from lazycelery.tui.layout import too_small
from lazycelery.tui.screen.sources import DashboardInfo
from tests.tui_harness import (
    ESC,
    DashboardHarness,
    FakeIngestor,
    FakeMonitor,
    SizedOutput,
    drive,
    headless_dashboard,
    screen_lines,
)

RECORDED = Path(__file__).parent / "data" / "recorded"


def load(broker: str = "redis") -> list[dict[str, Any]]:
    with gzip.open(RECORDED / broker / "events.jsonl.gz", "rt") as fh:
        return [json.loads(line) for line in fh]


EVENTS = load()


@dataclass
class Harness(DashboardHarness):
    output: SizedOutput
    index: TaskIndex
    ingestor: FakeIngestor
    monitor: FakeMonitor

    def feed(self, events: list[dict[str, Any]], size: int = 200) -> None:
        for i in range(0, len(events), size):
            batch = events[i:i + size]
            self.d.on_batch(batch, self.index.apply_batch(batch))

    @staticmethod
    def controls_text(h: Harness) -> str:
        return h.d.controls.filter_buffer.text

    async def keys(self, text: str, wait: float = 0.02) -> None:
        await self.send_keys(text, wait)
        await self.idle()

    async def idle(self, timeout: float = 5.0) -> None:
        """Wait for key processing and chunked jobs to finish."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            if not self.d.tasks.busy:
                return


@contextmanager
def harness(rows: int = 40, columns: int = 120, keys: dict[str, str] | None = None,
            index: TaskIndex | None = None) -> Iterator[Harness]:
    index = index or TaskIndex()
    output = SizedOutput(rows, columns)
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test")
    with headless_dashboard(index, info, output, keys=keys) as (d, inp):
        ingestor = FakeIngestor(rate=42.0)
        monitor = FakeMonitor(QueueSnapshot(taken_at=time.time(), source="fake", queues=(
            QueueStats(name="celery", ready=12, reserved=2, consumers=1),
            QueueStats(name="bench", ready=0, reserved=0, consumers=2),
        )))
        d.attach(ingestor, monitor)
        yield Harness(d, inp, output, index, ingestor, monitor)


# --------------------------------------------------------------------------- tests


def test_tasks_arrive_and_navigation_keys() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            assert h.ingestor.started
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            view = h.d.tasks
            assert view.follow and view.selected_index() == 0
            await h.keys("jjj")
            assert view.selected_index() == 3 and not view.follow
            await h.keys("k")
            assert view.selected_index() == 2
            await h.keys("G")
            assert view.selected_index() == 2999
            await h.keys("g")
            assert view.selected_index() == 0
            await h.keys("\x04")  # ctrl-d: half a page
            half = view.selected_index()
            assert 5 <= half <= 25
            await h.keys("\x15")  # ctrl-u
            assert view.selected_index() == 0
            # workers pane (1), move, back to tasks (3); tab cycles
            await h.keys("1")
            assert h.d.ui.pane == "workers" and len(h.d.workers) == 2
            await h.keys("j")
            assert h.d.workers.selected is not None
            assert h.d.workers.selected.hostname == "rec2@vm"
            await h.keys("\t")
            assert h.d.ui.pane == "queues"
            await h.keys("l")
            assert h.d.ui.pane == "tasks"
            await h.keys("h")
            assert h.d.ui.pane == "queues"
            await h.keys("3")
            assert h.d.ui.pane == "tasks"

        drive(h, scenario)


def test_selection_stays_on_its_task_while_tasks_arrive() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS[:4000])
            await h.until(lambda: len(h.d.tasks) > 500)
            await h.keys("jjjjj")
            chosen = h.d.tasks.selected
            table = h.d.controls.tasks
            screen_row = h.d.tasks.selected_index() - table.top
            h.feed(EVENTS[4000:8000])
            await h.until(lambda: h.d.tasks.selected_index() > 5)
            screen_lines(h.d)  # render: the table keeps the task on its screen row
            assert h.d.tasks.selected is chosen
            assert h.d.tasks.selected_index() - table.top == screen_row
            await h.keys("f")  # follow: the newest is selected again and stays so
            assert h.d.tasks.follow and h.d.tasks.selected_index() == 0
            h.feed(EVENTS[8000:])
            await h.until(lambda: len(h.d.tasks) == 3000)
            assert h.d.tasks.selected is h.d.tasks.row(0)

        drive(h, scenario)


def test_filter_typing_errors_apply_history_and_clear() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys("/")
            assert h.d.ui.filter_editing and h.d.ui.context == "filter"
            await h.keys("stat:failure")
            assert h.d.ui.filter_error is not None and "state" in h.d.ui.filter_error
            assert h.d.ui.filter_error_column == 0
            text = "\n".join(screen_lines(h.d))
            assert "did you mean 'state'" in text  # explained inline
            await h.keys("\r")  # enter on a bad filter keeps the prompt open
            assert h.d.ui.filter_editing
            await h.keys("\x7f" * 20 + "state:failure")  # backspaces, then a good filter
            await h.keys("\r")
            assert not h.d.ui.filter_editing
            assert h.d.tasks.filter_text == "state:failure" and len(h.d.tasks) == 121
            assert "/ state:failure" in "\n".join(screen_lines(h.d))  # shown in the pane title
            await h.keys("/")
            assert h.controls_text(h) == "state:failure"  # the prompt starts with the filter
            await h.keys("\x15name:*flaky\r")  # ctrl-u clears it
            predicate = h.d.tasks.predicate
            assert predicate is not None
            assert len(h.d.tasks) == len(predicate.filter(h.index.snapshot()))
            await h.keys("/" + ESC)  # cancel keeps the applied filter
            assert h.d.tasks.filter_text == "name:*flaky"
            await h.keys("/\x10\x10\r")  # ctrl-p twice: history back to state:failure
            assert h.d.tasks.filter_text == "state:failure"
            await h.keys(ESC)  # esc in the list clears the filter
            assert h.d.tasks.filter_text == "" and len(h.d.tasks) == 3000

        drive(h, scenario)


def test_enter_on_worker_opens_its_detail_and_t_filters_its_tasks() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys("1\r")
            assert h.d.ui.pane == "worker" and h.d.screen.worker_detail.hostname == "rec1@vm"
            await h.keys("t")
            assert h.d.ui.pane == "tasks" and h.d.tasks.filter_text == "worker:rec1@vm"
            assert all(r.worker == "rec1@vm" for r in h.d.tasks.rows(0, len(h.d.tasks)))

        drive(h, scenario)


def test_detail_history_truncation_traceback_and_family() -> None:
    truncated = {"type": "task-received", "uuid": "t-long", "name": "bulk.import",
                 "args": "(" + "1, " * 400 + "...)", "kwargs": "{}", "hostname": "w1",
                 "timestamp": 1.0, "root_id": "t-root", "parent_id": "t-root"}
    parent = {"type": "task-received", "uuid": "t-root", "name": "bulk.start", "args": "()",
              "kwargs": "{}", "hostname": "w1", "timestamp": 0.5, "root_id": "t-root"}
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed([*EVENTS, parent, truncated])
            await h.until(lambda: len(h.d.tasks) == 3002)
            # the newest task: the truncated one; open it
            await h.keys("\r")
            assert h.d.ui.pane == "detail" and h.d.detail.record is not None
            assert h.d.detail.record.uuid == "t-long"
            text = "\n".join(line.text for line in h.d.detail.current)
            assert "truncated by Celery" in text
            assert "◀ this task" in text and "bulk.start" in text  # family tree
            # move to the family section and open the parent through the tree
            while h.d.detail.current[h.d.detail.cursor].section != "Family":
                await h.keys("]")
            await h.keys("j")  # the root line
            assert h.d.detail.link() == "t-root"
            await h.keys("\r")
            assert h.d.detail.record is not None and h.d.detail.record.uuid == "t-root"
            await h.keys(ESC)  # back to the child, then back to the list
            assert h.d.detail.record is not None and h.d.detail.record.uuid == "t-long"
            await h.keys(ESC)
            assert h.d.ui.pane == "tasks"
            # a failed task: its traceback is reached with keys
            await h.keys("/state:failure\r")
            await h.keys("\r")
            rec = h.d.detail.record
            assert rec is not None and rec.state == "FAILURE"
            for _ in range(10):
                if h.d.detail.current[h.d.detail.cursor].section == "Traceback":
                    break
                await h.keys("]")
            assert h.d.detail.current[h.d.detail.cursor].section == "Traceback"
            await h.keys("j")
            assert "Traceback (most recent call last)" in \
                h.d.detail.current[h.d.detail.cursor].text
            screen = "\n".join(screen_lines(h.d))
            assert "Traceback (most recent call last)" in screen
            # n/N walk the filtered list while staying in the detail
            await h.keys("n")
            assert h.d.detail.record is not rec and h.d.detail.record is not None
            assert h.d.detail.record.state == "FAILURE"
            await h.keys("N")
            assert h.d.detail.record is rec

        drive(h, scenario)


def test_help_overlay_lists_commands_and_closes() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("?")
            assert h.d.ui.overlay == "help"
            screen = "\n".join(screen_lines(h.d))
            for fragment in ("cursor.down", "Filter language", "state:failure,retry", "quit"):
                assert fragment in screen or any(
                    fragment in "".join(frag[1] for frag in line)
                    for line in h.d.controls.help.lines)
            await h.keys("j")  # scrolls the help, not the list
            assert h.d.controls.help.top == 1
            await h.keys("?")
            assert h.d.ui.overlay is None
            await h.keys("?" + ESC)
            await h.until(lambda: h.d.ui.overlay is None)  # a lone Esc: after the timeout

        drive(h, scenario)


def test_palette_fuzzy_runs_a_command() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys(":")
            assert h.d.ui.overlay == "palette"
            await h.keys("srtby")  # fuzzy: "Sort by the next column"
            assert h.d.palette is not None
            top = h.d.palette.results(h.d.controls.palette_buffer.text)[0][0]
            assert top.name == "sort.next"
            await h.keys("\r")
            assert h.d.ui.overlay is None and h.d.tasks.sort_column == "state"
            await h.keys(":qui" + ESC)  # esc closes without running
            # a lone Esc is told apart from an escape sequence after prompt_toolkit's
            # timeout: wait for it rather than for a fixed time (flaky under load)
            await h.until(lambda: h.d.ui.overlay is None)
            assert h.d.app.is_running
            await h.keys(":qui\r")
            await h.until(lambda: not h.d.app.is_running)

        drive(h, scenario)


def test_sort_keys() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys("s")
            assert h.d.tasks.sort_column == "state"
            assert h.d.tasks.row(0).state == "FAILURE"
            await h.keys("S")
            assert h.d.tasks.row(0).state == "SUCCESS"
            await h.keys("sss")
            assert h.d.tasks.sort_column == "runtime" and h.d.tasks.descending
            runtimes = [r.runtime or -1 for r in h.d.tasks.rows(0, 50)]
            assert runtimes == sorted(runtimes, reverse=True)
            assert "sort runtime ↓" in "\n".join(screen_lines(h.d))

        drive(h, scenario)


def test_starting_in_a_too_small_terminal_then_growing() -> None:
    # built while too small, the panes must still be focusable (was: "Window does not appear
    # in the layout" before the first frame)
    with harness(rows=10, columns=40) as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            assert "Terminal too small: 40×10" in "\n".join(screen_lines(h.d))
            h.output.size = Size(rows=40, columns=120)
            assert "Tasks" in "\n".join(screen_lines(h.d))
            assert h.d.layout.current_window is h.d.pane_windows["tasks"]
            first = h.d.tasks.selected
            await h.keys("j")
            assert h.d.tasks.selected is not first  # keys reach the task list
            await h.keys("q")
            await h.until(lambda: not h.d.app.is_running)

        drive(h, scenario)


def test_resize_and_too_small_terminal() -> None:
    with harness(rows=40, columns=120) as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(h.d.tasks) == 3000)
            assert not too_small(h.d.screen)
            table = h.d.controls.tasks
            screen_lines(h.d)
            tall = table.page_rows
            h.output.size = Size(rows=24, columns=80)
            lines = screen_lines(h.d)
            assert table.page_rows < tall  # fewer rows fit
            assert table.rendered_rows == table.page_rows  # and only those are formatted
            assert all(len(line) <= 80 for line in lines)
            h.output.size = Size(rows=10, columns=50)
            assert too_small(h.d.screen)
            assert "Terminal too small: 50×10" in "\n".join(screen_lines(h.d))
            await h.keys("j")  # keys still work, nothing crashes
            h.output.size = Size(rows=3, columns=8)
            screen_lines(h.d)
            h.d.app.invalidate()
            await asyncio.sleep(0.1)
            assert h.d.app.is_running
            h.output.size = Size(rows=40, columns=120)
            assert "Tasks" in "\n".join(screen_lines(h.d))
            await h.keys("q")
            await h.until(lambda: not h.d.app.is_running)

        drive(h, scenario)


def test_stale_banner_on_connection_loss_and_recovery() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            h.feed(EVENTS[:2000])
            await h.until(lambda: len(h.d.tasks) > 0)
            assert not h.d.stale
            assert "reconnecting" not in "\n".join(screen_lines(h.d))
            shown = len(h.d.tasks)
            h.ingestor.status = IngestStatus(
                state="reconnecting", path="fast", attempt=3, next_retry_in=4.0,
                last_error="Error 111 connecting to 127.0.0.1:6379. Connection refused.",
                since=time.time() - 12, retry_at=time.time() + 4)
            h.d.on_status(h.ingestor.status)
            assert h.d.stale
            screen = "\n".join(screen_lines(h.d))
            assert "reconnecting: attempt 3" in screen and "Connection refused" in screen
            assert "stale" in screen and "STALE" in screen
            assert len(h.d.tasks) == shown  # the last data stays on screen
            await h.keys("j")  # and stays usable
            h.ingestor.status = replace(h.ingestor.status, state="connected", attempt=0)
            assert not h.d.stale
            assert "reconnecting" not in "\n".join(screen_lines(h.d))

        drive(h, scenario)


def test_startup_without_broker_shows_the_banner_not_a_traceback() -> None:
    with harness() as h:
        h.ingestor.status = IngestStatus(state="reconnecting", path="kombu", attempt=1,
                                         last_error="Connection refused")
        screen = "\n".join(screen_lines(h.d))
        assert "reconnecting: attempt 1" in screen and "no data yet" in screen
        assert "no tasks yet" in screen


def test_header_queues_and_workers_panes() -> None:
    with harness() as h:
        h.feed(EVENTS)
        screen = "\n".join(screen_lines(h.d))
        assert "env" not in screen or "test" in screen
        assert "test" in screen and "redis://127.0.0.1:6379/0" in screen
        assert "connected" in screen and "42 ev/s" in screen
        assert "failed 121" in screen and "tasks 3,000" in screen
        assert "celery" in screen and "bench" in screen  # queues pane
        assert "rec1@vm" in screen and "rec2@vm" in screen  # workers pane
        assert [q.name for q in h.d.queues.items] == ["bench", "celery"]


def test_user_key_remapping() -> None:
    with harness(keys={"quit": "Q", "cursor.down": "j, ctrl-n", "filter": "f"}) as h:
        assert h.d.registry.key_label("quit") == "Q"
        assert h.d.registry.key_label("follow") == ""  # f was taken by filter
        assert any("follow" in w for w in [h.d.ui.flash_text or ""])

        async def scenario(h: Harness) -> None:
            h.feed(EVENTS[:500])
            await h.until(lambda: len(h.d.tasks) > 10)
            await h.keys("\x0e")  # ctrl-n moves down
            assert h.d.tasks.selected_index() == 1
            await h.keys("q")  # no longer quits
            assert h.d.app.is_running
            await h.keys("f")
            assert h.d.ui.filter_editing
            await h.keys(ESC + "Q")
            await h.until(lambda: not h.d.app.is_running)

        drive(h, scenario)


def test_a_failing_command_is_reported_not_raised() -> None:
    from lazycelery.tui.registry import Command

    def boom(d: Dashboard) -> None:
        raise RuntimeError("kaput")

    with harness() as h:
        h.d.registry.add(Command("boom", "Explode", boom))
        h.d.run("boom")
        assert h.d.ui.current_flash() == ("boom failed: RuntimeError: kaput", True)


def test_no_work_per_frame_when_nothing_changed() -> None:
    """A redraw with no new events formats only the visible rows and changes nothing."""
    with harness(rows=30) as h:
        h.feed(EVENTS)
        screen_lines(h.d)
        generation = h.d.tasks.generation
        table = h.d.controls.tasks
        for _ in range(3):
            screen_lines(h.d)
        assert h.d.tasks.generation == generation
        assert table.rendered_rows == table.page_rows < 30


@pytest.mark.parametrize("rows", [14, 60])
def test_page_keys_depend_on_height(rows: int) -> None:
    with harness(rows=rows) as h:
        h.feed(EVENTS)
        screen_lines(h.d)
        h.d.run("page.down")
        assert h.d.tasks.selected_index() == max(1, h.d.controls.tasks.page_rows // 2)


def test_queues_pane_shows_the_priority_breakdown() -> None:
    with harness() as h:
        h.monitor.snapshot = QueueSnapshot(taken_at=time.time(), source="fake", queues=(
            QueueStats(name="celery", ready=7, reserved=2, consumers=1,
                       by_priority={0: 4, 3: 0, 6: 1, 9: 2}),
            QueueStats(name="bench", ready=0, reserved=0, consumers=2,
                       by_priority={0: 0, 3: 0, 6: 0, 9: 0}),
        ))
        lines = screen_lines(h.d)
        assert any("PRIORITIES" in line for line in lines)
        [row] = [line.split("│")[1] for line in lines if "│celery" in line]
        assert row.split()[-3:] == ["0:4", "6:1", "9:2"]  # the same cells as `lazycelery queues`


def test_the_running_dashboard_warms_the_free_text_of_a_long_list_while_idle() -> None:
    with harness() as h:
        view = h.d.tasks
        view.warm_min = 1_000  # (100,000 by default) and small ranges, so 3,000 tasks are many
        view._text.chunk = 256

        async def scenario(h: Harness) -> None:
            h.feed(EVENTS)
            await h.until(lambda: len(view) == 3000)
            assert not len(view._text)  # nothing typed yet
            # built in slices between frames (the warm-up's first look found an empty list)
            await h.until(lambda: len(view._text) == 3000 // 256, timeout=20)
            built = view._text.built
            await h.keys("/payload\r")
            await h.idle()
            assert view.filter_text == "payload"
            assert view._text.built == built + 1  # only the newest range, still filling

        drive(h, scenario)
