"""Alert rules over the recorded event streams, on the stream's own clock (no sleeps): each
condition against an independent count from the final records, pending -> firing ->
resolved, silences, cooldown, and the notifications the transitions make."""

from __future__ import annotations

import itertools
import math

import pytest

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.state import FIRING, OK, PENDING, RESOLVED
from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.ingest_status import CONNECTED, RECONNECTING, Gap, IngestStatus
from lazycelery.core.model import FAILURE, STARTED, SUCCESS
from tests.alerts_helpers import KeepingNotifier, replay, rules
from tests.replay import BROKERS, load_events


@pytest.fixture(scope="module", params=BROKERS)
def events(request: pytest.FixtureRequest) -> list[dict]:
    return load_events(request.param)


def evaluator(text: str, events: list[dict], **kw: object) -> Evaluator:
    return Evaluator(rules(text), now=float(events[0]["timestamp"]), **kw)  # type: ignore[arg-type]


def test_failures_count_what_the_records_say(events: list[dict]) -> None:
    ev = evaluator("""
        [[alerts.rules]]
        name = "all"
        kind = "failures"
        count = 1000000
        window = "1h"
        [[alerts.rules]]
        name = "always"
        kind = "failures"
        filter = "name:*always_fail"
        count = 5
        window = "1h"
        notify = ["ops"]
        """, events, notifier=(notifier := KeepingNotifier()))
    index, now, transitions = replay(ev, events)
    ev.tick(now)
    failed = [r for r in index.records() if r.state == FAILURE]
    everything, always = ev.states
    assert everything.last is not None and always.last is not None
    assert everything.last.value == len(failed)
    assert always.last.value == sum(1 for r in failed if r.name == "benchapp.always_fail")
    assert (everything.state, always.state) == (OK, FIRING)
    assert [(t.rule.name, t.kind) for t in transitions] == [("always", FIRING)]
    (note, channels), = notifier.sent
    assert channels == ("ops",)
    assert note.kind == "alert.firing" and note.key == "-/always"
    assert note.labels["members"] == "benchapp.always_fail"
    assert note.links["filter"] == "name:*always_fail state:failure"
    linked = note.links["tasks"].split(",")
    assert linked and all(index.get(uuid).state == FAILURE for uuid in linked)  # type: ignore[union-attr]


def test_pending_for_then_firing_then_resolved_when_the_window_passes(events: list[dict]) -> None:
    ev = evaluator("""
        [[alerts.rules]]
        name = "f"
        kind = "failures"
        count = 1
        window = "4s"
        for = "3s"
        """, events)
    _, now, transitions = replay(ev, events)
    state = ev.states[0]
    first_fail = min(float(e["timestamp"]) for e in events if e["type"] == "task-failed")
    firing = [t for t in transitions if t.kind == FIRING]
    assert firing and firing[0].at >= first_fail + 3.0 - 1.0  # ticks are 1 s apart
    # nothing fails after the stream ends: the window empties and the alert resolves
    later = [ev.tick(now + s) for s in range(1, 8)]
    assert state.state == RESOLVED
    assert [t.kind for batch in later for t in batch][-1:] == [RESOLVED]


def test_pending_goes_back_without_firing_when_the_condition_clears(events: list[dict]) -> None:
    ev = evaluator("""
        [[alerts.rules]]
        name = "f"
        kind = "failures"
        count = 1
        window = "2s"
        for = "1h"
        """, events)
    _, now, transitions = replay(ev, events)
    assert transitions == [] and ev.states[0].state == PENDING
    ev.tick(now + 10)
    assert ev.states[0].state == OK and ev.states[0].fired_at is None


def test_silenced_and_cooldown_transitions_are_not_notified(events: list[dict]) -> None:
    lines: list[str] = []
    silences: dict[str, float] = {"quiet": math.inf}
    notifier = KeepingNotifier()
    ev = evaluator("""
        [[alerts.rules]]
        name = "quiet"
        kind = "failures"
        window = "1s"
        notify = ["ops"]
        [[alerts.rules]]
        name = "loud"
        kind = "failures"
        window = "1s"
        cooldown = "1h"
        notify = ["ops"]
        """, events, notifier=notifier, silences=lambda: silences, say=lines.append)
    index, now, transitions = replay(ev, events)
    failed = [r for r in index.records() if r.state == FAILURE][:3]
    for later in (now + 5, now + 10, now + 15):  # resolved, failing again, resolved
        if later == now + 10:
            ev.feed([{"type": "task-failed"}] * len(failed), failed, later)
        transitions += ev.tick(later)
    quiet = [t for t in transitions if t.rule.name == "quiet"]
    loud = [t for t in transitions if t.rule.name == "loud"]
    assert quiet and not any(t.told for t in quiet)
    assert [(t.kind, t.told) for t in loud] == [
        (FIRING, True), (RESOLVED, True), (FIRING, False), (RESOLVED, False)]
    assert {n.key for n, _ in notifier.sent} == {"-/loud"}
    assert len([n for n, _ in notifier.sent if n.kind == "alert.firing"]) == 1
    assert any("(not notified: silenced)" in line for line in lines)
    assert any("(not notified: cooldown)" in line for line in lines)


