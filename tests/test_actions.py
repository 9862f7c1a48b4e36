"""Actions without a broker: retry planning, scoping by destination, replies, read-only, audit."""

from __future__ import annotations

import itertools
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lazycelery.core import audit
from lazycelery.core.actions import (
    ActionError,
    ActionResult,
    Actions,
    Placement,
    ReadOnlyError,
    Refusal,
    Reply,
    RetryPlan,
    guard,
    locate_in_index,
    normalize_signal,
    one_retry_per_job,
    plan_retries,
    plan_retry,
    resolve_workers,
)
from lazycelery.core.index import TaskIndex
from lazycelery.core.model import TaskRecord
from lazycelery.errors import UsageError

# --------------------------------------------------------------------------- fakes


class FakeInspect:
    def __init__(self, control: FakeControl, destination: list[str] | None) -> None:
        self.control = control
        self.destination = destination

    def query_task(self, *ids: str) -> dict[str, Any] | None:
        self.control.calls.append(("inspect.query_task", {"destination": self.destination, "ids": ids}))
        hosts = self.destination if self.destination is not None else sorted(self.control.answering)
        out = {}
        for host in hosts:
            if host in self.control.answering:
                held = self.control.held.get(host, {})
                out[host] = {i: list(held[i]) for i in ids if i in held}
        return out or None


class FakeControl:
    """Records every call; mutating commands must carry a non-empty destination list."""

    READ_ONLY = ("ping", "inspect")

    def __init__(self, answering: set[str], held: dict[str, dict[str, tuple[str, dict[str, Any]]]]
                 | None = None, errors: dict[str, str] | None = None) -> None:
        self.answering = answering
        self.held = held or {}
        self.errors = errors or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def inspect(self, destination: list[str] | None = None, timeout: float = 1.0) -> FakeInspect:
        return FakeInspect(self, destination)

    def ping(self, destination: list[str] | None = None, timeout: float = 1.0) -> list[dict[str, Any]]:
        self.calls.append(("ping", {"destination": destination}))
        hosts = destination if destination is not None else sorted(self.answering)
        return [{h: {"ok": "pong"}} for h in hosts if h in self.answering]

    def __getattr__(self, command: str) -> Any:
        def call(*args: Any, destination: Any = None, reply: bool = False, timeout: float = 1.0,
                 **kwargs: Any) -> list[dict[str, Any]] | None:
            assert isinstance(destination, list) and destination, f"{command} without a destination"
            self.calls.append((command, {"destination": destination, "reply": reply, "args": args,
                                         **kwargs}))
            if not reply:
                return None
            out = []
            for host in destination:
                if host not in self.answering:
                    continue
                if command in self.errors:
                    out.append({host: {"error": self.errors[command]}})
                elif command == "revoke" and kwargs.get("terminate"):
                    ids = args[0] if args else []
                    killed = [i for i in ids if self.held.get(host, {}).get(i, ("",))[0] == "active"]
                    text = f"terminate: {', '.join(killed)}" if killed else "terminate: tasks unknown"
                    out.append({host: {"ok": text}})
                else:
                    out.append({host: {"ok": f"{command} done"}})
            return out

        return call

    def mutating(self) -> list[tuple[str, dict[str, Any]]]:
        return [c for c in self.calls if c[0] not in ("ping", "inspect.query_task")]


class FakeApp:
    def __init__(self, control: FakeControl, backend: Any = None,
                 send_error: Exception | None = None) -> None:
        from celery import Celery

        self.control = control
        real = Celery("t", backend=backend, set_as_current=False)
        real.conf.result_extended = True
        self.backend = real.backend
        self.sent: list[dict[str, Any]] = []
        self.send_error = send_error

    def send_task(self, name: str, **kwargs: Any) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append({"name": name, **kwargs})


def store(app: FakeApp, task_id: str, state: str, result: Any, *, name: str = "tasks.add",
          args: Any = (1, 2), kwargs: Any = None, queue: str | None = "q1",
          extended: bool = True) -> None:
    from celery.app.task import Context

    app.backend.app.conf.result_extended = extended
    request = Context(id=task_id, task=name, args=list(args), kwargs=kwargs or {}, hostname="w1@h",
                      retries=0, delivery_info={"routing_key": queue} if queue else {})
    app.backend.store_result(task_id, result, state, traceback="Traceback (most recent...)",
                             request=request)
    app.backend.app.conf.result_extended = True


