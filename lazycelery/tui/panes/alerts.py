"""The alerts pane: the rules the running evaluator published for this environment, firing
ones first (state, since when, what it found, silenced until); the header counts the firing
ones. Imports without prompt_toolkit; its controls are made when the pane is created."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lazycelery.panes_api import PaneViewBase
from lazycelery.tui.format import clock_time, one_line
from lazycelery.tui.screen.alerts import AlertsModel
from lazycelery.tui.screen.builtin import BODY, BuiltinPane, ScreenContext

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

__all__ = ["PANE", "AlertsView", "alert_lines"]

_STYLE = {"firing": "class:task.state.failure", "pending": "class:task.state.retry",
          "resolved": "class:task.state.success"}


def alert_lines(model: AlertsModel) -> list[tuple[str, str]]:
    """(style, text) per line: one per rule, then a note when no evaluator runs."""
    model.refresh()
    lines: list[tuple[str, str]] = []
    for rule in model.rules if model.running else []:
        state = str(rule.get("state", "?"))
        since = rule.get("since")
        silenced = rule.get("silenced_until")
        quiet = f"  (silenced until {clock_time(silenced)})" if silenced else ""
        lines.append((_STYLE.get(state, ""),
                      f"{state:<8} {clock_time(since) if since else '':<8}  "
                      f"{rule.get('name', '?')}: {one_line(str(rule.get('summary', '')))}"
                      f"{quiet}"))
    if model.problem:
        lines.append(("class:dialog.warning", model.problem))
    elif not model.running:
        last = f" (last published {clock_time(model.updated)})" if model.updated else ""
        lines.append(("class:table.dim", "no alert evaluator running for this environment"
                      f"{last}: `lazycelery serve` or `lazycelery record` runs the rules of "
                      "the config file (docs/alerts.md)"))
    return lines


class AlertsView(PaneViewBase):
    def __init__(self, ctx: ScreenContext) -> None:
        from prompt_toolkit.layout import HSplit, Window
        from prompt_toolkit.layout.controls import FormattedTextControl

        from lazycelery.tui.panes.common import title_bar

        screen = ctx.screen
        self.model = screen.alerts

        def title() -> StyleAndTextTuples:
            firing = len(self.model.firing)
            return [("bold", f" {PANE.key} {PANE.title} "),
                    ("class:alert.firing" if firing else "", f" {firing} firing ")]

        def text() -> StyleAndTextTuples:
            out: StyleAndTextTuples = []
            for style, line in alert_lines(self.model):
                out += [(style, " " + line), ("", "\n")]
            return out

        # a few rules at most (a config file's): a plain text control is enough
        self._container = HSplit([
            title_bar(title, lambda: screen.ui.pane == "alerts"),
            Window(FormattedTextControl(text, focusable=True), wrap_lines=False,
                   always_hide_cursor=True)])

    def container(self) -> Container:
        return self._container



#: what the ``lazycelery.panes`` entry point ``alerts`` names
PANE = BuiltinPane(name="alerts", title="Alerts", key="!", slot=BODY, view=AlertsView,
                   command_title="Go to the firing alerts")
