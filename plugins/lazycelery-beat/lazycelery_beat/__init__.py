"""lazycelery-beat: a dashboard pane listing Celery beat's schedule (the ``beat`` entry point).

Importing this package is cheap (no prompt_toolkit, no celery): ``lazycelery plugins`` imports
it to list the pane; the view is imported when the dashboard creates the pane.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lazycelery.panes_api import PaneContext, PaneView

__all__ = ["BeatPane", "pane"]

__version__ = "0.1.0"


class BeatPane:
    """The ``beat`` pane: every schedule entry, its task, its schedule in words, last and next run."""

    api_version = 1
    name = "beat"
    title = "Beat"
    key: str | None = "5"

    def create(self, ctx: PaneContext) -> PaneView:
        from lazycelery_beat.view import BeatView

        return BeatView(ctx)


#: what the ``lazycelery.panes`` entry point names
pane = BeatPane()
