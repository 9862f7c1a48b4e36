"""The task list pane: newest first, state coloured, filter and sort shown in its title.

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its control is
made when the dashboard creates the pane."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lazycelery.core.index import BACKFILLED, FROM_HISTORY
from lazycelery.core.model import TaskRecord
from lazycelery.panes_api import PaneViewBase
from lazycelery.tui.columns import Cell, Column
from lazycelery.tui.format import clock_time, duration, number, one_line, short_id
from lazycelery.tui.screen.builtin import MAIN, BuiltinPane, ScreenContext
from lazycelery.tui.style import state_class

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.model import ScreenModel
    from lazycelery.tui.table import VirtualTable

__all__ = ["PANE", "TasksView", "task_columns", "tasks_title"]


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


#: the mark column: a task from the history store, a backfilled one (docs/dashboard.md)
HISTORY_MARK = "H"
BACKFILLED_MARK = "B"


def _mark_cell(origin: Callable[[TaskRecord], int]) -> Callable[[TaskRecord], Cell]:
    def cell(rec: TaskRecord) -> Cell:
        bits = origin(rec)
        if bits & BACKFILLED:
            return "class:task.backfilled", BACKFILLED_MARK
        if bits & FROM_HISTORY:
            return "class:task.history", HISTORY_MARK
        return "", ""
    return cell


def task_columns(origin: Callable[[TaskRecord], int] | None = None) -> list[Column[TaskRecord]]:
    """The task table's columns; with ``origin`` (a history store is open) a first column
    marks tasks read from the store (H) and backfilled ones (B)."""
    marks: list[Column[TaskRecord]] = [Column("", _mark_cell(origin), width=1)] \
        if origin is not None else []
    return [
        *marks,
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


def tasks_title(screen: ScreenModel) -> StyleAndTextTuples:
    view = screen.tasks
    shown, total = len(view), view.total
    parts: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} "), ("", f" {number(shown)}")]
    if view.filter_text:
        where = " in memory" if view.history_count else ""
        parts.append(("", f" of {number(total)}{where}  / {one_line(view.filter_text)}"))
    arrow = "↓" if view.descending else "↑"
    parts.append(("", f"  sort {view.sort_column} {arrow}"))
    if view.follow and view.sort_column == "time":
        parts.append(("bold", "  FOLLOW"))
    if screen.history_query:
        parts.append(("class:task.history", f"  {screen.history_query}"))
    if view.busy:
        what = {"scan": "filtering", "compact": "compacting"}.get(view.busy_kind or "", "working")
        parts.append(("", f"  {what} {view.progress * 100:.0f}%"))
    if screen.stale:
        parts.append(("bold", "  STALE"))
    return parts


def _empty(screen: ScreenModel) -> str:
    if screen.tasks.busy:
        return "filtering…"
    if screen.tasks.filter_text:
        return "no task matches the filter (esc clears it)"
    return "no tasks yet: waiting for events (workers need -E or `celery control enable_events`)"


class TasksView(PaneViewBase):
    """The task table under its title bar: only the rows on screen are formatted."""

    def __init__(self, ctx: ScreenContext) -> None:
        from lazycelery.tui.panes.common import pane
        from lazycelery.tui.table import VirtualTable

        screen = ctx.screen
        tasks = screen.tasks
        self.table: VirtualTable[TaskRecord] = VirtualTable(
            lambda: tasks, task_columns(screen.origin if screen.history is not None else None),
            focused=lambda: screen.ui.pane == "tasks",
            selection_key=lambda: id(tasks.selected) if tasks.selected is not None else None,
            empty_text=lambda: _empty(screen), errors=screen.render_errors,
        )
        screen.set_page_rows("tasks", lambda: self.table.page_rows)
        self._container = pane(lambda: tasks_title(screen), self.table,
                               lambda: screen.ui.pane == "tasks", lambda: screen.stale)

    def container(self) -> Container:
        return self._container


#: what the ``lazycelery.panes`` entry point ``tasks`` names
PANE = BuiltinPane(name="tasks", title="Tasks", key="3", slot=MAIN, view=TasksView,
                   command_title="Go to tasks")
