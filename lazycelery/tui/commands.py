"""The one registry of named commands: title, default keys, handler and where each works.

It drives the key bindings, the ``?`` help overlay, the ``:`` palette and the footer, and it is
where users remap keys (``[keys]`` in the config: ``quit = "Q"``, ``"cursor.down" = "j, ctrl-n"``).
Other features (operator actions, plugins) add their commands with ``registry.add``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from lazycelery.errors import ConfigError
from lazycelery.tui.keys import KeySeq, display_keys, parse_key_spec
from lazycelery.tui.state import PANES

if TYPE_CHECKING:
    from lazycelery.tui.app import Dashboard

__all__ = ["GROUPS", "Command", "CommandRegistry", "default_commands"]

Handler = Callable[["Dashboard"], None]

#: help overlay sections, in order
GROUPS: Final = ("General", "Panes", "Navigation", "Tasks", "Detail", "Prompt")
_VIEWS: Final = PANES | {"help"}


@dataclass(frozen=True)
class Command:
    """A named thing the user can do. ``contexts``: where its keys work (a pane, ``help``,
    ``palette`` or ``filter``); ``when``: an extra condition (e.g. "a filter is active")."""

    name: str
    title: str
    handler: Handler
    keys: tuple[str, ...] = ()
    contexts: frozenset[str] = PANES
    when: Callable[[Dashboard], bool] | None = None
    group: str = "General"
    #: short label for the footer; None keeps it out of the footer
    footer: str | None = None
    #: offered in the ``:`` palette
    palette: bool = True
    #: kept out of the footer, help and palette (read-only mode keeps the keys of operator
    #: actions bound only to say why they are refused)
    hidden: bool = False
    #: the effective key sequences (None: parse ``keys``; set by remapping)
    _parsed: tuple[KeySeq, ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self._parsed is None:
            object.__setattr__(self, "_parsed", parse_key_spec(list(self.keys)))

    @property
    def bindings(self) -> tuple[KeySeq, ...]:
        return self._parsed or ()


class CommandRegistry:
    """Commands by name, with the effective keys after user remapping."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands: dict[str, Command] = {}
        self._remapped: set[str] = set()
        for command in commands:
            self.add(command)

    def add(self, command: Command) -> None:
        if command.name in self._commands:
            raise ValueError(f"command {command.name!r} is already registered")
        self._commands[command.name] = command

    def get(self, name: str) -> Command:
        return self._commands[name]

    def __contains__(self, name: object) -> bool:
        return name in self._commands

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def keys(self, name: str) -> tuple[KeySeq, ...]:
        return self._commands[name].bindings

    def key_label(self, name: str, limit: int = 3) -> str:
        return display_keys(self.keys(name), limit)

    def is_remapped(self, name: str) -> bool:
        return name in self._remapped

    def remap(self, mapping: Mapping[str, str | Sequence[str]]) -> list[str]:
        """Apply ``[keys]`` from the config. Unknown commands and bad keys raise ConfigError;
        returns warnings for keys taken away from other commands that used them."""
        warnings: list[str] = []
        parsed: dict[str, tuple[KeySeq, ...]] = {}
        for name, spec in mapping.items():
            if name not in self._commands:
                hint = difflib.get_close_matches(name, list(self._commands), n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"[keys]: unknown command {name!r}{tip}; "
                                  "`?` in the dashboard lists the command names")
            try:
                parsed[name] = parse_key_spec(spec)
            except ValueError as exc:
                raise ConfigError(f"[keys] {name}: {exc}") from None
        for name, seqs in parsed.items():
            command = self._commands[name]
            self._commands[name] = replace(command, _parsed=seqs)
            self._remapped.add(name)
            for other in list(self._commands.values()):
                if other.name in parsed or not other.contexts & command.contexts:
                    continue
                kept = tuple(s for s in other.bindings if s not in seqs)
                if kept != other.bindings:
                    lost = display_keys([s for s in other.bindings if s in seqs])
                    warnings.append(f"key {lost} now runs {name!r} instead of {other.name!r}")
                    self._commands[other.name] = replace(other, _parsed=kept)
        return warnings

    def enabled(self, dashboard: Dashboard, context: str | None = None) -> list[Command]:
        """Commands that work in ``context`` (default: the current one), in registry order."""
        return [c for c in self if self.is_enabled(c, dashboard, context)]

    def is_enabled(self, command: Command, dashboard: Dashboard,
                   context: str | None = None) -> bool:
        ctx = dashboard.ui.context if context is None else context
        if ctx not in command.contexts:
            return False
        return command.when is None or bool(command.when(dashboard))


def _has_filter(d: Dashboard) -> bool:
    return bool(d.tasks.filter_text)


def _time_sorted(d: Dashboard) -> bool:
    return d.tasks.sort_column == "time"


