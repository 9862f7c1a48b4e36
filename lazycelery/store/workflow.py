"""A workflow's tasks read back from the history store by their links, for ``lazycelery task
tree`` and serve's ``/api/v1/tasks/{id}/tree``: every task whose ``uuid``, ``parent_id`` or
``root_id`` names a task already found, until no new one turns up (indexes ``tasks.uuid``,
``tasks_parent`` from schema 3, ``tasks_root``). The links do not depend on when the tasks ran:
a child that ran days after its parent is found as surely as one that ran the next second.

A time window (an earlier version's whole search) is kept for one thing only: the members of a
*top-level* group or chord header are each their own root with no parent, so nothing links them;
the parentless tasks whose events began within ``SIBLING_WINDOW`` seconds of a parentless
member's (read by the tasks' own event times, never by when they were recorded) are returned as
candidates, which only the result backend's ``group_id`` turns into members
(``core.workflow.sibling_candidates``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from lazycelery.core.model import TaskRecord
from lazycelery.store.backend import Store
from lazycelery.store.errors import StoreError
from lazycelery.store.rows import TASK_COLUMNS, record_from_row

__all__ = ["MAX_STORED", "SIBLING_WINDOW", "read_workflow", "workflow_records"]

#: tasks read at most (the tree itself is cut at core.workflow.MAX_NODES)
MAX_STORED: Final = 20_000
#: a top-level group's members are sent together: candidates are parentless tasks whose first
#: event is within this many seconds of the member's (core.workflow.sibling_candidates: 5 s)
SIBLING_WINDOW: Final = 5.0
#: and whose latest event is at most this long after it (bounds the index range read)
SIBLING_SPAN: Final = 3600.0
#: ids per ``IN (...)`` (SQLite builds before 3.32 allow 999 parameters)
_CHUNK: Final = 500
_COLS: Final = ", ".join(TASK_COLUMNS)
_LINKS: Final = ("uuid", "parent_id", "root_id")


def _rows(store: Store, column: str, ids: Sequence[str], limit: int) -> list[TaskRecord]:
    """The tasks whose ``column`` is one of ``ids`` (at most ``limit`` per chunk of ids: a root
    with a million tasks is not read whole to be cut afterwards)."""
    out: list[TaskRecord] = []
    for start in range(0, len(ids), _CHUNK):
        part = ids[start:start + _CHUNK]
        marks = ", ".join("?" * len(part))
        rows = store.query(f"SELECT {_COLS} FROM tasks WHERE {column} IN ({marks}) "
                           f"LIMIT {int(limit)}", part)
        out.extend(record_from_row(row)[0] for row in rows)
    return out


def _linked(store: Store, seeds: Iterable[str], out: dict[str, TaskRecord], limit: int) -> None:
    """Breadth first from ``seeds``: each round reads the tasks whose uuid, parent or root is
    one of the ids not yet followed, and follows their own ids, parents and roots next."""
    followed: set[str] = set()
    todo = list(dict.fromkeys(s for s in seeds if s))
    while todo and len(out) < limit:
        followed.update(todo)
        found: list[TaskRecord] = []
        for column in _LINKS:
            found.extend(_rows(store, column, todo, limit))
        nxt: dict[str, None] = {}
        for rec in found:
            if len(out) >= limit and rec.uuid not in out:
                break
            out[rec.uuid] = rec
            for link in (rec.uuid, rec.parent_id, rec.root_id):
                if isinstance(link, str) and link and link not in followed:
                    nxt[link] = None
        todo = list(nxt)


def _sibling_candidates(store: Store, rec: TaskRecord) -> list[TaskRecord]:
    """Parentless tasks whose first event lies within ``SIBLING_WINDOW`` of ``rec``'s (one
    range of ``tasks_last_time``, bounded by ``SIBLING_SPAN``)."""
    when = rec.sent if rec.sent is not None else rec.first_seen
    if rec.parent_id is not None or when is None:
        return []
    rows = store.query(
        f"SELECT {_COLS} FROM tasks WHERE last_time >= ? AND last_time < ? "
        "AND parent_id IS NULL AND first_time <= ?",
        (when - SIBLING_WINDOW, when + SIBLING_SPAN, when + SIBLING_WINDOW))
    return [record_from_row(row)[0] for row in rows]


def workflow_records(store: Store, seeds: Iterable[str], *, siblings: bool = True,
                     limit: int = MAX_STORED) -> dict[str, TaskRecord]:
    """The stored tasks linked to ``seeds`` (uuid -> record); with ``siblings`` (a result
    backend will decide groups), also the possible top-level group members of its parentless
    tasks and the tasks linked to those. Raises ``StoreError`` (one line)."""
    out: dict[str, TaskRecord] = {}
    try:
        _linked(store, seeds, out, limit)
        if siblings and len(out) < limit:
            tops = [r for r in out.values() if r.parent_id is None][:8]
            more = [c.uuid for top in tops for c in _sibling_candidates(store, top)
                    if c.uuid not in out]
            _linked(store, more, out, limit)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(store.describe_error(exc)) from None
    return out


def read_workflow(url: str, seeds: Sequence[str], *, siblings: bool = True
                  ) -> tuple[dict[str, TaskRecord], str | None]:
    """``workflow_records`` of the store at ``url`` (opened read-only, then closed), and a note
    when it could not be read (no store, a failing query)."""
    from lazycelery.store import open_store

    try:
        store = open_store(url, create=False, writer=False)
    except StoreError as exc:
        return {}, f"no history store ({exc})"
    try:
        return workflow_records(store, seeds, siblings=siblings), None
    except StoreError as exc:
        return {}, f"history store: {exc}"
    finally:
        store.close()
