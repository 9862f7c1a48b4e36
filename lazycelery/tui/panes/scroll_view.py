"""The view of a pane of scrollable text with no cursor (charts, worker detail): a title bar
over a ``ScrollTextControl``; the navigation keys scroll it. Imports without prompt_toolkit
(``lazycelery plugins`` loads the panes to list them); the control is made when the view is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from lazycelery.panes_api import PaneViewBase

if TYPE_CHECKING:
    from prompt_toolkit.formatted_text import StyleAndTextTuples
    from prompt_toolkit.layout import Container

    from lazycelery.tui.screen.model import ScreenModel
    from lazycelery.tui.scroll_text import ScrollState, ScrollTextControl

__all__ = ["ScrollTextView"]


class ScrollTextView(PaneViewBase):
    """A subclass calls ``_mount`` from its ``__init__``."""

    _control: ScrollTextControl
    _container: Container

    def _mount(self, screen: ScreenModel, name: str, title: Callable[[], StyleAndTextTuples],
               lines: Callable[[int], Sequence[StyleAndTextTuples]], state: ScrollState) -> None:
        from lazycelery.tui.panes.common import pane
        from lazycelery.tui.scroll_text import ScrollTextControl

        self._control = ScrollTextControl(lines, state)
        self._container = pane(title, self._control, lambda: screen.ui.pane == name,
                               lambda: screen.stale)

    def container(self) -> Container:
        return self._container

    def move(self, delta: int) -> None:
        self._control.scroll(delta)
