"""On the ingest thread: turn one applied batch (events + the records they touched) into a
WriteBatch of snapshots, so the writer thread never reads a record the ingest thread changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

from lazycelery.broker.model import QueueSnapshot
from lazycelery.core.model import TaskRecord, WorkerRecord
from lazycelery.store.batch import QueueSample, Transition, WorkerSample, WriteBatch

__all__ = ["QUEUE_SAMPLE_INTERVAL", "WORKER_SAMPLE_INTERVAL", "BatchCapture", "event_time",
           "queue_samples"]

#: A worker's heartbeat figures (active, processed, load) are kept at most this often.
WORKER_SAMPLE_INTERVAL: Final = 60.0
#: Queue depths are sampled this often (seconds).
QUEUE_SAMPLE_INTERVAL: Final = 10.0
_WORKER_KINDS: Final = {"worker-online": "online", "worker-offline": "offline",
                        "worker-heartbeat": "heartbeat"}


def event_time(event: Mapping[str, Any]) -> float | None:
    """The sender's time of an event, else when it was received."""
    for key in ("timestamp", "local_received"):
        value = event.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


class BatchCapture:
    """Builds the store's view of an ingest batch. Used by one thread (the ingest thread)."""

    def __init__(self, worker_interval: float = WORKER_SAMPLE_INTERVAL, *,
                 workers: bool = True) -> None:
        self.worker_interval = worker_interval
        #: False: no worker samples (a recorder whose shard is not 0: shard 0 writes them)
        self.workers = workers
        self._sampled: dict[str, float] = {}

    def capture(self, events: Sequence[Mapping[str, Any]],
                records: Sequence[TaskRecord | WorkerRecord | None]) -> WriteBatch:
        tasks: dict[str, TaskRecord] = {}
        transitions: list[Transition] = []
        workers: list[WorkerSample] = []
        for event, rec in zip(events, records, strict=False):
            if rec.__class__ is TaskRecord:
                assert isinstance(rec, TaskRecord)
                tasks[rec.uuid] = rec
                retries = event.get("retries")
                transitions.append(Transition(
                    rec.uuid, str(event.get("type")), event_time(event),
                    _text(event.get("hostname")),
                    retries if retries.__class__ is int else None))
            elif self.workers and isinstance(rec, WorkerRecord):
                sample = self._worker_sample(event, rec)
                if sample is not None:
                    workers.append(sample)
        # Copies, taken here on the ingest thread: the index keeps changing its records.
        snapshots = [msgspec.structs.replace(rec) for rec in tasks.values()]
        return WriteBatch(tasks=snapshots, transitions=transitions, workers=workers,
                          events=len(events))

    def _worker_sample(self, event: Mapping[str, Any], rec: WorkerRecord) -> WorkerSample | None:
        kind = _WORKER_KINDS.get(str(event.get("type")))
        when = event_time(event)
        if kind is None or when is None:
            return None
        if kind == "heartbeat":
            last = self._sampled.get(rec.hostname)
            if last is not None and when - last < self.worker_interval:
                return None
            if rec.active is None and rec.processed is None and rec.loadavg is None:
                return None  # an answer to a `heartbeat` command carries no figures
        self._sampled[rec.hostname] = when
        # The event's own figures: the record already holds the rest of the batch.
        active, processed = event.get("active"), event.get("processed")
        raw_load = event.get("loadavg")
        loadavg = raw_load if isinstance(raw_load, (list, tuple)) else rec.loadavg or ()
        load = [float(x) if isinstance(x, (int, float)) else None for x in loadavg][:3]
        load += [None] * (3 - len(load))
        return WorkerSample(rec.hostname, when, kind,
                            active if isinstance(active, int) else rec.active,
                            processed if isinstance(processed, int) else rec.processed,
                            load[0], load[1], load[2], rec.pid, rec.freq, rec.sw_ver)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def queue_samples(snapshot: QueueSnapshot) -> list[QueueSample]:
    """One row per queue (``priority`` None: all priorities, with reserved and consumers), and
    one per priority step holding messages (Redis). Nothing from a stale or failed snapshot:
    its figures are old ones."""
    if snapshot.stale or snapshot.error:
        return []
    rows: list[QueueSample] = []
    for stats in snapshot.queues:
        if stats.missing:
            continue
        rows.append(QueueSample(snapshot.taken_at, stats.name, None, stats.ready,
                                stats.reserved, stats.consumers))
        for priority, count in sorted((stats.by_priority or {}).items()):
            if count:
                rows.append(QueueSample(snapshot.taken_at, stats.name, priority, count,
                                        None, None))
    return rows
