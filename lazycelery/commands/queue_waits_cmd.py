"""`lazycelery queues --waits S`: listen to the event stream for S seconds, then report per queue
the wait (task-sent -> task-received), its p95, arrival vs drain rate and time to empty."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lazycelery.broker.model import QueueSnapshot
    from lazycelery.config import Settings
    from lazycelery.core.queue_waits import QueueWaits, QueueWaitStats

__all__ = ["collect_waits", "format_waits", "wait_json"]


def collect_waits(settings: Settings, seconds: float) -> QueueWaits:
    """Events for ``seconds`` (one ingest thread, no worker wake-up), fed to QueueWaits."""
    from lazycelery.core.index import TaskIndex
    from lazycelery.core.ingest import Ingestor
    from lazycelery.core.queue_waits import QueueWaits

    waits = QueueWaits(window_s=seconds)
    lock = threading.Lock()

    def on_batch(events: Sequence[Mapping[str, Any]], records: Sequence[object]) -> None:
        with lock:
            waits.add(events, records)

    ingestor = Ingestor(settings.broker_url, TaskIndex(), mode=settings.ingest,
                        read_ahead=settings.read_ahead,
                        app=settings.celery_app() if settings.app_spec else None,
                        transport_options=settings.transport_options, on_batch=on_batch,
                        wakeup=False)
    ingestor.start()
    try:
        threading.Event().wait(seconds)  # the measurement window itself
    finally:
        ingestor.stop()
    return waits


def _round(value: float | None, digits: int = 3) -> float | str | None:
    if value is not None and math.isinf(value):
        return "inf"
    return None if value is None else round(value, digits)


def wait_json(stats: QueueWaitStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {"samples": stats.samples, "wait_mean_s": _round(stats.wait_mean_s),
            "wait_p95_s": _round(stats.wait_p95_s), "arrival_rate": _round(stats.arrival_rate),
            "drain_rate": _round(stats.drain_rate),
            "time_to_empty_s": _round(stats.time_to_empty_s, 1),
            "window_s": _round(stats.window_s, 1), "source": "events:task-sent/task-received"}


def format_waits(snapshot: QueueSnapshot, summary: Mapping[str, QueueWaitStats]) -> str:
    from lazycelery.text import duration, rate, visible, whole_duration

    names = sorted({q.name for q in snapshot.queues} | set(summary))
    header = ("QUEUE", "TASKS", "WAIT AVG", "WAIT P95", "ARRIVE/S", "DRAIN/S", "EMPTY IN")
    rows = []
    for name in names:
        s = summary.get(name)
        if s is None:
            rows.append((visible(name), "0", "-", "-", "-", "-", "-"))
            continue
        empty = s.time_to_empty_s
        rows.append((visible(name), str(s.samples), duration(s.wait_mean_s) or "-",
                     duration(s.wait_p95_s) or "-", rate(s.arrival_rate, missing="-"),
                     rate(s.drain_rate, missing="-"),
                     "never" if empty is not None and math.isinf(empty)
                     else whole_duration(empty, "-")))
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in (header, *rows)]
    window = next(iter(summary.values())).window_s if summary else 0
    lines.append(f"waits over the last {whole_duration(window, '-')} of events "
                 "(task-sent -> task-received; needs task_send_sent_event on the publishers)")
    return "\n".join(lines)
