"""The dashboard's replay (R), workflow links (W) and export (E) commands, driven headlessly
with fake actions (no cluster), and the detail's Family section on a recorded chord."""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core.actions import ActionResult, Refusal, Reply, RetryPlan
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.tui.panes.detail import build_detail
from lazycelery.tui.panes.dialog import CANCEL
from tests.test_tui_actions import ENTER, TAB, FakeActions, Harness, harness, run

DATA = Path(__file__).resolve().parent / "data" / "workflow" / "canvases.json.gz"


@dataclass
class ReplayActions(FakeActions):
    def plan_replay(self, target: TaskRecord) -> RetryPlan | Refusal:
        self._called("plan_replay", target.uuid)
        if target.uuid in self.refuse:
            return Refusal(target.uuid, self.refuse[target.uuid])
        return RetryPlan(target.uuid, target.name or "?", (1,), {}, "q1", target.uuid,
                         target.uuid, "result backend", target.state, exchange="ex",
                         routing_key="rk")

    def replay(self, plan: RetryPlan) -> ActionResult:
        self._called("replay", plan.uuid)
        text = f"replay of {plan.uuid} sent as new-1 to q1"
        return ActionResult("replay", (plan.uuid,), True, message=text,
                            replies={plan.uuid: Reply(True, text)}, created={plan.uuid: "new-1"})


def _with_replay(h: Harness) -> ReplayActions:
    actions = ReplayActions()
    h.d.operator.attach(actions)
    return actions


def test_replay_of_a_succeeded_task_asks_then_sends() -> None:
    with harness() as h:
        actions = _with_replay(h)

        async def scenario(h: Harness) -> None:
            h.select("ok-1")
            await h.keys("R")
            dialog = await h.dialog()
            assert dialog.focus == CANCEL and dialog.title == "Replay ok-1"
            assert "routing: queue q1, exchange ex, routing key rk" in h.screen()
            await h.keys(TAB + ENTER)
            await h.until(lambda: "replay" in actions.names())
            await h.until(lambda: "sent as new-1" in h.messages())

        run(h, scenario)


def test_a_refused_replay_says_why_and_sends_nothing() -> None:
    with harness() as h:
        actions = _with_replay(h)
        actions.refuse["ok-1"] = "events: args were truncated by Celery"

        async def scenario(h: Harness) -> None:
            h.select("ok-1")
            await h.keys("R")
            await h.until(lambda: "replay: refused: events: args were truncated" in h.messages())
            assert "replay" not in actions.names() and h.d.operator.dialog is None

        run(h, scenario)


def test_replay_is_refused_read_only_but_export_works(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with harness(read_only=True) as h:
        async def scenario(h: Harness) -> None:
            h.select("ok-1")
            await h.keys("R")
            await h.until(lambda: "replay: refused: read-only" in h.messages())
            await h.keys("O")
            await h.until(lambda: "export: 5 tasks written to" in h.messages())
            assert str(tmp_path) in h.messages()  # the message names the file

        run(h, scenario)
    [path] = list(tmp_path.glob("lazycelery-export-*.csv"))
    rows = list(csv.DictReader(path.open()))
    assert sorted(r["uuid"] for r in rows) == ["eta-1", "fail-1", "fail-2", "ok-1", "run-1"]


def test_the_family_section_shows_a_chord_from_its_header_task() -> None:
    with gzip.open(DATA, "rt") as fh:
        data: dict[str, Any] = json.load(fh)
    index = TaskIndex()
    index.apply_batch(data["events"])
    body = data["ids"]["chord"]
    header = next(u for u, m in data["metas"].items()
                  if m.get("group_id") == data["metas"][body]["group_id"] and u != body
                  and u != data["metas"][body]["parent_id"])
    rec = index.get(header)
    assert rec is not None
    alone = [line.text for line in build_detail(rec, index, 120)]
    assert any("no parent or children seen" in t for t in alone)
    assert any("W reads them" in t for t in alone)
    linked = build_detail(rec, index, 120, metas=data["metas"])
    family = [line for line in linked if "chord" in line.text or "workerapp." in line.text]
    texts = [line.text for line in family]
    assert any("chord 97dd0833  header 3/3 done" in t for t in texts)
    assert any("chord callback" in t for t in texts)
    assert any("◀ this task" in t for t in texts)
    opens = {line.link for line in family if line.link}
    assert body in opens and header not in opens  # the others open; this one is shown
