"""The peek overlay: the next messages of the selected queue with their priority, task, id and
arguments (masked, never unpickled); space chooses messages for delete / move / requeue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.data_structures import Point
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Float, HSplit, Window
from prompt_toolkit.layout.controls import FormattedTextControl, UIContent, UIControl
from prompt_toolkit.widgets import Frame

from lazycelery.text import counted, visible

if TYPE_CHECKING:
    from lazycelery.broker.model import PeekedMessage
    from lazycelery.tui.screen.peek import PeekModel

__all__ = ["PeekControl", "peek_float", "peek_line"]


def peek_line(message: PeekedMessage, chosen: bool, width: int) -> str:
    mark = "[x]" if chosen else "[ ]"
    priority = "-" if message.priority is None else str(message.priority)
    args = visible(message.argsrepr or "") + " " + visible(message.kwargsrepr or "")
    text = (f" {mark} {message.position:>4} {priority:>3}  {visible(message.task or '?'):<32.32} "
            f"{visible(message.id or '-'):<36}  {args}")
    return text[:width]


class PeekControl(UIControl):
    def __init__(self, model: PeekModel) -> None:
        self.model = model

    def is_focusable(self) -> bool:
        return False

    def create_content(self, width: int, height: int) -> UIContent:
        model = self.model
        model.page_rows = max(1, height)
        rows: list[StyleAndTextTuples] = []
        for i, message in enumerate(model.messages[model.top:model.top + height], model.top):
            style = "class:table.selected" if i == model.cursor else ""
            rows.append([(style, peek_line(message, message.id in model.chosen, width))])
        if not rows:
            rows.append([("class:help.disabled", " no waiting messages")])
        return UIContent(get_line=lambda i: rows[i] if i < len(rows) else [],
                         line_count=len(rows), cursor_position=Point(0, 0), show_cursor=False)


def peek_float(model: PeekModel) -> Float:
    def title() -> StyleAndTextTuples:
        what = (f"next {counted(len(model.messages), 'message')}" if model.source_note is None
                else f"{counted(len(model.messages), 'task')} {model.source_note}")
        return [("class:overlay.title",
                 f" {visible(model.queue or '')}: {what}, {len(model.chosen)} chosen   "),
                ("class:help.disabled", "space choose  a all  d delete  m move  R requeue dead  "
                                        "esc close")]

    body = Frame(HSplit([Window(FormattedTextControl(title), height=1),
                         Window(PeekControl(model), wrap_lines=False)]),
                 title="Peek", style="class:overlay")
    return Float(body, top=2, bottom=2, left=2, right=2)