def new_id() -> str:
    return str(uuidlib.uuid4())


def heartbeat(host: str) -> dict[str, Any]:
    return {"type": "worker-heartbeat", "hostname": host, "freq": 2.0, "local_received": time.time()}


def received(task_id: str, host: str, *, args: str = "(1, 2)", kwargs: str = "{}",
             name: str = "tasks.add") -> dict[str, Any]:
    return {"type": "task-received", "uuid": task_id, "name": name, "args": args, "kwargs": kwargs,
            "hostname": host, "timestamp": time.time(), "retries": 0, "root_id": task_id}


def ev(kind: str, task_id: str, host: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": task_id, "hostname": host, "timestamp": time.time(), **fields}


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "audit.log"
    monkeypatch.setenv(audit.AUDIT_ENV, str(path))
    yield path


# --------------------------------------------------------------------------- retry planning


def test_retry_plan_reads_the_backends_extended_meta() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    task_id = new_id()
    store(app, task_id, "FAILURE", ValueError("boom"), args=[1, {"a": [2]}], kwargs={"k": "v"}, queue="hipri")
    plan = plan_retry(task_id, app)
    assert isinstance(plan, RetryPlan), plan
    assert (plan.name, plan.args, dict(plan.kwargs), plan.queue) == (
        "tasks.add", (1, {"a": [2]}), {"k": "v"}, "hipri")
    assert plan.source == "result backend" and plan.state == "FAILURE"
    assert plan.parent_id == task_id and plan.root_id == task_id


def test_backend_state_beats_a_stale_index() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    task_id = new_id()
    index = TaskIndex()
    index.apply_batch([received(task_id, "w1@h"), ev("task-started", task_id, "w1@h")])
    store(app, task_id, "FAILURE", ValueError("boom"))
    plan = plan_retry(task_id, app, index=index)
    assert isinstance(plan, RetryPlan) and plan.state == "FAILURE"


def test_retry_refuses_truncated_reprs_without_a_backend() -> None:
    app = FakeApp(FakeControl(set()))
    big = "([" + ", ".join(str(i) for i in range(400)) + ", ...],)"
    big = big[:1030] + "...],)"
    rec = TaskRecord(uuid=new_id(), state="FAILURE", name="tasks.big", args=big, kwargs="{}")
    assert rec.args_truncated
    refusal = plan_retry(rec, app)
    assert isinstance(refusal, Refusal)
    assert "truncated" in refusal.reason and "no result backend configured" in refusal.reason


def test_retry_refuses_reprs_cut_by_nesting_depth_and_objects() -> None:
    app = FakeApp(FakeControl(set()))
    nested = TaskRecord(uuid=new_id(), state="FAILURE", name="t", args="([[[...]]],)", kwargs="{}")
    objects = TaskRecord(uuid=new_id(), state="FAILURE", name="t",
                         args="(datetime.date(2020, 1, 1),)", kwargs="{}")
    batch = plan_retries([nested, objects], app)
    assert not batch.plans
    reasons = {r.uuid: r.reason for r in batch.refusals}
    assert "deeper" in reasons[nested.uuid]
    assert "not a plain Python literal" in reasons[objects.uuid]


def test_retry_uses_complete_event_reprs_and_says_so() -> None:
    app = FakeApp(FakeControl(set()))
    rec = TaskRecord(uuid=new_id(), state="REVOKED", name="tasks.add", args="(2, 'x')",
                     kwargs="{'flag': True}", queue="q2", root_id="root-1")
    plan = plan_retry(rec, app)
    assert isinstance(plan, RetryPlan)
    assert (plan.args, dict(plan.kwargs), plan.queue, plan.root_id) == (
        (2, "x"), {"flag": True}, "q2", "root-1")
    assert plan.source == "event reprs"
    assert any("argsrepr" in n for n in plan.notes) and any("workflow" in n for n in plan.notes)


def test_retry_refuses_unfinished_succeeded_and_unknown_tasks() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    running = TaskRecord(uuid=new_id(), state="STARTED", name="t", args="()", kwargs="{}")
    done = TaskRecord(uuid=new_id(), state="SUCCESS", name="t", args="()", kwargs="{}")
    batch = plan_retries([running, done, new_id()], app)
    reasons = [r.reason for r in batch.refusals]
    assert "not finished" in reasons[0] and "twice" in reasons[0]
    assert reasons[1].startswith("succeeded")
    assert reasons[2].startswith("unknown task")
    assert batch.summary() == "0 tasks would be retried, 3 refused"


def test_retry_without_extended_meta_explains_the_setting() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    task_id = new_id()
    store(app, task_id, "FAILURE", ValueError("boom"), extended=False)
    refusal = plan_retry(task_id, app)
    assert isinstance(refusal, Refusal) and "result_extended=True" in refusal.reason


def test_retry_asks_the_worker_still_holding_the_task() -> None:
    task_id = new_id()
    info = {"id": task_id, "name": "tasks.mul", "args": [3, 4], "kwargs": {},
            "delivery_info": {"routing_key": "q3"}}
    control = FakeControl({"w1@h"}, held={"w1@h": {task_id: ("reserved", info)}})
    app = FakeApp(control)
    index = TaskIndex()
    index.apply_batch([heartbeat("w1@h"), received(task_id, "w1@h", args="x" * 1100),
                       ev("task-rejected", task_id, "w1@h", requeue=False)])
    plan = plan_retry(task_id, app, index=index)
    assert isinstance(plan, RetryPlan), plan
    assert plan.args == (3, 4) and plan.queue == "q3" and "query_task" in plan.source
    assert control.calls == [("inspect.query_task", {"destination": ["w1@h"], "ids": (task_id,)})]


def test_bulk_retry_reads_the_backend_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    from lazycelery.core import reconcile

    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    ids = [new_id() for _ in range(1200)]
    calls: list[int] = []
    real_mget = app.backend.mget

    def counting_mget(keys: list[str]) -> Any:
        calls.append(len(keys))
        return real_mget(keys)

    monkeypatch.setattr(app.backend, "mget", counting_mget)
    metas = reconcile.fetch_metas(app, ids)
    assert metas == {} and calls == [500, 500, 200]
    # and the dry run counts the way the dashboard does: 1,200, not 1200
    assert plan_retries(ids, app).summary() == "0 tasks would be retried, 1,200 refused"


# --------------------------------------------------------------------------- retry execution


def test_retry_resends_with_a_new_id_in_the_same_workflow(audit_log: Path) -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    ok_id, bad_id = new_id(), new_id()
    store(app, ok_id, "FAILURE", ValueError("boom"), args=[5], queue="hipri")
    actions = Actions(app, environment="test")
    batch = actions.plan_retries([ok_id, bad_id])
    result = actions.retry(batch)
    assert [s["name"] for s in app.sent] == ["tasks.add"]
    sent = app.sent[0]
    assert sent["args"] == (5,) and sent["queue"] == "hipri"
    assert sent["parent_id"] == ok_id and sent["root_id"] == ok_id and sent["task_id"] != ok_id
    assert result.created == {ok_id: sent["task_id"]}
    assert not result.ok and bad_id in result.refused  # one refused: not all done
    [entry] = audit.read(audit_log)
    assert entry.action == "retry" and entry.targets == [ok_id, bad_id]
    assert entry.environment == "test" and entry.result["created"] == {ok_id: sent["task_id"]}


def test_a_failed_send_is_reported_and_audited(audit_log: Path) -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://",
                  send_error=ConnectionError("redis://:secret@h:6379/0 refused"))
    task_id = new_id()
    store(app, task_id, "FAILURE", ValueError("boom"))
    result = Actions(app).retry(plan_retries([task_id], app))
    assert not result.ok and not result.replies[task_id].ok
    assert "secret" not in result.replies[task_id].text
    assert audit.read(audit_log)[0].result["ok"] is False


