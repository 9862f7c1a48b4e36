"""The store's writer thread on real databases: everything queued is written, a store that
falls behind or goes away costs a counted, recorded gap (never a stall of the live path)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from conftest import wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.store import open_store
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events


def _feed(writer: StoreWriter, events: list[dict[str, object]], batch: int = 200) -> TaskIndex:
    index = TaskIndex(max_tasks=1_000_000)
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        writer.on_batch(chunk, index.apply_batch(chunk))
    return index


def test_everything_submitted_is_written_and_stop_flushes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    run, _ = store.begin_recorder("h", 1, "redis://x")
    writer = StoreWriter(store, recorder=run)
    writer.start()
    events = load_events("redis")
    index = _feed(writer, events)
    assert writer.stop(timeout=30)
    stats = writer.stats()
    assert (stats.submitted, stats.written, stats.lost, stats.pending) == (
        len(events), len(events), 0, 0)
    assert store.count("tasks") == len(index)
    assert store.gaps() == []
    store.close()


def test_a_locked_store_costs_a_recorded_gap_not_a_stall(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = open_store(f"sqlite:///{path}")
    notices: list[str] = []
    writer = StoreWriter(store, max_pending_events=600, on_notice=notices.append)
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    events = load_events("redis")
    writer.start()
    try:
        first = events[:3000]
        _feed(writer, first)
        during = writer.stats()
        # Every submit returned while the writer could not write a single row.
        assert during.written == 0 and during.submitted == len(first)
        assert during.lost > 0 and during.pending <= 600
        assert any("store behind" in n for n in notices)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_for(lambda: writer.stats().pending == 0, timeout=30, what="the writer to catch up")
    rest = events[3000:3100]
    _feed(writer, rest)  # the first batch that fits closes the loss: a gap is recorded
    assert writer.stop(timeout=30)
    stats = writer.stats()
    assert stats.written + stats.lost == len(first) + len(rest)
    assert stats.lost == during.lost
    (gap,) = store.gaps()
    assert gap.source == "store" and gap.lost_events == during.lost
    assert "locked" in gap.cause or "fell behind" in gap.cause
    assert gap.start <= gap.end
    assert any("events not recorded" in n for n in notices)
    store.close()


def test_a_lost_postgresql_connection_is_reconnected_and_nothing_is_lost(
        postgres_url: str) -> None:
    import psycopg

    store = open_store(postgres_url)
    notices: list[str] = []
    writer = StoreWriter(store, on_notice=notices.append)
    writer.start()
    events = load_events("amqp")
    half = len(events) // 2
    _feed(writer, events[:half])
    wait_for(lambda: writer.stats().written == half, timeout=30, what="the first half")
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND application_name = 'lazycelery'", (database,)).fetchall()
    assert killed == [(True,)]
    _feed(writer, events[half:])
    assert writer.stop(timeout=60)
    stats = writer.stats()
    assert (stats.written, stats.lost) == (len(events), 0)
    assert any("writing again" in n for n in notices), notices
    check = open_store(postgres_url)
    index = TaskIndex(max_tasks=1_000_000)
    index.apply_batch(events)
    assert check.count("tasks") == len(index)
    check.close()
    store.close()


def test_stop_gives_up_on_a_store_that_stays_locked(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = open_store(f"sqlite:///{path}")
    notices: list[str] = []
    writer = StoreWriter(store, on_notice=notices.append)
    blocker = sqlite3.connect(str(path), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        writer.start()
        _feed(writer, load_events("redis")[:500])
        done = threading.Event()
        result: list[bool] = []
        threading.Thread(target=lambda: (result.append(writer.stop(timeout=1.0)), done.set()),
                         daemon=True).start()
        assert done.wait(30)
        assert result == [False]
        assert writer.finished  # the stuck statement was interrupted: the store may be closed
        assert writer.stats().lost == 500
        assert any("not written at exit" in n for n in notices)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        store.close()


@pytest.mark.parametrize("kind", ["online", "heartbeat"])
def test_worker_samples_are_kept_once_a_minute(tmp_path: Path, kind: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    writer = StoreWriter(store)
    writer.start()
    beats = [{"type": f"worker-{kind}", "hostname": "w1@h", "timestamp": 1000.0 + i * 2,
              "active": i, "processed": i * 10, "loadavg": [0.5, 0.4, 0.3], "freq": 2.0}
             for i in range(61)]  # two minutes of heartbeats, one every 2 s
    _feed(writer, beats, batch=7)
    assert writer.stop(timeout=10)
    samples = store.worker_samples(0, 2000)
    if kind == "heartbeat":
        assert [s.time for s in samples] == [1000.0, 1060.0, 1120.0]
        assert samples[1].active == 30 and samples[1].load1 == 0.5
    else:
        assert len(samples) == 61  # online/offline are kept when they happen
    store.close()


def test_the_writer_prunes_old_history_in_the_background(tmp_path: Path) -> None:
    import time

    from lazycelery.store import Retention

    store = open_store(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    now = time.time()
    old = [{"type": "task-succeeded", "uuid": f"old-{i}", "timestamp": now - 40 * 86400,
            "hostname": "w"} for i in range(5000)]
    fresh = [{"type": "task-succeeded", "uuid": f"new-{i}", "timestamp": now,
              "hostname": "w"} for i in range(10)]
    writer = StoreWriter(store, retention=Retention(max_age=30 * 86400))
    _feed(writer, old + fresh)  # queued before start: written, then pruned in steps
    writer.start()
    wait_for(lambda: writer.stats().pruned >= 10_000, timeout=60, what="pruning")
    assert writer.stop(timeout=30)
    assert store.count("tasks") == 10 and store.count("transitions") == 10
    store.close()
