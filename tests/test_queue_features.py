"""Pure logic of the queue features: dead-letter naming and DLX resolution, routing tree and
task routes, bulk outcome summaries, queue waits replayed from a recorded event stream."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazycelery.broker.bulk import BulkOutcome, Selection
from lazycelery.broker.dead_letters import (
    DeadLetterPattern,
    amqp_dead_letters,
    topic_matches,
    with_dead_letters,
)
from lazycelery.broker.keys import Binding
from lazycelery.broker.management import ManagementBinding, ManagementQueue
from lazycelery.broker.model import QueueStats
from lazycelery.broker.report import format_dead_letter, format_priorities
from lazycelery.broker.routing import build_tree, consumer_edges
from lazycelery.core.index import TaskIndex
from lazycelery.core.queue_ops import summary
from lazycelery.core.queue_waits import QueueWaits, percentile, time_to_empty
from lazycelery.errors import ConfigError
from tests.replay import load_events

# ----------------------------------------------------------------------- dead letters


def test_pattern_round_trip_and_pairs() -> None:
    pattern = DeadLetterPattern("{queue}.dlq")
    assert pattern.dead_letter_of("celery") == "celery.dlq"
    assert pattern.origin_of("celery.dlq") == "celery"
    assert pattern.origin_of("celery") is None
    assert pattern.pairs(["a", "a.dlq", "b"]) == {"a": "a.dlq", "b": "b.dlq"}
    assert DeadLetterPattern("dead.{queue}").origin_of("dead.x.y") == "x.y"


@pytest.mark.parametrize("bad", ["{queue}", "dlq", "{queue}.{queue}"])
def test_pattern_refuses_what_cannot_be_reversed(bad: str) -> None:
    with pytest.raises(ConfigError, match="dead_letter"):
        DeadLetterPattern(bad)


@given(st.text(min_size=1, max_size=30))
def test_pattern_origin_inverts_dead_letter_of(queue: str) -> None:
    pattern = DeadLetterPattern("{queue}.dlq")
    assert pattern.origin_of(pattern.dead_letter_of(queue)) == queue


@pytest.mark.parametrize(("pattern", "key", "matches"), [
    ("a.*", "a.b", True), ("a.*", "a.b.c", False), ("a.#", "a", True), ("a.#", "a.b.c", True),
    ("#", "anything.at.all", True), ("*.b", "a.b", True), ("a.b", "a.c", False),
])
def test_topic_matching(pattern: str, key: str, matches: bool) -> None:
    assert topic_matches(pattern, key) is matches


def test_dlx_resolution_by_argument_policy_default_exchange_and_routing_key() -> None:
    queues = [
        ManagementQueue("work", arguments={"x-dead-letter-exchange": "dlx"}),
        ManagementQueue("pol", effective_policy_definition={"dead-letter-exchange": "dlx",
                                                            "dead-letter-routing-key": "x"}),
        ManagementQueue("dflt", arguments={"x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": "dflt.dead"}),
        ManagementQueue("plain"),
        ManagementQueue("fan", arguments={"x-dead-letter-exchange": "fanx"}),
    ]
    bindings = [ManagementBinding("dlx", "work.dlq", "queue", "work"),
                ManagementBinding("dlx", "x.dlq", "queue", "x"),
                ManagementBinding("fanx", "zz", "queue", ""),
                ManagementBinding("fanx", "aa", "queue", "")]
    found = amqp_dead_letters(queues, bindings, {"dlx": "direct", "fanx": "fanout"})
    assert found == {"work": "work.dlq", "pol": "x.dlq", "dflt": "dflt.dead", "fan": "aa"}


def test_arguments_win_over_policy() -> None:
    queue = ManagementQueue("q", arguments={"x-max-priority": 5},
                            effective_policy_definition={"max-priority": 9})
    assert queue.setting("max-priority") == 5


def test_with_dead_letters_marks_both_sides_and_the_table_says_so() -> None:
    queues = (QueueStats(name="work", ready=1), QueueStats(name="work.dlq", ready=4))
    marked = with_dead_letters(queues, {"work": "work.dlq"}, "test")
    assert marked[0].dead_letter == "work.dlq" and marked[0].dead_letter_ready == 4
    assert marked[1].dead_letter_of == "work" and marked[0].sources["dead_letter"] == "test"
    assert format_dead_letter(marked[0]) == "work.dlq (4)"
    assert format_dead_letter(marked[1]) == "DLQ of work"


def test_priorities_text_for_both_brokers() -> None:
    assert format_priorities(QueueStats(name="q", ready=3, max_priority=10)) == "max 10"
    redis = QueueStats(name="q", ready=3, by_priority={0: 2, 3: 0, 9: 1})
    assert format_priorities(redis) == "0:2 9:1"


# ----------------------------------------------------------------------- bulk


def test_selection_and_summary_counts() -> None:
    selection = Selection.of(["a", "b", "c"], limit=0)
    assert selection.limit == 1 and selection.wants("a") and not selection.wants(None)
    assert Selection.of(None).wants(None) and Selection.of(None).complete_after is None
    outcome = BulkOutcome(action="move", source="q", done=["a"], gone=["b"], scanned=7)
    outcome.finish(selection, ["a", "b"])
    assert outcome.not_found == ["c"]
    assert summary(outcome) == ("1 moved, 1 no longer there (taken meanwhile), "
                                "1 not found among 7 scanned")


# ----------------------------------------------------------------------- routing


def test_routing_tree_merges_broker_and_worker_bindings() -> None:
    replies = {"w1@h": [{"name": "math", "routing_key": "math",
                         "exchange": {"name": "math", "type": "direct"}}],
               "w2@h": [{"name": "math", "routing_key": "math",
                         "exchange": {"name": "math", "type": "direct"}},
                        {"name": "io", "routing_key": "io.#",
                         "exchange": {"name": "topics", "type": "topic"}}]}
    edges, consumers, types = consumer_edges(replies)
    assert consumers == {"math": ["w1@h", "w2@h"], "io": ["w2@h"]}
    assert types == {"math": "direct", "topics": "topic"}
    tree = build_tree([Binding("math", "math", "", "math")], {"math": None}, replies,
                      {"math": 3, "idle": 0})
    assert tree.exchanges == {"math": "direct", "topics": "topic"}
    assert [(e.exchange, e.queue, e.source) for e in tree.edges] == [
        ("math", "math", "broker"), ("topics", "io", "workers")]
    assert tree.ready == {"idle": 0, "io": None, "math": 3}
    assert len(edges) == 3


def test_route_task_with_celery_router() -> None:
    from celery import Celery

    from lazycelery.broker.routing import route_task

    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.task_routes = {"x.add": {"queue": "math"}, "x.io*": "io"}
    tree = build_tree([Binding("math", "math", "", "math")], {}, {
        "w@h": [{"name": "math", "routing_key": "math",
                 "exchange": {"name": "math", "type": "direct"}}]}, {"math": 0}, app)
    assert tree.task_routes == ["x.add -> {'queue': 'math'}", "x.io* -> io"]
    add = route_task(app, "x.add", tree)
    assert (add.rule, add.queue, add.delivered_to) == ("task_routes['x.add']", "math", ["math"])
    assert add.consumers == {"math": ["w@h"]} and add.declared
    assert route_task(app, "x.io_read", tree).rule == "task_routes pattern 'x.io*'"
    other = route_task(app, "y.z", tree)
    assert other.queue == "celery" and not other.declared and other.consumers == {"celery": []}


# ----------------------------------------------------------------------- waits


def test_time_to_empty_and_percentile() -> None:
    assert time_to_empty(10, arrival=1.0, drain=3.0) == 5.0
    assert math.isinf(time_to_empty(10, arrival=2.0, drain=2.0) or 0)
    assert time_to_empty(0, 5.0, 0.0) == 0.0 and time_to_empty(None, 1, 2) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == 4.0 and percentile([], 0.5) is None


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_waits_replayed_from_a_recorded_stream(broker: str) -> None:
    events = load_events(broker)
    index = TaskIndex(max_tasks=100_000)
    waits = QueueWaits(window_s=1e9, clock=lambda: 1000.0)
    for start in range(0, len(events), 200):
        batch = events[start:start + 200]
        waits.add(batch, index.apply_batch(batch), now=1000.0)
    summary_ = waits.summary({"bench": 0}, now=1000.0)
    assert set(summary_) == {e["queue"] for e in events if e["type"] == "task-sent"}
    received = [r for r in index.records() if r.received is not None and r.sent is not None
                and r.queue == "bench"]
    stats = summary_["bench"]
    # one sample per task-received (retries are received again), each received - sent
    n_received = sum(1 for e in events if e["type"] == "task-received"
                     and (rec := index.get(e["uuid"])) is not None and rec.queue == "bench")
    assert stats.samples == n_received and received
    assert stats.wait_p95_s is not None and stats.wait_p95_s >= 0
    assert stats.arrival_rate >= stats.drain_rate > 0