# --------------------------------------------------------------------------- revoke / terminate


def _index_with(task_states: dict[str, tuple[str, str]], online: list[str]) -> TaskIndex:
    index = TaskIndex()
    events: list[dict[str, Any]] = [heartbeat(h) for h in online]
    for task_id, (state, host) in task_states.items():
        if state == "PENDING":
            events.append({"type": "task-sent", "uuid": task_id, "name": "t", "timestamp": time.time()})
            continue
        events.append(received(task_id, host))
        if state == "STARTED":
            events.append(ev("task-started", task_id, host))
    index.apply_batch(events)
    return index


def test_revoke_goes_to_the_holder_else_the_online_workers(audit_log: Path) -> None:
    held, queued = new_id(), new_id()
    control = FakeControl({"w1@h", "w2@h"})
    index = _index_with({held: ("RECEIVED", "w1@h"), queued: ("PENDING", "")}, ["w1@h", "w2@h"])
    result = Actions(FakeApp(control), index=index).revoke([held, queued])
    revokes = [(c[1]["destination"], c[1]["args"][0]) for c in control.mutating()]
    assert revokes == [(["w1@h"], [held]), (["w1@h", "w2@h"], [queued])]
    assert result.ok and set(result.replies) == {"w1@h", "w2@h"}
    assert result.replies["w1@h"].text == "revoke done; revoke done"
    assert audit.read(audit_log)[0].targets == [held, queued]


