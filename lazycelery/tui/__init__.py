"""The full-screen dashboard (prompt_toolkit); imported only by the dashboard command.

Data flows one way: ingest thread -> TaskIndex -> the screen model (``screen``, headless) ->
panes -> controls. Every pane, built-in or plugin, is declared in the ``lazycelery.panes``
entry-point group (``plugins`` discovers them) and mounted the same way (``mount``). Keys are
bound by command name in one registry (``registry``) that also generates the help overlay, the
``:`` palette and the footer.
"""

from __future__ import annotations

__all__: list[str] = []
