"""The dashboard's charts pane, headless: the recorded stream (moved to the last hour) drawn as
throughput sparklines, load bars, the p95 heatmap with its legend, SLA breaches and heartbeats;
``b`` changes the bucket; ``R`` asks for the restart of the selected worker."""

from __future__ import annotations

import math
import time
from typing import Any

from lazycelery.tui.screen.charts import ChartsModel
from tests.test_tui_app import EVENTS, Harness, harness
from tests.tui_harness import drive, screen_lines


def recent(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events moved by whole minutes so the last one is within the last minute."""
    last = max(e["timestamp"] for e in events)
    shift = math.floor((time.time() - 5 - last) / 60) * 60
    out = []
    for e in events:
        moved = dict(e, timestamp=e["timestamp"] + shift)
        if "local_received" in e:
            moved["local_received"] = e["local_received"] + shift
        out.append(moved)
    return out


def test_the_pane_draws_the_fleet_from_memory() -> None:
    with harness(rows=70, columns=130) as h:
        async def scenario(h: Harness) -> None:
            h.d.screen.charts.sla = {"benchapp.add": (0.05, None)}
            h.feed(recent(EVENTS))
            await h.until(lambda: len(h.d.tasks) == 3000)
            await h.keys("m")
            assert h.d.ui.pane == "charts"
            await h.until(lambda: "Load: each worker" in "\n".join(screen_lines(h.d)))
            text = "\n".join(screen_lines(h.d))
            assert "Charts" in text and "per minute, last 60 buckets, from memory" in text
            assert "Finished tasks per minute by worker" in text
            assert "rec1@vm" in text and " 51.7%  1,502 tasks, 52 failed" in text
            assert " 48.3%  1,404 tasks, 69 failed" in text
            assert "p95 runtime per task name per minute" in text and "legend: ░" in text
            assert "SLA: 18 breaches" in text and "18 over runtime, 0 over wait" in text
            assert "Heartbeats" in text and "0 missed" in text
            await h.keys("b")
            assert h.d.screen.charts.bucket == 600.0
            await h.until(lambda: "p95 runtime per task name per 10 minutes"
                          in "\n".join(screen_lines(h.d)))
            await h.keys("1")  # select a worker in the workers pane, back to the charts
            await h.keys("m")
            await h.keys("R")  # the harness has no action backend: said, nothing run
            said = [m.headline for m in h.d.operator.board.visible()]
            assert said and said[-1].startswith("restart: ")

        drive(h, scenario)


def test_the_model_recomputes_only_when_due() -> None:
    from lazycelery.core.index import TaskIndex

    now = [1_000_000.0]
    index = TaskIndex()
    model = ChartsModel(index, clock=lambda: now[0], background=False)
    first = model.view()
    assert model.view() is first  # nothing new, within the interval
    index.apply_batch([{"type": "task-received", "uuid": "a", "name": "t", "hostname": "w",
                        "timestamp": now[0] - 1}])
    now[0] += 2.5
    second = model.view()
    assert first is not None and second is not None and second is not first
    # the current minute is the last of the 60 columns
    assert second.columns[-1] == 999_960.0 and len(second.columns) == 60  # 16,666 x 60
    model.cycle_bucket()
    assert model.view().bucket == 600.0  # type: ignore[union-attr]


def test_the_analysis_runs_off_the_calling_thread() -> None:
    import threading

    from lazycelery.core.index import TaskIndex

    done: list[str] = []
    model = ChartsModel(TaskIndex())
    model.on_done = lambda: done.append(threading.current_thread().name)
    assert model.view() is None  # nothing yet: started, not waited for
    model.wait()
    found = model.view()
    assert found is not None and found.tasks == 0
    assert done == ["lazycelery-charts"]
