"""Pieces shared by panes: the one-line pane title bar."""

from __future__ import annotations

from collections.abc import Callable

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container, HSplit, Window
from prompt_toolkit.layout.controls import FormattedTextControl, UIControl
from prompt_toolkit.layout.dimension import Dimension

__all__ = ["pane", "title_bar"]


def title_bar(text: Callable[[], StyleAndTextTuples], focused: Callable[[], bool],
              stale: Callable[[], bool] = lambda: False) -> Window:
    def style() -> str:
        if stale():
            return "class:pane.title.stale"
        return "class:pane.title.focused" if focused() else "class:pane.title"

    return Window(FormattedTextControl(text), height=1, style=style)


def pane(title: Callable[[], StyleAndTextTuples], control: UIControl,
         focused: Callable[[], bool], stale: Callable[[], bool] = lambda: False) -> Container:
    """A title bar over a control; the window is returned as ``.body`` for focusing."""
    body = Window(control, wrap_lines=False, always_hide_cursor=True)
    # an explicit weight: side by side, panes share the width evenly whatever their titles say
    container = HSplit([title_bar(title, focused, stale), body], width=Dimension(weight=1))
    container.body = body  # type: ignore[attr-defined]
    return container
