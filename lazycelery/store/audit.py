"""The audit log in the history store (table ``audit``, schema 2): each entry of
``lazycelery.core.audit`` as the same JSON line, plus columns to filter on. The JSONL file stays
the first copy; the store is the shared one (several operators, one PostgreSQL)."""

from __future__ import annotations

from datetime import datetime

from lazycelery.core import audit
from lazycelery.store.backend import Store
from lazycelery.store.errors import StoreError

__all__ = ["read_audit", "store_sink", "write_audit"]


def write_audit(store: Store, entry: audit.AuditEntry) -> None:
    """Append one entry, in its own transaction."""
    when = datetime.fromisoformat(entry.time).timestamp()
    ok = entry.result.get("ok")
    with store.transaction():
        store.execute("INSERT INTO audit (time, username, host, environment, action, ok, entry) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (when, entry.user, entry.host, entry.environment, entry.action,
                       None if ok is None else bool(ok), audit.encode(entry).decode()))


def read_audit(store: Store, limit: int | None = None) -> list[audit.AuditEntry]:
    """The last ``limit`` entries (all when None), oldest first. ``StoreError`` (one line)
    when the store cannot be read."""
    tail = "" if limit is None else f" LIMIT {int(limit)}"
    try:
        rows = store.query(f"SELECT entry FROM audit ORDER BY time DESC, id DESC{tail}")
    except Exception as exc:
        raise StoreError(store.describe_error(exc)) from None
    entries = [audit.decode(row[0]) for row in reversed(rows)]
    return [e for e in entries if e is not None]


def store_sink(url: str | None) -> audit.AuditSink | None:
    """What ``Actions`` calls after writing the file: the entry into the store at ``url``
    (opened per entry: actions are rare), or None when no store is configured. Raises a
    ``StoreError`` (one line) when the store cannot take it."""
    if url is None:
        return None

    def sink(entry: audit.AuditEntry) -> None:
        from lazycelery.store import open_store

        store = open_store(url)
        try:
            try:
                write_audit(store, entry)
            except Exception as exc:
                raise StoreError(store.describe_error(exc)) from None
        finally:
            store.close()

    return sink