def test_revoke_with_no_worker_online_sends_nothing(audit_log: Path) -> None:
    task_id = new_id()
    control = FakeControl(set())
    result = Actions(FakeApp(control), index=_index_with({task_id: ("PENDING", "")}, [])).revoke([task_id])
    assert control.mutating() == [] and not result.ok and task_id in result.refused


def test_terminate_at_the_worker_running_it_with_the_chosen_signal(audit_log: Path) -> None:
    task_id = new_id()
    control = FakeControl({"w1@h", "w2@h"}, held={"w1@h": {task_id: ("active", {})}})
    index = _index_with({task_id: ("STARTED", "w1@h")}, ["w1@h", "w2@h"])
    result = Actions(FakeApp(control), index=index).terminate([task_id], signal="kill")
    [(command, call)] = control.mutating()
    assert command == "revoke" and call["destination"] == ["w1@h"]
    assert call["terminate"] is True and call["signal"] == "SIGKILL"
    assert result.ok and result.message.startswith("terminated 1 of 1 with SIGKILL")


def test_revoke_without_an_index_finds_the_holder_by_inspect(audit_log: Path) -> None:
    task_id = new_id()
    control = FakeControl({"w1@h", "w2@h"}, held={"w2@h": {task_id: ("scheduled", {})}})
    actions = Actions(FakeApp(control))
    placement = actions.locate([task_id])
    assert placement.holders == {task_id: "w2@h"} and placement.online == ("w1@h", "w2@h")
    actions.revoke([task_id], placement=placement)
    assert [c[1]["destination"] for c in control.mutating()] == [["w2@h"]]


def test_locate_in_index_ignores_holders_that_went_offline() -> None:
    task_id = new_id()
    index = _index_with({task_id: ("STARTED", "gone@h")}, ["w1@h"])
    index.apply({"type": "worker-offline", "hostname": "gone@h", "local_received": time.time()})
    placement = locate_in_index(index, [task_id])
    assert placement.destination(task_id) == ("w1@h",)


# --------------------------------------------------------------------------- worker control


def test_worker_commands_are_scoped_and_replies_collected(audit_log: Path) -> None:
    control = FakeControl({"w1@h"}, errors={"autoscale": "ValueError('Autoscale not enabled')"})
    actions = Actions(FakeApp(control), timeout=0.2)
    grow = actions.pool_grow(["w1@h"], 2)
    assert grow.ok and grow.replies == {"w1@h": Reply(True, "pool_grow done")}
    missing = actions.pool_shrink(["w1@h", "w9@h"])
    assert not missing.ok and missing.missing == ("w9@h",)
    assert "1 did not answer: w9@h" in missing.message
    scale = actions.autoscale(["w1@h"], 4, 1)
    assert not scale.ok and scale.replies["w1@h"] == Reply(False, "ValueError('Autoscale not enabled')")
    actions.add_consumer(["w1@h"], "extra")
    actions.cancel_consumer(["w1@h"], "extra")
    actions.rate_limit(["w1@h"], "tasks.add", "10/m")
    actions.time_limit(["w1@h"], "tasks.add", soft=5, hard=10)
    actions.pool_restart(["w1@h"])
    for command, call in control.mutating():
        assert call["destination"] and call["reply"] is True, command
    commands = [c for c, _ in control.mutating()]
    assert commands == ["pool_grow", "pool_shrink", "autoscale", "add_consumer", "cancel_consumer",
                        "rate_limit", "time_limit", "pool_restart"]
    entries = audit.read(audit_log)
    assert [e.action for e in entries] == ["pool-grow", "pool-shrink", "autoscale", "add-consumer",
                                           "cancel-consumer", "rate-limit", "time-limit", "pool-restart"]
    assert entries[3].targets == ["w1@h", "extra"]


