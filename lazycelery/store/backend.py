"""The Store: one connection to a history database (SQLite or PostgreSQL) and the SQL that
writes batches, answers history queries and prunes old rows. Dialects subclass it."""

from __future__ import annotations

import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from lazycelery.core.model import TaskRecord
from lazycelery.store.batch import Transition, WorkerSample, WriteBatch
from lazycelery.store.errors import StoreError
from lazycelery.store.rows import (
    TASK_COLUMNS,
    merge_records,
    record_from_row,
    record_to_row,
)
from lazycelery.store.schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE, Dialect
from lazycelery.store.url import StoreURL

__all__ = ["HistoryRow", "PreviousRun", "Retention", "Store", "StoredGap", "WriteResult"]

log = logging.getLogger(__name__)

#: uuids per ``IN (...)`` lookup
LOOKUP_CHUNK: Final = 500
_TASK_COLS: Final = ", ".join(TASK_COLUMNS)
_TRANSITION_COLS: Final = "uuid, type, time, hostname, retries, backfilled"
_WORKER_COLS: Final = ("hostname, time, kind, active, processed, load1, load5, load15, pid, "
                       "freq, sw_ver")
_QUEUE_COLS: Final = "time, queue, priority, ready, reserved, consumers"
_GAP_COLS: Final = "gap_start, gap_end, cause, source, lost_events, recorded_at"


@dataclass(frozen=True)
class WriteResult:
    new_tasks: int
    events: int


@dataclass(frozen=True)
class PreviousRun:
    """The latest recorder run before this one: where history stops."""

    host: str
    pid: int
    alive: float
    stopped: float | None


@dataclass(frozen=True)
class Retention:
    """How much history to keep: rows older than ``max_age`` seconds, and tasks beyond
    ``max_tasks`` (least recently active first). None = no limit."""

    max_age: float | None = None
    max_tasks: int | None = None

    @property
    def active(self) -> bool:
        return self.max_age is not None or self.max_tasks is not None


@dataclass(frozen=True)
class StoredGap:
    start: float
    end: float
    cause: str
    source: str
    lost_events: int | None
    backfilled_at: float | None
    backfilled_tasks: int | None


@dataclass(frozen=True)
class HistoryRow:
    """A stored task event with its task's record (None if the task row was pruned)."""

    transition: Transition
    record: TaskRecord | None
    backfilled: bool