def default_commands() -> list[Command]:
    """The built-in commands (keys follow k9s/lazygit habits; see docs/dashboard.md)."""
    views = _VIEWS
    return [
        # general
        Command("quit", "Quit", lambda d: d.quit(), ("q", "c-c"), views, footer="quit"),
        Command("help", "Show keys and filter help", lambda d: d.toggle_help(), ("?",),
                views, footer="help"),
        Command("palette", "Command palette (fuzzy search over commands)",
                lambda d: d.open_palette(), (":",), PANES, footer="cmds"),
        Command("back", "Back: close overlay / detail, clear the filter",
                lambda d: d.back(), ("escape",), views, footer="back",
                when=lambda d: d.can_go_back()),
        # panes
        Command("pane.next", "Next pane", lambda d: d.focus_next(1), ("tab", "l"), PANES,
                group="Panes", footer="pane"),
        Command("pane.prev", "Previous pane", lambda d: d.focus_next(-1), ("s-tab", "h"),
                PANES, group="Panes"),
        Command("pane.workers", "Go to workers", lambda d: d.focus_pane("workers"), ("1",),
                PANES, group="Panes"),
        Command("pane.queues", "Go to queues", lambda d: d.focus_pane("queues"), ("2",),
                PANES, group="Panes"),
        Command("pane.tasks", "Go to tasks", lambda d: d.focus_pane("tasks"), ("3",),
                PANES, group="Panes"),
        Command("pane.detail", "Go to task detail", lambda d: d.focus_pane("detail"), ("4",),
                PANES, group="Panes"),
        # navigation
        Command("cursor.down", "Move down", lambda d: d.move(1), ("j", "down"), views,
                group="Navigation", footer="move"),
        Command("cursor.up", "Move up", lambda d: d.move(-1), ("k", "up"), views,
                group="Navigation"),
        Command("cursor.first", "Go to the top", lambda d: d.first(), ("g", "home"), views,
                group="Navigation"),
        Command("cursor.last", "Go to the bottom", lambda d: d.last(), ("G", "end"), views,
                group="Navigation"),
        Command("page.down", "Half a page down", lambda d: d.page(1), ("c-d", "pagedown"),
                views, group="Navigation"),
        Command("page.up", "Half a page up", lambda d: d.page(-1), ("c-u", "pageup"), views,
                group="Navigation"),
        # tasks
        Command("open", "Open: task detail / tasks of a worker or queue / linked task",
                lambda d: d.activate(), ("enter",), PANES, group="Tasks", footer="open",
                when=lambda d: d.can_activate()),
        Command("filter", "Filter tasks (/state:failure name:billing.* runtime>2s ...)",
                lambda d: d.open_filter(), ("/",), PANES, group="Tasks", footer="filter"),
        Command("filter.clear", "Clear the task filter", lambda d: d.clear_filter(), (),
                PANES, group="Tasks", when=_has_filter),
        Command("match.next", "Next match (next task of the list)", lambda d: d.match(1),
                ("n",), frozenset({"tasks", "detail"}), group="Tasks", footer="next",
                when=lambda d: d.ui.pane == "detail" or _has_filter(d)),
        Command("match.prev", "Previous match", lambda d: d.match(-1), ("N",),
                frozenset({"tasks", "detail"}), group="Tasks",
                when=lambda d: d.ui.pane == "detail" or _has_filter(d)),
        Command("follow", "Follow: keep the newest task selected", lambda d: d.toggle_follow(),
                ("f",), frozenset({"tasks"}), group="Tasks", footer="follow",
                when=_time_sorted),
        Command("sort.next", "Sort by the next column (time, state, name, worker, runtime)",
                lambda d: d.sort_next(), ("s",), frozenset({"tasks"}), group="Tasks",
                footer="sort"),
        Command("sort.reverse", "Reverse the sort order", lambda d: d.sort_reverse(),
                ("S",), frozenset({"tasks"}), group="Tasks"),
        # detail
        Command("section.next", "Next section (history, args, traceback, family ...)",
                lambda d: d.section(1), ("]",), frozenset({"detail"}), group="Detail",
                footer="section"),
        Command("section.prev", "Previous section", lambda d: d.section(-1), ("[",),
                frozenset({"detail"}), group="Detail"),
        # prompts
        Command("prompt.accept", "Apply the filter / run the chosen command",
                lambda d: d.prompt_accept(), ("enter",), frozenset({"filter", "palette"}),
                group="Prompt", footer="apply", palette=False),
        Command("prompt.cancel", "Cancel", lambda d: d.prompt_cancel(), ("escape", "c-c"),
                frozenset({"filter", "palette"}), group="Prompt", footer="cancel",
                palette=False),
        Command("prompt.down", "Next command / newer filter", lambda d: d.prompt_move(1),
                ("down", "c-n"), frozenset({"filter", "palette"}), group="Prompt",
                palette=False),
        Command("prompt.up", "Previous command / older filter", lambda d: d.prompt_move(-1),
                ("up", "c-p"), frozenset({"filter", "palette"}), group="Prompt",
                palette=False),
    ]