def test_time_limits_can_be_cleared(audit_log: Path) -> None:
    control = FakeControl({"w1@h"})
    actions = Actions(FakeApp(control))
    actions.time_limit(["w1@h"], "tasks.add", clear=True)
    actions.time_limit(["w1@h"], "tasks.add", soft=0, hard=60)
    sent = [(call["soft"], call["hard"]) for _, call in control.mutating()]
    assert sent == [(None, None), (None, 60)]
    assert [e.targets[-1] for e in audit.read(audit_log)] == [
        "tasks.add soft=none hard=none", "tasks.add soft=none hard=60s"]
    with pytest.raises(UsageError, match="--clear removes both"):
        actions.time_limit(["w1@h"], "tasks.add", soft=5, clear=True)
    with pytest.raises(UsageError, match="0 removes it"):
        actions.time_limit(["w1@h"], "tasks.add", hard=-1)


def test_shutdown_pings_first_and_reports_who_was_told(audit_log: Path) -> None:
    control = FakeControl({"w1@h"})
    result = Actions(FakeApp(control)).shutdown(["w1@h", "w2@h"])
    assert control.calls[0] == ("ping", {"destination": ["w1@h", "w2@h"]})
    [(command, call)] = control.mutating()
    assert command == "shutdown" and call["destination"] == ["w1@h"]
    assert result.missing == ("w2@h",) and not result.ok


def test_no_worker_means_no_command() -> None:
    control = FakeControl({"w1@h"})
    actions = Actions(FakeApp(control))
    with pytest.raises(UsageError, match="never broadcast"):
        actions.pool_grow([])
    assert control.calls == []


@pytest.mark.parametrize(("call", "match"), [
    (lambda a: a.autoscale(["w"], 2, 3), "min <= max"),
    (lambda a: a.pool_grow(["w"], 0), "positive"),
    (lambda a: a.rate_limit(["w"], "t", "fast"), "bad rate"),
    (lambda a: a.time_limit(["w"], "t", soft=10, hard=5), "must not exceed"),
    (lambda a: a.time_limit(["w"], "t"), "--soft and/or --hard seconds, or --clear"),
    (lambda a: a.add_consumer(["w"], " "), "empty"),
    (lambda a: a.terminate(["x"], signal="SIGNOPE"), "unknown signal"),
])
def test_bad_arguments_fail_before_sending(call: Any, match: str) -> None:
    control = FakeControl({"w"})
    with pytest.raises(UsageError, match=match):
        call(Actions(FakeApp(control)))
    assert control.mutating() == []


def test_purge_is_guarded_and_audited(audit_log: Path) -> None:
    actions = Actions(FakeApp(FakeControl(set())), environment="prod")
    done = actions.purge("emails", lambda queue: 1200, expected=1199)
    assert done.ok
    assert done.message == "1,200 messages removed (1,199 were shown: messages arrived or left meanwhile)"

    def broken(queue: str) -> int:
        raise ConnectionError("redis://:pw@h:1/0 down")

    failed = actions.purge("emails", broken)
    assert not failed.ok and "pw" not in failed.message
    assert [(e.action, e.targets, e.result["ok"]) for e in audit.read(audit_log)] == [
        ("purge", ["emails"], True), ("purge", ["emails"], False)]


# --------------------------------------------------------------------------- read-only


READ_ONLY_CALLS = {
    "retry": lambda a: a.retry(RetryPlan("i", "t", (), {}, None, "i", "i", "x", "FAILURE")),
    "revoke": lambda a: a.revoke(["i"]),
    "terminate": lambda a: a.terminate(["i"]),
    "shutdown": lambda a: a.shutdown(["w"]),
    "pool-restart": lambda a: a.pool_restart(["w"]),
    "pool-grow": lambda a: a.pool_grow(["w"]),
    "pool-shrink": lambda a: a.pool_shrink(["w"]),
    "autoscale": lambda a: a.autoscale(["w"], 2, 1),
    "add-consumer": lambda a: a.add_consumer(["w"], "q"),
    "cancel-consumer": lambda a: a.cancel_consumer(["w"], "q"),
    "rate-limit": lambda a: a.rate_limit(["w"], "t", "1/s"),
    "time-limit": lambda a: a.time_limit(["w"], "t", hard=1),
    "purge": lambda a: a.purge("q", lambda q: 1 / 0),
}


