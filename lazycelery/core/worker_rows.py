"""The workers as the dashboard (and pane plugins) list them: one row per worker seen, with its
status (online / lost / offline) at a given time."""

from __future__ import annotations

from dataclasses import dataclass

from lazycelery.core.index import TaskIndex
from lazycelery.core.model import WorkerRecord
from lazycelery.core.task_list import number_key

__all__ = ["WorkerRow", "worker_rows"]


@dataclass(frozen=True)
class WorkerRow:
    """One line of the workers pane."""

    hostname: str
    status: str
    active: int | None
    processed: int | None
    load: float | None
    heartbeat_age: float | None
    version: str | None
    tasks: int


def worker_rows(index: TaskIndex, now: float) -> list[WorkerRow]:
    """Workers sorted by hostname with their status at ``now`` (few rows; cheap)."""
    pairs = index.worker_rows(now)
    by_worker = index.by_worker
    rows: list[WorkerRow] = []
    for rec, status in pairs:
        rows.append(_worker_row(rec, status, now, by_worker.get(rec.hostname, 0)))
    return rows


def _worker_row(rec: WorkerRecord, status: str, now: float, tasks: int) -> WorkerRow:
    beat = number_key(rec.last_heartbeat) if rec.last_heartbeat is not None else None
    age = None if beat is None or beat == -1.0 else max(0.0, now - beat)
    load = rec.loadavg[0] if isinstance(rec.loadavg, (tuple, list)) and rec.loadavg else None
    return WorkerRow(rec.hostname, status, rec.active, rec.processed, load, age, rec.sw_ver,
                     tasks)
