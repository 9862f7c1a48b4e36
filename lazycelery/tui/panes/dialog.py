"""The modal dialog of operator actions: a confirmation (Cancel focused), a choice, or a small input."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import ConditionalContainer, Float, HSplit, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.layout.dimension import Dimension
from prompt_toolkit.widgets import Frame

from lazycelery.tui.format import one_line

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["CANCEL", "CHOOSE", "CONFIRM", "INPUT", "Dialog", "counted", "dialog_float", "limited",
           "text_lines"]

#: kinds of dialog
CONFIRM: Final = "confirm"
CHOOSE: Final = "choose"
INPUT: Final = "input"
#: index of the Cancel button (the default focus of every confirmation)
CANCEL: Final = 0
_MAX_BODY_ROWS: Final = 18
#: lines of a listing shown in a dialog before "… and N more"
SHOWN: Final = 8
_WIDTH: Final = 88


def counted(n: int, noun: str) -> str:
    """``1 task``, ``1,200 tasks``, ``2 pool processes``."""
    plural = noun + ("es" if noun.endswith("s") else "s")
    return f"{n:,} {noun if n == 1 else plural}"


def text_lines(*lines: str, style: str = "") -> list[StyleAndTextTuples]:
    """Plain dialog body lines, one style."""
    return [[(style, line)] for line in lines]


def limited(lines: Sequence[str], shown: int = SHOWN) -> list[str]:
    """At most ``shown`` lines of a listing, then how many more there are."""
    if len(lines) <= shown:
        return list(lines)
    return [*lines[:shown], f"  … and {len(lines) - shown:,} more"]


@dataclass
class Dialog:
    """One question to the user.

    ``confirm``: the body says exactly what will happen; buttons Cancel and ``confirm_label``,
    Cancel focused. With ``require``, the confirm button works only once that text (a queue
    name) has been typed. ``choose``: pick one of ``options``. ``input``: one line of text,
    checked by ``validate`` (returns an error message, or None when the text is fine).
    ``on_confirm`` gets the typed text, the chosen option, or "" for a plain confirmation.
    """

    title: str
    lines: list[StyleAndTextTuples]
    on_confirm: Callable[[str], None]
    kind: str = CONFIRM
    confirm_label: str = "OK"
    options: tuple[str, ...] = ()
    selected: int = 0
    prompt: str = ""
    default: str = ""
    require: str | None = None
    validate: Callable[[str], str | None] | None = None
    focus: int = CANCEL
    error: str | None = None
    #: said under the body, e.g. what the typed confirmation is for
    hint: str = ""

    @property
    def has_input(self) -> bool:
        return self.kind == INPUT or self.require is not None

    @property
    def has_buttons(self) -> bool:
        return self.kind == CONFIRM

    def confirm_enabled(self, text: str) -> bool:
        return self.require is None or text.strip() == self.require

    def move_focus(self, delta: int) -> None:
        if self.has_buttons:
            self.focus = (self.focus + delta) % 2

    def move_choice(self, delta: int) -> None:
        if self.options:
            self.selected = max(0, min(self.selected + delta, len(self.options) - 1))


def _wrapped(line: StyleAndTextTuples, width: int) -> StyleAndTextTuples:
    """A one-style line word-wrapped to ``width`` (continuations indented under its text);
    mixed-style lines are left to the window's character wrapping."""
    if len(line) != 1:
        return [(style, one_line(text)) for style, text, *_ in line]
    style, text = line[0][0], one_line(line[0][1])
    lead = len(text) - len(text.lstrip(" "))
    indent = " " * (lead + 2) if lead else ""
    rows = textwrap.wrap(text, max(10, width), subsequent_indent=indent,
                         break_on_hyphens=False) or [""]
    return [(style, "\n".join(rows))]


def _body(dialog: Dialog, width: int) -> StyleAndTextTuples:
    lines = list(dialog.lines)
    if dialog.hint:
        lines.append([("class:dialog.hint", dialog.hint)])
    out: StyleAndTextTuples = []
    for line in lines:
        out += _wrapped(line, width)
        out.append(("", "\n"))
    return out[:-1] if out else out


