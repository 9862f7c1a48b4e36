"""The PostgreSQL store (psycopg 3, the ``lazycelery[postgres]`` extra, imported only here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Final

from lazycelery.core.model import TaskRecord
from lazycelery.store.backend import Store
from lazycelery.store.errors import StoreError
from lazycelery.store.rows import TASK_COLUMNS, record_from_row, record_to_row
from lazycelery.store.schema import POSTGRESQL, Dialect
from lazycelery.store.url import StoreURL

__all__ = ["PostgresStore"]

CONNECT_TIMEOUT: Final = 5
#: advisory lock key held while a process migrates the schema ("lazycelery" in ASCII, 8 bytes)
SCHEMA_LOCK: Final = 0x6C617A7963656C65


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError("a PostgreSQL store needs psycopg: pip install 'lazycelery[postgres]'"
                         ) from None
    return psycopg


class PostgresStore(Store):
    dialect: ClassVar[Dialect] = POSTGRESQL

    def __init__(self, url: StoreURL) -> None:
        super().__init__(url)
        self._pg = _psycopg()
        self._conn: Any = None
        self._staging = False  # the session's temporary table for upserts exists
        self._connect()

    def _connect(self) -> None:
        self._staging = False
        try:
            self._conn = self._pg.connect(self.url.url, connect_timeout=CONNECT_TIMEOUT,
                                          application_name="lazycelery", autocommit=True)
        except self._pg.Error as exc:
            raise StoreError(self.describe_error(exc)) from None

    def _connection(self) -> Any:
        return self._conn

    def _placeholder_sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # autocommit connection: a query outside this block is its own transaction
        with self._conn.transaction():
            yield

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def check_writable(self) -> None:
        """A role that may only read (a dashboard's) is refused here, at start, rather than
        at its first write: take the lock an INSERT takes, then roll back."""
        try:
            with self._conn.transaction(force_rollback=True):
                self._conn.execute("SET LOCAL lock_timeout = '5s'")
                self._conn.execute("LOCK TABLE tasks, transitions, worker_samples, "
                                   "queue_samples, gaps, recorders IN ROW EXCLUSIVE MODE")
        except self._pg.Error as exc:
            raise StoreError(self.describe_error(exc)) from None

    def has_table(self, name: str) -> bool:
        return self.query("SELECT to_regclass(?)", (name,))[0][0] is not None

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        # COPY: several times faster than INSERTs, even pipelined
        if rows:
            with self._conn.cursor() as cur, cur.copy(
                    f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def upsert_tasks(self, rows: Sequence[Sequence[Any]]) -> None:
        """COPY into a temporary table (emptied at commit), then one INSERT ... SELECT ...
        ON CONFLICT: an upsert at COPY speed."""
        if not rows:
            return
        self._stage(rows)
        self.execute(self._upsert_sql("lazycelery_tasks_in"))

    def _stage(self, rows: Sequence[Sequence[Any]]) -> None:
        """COPY task rows into the session's temporary table (emptied at commit)."""
        if not self._staging:
            self.execute(f"CREATE TEMP TABLE IF NOT EXISTS lazycelery_tasks_in "
                         f"ON COMMIT DELETE ROWS AS SELECT {', '.join(TASK_COLUMNS)} "
                         "FROM tasks WITH NO DATA")
            self._staging = True
        self.insert_rows("lazycelery_tasks_in", ", ".join(TASK_COLUMNS), rows)

    def fetch_tasks(self, uuids: Sequence[str]) -> dict[str, tuple[TaskRecord, bool]]:
        out: dict[str, tuple[TaskRecord, bool]] = {}
        if uuids:
            rows = self.query(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks "
                              "WHERE uuid = ANY(?)", (list(uuids),))
            for row in rows:
                rec, backfilled = record_from_row(row)
                out[rec.uuid] = (rec, backfilled)
        return out

    def _lock_schema(self) -> None:
        # Two recorders starting at once on a new database would both create the tables
        # (one fails: duplicate pg_type key): the second waits here, then finds them made.
        self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))

    def _write_tasks(self, tasks: Sequence[TaskRecord], backfilled: set[str]) -> int:
        """Several recorders may write the same task at once (``record --shard`` /
        ``--shared-queue``): no merge may start from a row another transaction is changing.

        1. every record is inserted as it is, in id order, ``ON CONFLICT DO NOTHING``: a new
           task is then written once (the common case), and an id another transaction is
           inserting waits for it to commit;
        2. the ids that were there already are read ``FOR UPDATE`` (in id order), merged and
           written back: the row is held from the read to the commit, so no update is lost.

        Step 2 only locks rows committed before, and both steps go in id order, so two
        writers never wait on each other in a circle."""
        latest: dict[str, TaskRecord] = {}
        for rec in tasks:  # the last snapshot of a task is the most complete
            latest[rec.uuid] = rec
        if not latest:
            return 0
        ordered = sorted(latest)
        self._stage([record_to_row(latest[u], u in backfilled) for u in ordered])
        cols = ", ".join(TASK_COLUMNS)
        inserted = {row[0] for row in self.query(
            f"INSERT INTO tasks ({cols}) SELECT {cols} FROM lazycelery_tasks_in ORDER BY uuid "
            "ON CONFLICT (uuid) DO NOTHING RETURNING uuid")}
        self.execute("TRUNCATE lazycelery_tasks_in")
        rest = [u for u in ordered if u not in inserted]
        if rest:
            stored: dict[str, tuple[TaskRecord, bool]] = {}
            for row in self.query(f"SELECT {cols} FROM tasks WHERE uuid = ANY(?) "
                                  "ORDER BY uuid FOR UPDATE", (rest,)):
                rec, was_backfilled = record_from_row(row)
                stored[rec.uuid] = (rec, was_backfilled)
            self.upsert_tasks(self._merged_rows({u: latest[u] for u in rest}, stored,
                                                backfilled))
        return len(inserted)

    def _stream(self, sql: str, params: Sequence[Any], chunk: int) -> Iterator[Sequence[Any]]:
        # A server-side cursor: a long history is read in chunks, not loaded whole.
        with self._conn.transaction(), self._conn.cursor(name="lazycelery_history") as cur:
            cur.itersize = chunk
            cur.execute(self._sql(sql), params)
            yield from cur

    def describe_error(self, exc: BaseException) -> str:
        from lazycelery.urls import error_line

        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        # libpq: 'connection failed: connection to server at "h" (1.2.3.4), port 5432 failed:
        # FATAL:  password authentication failed for user "x"': the part after the last
        # "failed:" says why.
        text = lines[0] if lines else type(exc).__name__
        if "failed:" in text:
            text = text.rsplit("failed:", 1)[1].strip() or text
        text = text.removeprefix("FATAL:").strip()
        return f"store {self.masked}: {error_line(Exception(text), limit=300)}"

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, self._pg.OperationalError)

    def reconnect(self) -> None:
        self._staging = False  # a rolled-back transaction may have created the temp table
        if self._conn is not None and not self._conn.closed:
            with contextlib.suppress(self._pg.Error):
                self._conn.rollback()
            if not self._conn.broken:
                return
        with contextlib.suppress(self._pg.Error):
            if self._conn is not None:
                self._conn.close()
        self._connect()

    def interrupt(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.cancel_safe(timeout=2.0)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()

    def size_bytes(self) -> int | None:
        tables = ("tasks", "transitions", "worker_samples", "queue_samples", "gaps", "recorders")
        total = 0
        for table in tables:
            rows = self.query("SELECT pg_total_relation_size(?)", (table,))
            total += int(rows[0][0] or 0)
        return total
