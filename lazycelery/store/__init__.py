"""History: a store of task records, task transitions, worker and queue samples and gaps, in
SQLite (standard library) or PostgreSQL (psycopg 3, the ``lazycelery[postgres]`` extra).

Layer: above ``lazycelery.core``, below ``panes_api``, ``tail`` and the TUI; never imports
prompt_toolkit or a web framework. Modules: ``url`` (store URLs), ``schema`` (tables,
migrations), ``rows`` (TaskRecord <-> row, merge), ``backend`` (the SQL), ``sqlite`` and
``postgres`` (dialects), ``batch`` (what one write carries), ``capture`` (ingest batches ->
write batches), ``writer`` (the bounded queue and the writer thread), ``retention``.
"""

from __future__ import annotations

from lazycelery.store.backend import HistoryRow, PreviousRun, Retention, Store, StoredGap
from lazycelery.store.batch import GapRow, QueueSample, Transition, WorkerSample, WriteBatch
from lazycelery.store.errors import StoreError
from lazycelery.store.url import (
    STORE_ENV,
    StoreURL,
    default_store_path,
    default_store_url,
    mask_store_url,
    parse_store_url,
)

__all__ = [
    "STORE_ENV",
    "GapRow",
    "HistoryRow",
    "PreviousRun",
    "QueueSample",
    "Retention",
    "Store",
    "StoreError",
    "StoreURL",
    "StoredGap",
    "Transition",
    "WorkerSample",
    "WriteBatch",
    "default_store_path",
    "default_store_url",
    "mask_store_url",
    "open_store",
    "parse_store_url",
]


def open_store(url: str | StoreURL, *, create: bool = True, writer: bool = True) -> Store:
    """Connect, migrate the schema forward, and (for a writer) check the store takes writes.

    Every failure is a ``StoreError`` whose text is one line naming the store, password masked:
    unreachable server, wrong password, locked / read-only / corrupt file, newer schema.
    ``create=False`` refuses to create a missing SQLite file (a reader has nothing to read).
    """
    parsed = url if isinstance(url, StoreURL) else parse_store_url(url)
    store: Store
    if parsed.kind == "sqlite":
        from lazycelery.store.sqlite import SqliteStore

        store = SqliteStore(parsed, create=create)
    else:
        from lazycelery.store.postgres import PostgresStore

        store = PostgresStore(parsed)
    try:
        store.migrate(reader=not writer)
        if writer:
            check = getattr(store, "check_writable", None)
            if check is not None:
                check()
    except StoreError:
        store.close()
        raise
    except Exception as exc:
        message = store.describe_error(exc)
        store.close()
        raise StoreError(message) from None
    return store
