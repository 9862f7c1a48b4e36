"""Flower's JSON shapes built from lazycelery's records: a task as celery's
``Task.as_dict()`` with the worker as its hostname, a worker's status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lazycelery.core.model import TaskRecord

__all__ = ["TASK_FIELDS", "task_dict"]

#: celery.events.state.Task._fields, in order: the keys of every task Flower returns
TASK_FIELDS = ("uuid", "name", "state", "received", "sent", "started", "rejected", "succeeded",
               "failed", "retried", "revoked", "args", "kwargs", "eta", "expires", "retries",
               "worker", "result", "exception", "timestamp", "runtime", "traceback", "exchange",
               "routing_key", "clock", "client", "root", "root_id", "parent", "parent_id",
               "children")


def task_dict(rec: TaskRecord, children: Sequence[str] = (), *,
              worker_last: bool = False) -> dict[str, Any]:
    """One task, Flower's keys. ``root`` and ``parent`` are the ids (Flower: the same ids, as
    celery's serializer writes them); ``clock`` is not tracked per task (0). ``worker_last``:
    the key order of Flower's /api/tasks (it moves ``worker`` to the end)."""
    out = {
        "uuid": rec.uuid, "name": rec.name, "state": rec.state,
        "received": rec.received, "sent": rec.sent, "started": rec.started,
        "rejected": rec.rejected, "succeeded": rec.succeeded, "failed": rec.failed,
        "retried": rec.retried, "revoked": rec.revoked, "args": rec.args, "kwargs": rec.kwargs,
        "eta": rec.eta, "expires": rec.expires, "retries": rec.retries, "worker": rec.worker,
        "result": rec.result, "exception": rec.exception, "timestamp": rec.timestamp,
        "runtime": rec.runtime, "traceback": rec.traceback, "exchange": rec.exchange,
        "routing_key": rec.routing_key, "clock": 0, "client": rec.client,
        "root": rec.root_id, "root_id": rec.root_id, "parent": rec.parent_id,
        "parent_id": rec.parent_id, "children": list(children),
    }
    if worker_last:
        out["worker"] = out.pop("worker")
    return out
