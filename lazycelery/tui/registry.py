"""The one registry of named commands: title, default keys, handler and where each works.

It drives the key bindings, the ``?`` help overlay, the ``:`` palette and the footer, and it is
where users remap keys (``[keys]`` in the config: ``quit = "Q"``, ``"cursor.down" = "j, ctrl-n"``).
The commands themselves come from ``global_commands`` (every pane), the operator actions
(``operator_commands``) and the mounted panes (``mount``); a handler takes the screen model.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import TYPE_CHECKING, Final

from prompt_toolkit.filters import Condition
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from lazycelery.errors import ConfigError
from lazycelery.tui.keys import KeySeq, display_keys, parse_key_spec

if TYPE_CHECKING:
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["GROUPS", "Command", "CommandRegistry", "Handler", "build_key_bindings"]

Handler = Callable[["ScreenModel"], None]

#: help overlay sections, in order
GROUPS: Final = ("General", "Panes", "Navigation", "Tasks", "Detail", "Prompt")


@dataclass(frozen=True)
class Command:
    """A named thing the user can do. ``contexts``: where its keys work (a pane, ``help``,
    ``palette``, ``dialog`` or ``filter``; none: only run by name); ``when``: an extra
    condition (e.g. "a filter is active"). Everything after the handler is keyword-only."""

    name: str
    title: str
    handler: Handler
    _: KW_ONLY
    keys: tuple[str, ...] = ()
    contexts: frozenset[str] = frozenset()
    when: Callable[[ScreenModel], bool] | None = None
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

    def enabled(self, screen: ScreenModel, context: str | None = None) -> list[Command]:
        """Commands that work in ``context`` (default: the current one), in registry order."""
        return [c for c in self if self.is_enabled(c, screen, context)]

    def is_enabled(self, command: Command, screen: ScreenModel,
                   context: str | None = None) -> bool:
        ctx = screen.ui.context if context is None else context
        if ctx not in command.contexts:
            return False
        return command.when is None or bool(command.when(screen))


def build_key_bindings(registry: CommandRegistry, is_enabled: Callable[[Command], bool],
                       run: Callable[[Command], None]) -> KeyBindings:
    """One binding per key of every command, active only where the command is enabled.

    Commands the user remapped are added last: prompt_toolkit runs the last matching binding,
    so a user's key wins over a default that still uses it.
    """
    kb = KeyBindings()
    ordered = sorted(registry, key=lambda c: registry.is_remapped(c.name))
    for command in ordered:
        enabled = Condition(lambda c=command: is_enabled(c))  # type: ignore[misc]
        for seq in registry.keys(command.name):

            def handler(event: KeyPressEvent, c: Command = command) -> None:
                run(c)

            # a lone esc must not wait (timeoutlen, 1 s) for the Alt-sequences of the
            # line editor's emacs bindings: eager runs it at once
            kb.add(*seq, filter=enabled, eager=seq == ("escape",))(handler)
    return kb
