"""Feeding error groups (and an index) from where the events are: the history store's events of
a time range replayed in order (what ``lazycelery errors`` and ``export`` read), or the task
records of a live index when no store is at hand (``serve`` without ``--store``).

From records, each task counts once with its last outcome (a task that retried three times
and then failed is one failure, not four), and workers are known by version only (no
worker-online times: the ``online`` hint needs the store or live events)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from lazycelery.analysis.groups import ErrorGroups

if TYPE_CHECKING:
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.model import TaskRecord, WorkerRecord
    from lazycelery.store import Store

__all__ = ["CHUNK", "events_from_records", "outcome_of", "replay_store"]

#: events replayed from the store per batch
CHUNK: Final = 500


def replay_store(store: Store, since: float, until: float, groups: ErrorGroups | None,
                 index: TaskIndex, chunk: int = CHUNK) -> int:
    """The store's events in ``[since, until)`` applied to ``index`` and observed by
    ``groups`` (when given) in order; returns the number of history gaps met. Raises
    StoreError."""
    from lazycelery.store import StoredGap
    from lazycelery.store.history import history_events

    gaps = 0
    batch: list[dict[str, Any]] = []
    for item in history_events(store, since, until):
        if isinstance(item, StoredGap):
            gaps += 1
            continue
        batch.append(item)
        if len(batch) >= chunk:
            _apply(batch, groups, index)
            batch = []
    if batch:
        _apply(batch, groups, index)
    return gaps


def _apply(batch: list[dict[str, Any]], groups: ErrorGroups | None, index: TaskIndex) -> None:
    records = index.apply_batch(batch)
    if groups is not None:
        groups.observe_batch(batch, records)


def outcome_of(rec: TaskRecord) -> tuple[str, float] | None:
    """A task's last outcome (event type, time) as the groups count it from records."""
    if rec.failed is not None:
        return "task-failed", rec.failed
    if rec.state == "RETRY" and rec.retried is not None:
        return "task-retried", rec.retried
    if rec.succeeded is not None:
        return "task-succeeded", rec.succeeded
    return None


def events_from_records(records: Iterable[TaskRecord], workers: Mapping[str, WorkerRecord],
                        since: float | None = None
                        ) -> tuple[list[dict[str, Any]], list[TaskRecord]]:
    """(events, records) for ``ErrorGroups.observe_batch``: one worker event per worker
    (its version, before any task), then each finished or failed task's last outcome at or
    after ``since``, in time order."""
    outcomes: list[tuple[float, str, TaskRecord]] = []
    for rec in records:
        found = outcome_of(rec)
        if found is not None and (since is None or found[1] >= since):
            outcomes.append((found[1], found[0], rec))
    outcomes.sort(key=lambda o: (o[0], o[2].uuid))
    first = outcomes[0][0] if outcomes else 0.0
    events: list[dict[str, Any]] = []
    recs: list[Any] = []
    for host, worker in sorted(workers.items()):
        events.append({"type": "worker-heartbeat", "hostname": host, "timestamp": first,
                       "sw_ver": worker.sw_ver})
        recs.append(None)
    for when, kind, rec in outcomes:
        event: dict[str, Any] = {"type": kind, "uuid": rec.uuid, "timestamp": when,
                                 "hostname": rec.worker}
        if kind != "task-succeeded":
            event["exception"] = rec.exception
            event["traceback"] = rec.traceback
        events.append(event)
        recs.append(rec)
    return events, recs
