"""A group's tasks as rows for export (CSV, JSON, NDJSON): what the index knows of each of the
group's newest task ids, one row per task."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final

from lazycelery.analysis.groups import ErrorGroup

__all__ = ["COLUMNS", "FORMATS", "export_rows", "render"]

COLUMNS: Final = ("uuid", "name", "state", "worker", "queue", "retries", "failed", "runtime",
                  "args", "kwargs", "exception", "group")
FORMATS: Final = ("csv", "json", "ndjson")


def _iso(t: object) -> str | None:
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return datetime.fromtimestamp(t).astimezone().isoformat(timespec="milliseconds")
    return None


def export_rows(group: ErrorGroup, lookup: Callable[[str], object]) -> list[dict[str, Any]]:
    """The group's tasks, newest first; a task no longer in memory keeps only its id."""
    out: list[dict[str, Any]] = []
    for uuid in dict.fromkeys(reversed(group.task_ids)):
        rec = lookup(uuid)
        row: dict[str, Any] = {c: getattr(rec, c, None) for c in COLUMNS}
        row["uuid"], row["group"] = uuid, group.key
        row["failed"] = _iso(getattr(rec, "failed", None) or getattr(rec, "retried", None))
        out.append(row)
    return out


def _cell(value: Any) -> Any:
    # a spreadsheet runs a cell that starts like a formula: task args are anyone's text
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def render(rows: Iterable[dict[str, Any]], fmt: str) -> str:
    rows = list(rows)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "ndjson":
        return "".join(json.dumps(r) + "\n" for r in rows)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
        return buf.getvalue()
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")