@pytest.mark.parametrize("action", sorted(READ_ONLY_CALLS))
def test_read_only_refuses_every_action(action: str, audit_log: Path) -> None:
    control = FakeControl({"w"})
    app = FakeApp(control)
    actions = Actions(app, read_only=True)
    with pytest.raises(ReadOnlyError, match=rf"^{action}: refused: read-only mode"):
        READ_ONLY_CALLS[action](actions)
    assert control.calls == [] and app.sent == [] and not audit_log.exists()


def test_read_only_still_allows_the_dry_run() -> None:
    app = FakeApp(FakeControl(set()), backend="cache+memory://")
    task_id = new_id()
    store(app, task_id, "FAILURE", ValueError("boom"))
    batch = Actions(app, read_only=True).plan_retries([task_id])
    assert len(batch.plans) == 1


def test_guard_accepts_settings() -> None:
    from lazycelery.config import Settings

    guard(Settings(broker_url="redis://x", read_only=False), "revoke")
    with pytest.raises(ReadOnlyError):
        guard(Settings(broker_url="redis://x", read_only=True), "revoke")


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(("given", "want"), [("TERM", "SIGTERM"), ("sigkill", "SIGKILL"), (9, "SIGKILL"),
                                             ("2", "SIGINT"), ("SIGUSR1", "SIGUSR1")])
def test_normalize_signal(given: str | int, want: str) -> None:
    assert normalize_signal(given) == want


def test_resolve_workers_expands_short_names_and_names_the_silent() -> None:
    control = FakeControl({"w1@a", "w2@a", "w2@b"})
    app = FakeApp(control)
    assert resolve_workers(app, ["w1"]) == ["w1@a"]
    assert resolve_workers(app, ["w1@a", "w2@b"]) == ["w1@a", "w2@b"]
    assert control.calls[-1] == ("ping", {"destination": ["w1@a", "w2@b"]})
    with pytest.raises(UsageError, match="ambiguous"):
        resolve_workers(app, ["w2"])
    with pytest.raises(ActionError, match=r"'w3@a' did not answer ping .*online: none answered"):
        resolve_workers(app, ["w3@a"])


def test_result_lines_and_json() -> None:
    result = ActionResult("pool-grow", ("w1", "w2", "w3"), False,
                          replies={"w1": Reply(True, "pool will grow"), "w2": Reply(False, "nope")},
                          missing=("w3",), message="1 ok, 1 error, 1 did not answer: w3")
    assert result.lines() == [
        "pool-grow: 1 ok, 1 error, 1 did not answer: w3",
        "  w1  ok     pool will grow",
        "  w2  error  nope",
        "  w3  error  no reply (timed out)",
    ]
    assert result.to_json()["replies"]["w2"] == {"ok": False, "text": "nope"}


def test_placement_destination() -> None:
    placement = Placement(holders={"a": "w1"}, held_as={"a": "active"}, online=("w1", "w2"), source="x")
    assert placement.destination("a") == ("w1",) and placement.destination("b") == ("w1", "w2")


def test_a_retried_task_keeps_its_args_a_tuple_in_the_message(audit_log: Path) -> None:
    # a real celery app on kombu's in-memory transport: the argsrepr header is what events and
    # the dashboard show for the new run
    from celery import Celery

    app = Celery("lc-retry-args", broker="memory://", set_as_current=False)
    try:
        plan = RetryPlan(uuid="orig", name="tasks.add", args=(1, [2, 3]), kwargs={"k": 4},
                         queue="lc-retry-args", root_id="orig", parent_id="orig",
                         source="result backend", state="FAILURE")
        result = Actions(app).retry(plan)
        assert result.ok, result.lines()
        with app.connection_for_read() as conn:
            message = conn.SimpleQueue("lc-retry-args").get(timeout=2)
            assert message.headers["argsrepr"] == "(1, [2, 3])"
            assert message.headers["kwargsrepr"] == "{'k': 4}"
            assert message.headers["parent_id"] == "orig"
            message.ack()
    finally:
        app.close()


# --------------------------------------------------------------------------- one retry per job


def _recorded_failure() -> list[dict[str, Any]]:
    """The events of one real always_fail run from the recorded Redis stream."""
    from tests.replay import load_events

    events = load_events("redis")
    failed = next(e["uuid"] for e in events if e["type"] == "task-failed"
                  and any(x.get("uuid") == e["uuid"] and x.get("name") == "benchapp.always_fail"
                          for x in events if x["type"] == "task-received"))
    return [e for e in events if e.get("uuid") == failed]


