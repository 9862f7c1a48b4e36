"""Footer: the keys that work here (from the command registry), or a flash message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Container, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from lazycelery.tui.format import one_line
from lazycelery.tui.keys import display_key

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["footer", "footer_hints", "footer_text"]


def footer_hints(d: Dashboard) -> list[tuple[str, str]]:
    """(keys, label) for enabled commands that have a footer label: what this pane does
    first, the general ones (help, quit) last."""
    hints: list[tuple[str, str]] = []
    enabled = d.registry.enabled(d)
    enabled.sort(key=lambda c: c.group == "General")
    for command in enabled:
        if command.footer is None or command.hidden:
            continue
        keys = d.registry.keys(command.name)
        if not keys:
            continue
        label = display_key(keys[0])
        if command.name == "cursor.down" and "cursor.up" in d.registry:
            up = d.registry.keys("cursor.up")
            if up:
                label = f"{label}/{display_key(up[0])}"
        hints.append((label, command.footer))
    return hints


def footer_text(d: Dashboard) -> StyleAndTextTuples:
    flash = d.ui.current_flash()
    out: StyleAndTextTuples = []
    if flash is not None:
        text, error = flash
        out.append(("class:footer.error" if error else "class:footer.flash",
                    f" {one_line(text)} "))
        out.append(("class:footer", " "))
    for keys, label in footer_hints(d):
        out += [("class:footer.key", f" {keys}"), ("class:footer", f" {label} ")]
    return out


def footer(d: Dashboard) -> Container:
    return Window(FormattedTextControl(lambda: footer_text(d)), height=1, style="class:footer")
