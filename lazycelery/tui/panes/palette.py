"""The ``:`` command palette: fuzzy search over command titles and names, enter runs one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Float, HSplit, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.widgets import Frame

from lazycelery.tui.format import fit

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard
    from lazycelery.tui.commands import Command

__all__ = ["PaletteState", "fuzzy_match", "palette_float", "rank"]


def fuzzy_match(query: str, text: str) -> tuple[int, list[int]] | None:
    """Subsequence match (case-insensitive): (score, matched positions) or None.

    Scores favour consecutive letters and letters at word starts, as in editors' palettes.
    """
    if not query:
        return 0, []
    q, t = query.lower(), text.lower()
    positions: list[int] = []
    score, i, prev = 0, 0, -2
    for ch in q:
        if ch == " ":
            continue
        i = t.find(ch, i)
        if i < 0:
            return None
        bonus = 1
        if i == prev + 1:
            bonus += 5
        if i == 0 or not t[i - 1].isalnum():
            bonus += 8
        score += bonus - min(3, i - prev - 1 if prev >= 0 else i)
        positions.append(i)
        prev = i
        i += 1
    return score, positions


def rank(query: str, commands: list[Command]) -> list[tuple[Command, list[int]]]:
    """Commands matching ``query`` best first (by title, else by name)."""
    scored: list[tuple[int, int, Command, list[int]]] = []
    for order, command in enumerate(commands):
        by_title = fuzzy_match(query, command.title)
        by_name = fuzzy_match(query, command.name)
        best = by_title
        if by_name is not None and (best is None or by_name[0] > best[0]):
            best = (by_name[0], [])  # the title is shown: don't underline name positions
        if best is not None:
            scored.append((-best[0], order, command, best[1]))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [(c, pos) for _, _, c, pos in scored]


@dataclass
class PaletteState:
    """Candidates fixed when the palette opened (commands enabled in that pane)."""

    candidates: list[Command]
    selected: int = 0

    def results(self, query: str) -> list[tuple[Command, list[int]]]:
        return rank(query, self.candidates)


def palette_float(d: Dashboard, buffer: Buffer) -> tuple[Float, Window]:
    """The palette overlay and its input window (to focus)."""
    def items() -> StyleAndTextTuples:
        state = d.palette
        if state is None:
            return []
        results = state.results(buffer.text)[:12]
        state.selected = max(0, min(state.selected, len(results) - 1))
        width = 66
        out: StyleAndTextTuples = []
        for i, (command, positions) in enumerate(results):
            base = "class:palette.selected" if i == state.selected else ""
            title = fit(command.title, 44)
            for j, ch in enumerate(title):
                style = f"{base} class:palette.match" if j in positions else base
                out.append((style, ch))
            keys = d.registry.key_label(command.name)
            out.append((f"{base} class:help.key", fit(" " + keys, width - 44)))
            out.append(("", "\n"))
        if not results:
            out.append(("class:help.disabled", " no command matches"))
        return out

    input_window = Window(BufferControl(buffer), height=1)
    body = Frame(HSplit([
        VSplit([Window(FormattedTextControl([("class:filter.prompt", " : ")]), width=3),
                input_window]),
        Window(height=1, char="─", style="class:overlay.border"),
        Window(FormattedTextControl(items), height=12),
    ]), title="Commands", style="class:overlay", width=68)
    return Float(body, top=3), input_window