def test_without_a_notifier_each_transition_is_one_log_line(events: list[dict]) -> None:
    lines: list[str] = []
    ev = evaluator("""
        [[alerts.rules]]
        name = "f"
        kind = "failures"
        window = "1h"
        """, events, say=lines.append)
    _, _, transitions = replay(ev, events)
    assert len(lines) == len(transitions) == 1
    assert lines[0].startswith("alert f firing: ") and "\n" not in lines[0]


def test_failure_ratio_and_runtime_p95_match_the_records(events: list[dict]) -> None:
    ev = evaluator("""
        [[alerts.rules]]
        name = "ratio"
        kind = "failure_ratio"
        ratio = 0.01
        min_tasks = 100
        window = "1h"
        [[alerts.rules]]
        name = "slow"
        kind = "runtime_p95"
        filter = "name:benchapp.sleepy"
        threshold = "10ms"
        window = "1h"
        """, events)
    index, now, _ = replay(ev, events)
    ev.tick(now)
    ratio, slow = ev.states
    done = [r for r in index.records() if r.state in (SUCCESS, FAILURE)]
    failed = sum(1 for r in done if r.state == FAILURE)
    assert ratio.last is not None and ratio.last.value == pytest.approx(failed / len(done))
    assert ratio.state == FIRING
    runtimes = sorted(r.runtime for r in done if r.name == "benchapp.sleepy"
                      and r.state == SUCCESS and r.runtime is not None)
    exact = runtimes[math.ceil(0.95 * len(runtimes)) - 1]
    assert slow.last is not None and slow.last.value is not None
    assert exact <= slow.last.value <= exact * 1.1 + 1e-3  # the bin's upper edge
    assert slow.state == (FIRING if exact >= 0.01 else OK)


