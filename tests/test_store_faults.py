"""Faults of a real store while recording and reading: a PostgreSQL that goes away and comes
back, a full disk, a file locked by another process, a damaged file, an unknown role or
database. Each is one clear line (store named, password masked), a recorded gap for what was
not written, and nothing already committed lost."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, closed_port, wait_for
from lazycelery.core.index import TaskIndex
from lazycelery.store import Store, StoreError, open_store
from lazycelery.store.query import TaskFilter, page
from lazycelery.store.writer import StoreWriter
from tests.replay import load_events


def _feed(writer: StoreWriter, events: list[dict[str, Any]], index: TaskIndex,
          batch: int = 200) -> None:
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        writer.on_batch(chunk, index.apply_batch(chunk))


def _feed_all(writer: StoreWriter, events: list[dict[str, Any]], index: TaskIndex,
              lost: int = 0) -> None:
    """Feed batch by batch, each written before the next: none dropped by a small queue."""
    for start in range(0, len(events), 200):
        _feed(writer, events[start:start + 200], index)
        wait_for(lambda: writer.stats().pending == 0, timeout=30, what="the batch written")
    assert writer.stats().lost == lost


def _one_line(text: str) -> str:
    assert "\n" not in text and "Traceback" not in text
    return text


# --------------------------------------------------------------------------- PostgreSQL


@contextlib.contextmanager
def _admin(postgres_url: str) -> Iterator[Any]:
    import psycopg

    prefix = postgres_url.rsplit("/", 1)[0]
    with psycopg.connect(f"{prefix}/postgres", autocommit=True, connect_timeout=5) as conn:
        yield conn


def _cut_off(admin: Any, database: str) -> int:
    """No new connections to ``database``, and lazycelery's current ones terminated."""
    admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
    rows = admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = %s AND application_name = 'lazycelery'",
                         (database,)).fetchall()
    return len(rows)


