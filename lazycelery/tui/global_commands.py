"""The commands of the dashboard itself, not of one pane's plugin or an operator action: quit,
help, the palette, back, moving between panes, cursor and page keys, open, the filter prompt,
and the task list's and the detail's own keys (keys follow k9s/lazygit habits; see
docs/dashboard.md). Each handler takes the screen model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lazycelery.tui.registry import Command
from lazycelery.tui.screen.builtin import BuiltinPane
from lazycelery.tui.screen.model import LIST_PANES

if TYPE_CHECKING:
    from lazycelery.tui.plugins import PluginInfo
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["global_commands", "goto_command"]


def _has_filter(s: ScreenModel) -> bool:
    return bool(s.tasks.filter_text)


def _time_sorted(s: ScreenModel) -> bool:
    return s.tasks.sort_column == "time"


def _detail_or_filtered(s: ScreenModel) -> bool:
    return s.ui.pane == "detail" or _has_filter(s)


def _focuser(name: str) -> Callable[[ScreenModel], None]:
    return lambda s: s.focus_pane(name)


def goto_command(info: PluginInfo, contexts: frozenset[str]) -> Command:
    """``pane.<name>``: go to a mounted pane, with its number key (built-in or plugin)."""
    pane = info.pane
    title = pane.command_title if isinstance(pane, BuiltinPane) else f"Go to {info.title}"
    return Command(f"pane.{info.name}", title, _focuser(info.name),
                   keys=(info.key,) if info.key else (), contexts=contexts, group="Panes")


def global_commands(builtins: Sequence[PluginInfo]) -> list[Command]:
    """The commands that work across the built-in panes (``builtins``, in tab order), in the
    order the help overlay lists them."""
    panes = frozenset(i.name for i in builtins)
    views = panes | {"help"}
    lists = panes & frozenset(LIST_PANES)  # enter is the model's there; other panes bind it
    tasks_or_detail = frozenset({"tasks", "detail"})
    prompts = frozenset({"filter", "palette"})
    return [
        # general
        Command("quit", "Quit", lambda s: s.quit(), keys=("q", "c-c"), contexts=views,
                footer="quit"),
        Command("help", "Show keys and filter help", lambda s: s.toggle_help(), keys=("?",),
                contexts=views, footer="help"),
        Command("palette", "Command palette (fuzzy search over commands)",
                lambda s: s.open_palette(), keys=(":",), contexts=panes, footer="cmds"),
        Command("back", "Back: close overlay / detail, clear the filter", lambda s: s.back(),
                keys=("escape",), contexts=views, footer="back", when=lambda s: s.can_go_back()),
        # panes
        Command("pane.next", "Next pane", lambda s: s.focus_next(1), keys=("tab", "l"),
                contexts=panes, group="Panes", footer="pane"),
        Command("pane.prev", "Previous pane", lambda s: s.focus_next(-1), keys=("s-tab", "h"),
                contexts=panes, group="Panes"),
        *(goto_command(info, panes) for info in builtins),
        # navigation
        Command("cursor.down", "Move down", lambda s: s.move(1), keys=("j", "down"),
                contexts=views, group="Navigation", footer="move"),
        Command("cursor.up", "Move up", lambda s: s.move(-1), keys=("k", "up"), contexts=views,
                group="Navigation"),
        Command("cursor.first", "Go to the top", lambda s: s.first(), keys=("g", "home"),
                contexts=views, group="Navigation"),
        Command("cursor.last", "Go to the bottom", lambda s: s.last(), keys=("G", "end"),
                contexts=views, group="Navigation"),
        Command("page.down", "Half a page down", lambda s: s.page(1), keys=("c-d", "pagedown"),
                contexts=views, group="Navigation"),
        Command("page.up", "Half a page up", lambda s: s.page(-1), keys=("c-u", "pageup"),
                contexts=views, group="Navigation"),
        # tasks
        Command("open", "Open: task detail / tasks of a worker or queue / linked task",
                lambda s: s.activate(), keys=("enter",), contexts=lists, group="Tasks",
                footer="open", when=lambda s: s.can_activate()),
        Command("filter", "Filter tasks (/state:failure name:billing.* runtime>2s ...)",
                lambda s: s.open_filter(), keys=("/",), contexts=panes, group="Tasks",
                footer="filter"),
        Command("filter.clear", "Clear the task filter", lambda s: s.clear_filter(),
                contexts=panes, group="Tasks", when=_has_filter),
        Command("match.next", "Next match (next task of the list)", lambda s: s.match(1),
                keys=("n",), contexts=tasks_or_detail, group="Tasks", footer="next",
                when=_detail_or_filtered),
        Command("match.prev", "Previous match", lambda s: s.match(-1), keys=("N",),
                contexts=tasks_or_detail, group="Tasks", when=_detail_or_filtered),
        Command("follow", "Follow: keep the newest task selected", lambda s: s.toggle_follow(),
                keys=("f",), contexts=frozenset({"tasks"}), group="Tasks", footer="follow",
                when=_time_sorted),
        Command("sort.next", "Sort by the next column (time, state, name, worker, runtime)",
                lambda s: s.sort_next(), keys=("s",), contexts=frozenset({"tasks"}),
                group="Tasks", footer="sort"),
        Command("sort.reverse", "Reverse the sort order", lambda s: s.sort_reverse(),
                keys=("S",), contexts=frozenset({"tasks"}), group="Tasks"),
        # detail
        Command("section.next", "Next section (history, args, traceback, family ...)",
                lambda s: s.section(1), keys=("]",), contexts=frozenset({"detail"}),
                group="Detail", footer="section"),
        Command("section.prev", "Previous section", lambda s: s.section(-1), keys=("[",),
                contexts=frozenset({"detail"}), group="Detail"),
        # prompts
        Command("prompt.accept", "Apply the filter / run the chosen command",
                lambda s: s.prompt_accept(), keys=("enter",), contexts=prompts, group="Prompt",
                footer="apply", palette=False),
        Command("prompt.cancel", "Cancel", lambda s: s.prompt_cancel(), keys=("escape", "c-c"),
                contexts=prompts, group="Prompt", footer="cancel", palette=False),
        Command("prompt.down", "Next command / newer filter", lambda s: s.prompt_move(1),
                keys=("down", "c-n"), contexts=prompts, group="Prompt", palette=False),
        Command("prompt.up", "Previous command / older filter", lambda s: s.prompt_move(-1),
                keys=("up", "c-p"), contexts=prompts, group="Prompt", palette=False),
    ]
