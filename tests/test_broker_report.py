"""The --json documents (documented schema) and the plain-text tables."""

from __future__ import annotations

import msgspec

from lazycelery.broker.model import PeekedMessage, QueueSnapshot, QueueStats, Source
from lazycelery.broker.report import (
    format_age,
    format_peek,
    format_snapshot,
    peek_document,
    snapshot_document,
)

SNAPSHOT = QueueSnapshot(
    taken_at=1_700_000_000.25, source="redis 127.0.0.1:6379/0: LLEN", duration_s=0.0123,
    unacked_total=2, notes=("a caveat",),
    queues=(
        QueueStats(name="celery", ready=7, reserved=2, consumers=None,
                   by_priority={0: 4, 3: 0, 6: 1, 9: 2}, net_rate=-1.23456, oldest_age_s=75.04,
                   sources={"ready": Source.REDIS_LLEN, "reserved": Source.REDIS_UNACKED}),
        QueueStats(name="gone", ready=None, missing=True),
    ),
)

QUEUE_KEYS = {"name", "ready", "reserved", "consumers", "by_priority", "in_rate", "out_rate",
              "net_rate", "oldest_age_s", "missing", "sources",
              # schema lazycelery.queues/1, extended (fields added, none changed)
              "max_priority", "dead_letter", "dead_letter_ready", "dead_letter_of"}


def test_snapshot_document_schema() -> None:
    doc = msgspec.json.decode(msgspec.json.encode(snapshot_document(SNAPSHOT, "redis://h/0")))
    assert set(doc) == {"schema", "broker", "source", "taken_at", "duration_ms", "stale", "error",
                        "notes", "unacked_total", "queues"}
    assert doc["schema"] == "lazycelery.queues/1"
    assert doc["taken_at"] == "2023-11-14T22:13:20.250+00:00"
    assert doc["duration_ms"] == 12.3
    assert doc["notes"] == ["a caveat"] and doc["unacked_total"] == 2
    celery, gone = doc["queues"]
    assert set(celery) == QUEUE_KEYS
    assert celery["by_priority"] == {"0": 4, "3": 0, "6": 1, "9": 2}
    assert celery["net_rate"] == -1.235 and celery["oldest_age_s"] == 75.0
    assert celery["sources"] == {"ready": "redis:LLEN", "reserved": "redis:unacked-hash"}
    assert gone["missing"] is True and gone["ready"] is None and gone["by_priority"] is None


def test_table_shows_unknown_as_dash_and_priorities() -> None:
    text = format_snapshot(SNAPSHOT, "redis://h/0")
    lines = text.splitlines()
    assert lines[0].split() == ["QUEUE", "READY", "RESERVED", "CONSUMERS", "IN/S", "OUT/S",
                                "NET/S", "OLDEST", "BY", "PRIORITY"]
    assert lines[1].split() == ["celery", "7", "2", "-", "-", "-", "-1.2", "1m15s", "0:4", "6:1",
                                "9:2"]
    assert lines[2].split() == ["gone", "(missing)", "-", "-", "-", "-", "-", "-", "-"]
    assert "2 queues, 7 ready, 2 unacked in total" in text
    assert "note: a caveat" in text and "source: redis 127.0.0.1:6379/0: LLEN" in text


def test_stale_table_says_so_first() -> None:
    stale = msgspec.structs.replace(SNAPSHOT, stale=True, error="cannot reach redis")
    first = format_snapshot(stale, "redis://h/0").splitlines()[0]
    assert first.startswith("STALE: cannot reach redis (figures from 2023-11-14T22:13:20")


def test_empty_snapshot() -> None:
    empty = QueueSnapshot(taken_at=1.0, queues=(), source="s")
    assert "no queues found" in format_snapshot(empty, "b")


def test_format_age() -> None:
    assert [format_age(v) for v in (None, 0.4, 59.9, 60, 3599, 3600, 86399, 90000)] == [
        "-", "0s", "59s", "1m00s", "59m59s", "1h00m", "23h59m", "1d01h"]


def test_peek_document_and_table() -> None:
    message = PeekedMessage(position=0, task="proj.add", id="abc", argsrepr="(1, 2)",
                            kwargsrepr="{}", args=[1, 2], kwargs={}, priority=3, priority_step=3)
    doc = msgspec.json.decode(msgspec.json.encode(peek_document("q", "redis://h/0", [message])))
    assert doc["schema"] == "lazycelery.peek/1" and doc["queue"] == "q"
    assert doc["messages"][0]["args"] == [1, 2] and doc["messages"][0]["priority_step"] == 3
    rows = format_peek("q", [message]).splitlines()
    assert rows[1].split() == ["0", "3", "proj.add", "abc", "-", "-", "(1,", "2)", "{}"]
    assert format_peek("q", []) == "queue q has no waiting messages"