def test_a_postgresql_lost_while_recording_is_a_recorded_gap_then_reconnected(
        postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    store = open_store(postgres_url)
    notices: list[str] = []
    writer = StoreWriter(store, max_pending_events=600, on_notice=notices.append)
    writer.start()
    events = load_events("amqp")
    index = TaskIndex(max_tasks=1_000_000)
    before, during, after = events[:4000], events[4000:8000], events[8000:]
    try:
        _feed_all(writer, before, index)
        committed = {rec.uuid for rec in index.iter_newest()}
        with _admin(postgres_url) as admin:
            assert _cut_off(admin, database) == 1
            try:
                _feed(writer, during, index)  # returns at once: the live path never waits
                wait_for(lambda: any("retrying" in n for n in notices), timeout=30,
                         what="the writer to notice")
                assert writer.stats().lost > 0
            finally:
                admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        wait_for(lambda: any("writing again" in n for n in notices), timeout=30,
                 what="the writer to reconnect")
        _feed_all(writer, after, index, lost=writer.stats().lost)  # the first batch closes
        assert writer.stop(timeout=60)                              # the loss: a gap
    finally:
        store.close()
    stats = writer.stats()
    assert stats.lost > 0 and stats.written + stats.lost == len(events)
    reported = [n for n in notices if "events not recorded" in n]
    assert len(reported) == 1, "\n".join(notices)
    for line in notices:
        _one_line(line)
    check = open_store(postgres_url, writer=False)
    (gap,) = check.gaps()
    assert gap.source == "store" and gap.lost_events == stats.lost
    assert gap.cause.startswith("store unavailable (")
    assert committed <= set(check.fetch_tasks(sorted(committed)))  # nothing committed lost
    check.close()


def test_a_reader_reconnects_after_its_connection_is_terminated(postgres_url: str) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    open_store(postgres_url).close()
    reader = open_store(postgres_url, writer=False)
    assert page(reader).tasks == []
    with _admin(postgres_url) as admin:
        assert _cut_off(admin, database) == 1
        try:
            with pytest.raises(StoreError) as info:
                page(reader)
            assert _one_line(str(info.value)).startswith(f"store {postgres_url}: ")
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    assert page(reader).tasks == []  # reconnected on the next read
    reader.close()


@pytest.mark.parametrize("what", ["role", "database"])
def test_an_unknown_role_or_database_is_one_line_without_the_password(
        postgres_url: str, what: str) -> None:
    """The local server trusts 127.0.0.1 (any password passes), so an unknown role or
    database is what proves the server's refusal reaches the user in one line."""
    prefix, database = postgres_url.rsplit("/", 1)
    host = prefix.rsplit("@", 1)[-1].removeprefix("postgresql://")
    name = f"lc_nobody_{uuid.uuid4().hex[:6]}"
    role, db = (name, database) if what == "role" else ("postgres", name)
    url = f"postgresql://{role}:pw-s3cret@{host}/{db}"
    with pytest.raises(StoreError) as info:
        open_store(url)
    text = _one_line(str(info.value))
    assert "pw-s3cret" not in text and f"{role}:********@" in text
    assert text.endswith(f'{what} "{name}" does not exist')


def test_tail_since_with_an_unreachable_postgresql_follows_live_with_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAZYCELERY_STORE"}
    # ports held closed: a free_port() is released at once, and a server that a concurrent
    # test starts could take it before tail connects ("refused" would then not be said)
    with closed_port() as store_port, closed_port() as broker_port:
        url = f"postgresql://lc:pw-s3cret@127.0.0.1:{store_port}/celerymon"
        done = subprocess.run(
            [sys.executable, "-m", "lazycelery", "tail", "--broker",
             f"redis://127.0.0.1:{broker_port}/0", "--since", "1h", "--store", url,
             "--timeout", "1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
            check=False)
    # the broker's port is closed too: --timeout went by without a connection
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == \
        "lazycelery: --timeout: 1 s went by without a connection"
    first = done.stderr.splitlines()[0]
    assert first.startswith("lazycelery: history off: store postgresql://lc:********@127.0.0.1:")
    assert first.endswith("; following live events only") and "refused" in first
    assert "pw-s3cret" not in done.stderr and "Traceback" not in done.stderr


# --------------------------------------------------------------------------- SQLite


@contextlib.contextmanager
def _small_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A 16 MB tmpfs (as root), else a plain directory: the store there fills its disk."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)],
                              capture_output=True, check=False)
        if done.returncode == 0:
            try:
                yield where, "tmpfs"
            finally:
                subprocess.run(["umount", "-l", str(where)], check=False)
            return
    yield where, "max_page_count"


def test_a_full_disk_is_a_recorded_gap_and_writing_resumes_when_space_is_back(
        tmp_path: Path) -> None:
    with _small_disk(tmp_path) as (disk, how):
        path = disk / "h.sqlite3"
        store = open_store(f"sqlite:///{path}")
        notices: list[str] = []
        writer = StoreWriter(store, max_pending_events=600, on_notice=notices.append)
        writer.start()
        events = load_events("redis")
        index = TaskIndex(max_tasks=1_000_000)
        _feed_all(writer, events[:3000], index)
        committed = {rec.uuid for rec in index.iter_newest()}
        filler = disk / "filler"
        if how == "tmpfs":  # an empty WAL, and every free block taken
            with contextlib.closing(sqlite3.connect(str(path))) as other:
                other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
            with filler.open("wb") as fh, contextlib.suppress(OSError):
                fh.write(b"\0" * free)
        else:
            pages = store.query("PRAGMA page_count")[0][0]
            store.execute(f"PRAGMA max_page_count = {pages + 2}")
        try:
            rest = iter(range(3000, 9000, 200))

            def full() -> bool:
                start = next(rest, None)
                if start is not None:
                    _feed(writer, events[start:start + 200], index)
                return any("disk full" in n for n in notices) and writer.stats().lost > 0

            wait_for(full, timeout=30, what=f"the writer to see the full disk: {notices}")
        finally:
            if how == "tmpfs":
                filler.unlink()
            else:
                store.execute("PRAGMA max_page_count = 1073741823")
        wait_for(lambda: any("writing again" in n for n in notices), timeout=30,
                 what="writing again")
        wait_for(lambda: writer.stats().pending == 0, timeout=30, what="the queue written")
        _feed_all(writer, events[9000:], index, lost=writer.stats().lost)
        assert writer.stop(timeout=60)
        store.close()
        stats = writer.stats()
        assert stats.lost > 0 and stats.written + stats.lost == stats.submitted
        for line in notices:
            _one_line(line)
        assert f"store sqlite:///{path}: disk full; retrying" in "\n".join(notices)
        check = open_store(f"sqlite:///{path}", writer=False)
        assert check.query("PRAGMA integrity_check") == [("ok",)]
        (gap,) = check.gaps()
        assert (gap.source, gap.lost_events, gap.cause) == (
            "store", stats.lost, "store unavailable (disk full)")
        assert committed <= set(check.fetch_tasks(sorted(committed)))
        check.close()


def test_a_store_locked_by_another_process_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    open_store(f"sqlite:///{path}").close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(StoreError) as info:
            open_store(f"sqlite:///{path}")
        assert _one_line(str(info.value)) == (
            f"store sqlite:///{path}: locked by another process (another recorder, or a long "
            "transaction)")
    finally:
        holder.kill()
        holder.wait(10)
    open_store(f"sqlite:///{path}").close()  # free again: nothing was damaged


def _damage_table(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` with garbage (the rest of the file intact)."""
    conn = sqlite3.connect(str(path))
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with path.open("r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(bytes(range(256)) * (size // 256))


def _filled(path: Path) -> tuple[Store, int]:
    store = open_store(f"sqlite:///{path}")
    notices: list[str] = []
    writer = StoreWriter(store, on_notice=notices.append)
    writer.start()
    _feed(writer, load_events("redis")[:2000], TaskIndex(max_tasks=100_000))
    assert writer.stop(timeout=30)
    return store, store.count("transitions")


def test_a_damaged_file_is_one_line_for_readers_and_a_recorded_gap_for_the_writer(
        tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store, transitions = _filled(path)
    store.close()
    _damage_table(path, "tasks")
    reader = open_store(f"sqlite:///{path}", writer=False)
    with pytest.raises(StoreError) as info:
        page(reader, TaskFilter(states=("SUCCESS",)))
    assert _one_line(str(info.value)) == (
        f"store sqlite:///{path}: corrupt (database disk image is malformed)")
    assert reader.count("transitions") == transitions  # the rest is still there
    reader.close()
    store = open_store(f"sqlite:///{path}")
    notices: list[str] = []
    writer = StoreWriter(store, on_notice=notices.append)
    writer.start()
    _feed(writer, load_events("redis")[2000:2400], TaskIndex(max_tasks=100_000))
    assert writer.stop(timeout=30)
    store.close()
    assert writer.stats().lost == 400
    assert notices and all("corrupt (database disk image is malformed)" in _one_line(n)
                           for n in notices)
    check = open_store(f"sqlite:///{path}", writer=False)
    # one gap when the writer took both batches in one write, two when it took the first
    # alone (timing): every lost event is in a gap either way
    gaps = check.gaps()
    assert 1 <= len(gaps) <= 2 and sum(g.lost_events for g in gaps) == 400
    assert all(g.source == "store" and "corrupt" in g.cause for g in gaps)
    check.close()


def test_a_gap_merged_into_a_write_that_fails_too_is_kept(tmp_path: Path) -> None:
    """The race behind a flaky test: the first batch's write fails and its gap is queued in
    front of the next batch, which the writer merges into one write; when that write fails
    too, both gaps must be recorded (the first one was dropped: 400 events lost, 200 in gaps)."""
    import threading

    path = tmp_path / "h.sqlite3"
    store, _ = _filled(path)
    store.close()
    _damage_table(path, "tasks")
    store = open_store(f"sqlite:///{path}")
    real_write = store.write
    writes: list[tuple[int, int]] = []
    second_queued = threading.Event()

    def write(batch: Any, **kwargs: Any) -> Any:
        writes.append((batch.events, len(batch.gaps)))
        if len(writes) == 1:
            assert second_queued.wait(30)  # fails only once the next batch is queued
        return real_write(batch, **kwargs)

    store.write = write  # type: ignore[method-assign]
    writer = StoreWriter(store, on_notice=lambda _: None)
    writer.start()
    index = TaskIndex(max_tasks=100_000)
    events = load_events("redis")[2000:2400]
    writer.on_batch(events[:200], index.apply_batch(events[:200]))
    wait_for(lambda: writes, timeout=30, what="the first write")
    writer.on_batch(events[200:], index.apply_batch(events[200:]))
    second_queued.set()
    assert writer.stop(timeout=30)
    store.close()
    assert writes[:2] == [(200, 0), (200, 1)]  # the first gap went with the second batch
    assert writer.stats().lost == 400
    check = open_store(f"sqlite:///{path}", writer=False)
    gaps = check.gaps()
    assert sorted(g.lost_events for g in gaps) == [200, 200]
    assert all("corrupt" in g.cause for g in gaps)
    check.close()
