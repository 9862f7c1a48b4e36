"""The ``/`` filter prompt above the footer; a bad filter is explained under the column."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import ConditionalContainer, Container, HSplit, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl

if TYPE_CHECKING:
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["error_line", "filter_bar"]

_PROMPT = " / "


def error_line(text: str, message: str, column: int, width: int) -> StyleAndTextTuples:
    """``     ^ unknown state 'failre'`` with the caret under ``column`` of ``text``."""
    pad = len(_PROMPT) + min(column, len(text))
    msg = f"^ {message}"
    if pad + len(msg) > width:  # no room right of the caret: put the message first
        return [("class:filter.error", f" {message} "), ("class:filter.caret",
                                                         f"(column {column + 1})")]
    return [("", " " * pad), ("class:filter.caret", "^"), ("class:filter.error", msg[1:])]


def filter_bar(screen: ScreenModel, buffer: Buffer) -> tuple[Container, Window]:
    """The prompt container and its input window (to focus)."""
    input_window = Window(BufferControl(buffer), height=1)
    prompt = VSplit([
        Window(FormattedTextControl([("class:filter.prompt", _PROMPT)]), width=len(_PROMPT),
               height=1),
        input_window,
    ])

    def error() -> StyleAndTextTuples:
        ui = screen.ui
        if ui.filter_error is None:
            return [("class:help.disabled", "   enter apply · esc cancel · ↑/↓ history · "
                     "? after closing shows the filter language")]
        return error_line(buffer.text, ui.filter_error, ui.filter_error_column, screen.size()[0])

    container = ConditionalContainer(
        HSplit([prompt, Window(FormattedTextControl(error), height=1)]),
        filter=Condition(lambda: screen.ui.filter_editing),
    )
    return container, input_window
