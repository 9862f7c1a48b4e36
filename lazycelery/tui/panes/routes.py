"""The routes overlay: ``lazycelery queues routes`` in the dashboard (exchanges -> bindings ->
queues with their consumers, and the app's task_routes), scrolled like the help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Float, HSplit, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.widgets import Frame

from lazycelery.tui.panes.help import HelpControl

if TYPE_CHECKING:
    from lazycelery.tui.screen.help import HelpModel

__all__ = ["routes_float"]


def routes_float(model: HelpModel) -> Float:
    def more() -> StyleAndTextTuples:
        below = len(model.lines) - model.top - model.page_rows
        return [("class:help.disabled", (f" j/k scroll — {below} more lines" if below > 0
                                         else " end") + "   esc close")]

    body = Frame(HSplit([Window(HelpControl(model), wrap_lines=False),
                         Window(FormattedTextControl(more), height=1)]),
                 title="Routes", style="class:overlay")
    return Float(body, top=2, bottom=2, left=4, right=4)