def _run(template: list[dict[str, Any]], uuid: str, *, parent: str | None = None,
         until: str = "task-failed", shift: float = 0.0) -> list[dict[str, Any]]:
    """The recorded run again as ``uuid`` (a retry copy when ``parent`` is given), stopped
    after the event ``until``; ``task-succeeded`` replaces the failure when asked for."""
    out = []
    for event in template:
        kind = "task-succeeded" if until == "task-succeeded" and event["type"] == "task-failed" \
            else event["type"]
        copy = {**event, "type": kind, "uuid": uuid, "timestamp": event["timestamp"] + shift}
        if parent is not None and kind in ("task-sent", "task-received"):
            copy.update(parent_id=parent, root_id=parent)
        out.append(copy)
        if kind == until:
            break
    return out


def test_a_bulk_retry_keeps_one_failure_per_job() -> None:
    template = _recorded_failure()
    index = TaskIndex()
    for events in (
        _run(template, "a1"), _run(template, "a2", parent="a1", shift=10),   # failed twice
        _run(template, "a3", parent="a2", shift=20),                         # ... three times
        _run(template, "b1"), _run(template, "b2", parent="b1", until="task-started", shift=5),
        _run(template, "c1"), _run(template, "c2", parent="c1", until="task-succeeded", shift=5),
        _run(template, "d1"),                                                # failed once
    ):
        index.apply_batch(events)
    failures = [r for r in index.snapshot() if r.state == "FAILURE"]
    assert sorted(r.uuid for r in failures) == ["a1", "a2", "a3", "b1", "c1", "d1"]

    kept, refused = one_retry_per_job(failures, index)
    assert sorted(r.uuid for r in kept) == ["a3", "d1"]
    reasons = {r.uuid: r.reason for r in refused}
    assert reasons["a1"] == reasons["a2"] == ("an earlier failed run of the same job: retrying "
                                              "the newest, a3, instead")
    assert reasons["b1"].startswith("already retried: run b2 of the same job is STARTED")
    assert reasons["c1"].startswith("already retried: run c2 of the same job is SUCCESS")
    # only some runs of a job in view (a filter hid a3): still the newest of those, once
    kept, refused = one_retry_per_job([index.get("a1"), index.get("a2")], index)  # type: ignore[list-item]
    assert [r.uuid for r in kept] == ["a2"] and [r.uuid for r in refused] == ["a1"]


def test_a_chain_step_after_a_success_is_its_own_job() -> None:
    template = _recorded_failure()
    index = TaskIndex()
    # same task name, but the parent succeeded: a chain step (add | add), not a retry copy
    index.apply_batch(_run(template, "s1", until="task-succeeded"))
    index.apply_batch(_run(template, "s2", parent="s1", shift=5))
    index.apply_batch(_run(template, "e1"))
    kept, refused = one_retry_per_job([index.get("s2"), index.get("e1")], index)  # type: ignore[list-item]
    assert [r.uuid for r in kept] == ["s2", "e1"] and refused == []


# --------------------------------------------------------------------------- marks in the index


def test_a_confirmed_revoke_marks_waiting_tasks_revoked(audit_log: Path) -> None:
    queued, held, running, silent = new_id(), new_id(), new_id(), new_id()
    control = FakeControl({"w1@h", "w2@h"})
    index = _index_with({queued: ("PENDING", ""), held: ("RECEIVED", "w1@h"),
                         running: ("STARTED", "w1@h")}, ["w1@h", "w2@h"])
    result = Actions(FakeApp(control), index=index).revoke([queued, held, running])
    assert result.ok
    # a running task revoked without terminate keeps running: only waiting ones are REVOKED
    assert set(result.marked) == {queued, held}
    assert [rec(index, i).state for i in (queued, held, running)] == \
        ["REVOKED", "REVOKED", "STARTED"]
    assert rec(index, queued).note == "revoked by lazycelery, confirmed by w1@h, w2@h"
    assert index.by_state == {"REVOKED": 2, "STARTED": 1}
    assert audit.read(audit_log)[0].result["marked"] == list(result.marked)
    # a worker that did not answer: not confirmed, nothing marked
    index2 = _index_with({silent: ("PENDING", "")}, ["w1@h", "w9@h"])
    lost = Actions(FakeApp(FakeControl({"w1@h"})), index=index2).revoke([silent])
    assert lost.marked == () and rec(index2, silent).state == "PENDING"


