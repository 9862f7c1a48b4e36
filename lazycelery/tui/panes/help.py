"""The ``?`` overlay: every command with its keys (generated from the registry; those that do
not work in the current pane are dimmed), the filter language, and how to remap keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from prompt_toolkit.formatted_text import StyleAndTextTuples
from prompt_toolkit.layout import Float, HSplit, Window
from prompt_toolkit.layout.controls import FormattedTextControl, UIContent
from prompt_toolkit.widgets import Frame

from lazycelery.tui.registry import GROUPS
from lazycelery.tui.scroll_text import ScrollTextControl

if TYPE_CHECKING:
    from lazycelery.tui.registry import CommandRegistry
    from lazycelery.tui.screen.help import HelpModel
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["FILTER_HELP", "HelpControl", "help_float", "help_lines"]

FILTER_HELP: Final = (
    ("billing", "free text in name, id, args, kwargs, result, exception"),
    ('"card declined"', "a phrase; smart case: an uppercase letter makes it case-sensitive"),
    ("re:time(out|d)", "regular expression over the same fields"),
    ("state:failure,retry", "state (aliases: failed, ok, running, done, unfinished ...)"),
    ("name:billing.*", "task name; * and ? are wildcards, name:re:^x a regex"),
    ("worker:w1*  queue:x", "worker hostname, queue (queue needs task-sent events)"),
    ("id:3f2a  root:  parent:", "task id (prefix), workflow root, parent"),
    ("exc:Timeout  tb:line", "exception text, traceback text"),
    ("args: kwargs: result:", "the repr strings Celery sends in events"),
    ("runtime>2s  retries>=1", "comparisons: > >= < <= = (ms, s, m, h)"),
    ("since:10m  before:1h", "activity within / not within the last 10 minutes (or ISO time);"
     " with --store, a range past memory is read from the store"),
    ("-state:success", "a leading - negates any term; terms are AND-ed"),
)


def help_lines(registry: CommandRegistry, screen: ScreenModel, context: str) -> list[StyleAndTextTuples]:
    lines: list[StyleAndTextTuples] = [
        [("class:overlay.title", f" Keys — {context} pane"),
         ("class:help.disabled", "   (dim: not available here)   close: ? or esc")],
        [],
    ]
    key_w = 18
    name_w = min(24, max([16, *(len(c.name) + 1 for c in registry if not c.hidden)]))
    groups = [g for g in GROUPS] + sorted({c.group for c in registry} - set(GROUPS))
    for group in groups:
        commands = [c for c in registry if c.group == group and not c.hidden]
        if not commands:
            continue
        lines.append([("class:help.group", f" {group}")])
        for c in commands:
            keys = registry.key_label(c.name, limit=4) or "(palette)"
            enabled = registry.is_enabled(c, screen, context) or group == "Prompt"
            dim = "" if enabled else "class:help.disabled"
            lines.append([
                (dim or "class:help.key", f"   {keys:<{key_w}}"),
                (dim or "class:help.disabled", f"{c.name:<{name_w}} "),
                (dim, c.title),
            ])
        lines.append([])
    lines.append([("class:help.group", " Filter language (/)")])
    for example, meaning in FILTER_HELP:
        lines.append([("class:help.key", f"   {example:<26}"), ("", meaning)])
    lines += [
        [],
        [("class:help.group", " Remapping")],
        [("", '   In the config file: [keys]  quit = "Q"   "cursor.down" = "j, ctrl-n"')],
        [("", "   Names are the middle column; `lazycelery config path` shows the file.")],
    ]
    return lines


class HelpControl(ScrollTextControl):
    """The help overlay's lines (``screen.help``), scrolled to where the navigation keys put it."""

    def __init__(self, model: HelpModel) -> None:
        super().__init__(lambda width: model.lines, model)
        self.model = model

    def create_content(self, width: int, height: int) -> UIContent:
        self.model.page_rows = height  # what the model's scroll keys and "more lines" count by
        return super().create_content(width, height)


def help_float(model: HelpModel) -> Float:
    def more() -> StyleAndTextTuples:
        below = len(model.lines) - model.top - model.page_rows
        return [("class:help.disabled", f" j/k scroll — {below} more lines" if below > 0
                 else " end")]

    body = Frame(HSplit([
        Window(HelpControl(model), wrap_lines=False),
        Window(FormattedTextControl(more), height=1),
    ]), title="Help", style="class:overlay")
    return Float(body, top=1, bottom=1, left=2, right=2)
