"""The errors pane: one row per error group (count, new, a per-minute sparkline of the last 15
minutes, the error, task names, workers, queues, first and last seen), and under the list the
selected group's example, frames, root-cause hints with their evidence and similar groups.
Enter shows the group's tasks in the task list; r / x retry / revoke them through the task
list's own confirmed, audited actions (refused in read-only mode).

Imports without prompt_toolkit (``lazycelery plugins`` loads it to list the pane); its controls
are made when the dashboard creates the pane."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from lazycelery.analysis import ErrorGroup
from lazycelery.analysis.counts import BoundedCounter
from lazycelery.panes_api import PaneCommand, PaneViewBase
from lazycelery.text import counted
from lazycelery.tui.columns import Column
from lazycelery.tui.format import clock_time, number, one_line, short_id, sparkline, wrap
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.errors import ErrorsModel
    from lazycelery.tui.screen.model import ScreenModel
    from lazycelery.tui.table import VirtualTable

__all__ = ["PANE", "ErrorsView", "error_columns", "errors_title", "group_lines"]

#: minutes in the RATE sparkline
SPARK_MINUTES: Final = 15
#: height of the selected group's box under the list
INFO_ROWS: Final = 10
#: sparklines kept (a few screens of groups)
SPARKS_KEPT: Final = 4096


def _top(counter: BoundedCounter, n: int = 2) -> str:
    top = counter.top()
    text = ", ".join(value for value, _ in top[:n])
    return text + (f" +{len(top) - n}" if len(top) > n else "")


def error_columns(model: ErrorsModel, screen: ScreenModel) -> list[Column[ErrorGroup]]:
    def new(g: ErrorGroup) -> tuple[str, str]:
        if model.only_history(g):
            return "class:table.dim", "hist"
        return ("class:task.state.retry", "new") if model.is_new(g) else ("", "")

    sparks: dict[str, tuple[tuple[int, float, float, int, int], str]] = {}

    def spark(g: ErrorGroup) -> tuple[str, str]:
        # the same failures over the same minutes draw the same line: cached per group until
        # it fails again or a minute turns (a group's minutes only change as it fails)
        now = screen.clock()
        minutes = g.minutes.width
        key = (g.count, g.first_seen, g.last_seen,  # (a group evicted and made again differs)
               int((now - (SPARK_MINUTES - 1) * 60) // minutes), int(now // minutes))
        cached = sparks.get(g.key)
        if cached is not None and cached[0] == key:
            return "class:spark.failed", cached[1]
        if len(sparks) >= SPARKS_KEPT:
            sparks.clear()
        text = sparkline(g.sparkline_counts(now, SPARK_MINUTES))
        sparks[g.key] = (key, text)
        return "class:spark.failed", text

    def cluster(g: ErrorGroup) -> tuple[str, str]:
        found = model.cluster(g)
        return "class:table.dim", (f"~{found[0][:4]}" if found else "")

    return [
        Column("GROUP", lambda g: ("class:table.dim", g.key[:8]), width=8, priority=2),
        Column("COUNT", lambda g: ("class:task.state.failure", number(g.count)), width=6,
               align="right"),
        Column("NEW", new, width=4, priority=1),
        Column("LAST 15 MIN", spark, width=SPARK_MINUTES, priority=3),
        Column("ERROR", lambda g: ("", g.fp.title), min_width=20, max_width=60, grow=2),
        Column("SIM", cluster, width=5, priority=5),
        Column("TASKS", lambda g: ("", _top(g.names)), min_width=8, max_width=40, grow=1),
        Column("WORKERS", lambda g: ("", _top(g.workers)), min_width=14, max_width=36,
               priority=2),
        Column("QUEUES", lambda g: ("class:table.dim", _top(g.queues)), min_width=6,
               max_width=20, priority=4),
        Column("FIRST", lambda g: ("", clock_time(g.first_seen)), width=8, priority=3),
        Column("LAST", lambda g: ("", clock_time(g.last_seen)), width=8, priority=1),
    ]


def errors_title(model: ErrorsModel) -> StyleAndTextTuples:
    groups = model.groups
    text: StyleAndTextTuples = [("bold", f" {PANE.key} {PANE.title} "),
                                ("", f" {counted(len(groups), 'group', short=True)}  "
                                     f"{counted(groups.failures, 'failure', short=True)}")]
    new = model.new_count()
    if new:
        text.append(("class:task.state.retry", f"  {new} new"))
    if model.history_status:
        text.append(("class:table.dim", f"  {model.history_status}"))
    return text


def group_lines(model: ErrorsModel, group: ErrorGroup | None, width: int) -> list[str]:
    """The selected group's box: what failed, where, the hints (with their numbers), the
    similar groups, and the keys."""
    if group is None:
        return ["no failures seen yet: groups appear here as tasks fail"]
    width = max(20, width)
    stored = f", {group.from_history:,} from history" if group.from_history else ""
    lines = [f"{group.key}  {counted(group.count, 'failure')} ({group.failed:,} failed, "
             f"{group.retried:,} retried{stored})  {group.fp.exc_type}"]
    lines += wrap(f"example: {one_line(group.example)}", width)[:2]
    if group.fp.frames:
        lines.append(f"app frames: {' > '.join(group.fp.frames)}")
    hints = model.hints(group)
    lines += [f"hint: {h.text}" for h in hints] or ["hint: none (no concentration, start or "
                                                    "sequence the events support)"]
    similar = model.similar(group)
    if similar:
        lines.append("similar: " + ", ".join(f"{g.key[:8]} {g.fp.short_type} ({g.count:,})"
                                             for g in similar[:4]))
    last = group.task_ids[-1] if group.task_ids else None
    lines.append(f"enter: its {min(len(group.task_ids), 500):,} newest tasks"
                 f"{f' (last {short_id(last)})' if last else ''}   r: retry them   "
                 "x: revoke the unfinished")
    return lines


class ErrorsView(PaneViewBase):
    """The groups table, and the selected group's box under it."""

    def __init__(self, ctx: ScreenContext) -> None:
        from prompt_toolkit.layout import HSplit, Window
        from prompt_toolkit.layout.controls import FormattedTextControl

        from lazycelery.tui.panes.common import title_bar
        from lazycelery.tui.table import VirtualTable

        self.ctx = ctx
        screen = ctx.screen
        model = self.model = screen.errors

        def rows() -> ErrorsModel:
            model.refresh()
            return model

        self.table: VirtualTable[ErrorGroup] = VirtualTable(
            lambda: rows().list, error_columns(model, screen),
            focused=lambda: screen.ui.pane == "errors",
            selection_key=lambda: model.list.selected_key,
            empty_text=lambda: "no failures seen yet", errors=screen.render_errors)
        focused = lambda: screen.ui.pane == "errors"  # noqa: E731

        def info() -> StyleAndTextTuples:
            width = screen.size()[0] - 2
            out: StyleAndTextTuples = []
            for line in group_lines(model, model.selected, width):
                style = "class:dialog.warning" if line.startswith("hint:") else ""
                out += [(style, " " + line[:width]), ("", "\n")]
            return out

        self.body = Window(self.table, wrap_lines=False, always_hide_cursor=True)
        self._container = HSplit([
            title_bar(lambda: errors_title(model), focused), self.body,
            Window(height=1, char="─", style="class:pane.sep"),
            Window(FormattedTextControl(info), height=INFO_ROWS, wrap_lines=False)])
        screen.set_page_rows("errors", lambda: self.table.page_rows)

    def container(self) -> Container:
        return self._container

    def move(self, delta: int) -> None:
        self.model.move(delta)

    def commands(self) -> Sequence[PaneCommand]:
        return (
            PaneCommand("open", "Show the group's tasks in the task list",
                        self._open, keys=("enter",), footer="tasks"),
            PaneCommand("retry", "Retry the group's failed tasks (dry run and confirmation "
                        "first)", lambda: self._act("view.retry"), keys=("r",),
                        footer="retry"),
            PaneCommand("revoke", "Revoke the group's unfinished tasks (confirmation first)",
                        lambda: self._act("view.revoke"), keys=("x",)),
        )

    def open(self) -> bool:
        group = self.model.selected
        if group is None:
            self.ctx.log("no error group selected", error=True)
            return False
        self.ctx.show_tasks(self.model.tasks_filter(group))
        return self.ctx.screen.ui.pane == "tasks"

    def _open(self) -> None:
        self.open()

    def _act(self, command: str) -> None:
        # the task list's own action on the group's tasks: its dry run, dialog, read-only
        # refusal and audit line. It acts on the whole filtered list: finish filtering first
        # (one set lookup per task: fast even over a full index)
        if self.open():
            self.ctx.screen.tasks.settle()
            self.ctx.run_command(command)


#: what the ``lazycelery.panes`` entry point ``errors`` names
PANE = BuiltinPane(name="errors", title="Errors", key="e", slot=BODY, view=ErrorsView,
                   command_title="Go to error groups")
