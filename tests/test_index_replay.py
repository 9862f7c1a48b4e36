"""Replay the recorded real streams into the TaskIndex and compare with celery's own State."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import FAILURE, READY_STATES, RETRY, REVOKED, SUCCESS
from tests.replay import BROKERS, load_events, load_expected


@pytest.fixture(scope="module", params=BROKERS)
def replayed(request: pytest.FixtureRequest) -> tuple[str, TaskIndex, dict[str, Any], list[dict[str, Any]]]:
    broker = request.param
    events = load_events(broker)
    index = TaskIndex(max_tasks=1_000_000)
    index.apply_batch(events)
    return broker, index, load_expected(broker), events


def _oracle_view(uuid: str, expected: dict[str, Any]) -> dict[str, Any]:
    view = dict(expected)
    # celery's State keeps parent_id = own id for a retried task (the retry is re-sent with
    # it); we drop that self-loop on purpose.
    if view["parent_id"] == uuid:
        view["parent_id"] = None
    return view


def test_every_task_matches_celery_state(replayed: Any) -> None:
    _, index, expected, _ = replayed
    assert len(index) == expected["tasks"]
    mismatches = []
    for uuid, want in expected["tasks_by_uuid"].items():
        rec = index.get(uuid)
        assert rec is not None, uuid
        got = {"state": rec.state, "name": rec.name, "retries": rec.retries,
               "worker": rec.worker, "parent_id": rec.parent_id, "root_id": rec.root_id}
        if got != _oracle_view(uuid, want):
            mismatches.append((uuid, got, want))
    assert mismatches == []


def test_counters_match(replayed: Any) -> None:
    _, index, expected, events = replayed
    assert index.by_state == expected["by_state"]
    assert index.by_name == expected["by_name"]
    assert sorted(index.workers) == expected["workers"]
    assert index.events_total == len(events) == expected["events"]
    by_worker: dict[str, int] = {}
    for want in expected["tasks_by_uuid"].values():
        if want["worker"]:
            by_worker[want["worker"]] = by_worker.get(want["worker"], 0) + 1
    assert index.by_worker == by_worker
    assert index.malformed == 0


def test_failures_keep_traceback_and_retries_count(replayed: Any) -> None:
    _, index, _, events = replayed
    failed = [e["uuid"] for e in events if e["type"] == "task-failed"]
    rec = index.get(failed[0])
    assert rec is not None and rec.state == FAILURE
    assert rec.exception and "ValueError" in rec.exception
    assert rec.traceback and rec.traceback.startswith("Traceback")
    retried = {e["uuid"] for e in events if e["type"] == "task-retried"}
    for uuid in retried:
        rec = index.get(uuid)
        assert rec is not None and rec.retries >= 1 and rec.n_retried >= 1


def test_revocations_record_why(replayed: Any) -> None:
    broker, index, _, events = replayed
    revoked = [e for e in events if e["type"] == "task-revoked"]
    assert revoked
    expired = [e["uuid"] for e in revoked if e.get("expired")]
    for uuid in expired:
        rec = index.get(uuid)
        assert rec is not None and rec.state == REVOKED and rec.expired
    if broker == "redis":
        assert expired, "the redis recording has tasks revoked as expired"


def test_workflow_links(replayed: Any) -> None:
    _, index, expected, _ = replayed
    tasks = expected["tasks_by_uuid"]
    for uuid, want in tasks.items():
        parent = want["parent_id"]
        if parent and parent != uuid:
            assert uuid in index.children_of(parent)


def test_shuffled_delivery_ends_in_same_states(replayed: Any) -> None:
    """Any delivery order of the same events gives the same states (a full shuffle)."""
    _, index, _, events = replayed
    shuffled = list(events)
    random.Random(1234).shuffle(shuffled)
    other = TaskIndex(max_tasks=1_000_000)
    other.apply_batch(shuffled)
    assert other.by_state == index.by_state
    for rec in index.snapshot():
        twin = other.get(rec.uuid)
        assert twin is not None
        assert (twin.state, twin.name, twin.args, twin.result, twin.exception, twin.retries,
                twin.parent_id, twin.root_id) == (rec.state, rec.name, rec.args, rec.result,
                                                  rec.exception, rec.retries, rec.parent_id,
                                                  rec.root_id)


def test_states_are_known(replayed: Any) -> None:
    _, index, _, _ = replayed
    assert set(index.by_state) <= READY_STATES | {"PENDING", RETRY, SUCCESS}


def test_history_lists_each_attempt_in_lifecycle_order(replayed: Any) -> None:
    # On the AMQP recording 90 tasks have a task-received stamped before their task-sent
    # (task-sent is published after the message): the history still reads sent, received,
    # started, with the times the events carried.
    broker, index, _, _ = replayed
    inverted = 0
    for rec in index.snapshot():
        states = [state for state, _ in rec.history()]
        times = dict(rec.history())
        assert times.get("PENDING") == rec.sent and times.get("RECEIVED") == rec.received
        if rec.sent is not None and rec.received is not None and \
                rec.sent_attempt == rec.received_attempt:
            inverted += rec.sent > rec.received
            assert states.index("PENDING") < states.index("RECEIVED"), (rec.uuid, rec.history())
        if rec.received is not None and rec.started is not None and \
                rec.n_started - 1 == rec.received_attempt:
            assert states.index("RECEIVED") < states.index("STARTED"), (rec.uuid, rec.history())
    if broker == "amqp":
        assert inverted == 90
