"""Replay (lazycelery/core/replay.py, Actions.replay) without a broker: a finished task, succeeded
too, re-sent with its args and routing under a new id as a child of the original, audited,
refused in read-only mode and when only a truncated or masked repr of the args exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from lazycelery.core import audit
from lazycelery.core.actions import Actions, ReadOnlyError, Refusal, RetryPlan
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.core.replay import REPLAY_HEADER, plan_replay
from tests.test_actions import FakeApp, FakeControl, audit_log, new_id, store

__all__ = ["audit_log"]  # the fixture, imported for these tests


def _sent(task_id: str, **fields: object) -> dict[str, object]:
    return {"type": "task-sent", "uuid": task_id, "name": "tasks.add", "args": "(1, 2)",
            "kwargs": "{}", "root_id": "root-1", "parent_id": "root-1", "queue": "hipri",
            "exchange": "jobs", "routing_key": "jobs.hipri", "timestamp": 1.0,
            "hostname": "gen1@h", **fields}


def test_a_succeeded_task_is_replayed_with_its_routing_as_a_child(audit_log: Path) -> None:
    app = FakeApp(FakeControl(set()))
    task_id = new_id()
    index = TaskIndex()
    index.apply_batch([_sent(task_id), {"type": "task-succeeded", "uuid": task_id,
                                        "hostname": "w1@h", "timestamp": 2.0, "result": "3"}])
    actions = Actions(app, environment="test", index=index)
    plan = actions.plan_replay(task_id)
    assert isinstance(plan, RetryPlan), plan
    assert (plan.queue, plan.exchange, plan.routing_key) == ("hipri", "jobs", "jobs.hipri")
    assert any("succeeded" in n for n in plan.notes)
    result = actions.replay(plan)
    [sent] = app.sent
    assert sent["name"] == "tasks.add" and sent["args"] == (1, 2) and sent["kwargs"] == {}
    assert (sent["queue"], sent["exchange"], sent["routing_key"]) == ("hipri", "jobs", "jobs.hipri")
    assert sent["parent_id"] == task_id and sent["root_id"] == "root-1"
    assert sent["task_id"] != task_id and sent["headers"] == {REPLAY_HEADER: task_id}
    assert result.ok and result.created == {task_id: sent["task_id"]}
    [entry] = audit.read(audit_log)
    assert entry.action == "replay" and entry.targets == [task_id]
    assert entry.result["created"] == {task_id: sent["task_id"]}


def test_replay_takes_the_real_args_from_the_backend() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    task_id = new_id()
    store(app, task_id, "SUCCESS", 3, args=[1, {"deep": [[[1]]]}], queue="q9")
    plan = plan_replay(task_id, app)
    assert isinstance(plan, RetryPlan) and plan.args == (1, {"deep": [[[1]]]})
    assert plan.queue == "q9" and plan.source == "result backend"


@pytest.mark.parametrize(("args", "why"), [
    ("(" + "1, " * 400 + "...)", "truncated"),
    ("({'password': '***' (str, 7 chars)},)", "masked"),
])
def test_replay_refuses_truncated_or_masked_args(args: str, why: str) -> None:
    app = FakeApp(FakeControl(set()))
    rec = TaskRecord(uuid=new_id(), state="SUCCESS", name="tasks.add", args=args, kwargs="{}")
    refusal = plan_replay(rec, app)
    assert isinstance(refusal, Refusal) and why in refusal.reason, refusal


def test_replay_refuses_an_unfinished_task() -> None:
    rec = TaskRecord(uuid=new_id(), state="STARTED", name="tasks.add", args="()", kwargs="{}")
    refusal = plan_replay(rec, FakeApp(FakeControl(set())))
    assert isinstance(refusal, Refusal) and "not finished" in refusal.reason


def test_replay_is_refused_in_read_only_mode(audit_log: Path) -> None:
    app = FakeApp(FakeControl(set()))
    rec = TaskRecord(uuid=new_id(), state="FAILURE", name="tasks.add", args="(1,)", kwargs="{}")
    plan = plan_replay(rec, app)
    assert isinstance(plan, RetryPlan)
    with pytest.raises(ReadOnlyError):
        Actions(app, read_only=True).replay(plan)
    assert app.sent == [] and not audit_log.exists()


def test_a_failed_send_is_reported_and_audited(audit_log: Path) -> None:
    app = FakeApp(FakeControl(set()), send_error=ConnectionError("broker down"))
    rec = TaskRecord(uuid=new_id(), state="FAILURE", name="tasks.add", args="(1,)", kwargs="{}")
    plan = plan_replay(rec, app)
    assert isinstance(plan, RetryPlan)
    result = Actions(app).replay(plan)
    assert not result.ok and "not sent" in result.message
    [entry] = audit.read(audit_log)
    assert entry.action == "replay" and entry.result["ok"] is False
