"""``lazycelery alerts test``: stored history replayed through the same index and evaluator as
live events, on the history's own clock, to say when a rule would have fired and resolved."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from lazycelery.alerts.engine import Evaluator
from lazycelery.alerts.rule import Rule
from lazycelery.alerts.state import Transition
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest_status import CONNECTED, Gap, IngestStatus
from lazycelery.store import Store, StoredGap
from lazycelery.store.capture import WORKER_SAMPLE_INTERVAL
from lazycelery.store.history import history_events

__all__ = ["NOT_REPLAYED", "ReplayResult", "replay_history", "replayable"]

#: kinds whose input the store does not keep as events (queue figures are sampled apart)
NOT_REPLAYED: Final = frozenset({"queue_depth", "queue_age", "no_consumer"})
#: events applied to the index at a time
BATCH: Final = 256


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


def _time(event: dict[str, Any]) -> float | None:
    at = event.get("timestamp")
    return float(at) if isinstance(at, (int, float)) else None


def _batches(items: Iterator[dict[str, Any] | StoredGap], step: float, start: float,
             on_gap: Callable[[StoredGap], None]) -> Iterator[list[dict[str, Any]]]:
    """Events in batches that never straddle a tick: each is fed at its own time, as a live
    evaluator would have seen it (gaps are handed over between batches)."""
    batch: list[dict[str, Any]] = []
    boundary = start + step
    for item in items:
        if isinstance(item, StoredGap):
            if batch:
                yield batch
                batch = []
            on_gap(item)
            continue
        at = _time(item)
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
    """Every stored task event, worker sample and gap in ``[since, until)`` through a fresh
    index and an evaluator ticking every ``step`` seconds of history time. Nothing is told:
    the transitions are returned."""
    result = ReplayResult()
    evaluator = Evaluator([replayable(r) for r in rules], now=since, environment=environment,
                          say=lambda line: None)
    index = TaskIndex()
    clock = [since]
    next_tick = since + step

    def on_gap(gap: StoredGap) -> None:
        seen = Gap(start=gap.start, end=gap.end, seconds=gap.end - gap.start, reason=gap.cause)
        evaluator.on_status(IngestStatus(state=CONNECTED, path="history", gap=seen),
                            max(gap.start, clock[0]))

    for batch in _batches(history_events(store, since, until), step, since, on_gap):
        at = _time(batch[-1])
        now = at if at is not None else clock[0]
        now = max(now, clock[0])  # stored order is time order; never step back
        while next_tick <= now:  # the ticks a live evaluator would have made meanwhile
            result.transitions += evaluator.tick(next_tick)
            next_tick += step
        clock[0] = now
        evaluator.feed(batch, index.apply_batch(batch), now)
        result.events += len(batch)
        result.first = now if result.first is None else result.first
        result.last = now
    while next_tick <= until:
        result.transitions += evaluator.tick(next_tick)
        next_tick += step
    return result
