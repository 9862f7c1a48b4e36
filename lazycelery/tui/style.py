"""Semantic style classes (``task.state.failure``) and the default theme in ANSI colour names,
so it reads on light and dark terminals and respects the terminal's own palette."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from prompt_toolkit.styles import Style

__all__ = ["DEFAULT_THEME", "build_style", "state_class"]

DEFAULT_THEME: Final[Mapping[str, str]] = {
    # header, metrics strip, banner, footer
    "header": "",
    "header.app": "bold",
    "header.env": "bold ansicyan",
    "header.readonly": "bold ansiyellow",
    "header.label": "ansibrightblack",
    "header.value": "bold",
    "conn.connected": "ansigreen",
    "conn.connecting": "ansiyellow",
    "conn.reconnecting": "ansired bold",
    "conn.stopped": "ansired",
    "conn.gap": "ansiyellow",
    "metrics": "",
    "metrics.label": "ansibrightblack",
    "spark.ok": "ansigreen",
    "spark.failed": "ansired",
    "spark.queue": "ansicyan",
    "banner": "bg:ansired fg:ansiwhite bold",
    "alert.firing": "ansired bold",
    "footer": "reverse",
    "footer.key": "reverse bold",
    "footer.flash": "reverse ansiyellow",
    "footer.error": "reverse ansired bold",
    # panes
    "pane.title": "reverse",
    "pane.title.focused": "reverse bold ansiblue",
    "pane.title.stale": "reverse ansiyellow",
    "pane.sep": "ansibrightblack",
    "pane.empty": "ansibrightblack italic",
    "table.header": "bold underline",
    "table.selected": "reverse",
    "table.selected.unfocused": "underline",
    "table.dim": "ansibrightblack",
    "stale": "ansibrightblack",
    # task states
    "task.state.pending": "",
    "task.state.received": "ansiblue",
    "task.state.started": "ansicyan bold",
    "task.state.retry": "ansiyellow bold",
    "task.state.success": "ansigreen",
    "task.state.failure": "ansired bold",
    "task.state.revoked": "ansimagenta",
    "task.state.rejected": "ansimagenta",
    "task.state.purged": "ansimagenta",
    # workers and queues
    "worker.online": "ansigreen",
    "worker.lost": "ansiyellow bold",
    "worker.offline": "ansibrightblack",
    "queue.backlog": "ansiyellow",
    # detail
    "detail.title": "bold",
    "detail.section": "bold underline",
    "detail.label": "ansibrightblack",
    "detail.truncated": "ansiyellow bold",
    "detail.link": "",
    "detail.current": "bold",
    "detail.traceback": "",
    "detail.cursor": "reverse",
    # overlays and prompts
    "overlay": "",
    "overlay.border": "ansiblue",
    "frame.border": "ansiblue",
    "frame.label": "bold",
    "overlay.title": "bold",
    "help.group": "bold underline",
    "help.key": "bold ansicyan",
    "help.disabled": "ansibrightblack",
    "palette.selected": "reverse",
    "palette.match": "bold underline",
    "filter.prompt": "bold",
    "filter.error": "ansired bold",
    "filter.caret": "ansired bold",
    "small": "bold",
    # operator actions: confirmation dialog, transient result messages, reconciliation marks
    "dialog": "",
    "dialog.headline": "bold",
    "dialog.hint": "ansibrightblack",
    "dialog.warning": "ansiyellow",
    "dialog.prompt": "bold",
    "dialog.input": "underline",
    "dialog.choice": "",
    "dialog.choice.selected": "reverse",
    "dialog.button": "",
    "dialog.button.danger": "ansired",
    "dialog.button.disabled": "ansibrightblack",
    "dialog.button.focused": "reverse bold",
    "messages": "",
    "messages.frame": "",
    "messages.ok": "ansigreen",
    "messages.error": "ansired bold",
    "messages.info": "ansiyellow",
    "messages.working": "ansicyan",
    "task.unknown": "ansiyellow italic",
    # tasks read from the history store, and those the store has only from the result backend
    "task.history": "ansicyan",
    "task.backfilled": "ansimagenta bold",
    # a row or part of the screen that could not be shown (lazycelery.tui.guard)
    "render.error": "ansired",
}


def state_class(state: object) -> str:
    """``FAILURE`` -> ``class:task.state.failure``; a state that is not a plain word (a custom
    state from a result backend may be anything) gets no colour, and never injects a style."""
    if isinstance(state, str) and state.isascii() and state.replace("_", "").isalnum():
        return f"class:task.state.{state.lower()}"
    return "class:task.state.other"


def build_style(overrides: Mapping[str, str] | None = None) -> Style:
    """The prompt_toolkit style of the theme (imported here: pane modules read the class names
    above without the TUI)."""
    from prompt_toolkit.styles import Style

    rules = dict(DEFAULT_THEME)
    rules.update(overrides or {})
    return Style.from_dict(rules)