def test_a_purge_that_names_its_tasks_marks_them_purged(audit_log: Path) -> None:
    # queued tasks as the recorded stream shows them: task-sent only (PENDING)
    from tests.replay import load_events

    events = load_events("redis")
    sent = [e for e in events if e["type"] == "task-sent" and not e.get("retries")][:4]
    index = TaskIndex()
    index.apply_batch(sent)
    ids = [e["uuid"] for e in sent]
    index.apply_batch([e for e in events if e.get("uuid") == ids[3]])  # this one ran
    assert [rec(index, i).state for i in ids[:3]] == ["PENDING"] * 3
    result = Actions(FakeApp(FakeControl(set())), index=index).purge(
        "celery", lambda queue: (5, [*ids, "not-in-the-index"]))
    assert result.ok and result.count == 5
    assert result.message == "5 messages removed; 3 tasks marked PURGED"
    assert set(result.marked) == set(ids[:3])
    assert [rec(index, i).state for i in ids[:3]] == ["PURGED"] * 3
    assert rec(index, ids[3]).state not in ("PURGED", "PENDING")
    assert rec(index, ids[0]).note == "purged from queue celery by lazycelery"
    assert index.by_state.get("PURGED") == 3 and index.by_state.get("PENDING") is None
    assert [s for s, _ in rec(index, ids[0]).history()] == ["PENDING", "PURGED"]
    # order-independent: a late event of the same attempt does not bring PENDING back,
    # and a worker that did take a copy of the message still shows it
    index.apply_batch([e for e in sent if e["uuid"] == ids[0]])
    assert rec(index, ids[0]).state == "PURGED"
    index.apply({"type": "task-received", "uuid": ids[1], "hostname": "w1@h",
                 "timestamp": time.time(), "name": "x", "retries": 0})
    assert rec(index, ids[1]).state == "RECEIVED"
    # a plain count (AMQP: ids unknown) marks nothing
    assert Actions(FakeApp(FakeControl(set())), index=index).purge(
        "celery", lambda queue: 2).marked == ()


def rec(index: TaskIndex, task_id: str) -> TaskRecord:
    found = index.get(task_id)
    assert found is not None
    return found


# --------------------------------------------------------------------------- id prefixes


def test_task_id_prefixes_resolve_from_the_index() -> None:
    from lazycelery.core.actions import resolve_task_ids
    from tests.replay import load_events

    index = TaskIndex()
    index.apply_batch(load_events("redis"))
    ids = sorted(r.uuid for r in index.snapshot())
    one = ids[0]
    shared = next(a[:2] for a, b in itertools.pairwise(ids) if a[:2] == b[:2])
    app = FakeApp(FakeControl(set()))
    assert resolve_task_ids([one[:8], one, "custom-id"], app, index=index) == [
        (one[:8], one), (one, one), ("custom-id", "custom-id")]
    assert resolve_task_ids([one[:8].upper()], app, index=index) == [(one[:8].upper(), one)]
    with pytest.raises(UsageError, match=f"task id prefix '{shared}' is ambiguous: ") as exc:
        resolve_task_ids([shared], app, index=index)
    assert str(exc.value).endswith(" and more")  # 3,000 tasks: far more than 10 share 2 chars
    assert len(str(exc.value).split(": ", 1)[1].split(", ")) == 10
    with pytest.raises(UsageError, match="no task id starts with 'ffffffff0' in the dashboard"):
        resolve_task_ids(["ffffffff0"], app, index=index)


def test_without_an_index_or_a_searchable_backend_a_full_id_is_needed() -> None:
    from lazycelery.core.actions import resolve_task_ids

    full = new_id()
    no_backend = FakeApp(FakeControl(set()))
    assert resolve_task_ids([full], no_backend) == [(full, full)]  # nothing to look up
    with pytest.raises(UsageError,
                       match=r"is not a full task id .*no result backend.*give the full id"):
        resolve_task_ids([full[:8]], no_backend)
    memory = FakeApp(FakeControl(set()), backend="cache+memory://")
    with pytest.raises(UsageError, match="CacheBackend result backend cannot be searched"):
        resolve_task_ids([full[:8]], memory)