def _options(dialog: Dialog) -> StyleAndTextTuples:
    out: StyleAndTextTuples = []
    for i, option in enumerate(dialog.options):
        chosen = i == dialog.selected
        out.append(("class:dialog.choice.selected" if chosen else "class:dialog.choice",
                    f" {'▶' if chosen else ' '} {one_line(option)} "))
        out.append(("", "\n"))
    return out[:-1] if out else out


def _buttons(dialog: Dialog, text: str) -> StyleAndTextTuples:
    labels = ("Cancel", dialog.confirm_label)
    out: StyleAndTextTuples = [("", "  ")]
    for i, label in enumerate(labels):
        style = "class:dialog.button"
        if i == 1:
            style += " class:dialog.button.danger"
            if not dialog.confirm_enabled(text):
                style += " class:dialog.button.disabled"
        # brackets as well as reverse video: the focus reads without colours too
        if i == dialog.focus:
            style += " class:dialog.button.focused"
            out += [(style, f"[ {label} ]"), ("", "   ")]
        else:
            out += [(style, f"  {label}  "), ("", "   ")]
    return out


def _keys_hint(dialog: Dialog) -> StyleAndTextTuples:
    if dialog.kind == CHOOSE:
        text = "↑/↓ choose · enter select · esc cancel"
    elif dialog.kind == INPUT:
        text = "enter next · esc cancel"
    elif dialog.require is not None:
        text = f"type {one_line(repr(dialog.require))}, then tab to {dialog.confirm_label} and " \
            "enter · esc cancels"
    else:
        text = f"tab to {dialog.confirm_label}, then enter · enter on Cancel or esc cancels"
    return [("class:dialog.hint", " " + text)]


def dialog_float(d: Dashboard, buffer: Buffer) -> tuple[Float, Window]:
    """The dialog overlay (shown while ``d.operator.dialog`` is set) and its input window."""

    def current() -> Dialog | None:
        return d.operator.dialog

    def visible(check: Callable[[Dialog], bool]) -> Condition:
        return Condition(lambda: (dialog := current()) is not None and check(dialog))

    def body() -> StyleAndTextTuples:
        dialog = current()
        return _body(dialog, _width() - 2) if dialog is not None else []

    def options() -> StyleAndTextTuples:
        dialog = current()
        return _options(dialog) if dialog is not None else []

    def prompt() -> StyleAndTextTuples:
        dialog = current()
        return [("class:dialog.prompt", f" {one_line(dialog.prompt)} ")] if dialog is not None \
            else []

    def error() -> StyleAndTextTuples:
        dialog = current()
        if dialog is None or not dialog.error:
            return []
        return [("class:filter.error", f" {one_line(dialog.error)}")]

    def buttons() -> StyleAndTextTuples:
        dialog = current()
        return _buttons(dialog, buffer.text) if dialog is not None else []

    def keys() -> StyleAndTextTuples:
        dialog = current()
        return _keys_hint(dialog) if dialog is not None else []

    def title() -> str:
        dialog = current()
        return one_line(dialog.title) if dialog is not None else ""

    def prompt_width() -> int:
        dialog = current()
        return len(one_line(dialog.prompt)) + 2 if dialog is not None else 0

    def _width() -> int:
        return min(_WIDTH, max(20, d.width() - 4))

    input_window = Window(BufferControl(buffer), height=1, style="class:dialog.input")
    content = HSplit([
        Window(FormattedTextControl(body), wrap_lines=True, dont_extend_height=True,
               height=Dimension(min=1, max=_MAX_BODY_ROWS)),
        ConditionalContainer(
            Window(FormattedTextControl(options), dont_extend_height=True),
            filter=visible(lambda x: x.kind == CHOOSE)),
        ConditionalContainer(
            VSplit([Window(FormattedTextControl(prompt), width=prompt_width,
                           dont_extend_width=True), input_window]),
            filter=visible(lambda x: x.has_input)),
        ConditionalContainer(Window(FormattedTextControl(error), height=1),
                             filter=visible(lambda x: bool(x.error))),
        Window(height=1),
        ConditionalContainer(Window(FormattedTextControl(buttons), height=1),
                             filter=visible(lambda x: x.has_buttons)),
        Window(FormattedTextControl(keys), height=1),
    ])
    frame = Frame(content, title=title, style="class:dialog",
                  width=_width)
    shown = ConditionalContainer(frame, filter=Condition(lambda: current() is not None))
    return Float(shown), input_window
