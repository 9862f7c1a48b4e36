"""A scrollable window of styled lines with no cursor (charts, worker detail, help): each render
draws the lines from the state's ``top``, clamped so that the last page is full, and remembers
how many lines there were and how tall the window was so that ``scroll`` can clamp the same way
between renders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout.controls import UIContent, UIControl

__all__ = ["ScrollState", "ScrollTextControl", "clamp_top"]


class ScrollState(Protocol):
    """Where the window is scrolled to (the screen model's, so it survives a re-mount)."""

    top: int


def clamp_top(top: int, lines: int, page: int) -> int:
    """``top`` kept between the first line and the top of the last full page."""
    return max(0, min(top, max(0, lines - page)))


class ScrollTextControl(UIControl):
    """Draws ``lines(width)[state.top:state.top + height]``; focusable."""

    def __init__(self, lines: Callable[[int], Sequence[StyleAndTextTuples]],
                 state: ScrollState) -> None:
        self.lines = lines
        self.state = state
        #: the line count and height of the last render (what ``scroll`` clamps to)
        self.line_count = 0
        self.height = 10

    def is_focusable(self) -> bool:
        return True

    def scroll(self, delta: int) -> None:
        self.state.top = clamp_top(self.state.top + delta, self.line_count, self.height)

    def create_content(self, width: int, height: int) -> UIContent:
        lines = self.lines(width)
        self.line_count, self.height = len(lines), height
        top = self.state.top = clamp_top(self.state.top, len(lines), height)
        shown = lines[top:top + height]
        return UIContent(get_line=lambda i: shown[i] if i < len(shown) else [],
                         line_count=max(1, len(shown)), show_cursor=False)
