"""The dashboard's alerts: the header counts the firing rules the running evaluator published
for this environment, `!` opens the pane listing them; a stale state (the evaluator stopped)
counts nothing and says so. The dashboard reads the state file; it evaluates no rule."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lazycelery.alerts.files import state_path, write_json
from lazycelery.core.index import TaskIndex
from lazycelery.tui.screen.sources import DashboardInfo
from tests.test_tui_actions import FakeActions, FakeQueues, FakeReconciler
from tests.test_tui_actions import Harness as ActionsHarness
from tests.tui_harness import FakeIngestor, SizedOutput, drive, headless_dashboard


def publish(directory: Path, updated: float) -> None:
    rule = {"kind": "failures", "since": updated - 30, "silenced_until": None, "members": [],
            "tasks": []}
    write_json(state_path(directory, "test"), {"version": 1, "updated": updated, "rules": [
        {**rule, "name": "calm", "state": "ok", "summary": "0 failures in 5m (threshold 10)"},
        {**rule, "name": "billing-failures", "state": "firing",
         "summary": "12 failures in 5m (threshold 10)"},
    ]})


@contextmanager
def harness(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ActionsHarness]:
    monkeypatch.setenv("LAZYCELERY_ALERTS_DIR", str(directory))
    index = TaskIndex()
    info = DashboardInfo(broker="redis://127.0.0.1:6379/0", env_name="test")
    with headless_dashboard(index, info, SizedOutput(30, 140)) as (d, inp):
        ingestor = FakeIngestor()
        d.attach(ingestor)
        d.operator.attach(FakeActions(), queue_ops=FakeQueues({}), reconciler=FakeReconciler())
        yield ActionsHarness(d, inp, index, FakeActions(), FakeQueues({}), FakeReconciler(),
                             ingestor)


def test_header_counts_firing_alerts_and_the_pane_lists_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(tmp_path, time.time())
    with harness(tmp_path, monkeypatch) as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.until(lambda: "! 1 alert firing" in h.screen())
            await h.keys("!")
            assert h.d.ui.pane == "alerts"
            await h.until(lambda: "billing-failures: 12 failures in 5m" in h.screen())
            lines = h.screen().splitlines()
            firing = next(i for i, line in enumerate(lines) if "billing-failures" in line)
            calm = next(i for i, line in enumerate(lines) if "calm:" in line)
            assert firing < calm and lines[firing].lstrip().startswith("firing")
            assert "! Alerts  1 firing" in h.screen()

        drive(h, scenario)


def test_a_stale_state_counts_nothing_and_says_no_evaluator_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(tmp_path, time.time() - 3600)
    with harness(tmp_path, monkeypatch) as h:
        async def scenario(h: ActionsHarness) -> None:
            await h.keys("!")
            await h.until(lambda: "no alert evaluator running" in h.screen())
            assert "alert firing" not in h.screen() and "billing-failures" not in h.screen()

        drive(h, scenario)
