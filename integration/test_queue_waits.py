"""Queue analytics from real events: a real worker drains a queue that built up while it was
down; the waits, their p95, arrival and drain rates come from task-sent/task-received."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from conftest import ROOT, WorkerProcess, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.core.ingest import CONNECTED, Ingestor
from lazycelery.core.queue_waits import QueueWaits, percentile

pytestmark = pytest.mark.integration


def test_waits_p95_and_rates_from_a_real_worker(
        redis_url: str, celery_worker_factory: Callable[..., WorkerProcess]) -> None:
    from celery import Celery

    queue = f"waits-{uuid.uuid4().hex[:6]}"
    index = TaskIndex()
    waits = QueueWaits()
    lock = threading.Lock()

    def on_batch(events: Sequence[Mapping[str, Any]], records: Sequence[object]) -> None:
        with lock:
            waits.add(events, records)

    ingestor = Ingestor(redis_url, index, on_batch=on_batch, wakeup=False)
    ingestor.start()
    try:
        wait_for(lambda: ingestor.status.state == CONNECTED, what="ingest to connect")
        app = Celery("lc-waits", broker=redis_url, set_as_current=False)
        app.conf.task_send_sent_event = True
        ids = [app.send_task("workerapp.add", args=(i, i), queue=queue).id for i in range(12)]
        celery_worker_factory(redis_url, queue=queue, concurrency=2)

        def all_received() -> Any:
            with lock:
                summary = waits.summary({queue: 0})
            stats = summary.get(queue)
            return stats if stats is not None and stats.samples == len(ids) else None

        stats = wait_for(all_received, timeout=60, what="12 task-received events")
    finally:
        ingestor.stop()
    expected = sorted(max(0.0, r.received - r.sent) for r in map(index.get, ids)
                      if r is not None and r.received is not None and r.sent is not None)
    assert len(expected) == len(ids)
    assert stats.wait_p95_s == percentile(expected, 0.95)
    assert stats.wait_mean_s == pytest.approx(sum(expected) / len(expected))
    # every task arrived and was drained inside the window; the queue is empty now
    assert stats.arrival_rate == pytest.approx(stats.drain_rate)
    assert stats.arrival_rate > 0 and stats.time_to_empty_s == 0.0


def test_cli_waits_json_has_a_wait_per_queue(redis_url: str) -> None:
    from celery import Celery

    app = Celery("lc-waits", broker=redis_url, set_as_current=False)
    app.send_task("workerapp.add", args=(1, 1), queue="idle")
    env = {k: v for k, v in os.environ.items()
           if k not in ("CELERY_BROKER_URL", "LAZYCELERY_BROKER_URL")}
    env.update(LAZYCELERY_CONFIG=os.devnull, NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "lazycelery", "queues", "--waits", "1",
                           "--json", "-b", redis_url], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = {q["name"]: q for q in json.loads(done.stdout)["queues"]}
    assert rows["idle"]["ready"] == 1 and rows["idle"]["wait"] is None  # no events for it
    table = subprocess.run([sys.executable, "-m", "lazycelery", "queues", "--waits", "1",
                            "-b", redis_url], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
    assert "WAIT P95" in table.stdout and "EMPTY IN" in table.stdout
