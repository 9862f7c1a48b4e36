"""The environment switch of a dashboard over several environments: which one is shown, which
one the user asked for, the cluster view's cursor, and each environment's header colour."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from lazycelery.core.env_status import EnvStatus

__all__ = ["PT_COLORS", "EnvSwitcher", "header_style"]

#: the config's ``color`` names as prompt_toolkit colour names (ANSI: light and dark themes)
PT_COLORS: Final[Mapping[str, str]] = {
    "red": "ansired", "green": "ansigreen", "yellow": "ansiyellow", "blue": "ansiblue",
    "magenta": "ansimagenta", "cyan": "ansicyan", "white": "ansiwhite", "gray": "ansigray",
    "bright_red": "ansibrightred", "bright_green": "ansibrightgreen",
    "bright_yellow": "ansibrightyellow", "bright_blue": "ansibrightblue",
    "bright_magenta": "ansibrightmagenta", "bright_cyan": "ansibrightcyan",
}


def header_style(color: str | None) -> str:
    """The header's style for an environment's name: its colour, bold, reversed so it stands
    out whatever the header's own colours."""
    pt = PT_COLORS.get(color or "")
    return f"class:header.env fg:{pt} bold reverse" if pt else "class:header.env"


class EnvSwitcher:
    """Which environment the dashboard shows. ``request`` records the wish and calls
    ``on_request`` (the driver then leaves the current screen and shows the other one)."""

    def __init__(self, names: Sequence[str], statuses: Callable[[], list[EnvStatus]]) -> None:
        if not names:
            raise ValueError("no environment")
        self.names: tuple[str, ...] = tuple(names)
        self.statuses = statuses
        self.current = self.names[0]
        self.requested: str | None = None
        self.cursor = 0
        self.on_request: Callable[[str], None] = lambda _name: None

    def request(self, name: str) -> None:
        if name not in self.names or name == self.current:
            return
        self.requested = name
        self.on_request(name)

    def take_request(self) -> str | None:
        """The environment asked for (now the current one), or None: the user quit."""
        name, self.requested = self.requested, None
        if name is not None:
            self.current = name
        return name

    def next(self, delta: int = 1) -> None:
        i = self.names.index(self.current)
        self.request(self.names[(i + delta) % len(self.names)])

    def move(self, delta: int) -> None:
        self.cursor = max(0, min(len(self.names) - 1, self.cursor + delta))

    def switch_to_cursor(self) -> None:
        self.request(self.names[self.cursor])
