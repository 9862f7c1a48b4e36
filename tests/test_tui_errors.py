"""The errors pane, driven headlessly with the recorded real failures: one row per group with
its numbers, the bad worker named in the hint, enter opens the group's tasks, j moves between
groups, r retries the group's tasks through the task list's dry run and confirmation, refused
in read-only mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import FAILURE
from lazycelery.tui.screen.sources import DashboardInfo
from tests.errors_data import recorded_events
from tests.test_tui_actions import FakeActions, FakeQueues, FakeReconciler
from tests.test_tui_actions import Harness as ActionsHarness
from tests.tui_harness import ESC, FakeIngestor, SizedOutput, drive, headless_dashboard

EVENTS = recorded_events()


@contextmanager
def harness(read_only: bool = False) -> Iterator[ActionsHarness]:
    index = TaskIndex()
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test", read_only=read_only)
    with headless_dashboard(index, info, SizedOutput(40, 160)) as (d, inp):
        ingestor = FakeIngestor()
        actions = FakeActions(read_only=read_only)
        d.attach(ingestor)
        d.operator.attach(actions, queue_ops=FakeQueues({}), reconciler=FakeReconciler())
        for i in range(0, len(EVENTS), 50):
            batch = EVENTS[i:i + 50]
            d.on_batch(batch, index.apply_batch(batch))
        yield ActionsHarness(d, inp, index, actions, FakeQueues({}), FakeReconciler(), ingestor)


def ready(h: ActionsHarness) -> bool:
    return len(h.d.tasks) == 195


def test_groups_rows_and_the_hint_naming_the_bad_worker() -> None:
    with harness() as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.keys("e")
            assert h.d.ui.pane == "errors"
            await h.until(lambda: "e Errors  17 groups  156 failures" in h.screen()
                          and h.d.screen.errors.selected is not None)
            screen = h.screen()
            assert "e Errors  17 groups  156 failures" in screen
            header = next(line for line in screen.splitlines() if "COUNT" in line)
            for column in ("GROUP", "NEW", "LAST 15 MIN", "ERROR", "TASKS", "WORKERS",
                           "QUEUES", "FIRST", "LAST"):
                assert column in header
            first = next(line for line in screen.splitlines() if "FileNotFoundError" in line)
            assert " 31 " in first and "shop.resize" in first and "w-bad@shop-1" in first
            assert "hint: 100 % of 31 failures on worker w-bad@shop-1, which ran 39 %" in screen
            assert "hint: 100 % of 31 failures on w-bad@shop-1; none before" in screen
            assert "example: FileNotFoundError: [Errno 2] No such file or directory: " \
                "'/nonexistent/resize/" in screen
            await h.keys("j")
            second = h.d.screen.errors.selected
            assert second is not None and second.names.top(1)[0][0] == "shop.cache_get"
            assert "similar: " in h.screen()  # redis refused, also from publish (kombu)

        drive(h, scenario, ready=lambda: ready(h))


def test_enter_opens_the_groups_tasks() -> None:
    with harness() as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.keys("e")
            await h.until(lambda: h.d.screen.errors.selected is not None)  # ranked (UI thread)
            await h.keys("\r")
            await h.until(lambda: h.d.ui.pane == "tasks")
            assert h.d.tasks.filter_text.startswith("id:")
            await h.until(lambda: len(h.d.tasks) == 31)  # the filter may apply in chunks
            rows = h.d.tasks.rows(0, len(h.d.tasks))
            assert len(rows) == 31
            assert {(r.name, r.state, r.worker) for r in rows} == {
                ("shop.resize", FAILURE, "w-bad@shop-1")}

        drive(h, scenario, ready=lambda: ready(h))


def test_retry_a_group_asks_first_with_the_dry_run() -> None:
    with harness() as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.keys("e")
            await h.until(lambda: h.d.screen.errors.selected is not None)  # ranked (UI thread)
            await h.keys("r")
            dialog = await h.dialog()
            assert dialog.title == "Retry 31 tasks"
            planned = h.actions.call("plan_retries")[0][0]
            assert len(planned) == 31
            await h.keys(ESC)
            await asyncio.sleep(0.1)
            assert h.actions.names() == ["plan_retries"]  # cancelled: nothing sent

        drive(h, scenario, ready=lambda: ready(h))


def test_retry_a_group_is_refused_read_only() -> None:
    with harness(read_only=True) as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.keys("e")
            await h.until(lambda: h.d.screen.errors.selected is not None)  # ranked (UI thread)
            await h.keys("r")
            await h.until(lambda: "read-only" in h.messages())
            assert h.d.operator.dialog is None
            assert h.actions.names() == []

        drive(h, scenario, ready=lambda: ready(h))
