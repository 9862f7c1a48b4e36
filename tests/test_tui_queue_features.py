"""The dashboard's queues pane with the queue features: RabbitMQ max priority, dead-letter queues
beside their queue, and the waits (p95, time to empty) fed from the event batches."""

from __future__ import annotations

import time

import pytest

from lazycelery.broker.model import QueueSnapshot, QueueStats
from tests.test_tui_app import harness
from tests.tui_harness import screen_lines


def _events(queue: str, n: int, wait: float, now: float) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for i in range(n):
        uuid = f"{queue}-{i}"
        sent = now - 60 + i
        events.append({"type": "task-sent", "uuid": uuid, "name": "t.add", "queue": queue,
                       "timestamp": sent, "hostname": "client", "local_received": sent})
        events.append({"type": "task-received", "uuid": uuid, "name": "t.add",
                        "timestamp": sent + wait * (i + 1) / n, "hostname": "w1@h",
                        "local_received": sent + wait})
    return events


def test_queues_pane_shows_max_priority_dead_letters_and_waits() -> None:
    with harness(columns=250) as h:
        h.feed(_events("work", 20, 2.0, time.time()))
        h.monitor.snapshot = QueueSnapshot(taken_at=time.time(), source="fake", queues=(
            QueueStats(name="prio", ready=3, consumers=0, max_priority=10),
            QueueStats(name="work", ready=5, consumers=1, dead_letter="work.dlq",
                       dead_letter_ready=4),
            QueueStats(name="work.dlq", ready=4, consumers=0, dead_letter_of="work"),
        ))
        lines = screen_lines(h.d)
        header = next(line for line in lines if "PRIORITIES" in line)
        assert "DEAD LETTERS" in header and "WAIT p95" in header and "EMPTY IN" in header
        [prio] = [line for line in lines if "│prio " in line]
        [work] = [line for line in lines if "│work " in line]
        [dlq] = [line for line in lines if "│work.dlq" in line]
        assert "max 10" in prio
        assert "work.dlq (4)" in work and "DLQ of work" in dlq
        # 20 waits of 0.1 .. 2.0 s: nearest-rank p95 is the 19th, 1.90 s
        assert "1.90s" in work
        stats = h.d.screen.queue_wait_stats["work"]
        assert stats.samples == 20 and stats.wait_p95_s == pytest.approx(1.9)
        # rates over at least 10 s: a backlog taken in at start-up is not 200 tasks/s
        assert stats.arrival_rate == stats.drain_rate == pytest.approx(2.0)
