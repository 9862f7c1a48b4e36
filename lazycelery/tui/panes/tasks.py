"""The task list pane: newest first, state coloured, filter and sort shown in its title."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container

from lazycelery.core.model import TaskRecord
from lazycelery.tui.format import clock_time, duration, number, one_line, short_id
from lazycelery.tui.panes.common import pane
from lazycelery.tui.style import state_class
from lazycelery.tui.table import Cell, Column, VirtualTable

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["task_columns", "task_table", "tasks_pane", "tasks_title"]


def _args_preview(rec: TaskRecord) -> str:
    args, kwargs = rec.args, rec.kwargs
    if kwargs and kwargs != "{}":
        return f"{one_line(args)} {one_line(kwargs)}"
    return one_line(args)


def _args(rec: TaskRecord) -> Cell:
    if rec.unknown_since is not None:
        # reconciliation found no trace of it after a gap: say so before anything else
        return "class:task.unknown", f"unknown since {clock_time(rec.unknown_since)}  " \
            f"{_args_preview(rec)}"
    return "class:table.dim", _args_preview(rec)


def _state(rec: TaskRecord) -> Cell:
    if rec.unknown_since is not None:
        return "class:task.unknown", rec.state
    return state_class(rec.state), rec.state


def task_columns() -> list[Column[TaskRecord]]:
    return [
        Column("TIME", lambda r: ("", clock_time(r.first_seen or r.last_seen)), width=8,
               priority=3),
        Column("STATE", _state, width=8),
        Column("NAME", lambda r: ("", r.name or "?"), min_width=12, max_width=48, grow=1),
        Column("ID", lambda r: ("class:table.dim", short_id(r.uuid)), width=8, priority=1),
        Column("WORKER", lambda r: ("", r.worker or ""), min_width=8, max_width=28, priority=2),
        Column("RUNTIME", lambda r: ("", duration(r.runtime)), width=7, align="right",
               priority=2),
        Column("ARGS", _args, min_width=8, grow=2, priority=4),
    ]


def tasks_title(d: Dashboard) -> StyleAndTextTuples:
    view = d.tasks
    shown, total = len(view), view.total
    parts: StyleAndTextTuples = [("bold", " 3 Tasks "), ("", f" {number(shown)}")]
    if view.filter_text:
        parts.append(("", f" of {number(total)}  / {one_line(view.filter_text)}"))
    arrow = "↓" if view.descending else "↑"
    parts.append(("", f"  sort {view.sort_column} {arrow}"))
    if view.follow and view.sort_column == "time":
        parts.append(("bold", "  FOLLOW"))
    if view.busy:
        what = {"scan": "filtering", "compact": "compacting"}.get(view.busy_kind or "", "working")
        parts.append(("", f"  {what} {view.progress * 100:.0f}%"))
    if d.stale:
        parts.append(("bold", "  STALE"))
    return parts


def task_table(d: Dashboard) -> VirtualTable[TaskRecord]:
    def empty() -> str:
        if d.tasks.busy:
            return "filtering…"
        if d.tasks.filter_text:
            return "no task matches the filter (esc clears it)"
        return "no tasks yet: waiting for events (workers need -E or `celery control enable_events`)"

    return VirtualTable(
        lambda: d.tasks, task_columns(),
        focused=lambda: d.ui.pane == "tasks",
        selection_key=lambda: id(d.tasks.selected) if d.tasks.selected is not None else None,
        empty_text=empty,
    )


def tasks_pane(d: Dashboard, table: VirtualTable[TaskRecord]) -> Container:
    return pane(lambda: tasks_title(d), table, lambda: d.ui.pane == "tasks", lambda: d.stale)
