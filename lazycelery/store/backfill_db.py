"""Backfill from celery's database result backend (``db+postgresql://``, ``db+sqlite://`` ...).

celery keeps one row per task in ``celery_taskmeta`` (``database_table_names`` may rename it):
``task_id``, ``status``, ``result`` (serialized with ``result_serializer``), ``traceback``,
``date_done`` (UTC, indexed) and, with ``result_extended``, ``name``, ``args``, ``kwargs``,
``worker``, ``retries``, ``queue``. A gap is one ``date_done`` range query per window, read in
chunks, through the backend's own SQLAlchemy session (its engine options and schema). The table
is reflected, so the extended columns are read when they exist whatever our app's
``result_extended`` says. Values are decoded with the backend's serializer (JSON by default);
a value that does not decode is left out, never unpickled. SQLAlchemy comes with celery's
database backend (``pip install 'lazycelery[backfill-db]'``) and is imported here only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from lazycelery.core.model import FAILURE, REVOKED, SUCCESS

__all__ = ["scan_database"]

#: rows per fetch
CHUNK: Final = 500
_FINISHED: Final = (SUCCESS, FAILURE, REVOKED)
_EXTENDED: Final = ("name", "worker", "queue", "retries")
_ENCODED: Final = ("args", "kwargs")


def _naive_utc(epoch: float) -> datetime:
    """celery writes ``date_done`` as UTC into a column without a time zone."""
    return datetime.fromtimestamp(max(0.0, epoch), timezone.utc).replace(tzinfo=None)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, datetime):
        return None
    moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _decode(backend: Any, value: Any) -> tuple[bool, Any]:
    if value is None:
        return True, None
    try:
        return True, backend.decode(bytes(value) if isinstance(value, memoryview) else value)
    except Exception:
        return False, None


Meta = tuple[str, dict[str, Any], float]


def scan_database(backend: Any, windows: Sequence[tuple[float, float]], *, budget: float,
                  clock: Callable[[], float] = time.monotonic,
                  progress: Callable[[int], None] | None = None) -> Iterator[Meta]:
    """Finished tasks whose ``date_done`` is in a window (``(from, to)`` epoch seconds), as
    (task id, result meta, date_done); stops quietly when ``budget`` seconds are spent."""
    import sqlalchemy as sa

    model = backend.task_cls.__table__
    session = backend.ResultSession()
    deadline = clock() + budget
    scanned = 0
    seen: set[str] = set()
    try:
        table = sa.Table(model.name, sa.MetaData(), schema=model.schema,
                         autoload_with=session.connection())
        wanted = ["task_id", "status", "result", "traceback", "date_done",
                  *(c for c in (*_EXTENDED, *_ENCODED) if c in table.c)]
        cols = [table.c[name] for name in wanted]
        for window in _merged(windows):
            query = (sa.select(*cols)
                     .where(table.c.date_done >= _naive_utc(window[0]),
                            table.c.date_done <= _naive_utc(window[1]),
                            table.c.status.in_(_FINISHED))
                     .order_by(table.c.date_done)
                     .execution_options(yield_per=CHUNK))
            for row in session.execute(query):
                scanned += 1
                meta = dict(zip(wanted, row, strict=True))
                found = _meta(backend, meta)
                if found is not None and found[0] not in seen:
                    seen.add(found[0])
                    yield found
                if scanned % CHUNK == 0:
                    if progress is not None:
                        progress(scanned)
                    if clock() >= deadline:
                        return
        if progress is not None:
            progress(scanned)
    finally:
        session.close()


def _merged(windows: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The windows as few disjoint ranges (overlapping gaps are read once)."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _meta(backend: Any, row: dict[str, Any]) -> Meta | None:
    task_id, when = row.get("task_id"), _epoch(row.get("date_done"))
    if not isinstance(task_id, str) or when is None:
        return None
    ok, result = _decode(backend, row.get("result"))
    if not ok:
        return None  # not our serializer (an old pickled row): never unpickled here
    meta: dict[str, Any] = {"status": row.get("status"), "result": result,
                            "traceback": row.get("traceback")}
    for name in _EXTENDED:
        if row.get(name) is not None:
            meta[name] = row[name]
    for name in _ENCODED:
        ok, value = _decode(backend, row.get(name))
        if ok and value is not None:
            meta[name] = value
    return task_id, meta, when
