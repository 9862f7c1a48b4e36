"""Assembles the screen: header, metrics, banner, the mounted panes in their slots, filter
prompt, footer, overlays, and the too-small-terminal message. Containers are built once; what
changes is the screen model they read.

Each part is wrapped in a ``GuardedContainer``: a part that raises while drawn shows a marker
and the rest of the frame (and every key) keeps working."""

from __future__ import annotations

from dataclasses import dataclass
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
from lazycelery.tui.panes.dialog import dialog_float
from lazycelery.tui.panes.filterbar import filter_bar
from lazycelery.tui.panes.footer import footer
from lazycelery.tui.panes.header import banner, header, metrics_strip
from lazycelery.tui.panes.help import help_float
from lazycelery.tui.panes.messages import messages_float
from lazycelery.tui.panes.palette import palette_float
from lazycelery.tui.panes.peek import peek_float
from lazycelery.tui.panes.routes import routes_float
from lazycelery.tui.screen.builtin import BODY, MAIN, TOP

if TYPE_CHECKING:
    from prompt_toolkit.buffer import Buffer

    from lazycelery.tui.mount import PaneHost
    from lazycelery.tui.operator import Operator
    from lazycelery.tui.registry import CommandRegistry
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["MIN_COLUMNS", "MIN_ROWS", "Placed", "build_layout", "too_small"]

MIN_COLUMNS: Final = 60
MIN_ROWS: Final = 14
_CHROME: Final = 4  # header (2) + metrics (1) + footer (1)


@dataclass
class Placed:
    """The layout, and the input windows the dashboard gives the keyboard to."""

    layout: Layout
    filter_window: Window
    palette_window: Window


def too_small(screen: ScreenModel) -> bool:
    columns, rows = screen.size()
    return columns < MIN_COLUMNS or rows < MIN_ROWS


def _small_message(screen: ScreenModel) -> Container:
    def text() -> StyleAndTextTuples:
        columns, rows = screen.size()
        return [("class:small", f"Terminal too small: {columns}×{rows}.\n"
                 f"lazycelery needs at least {MIN_COLUMNS}×{MIN_ROWS}.\n"
                 "Enlarge the window, or press q to quit.")]

    return HSplit([Window(), Window(FormattedTextControl(text), height=3,
                                    align=WindowAlign.CENTER), Window()])


def _top_height(screen: ScreenModel) -> Dimension:
    """Workers and queues get the rows they need, at most a third of the body."""
    body = screen.size()[1] - _CHROME - (1 if screen.stale else 0) - (
        2 if screen.ui.filter_editing else 0)
    want = max(len(screen.workers), len(screen.queues), 1) + 2
    return Dimension.exact(max(4, min(want, max(4, body // 3))))


def _guard(screen: ScreenModel, container: Container, where: str) -> Container:
    return GuardedContainer(container, where, screen.render_errors)


def _top_row(screen: ScreenModel, panes: list[Container]) -> Container:
    """The top-slot panes side by side, a rule between each two."""
    row: list[Container] = []
    for i, container in enumerate(panes):
        if i:
            row.append(Window(width=1, char="│", style="class:pane.sep"))
        row.append(container)
    return VSplit(row, height=lambda: _top_height(screen))


def _body(screen: ScreenModel, host: PaneHost) -> Container:
    """The lists (top row over the main pane), or the pane that fills the whole body; each
    built-in pane guarded (a plugin pane guards itself)."""
    guarded = {name: _guard(screen, host.container(name) or Window(), f"{title.lower()} pane")
               for name, title in host.builtin_titles()}
    lists = HSplit([_top_row(screen, [guarded[n] for n in host.in_slot(TOP)]),
                    *(guarded[n] for n in host.in_slot(MAIN))])

    def current() -> Container:
        pane = screen.ui.pane
        if host.slot(pane) == BODY:
            return guarded.get(pane) or host.container(pane) or lists
        return lists

    return DynamicContainer(current)


def build_layout(screen: ScreenModel, host: PaneHost, registry: CommandRegistry,
                 operator: Operator, filter_buffer: Buffer, palette_buffer: Buffer) -> Placed:
    columns = lambda: screen.size()[0]  # noqa: E731

    def guard(container: Container, where: str) -> Container:
        return _guard(screen, container, where)

    bar, filter_window = filter_bar(screen, filter_buffer)
    main = HSplit([guard(header(screen), "header"), guard(metrics_strip(screen), "metrics"),
                   guard(banner(screen), "banner"), guard(_body(screen, host), "panes"),
                   guard(bar, "filter"), guard(footer(registry, screen), "footer")])
    small = _small_message(screen)
    help_overlay = help_float(screen.help)
    palette, palette_window = palette_float(screen, registry, palette_buffer)
    dialog, operator.input_window = dialog_float(lambda: operator.dialog, operator.buffer,
                                                 columns)
    help_overlay.content = ConditionalContainer(
        guard(help_overlay.content, "help"),
        filter=Condition(lambda: screen.ui.overlay == "help"))
    palette.content = ConditionalContainer(
        guard(palette.content, "palette"),
        filter=Condition(lambda: screen.ui.overlay == "palette"))
    peek = peek_float(screen.peek)
    peek.content = ConditionalContainer(guard(peek.content, "peek"),
                                        filter=Condition(lambda: screen.ui.overlay == "peek"))
    routes = routes_float(screen.routes)
    routes.content = ConditionalContainer(guard(routes.content, "routes"),
                                          filter=Condition(lambda: screen.ui.overlay == "routes"))
    messages = messages_float(operator.board, columns)
    messages.content = guard(messages.content, "messages")
    dialog.content = guard(dialog.content, "dialog")
    is_small = Condition(lambda: too_small(screen))
    root = FloatContainer(
        # Both stay in the layout (hidden, not swapped out), so the panes can take the focus
        # even when the dashboard starts in a terminal that is too small.
        guard(HSplit([ConditionalContainer(main, filter=~is_small),
                      ConditionalContainer(small, filter=is_small)]), "screen"),
        # action results under the dialog, the dialog above everything
        floats=[help_overlay, palette, peek, routes, messages, dialog],
    )
    layout = Layout(root, focused_element=host.focus_windows()["tasks"])
    return Placed(layout, filter_window, palette_window)
