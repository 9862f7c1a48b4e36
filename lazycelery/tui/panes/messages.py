"""Transient messages of operator actions (work in progress, per-worker replies) shown above the footer."""

from __future__ import annotations

import textwrap
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import ConditionalContainer, Float, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.utils import get_cwidth
from prompt_toolkit.widgets import Frame

from lazycelery.tui.format import fit, one_line, wrap

__all__ = [
    "ERROR_SECONDS",
    "OK_SECONDS",
    "Message",
    "MessageBoard",
    "messages_float",
    "styled_lines",
]

#: how long a result stays on screen
OK_SECONDS: Final = 6.0
ERROR_SECONDS: Final = 15.0
_MAX_ROWS: Final = 14
_LEVEL_STYLE: Final = {"ok": "class:messages.ok", "error": "class:messages.error",
                       "info": "class:messages.info", "working": "class:messages.working"}


def styled_lines(lines: Sequence[str]) -> list[StyleAndTextTuples]:
    """``ActionResult.lines()`` styled by each reply's status word (ok / error / skip)."""
    out: list[StyleAndTextTuples] = []
    for line in lines:
        text = one_line(line)
        words = text.split()
        style = ""
        if len(words) >= 2 and text.startswith("  "):
            style = {"ok": "class:messages.ok", "error": "class:messages.error",
                     "skip": "class:messages.info", "refuse": "class:messages.info",
                     "retry": "class:messages.ok"}.get(words[1], "")
        out.append([(style, text)])
    return out


def _wrapped(style: str, text: str, width: int) -> list[StyleAndTextTuples]:
    """One message line as rows of ``width`` cells: word-wrapped, continuations indented under
    the text (two more than the line's own indent), words longer than a row split."""
    text = one_line(text)
    lead = len(text) - len(text.lstrip(" "))
    indent = " " * min(lead + 2, max(0, width // 3))
    if text.isascii() or get_cwidth(text) == len(text):  # one cell per character
        rows = textwrap.wrap(text, max(1, width), subsequent_indent=indent,
                             break_on_hyphens=False, drop_whitespace=True) or [""]
        if lead:  # textwrap keeps the first row's indent; keep it exact
            rows[0] = " " * lead + rows[0].lstrip(" ")
    else:  # wide characters: wrap by cells
        rows = wrap(text, max(1, width))
    return [[(style, fit(row, width))] for row in rows]


@dataclass
class Message:
    """One message: a headline and detail lines; ``until`` (monotonic) None stays until replaced."""

    key: str
    headline: str
    lines: list[StyleAndTextTuples]
    level: str
    until: float | None
    posted: float


class MessageBoard:
    """The newest messages (keyed: a result replaces its "working" message) and a short history."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, history: int = 50) -> None:
        self._clock = clock
        self._live: dict[str, Message] = {}
        self._serial = 0
        #: every message posted (except "working" ones), oldest first
        self.history: deque[Message] = deque(maxlen=history)

    def post(self, headline: str, lines: Sequence[StyleAndTextTuples] = (), *,
             level: str = "info", key: str | None = None, seconds: float | None = None) -> Message:
        """Show a message; ``seconds`` defaults by level (errors stay longer)."""
        if key is None:
            self._serial += 1
            key = f"message-{self._serial}"
        now = self._clock()
        if seconds is None:
            seconds = ERROR_SECONDS if level == "error" else OK_SECONDS
        until = None if level == "working" else now + seconds
        message = Message(key, headline, list(lines), level, until, now)
        self._live.pop(key, None)
        self._live[key] = message
        if level != "working":
            self.history.append(message)
        return message

    def remove(self, key: str) -> None:
        self._live.pop(key, None)

    def visible(self) -> list[Message]:
        """Live messages, oldest first (expired ones are dropped here)."""
        now = self._clock()
        for key in [k for k, m in self._live.items() if m.until is not None and m.until < now]:
            del self._live[key]
        return list(self._live.values())

    def text(self, width: int) -> StyleAndTextTuples:
        """The visible messages as lines (newest last, at most ``_MAX_ROWS``); long lines are
        wrapped, never cut: a refusal's reason is the part worth reading."""
        rows: list[StyleAndTextTuples] = []
        for message in self.visible():
            mark = "…" if message.level == "working" else "●"
            rows += _wrapped(_LEVEL_STYLE.get(message.level, ""),
                             f" {mark} {one_line(message.headline)}", width)
            for line in message.lines:
                if len(line) == 1:
                    rows += _wrapped(line[0][0], " " + one_line(line[0][1]), width)
                else:  # mixed styles: one row, cut (none of ours are)
                    rows.append([(style, fit(" " + one_line(text), width))
                                 for style, text, *_ in line])
        if len(rows) > _MAX_ROWS:
            rows = [[("class:messages.info", fit(f" … {len(rows) - _MAX_ROWS + 1} more lines "
                                                 "above", width))], *rows[-_MAX_ROWS + 1:]]
        out: StyleAndTextTuples = []
        for i, row in enumerate(rows):
            if i:
                out.append(("", "\n"))
            out += row
        return out

    def rows(self, width: int) -> int:
        text = self.text(width)
        return sum(1 for _, t, *_ in text if t == "\n") + 1 if text else 0


def messages_float(board: MessageBoard, columns: Callable[[], int]) -> Float:
    """The message box at the bottom right, above the footer (only while there is news);
    ``columns`` is the terminal's width."""

    def width() -> int:
        return max(20, min(110, columns() - 4))

    body = Window(FormattedTextControl(lambda: board.text(width() - 2)),
                  height=lambda: max(1, board.rows(width() - 2)), style="class:messages")
    frame = Frame(body, title="Actions", style="class:messages.frame")
    shown = ConditionalContainer(frame, filter=Condition(lambda: bool(board.visible())))
    return Float(shown, bottom=1, right=1, width=width)
