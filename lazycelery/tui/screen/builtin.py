"""How a built-in pane is declared: like a plugin pane (an object in the ``lazycelery.panes``
entry-point group with a name, a title, a key and ``create(ctx)``), plus the slot of the layout
it fills. It is created with a ``ScreenContext``: the public context and the screen model.

A module declaring one must import without prompt_toolkit (``lazycelery plugins`` loads it to
list the pane); it imports its controls in ``create``, as a plugin imports its view."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lazycelery.panes_api import API_VERSION, PaneContext, PaneView

if TYPE_CHECKING:
    from lazycelery.tui.screen.model import ScreenModel

__all__ = ["BODY", "MAIN", "SLOTS", "TOP", "BuiltinPane", "ScreenContext"]

#: side by side above the task list
TOP: Final = "top"
#: under the top row, the rest of the body
MAIN: Final = "main"
#: the whole body, instead of the lists (the task detail; every plugin pane)
BODY: Final = "body"
SLOTS: Final = (TOP, MAIN, BODY)


class ScreenContext(PaneContext):
    """The context of a built-in pane: the plugin API's, and the dashboard's screen model (which
    is not part of the plugin API)."""

    def __init__(self, *, screen: ScreenModel, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._screen = screen

    @property
    def screen(self) -> ScreenModel:
        return self._screen


@dataclass(frozen=True)
class BuiltinPane:
    """A pane lazycelery ships. ``view`` makes its view from a ``ScreenContext``;
    ``command_title`` titles its ``pane.<name>`` command (help, palette)."""

    name: str
    title: str
    key: str
    slot: str
    view: Callable[[ScreenContext], PaneView]
    command_title: str
    api_version: int = API_VERSION

    def create(self, ctx: PaneContext) -> PaneView:
        if not isinstance(ctx, ScreenContext):
            raise TypeError(f"the built-in {self.name} pane is created by the dashboard "
                            "(it needs the screen model)")
        return self.view(ctx)