def test_stuck_started_counts_tasks_still_running_when_the_stream_is_cut(
        events: list[dict]) -> None:
    half = events[: len(events) // 2]
    ev = evaluator("""
        [[alerts.rules]]
        name = "stuck"
        kind = "stuck_started"
        threshold = "30s"
        """, half)
    index, now, _ = replay(ev, half)
    running = {r.uuid for r in index.records() if r.state == STARTED}
    ev.tick(now + 1)
    assert ev.states[0].state == OK
    ev.tick(now + 31)
    state = ev.states[0]
    assert state.state == FIRING and state.last is not None
    assert state.last.value == len(running) > 0
    assert set(state.last.tasks) <= running


def test_worker_offline_and_periodic(events: list[dict]) -> None:
    names = {e["uuid"]: e["name"] for e in events if e.get("name")}
    adds = [float(e["timestamp"]) for e in events
            if e["type"] == "task-succeeded" and names.get(e["uuid"]) == "benchapp.add"]
    ends = [float(events[0]["timestamp"]), *adds, float(events[-1]["timestamp"])]
    longest = max(b - a for a, b in itertools.pairwise(ends))
    interval = math.ceil(longest) + 2  # never late during the stream (ticks are 1 s apart)
    ev = evaluator(f"""
        [[alerts.rules]]
        name = "workers"
        kind = "worker_offline"
        worker = "rec*"
        [[alerts.rules]]
        name = "beat"
        kind = "periodic"
        filter = "name:benchapp.add"
        interval = "{interval}s"
        slack = "1s"
        """, events)
    _, now, transitions = replay(ev, events)
    workers, beat = ev.states
    assert workers.state == FIRING and workers.last is not None
    assert set(workers.last.members) == {"rec1@vm", "rec2@vm"}  # both said goodbye
    assert not any(t.rule.name == "beat" for t in transitions)
    assert beat.state == OK
    ev.tick(now + interval + 1.5)  # the success was seen with its batch, at most at now
    assert beat.state == FIRING


def _snapshot(*queues: QueueStats, stale: bool = False) -> QueueSnapshot:
    return QueueSnapshot(taken_at=0.0, queues=queues, source="test", stale=stale)


def test_queue_rules_read_the_snapshot_and_hold_when_it_is_stale() -> None:
    ev = Evaluator(rules("""
        [[alerts.rules]]
        name = "depth"
        kind = "queue_depth"
        queue = "billing*"
        threshold = 100
        [[alerts.rules]]
        name = "age"
        kind = "queue_age"
        threshold = "1m"
        [[alerts.rules]]
        name = "consumers"
        kind = "no_consumer"
        """), now=0.0)
    ev.tick(1.0)
    assert [s.state for s in ev.states] == [OK, OK, OK]  # no snapshot yet: nothing known
    ev.on_queues(_snapshot(QueueStats(name="billing", ready=150, consumers=0, oldest_age_s=90.0),
                           QueueStats(name="celery", ready=500, consumers=2)))
    ev.tick(2.0)
    depth, _, consumers = ev.states
    assert [s.state for s in ev.states] == [FIRING, FIRING, FIRING]
    assert depth.last is not None and depth.last.members == ("billing",)  # celery: not matched
    assert consumers.last is not None and consumers.last.members == ("billing",)
    ev.on_queues(_snapshot(stale=True))
    ev.tick(3.0)
    assert [s.state for s in ev.states] == [FIRING, FIRING, FIRING]
    ev.on_queues(_snapshot(QueueStats(name="billing", ready=3, consumers=1, oldest_age_s=1.0)))
    ev.tick(4.0)
    assert [s.state for s in ev.states] == [RESOLVED, RESOLVED, RESOLVED]


def test_ingest_gap_fires_while_down_and_for_a_recent_gap() -> None:
    ev = Evaluator(rules("""
        [[alerts.rules]]
        name = "gap"
        kind = "ingest_gap"
        threshold = "5s"
        window = "1m"
        """), now=0.0)
    ev.on_status(IngestStatus(state="connecting", path="fast"), 0.0)
    ev.on_status(IngestStatus(state=CONNECTED, path="fast"), 1.0)
    ev.tick(2.0)
    ev.on_status(IngestStatus(state=RECONNECTING, path="fast", attempt=1), 10.0)
    ev.tick(12.0)
    assert ev.states[0].state == OK  # down for 2 s: under the threshold
    ev.tick(16.0)
    assert ev.states[0].state == FIRING
    gap = Gap(start=10.0, end=20.0, seconds=10.0, reason="reconnect")
    ev.on_status(IngestStatus(state=CONNECTED, path="fast", gap=gap), 20.0)
    ev.tick(21.0)
    assert ev.states[0].state == FIRING  # the gap is in the window
    ev.tick(81.0)
    assert ev.states[0].state == RESOLVED


def test_a_check_that_raises_is_reported_once_and_the_other_rules_go_on() -> None:
    lines: list[str] = []
    ev = Evaluator(rules("""
        [[alerts.rules]]
        name = "broken"
        kind = "no_consumer"
        [[alerts.rules]]
        name = "consumers"
        kind = "no_consumer"
        """), now=0.0, say=lines.append)
    ev.on_queues(_snapshot(QueueStats(name="q", ready=1, consumers=0)))
    state, _ = ev._checks[0]

    def broken(now: float, world: object) -> None:
        raise RuntimeError("boom")

    ev._checks[0] = (state, broken)  # type: ignore[assignment]
    ev.tick(1.0)
    ev.tick(2.0)
    assert [s.state for s in ev.states] == [OK, FIRING]
    assert lines[0] == "alert broken: its check failed (boom)" and len(lines) == 2


def test_a_task_started_and_ended_in_one_batch_is_not_stuck() -> None:
    """A batch reaches the counters grouped by event type: B's end (grouped with A's) comes
    before its start; B is not left running."""
    from lazycelery.core.index import TaskIndex

    ev = Evaluator(rules("""
        [[alerts.rules]]
        name = "stuck"
        kind = "stuck_started"
        threshold = "10s"
        """), now=0.0)
    index = TaskIndex()
    first = [{"type": "task-received", "uuid": "a", "name": "t", "timestamp": 1.0},
             {"type": "task-started", "uuid": "a", "timestamp": 1.0}]
    ev.feed(first, index.apply_batch(first), 1.0)
    second = [{"type": "task-succeeded", "uuid": "a", "runtime": 1.0, "timestamp": 2.0},
              {"type": "task-received", "uuid": "b", "name": "t", "timestamp": 2.0},
              {"type": "task-started", "uuid": "b", "timestamp": 2.0},
              {"type": "task-succeeded", "uuid": "b", "runtime": 0.1, "timestamp": 2.1},
              {"type": "task-received", "uuid": "c", "name": "t", "timestamp": 2.2},
              {"type": "task-started", "uuid": "c", "timestamp": 2.2}]
    ev.feed(second, index.apply_batch(second), 2.2)
    ev.tick(20.0)
    state = ev.states[0]
    assert state.state == FIRING and state.last is not None
    assert state.last.tasks == ("c",)
