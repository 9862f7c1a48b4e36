"""Tasks as rows for export (CSV, JSON, NDJSON): the filtered list, an error group's tasks, a
workflow. The values are the records' own, so what ingest masked stays masked; a CSV cell that
a spreadsheet would run as a formula is prefixed with ``'``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Final

from lazycelery.core.model import TaskRecord

__all__ = ["COLUMNS", "FORMATS", "row", "stream_rows", "write_rows", "write_to_file"]

COLUMNS: Final = ("uuid", "name", "state", "worker", "queue", "exchange", "routing_key",
                  "parent_id", "root_id", "retries", "sent", "started", "finished", "runtime",
                  "args", "kwargs", "result", "exception")
FORMATS: Final = ("csv", "json", "ndjson")
_TIMES: Final = ("sent", "started")


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    try:
        return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def row(rec: TaskRecord, **extra: Any) -> dict[str, Any]:
    """One task: its fields by ``COLUMNS`` (times as UTC ISO 8601), then ``extra``."""
    out: dict[str, Any] = {}
    for col in COLUMNS:
        if col in _TIMES:
            out[col] = _iso(getattr(rec, col))
        elif col == "finished":
            out[col] = _iso(rec.succeeded or rec.failed or rec.revoked or rec.rejected)
        else:
            out[col] = getattr(rec, col)
    out.update(extra)
    return out


def _cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts like a formula: task args are anyone's text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_rows(rows: Iterable[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    """Write ``rows`` to ``out`` in ``fmt``; returns how many. The text is ``stream_rows``'
    (written as it comes: one row at a time, a JSON array element by element)."""
    n = 0

    def counting() -> Iterator[dict[str, Any]]:
        nonlocal n
        for row in rows:
            n += 1
            yield row

    for piece in stream_rows(counting(), fmt):
        out.write(piece)
    return n


def write_to_file(rows: Iterable[dict[str, Any]], fmt: str, path: Path) -> int:
    """Write to ``path`` through a temporary file renamed at the end (never half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    buf = io.StringIO()
    n = write_rows(rows, fmt, buf)
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(path)
    return n


def stream_rows(rows: Iterable[dict[str, Any]], fmt: str, batch: int = 500) -> Iterator[str]:
    """``write_rows``' text in pieces of ``batch`` rows (serve streams an export): the same
    characters, JSON included (its array is written element by element as ``json.dumps``
    with ``indent=2`` lays it out)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
    buf = io.StringIO()
    writer: Any = None
    n = 0
    for r in rows:
        if fmt == "json":
            item = json.dumps(r, indent=2, default=str).replace("\n", "\n  ")
            buf.write(("[\n  " if n == 0 else ",\n  ") + item)
        elif fmt == "ndjson":
            buf.write(json.dumps(r, default=str) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(buf, fieldnames=list(r), lineterminator="\n",
                                        extrasaction="ignore")
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in r.items()})
        n += 1
        if n % batch == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    if fmt == "json":
        buf.write("[]\n" if n == 0 else "\n]\n")
    elif fmt == "csv" and n == 0:
        buf.write(",".join(COLUMNS) + "\n")
    if buf.tell():
        yield buf.getvalue()
