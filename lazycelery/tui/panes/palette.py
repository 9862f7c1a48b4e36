"""The ``:`` command palette overlay: fuzzy search over command titles and names (the ranking and
the selection are the screen model's, ``screen.palette``), enter runs one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.buffer import Buffer
from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Float, HSplit, VSplit, Window
from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
from prompt_toolkit.widgets import Frame

from lazycelery.tui.format import fit

if TYPE_CHECKING:
    from lazycelery.tui.registry import CommandRegistry
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["palette_float"]


def palette_float(screen: ScreenModel, registry: CommandRegistry,
                  buffer: Buffer) -> tuple[Float, Window]:
    """The palette overlay and its input window (to focus)."""
    def items() -> StyleAndTextTuples:
        state = screen.palette
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
            keys = registry.key_label(command.name)
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
