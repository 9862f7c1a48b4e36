"""What one write to the store carries: task snapshots, transitions, samples and gaps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from lazycelery.core.model import TaskRecord

__all__ = ["GapRow", "QueueSample", "Transition", "WorkerSample", "WriteBatch"]


class Transition(NamedTuple):
    """One task event: the timeline of a task, and what ``tail --since`` replays."""

    uuid: str
    type: str
    time: float | None
    hostname: str | None
    retries: int | None
    backfilled: bool = False


class WorkerSample(NamedTuple):
    hostname: str
    time: float
    kind: str  # online / offline / heartbeat
    active: int | None
    processed: int | None
    load1: float | None
    load5: float | None
    load15: float | None
    pid: int | None
    freq: float | None
    sw_ver: str | None


class QueueSample(NamedTuple):
    time: float
    queue: str
    priority: int | None
    ready: int | None
    reserved: int | None
    consumers: int | None


class GapRow(NamedTuple):
    """A stretch with no events recorded, and why (``source``: ingest, store or recorder)."""

    start: float
    end: float
    cause: str
    source: str
    lost_events: int | None = None


@dataclass
class WriteBatch:
    """Everything written in one transaction. ``tasks`` are snapshots (never the index's live
    records, which the ingest thread keeps changing); the last snapshot of a task wins."""

    tasks: list[TaskRecord] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)
    workers: list[WorkerSample] = field(default_factory=list)
    queues: list[QueueSample] = field(default_factory=list)
    gaps: list[GapRow] = field(default_factory=list)
    #: events this batch stands for (what a drop of it loses)
    events: int = 0
    #: ids of the tasks that come from the result backend, not from events
    backfilled: set[str] = field(default_factory=set)
    #: gaps (start, end) backfilled, with the number of tasks written for them
    filled: list[tuple[float, float, int]] = field(default_factory=list)

    def extend(self, other: WriteBatch) -> None:
        self.tasks.extend(other.tasks)
        self.transitions.extend(other.transitions)
        self.workers.extend(other.workers)
        self.queues.extend(other.queues)
        self.gaps.extend(other.gaps)
        self.events += other.events
        self.backfilled |= other.backfilled
        self.filled.extend(other.filled)

    @property
    def empty(self) -> bool:
        return not (self.tasks or self.transitions or self.workers or self.queues or self.gaps
                    or self.filled)
