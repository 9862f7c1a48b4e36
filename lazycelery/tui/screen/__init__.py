"""The dashboard's screen model, without prompt_toolkit: UI state, list models, navigation,
filter, sort, follow, the detail stack and selection (``model.ScreenModel``), what it asks of the
application (``shell.Shell``), and how a built-in pane is declared (``builtin``)."""

from __future__ import annotations

__all__: list[str] = []
