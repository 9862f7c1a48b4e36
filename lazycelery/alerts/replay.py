"""``lazycelery alerts test``: stored history replayed through the same index and evaluator as
live events, on the history's own clock, to say when a rule would have fired and resolved."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.rule import Rule
from lazycelery.alerts.state import Transition
from lazycelery.broker.model import QueueSnapshot, QueueStats
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import CONNECTED, Gap, IngestStatus
from lazycelery.store import Store, StoredGap
from lazycelery.store.capture import WORKER_SAMPLE_INTERVAL
from lazycelery.store.history import history_events

__all__ = ["NOT_REPLAYED", "ReplayResult", "queue_snapshots", "replay_history", "replayable"]

#: kinds whose input the store does not keep (the queue samples have no message ages)
NOT_REPLAYED: Final = frozenset({"queue_age"})
#: events applied to the index at a time
BATCH: Final = 256

Item = dict[str, Any] | StoredGap | QueueSnapshot


def replayable(rule: Rule) -> Rule:
    """The rule as history can answer it: the store keeps one worker sample a minute, not
    every heartbeat, so a worker counts as lost after two missed samples at the soonest."""
    if rule.kind == "worker_offline":
        return replace(rule, threshold=max(rule.threshold or 0.0, 2 * WORKER_SAMPLE_INTERVAL))
    return rule


@dataclass
class ReplayResult:
    events: int = 0
    first: float | None = None
    last: float | None = None
    transitions: list[Transition] = field(default_factory=list)


def queue_snapshots(store: Store, since: float, until: float) -> Iterator[QueueSnapshot]:
    """The stored queue samples (every 10 s while recording) as the snapshots the queue
    monitor took, oldest first: one per sampling time, each queue's total (the row without a
    priority; the others are its priority sub-lists)."""
    rows = store.query("SELECT time, queue, ready, reserved, consumers FROM queue_samples "
                       "WHERE priority IS NULL AND time >= ? AND time < ? ORDER BY time, id",
                       (since, until))
    for at, group in itertools.groupby(rows, key=lambda row: float(row[0])):
        queues = tuple(QueueStats(name=str(r[1]), ready=r[2], reserved=r[3], consumers=r[4])
                       for r in group)
        yield QueueSnapshot(taken_at=at, queues=queues, source="history")


def _time(item: Item, since: float) -> float | None:
    if isinstance(item, StoredGap):
        return max(item.start, since)
    if isinstance(item, QueueSnapshot):
        return item.taken_at
    at = item.get("timestamp")
    return float(at) if isinstance(at, (int, float)) else None


def _items(store: Store, since: float, until: float) -> Iterator[Item]:
    events = history_events(store, since, until)  # task events, worker samples, gaps
    queues = queue_snapshots(store, since, until)
    keyed = (((_time(item, since) or since), n, item) for n, item in enumerate(events))
    snapshots = ((snapshot.taken_at, -1, snapshot) for snapshot in queues)
    for _, _, item in heapq.merge(keyed, snapshots, key=lambda x: (x[0], x[1])):
        yield item


def _chunks(items: Iterator[Item], step: float, since: float
            ) -> Iterator[list[dict[str, Any]] | StoredGap | QueueSnapshot]:
    """Events in batches that never straddle a tick (each is fed at its own time, as a live
    evaluator would have seen it); gaps and queue snapshots on their own, in time order."""
    batch: list[dict[str, Any]] = []
    boundary = since + step
    for item in items:
        if not isinstance(item, dict):
            if batch:
                yield batch
                batch = []
            yield item
            continue
        at = _time(item, since)
        if batch and at is not None and at >= boundary:
            yield batch
            batch = []
        if at is not None and at >= boundary:
            boundary += step * ((at - boundary) // step + 1)
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def replay_history(store: Store, rules: Sequence[Rule], since: float, until: float, *,
                   step: float = 1.0, environment: str | None = None) -> ReplayResult:
    """Every stored task event, worker sample, queue sample and gap in ``[since, until)``
    through a fresh index and an evaluator ticking every ``step`` seconds of history time.
    Nothing is told: the transitions are returned."""
    result = ReplayResult()
    evaluator = Evaluator([replayable(r) for r in rules], now=since, environment=environment,
                          say=lambda line: None)
    index = TaskIndex()
    clock = since
    next_tick = since + step
    for chunk in _chunks(_items(store, since, until), step, since):
        last = chunk[-1] if isinstance(chunk, list) else chunk
        # stored order is time order; never step back
        now = max(_time(last, since) or clock, clock)
        while next_tick <= now:  # the ticks a live evaluator would have made meanwhile
            result.transitions += evaluator.tick(next_tick)
            next_tick += step
        clock = now
        if isinstance(chunk, QueueSnapshot):
            evaluator.on_queues(chunk)
        elif isinstance(chunk, StoredGap):
            seen = Gap(start=chunk.start, end=chunk.end, seconds=chunk.end - chunk.start,
                       reason=chunk.cause)
            evaluator.on_status(IngestStatus(state=CONNECTED, path="history", gap=seen), now)
        else:
            evaluator.feed(chunk, index.apply_batch(chunk), now)
            result.events += len(chunk)
            result.first = now if result.first is None else result.first
            result.last = now
    while next_tick <= until:
        result.transitions += evaluator.tick(next_tick)
        next_tick += step
    return result
