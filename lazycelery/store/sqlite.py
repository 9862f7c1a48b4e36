"""The SQLite store (standard library sqlite3): one file, WAL journal, one writer at a time."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar, Final

from lazycelery.store.backend import Store
from lazycelery.store.errors import StoreError
from lazycelery.store.schema import SQLITE, Dialect
from lazycelery.store.url import StoreURL

__all__ = ["SqliteStore"]

#: How long a statement waits for another process's write lock before "locked".
BUSY_TIMEOUT: Final = 5.0
#: The connection's page cache, in KiB.
CACHE_KIB: Final = 65536

_READ_ONLY: Final = "read-only: check the permissions of the file and of its directory"
# sqlite3 error texts -> what to tell the user (first match wins)
_EXPLAIN: Final = (
    ("readonly", _READ_ONLY),
    ("read-only", _READ_ONLY),
    ("locked", "locked by another process (another recorder, or a long transaction)"),
    ("not a database", "not a SQLite database, or corrupt"),
    ("malformed", "corrupt (database disk image is malformed)"),
    ("disk is full", "disk full"),
    ("unable to open", "cannot open the file: does its directory exist and can we write there?"),
    ("disk i/o error", "disk I/O error"),
)


class SqliteStore(Store):
    dialect: ClassVar[Dialect] = SQLITE

    def __init__(self, url: StoreURL, *, create: bool = True) -> None:
        super().__init__(url)
        assert url.path is not None
        self.path = url.path
        if not create and not self.path.exists():
            raise StoreError(f"store {self.masked}: no such file (`lazycelery record` creates it)")
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {self.masked}: cannot create its directory "
                                 f"({exc.strerror or exc})") from None
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(self.describe_error(exc)) from None
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(self.describe_error(exc)) from None

    def _setup(self) -> None:
        conn = self._conn
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        # Reading the schema first turns "not a database" into an error here, not later.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            with contextlib.suppress(sqlite3.OperationalError):  # read-only: keep its mode
                conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: a crash of the process loses nothing committed; a power cut may lose
        # the last transactions, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Task ids are random, so the uuid indexes take inserts all over the file: a page
        # cache of 64 MB (default 2 MB) keeps them in memory; measured in bench/bench_store.py.
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")

    def _connection(self) -> Any:
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # IMMEDIATE: take the write lock at BEGIN, so a busy file waits (busy_timeout) there
        # instead of failing half-way through.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (name,)))

    def check_writable(self) -> None:
        """Take and release the write lock: a read-only or locked file fails here, at start.
        (In WAL mode the lock needs only the -wal and -shm files, so the file itself and its
        directory are checked too: a read-only file would fail at the first checkpoint.)"""
        for target in (self.path, self.path.parent):
            if not os.access(target, os.W_OK):
                raise StoreError(f"store {self.masked}: {_READ_ONLY}")
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise StoreError(self.describe_error(exc)) from None

    def describe_error(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        lowered = text.lower()
        for needle, meaning in _EXPLAIN:
            if needle in lowered:
                return f"store {self.masked}: {meaning}"
        return f"store {self.masked}: {text}"

    def is_transient(self, exc: BaseException) -> bool:
        # locked, disk full, I/O: may clear up; a constraint or type error will not
        return isinstance(exc, sqlite3.OperationalError)

    def reconnect(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def interrupt(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.interrupt()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += (self.path.parent / (self.path.name + suffix)).stat().st_size
        return total
