"""Property tests: any delivery order of a task's events ends in the same record; eviction and
counters stay consistent."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import (
    FAILURE,
    PENDING,
    RECEIVED,
    RETRY,
    REVOKED,
    STARTED,
    SUCCESS,
)

UUID = "5f2c7e1a-0000-4000-8000-000000000001"


def _ev(kind: str, t: float, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": UUID, "timestamp": t, "hostname": "w1@h", "clock": int(t),
            **fields}


def lifecycle(retries: int, ending: str, with_sent: bool) -> list[dict[str, Any]]:
    """The events celery emits for one task (CELERY-INTERNALS §1 'Lifecycles observed')."""
    t = 1000.0
    events: list[dict[str, Any]] = []
    ident = {"name": "proj.add", "args": "(1, 2)", "kwargs": "{}", "root_id": UUID,
             "parent_id": None}
    for attempt in range(retries + 1):
        if with_sent:
            events.append(_ev("task-sent", t, retries=attempt, queue="celery",
                              **{**ident, "parent_id": UUID if attempt else None},
                              hostname="gen1@h"))
            t += 1
        if ending == "expired" and attempt == retries:
            events.append(_ev("task-revoked", t, expired=True, terminated=False, signum=None))
            return events
        events.append(_ev("task-received", t, retries=attempt, **ident))
        t += 1
        if ending == "revoked-queued" and attempt == retries:
            events.append(_ev("task-revoked", t, expired=False, terminated=False, signum=None))
            return events
        events.append(_ev("task-started", t))
        t += 1
        if attempt < retries:
            events.append(_ev("task-retried", t, exception=f"RuntimeError({attempt})",
                              traceback="Traceback ..."))
            t += 1
    if ending == "success":
        events.append(_ev("task-succeeded", t, result="3", runtime=0.5))
    elif ending == "failure":
        events.append(_ev("task-failed", t, exception="ValueError('x')", traceback="Traceback"))
    elif ending == "terminated":
        events.append(_ev("task-revoked", t, terminated=True, signum=15, expired=False))
    elif ending == "retrying":
        events.append(_ev("task-retried", t, exception="RuntimeError(last)", traceback="TB"))
    # "running": ends at task-started
    return events


ENDINGS = ("success", "failure", "terminated", "retrying", "running", "expired", "revoked-queued")
EXPECTED = {"success": SUCCESS, "failure": FAILURE, "terminated": REVOKED, "retrying": RETRY,
            "running": STARTED, "expired": REVOKED, "revoked-queued": REVOKED}


def _record(events: list[dict[str, Any]]) -> Any:
    index = TaskIndex()
    index.apply_batch(events)
    rec = index.get(UUID)
    assert rec is not None
    assert index.by_state == {rec.state: 1}
    return rec


@settings(max_examples=300, deadline=None)
@given(retries=st.integers(0, 3), ending=st.sampled_from(ENDINGS), with_sent=st.booleans(),
       data=st.data())
def test_any_delivery_order_gives_the_same_record(retries: int, ending: str, with_sent: bool,
                                                  data: st.DataObject) -> None:
    events = lifecycle(retries, ending, with_sent)
    in_order = _record(events)
    assert in_order.state == EXPECTED[ending]
    shuffled = data.draw(st.permutations(events))
    other = _record(list(shuffled))
    fields = ("state", "name", "args", "kwargs", "result", "exception", "retries", "parent_id",
              "root_id", "worker", "runtime", "terminated", "expired", "sent", "received",
              "started", "succeeded", "failed", "retried", "revoked")
    assert {f: getattr(other, f) for f in fields} == {f: getattr(in_order, f) for f in fields}


def test_in_order_intermediate_states_follow_celery() -> None:
    events = lifecycle(1, "success", with_sent=True)
    index = TaskIndex()
    seen = []
    for event in events:
        index.apply(event)
        rec = index.get(UUID)
        assert rec is not None
        seen.append(rec.state)
    assert seen == [PENDING, RECEIVED, STARTED, RETRY, PENDING, RECEIVED, STARTED, SUCCESS]


def test_late_received_after_success_keeps_success_and_fills_fields() -> None:
    index = TaskIndex()
    index.apply(_ev("task-succeeded", 5.0, result="3", runtime=0.1))
    index.apply(_ev("task-received", 1.0, name="proj.add", args="(1, 2)", kwargs="{}", retries=0))
    rec = index.get(UUID)
    assert rec is not None
    assert (rec.state, rec.name, rec.args, rec.result) == (SUCCESS, "proj.add", "(1, 2)", "3")
    assert index.by_name == {"proj.add": 1}


def test_unregistered_task_failure_without_received() -> None:
    index = TaskIndex()
    index.apply({"type": "task-failed", "uuid": UUID, "exception": "NotRegistered('x')",
                 "hostname": "w1@h", "timestamp": 1.0})
    rec = index.get(UUID)
    assert rec is not None and rec.state == FAILURE and rec.name is None
    assert index.by_state == {FAILURE: 1} and index.by_name == {}


def test_rejected_without_requeue_is_final() -> None:
    index = TaskIndex()
    index.apply(_ev("task-received", 1.0, name="n", retries=0))
    index.apply(_ev("task-rejected", 2.0, requeue=False))
    rec = index.get(UUID)
    assert rec is not None and rec.state == "REJECTED"


def _task(uuid: str, kind: str = "task-received", t: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "uuid": uuid, "timestamp": t, "hostname": "w@h", "name": "proj.t",
            **extra}


def test_lru_by_activity_evicts_finished_first_and_keeps_counters() -> None:
    index = TaskIndex(max_tasks=3)
    index.apply(_task("long", "task-started"))          # a long-running task, seen first
    index.apply(_task("a"))
    index.apply(_task("a", "task-succeeded"))
    index.apply(_task("b"))
    index.apply(_task("b", "task-succeeded"))
    index.apply(_task("c"))                              # over capacity: evict finished "a"
    assert "long" in index and "a" not in index and len(index) == 3
    index.apply(_task("d"))                              # evict finished "b"
    assert "b" not in index and "long" in index
    index.apply(_task("e"))                              # only unfinished left: LRU among them
    assert "long" not in index and set(r.uuid for r in index.snapshot()) == {"c", "d", "e"}
    assert index.evicted == 3
    assert index.by_state == {RECEIVED: 3}
    assert index.by_name == {"proj.t": 3}
    assert index.by_worker == {"w@h": 3}


def test_activity_refreshes_recency() -> None:
    index = TaskIndex(max_tasks=2)
    index.apply(_task("x"))
    index.apply(_task("y"))
    index.apply(_task("x", "task-started"))              # x is now the most recently active
    index.apply(_task("z"))
    assert "x" in index and "y" not in index


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.sampled_from(
    ["task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
     "task-retried", "task-revoked"])), max_size=200), st.integers(1, 10))
def test_counters_always_equal_a_recount(ops: list[tuple[int, str]], capacity: int) -> None:
    index = TaskIndex(max_tasks=capacity)
    for i, (n, kind) in enumerate(ops):
        index.apply({"type": kind, "uuid": f"u{n}", "timestamp": float(i),
                     "hostname": f"w{n % 3}", "name": f"t{n % 4}", "retries": 0})
    records = index.snapshot()
    assert len(records) == len(index) <= capacity
    recount: dict[str, dict[str, int]] = {"state": {}, "name": {}, "worker": {}}
    for rec in records:
        for key, value in (("state", rec.state), ("name", rec.name), ("worker", rec.worker)):
            if value is not None:
                recount[key][value] = recount[key].get(value, 0) + 1
    assert index.by_state == recount["state"]
    assert index.by_name == recount["name"]
    assert index.by_worker == recount["worker"]


def test_children_may_arrive_before_parents() -> None:
    index = TaskIndex()
    index.apply(_task("child", parent_id="parent", root_id="parent"))
    assert index.children_of("parent") == ["child"]
    index.apply(_task("parent", root_id="parent"))
    assert index.children_of("parent") == ["child"]
    rec = index.get("child")
    assert rec is not None and rec.root_id == "parent"


def test_malformed_events_are_counted_not_raised() -> None:
    index = TaskIndex()
    bad: list[Any] = [{}, {"type": 3}, {"type": "task-started"}, {"type": "task-started", "uuid": ""},
                      {"type": "worker-heartbeat"}, "not a dict", None,
                      {"type": "task-received", "uuid": "u", "retries": "x", "timestamp": "y"}]
    touched = index.apply_batch(bad)
    assert touched[:7] == [None] * 7
    assert index.malformed >= 7
    index.apply(_task("ok"))
    assert "ok" in index


def test_worker_status_online_lost_offline() -> None:
    now = [100.0]
    index = TaskIndex(clock=lambda: now[0])
    index.apply({"type": "worker-online", "hostname": "w1", "freq": 2.0, "active": 0,
                 "processed": 0, "loadavg": [0.1, 0.2, 0.3], "sw_ver": "5.7.0", "pid": 7,
                 "timestamp": 100.0})
    [(worker, status)] = index.worker_rows()
    assert status == "online" and worker.sw_ver == "5.7.0" and worker.pid == 7
    now[0] = 104.5
    assert index.worker_rows()[0][1] == "lost"
    # a heartbeat that answers the `heartbeat` command carries no counters: keep the old ones
    index.apply({"type": "worker-heartbeat", "hostname": "w1", "freq": 5, "timestamp": 104.0})
    [(worker, status)] = index.worker_rows()
    assert status == "online" and worker.processed == 0 and worker.loadavg == (0.1, 0.2, 0.3)
    index.apply({"type": "worker-offline", "hostname": "w1", "timestamp": 105.0})
    assert index.worker_rows()[0][1] == "offline"


def test_version_bumps_once_per_batch() -> None:
    index = TaskIndex()
    v = index.version
    index.apply_batch([_task("a"), _task("b"), _task("c")])
    assert index.version == v + 1


def test_a_running_task_evicted_by_a_burst_keeps_its_name_when_it_comes_back() -> None:
    # recorded events: a real task's received + started, then a burst of more task-sent
    # events than the index holds (all unfinished: the running task goes), then its success
    from tests.replay import load_events

    events = load_events("redis")
    running = next(e["uuid"] for e in events if e["type"] == "task-started")
    own = [e for e in events if e.get("uuid") == running]
    before = [e for e in own if e["type"] in ("task-received", "task-started")]
    after = [e for e in own if e["type"] == "task-succeeded"]
    burst = [e for e in events if e["type"] == "task-sent" and e["uuid"] != running][:600]
    index = TaskIndex(max_tasks=500)
    index.apply_batch(before)
    name = index.get(running).name  # type: ignore[union-attr]
    assert name
    index.apply_batch(burst)
    assert running not in index and index.evicted > 50
    # some of the burst finish (a task that comes back finished is kept over older finished
    # ones, which go first), then the evicted task's own success arrives
    index.apply_batch([{**e, "type": "task-succeeded", "result": "None"} for e in burst[-5:]])
    index.apply_batch(after)
    back = index.get(running)
    assert back is not None and back.state == SUCCESS and back.name == name
    assert back.args is not None and back.worker is not None and index.restored == 1
    assert len(index) <= 500
    recount: dict[str, int] = {}
    for rec in index.snapshot():
        if rec.name is not None:
            recount[rec.name] = recount.get(rec.name, 0) + 1
    assert index.by_name == recount and sum(index.by_state.values()) == len(index)


def test_limbo_is_bounded() -> None:
    index = TaskIndex(max_tasks=10)
    assert index.limbo_size == 100
    for i in range(500):
        index.apply(_task(f"u{i}", "task-started"))
    assert len(index) == 10 and len(index._limbo) == 100
    index.apply(_task("u0", "task-succeeded"))  # too long ago: forgotten, a new record
    assert index.restored == 0
    index.apply(_task("u450", "task-succeeded"))
    assert index.restored == 1