class Store(ABC):
    """A connection to one store. Not thread-safe: the writer thread owns a writing store; a
    reader (``tail --since``, the dashboard) opens its own."""

    dialect: ClassVar[Dialect]

    def __init__(self, url: StoreURL) -> None:
        self.url = url
        self.masked = url.masked
        self._sql_cache: dict[str, str] = {}

    # ------------------------------------------------------------------ per dialect

    @abstractmethod
    def _connection(self) -> Any:
        """The DB-API connection."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed on exit, rolled back on an exception."""

    @abstractmethod
    def describe_error(self, exc: BaseException) -> str:
        """One line saying what went wrong, naming the store (password masked)."""

    @abstractmethod
    def is_transient(self, exc: BaseException) -> bool:
        """True if retrying later may succeed (connection lost, locked, disk full)."""

    @abstractmethod
    def reconnect(self) -> None:
        """Start over after a transient error (roll back; reconnect if the link is gone)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def interrupt(self) -> None:
        """Abort the statement another thread is running (safe to call from any thread)."""

    @abstractmethod
    def size_bytes(self) -> int | None:
        """Bytes on disk (None if unknown)."""

    def _placeholder_sql(self, sql: str) -> str:
        return sql

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    # ------------------------------------------------------------------ SQL helpers

    def _sql(self, sql: str) -> str:
        cached = self._sql_cache.get(sql)
        if cached is None:
            cached = self._sql_cache[sql] = self._placeholder_sql(sql)
        return cached

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        cur = self._connection().cursor()
        cur.execute(self._sql(sql), params)
        return cur

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cur = self._connection().cursor()
            cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self.execute(sql, params).fetchall())

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows (``columns`` is a comma-separated list) inside the caller's transaction."""
        marks = ", ".join("?" for _ in columns.split(","))
        self.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    def upsert_tasks(self, rows: Sequence[Sequence[Any]]) -> None:
        """Insert or replace task rows (already merged with what was stored) by uuid."""
        self.executemany(self._upsert_sql(), rows)

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        rows = self.query("SELECT MAX(version) FROM lazycelery_schema")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def migrate(self, *, reader: bool = False) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; returns the version found. A store written
        by a newer lazycelery raises StoreError (nothing is changed). A ``reader`` that may not
        change the schema (a SELECT-only role, a read-only file) reads an older one as it is."""
        found = self.schema_version() if self.has_table("lazycelery_schema") else 0
        if not reader or not 0 < found < SCHEMA_VERSION:
            return self._migrate(found)
        try:
            return self._migrate(found)
        except Exception:
            log.debug("reading schema %s as it is: cannot migrate", found, exc_info=True)
            self.reconnect()
            return found

    def _migrate(self, found: int) -> int:
        from lazycelery import __version__

        if found == SCHEMA_VERSION:
            return found  # nothing to write: a read-only role can open a current store
        if found == 0:
            with self.transaction():
                self._lock_schema()
                self.execute(VERSION_TABLE)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.masked} was written by a newer lazycelery (schema {found}; this "
                f"version {__version__} knows up to {SCHEMA_VERSION}): upgrade lazycelery")
        for migration in MIGRATIONS:
            if migration.version <= found:
                continue
            with self.transaction():
                self._lock_schema()
                # re-read inside the transaction: another process may have migrated meanwhile
                if self.schema_version() >= migration.version:
                    continue
                for statement in migration.statements(self.dialect):
                    self.execute(statement)
                self.execute("INSERT INTO lazycelery_schema (version, description, applied, "
                             "written_by) VALUES (?, ?, ?, ?)",
                             (migration.version, migration.description, time.time(),
                              __version__))
        return found

    def _lock_schema(self) -> None:
        """Inside a migration's transaction: wait for any other process migrating the same
        store (several recorders started at once). SQLite's ``BEGIN IMMEDIATE`` already
        serializes them; ``PostgresStore`` takes an advisory lock."""
        return None

    # ------------------------------------------------------------------ writing

    def write(self, batch: WriteBatch, *, recorder: int | None = None,
              now: float | None = None) -> WriteResult:
        """Write one batch in one transaction. Task records are merged with what is stored
        (a restarted recorder knows only the events it saw itself)."""
        now = time.time() if now is None else now
        with self.transaction():
            new = self._write_tasks(batch.tasks, batch.backfilled)
            self.insert_rows("transitions", _TRANSITION_COLS, batch.transitions)
            self.insert_rows("worker_samples", _WORKER_COLS, batch.workers)
            self.insert_rows("queue_samples", _QUEUE_COLS, batch.queues)
            self.insert_rows("gaps", _GAP_COLS, [(*g, now) for g in batch.gaps])
            for start, end, count in batch.filled:
                self.execute("UPDATE gaps SET backfilled_at = ?, backfilled_tasks = ? "
                             "WHERE gap_start = ? AND gap_end = ?", (now, count, start, end))
            if recorder is not None:
                self.execute("UPDATE recorders SET alive = ? WHERE id = ?", (now, recorder))
        return WriteResult(new_tasks=new, events=batch.events)

    def _write_tasks(self, tasks: Sequence[TaskRecord], backfilled: set[str]) -> int:
        latest: dict[str, TaskRecord] = {}
        for rec in tasks:  # the last snapshot of a task is the most complete
            latest[rec.uuid] = rec
        if not latest:
            return 0
        stored = self._fetch_for_merge(list(latest))
        self.upsert_tasks(self._merged_rows(latest, stored, backfilled))
        return len(latest) - len(stored)

    @staticmethod
    def _merged_rows(latest: dict[str, TaskRecord], stored: dict[str, tuple[TaskRecord, bool]],
                     backfilled: set[str]) -> list[tuple[Any, ...]]:
        """The rows to write: each record merged with its stored one, if any."""
        rows = []
        for uuid, rec in latest.items():
            was = stored.get(uuid)
            is_backfill = uuid in backfilled
            if was is not None:
                old, old_backfilled = was
                rec = merge_records(old, rec)
                is_backfill = is_backfill and old_backfilled
            rows.append(record_to_row(rec, is_backfill))
        return rows

    def _fetch_for_merge(self, uuids: list[str]) -> dict[str, tuple[TaskRecord, bool]]:
        """The stored records the batch merges with, inside the write transaction. Nothing
        may change them before it commits, or a concurrent writer's merge would be lost: SQLite
        has one writer at a time (``BEGIN IMMEDIATE``); ``PostgresStore._write_tasks`` locks
        the rows."""
        return self.fetch_tasks(uuids)

    def _upsert_sql(self, source: str | None = None) -> str:
        """``INSERT ... ON CONFLICT (uuid) DO UPDATE``, from VALUES or from table ``source``."""
        marks = ", ".join("?" for _ in TASK_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in TASK_COLUMNS if c != "uuid")
        values = f"VALUES ({marks})" if source is None else f"SELECT {_TASK_COLS} FROM {source}"
        return (f"INSERT INTO tasks ({_TASK_COLS}) {values} "
                f"ON CONFLICT (uuid) DO UPDATE SET {updates}")

    # ------------------------------------------------------------------ recorder runs

    def begin_recorder(self, host: str, pid: int, broker: str,
                       now: float | None = None, *, same_broker: bool = False,
                       running: Callable[[PreviousRun], bool] | None = None,
                       ) -> tuple[int, PreviousRun | None]:
        """Register this recorder run; returns its id and the previous run (if any).

        Several recorders sharing a store (``record --shard`` / ``--shared-queue``) look for
        the previous run of their own kind only (``same_broker``: the same ``broker`` text,
        which names the shard or queue), and skip the runs ``running`` says still run."""
        from lazycelery import __version__

        now = time.time() if now is None else now
        with self.transaction():
            where, params = ("WHERE broker = ? ", (broker,)) if same_broker else ("", ())
            rows = self.query("SELECT host, pid, alive, stopped FROM recorders "
                              f"{where}ORDER BY alive DESC LIMIT {1 if running is None else 100}",
                              params)
            runs = (PreviousRun(str(r[0]), int(r[1]), float(r[2]), r[3]) for r in rows)
            previous = next((r for r in runs if running is None or not running(r)), None)
            cur = self.execute("INSERT INTO recorders (host, pid, broker, version, started, "
                               "alive) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                               (host, pid, broker, __version__, now, now))
            run_id = int(cur.fetchone()[0])
        return run_id, previous

    def end_recorder(self, run_id: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.transaction():
            self.execute("UPDATE recorders SET alive = ?, stopped = ? WHERE id = ?",
                         (now, now, run_id))

    # ------------------------------------------------------------------ reading

    def fetch_tasks(self, uuids: Sequence[str]) -> dict[str, tuple[TaskRecord, bool]]:
        """Stored records by uuid (with their backfilled flag); absent ids are left out."""
        out: dict[str, tuple[TaskRecord, bool]] = {}
        for start in range(0, len(uuids), LOOKUP_CHUNK):
            chunk = uuids[start:start + LOOKUP_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for row in self.query(f"SELECT {_TASK_COLS} FROM tasks WHERE uuid IN ({marks})",
                                  chunk):
                rec, backfilled = record_from_row(row)
                out[rec.uuid] = (rec, backfilled)
        return out

    def finished_ids(self, uuids: Sequence[str]) -> set[str]:
        """The ids among ``uuids`` whose stored task is in a finished state."""
        from lazycelery.core.model import READY_STATES

        return {uuid for uuid, (rec, _) in self.fetch_tasks(uuids).items()
                if rec.state in READY_STATES}

    def get_task(self, uuid: str) -> tuple[TaskRecord, bool] | None:
        return self.fetch_tasks([uuid]).get(uuid)

    def count(self, table: str) -> int:
        if table not in ("tasks", "transitions", "worker_samples", "queue_samples", "gaps",
                         "recorders", "audit"):
            raise ValueError(table)
        return int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])

    def transitions_of(self, uuid: str) -> list[Transition]:
        rows = self.query(f"SELECT {_TRANSITION_COLS} FROM transitions WHERE uuid = ? "
                          "ORDER BY time, id", (uuid,))
        return [_transition(r) for r in rows]

    def history(self, since: float, until: float, chunk: int = 2000) -> Iterator[HistoryRow]:
        """Task events with ``since <= time < until``, oldest first, each with its record."""
        cols = ", ".join(f"t.{c}" for c in TASK_COLUMNS)
        sql = (f"SELECT tr.uuid, tr.type, tr.time, tr.hostname, tr.retries, tr.backfilled, "
               f"{cols} FROM transitions tr LEFT JOIN tasks t ON t.uuid = tr.uuid "
               "WHERE tr.time >= ? AND tr.time < ? ORDER BY tr.time, tr.id")
        cache: dict[str, tuple[TaskRecord, bool] | None] = {}
        for row in self._stream(sql, (since, until), chunk):
            transition = _transition(row)
            uuid = transition.uuid
            if uuid not in cache:
                cache[uuid] = record_from_row(row[6:]) if row[6] is not None else None
                if len(cache) > 100_000:
                    cache.clear()
            found = cache[uuid]
            yield HistoryRow(transition, found[0] if found else None,
                             bool(found[1]) if found else False)

    def _stream(self, sql: str, params: Sequence[Any], chunk: int) -> Iterator[Sequence[Any]]:
        cur = self.execute(sql, params)
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                return
            yield from rows

    def worker_samples(self, since: float, until: float) -> list[WorkerSample]:
        rows = self.query(f"SELECT {_WORKER_COLS} FROM worker_samples "
                          "WHERE time >= ? AND time < ? ORDER BY time, id", (since, until))
        return [WorkerSample(*r) for r in rows]

    def gaps(self, since: float = 0.0, until: float = float("inf")) -> list[StoredGap]:
        """Gaps overlapping ``[since, until)``, oldest first."""
        until = min(until, 1e18)
        rows = self.query("SELECT gap_start, gap_end, cause, source, lost_events, "
                          "backfilled_at, backfilled_tasks FROM gaps "
                          "WHERE gap_end >= ? AND gap_start < ? ORDER BY gap_start, id",
                          (since, until))
        return [StoredGap(float(r[0]), float(r[1]), str(r[2]), str(r[3]), r[4], r[5], r[6])
                for r in rows]

    # ------------------------------------------------------------------ retention

    def prune(self, retention: Retention, now: float | None = None, limit: int = 2000) -> int:
        """Delete up to ``limit`` rows of each kind that retention no longer keeps, in one short
        transaction; returns how many went (0 = nothing left to prune). Call it again until 0:
        small steps never hold the write lock for long."""
        now = time.time() if now is None else now
        deleted = 0
        with self.transaction():
            if retention.max_age is not None:
                cutoff = now - retention.max_age
                deleted += self._delete_tasks("last_time < ?", (cutoff,), limit)
                for table, column in (("transitions", "time"), ("worker_samples", "time"),
                                      ("queue_samples", "time"), ("gaps", "gap_end"),
                                      ("recorders", "alive")):
                    deleted += self._delete_oldest(table, f"{column} < ?", (cutoff,), limit)
            if retention.max_tasks is not None:
                over = self.count("tasks") - retention.max_tasks
                if over > 0:
                    deleted += self._delete_tasks("1 = 1", (), min(over, limit))
        return deleted

    def _delete_oldest(self, table: str, where: str, params: Sequence[Any], limit: int) -> int:
        cur = self.execute(f"DELETE FROM {table} WHERE id IN "
                           f"(SELECT id FROM {table} WHERE {where} LIMIT {int(limit)})", params)
        return max(0, int(cur.rowcount))

    def _delete_tasks(self, where: str, params: Sequence[Any], limit: int) -> int:
        """The least recently active tasks matching ``where``, with their transitions."""
        uuids = [r[0] for r in self.query(
            f"SELECT uuid FROM tasks WHERE {where} ORDER BY last_time LIMIT {int(limit)}",
            params)]
        if not uuids:
            return 0
        deleted = 0
        for start in range(0, len(uuids), LOOKUP_CHUNK):
            chunk = uuids[start:start + LOOKUP_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            deleted += max(0, int(self.execute(
                f"DELETE FROM transitions WHERE uuid IN ({marks})", chunk).rowcount))
            deleted += max(0, int(self.execute(
                f"DELETE FROM tasks WHERE uuid IN ({marks})", chunk).rowcount))
        return deleted


def _transition(row: Sequence[Any]) -> Transition:
    return Transition(row[0], row[1], row[2], row[3], row[4], bool(row[5]))


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
