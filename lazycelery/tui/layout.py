"""Assembles the screen: header, metrics, banner, panes, filter prompt, footer, overlays, and
the too-small-terminal message. Containers are built once; what changes is data and state.

Each part is wrapped in a ``GuardedContainer``: a part that raises while drawn shows a marker
and the rest of the frame (and every key) keeps working."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import (
    ConditionalContainer,
    Container,
    DynamicContainer,
    FloatContainer,
    HSplit,
    Layout,
    VSplit,
    Window,
    WindowAlign,
)
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension

from lazycelery.tui.guard import GuardedContainer
from lazycelery.tui.panes.detail import detail_pane
from lazycelery.tui.panes.dialog import dialog_float
from lazycelery.tui.panes.filterbar import filter_bar
from lazycelery.tui.panes.footer import footer
from lazycelery.tui.panes.header import banner, header, metrics_strip
from lazycelery.tui.panes.help import help_float
from lazycelery.tui.panes.messages import messages_float
from lazycelery.tui.panes.palette import palette_float
from lazycelery.tui.panes.queues import queues_pane
from lazycelery.tui.panes.tasks import tasks_pane
from lazycelery.tui.panes.workers import workers_pane

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["MIN_COLUMNS", "MIN_ROWS", "build_layout", "too_small"]

MIN_COLUMNS: Final = 60
MIN_ROWS: Final = 14
_CHROME: Final = 4  # header (2) + metrics (1) + footer (1)


def too_small(d: Dashboard) -> bool:
    size = d.size()
    return size.columns < MIN_COLUMNS or size.rows < MIN_ROWS


def _small_message(d: Dashboard) -> Container:
    def text() -> StyleAndTextTuples:
        size = d.size()
        return [("class:small", f"Terminal too small: {size.columns}×{size.rows}.\n"
                 f"lazycelery needs at least {MIN_COLUMNS}×{MIN_ROWS}.\n"
                 "Enlarge the window, or press q to quit.")]

    return HSplit([Window(), Window(FormattedTextControl(text), height=3,
                                    align=WindowAlign.CENTER), Window()])


def _top_height(d: Dashboard) -> Dimension:
    """Workers and queues get the rows they need, at most a third of the body."""
    body = d.size().rows - _CHROME - (1 if d.stale else 0) - (2 if d.ui.filter_editing else 0)
    want = max(len(d.workers), len(d.queues), 1) + 2
    return Dimension.exact(max(4, min(want, max(4, body // 3))))


def build_layout(d: Dashboard) -> Layout:
    parts = d.controls

    def guard(container: Container, where: str) -> Container:
        return GuardedContainer(container, where, d.render_errors)

    workers = workers_pane(d, parts.workers)
    queues = queues_pane(d, parts.queues)
    tasks = tasks_pane(d, parts.tasks)
    detail = detail_pane(d, parts.detail)
    d.pane_windows.update(workers=workers.body, queues=queues.body,  # type: ignore[attr-defined]
                          tasks=tasks.body, detail=detail.body)  # type: ignore[attr-defined]
    d.pane_windows.update(d.plugins.focus_windows())
    top = VSplit([guard(workers, "workers pane"), Window(width=1, char="│",
                                                         style="class:pane.sep"),
                  guard(queues, "queues pane")], height=lambda: _top_height(d))
    lists = HSplit([top, guard(tasks, "task list")])
    guarded_detail = guard(detail, "task detail")
    body = DynamicContainer(lambda: guarded_detail if d.ui.pane == "detail"
                            else d.plugins.container(d.ui.pane) or lists)
    bar, bar_input = filter_bar(d, parts.filter_buffer)
    d.filter_window = bar_input
    main = HSplit([guard(header(d), "header"), guard(metrics_strip(d), "metrics"),
                   guard(banner(d), "banner"), guard(body, "panes"), guard(bar, "filter"),
                   guard(footer(d), "footer")])
    small = _small_message(d)
    help_overlay = help_float(d, parts.help)
    palette, d.palette_window = palette_float(d, parts.palette_buffer)
    dialog, d.operator.input_window = dialog_float(d, d.operator.buffer)
    help_overlay.content = ConditionalContainer(
        guard(help_overlay.content, "help"), filter=Condition(lambda: d.ui.overlay == "help"))
    palette.content = ConditionalContainer(
        guard(palette.content, "palette"), filter=Condition(lambda: d.ui.overlay == "palette"))
    messages = messages_float(d)
    messages.content = guard(messages.content, "messages")
    dialog.content = guard(dialog.content, "dialog")
    is_small = Condition(lambda: too_small(d))
    root = FloatContainer(
        # Both stay in the layout (hidden, not swapped out), so the panes can take the focus
        # even when the dashboard starts in a terminal that is too small.
        guard(HSplit([ConditionalContainer(main, filter=~is_small),
                      ConditionalContainer(small, filter=is_small)]), "screen"),
        # action results under the dialog, the dialog above everything
        floats=[help_overlay, palette, messages, dialog],
    )
    return Layout(root, focused_element=d.pane_windows["tasks"])
