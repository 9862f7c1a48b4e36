"""The timeline pane, driven headlessly with the recorded real event stream (redis): T opens it,
the lanes are the two worker processes with their bars, z fits everything, up / down and ] select
a task (highlighted, named in the status line), enter opens its detail and escape comes back,
v switches to one lane per queue, and the pane follows the task list's filter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from lazycelery.core.index import TaskIndex
from lazycelery.tui.screen.sources import DashboardInfo
from tests.replay import load_events
from tests.tui_harness import (
    ESC,
    DashboardHarness,
    FakeIngestor,
    SizedOutput,
    drive,
    headless_dashboard,
    screen_lines,
)

EVENTS = load_events("redis")
TASKS = 3000


@dataclass
class Harness(DashboardHarness):
    async def keys(self, text: str) -> None:
        await self.send_keys(text, 0.05)

    def screen(self) -> str:
        return "\n".join(screen_lines(self.d))


@contextmanager
def harness() -> Iterator[Harness]:
    index = TaskIndex()
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test")
    with headless_dashboard(index, info, SizedOutput(40, 160)) as (d, inp):
        d.attach(FakeIngestor())
        for i in range(0, len(EVENTS), 100):
            batch = EVENTS[i:i + 100]
            d.on_batch(batch, index.apply_batch(batch))
        yield Harness(d, inp)


def ready(h: Harness) -> bool:
    return len(h.d.tasks) == TASKS


def test_lanes_per_worker_process_select_and_open_the_detail() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("T")
            assert h.d.ui.pane == "timeline"
            await h.until(lambda: "2 workers  2,911 tasks  89 not started" in h.screen())
            await h.keys("z")  # fit: the recorded stream is in the past
            screen = h.screen()
            lanes = [line for line in screen.splitlines() if line.startswith("rec")]
            assert [line.split("]")[0] + "]" for line in lanes] == [
                "rec1@vm [16660]", "rec2@vm [16661]"]
            assert all("█" in line for line in lanes)
            assert "|00:" in screen or "|" in screen  # the ruler's ticks
            model = h.d.screen.timeline
            await h.keys("j")
            first = model.selected
            assert first is not None
            record = model.selected_record()
            assert record is not None
            await h.until(lambda: record.uuid[:8] in h.screen())  # the status line
            await h.keys("]")
            assert model.selected != first
            chosen = model.selected_record()
            assert chosen is not None
            await h.keys("\r")
            await h.until(lambda: h.d.ui.pane == "detail")
            assert h.d.screen.detail_record() is chosen
            await h.keys(ESC)
            await h.until(lambda: h.d.ui.pane == "timeline")
            assert model.selected == chosen.uuid  # kept

        drive(h, scenario, ready=lambda: ready(h))


def test_zoom_pan_and_lanes_per_queue() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("T")
            model = h.d.screen.timeline
            await h.until(lambda: model.layout.bars == 2911)
            await h.keys("z")
            span = model.view.span
            await h.keys("+")
            assert model.view.span == span / 2
            await h.keys("-")
            assert model.view.span == span
            start = model.view.start
            await h.keys("\x1b[C")  # right: a quarter of the width
            await h.until(lambda: model.view.start != start)
            assert model.view.start == start + span / 4 and not model.follow
            await h.keys("f")
            assert model.follow
            await h.keys("v")
            await h.until(lambda: "1 queue  2,911 tasks" in h.screen())
            assert "bench" in [line.strip() for line in h.screen().splitlines()]

        drive(h, scenario, ready=lambda: ready(h))


def test_the_timeline_follows_the_filter() -> None:
    with harness() as h:
        async def scenario(h: Harness) -> None:
            await h.keys("T")
            model = h.d.screen.timeline
            await h.until(lambda: model.layout.bars == 2911)
            await h.keys("/state:FAILURE\r")
            await h.until(lambda: len(h.d.tasks) == 121)
            await h.keys("T")  # the filter is typed in the task list
            await h.until(lambda: model.layout.bars == 121)
            assert {bar.record.state for lane in model.layout.lanes for row in lane.rows
                    for bar in row.bars} == {"FAILURE"}
            await h.until(lambda: "2 workers  121 tasks" in h.screen())  # the next frame

        drive(h, scenario, ready=lambda: ready(h))
